// SPDX-License-Identifier: GPL-2.0

//! The provider's ops, and [`new_table`], which puts them in a table owned by this module.

use kernel::{
    bindings,
    ffi::c_int,
    prelude::*,
    sync::atomic::{
        Atomic,
        Relaxed, //
    },
    time::{
        delay::fsleep,
        Delta, //
    },
};

use crate::{
    abi::{
        self,
        ProviderInfo,
        ProviderOps, //
    },
    module_parameters,
};

/// The provider's name: table 0's, and the one `describe` reports.
pub(crate) const NAME: &[u8] = b"rust_provider";
const VERSION: u32 = 1;

/// The id of this load of the module, chosen in init before the first table is registered.
static INSTANCE_ID: Atomic<u64> = Atomic::new(0);

/// Holds that ran to completion in this load of the module (logged at exit).
static HOLDS_COMPLETED: Atomic<u64> = Atomic::new(0);

pub(crate) fn set_instance_id(id: u64) {
    INSTANCE_ID.store(id, Relaxed);
}

pub(crate) fn instance_id() -> u64 {
    INSTANCE_ID.load(Relaxed)
}

pub(crate) fn holds_completed() -> u64 {
    HOLDS_COMPLETED.load(Relaxed)
}

extern "C" fn compute(x: u64) -> u64 {
    abi::compute_expected(x, instance_id())
}

extern "C" fn hold(us: u32) -> c_int {
    let cap = module_parameters::hold_max_us.value().min(abi::HOLD_MAX_US);
    if us > cap {
        return EINVAL.to_errno();
    }
    fsleep(Delta::from_micros(i64::from(us)));
    // Provider code touching provider data after sleeping, as real code does. Without a module
    // reference held by the caller (the negative control), this store lands in freed module memory
    // and the debug kernel reports it.
    HOLDS_COMPLETED.add(1u64, Relaxed);
    0
}

/// Fills in this instance; the consumer puts the name of the table it called in `name`.
///
/// # Safety
///
/// `info` must be valid for writing a [`ProviderInfo`].
unsafe extern "C" fn describe(info: *mut ProviderInfo) {
    let name = abi::name_buf(NAME).unwrap_or([0; abi::NAME_LEN]);
    // SAFETY: The caller guarantees `info` is valid for writes (the ABI contract of `describe`).
    unsafe {
        info.write(ProviderInfo {
            name,
            version: VERSION,
            instance_id: instance_id(),
        })
    };
}

/// A new table called `name`, owned by `owner` (this module), with this module's ops.
pub(crate) fn new_table(
    name: [u8; abi::NAME_LEN],
    owner: *mut bindings::module,
) -> Result<KBox<ProviderOps>> {
    let mut ops = ProviderOps {
        abi_version: module_parameters::abi_version.value(),
        name,
        owner,
        compute: Some(compute),
        hold: Some(hold),
        describe: Some(describe),
    };
    match module_parameters::bad_table.value() {
        1 => ops.owner = core::ptr::null_mut(),
        2 => ops.compute = None,
        _ => {}
    }
    Ok(KBox::new(ops, GFP_KERNEL)?)
}
