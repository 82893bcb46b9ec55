// SPDX-License-Identifier: GPL-2.0

//! A provider module that registers an ops table, owned by itself, with `rust_consumer`.
//!
//! At load it picks a random instance id, builds its [`ProviderOps`] table with `owner` set to
//! its own module and registers it as the last step of init (nothing after it can fail, so a
//! caller can never hold a reference on a module whose init is being undone). At unload,
//! [`Registration`]'s `Drop` unregisters it; `rust_consumer_unregister` returns only after an RCU
//! grace period, so by then no caller can reach the table, and the module loader frees this
//! module's code only after that.
//!
//! The provider never needs to count anything itself: every caller holds a reference on this
//! module while it runs code from the table, so `rmmod rust_provider` fails with `EWOULDBLOCK`
//! ("in use") while a call is in flight.
//!
//! ```sh
//! insmod rust_consumer.ko
//! insmod rust_provider.ko                  # instance_id=N to fix the id, hold_max_us=N to cap holds
//! exec 3<>/dev/rust_consumer
//! echo 'describe rust_provider' >&3; cat <&3
//! ```

use kernel::{
    bindings,
    error::to_result,
    ffi::c_int,
    prelude::*,
    sync::atomic::{
        Atomic,
        Relaxed, //
    },
    time::{
        delay::fsleep,
        Delta,
        Instant,
        Monotonic, //
    },
};

#[path = "provider_abi.rs"]
mod abi;

use abi::{
    ProviderInfo,
    ProviderOps, //
};

module! {
    type: RustProvider,
    name: "rust_provider",
    authors: ["rust-modref developers"],
    description: "Provider of an ops table protected by its module reference",
    license: "GPL",
    params: {
        instance_id: u64 {
            default: 0,
            description: "Instance id reported by describe and mixed into compute (0: random per load)",
        },
        hold_max_us: u32 {
            default: 1_000_000,
            description: "Longest hold accepted, in microseconds (capped at 1000000)",
        },
        tables: u32 {
            default: 1,
            description: "Ops tables to register: rust_provider, rust_provider_1, ... (1-9)",
        },
        abi_version: u32 {
            default: 1,
            description: "ABI version to register with (test hook: anything but 1 is refused)",
        },
        register_twice: bool {
            default: false,
            description: "Test hook: register the first table's name twice (the consumer refuses)",
        },
    },
}

// The functions the consumer exports. Importing them makes the module loader record the
// dependency provider -> consumer, so the consumer cannot be removed while this module is loaded.
#[expect(
    improper_ctypes,
    reason = "`struct module` is opaque here: the table carries only its address"
)]
extern "C" {
    fn rust_consumer_register(ops: *const ProviderOps) -> c_int;
    fn rust_consumer_unregister(ops: *const ProviderOps);
}

const NAME: &[u8] = b"rust_provider";
const VERSION: u32 = 1;

/// The id of this load of the module, chosen in init before the table is registered.
static INSTANCE_ID: Atomic<u64> = Atomic::new(0);

/// Holds that ran to completion in this load of the module (logged at exit).
static HOLDS_COMPLETED: Atomic<u64> = Atomic::new(0);

fn instance_id() -> u64 {
    INSTANCE_ID.load(Relaxed)
}

extern "C" fn compute(x: u64) -> u64 {
    abi::compute_expected(x, instance_id())
}

extern "C" fn hold(us: u32) -> c_int {
    let cap = module_parameters::hold_max_us.value().min(abi::HOLD_MAX_US);
    if us > cap {
        return EINVAL.to_errno();
    }
    fsleep(Delta::from_micros(i64::from(us)));
    // Provider code touching provider data after sleeping, as real code does. Without a module
    // reference held by the caller (the negative control), this store lands in freed module memory
    // and the debug kernel reports it.
    HOLDS_COMPLETED.add(1u64, Relaxed);
    0
}

/// Fills in this instance; the consumer puts the name of the table it called in `name`.
///
/// # Safety
///
/// `info` must be valid for writing a [`ProviderInfo`].
unsafe extern "C" fn describe(info: *mut ProviderInfo) {
    let name = abi::name_buf(NAME).unwrap_or([0; abi::NAME_LEN]);
    // SAFETY: The caller guarantees `info` is valid for writes (the ABI contract of `describe`).
    unsafe {
        info.write(ProviderInfo {
            name,
            version: VERSION,
            instance_id: instance_id(),
        })
    };
}

/// An ops table registered with the consumer; unregisters it when dropped.
///
/// # Invariants
///
/// `ops` is registered with the consumer for the whole life of this value.
struct Registration {
    ops: KBox<ProviderOps>,
}

impl Registration {
    fn new(ops: KBox<ProviderOps>) -> Result<Self> {
        // SAFETY: `ops` is a valid table; it stays alive and unchanged until `Drop` below has
        // called `rust_consumer_unregister`, because the box is owned by the returned value
        // and never handed out mutably.
        to_result(unsafe { rust_consumer_register(&*ops) })?;
        // INVARIANT: Registration succeeded just above.
        Ok(Self { ops })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: `self.ops` is registered by the type invariant. When this returns the
        // consumer can no longer reach it, so the box may be freed afterwards.
        unsafe { rust_consumer_unregister(&*self.ops) };
    }
}

struct RustProvider {
    registrations: KVec<Registration>,
}

impl kernel::Module for RustProvider {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let mut id = module_parameters::instance_id.value();
        if id == 0 {
            // SAFETY: `get_random_u64` has no preconditions.
            id = unsafe { bindings::get_random_u64() };
        }
        INSTANCE_ID.store(id, Relaxed);

        let count = module_parameters::tables.value();
        if !(1..=MAX_TABLES).contains(&count) {
            pr_err!("(init) tables={} is outside 1..={}\n", count, MAX_TABLES);
            return Err(EINVAL);
        }
        let mut registrations = KVec::with_capacity(count as usize, GFP_KERNEL)?;
        // Registration is the last thing init does. With several tables a later one can still be
        // refused after earlier ones were published; that is safe because the consumer hands out
        // references only on LIVE modules, and this module stays COMING until init returns: the
        // earlier tables are unregistered (by `Drop`) before anyone could call them.
        for i in 0..count {
            let name = table_name(i)?;
            let twice = i == 0 && module_parameters::register_twice.value();
            for _ in 0..(1 + usize::from(twice)) {
                let ops = KBox::new(
                    ProviderOps {
                        abi_version: module_parameters::abi_version.value(),
                        name,
                        owner: module.as_ptr(),
                        compute,
                        hold,
                        describe,
                    },
                    GFP_KERNEL,
                )?;
                let registration = Registration::new(ops).inspect_err(|e| {
                    pr_err!(
                        "(init) rust_consumer refused table {}: errno {}\n",
                        i,
                        e.to_errno()
                    );
                })?;
                registrations.push(registration, GFP_KERNEL)?;
            }
        }
        pr_info!(
            "(init) registered {} table(s), instance {:#018x}\n",
            count,
            id
        );
        Ok(Self { registrations })
    }
}

/// Most tables one provider registers (the consumer's registry holds 8: 9 shows `ENOSPC`).
const MAX_TABLES: u32 = 9;

/// `rust_provider` for table 0, `rust_provider_N` for table N.
fn table_name(i: u32) -> Result<[u8; abi::NAME_LEN]> {
    let mut name = abi::name_buf(NAME).ok_or(EINVAL)?;
    if i > 0 {
        let suffix = [b'_', b'0' + u8::try_from(i % 10).map_err(|_| EINVAL)?];
        name.get_mut(NAME.len()..NAME.len() + 2)
            .ok_or(EINVAL)?
            .copy_from_slice(&suffix);
    }
    Ok(name)
}

impl Drop for RustProvider {
    fn drop(&mut self) {
        let tables = self.registrations.len();
        let start = Instant::<Monotonic>::now();
        // Unregisters every table; each waits for the consumer's RCU grace period.
        self.registrations.clear();
        pr_info!(
            "(exit) unregistered {} table(s) in {} us, instance {:#018x}, {} holds completed\n",
            tables,
            start.elapsed().as_micros_ceil(),
            instance_id(),
            HOLDS_COMPLETED.load(Relaxed)
        );
    }
}
