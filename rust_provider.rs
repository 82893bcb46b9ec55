// SPDX-License-Identifier: GPL-2.0

//! A provider module that registers ops tables, owned by itself, with `rust_consumer`.
//!
//! At load it picks a random instance id and registers `tables` tables (`rust_provider`,
//! `rust_provider_1`, ...), then its configfs subsystem (last: once it exists nothing in init may
//! fail). While it is loaded, userspace adds and
//! withdraws tables of its own through configfs, as a driver registers ops when a device is
//! bound and withdraws them when it goes away:
//!
//! ```sh
//! mkdir /sys/kernel/config/rust_provider/foo    # registers a table called foo
//! rmdir /sys/kernel/config/rust_provider/foo    # withdraws it; returns once its calls drained
//! ```
//!
//! A table is a heap allocation ([`Registration`] owns it). `rust_consumer_unregister` returns
//! only once no call uses the table and none can start on it, so the table is freed right after,
//! whether the module is live or exiting. The module's exit withdraws every table left.
//!
//! The provider never counts its callers: every call holds a reference on this module while it
//! runs code from a table, so `rmmod rust_provider` fails with `EWOULDBLOCK` ("in use") while a
//! call is in flight, and no call runs once the exit has begun. (A configfs table also pins the
//! module, as configfs does for every item: `rmdir` the tables before `rmmod`.)
//!
//! ```sh
//! insmod rust_consumer.ko
//! insmod rust_provider.ko                  # instance_id=N to fix the id, hold_max_us=N to cap holds
//! exec 3<>/dev/rust_consumer
//! echo 'describe rust_provider' >&3; cat <&3
//! ```

use kernel::{
    bindings, configfs,
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
#[path = "provider/tables.rs"]
mod tables;

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
            description: "Ops tables to register at load: rust_provider, rust_provider_1, ... (0-9)",
        },
        abi_version: u32 {
            default: 1,
            description: "ABI version to register with (test hook: anything but 1 is refused)",
        },
        register_twice: bool {
            default: false,
            description: "Test hook: register the first table's name twice (the consumer refuses)",
        },
        bad_table: u32 {
            default: 0,
            description: "Test hook: 1 registers a table with a NULL owner, 2 one without compute \
                (the consumer refuses both)",
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

/// A new table called `name`, owned by this module, with this module's ops.
fn new_table(name: [u8; abi::NAME_LEN], owner: *mut bindings::module) -> Result<KBox<ProviderOps>> {
    let mut ops = ProviderOps {
        abi_version: module_parameters::abi_version.value(),
        name,
        owner,
        compute: Some(compute),
        hold: Some(hold),
        describe: Some(describe),
    };
    match module_parameters::bad_table.value() {
        1 => ops.owner = core::ptr::null_mut(),
        2 => ops.compute = None,
        _ => {}
    }
    Ok(KBox::new(ops, GFP_KERNEL)?)
}

/// An ops table registered with the consumer; withdraws it when dropped.
///
/// # Invariants
///
/// `ops` is registered with the consumer for the whole life of this value.
pub(crate) struct Registration {
    ops: KBox<ProviderOps>,
}

impl Registration {
    pub(crate) fn new(ops: KBox<ProviderOps>) -> Result<Self> {
        // SAFETY: `ops` is a valid table; it stays alive and unchanged until `Drop` below has
        // called `rust_consumer_unregister`, because the box is owned by the returned value
        // and never handed out mutably. On failure the consumer does not keep it.
        to_result(unsafe { rust_consumer_register(&*ops) })?;
        // INVARIANT: Registration succeeded just above.
        Ok(Self { ops })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: `self.ops` is registered by the type invariant. When this returns no call
        // uses it and none can start on it, so the box may be freed right after (`ops` is
        // dropped once this function returns).
        unsafe { rust_consumer_unregister(&*self.ops) };
    }
}

#[pin_data(PinnedDrop)]
struct RustProvider {
    /// `/sys/kernel/config/rust_provider/`: tables added and withdrawn while loaded.
    #[pin]
    _configfs: configfs::Subsystem<tables::Tables>,
    /// The tables registered at load (`tables=`).
    registrations: KVec<Registration>,
}

impl kernel::InPlaceModule for RustProvider {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        let mut id = module_parameters::instance_id.value();
        if id == 0 {
            // SAFETY: `get_random_u64` has no preconditions.
            id = unsafe { bindings::get_random_u64() };
        }
        INSTANCE_ID.store(id, Relaxed);
        let owner = module.as_ptr();
        try_pin_init!(Self {
            registrations: register_at_load(owner)?,
            // Last: once the configfs directory exists nothing in init may fail.
            _configfs <- configfs::Subsystem::new(c"rust_provider", tables::item_type(), tables::Tables::new(owner)),
            _: {
                pr_info!(
                    "(init) registered {} table(s), instance {:#018x}\n",
                    registrations.len(),
                    id
                );
            },
        })
    }
}

/// Registers the `tables=` tables.
///
/// With several tables a later one can still be refused after earlier ones were published; that
/// is safe because the consumer hands out references only on LIVE modules, and this module
/// stays COMING until init returns: the earlier tables are withdrawn (by `Drop`) before anyone
/// could call them.
fn register_at_load(owner: *mut bindings::module) -> Result<KVec<Registration>> {
    let count = module_parameters::tables.value();
    if count > MAX_TABLES {
        pr_err!("(init) tables={} is outside 0..={}\n", count, MAX_TABLES);
        return Err(EINVAL);
    }
    let mut registrations = KVec::with_capacity(count as usize, GFP_KERNEL)?;
    for i in 0..count {
        let name = table_name(i)?;
        let twice = i == 0 && module_parameters::register_twice.value();
        for _ in 0..(1 + usize::from(twice)) {
            let registration = Registration::new(new_table(name, owner)?).inspect_err(|e| {
                pr_err!(
                    "(init) rust_consumer refused table {}: errno {}\n",
                    i,
                    e.to_errno()
                );
            })?;
            registrations.push(registration, GFP_KERNEL)?;
        }
    }
    Ok(registrations)
}

/// Most tables registered at load (the consumer's registry holds 8: 9 shows `ENOSPC`).
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

#[pinned_drop]
impl PinnedDrop for RustProvider {
    fn drop(self: Pin<&mut Self>) {
        let this = self.project();
        let tables = this.registrations.len();
        let start = Instant::<Monotonic>::now();
        // Withdraws every table registered at load; each returns once its calls drained. (No
        // configfs table is left: each pins this module until its rmdir.)
        this.registrations.clear();
        pr_info!(
            "(exit) withdrew {} table(s) in {} us, instance {:#018x}, {} holds completed\n",
            tables,
            start.elapsed().as_micros_ceil(),
            instance_id(),
            HOLDS_COMPLETED.load(Relaxed)
        );
    }
}
