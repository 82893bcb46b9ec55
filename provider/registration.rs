// SPDX-License-Identifier: GPL-2.0

//! [`Registration`]: one table registered with `rust_consumer`, withdrawn when dropped.

use kernel::{
    error::to_result,
    ffi::c_int,
    prelude::*, //
};

use crate::abi::{
    self,
    ProviderOps, //
};

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

// The declarations above have the ABI's types: a mismatch fails the build, not a call.
const _: abi::RegisterFn = rust_consumer_register;
const _: abi::UnregisterFn = rust_consumer_unregister;

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
