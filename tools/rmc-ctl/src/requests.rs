// SPDX-License-Identifier: GPL-2.0

//! The single requests: `call`, `text`, `ioctl` and `stats`. Each returns its outcome ("ok" or
//! an errno name) for `--expect`, or the exit status to end with at once.

use std::process::ExitCode;

use nix::errno::Errno;
use rmc::{
    cli::{parse_u64, DeviceArg},
    errno_name, Device, NAME_LEN, OP_COMPUTE, OP_DESCRIBE, OP_HOLD,
};

/// The largest argument size an ioctl number can encode (14 bits).
pub(crate) const IOC_SIZE_MAX: usize = 1 << 14;

/// "ok", or the errno's name.
pub(crate) fn outcome_name<T>(r: &Result<T, Errno>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => errno_name(*e),
    }
}

/// Opens the device, or says why not and gives the exit status for it (3).
pub(crate) fn open(device: &DeviceArg) -> Result<Device, ExitCode> {
    device.open().map_err(|e| {
        eprintln!("rmc-ctl: {e}");
        ExitCode::from(3)
    })
}

/// Prints a usage error and gives its exit status (2).
fn usage(e: String) -> ExitCode {
    eprintln!("rmc-ctl: {e}");
    ExitCode::from(2)
}

pub(crate) fn op_number(op: &str) -> Result<u32, String> {
    match op {
        "compute" => Ok(OP_COMPUTE),
        "hold" => Ok(OP_HOLD),
        "describe" => Ok(OP_DESCRIBE),
        n => n
            .parse()
            .map_err(|_| format!("unknown op '{op}' (compute, hold, describe or a number)")),
    }
}

/// `call`: one `RMC_IOC_CALL` with every field as given; a compute answer is verified.
pub(crate) fn call(
    device: &DeviceArg,
    table: &str,
    op: &str,
    arg: u64,
    flags: u32,
    reserved: u32,
    unterminated: bool,
) -> Result<String, ExitCode> {
    let op = op_number(op).map_err(usage)?;
    let dev = open(device)?;
    let mut name = [0u8; NAME_LEN];
    let n = table.len().min(NAME_LEN);
    name[..n].copy_from_slice(&table.as_bytes()[..n]);
    if unterminated {
        name[n..].fill(b'x');
    }
    let mut a = rmc::CallArgs {
        table: name,
        op,
        flags,
        arg,
        reserved,
        ..Default::default()
    };
    // SAFETY: `a` is a `CallArgs` we own, the size `CALL_CMD` encodes.
    let r = unsafe { dev.raw_ioctl(rmc::CALL_CMD, std::ptr::from_mut(&mut a) as usize) };
    if r.is_ok() {
        println!(
            "ok op={op} result={} instance={:#018x} version={}",
            a.result, a.instance_id, a.version
        );
        if op == OP_COMPUTE && a.result != rmc::compute_expected(arg, a.instance_id) {
            eprintln!("rmc-ctl: wrong answer");
            return Err(ExitCode::from(1));
        }
    }
    Ok(outcome_name(&r))
}

/// `text`: one text request; prints the answer.
pub(crate) fn text(device: &DeviceArg, request: &str) -> Result<String, ExitCode> {
    let r = open(device)?.text(request.as_bytes());
    match &r {
        Ok(a) => print!("{a}"),
        Err(Errno::EBADMSG) => eprintln!(
            "rmc-ctl: the answer is neither \"ok ...\" nor \"err N\": {} is not rust_consumer",
            device.path
        ),
        Err(_) => {}
    }
    Ok(outcome_name(&r))
}

/// `ioctl`: a raw ioctl with a zeroed buffer, NULL, or an address as its argument.
pub(crate) fn ioctl(device: &DeviceArg, cmd: u64, arg: &str) -> Result<String, ExitCode> {
    let mut buf = vec![0u8; IOC_SIZE_MAX];
    let ptr = match arg {
        "buffer" => buf.as_mut_ptr() as usize,
        "null" => 0,
        a => parse_u64(a).map_err(usage)? as usize,
    };
    let dev = open(device)?;
    // SAFETY: `ptr` is null, our buffer of the largest size an ioctl number encodes, or an
    // address the user typed to test EFAULT (their choice, documented in --help).
    Ok(outcome_name(&unsafe { dev.raw_ioctl(cmd, ptr) }))
}

/// `stats`: the counters of `table`, or the totals; one line, or JSON.
pub(crate) fn stats(
    device: &DeviceArg,
    table: Option<&str>,
    json: bool,
) -> Result<String, ExitCode> {
    let r = open(device)?.stats(table.unwrap_or(""));
    if let Ok(s) = &r {
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "calls_ok": s.calls_ok, "calls_enodev": s.calls_enodev,
                    "calls_failed": s.calls_failed, "refs_taken": s.refs_taken,
                    "refs_released": s.refs_released, "refs_held": s.refs_held,
                    "tables": s.tables,
                })
            );
        } else {
            println!(
                "calls_ok={} calls_enodev={} calls_failed={} refs_taken={} refs_released={} refs_held={} tables={}",
                s.calls_ok, s.calls_enodev, s.calls_failed, s.refs_taken,
                s.refs_released, s.refs_held, s.tables
            );
        }
    }
    Ok(outcome_name(&r))
}
