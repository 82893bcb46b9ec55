// SPDX-License-Identifier: GPL-2.0

//! The module reference guard: the only place that calls `try_module_get` and `module_put`.
//!
//! The rule (`try_module_get()` in `srctree/include/linux/module.h`): `try_module_get` is only
//! safe on a module that is *known to exist* for the duration of the call, by **direct
//! protection** (the caller already holds a reference) or **implied protection** (the caller
//! holds something the module's exit path must also wait for). [`ModuleRef::try_get`] makes
//! every caller say which, in its `// SAFETY:` comment. The callers are
//! [`crate::registry::Registry::get`] (implied: the table's drain guard, which the provider's
//! exit waits for when it withdraws its tables) and the benchmark's variant (b) (direct: the
//! run's own reference).

use core::ptr;
use kernel::bindings;

/// True only in the first negative-control build (`build/negative-control/`): [`ModuleRef`] then
/// takes no reference, so removal is not refused while calls are in flight and calls enter a
/// provider whose exit has begun. Never ship this.
pub(crate) const UNSAFE_SKIP_MODULE_GET: bool = cfg!(rust_modref_unsafe_skip_module_get);

/// A counted reference on a module: `try_module_get` when made, `module_put` when dropped.
///
/// While a [`ModuleRef`] exists the module cannot begin unloading: `delete_module` refuses a
/// module whose refcount is not zero ("in use"), so its exit does not run and its code, data and
/// `struct module` stay in memory. Dropping the value is the only way to release the reference,
/// so an early return or a `?` cannot leak it. (`core::mem::forget` can; that is a leak that
/// keeps the module loaded, not unsoundness.)
///
/// # Invariants
///
/// `module` is null (a built-in owner, or the negative-control build) or a module on which this
/// value holds one reference taken by `try_module_get`.
pub(crate) struct ModuleRef {
    module: *mut bindings::module,
}

impl ModuleRef {
    /// Takes a reference on `module` unless it is being removed or still initialising.
    ///
    /// Returns `None` when the module is not `LIVE`: that is the caller's `ENODEV`.
    ///
    /// # Safety
    ///
    /// `module` must be null or point to a `struct module` that is known to stay allocated until
    /// the returned value (if any) is dropped and this call has returned, by *direct protection*
    /// (the caller already holds a reference) or *implied protection* (the caller holds
    /// something the module's exit path must also wait for).
    #[inline]
    pub(crate) unsafe fn try_get(module: *mut bindings::module) -> Option<Self> {
        if UNSAFE_SKIP_MODULE_GET {
            // INVARIANT: A null module holds no reference.
            return Some(Self {
                module: ptr::null_mut(),
            });
        }
        // SAFETY: The caller guarantees `module` is null or alive for this call.
        if !unsafe { bindings::try_module_get(module) } {
            return None;
        }
        // INVARIANT: We hold the reference just taken.
        let this = Self { module };
        // Only hand out references on LIVE modules. `try_module_get` refuses only GOING: a
        // COMING module is still running its init, and if that init fails the loader frees it
        // after an RCU grace period without waiting for references.
        if module.is_null() {
            return Some(this);
        }
        // SAFETY: We hold a reference (direct protection), so `*module` is alive. The loader
        // changes `state` with plain stores under `module_mutex`, which we do not take; C's
        // `module_is_live()` reads it with a plain load for the same purpose. The volatile read
        // is the kernel's `READ_ONCE`: one aligned 4-byte load that the compiler may neither
        // tear, repeat nor cache. Either answer is safe: LIVE keeps the reference, anything else
        // returns it (while our caller's protection still covers the `module_put`).
        let state = unsafe { ptr::addr_of!((*module).state).read_volatile() };
        if state != bindings::module_state_MODULE_STATE_LIVE {
            return None; // `this` is dropped: module_put while still protected.
        }
        Some(this)
    }
}

impl Drop for ModuleRef {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: By the type invariant we hold a reference on `self.module` (or it is null,
        // which `module_put` ignores); it is released exactly once, here.
        unsafe { bindings::module_put(self.module) };
    }
}
