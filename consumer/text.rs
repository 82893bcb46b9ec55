// SPDX-License-Identifier: GPL-2.0

//! The text interface of `/dev/rust_consumer`: one request per `write`, its answer read back.
//!
//! Grammar (README.md, "Userspace interface"): `compute NAME X`, `hold NAME US`,
//! `describe NAME`, `stats [NAME]`, `list`. Every answer's first word says how the request went:
//! `ok` and the command, or `err <errno>` for a failed one; so an answer that starts otherwise
//! did not come from here (a regular file in the device's place answers with what was written).

use core::fmt::Write;
use kernel::prelude::*;

use crate::{
    abi,
    call::{
        call,
        Op, //
    },
    registry::Registry,
    uapi,
};

/// Longest accepted text request, in bytes.
pub(crate) const MAX_REQUEST: usize = 128;
/// Size of the per-file answer buffer.
const ANSWER_LEN: usize = 1024;

/// The answer to the last text request on a file, and how much of it has been read.
///
/// The read position is the answer's own, not the file's: a failed `write` leaves the file
/// position where the last read left it (the VFS updates it only for a positive return), so an
/// answer read at the file position would be lost after every failed request.
pub(crate) struct Answer {
    buf: [u8; ANSWER_LEN],
    len: usize,
    read: usize,
}

impl Answer {
    pub(crate) const fn new() -> Self {
        Self {
            buf: [0; ANSWER_LEN],
            len: 0,
            read: 0,
        }
    }

    /// The part of the answer not read yet; `consume` marks `n` bytes of it as read.
    pub(crate) fn unread(&self) -> &[u8] {
        self.buf.get(self.read..self.len).unwrap_or(&[])
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.read = self.read.saturating_add(n).min(self.len);
    }
}

impl Write for Answer {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(core::fmt::Error)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(core::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Displays bytes that are ASCII as text and anything else as `?`.
pub(crate) struct BStrDisplay<'a>(pub(crate) &'a [u8]);

impl core::fmt::Display for BStrDisplay<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for &b in self.0 {
            f.write_char(if b.is_ascii_graphic() { b as char } else { '?' })?;
        }
        Ok(())
    }
}

/// Parses a decimal or `0x` hexadecimal `u64`.
pub(crate) fn parse_u64(s: &[u8]) -> Result<u64> {
    let (digits, radix) = match s {
        [b'0', b'x' | b'X', rest @ ..] => (rest, 16),
        _ => (s, 10),
    };
    if digits.is_empty() {
        return Err(EINVAL);
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        let d = (b as char).to_digit(radix).ok_or(EINVAL)?;
        acc.checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(d)))
            .ok_or(EINVAL)
    })
}

fn write_stats(out: &mut Answer, name: &[u8], s: &uapi::Stats) -> core::fmt::Result {
    write!(
        out,
        "ok stats {} calls_ok={} calls_enodev={} calls_failed={} refs_taken={} refs_released={} refs_held={}",
        BStrDisplay(if name.is_empty() { b"total" } else { name }),
        s.calls_ok,
        s.calls_enodev,
        s.calls_failed,
        s.refs_taken,
        s.refs_released,
        s.refs_held
    )
}

/// Runs one text request; the answer replaces `out`'s (`err <errno>` on failure).
pub(crate) fn request(req: &[u8], out: &mut Answer) -> Result {
    *out = Answer::new();
    let res = run(req, out);
    if let Err(e) = res {
        *out = Answer::new();
        // Cannot fail: a short line in an empty buffer.
        let _ = writeln!(out, "err {}", -e.to_errno());
    }
    res
}

fn run(req: &[u8], out: &mut Answer) -> Result {
    let mut words = req
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    let cmd = words.next().ok_or(EINVAL)?;
    let fmt_err = |_| ENOSPC;
    match cmd {
        b"compute" | b"hold" | b"describe" => {
            let name = words.next().ok_or(EINVAL)?;
            let padded = abi::name_buf(name).ok_or(EINVAL)?;
            let op = match cmd {
                b"compute" => Op::Compute(parse_u64(words.next().ok_or(EINVAL)?)?),
                b"hold" => {
                    let us = parse_u64(words.next().ok_or(EINVAL)?)?;
                    Op::Hold(u32::try_from(us).map_err(|_| EINVAL)?)
                }
                _ => Op::Describe,
            };
            if words.next().is_some() {
                return Err(EINVAL);
            }
            let reply = call(&padded, op)?;
            let id = reply.info.instance_id;
            match op {
                Op::Compute(x) => writeln!(
                    out,
                    "ok compute provider={} instance={:#018x} x={} y={}",
                    BStrDisplay(name),
                    id,
                    x,
                    reply.result
                ),
                Op::Hold(us) => writeln!(
                    out,
                    "ok hold provider={} instance={:#018x} us={}",
                    BStrDisplay(name),
                    id,
                    us
                ),
                Op::Describe => writeln!(
                    out,
                    "ok describe provider={} version={} instance={:#018x}",
                    BStrDisplay(abi::name_bytes(&reply.info.name)),
                    reply.info.version,
                    id
                ),
            }
            .map_err(fmt_err)
        }
        b"stats" => {
            let name = words.next().unwrap_or(b"");
            if words.next().is_some() {
                return Err(EINVAL);
            }
            let total = Registry::global().stats(name)?;
            write_stats(out, name, &total).map_err(fmt_err)?;
            if name.is_empty() {
                write!(out, " tables={}", total.tables).map_err(fmt_err)?;
            }
            writeln!(out).map_err(fmt_err)
        }
        b"list" => {
            if words.next().is_some() {
                return Err(EINVAL);
            }
            let names = Registry::global().names();
            writeln!(out, "ok list {}", names.len()).map_err(fmt_err)?;
            for name in names.iter() {
                writeln!(out, "{}", BStrDisplay(name)).map_err(fmt_err)?;
            }
            Ok(())
        }
        _ => Err(EINVAL),
    }
}
