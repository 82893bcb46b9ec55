// SPDX-License-Identifier: GPL-2.0

//! `rmc-ctl fuzz`: random, mostly malformed text requests and ioctls; every outcome must be a
//! verified answer or an errno the interface documents for that kind of request.

use nix::errno::Errno;
use std::process::ExitCode;

use rmc::{
    cli::{parse_u64, DeviceArg},
    errno_name, Device, Rng, NAME_LEN, OP_COMPUTE, OP_DESCRIBE, OP_HOLD,
};

use crate::requests::{open, outcome_name, IOC_SIZE_MAX};

/// Errnos the interface documents, per kind of request (README "Userspace interface").
const TEXT_ERRNOS: &[Errno] = &[Errno::EINVAL, Errno::ENODEV];
const CALL_ERRNOS: &[Errno] = &[Errno::EINVAL, Errno::ENODEV, Errno::EFAULT];
const UNKNOWN_CMD_ERRNOS: &[Errno] = &[Errno::ENOTTY];

/// A number for a hold: small (fast), or too large for the provider or for u32 (refused).
fn hold_arg(rng: &mut Rng) -> u64 {
    match rng.below(4) {
        0 => 1_000_001 + rng.below(1 << 40),
        1 => u64::from(u32::MAX) + 1 + rng.below(1000),
        _ => rng.below(2000),
    }
}

fn random_word(rng: &mut Rng, table: &str) -> Vec<u8> {
    match rng.below(12) {
        0 => b"compute".to_vec(),
        1 => b"hold".to_vec(),
        2 => b"describe".to_vec(),
        3 => b"stats".to_vec(),
        4 => b"list".to_vec(),
        5 => table.as_bytes().to_vec(),
        6 => b"nosuch_provider".to_vec(),
        7 => rng.next_u64().to_string().into_bytes(),
        8 => format!("0x{:x}", rng.next_u64()).into_bytes(),
        9 => b"99999999999999999999999".to_vec(),
        10 => vec![b'x'; rng.below(40) as usize],
        _ => (0..rng.below(12)).map(|_| rng.below(256) as u8).collect(),
    }
}

/// A random text request: well-formed ones with random arguments, or random word salad.
fn random_text(rng: &mut Rng, table: &str) -> Vec<u8> {
    let mut req = match rng.below(5) {
        0 => format!("compute {table} {}", rng.next_u64()).into_bytes(),
        1 => format!("hold {table} {}", hold_arg(rng)).into_bytes(),
        2 => format!("describe {table}").into_bytes(),
        _ => {
            let mut v = Vec::new();
            for i in 0..rng.below(6) {
                if i > 0 {
                    v.push(*rng.pick(b" \t\n"));
                }
                let w = random_word(rng, table);
                // Never a valid long hold: it would only make the run slow.
                if v.starts_with(b"hold") && i == 2 {
                    v.extend(hold_arg(rng).to_string().bytes());
                } else {
                    v.extend(w);
                }
            }
            v
        }
    };
    if rng.below(20) == 0 {
        req.resize(129 + rng.below(100) as usize, b' '); // over the 128-byte limit
    }
    if rng.below(4) == 0 {
        req.push(b'\n');
    }
    req
}

#[derive(Default)]
struct Tally {
    outcomes: std::collections::BTreeMap<String, u64>,
    undocumented: Vec<String>,
    wrong: Vec<String>,
}

impl Tally {
    fn note<T>(&mut self, what: &str, r: &Result<T, Errno>, allowed: &[Errno], detail: String) {
        *self
            .outcomes
            .entry(format!("{what}:{}", outcome_name(r)))
            .or_default() += 1;
        if let Err(e) = r {
            if !allowed.contains(e) && self.undocumented.len() < 20 {
                self.undocumented
                    .push(format!("{what} {detail} -> {}", errno_name(*e)));
            }
        }
    }
}

/// `fuzz`: see `rmc-ctl fuzz --help`.
pub(crate) fn cmd(device: &DeviceArg, count: u64, seed: u64, table: &str) -> ExitCode {
    let dev = match open(device) {
        Ok(dev) => dev,
        Err(code) => return code,
    };
    if fuzz(&dev, count, seed, table) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn fuzz(dev: &Device, count: u64, seed: u64, table: &str) -> bool {
    let mut rng = Rng(seed);
    let mut t = Tally::default();
    let mut buf = vec![0u8; IOC_SIZE_MAX];
    for _ in 0..count {
        match rng.below(3) {
            0 => {
                let req = random_text(&mut rng, table);
                let r = dev.text(&req);
                if let Ok(answer) = &r {
                    check_text_answer(&req, answer, &mut t);
                }
                t.note(
                    "text",
                    &r,
                    TEXT_ERRNOS,
                    format!("{:?}", String::from_utf8_lossy(&req)),
                );
            }
            1 => {
                let op = match rng.below(8) {
                    0..=2 => OP_COMPUTE,
                    3 => OP_DESCRIBE,
                    4 => OP_HOLD,
                    _ => rng.below(1 << 32) as u32,
                };
                let arg = if op == OP_HOLD {
                    hold_arg(&mut rng)
                } else {
                    rng.next_u64()
                };
                let mut name = [0u8; NAME_LEN];
                match rng.below(4) {
                    0 => name.fill(b'a'),
                    1 => name[..5].copy_from_slice(b"nosuc"),
                    _ => {
                        let n = table.len().min(NAME_LEN);
                        name[..n].copy_from_slice(&table.as_bytes()[..n]);
                    }
                }
                let mut a = rmc::CallArgs {
                    table: name,
                    op,
                    flags: if rng.below(5) == 0 {
                        rng.next_u64() as u32
                    } else {
                        0
                    },
                    arg,
                    reserved: if rng.below(5) == 0 {
                        rng.next_u64() as u32
                    } else {
                        0
                    },
                    ..Default::default()
                };
                let cmd = rmc::CALL_CMD;
                let r = match rng.below(6) {
                    // Bad pointers: NULL, a kernel address, an unmapped user address.
                    // SAFETY: Null, a kernel address and the zero page: none is mapped writable
                    // for us, so the kernel fails with EFAULT instead of writing.
                    0 => unsafe {
                        dev.raw_ioctl(cmd, *rng.pick(&[0usize, 0xffff_8880_0000_0000, 0x10]))
                    },
                    _ => {
                        // SAFETY: `a` is a `CallArgs` we own, the size `cmd` encodes (72 bytes).
                        let r = unsafe { dev.raw_ioctl(cmd, std::ptr::from_mut(&mut a) as usize) };
                        if r.is_ok()
                            && op == OP_COMPUTE
                            && a.result != rmc::compute_expected(arg, a.instance_id)
                        {
                            t.wrong.push(format!("compute({arg:#x}) = {:#x}", a.result));
                        }
                        r
                    }
                };
                t.note("call", &r, CALL_ERRNOS, format!("op={op} arg={arg:#x}"));
            }
            _ => {
                // A command with our type byte and a random number, direction and size.
                let nr = rng.below(256);
                let size = rng.below(1 << 14);
                let dir = rng.below(4);
                let cmd = (dir << 30) | (size << 16) | (u64::from(rmc::IOC_MAGIC) << 8) | nr;
                if [
                    rmc::CALL_CMD,
                    rmc::STATS_CMD,
                    rmc::NOP_CMD,
                    rmc::BENCH_CMD,
                    rmc::ECHO_CMD,
                ]
                .contains(&cmd)
                {
                    continue;
                }
                // SAFETY: `buf` is ours and as large as any size an ioctl number can encode.
                let r = unsafe { dev.raw_ioctl(cmd, buf.as_mut_ptr() as usize) };
                t.note("ioctl", &r, UNKNOWN_CMD_ERRNOS, format!("cmd={cmd:#x}"));
            }
        }
    }
    eprintln!("rmc-ctl fuzz: {count} requests, seed {seed}");
    for (k, v) in &t.outcomes {
        eprintln!("  {k:16} {v}");
    }
    for u in &t.undocumented {
        eprintln!("rmc-ctl fuzz: FAIL: undocumented outcome: {u}");
    }
    for w in &t.wrong {
        eprintln!("rmc-ctl fuzz: FAIL: wrong answer: {w}");
    }
    t.undocumented.is_empty() && t.wrong.is_empty()
}

/// A successful `compute` text answer must carry the right `y` for its instance.
fn check_text_answer(req: &[u8], answer: &str, t: &mut Tally) {
    // The word after `ok` is the request's command.
    let cmd = req
        .split(|b| b.is_ascii_whitespace())
        .find(|w| !w.is_empty())
        .map(String::from_utf8_lossy);
    if cmd.is_none_or(|c| !answer.starts_with(&format!("ok {c}"))) {
        t.wrong.push(format!(
            "{:?} answered {answer:?}: not \"ok\" and its command",
            String::from_utf8_lossy(req)
        ));
        return;
    }
    let Some(rest) = answer.strip_prefix("ok compute ") else {
        return;
    };
    let field = |k: &str| {
        rest.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .and_then(|v| parse_u64(v).ok())
    };
    match (field("instance="), field("x="), field("y=")) {
        (Some(id), Some(x), Some(y)) if y == rmc::compute_expected(x, id) => {}
        _ => t.wrong.push(format!(
            "{:?} answered {answer:?}",
            String::from_utf8_lossy(req)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_requests_never_ask_for_a_long_hold() {
        let mut rng = Rng(42);
        for _ in 0..100_000 {
            let a = hold_arg(&mut rng);
            assert!(a < 2000 || a > u64::from(rmc::HOLD_MAX_US), "{a}");
        }
    }

    #[test]
    fn text_answers_are_checked() {
        let mut t = Tally::default();
        let y = rmc::compute_expected(5, 9);
        check_text_answer(
            b"compute p 5",
            &format!("ok compute provider=p instance=0x9 x=5 y={y}\n"),
            &mut t,
        );
        check_text_answer(b" list", "ok list 0\n", &mut t);
        assert!(t.wrong.is_empty(), "{:?}", t.wrong);
        check_text_answer(
            b"compute p 5",
            "ok compute provider=p instance=0x9 x=5 y=1\n",
            &mut t,
        );
        assert_eq!(t.wrong.len(), 1);
        // Another command's answer, or none of the protocol's.
        check_text_answer(b"stats", "ok list 0\n", &mut t);
        check_text_answer(b"list", "rust_provider\n", &mut t);
        assert_eq!(t.wrong.len(), 3);
    }
}
