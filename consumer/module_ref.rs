// SPDX-License-Identifier: GPL-2.0

//! The references the consumer takes on a table's owner: `kernel::module::ModuleRef`, whose
//! `try_get` carries the rule of the kernel's `try_module_get()` documentation (the module must
//! be known to exist: direct or implied protection). Every caller says which in its `SAFETY`
//! comment: [`crate::registry::Registry::get`] (implied: the table's drain section, which the
//! owner's exit waits for when it withdraws its tables) and the benchmark's variant (b) (direct:
//! the run's own reference).

use core::ptr;
use kernel::{
    bindings,
    module::ModuleRef, //
};

/// True only in the first negative-control build (`build/negative-control/`): [`try_get`] then
/// takes no reference, so removal is not refused while calls are in flight and calls enter a
/// provider whose exit has begun. Never ship this.
pub(crate) const UNSAFE_SKIP_MODULE_GET: bool = cfg!(rust_modref_unsafe_skip_module_get);

/// A reference on a table's owner, held while its code runs (in the negative control, a
/// reference on nothing: the null module of built-in code).
pub(crate) type OwnerRef = ModuleRef;

/// [`ModuleRef::try_get`], or in the negative control no reference at all.
///
/// Returns `None` when the owner is not live: that is the caller's `ENODEV`.
///
/// # Safety
///
/// As [`ModuleRef::try_get`]: `module` must be null or known to exist until the call returns.
#[inline]
pub(crate) unsafe fn try_get(module: *mut bindings::module) -> Option<OwnerRef> {
    let module = if UNSAFE_SKIP_MODULE_GET {
        ptr::null_mut()
    } else {
        module
    };
    // SAFETY: The caller's guarantee is `ModuleRef::try_get`'s requirement (null needs none).
    unsafe { ModuleRef::try_get(module) }
}
