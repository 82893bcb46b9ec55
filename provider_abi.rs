// SPDX-License-Identifier: GPL-2.0

//! The contract between `rust_provider` and `rust_consumer`: an ops table and its registration.
//!
//! # Glossary (one word, one thing; README.md links here)
//!
//! - **table**: a [`ProviderOps`], one provider's ops under one name; a provider may have several.
//! - **owner**: the module whose code the table's entries point to (`ProviderOps::owner`).
//! - **drain**: the SRCU domain of a registry slot; a call is inside it while it uses a table.
//! - **withdrawal**: `rust_consumer_unregister`; returns once the drain has no call left on it.
//! - **instance**: one load of a provider module, named by its random `instance_id`.
//!
//! Both crates include this file (`#[path = "provider_abi.rs"] mod abi;`). The two modules are
//! compiled separately, so nothing here may depend on Rust layout: the table is `#[repr(C)]` and
//! its entries are `extern "C"` function pointers. Any change to [`ProviderOps`] bumps
//! [`ABI_VERSION`]; the consumer refuses a table whose version differs. The values on the wire
//! (names, `hold`'s bound, `compute`'s answer) are defined once, in `consumer_uapi.rs`.
//!
//! The dependency goes provider -> consumer only: the provider imports
//! `rust_consumer_register` and `rust_consumer_unregister`, exported GPL-only in the symbol
//! namespace `RUST_MODREF` (a provider declares `imports_ns: ["RUST_MODREF"]` in `module!`, or
//! `MODULE_IMPORT_NS("RUST_MODREF")` in C; modpost refuses one that does not), the consumer
//! imports nothing from the provider. Why a call may use a table and take a reference on its owner, and what
//! each of the two protects: README.md, "Design and safety argument".

// Each crate uses its own half of this file (the provider builds tables, the consumer reads them).
#![allow(dead_code)]

use kernel::{
    bindings,
    ffi::c_int, //
};

#[allow(
    unused_imports,
    reason = "each crate uses its own half: the provider bounds `hold`, the consumer names tables"
)]
pub(crate) use crate::uapi::{
    compute_expected,
    name_buf,
    HOLD_MAX_US,
    NAME_LEN, //
};

/// Version of the [`ProviderOps`] layout. The consumer refuses any other version (`EINVAL`).
pub(crate) const ABI_VERSION: u32 = 1;

/// What `describe` reports.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct ProviderInfo {
    /// NUL-terminated name of the table called.
    pub(crate) name: [u8; NAME_LEN],
    /// Provider implementation version.
    pub(crate) version: u32,
    /// Random id chosen when the provider module was loaded: a reload gets a new one.
    pub(crate) instance_id: u64,
}

/// A provider's ops table.
///
/// The entries are `Option`s so that a table built in C, where any of them may be `NULL`, has a
/// valid Rust type: the consumer refuses a table with a missing entry or a `NULL` owner
/// (`EINVAL`) at registration.
///
/// # Contract
///
/// - The provider keeps the table alive and unchanged from `rust_consumer_register` until
///   `rust_consumer_unregister` returns; then it may free it.
/// - `owner` is the module containing the code the entries point to (`THIS_MODULE` of the
///   provider); calling an entry is only sound while the caller holds a reference on `owner`.
/// - An entry must not call `rust_consumer_unregister` for its own table (the drain would wait
///   for the very call that asks for it).
#[repr(C)]
pub(crate) struct ProviderOps {
    /// Must be [`ABI_VERSION`].
    pub(crate) abi_version: u32,
    /// NUL-terminated table name, unique in the consumer's registry.
    pub(crate) name: [u8; NAME_LEN],
    /// The module that owns the code and data reachable from this table.
    pub(crate) owner: *mut bindings::module,
    /// Returns [`compute_expected`]`(x, instance_id)`.
    pub(crate) compute: Option<unsafe extern "C" fn(x: u64) -> u64>,
    /// Sleeps `us` microseconds inside the provider; returns 0, or `-EINVAL` when `us` exceeds
    /// [`HOLD_MAX_US`].
    pub(crate) hold: Option<unsafe extern "C" fn(us: u32) -> c_int>,
    /// Fills `*info`.
    pub(crate) describe: Option<unsafe extern "C" fn(info: *mut ProviderInfo)>,
}

// SAFETY: A registered table is never written (see the contract), its function pointers may be
// called from any thread, and `owner` is only passed to `try_module_get`/`module_put`, which are
// thread-safe.
unsafe impl Sync for ProviderOps {}
// SAFETY: Same as `Sync`: nothing in the table is tied to the thread that built it.
unsafe impl Send for ProviderOps {}

impl ProviderOps {
    /// The name without its NUL padding.
    pub(crate) fn name(&self) -> &[u8] {
        name_bytes(&self.name)
    }

    /// Whether the table is called `name`, NUL-padded to [`NAME_LEN`] like every registered
    /// table's name (the consumer checks the padding at registration): four 8-byte compares,
    /// inline, no call to `memcmp` (this is the registry lookup's hot path).
    #[inline]
    pub(crate) fn is_named(&self, name: &[u8; NAME_LEN]) -> bool {
        let (a, b) = (name_words(&self.name), name_words(name));
        // Not `a == b`: rustc lowers array equality to a `bcmp` call.
        ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3])) == 0
    }

    /// Whether the table is complete: a non-null owner and every entry present.
    pub(crate) fn is_complete(&self) -> bool {
        !self.owner.is_null()
            && self.compute.is_some()
            && self.hold.is_some()
            && self.describe.is_some()
    }

    /// Whether every byte after the name's first NUL is a NUL too (what [`Self::is_named`]
    /// needs); false when there is no NUL at all.
    pub(crate) fn is_nul_padded(&self) -> bool {
        match self.name.iter().position(|&b| b == 0) {
            Some(len) => self.name[len..].iter().all(|&b| b == 0),
            None => false,
        }
    }
}

const _: () = assert!(NAME_LEN == 32);

/// A name buffer as four native-endian words, for comparing it without a loop or a call.
#[inline]
pub(crate) fn name_words(buf: &[u8; NAME_LEN]) -> [u64; 4] {
    // SAFETY: `buf` is 32 readable bytes (asserted above), the read is unaligned-tolerant, and
    // every bit pattern is a valid `[u64; 4]`.
    unsafe { core::ptr::read_unaligned(buf.as_ptr().cast::<[u64; 4]>()) }
}

/// The bytes of a NUL-padded name, up to its first NUL.
pub(crate) fn name_bytes(buf: &[u8; NAME_LEN]) -> &[u8] {
    let len = buf.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
    &buf[..len]
}

/// Signature of `rust_consumer_register`: returns 0 or a negative errno (`EINVAL`: a NULL or
/// incomplete table, an empty or unpadded name or one with a byte that is not printable ASCII
/// (space included), another ABI version; `EEXIST`: name taken;
/// `ENOSPC`: registry full). Process context.
///
/// # Safety
///
/// `ops` must satisfy the [`ProviderOps`] contract until `rust_consumer_unregister` returns.
pub(crate) type RegisterFn = unsafe extern "C" fn(ops: *const ProviderOps) -> c_int;

/// Signature of `rust_consumer_unregister`: withdraws `ops` and returns only once no call is
/// using it and none can start on it (calls in flight are drained; they may sleep for as long
/// as the provider's own ops do). May be called at any time from process context, while the
/// provider is live as well as from its init error path or exit; not from an atomic context,
/// and not from one of the table's own entries. A call for a table that another caller is
/// withdrawing waits for the same drain; a table that is not registered is ignored.
///
/// # Safety
///
/// `ops` must be a table registered by the caller, or one whose registration failed.
pub(crate) type UnregisterFn = unsafe extern "C" fn(ops: *const ProviderOps);
