// SPDX-License-Identifier: GPL-2.0

//! SRCU-fast: sleepable read-side sections whose entry and exit are one per-CPU increment each,
//! with no memory barrier (`srcu_read_lock_fast()` / `srcu_read_unlock_fast()` in
//! `srctree/include/linux/srcu.h`). 7.3's `kernel::sync::Srcu` has only the classic flavour,
//! whose entry and exit are out-of-line C functions with an `smp_mb()` each.
//!
//! The read side here is C's, line by line: `__srcu_read_lock_fast()` reads the structure's
//! current counter pair (`srcu_ctrp`) and increments its `srcu_locks` on this CPU;
//! `__srcu_read_unlock_fast()` increments `srcu_unlocks` of the same pair. Each increment is a
//! single instruction and hence an implicit RCU reader, which is what lets the update side
//! (`synchronize_srcu_expedited()`, C's) order them with RCU instead of read-side barriers. The
//! debug checks C makes are made too: the reader-flavour check (`CONFIG_PROVE_RCU`) and the
//! lockdep annotations (`CONFIG_DEBUG_LOCK_ALLOC`), so lockdep still sees a wait for the drain
//! inside the drain.

use core::{
    ptr,
    sync::atomic::{
        compiler_fence,
        Ordering, //
    },
};
use kernel::{
    bindings,
    error::to_result,
    prelude::*,
    sync::LockClassKey,
    types::{
        NotThreadSafe,
        Opaque, //
    },
};

use crate::percpu::this_cpu_add;

/// C's `SRCU_READ_FLAVOR_FAST`, the reader flavour the structure is initialised for.
#[cfg(CONFIG_PROVE_RCU)]
const FLAVOR_FAST: kernel::ffi::c_int = bindings::SRCU_READ_FLAVOR_FAST as kernel::ffi::c_int;

/// The code address lockdep reports for a read-side section: [`SrcuFast::read_lock`]'s.
#[cfg(CONFIG_DEBUG_LOCK_ALLOC)]
fn lockdep_ip() -> kernel::ffi::c_ulong {
    SrcuFast::read_lock as fn(&SrcuFast) -> Guard<'_> as usize as kernel::ffi::c_ulong
}

/// Creates an [`SrcuFast`] initialiser with the given name and a new lock class.
macro_rules! new_srcu_fast {
    ($name:literal) => {
        $crate::srcu_fast::SrcuFast::new(kernel::c_str!($name), kernel::static_lock_class!())
    };
}
pub(crate) use new_srcu_fast;

/// An SRCU structure initialised for SRCU-fast readers only.
///
/// # Invariants
///
/// `inner` is a `struct srcu_struct` initialised by `__init_srcu_struct_fast()` (Tree SRCU),
/// pinned, and valid until the pinned drop cleans it up. Only the SRCU-fast read side is used
/// on it.
#[pin_data(PinnedDrop)]
pub(crate) struct SrcuFast {
    #[pin]
    inner: Opaque<bindings::srcu_struct>,
}

// SAFETY: An `srcu_struct` may be used from any thread: its state is per-CPU counters and
// locks of its own, which the C API handles for concurrent callers.
unsafe impl Send for SrcuFast {}
// SAFETY: As above: every operation on a shared `SrcuFast` is a C SRCU operation meant to be
// called concurrently (or this file's copy of the read side, which is per-CPU).
unsafe impl Sync for SrcuFast {}

impl SrcuFast {
    /// `init_srcu_struct_fast()`.
    pub(crate) fn new(
        name: &'static CStr,
        key: Pin<&'static LockClassKey>,
    ) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            // INVARIANT: On success the C initialiser leaves a valid SRCU-fast structure, which
            // stays pinned until `PinnedDrop` runs.
            inner <- Opaque::try_ffi_init(|p: *mut bindings::srcu_struct| {
                // SAFETY: `p` is valid uninitialised memory for a `srcu_struct`; `name` and
                // `key` are static. (`init_srcu_struct_fast()` takes them only with lockdep.)
                to_result(unsafe {
                    #[cfg(CONFIG_DEBUG_LOCK_ALLOC)]
                    let ret =
                        bindings::__init_srcu_struct_fast(p, name.as_char_ptr(), key.as_ptr());
                    #[cfg(not(CONFIG_DEBUG_LOCK_ALLOC))]
                    let ret = {
                        let _ = (name, key);
                        bindings::init_srcu_struct_fast(p)
                    };
                    ret
                })
            }),
        })
    }

    /// The `struct srcu_struct`: `Opaque::get` without its out-of-line call (the kernel crate
    /// shares that generic, so it is not inlined here; this is the read side's hot path).
    #[inline(always)]
    fn as_ptr(&self) -> *mut bindings::srcu_struct {
        // `Opaque<T>` is `repr(transparent)` over `UnsafeCell<MaybeUninit<T>>`, so its address
        // is the `srcu_struct`'s, and writing through it is allowed (interior mutability).
        ptr::from_ref(&self.inner)
            .cast::<bindings::srcu_struct>()
            .cast_mut()
    }

    /// `srcu_read_lock_fast()`: enters a read-side section, which lasts until the guard drops.
    /// The section may sleep.
    #[inline(always)]
    pub(crate) fn read_lock(&self) -> Guard<'_> {
        let ssp = self.as_ptr();
        self.check_flavor();
        // SAFETY: `ssp` is valid (type invariant); `srcu_ctrp` is written by the grace-period
        // machinery with `WRITE_ONCE`, and this volatile read is C's `READ_ONCE`.
        let scp = unsafe { ptr::addr_of!((*ssp).srcu_ctrp).read_volatile() };
        // SAFETY: `scp` points into the structure's per-CPU counters (`srcu_ctrs[]`), which live
        // as long as the structure; `srcu_locks` is written only by per-CPU increments and read
        // atomically by the update side.
        unsafe { this_cpu_add(ptr::addr_of_mut!((*scp).srcu_locks.counter).cast(), 1) };
        // C's `barrier()`: the section does not leak upwards.
        compiler_fence(Ordering::SeqCst);
        self.lockdep_acquire();
        // INVARIANT: `scp` was returned by the read side we just entered on `self`.
        Guard {
            srcu: self,
            scp,
            _not_send: NotThreadSafe,
        }
    }

    /// `srcu_check_read_flavor(ssp, SRCU_READ_FLAVOR_FAST)`: only `CONFIG_PROVE_RCU` checks.
    #[inline(always)]
    fn check_flavor(&self) {
        #[cfg(CONFIG_PROVE_RCU)]
        // SAFETY: `self` is a valid SRCU-fast structure (type invariant).
        unsafe {
            bindings::__srcu_check_read_flavor(self.as_ptr(), FLAVOR_FAST)
        };
    }

    /// `rcu_try_lock_acquire(&ssp->dep_map)` (a recursive-read trylock, as C's read side).
    #[inline(always)]
    fn lockdep_acquire(&self) {
        #[cfg(CONFIG_DEBUG_LOCK_ALLOC)]
        // SAFETY: `dep_map` was initialised with the structure and lives as long as it (type
        // invariant).
        unsafe {
            bindings::lock_acquire(
                ptr::addr_of_mut!((*self.as_ptr()).dep_map),
                0,
                1,
                2,
                0,
                ptr::null_mut(),
                lockdep_ip(),
            )
        };
    }

    /// `srcu_lock_release(&ssp->dep_map)`, pairing [`SrcuFast::lockdep_acquire`].
    #[inline(always)]
    fn lockdep_release(&self) {
        #[cfg(CONFIG_DEBUG_LOCK_ALLOC)]
        // SAFETY: As in `lockdep_acquire`.
        unsafe {
            bindings::lock_release(ptr::addr_of_mut!((*self.as_ptr()).dep_map), lockdep_ip())
        };
    }

    /// `synchronize_srcu_expedited()`: waits until every read-side section that began before
    /// the call has ended. Must not be called inside a read-side section of `self`.
    pub(crate) fn synchronize_expedited(&self) {
        // SAFETY: `self.inner` is valid (type invariant); process context (callers).
        unsafe { bindings::synchronize_srcu_expedited(self.as_ptr()) };
    }
}

#[pinned_drop]
impl PinnedDrop for SrcuFast {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: Valid and pinned (type invariant), and no reader is left: a `Guard` borrows
        // `self`, so none can outlive it (a leaked guard would make this wait forever, as with
        // `kernel::sync::Srcu`).
        unsafe { bindings::cleanup_srcu_struct(self.as_ptr()) };
    }
}

/// A read-side section of an [`SrcuFast`]; `srcu_read_unlock_fast()` when dropped.
///
/// # Invariants
///
/// `scp` is the counter pair returned by the read side that made this guard on `srcu`. The
/// guard stays on the task that made it (`NotThreadSafe`), as SRCU-fast requires.
pub(crate) struct Guard<'a> {
    srcu: &'a SrcuFast,
    scp: *mut bindings::srcu_ctr,
    _not_send: NotThreadSafe,
}

impl Drop for Guard<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.srcu.check_flavor();
        self.srcu.lockdep_release();
        // C's `barrier()`: the section does not leak downwards.
        compiler_fence(Ordering::SeqCst);
        // SAFETY: `scp` is the pair this section counted itself in (type invariant), inside the
        // structure's per-CPU counters, which outlive the guard.
        unsafe {
            this_cpu_add(
                ptr::addr_of_mut!((*self.scp).srcu_unlocks.counter).cast(),
                1,
            )
        };
    }
}
