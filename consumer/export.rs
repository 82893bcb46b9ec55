// SPDX-License-Identifier: GPL-2.0

//! The consumer's C-facing surface: the two functions providers link against, exported as
//! `EXPORT_SYMBOL_GPL` would export them.

use kernel::ffi::c_int;

use crate::{
    abi::{
        self,
        ProviderOps, //
    },
    registry::Registry,
};

/// The exported registration entry point (see `abi::RegisterFn`).
///
/// # Safety
///
/// `ops` must satisfy the [`ProviderOps`] contract until [`rust_consumer_unregister`] returns.
#[no_mangle]
unsafe extern "C" fn rust_consumer_register(ops: *const ProviderOps) -> c_int {
    // SAFETY: The caller guarantees the contract `register` requires (see above).
    match unsafe { Registry::global().register(ops) } {
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
