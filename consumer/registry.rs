// SPDX-License-Identifier: GPL-2.0

//! The provider registry: table slots, lookup, registration, withdrawal with drain, and the
//! two functions exported to providers.
//!
//! # Why a call may use a table, and call `try_module_get` on its owner
//!
//! Each slot has its own SRCU domain, its *drain* (SRCU-fast: entering and leaving are one
//! per-CPU increment each, see `srcu_fast.rs`). A call enters the slot's drain (a read-side
//! section that may sleep) before it loads the table, and leaves it only when it has
//! released everything: the table stays in use from lookup to release. Withdrawal
//! ([`Registry::unregister`]) clears the slot and then waits for every drain section that began
//! before (`synchronize_srcu_expedited`) before it returns to the provider, who may then free
//! the table. So:
//!
//! 1. The **table** is alive for the whole call: it is only freed after withdrawal returned,
//!    and withdrawal waits for the call. This holds whenever the provider withdraws, including
//!    while it is live (configfs `rmdir`, a device going away).
//! 2. `try_module_get(table.owner)` is called inside the drain section, so the `struct module`
//!    is known to exist (**implied protection**): the owner's exit must withdraw its tables
//!    before the loader frees it, and withdrawal waits for this section.
//! 3. The **module reference** then keeps the owner's exit from starting while the call runs:
//!    `rmmod` fails fast with "in use", and the exit never runs concurrently with a call.
//!
//! Plain RCU would not do for (1): a call sleeps in the provider (`hold`), and an RCU read-side
//! section may not sleep; a grace period does not wait for a task that left its section.

use core::ptr;
use kernel::{
    bindings,
    ffi::c_int,
    new_mutex,
    prelude::*,
    sync::{
        atomic::{
            Acquire,
            Atomic,
            Relaxed,
            Release, //
        },
        Mutex, //
    },
    time::{
        delay::udelay,
        Delta, //
    },
};

use crate::{
    abi::{
        self,
        ProviderOps,
        NAME_LEN, //
    },
    call::ProviderRef,
    module_ref::ModuleRef,
    srcu_fast::{
        new_srcu_fast,
        SrcuFast, //
    },
    stats::{
        Counter,
        Stats, //
    },
    text::{
        Answer,
        BStrDisplay, //
    },
    uapi,
};
use core::fmt::Write;

/// Most tables registered at once.
pub(crate) const MAX_PROVIDERS: usize = 8;
const _: () = assert!(MAX_PROVIDERS <= 32);

/// Upper bound of the `race_window_us` test hook.
pub(crate) const RACE_WINDOW_MAX_US: u32 = 1000;

/// True only in the second negative-control build (`build/negative-control-drain/`):
/// withdrawal waits for an RCU grace period only, as this consumer did before tables had a
/// lifetime of their own, not for the calls using the table. Never ship this.
pub(crate) const UNSAFE_SKIP_DRAIN: bool = cfg!(rmr_unsafe_skip_drain);

/// A registry slot.
///
/// # Invariants
///
/// - `ops` is null or points to a table that satisfies the [`ProviderOps`] contract and is
///   complete ([`ProviderOps::is_complete`]). It is written only with [`Registry::lock`] held.
///   A reader that loaded a table from `ops` inside a read-side section of `drain` may use it
///   until that section ends: withdrawal clears `ops`, then waits for every such section before
///   it returns (and only then may the provider free the table).
/// - `key` is [`key_hash`] of the name of the last table registered in the slot: a hint that
///   lets a lookup skip slots without touching their tables; the table's own name decides.
/// - `stats` is written only inside a read-side section of `drain` in which the slot's table
///   was found, so it is quiet once withdrawal's wait is over, and then moved into
///   [`Registry::retired`] before the slot can be reused.
#[pin_data]
pub(crate) struct Slot {
    #[pin]
    drain: SrcuFast,
    ops: Atomic<*const ProviderOps>,
    key: Atomic<u64>,
    pub(crate) stats: Stats,
}

impl Slot {
    fn new() -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            drain <- new_srcu_fast!("rust_consumer_drain"),
            ops: Atomic::new(ptr::null()),
            key: Atomic::new(0),
            stats: Stats::new()?,
        })
    }

    #[inline]
    fn may_be(&self, hash: u64) -> bool {
        self.key.load(Relaxed) == hash
    }
}

/// The slot hint of a name: its four words folded into one, so that a lookup skipping a slot
/// loads one word (one load is also one out-of-line C helper call on kernels without
/// `CONFIG_RUST_INLINE_HELPERS`, where four cost a measurable 200 ns under TCG). Two names may
/// share a hint; the table's own name decides.
#[inline]
fn key_hash(name: &[u8; NAME_LEN]) -> u64 {
    let w = abi::name_words(name);
    w[0] ^ w[1].rotate_left(16) ^ w[2].rotate_left(32) ^ w[3].rotate_left(48)
}

/// The registry: lock-free lookups, writers serialised by `lock`.
#[pin_data(PinnedDrop)]
pub(crate) struct Registry {
    #[pin]
    slots: [Slot; MAX_PROVIDERS],
    /// Bit `i` set while slot `i` is in use: from registration until withdrawal has drained it
    /// and moved its counters into `retired`.
    #[pin]
    lock: Mutex<u32>,
    /// Bit `i` set: slot `i` holds a table. Written only with `lock` held; lookups use it to
    /// skip empty slots (a stale bit costs one slot load; the slot's `ops` decides).
    ///
    /// 64 bits although 8 are used: on 7.3 a module's `Atomic<u32>` operations call the kernel
    /// crate's out-of-line `AtomicRepr<i32>::as_ptr`, `Atomic<u64>` ones compile to a `mov`.
    registered: Atomic<u64>,
    /// Counts of withdrawn tables, and of calls that named no registered table.
    retired: Stats,
    /// Test hook (0 but in the selftest): busy-wait between finding a table and taking the
    /// reference on its owner, to widen the window a withdrawal races with.
    race_window_us: u32,
}

/// The registry of the loaded module, for the exported functions and the device.
///
/// # Invariants
///
/// Null, or the address of the module's pinned [`Registry`]: set by [`Registry::publish`] during
/// init, before the device is registered and before any provider can link against us; reset in
/// the registry's drop, after the device is gone and when no provider is loaded.
static REGISTRY: Atomic<*const Registry> = Atomic::new(ptr::null());

impl Registry {
    pub(crate) fn new(race_window_us: u32) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            slots <- pin_init::pin_init_array_from_fn(|_| Slot::new()),
            lock <- new_mutex!(0),
            registered: Atomic::new(0),
            retired: Stats::new()?,
            race_window_us: race_window_us.min(RACE_WINDOW_MAX_US),
        })
    }

    /// Makes `self` the registry [`Registry::global`] returns.
    pub(crate) fn publish(self: Pin<&Self>) {
        // INVARIANT: `self` is pinned, and it is the module's registry (called once, in init).
        REGISTRY.store(ptr::from_ref(self.get_ref()), Release);
    }

    /// The registry of the loaded module.
    #[inline]
    pub(crate) fn global() -> &'static Registry {
        // SAFETY: By the `REGISTRY` invariant the pointer is null or the pinned registry, which
        // lives until the module is dropped. It is never null here: the callers are the
        // exported functions (callable only by modules linked against us, which the loader
        // admits once our init has returned and which keep us loaded) and the device's file
        // operations (the device exists only between `publish` and the registry's drop).
        unsafe { &*REGISTRY.load(Acquire) }
    }

    /// Finds the table called `key`, enters its drain and takes a reference on its owner.
    ///
    /// Fails with `ENODEV` when no such table is registered or its owner is going away.
    #[inline]
    pub(crate) fn get(&'static self, key: &[u8; NAME_LEN]) -> Result<ProviderRef> {
        let hash = key_hash(key);
        let mut registered = self.registered.load(Acquire);
        while registered != 0 {
            let i = registered.trailing_zeros() as usize;
            registered &= registered - 1;
            let Some(slot) = self.slots.get(i) else { break };
            if !slot.may_be(hash) {
                continue;
            }
            let drain = slot.drain.read_lock();
            let ops = slot.ops.load(Acquire);
            if ops.is_null() {
                continue;
            }
            // SAFETY: Loaded inside a read-side section of the slot's drain, which `drain`
            // keeps open until it is dropped: by the `Slot` invariant the table is valid until
            // then, and `ProviderRef` keeps `drain` for as long as it uses the table.
            let table = unsafe { &*ops };
            if !table.has_key(key) {
                continue; // The slot was reused for another name after we read its key.
            }
            if self.race_window_us > 0 {
                udelay(Delta::from_micros(i64::from(self.race_window_us)));
            }
            // SAFETY: Implied protection: we are inside the drain section in which the table
            // was found; the owner's exit must withdraw the table before its module is freed,
            // and withdrawal waits for this section (see the module docs).
            let Some(module_ref) = (unsafe { ModuleRef::try_get(table.owner) }) else {
                slot.stats.inc(Counter::CallsEnodev);
                return Err(ENODEV);
            };
            slot.stats.inc(Counter::RefsTaken);
            return Ok(ProviderRef::new(table, slot, module_ref, drain));
        }
        self.retired.inc(Counter::CallsEnodev);
        Err(ENODEV)
    }

    fn register(&self, ops: *const ProviderOps) -> Result {
        if ops.is_null() {
            return Err(EINVAL);
        }
        // SAFETY: The caller of `rust_consumer_register` guarantees the table is valid.
        let table = unsafe { &*ops };
        if table.abi_version != abi::ABI_VERSION {
            pr_err!(
                "refusing provider: ABI version {} (this consumer speaks {})\n",
                table.abi_version,
                abi::ABI_VERSION
            );
            return Err(EINVAL);
        }
        if !table.is_complete() {
            pr_err!("refusing provider: NULL owner or NULL entry in its table\n");
            return Err(EINVAL);
        }
        if table.name().is_empty() || !table.is_nul_padded() {
            return Err(EINVAL);
        }
        let mut in_use = self.lock.lock();
        for slot in &self.slots {
            let cur = slot.ops.load(Relaxed);
            // SAFETY: A table stays valid while it is in a slot, and we hold the lock that
            // keeps it there.
            if !cur.is_null() && unsafe { (*cur).has_key(&table.name) } {
                return Err(EEXIST);
            }
        }
        let i = (0..MAX_PROVIDERS)
            .find(|i| *in_use & (1 << i) == 0)
            .ok_or(ENOSPC)?;
        let slot = self.slots.get(i).ok_or(ENOSPC)?;
        *in_use |= 1 << i;
        slot.key.store(key_hash(&table.name), Relaxed);
        // INVARIANT: `ops` satisfies the contract (caller), is complete (checked above), and we
        // hold the lock. The slot's counters are zero: withdrawal drained them before it gave
        // the slot back.
        slot.ops.store(ops, Release);
        self.registered
            .store(self.registered.load(Relaxed) | (1 << i), Release);
        Ok(())
    }

    fn unregister(&self, ops: *const ProviderOps) {
        let found = {
            let _in_use = self.lock.lock();
            let found = self
                .slots
                .iter()
                .enumerate()
                .find(|(_, s)| ptr::eq(s.ops.load(Relaxed), ops));
            if let Some((i, slot)) = found {
                self.registered
                    .store(self.registered.load(Relaxed) & !(1 << i), Release);
                // INVARIANT: Cleared under the lock; the wait for the readers follows.
                slot.ops.store(ptr::null(), Release);
            }
            found
        };
        let Some((i, slot)) = found else { return };
        if UNSAFE_SKIP_DRAIN {
            // SAFETY: Process context (the contract of `rust_consumer_unregister`), outside any
            // RCU read-side critical section.
            unsafe { bindings::synchronize_rcu_expedited() };
        } else {
            // The drain: every call that may have found the table has released it after this.
            // Expedited: withdrawal is rare and someone (rmdir, rmmod) waits for it.
            slot.drain.synchronize_expedited();
        }
        let mut in_use = self.lock.lock();
        // Nobody writes the slot's counters any more (`Slot` invariant), so moving them is exact.
        slot.stats.drain_into(&self.retired);
        *in_use &= !(1 << i);
    }

    /// Writes one line per registered table.
    pub(crate) fn list(&self, out: &mut Answer) -> core::fmt::Result {
        let _in_use = self.lock.lock();
        for slot in &self.slots {
            let ops = slot.ops.load(Relaxed);
            if !ops.is_null() {
                // SAFETY: A table stays valid while it is in a slot, and we hold the lock that
                // keeps it there.
                let name = unsafe { (*ops).name() };
                writeln!(out, "{}", BStrDisplay(name))?;
            }
        }
        Ok(())
    }

    /// Counters of the table called `name`, or the totals when `name` is empty.
    ///
    /// Fails with `ENODEV` when `name` is not registered (a name too long to be registered is
    /// not registered).
    pub(crate) fn stats(&self, name: &[u8]) -> Result<uapi::Stats> {
        let key = abi::name_buf(name).ok_or(ENODEV)?;
        // The lock keeps tables in their slots and withdrawal from moving counters meanwhile.
        let _in_use = self.lock.lock();
        let mut out = if name.is_empty() {
            Stats::sum(Iterator::chain(
                self.slots.iter().map(|s| &s.stats),
                core::iter::once(&self.retired),
            ))
        } else {
            let slot = self
                .slots
                .iter()
                .find(|s| {
                    let ops = s.ops.load(Relaxed);
                    // SAFETY: A table stays valid while it is in a slot, and we hold the lock
                    // that keeps it there.
                    !ops.is_null() && unsafe { (*ops).has_key(&key) }
                })
                .ok_or(ENODEV)?;
            Stats::sum(core::iter::once(&slot.stats))
        };
        out.providers = u64::from(self.registered.load(Relaxed).count_ones());
        Ok(out)
    }
}

#[pinned_drop]
impl PinnedDrop for Registry {
    fn drop(self: Pin<&mut Self>) {
        // INVARIANT: The device is gone and no provider is loaded (see `REGISTRY`).
        REGISTRY.store(ptr::null(), Release);
    }
}

/// The exported registration entry point (see `abi::RegisterFn`).
///
/// # Safety
///
/// `ops` must satisfy the [`ProviderOps`] contract until [`rust_consumer_unregister`] returns.
#[no_mangle]
unsafe extern "C" fn rust_consumer_register(ops: *const ProviderOps) -> c_int {
    match Registry::global().register(ops) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// The exported withdrawal entry point (see `abi::UnregisterFn`): safe to call at any time
/// from process context; returns once no call uses `ops` and none can start on it.
///
/// # Safety
///
/// `ops` must have been passed to [`rust_consumer_register`] by the caller.
#[no_mangle]
unsafe extern "C" fn rust_consumer_unregister(ops: *const ProviderOps) {
    Registry::global().unregister(ops)
}

// The exported functions have the ABI's signatures.
const _: abi::RegisterFn = rust_consumer_register;
const _: abi::UnregisterFn = rust_consumer_unregister;

/// Exports a function like `EXPORT_SYMBOL_GPL(sym)`: the `.export_symbol` entry modpost reads,
/// laid out as `___EXPORT_SYMBOL` in `srctree/include/linux/export.h` does (label, license,
/// namespace, 8-byte aligned pointer to the symbol). `make check` verifies the result in
/// `Module.symvers`.
macro_rules! export_symbol_gpl {
    ($sym:ident) => {
        core::arch::global_asm!(
            ".section \".export_symbol\",\"a\"",
            concat!("__export_symbol_", stringify!($sym), ":"),
            ".asciz \"GPL\"",
            ".asciz \"\"",
            ".balign 8",
            concat!(".quad ", stringify!($sym)),
            ".previous",
        );
    };
}
export_symbol_gpl!(rust_consumer_register);
export_symbol_gpl!(rust_consumer_unregister);
