// SPDX-License-Identifier: GPL-2.0

//! The consumer's C-facing surface: the two functions providers link against, exported as
//! `EXPORT_SYMBOL_NS_GPL(sym, "RUST_MODREF")` exports them (an `.export_symbol` entry each, read
//! by modpost). A provider must import the namespace (`MODULE_IMPORT_NS("RUST_MODREF")`, or
//! `imports_ns` in `module!`), or modpost refuses it.

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
const _: () = assert!(core::mem::offset_of!(ExportEntry<RegisterFn>, sym) == STRINGS.len());

/// An entry's strings: the license and the namespace, each NUL-terminated, padded with NULs to
/// the pointer's alignment.
const STRINGS: [u8; 16] = *b"GPL\0RUST_MODREF\0";
const _: () = assert!(STRINGS.len() % 8 == 0);

/// An entry of the `.export_symbol` section, which modpost reads to export `sym`: laid out as
/// `___EXPORT_SYMBOL` in `srctree/include/linux/export.h` lays it out. The entry's own symbol
/// is the label `__export_symbol_<sym>`; its data is the license and the namespace, each a
/// NUL-terminated string, then, 8-byte aligned, the address of `sym`. `make check` verifies
/// the result in `Module.symvers`.
#[repr(C, align(8))]
pub(crate) struct ExportEntry<F> {
    /// [`STRINGS`].
    strings: [u8; STRINGS.len()],
    sym: F,
}

/// `EXPORT_SYMBOL_NS_GPL(sym, "RUST_MODREF")`.
const fn export_ns_gpl<F>(sym: F) -> ExportEntry<F> {
    ExportEntry {
        strings: STRINGS,
        sym,
    }
}

type RegisterFn = unsafe extern "C" fn(*const ProviderOps) -> c_int;
type UnregisterFn = unsafe extern "C" fn(*const ProviderOps);

#[no_mangle]
#[link_section = ".export_symbol"]
#[allow(non_upper_case_globals, reason = "modpost looks for this exact label")]
static __export_symbol_rust_consumer_register: ExportEntry<RegisterFn> =
    export_ns_gpl(rust_consumer_register);

#[no_mangle]
#[link_section = ".export_symbol"]
#[allow(non_upper_case_globals, reason = "modpost looks for this exact label")]
static __export_symbol_rust_consumer_unregister: ExportEntry<UnregisterFn> =
    export_ns_gpl(rust_consumer_unregister);
