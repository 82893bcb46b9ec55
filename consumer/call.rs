// SPDX-License-Identifier: GPL-2.0

//! Calling a table: [`TableRef`], the right to use one table, and [`call`].

use core::ptr::NonNull;
use kernel::prelude::*;

use crate::{
    abi::{
        self,
        ProviderInfo,
        ProviderOps,
        NAME_LEN, //
    },
    module_ref::OwnerRef,
    registry::{
        Registry,
        Slot, //
    },
    stats::Counter,
};
use kernel::sync::srcu::FastGuard;

/// The right to call one table's ops, obtained only from [`Registry::get`].
///
/// # Invariants
///
/// - `_drain` is the read-side section of the slot's drain in which `ops` was loaded from the
///   slot: the table stays alive (and complete) until it ends.
/// - `_module_ref` holds a reference on `ops.owner`: the owner's exit cannot begin meanwhile.
///
/// Fields drop in declaration order: `module_put` happens while the drain section still keeps
/// the `struct module` alive (the owner's exit withdraws its tables and waits for us).
pub(crate) struct TableRef {
    ops: NonNull<ProviderOps>,
    slot: &'static Slot,
    _module_ref: OwnerRef,
    _drain: FastGuard<'static>,
}

impl TableRef {
    /// # Invariants
    ///
    /// The caller, [`Registry::get`], passes the guard of the section in which `ops` was found
    /// and a reference on its owner.
    pub(crate) fn new(
        ops: &ProviderOps,
        slot: &'static Slot,
        module_ref: OwnerRef,
        drain: FastGuard<'static>,
    ) -> Self {
        Self {
            ops: NonNull::from(ops),
            slot,
            _module_ref: module_ref,
            _drain: drain,
        }
    }

    /// The table. The borrow cannot outlive `self`, which keeps the table alive.
    pub(crate) fn ops(&self) -> &ProviderOps {
        // SAFETY: The table is alive while the drain section lasts (type invariant).
        unsafe { self.ops.as_ref() }
    }

    pub(crate) fn compute(&self, x: u64) -> u64 {
        // SAFETY: We hold a reference on the owner and the drain keeps the table alive.
        unsafe { compute(self.ops(), x) }
    }

    fn hold(&self, us: u32) -> Result {
        let Some(hold) = self.ops().hold else {
            return Err(EINVAL); // Unreachable: registration refuses an incomplete table.
        };
        // SAFETY: We hold a reference on the owner of the code `hold` points to.
        kernel::error::to_result(unsafe { hold(us) })
    }

    fn describe(&self) -> ProviderInfo {
        let mut info = ProviderInfo {
            name: [0; NAME_LEN],
            version: 0,
            instance_id: 0,
        };
        if let Some(describe) = self.ops().describe {
            // SAFETY: We hold a reference on the owner of the code `describe` points to, and
            // `info` is valid for writes.
            unsafe { describe(&mut info) };
        }
        // One provider may register several tables sharing one `describe`: name the one called.
        info.name = self.ops().name;
        info
    }

    fn count(&self, c: Counter) {
        self.slot.stats.inc(c);
    }
}

impl Drop for TableRef {
    #[inline(always)]
    fn drop(&mut self) {
        // Still inside the drain section and under the reference (the fields drop after this).
        self.count(Counter::RefsReleased);
    }
}

/// Calls `compute` of a table.
///
/// # Safety
///
/// The caller must hold a reference on `ops.owner` for the duration of the call (a
/// [`TableRef`] does; the benchmark's threads rely on the run's one).
#[inline]
pub(crate) unsafe fn compute(ops: &ProviderOps, x: u64) -> u64 {
    match ops.compute {
        // SAFETY: The caller holds a reference on the owner of the code `compute` points to.
        Some(f) => unsafe { f(x) },
        None => 0, // Unreachable: registration refuses an incomplete table.
    }
}

/// An operation of a table.
#[derive(Clone, Copy)]
pub(crate) enum Op {
    Compute(u64),
    Hold(u32),
    Describe,
}

/// What a call returns.
pub(crate) struct Reply {
    pub(crate) info: ProviderInfo,
    pub(crate) result: u64,
}

/// Calls `op` of the table called `name`, inside its drain and under a reference on its owner.
///
/// A `hold` longer than the ABI's bound is refused (`EINVAL`) before any table is looked up: the
/// bound is the consumer's promise that a call, and so a withdrawal, waits at most that long.
pub(crate) fn call(name: &[u8; NAME_LEN], op: Op) -> Result<Reply> {
    if matches!(op, Op::Hold(us) if us > abi::HOLD_MAX_US) {
        return Err(EINVAL);
    }
    let table = Registry::global().get(name)?;
    let mut result = 0;
    let outcome = match op {
        Op::Compute(x) => {
            result = table.compute(x);
            Ok(())
        }
        Op::Hold(us) => table.hold(us),
        Op::Describe => Ok(()),
    };
    let info = table.describe();
    table.count(match outcome {
        Ok(()) => Counter::CallsOk,
        Err(_) => Counter::CallsFailed,
    });
    outcome.map(|()| Reply { info, result })
}
