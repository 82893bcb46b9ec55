// SPDX-License-Identifier: GPL-2.0

//! The kernel side of the ioctl ABI: the shared definitions (`consumer_uapi.rs`, also compiled
//! into `tools/rmc`), their byte-level traits, and the `RMC_IOC_CALL`/`RMC_IOC_STATS` handlers.

use kernel::{
    ioctl::{
        _IO,
        _IOWR, //
    },
    prelude::*,
    transmute::{
        AsBytes,
        FromBytes, //
    },
    uaccess::UserSlice,
};

use crate::{
    call::{
        call,
        Op, //
    },
    registry::Registry,
};

#[path = "../consumer_uapi.rs"]
#[expect(
    unreachable_pub,
    reason = "shared with userspace (tools/rmc), where these items are the library's API"
)]
mod defs;
pub(crate) use defs::*;

// The shared file computes the numbers itself (it cannot use the kernel crate): check them
// against the kernel's own macros.
const _: () = {
    assert!(RMC_IOC_CALL == _IOWR::<CallArgs>(IOC_MAGIC, 1));
    assert!(RMC_IOC_STATS == _IOWR::<Stats>(IOC_MAGIC, 2));
    assert!(RMC_IOC_NOP == _IO(IOC_MAGIC, 3));
    assert!(RMC_IOC_BENCH == _IOWR::<BenchArgs>(IOC_MAGIC, 4));
    assert!(RMC_IOC_ECHO == _IOWR::<CallArgs>(IOC_MAGIC, 5));
};

// SAFETY: `repr(C)` with integer fields only and no padding (asserted in `consumer_uapi.rs`),
// so every byte pattern is a valid value.
unsafe impl FromBytes for CallArgs {}
// SAFETY: Same layout argument: no padding bytes, so every byte is initialised.
unsafe impl AsBytes for CallArgs {}
// SAFETY: `repr(C)`, a byte array followed by `u64`s, no padding (asserted in `consumer_uapi.rs`).
unsafe impl FromBytes for Stats {}
// SAFETY: Same layout argument: no padding bytes.
unsafe impl AsBytes for Stats {}
// SAFETY: `repr(C)`, integer fields only, no padding (asserted in `consumer_uapi.rs`).
unsafe impl FromBytes for BenchArgs {}
// SAFETY: Same layout argument: no padding bytes.
unsafe impl AsBytes for BenchArgs {}
// SAFETY: `repr(C, packed)` with integer fields only: no padding, every byte is initialised.
unsafe impl AsBytes for CallOut {}

/// The name in a NUL-terminated fixed buffer coming from userspace (`EINVAL` without a NUL).
pub(crate) fn user_name(buf: &[u8; NAME_LEN]) -> Result<&[u8]> {
    match buf.iter().position(|&b| b == 0) {
        Some(len) => Ok(&buf[..len]),
        None => Err(EINVAL),
    }
}

/// A NUL-terminated name from userspace NUL-padded to `NAME_LEN` (what a lookup compares),
/// whatever followed its NUL in the user's buffer.
pub(crate) fn user_name_padded(buf: &[u8; NAME_LEN]) -> Result<[u8; NAME_LEN]> {
    name_buf(user_name(buf)?).ok_or(EINVAL)
}

/// Reads a `T` from the ioctl argument, lets `f` update it, and writes it back.
pub(crate) fn inout<T: FromBytes + AsBytes>(
    arg: usize,
    f: impl FnOnce(&mut T) -> Result,
) -> Result<isize> {
    let (mut reader, mut writer) =
        UserSlice::new(UserPtr::from_addr(arg), core::mem::size_of::<T>()).reader_writer();
    let mut v: T = reader.read()?;
    f(&mut v)?;
    writer.write(&v)?;
    Ok(0)
}

/// `RMC_IOC_CALL`, or with `echo` `RMC_IOC_ECHO`. Copies back only the output fields (20 of
/// 72 bytes: a user copy costs per byte).
pub(crate) fn ioctl_call(arg: usize, echo: bool) -> Result<isize> {
    let args: CallArgs = UserSlice::new(UserPtr::from_addr(arg), core::mem::size_of::<CallArgs>())
        .reader()
        .read()?;
    if args.flags != 0 || args.reserved != 0 {
        return Err(EINVAL);
    }
    let op = match args.op {
        OP_COMPUTE => Op::Compute(args.arg),
        OP_HOLD => Op::Hold(u32::try_from(args.arg).map_err(|_| EINVAL)?),
        OP_DESCRIBE => Op::Describe,
        _ => return Err(EINVAL),
    };
    let name = user_name_padded(&args.table)?;
    let out = if echo {
        CallOut {
            result: args.arg,
            instance_id: 0,
            version: 0,
        }
    } else {
        let reply = call(&name, op)?;
        CallOut {
            result: reply.result,
            instance_id: reply.info.instance_id,
            version: reply.info.version,
        }
    };
    // The whole struct was readable; `arg + CALL_OUT_AT` cannot wrap, but a bad pointer still
    // faults cleanly into `EFAULT`.
    let at = arg.checked_add(CALL_OUT_AT).ok_or(EFAULT)?;
    UserSlice::new(UserPtr::from_addr(at), core::mem::size_of::<CallOut>())
        .writer()
        .write(&out)?;
    Ok(0)
}

/// `RMC_IOC_STATS`.
pub(crate) fn ioctl_stats(query: &mut Stats) -> Result {
    let mut out = Registry::global().stats(user_name(&query.table)?)?;
    out.table = query.table;
    *query = out;
    Ok(())
}
