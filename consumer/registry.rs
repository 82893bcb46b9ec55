// SPDX-License-Identifier: GPL-2.0

//! The table registry: slots, lookup, registration, and withdrawal with its drain.
//!
//! Each slot has its own drain (an SRCU-fast domain). A lookup enters the slot's drain before it
//! loads the table and takes the reference on its owner inside it; withdrawal clears the slot and
//! waits for every drain section that began before. Why that makes the table and the owner's
//! `struct module` safe to use: README.md, "Design and safety argument". The functions exported
//! to providers are in `export.rs`, the text formatting in `text.rs`.

use core::ptr;
use kernel::{
    bindings, new_mutex,
    prelude::*,
    sync::{
        atomic::{
            Acquire,
            Atomic,
            Relaxed,
            Release, //
        },
        LockClassKey,
        Mutex,
        SrcuFast, //
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
    call::TableRef,
    module_ref,
    stats::{
        Counter,
        Stats, //
    },
    uapi,
};

/// Most tables registered at once.
pub(crate) const MAX_TABLES: usize = 8;
const _: () = assert!(MAX_TABLES <= 32);

/// Upper bound of the `race_window_us` test hook.
pub(crate) const RACE_WINDOW_MAX_US: u32 = 1000;

/// True only in the second negative-control build (`build/negative-control-drain/`):
/// withdrawal waits for an RCU grace period only, not for the calls using the table. Never ship
/// this.
pub(crate) const UNSAFE_SKIP_DRAIN: bool = cfg!(rust_modref_unsafe_skip_drain);

/// A registry slot.
///
/// # Invariants
///
/// - `ops` is null or points to a table that satisfies the [`ProviderOps`] contract and is
///   complete ([`ProviderOps::is_complete`]). It is written only with [`Registry::in_use`] held.
///   A reader that loaded a table from `ops` inside a read-side section of `drain` may use it
///   until that section ends: withdrawal clears `ops`, then waits for every such section before
///   it returns (and only then may the provider free the table).
/// - `name_hash` is [`name_hash`] of the name of the last table registered in the slot: a hint
///   that lets a lookup skip slots without touching their tables; the table's own name decides.
/// - `stats` is written only inside a read-side section of `drain` in which the slot's table
///   was found, so it is quiet once withdrawal's wait is over, and then moved into
///   [`Registry::retired`] before the slot can be reused.
#[pin_data]
pub(crate) struct Slot {
    #[pin]
    drain: SrcuFast,
    ops: Atomic<*const ProviderOps>,
    /// The table being withdrawn from this slot, from when withdrawal clears `ops` until its
    /// drain is over; null otherwise. Written and read with [`Registry::in_use`] held.
    withdrawing: Atomic<*const ProviderOps>,
    name_hash: Atomic<u64>,
    pub(crate) stats: Stats,
}

/// The lock classes of the slots' drains, one each: an op of one table may withdraw another,
/// which waits for that table's drain inside the first one's, and lockdep must see two classes
/// there, not one class taken recursively (it would report that and switch itself off).
static DRAIN_CLASSES: [LockClassKey; MAX_TABLES] =
    // SAFETY: A static, pinned where it is and never dropped.
    [const { unsafe { LockClassKey::new_static() } }; MAX_TABLES];

impl Slot {
    fn new(i: usize) -> impl PinInit<Self, Error> {
        let class = &DRAIN_CLASSES[i.min(MAX_TABLES - 1)];
        try_pin_init!(Self {
            drain <- SrcuFast::new(c"rust_consumer_drain", Pin::static_ref(class)),
            ops: Atomic::new(ptr::null()),
            withdrawing: Atomic::new(ptr::null()),
            name_hash: Atomic::new(0),
            stats: Stats::new()?,
        })
    }

    #[inline]
    fn may_be(&self, hash: u64) -> bool {
        self.name_hash.load(Relaxed) == hash
    }
}

/// The slot hint of a name: its four words folded into one, so that a lookup skipping a slot
/// loads one word (one load is also one out-of-line C helper call on kernels without
/// `CONFIG_RUST_INLINE_HELPERS`). Two names may share a hint; the table's own name decides.
#[inline]
fn name_hash(name: &[u8; NAME_LEN]) -> u64 {
    let w = abi::name_words(name);
    w[0] ^ w[1].rotate_left(16) ^ w[2].rotate_left(32) ^ w[3].rotate_left(48)
}

/// The registry: lock-free lookups, writers serialised by `in_use`.
#[pin_data(PinnedDrop)]
pub(crate) struct Registry {
    #[pin]
    slots: [Slot; MAX_TABLES],
    /// Bit `i` set while slot `i` is in use: from registration until withdrawal has drained it
    /// and moved its counters into `retired`. The lock of every writer.
    #[pin]
    in_use: Mutex<u32>,
    /// Bit `i` set: slot `i` holds a table. Written only with `in_use` held; lookups use it to
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
            slots <- pin_init::pin_init_array_from_fn(Slot::new),
            in_use <- new_mutex!(0),
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

    /// The drain of slot `i`, for the KUnit tests.
    #[cfg(CONFIG_KUNIT)]
    pub(crate) fn drain(&self, i: usize) -> Option<&SrcuFast> {
        self.slots.get(i).map(|slot| &slot.drain)
    }

    /// Finds the table called `name`, enters its drain and takes a reference on its owner.
    ///
    /// Fails with `ENODEV` when no such table is registered or its owner is going away.
    #[inline]
    pub(crate) fn get(&'static self, name: &[u8; NAME_LEN]) -> Result<TableRef> {
        let hash = name_hash(name);
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
            // then, and `TableRef` keeps `drain` for as long as it uses the table.
            let table = unsafe { &*ops };
            if !table.is_named(name) {
                continue; // The slot was reused for another name after we read its hash.
            }
            if self.race_window_us > 0 {
                udelay(Delta::from_micros(i64::from(self.race_window_us)));
            }
            // SAFETY: Implied protection: we are inside the drain section in which the table
            // was found; the owner's exit must withdraw the table before its module is freed,
            // and withdrawal waits for this section.
            let Some(module_ref) = (unsafe { module_ref::try_get(table.owner) }) else {
                slot.stats.inc(Counter::CallsEnodev);
                return Err(ENODEV);
            };
            slot.stats.inc(Counter::RefsTaken);
            return Ok(TableRef::new(table, slot, module_ref, drain));
        }
        self.retired.inc(Counter::CallsEnodev);
        Err(ENODEV)
    }

    /// Registers the table `ops` under its name; see `abi::RegisterFn` for the errors.
    ///
    /// # Safety
    ///
    /// `ops` must be null or satisfy the [`ProviderOps`] contract until [`Self::unregister`]
    /// of it returns.
    pub(crate) unsafe fn register(&self, ops: *const ProviderOps) -> Result {
        if ops.is_null() {
            return Err(EINVAL);
        }
        // SAFETY: Not null, so a valid table (the caller's guarantee).
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
        // A name must be addressable through the text interface, whose words are separated by
        // whitespace and whose `list` prints one name a line: printable ASCII, no space.
        if table.name().is_empty()
            || !table.is_nul_padded()
            || !table.name().iter().all(u8::is_ascii_graphic)
        {
            return Err(EINVAL);
        }
        let mut in_use = self.in_use.lock();
        for slot in &self.slots {
            let cur = slot.ops.load(Relaxed);
            // SAFETY: A table stays valid while it is in a slot, and we hold the lock that
            // keeps it there.
            if !cur.is_null() && unsafe { (*cur).is_named(&table.name) } {
                return Err(EEXIST);
            }
        }
        let i = (0..MAX_TABLES)
            .find(|i| *in_use & (1 << i) == 0)
            .ok_or(ENOSPC)?;
        let slot = self.slots.get(i).ok_or(ENOSPC)?;
        *in_use |= 1 << i;
        slot.name_hash.store(name_hash(&table.name), Relaxed);
        // INVARIANT: `ops` satisfies the contract (caller), is complete (checked above), and we
        // hold the lock. The slot's counters are zero: withdrawal moved them out before it gave
        // the slot back.
        slot.ops.store(ops, Release);
        self.registered
            .store(self.registered.load(Relaxed) | (1 << i), Release);
        Ok(())
    }

    /// Withdraws the table `ops`: clears its slot, then waits for the slot's drain. A second
    /// caller withdrawing the same table meanwhile waits for the same drain; a table that is not
    /// registered (nor being withdrawn) is ignored.
    pub(crate) fn unregister(&self, ops: *const ProviderOps) {
        let found = {
            let in_use = self.in_use.lock();
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
                slot.withdrawing.store(ops, Relaxed);
            } else if let Some(slot) = self
                .slots
                .iter()
                .find(|s| ptr::eq(s.withdrawing.load(Relaxed), ops))
            {
                // Another caller is withdrawing this table right now (a provider whose remove()
                // and error path both withdraw it): returning before its drain is over would
                // let this caller free the table under a call. Wait for the same readers: every
                // section that found the table began before `ops` was cleared, so a grace
                // period that starts now waits for all of them.
                drop(in_use);
                slot.drain.synchronize_expedited();
                return;
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
        let mut in_use = self.in_use.lock();
        // SAFETY: Nobody writes the slot's counters any more: they are written only inside a
        // drain section in which the slot's table was found, and the drain is over (`Slot`
        // invariant; the slot is not reused before its bit is cleared below).
        unsafe { slot.stats.move_into(&self.retired) };
        slot.withdrawing.store(ptr::null(), Relaxed);
        *in_use &= !(1 << i);
    }

    /// The names of the registered tables, in slot order.
    pub(crate) fn names(&self) -> Names {
        let mut names = Names {
            buf: [[0; NAME_LEN]; MAX_TABLES],
            len: 0,
        };
        let _in_use = self.in_use.lock();
        for slot in &self.slots {
            let ops = slot.ops.load(Relaxed);
            if ops.is_null() {
                continue;
            }
            if let Some(dst) = names.buf.get_mut(names.len) {
                // SAFETY: A table stays valid while it is in a slot, and we hold the lock that
                // keeps it there.
                *dst = unsafe { (*ops).name };
                names.len += 1;
            }
        }
        names
    }

    /// Counters of the table called `name`, or the totals when `name` is empty.
    ///
    /// Fails with `ENODEV` when `name` is not registered (a name too long to be registered is
    /// not registered).
    pub(crate) fn stats(&self, name: &[u8]) -> Result<uapi::Stats> {
        let padded = abi::name_buf(name).ok_or(ENODEV)?;
        // The lock keeps tables in their slots and withdrawal from moving counters meanwhile.
        let _in_use = self.in_use.lock();
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
                    !ops.is_null() && unsafe { (*ops).is_named(&padded) }
                })
                .ok_or(ENODEV)?;
            Stats::sum(core::iter::once(&slot.stats))
        };
        out.tables = u64::from(self.registered.load(Relaxed).count_ones());
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

/// The names [`Registry::names`] found: NUL-padded, at most [`MAX_TABLES`].
pub(crate) struct Names {
    buf: [[u8; NAME_LEN]; MAX_TABLES],
    len: usize,
}

impl Names {
    /// How many names there are.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Each name without its NUL padding.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.buf.iter().take(self.len).map(abi::name_bytes)
    }
}
