// SPDX-License-Identifier: GPL-2.0

//! `rmc-ctl`: one request to `/dev/rust_consumer`, its counters, or a bounded random-request
//! check that every answer is right and every errno is one the interface documents.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use nix::errno::Errno;
use rmc::{Device, Rng, NAME_LEN, OP_COMPUTE, OP_DESCRIBE, OP_HOLD};

const EXIT_HELP: &str = "\
Exit status:
  0  the outcome matched --expect (default: success); fuzz: every outcome was documented
  1  it did not (the message says what happened)
  2  usage error
  3  the device could not be opened";

/// Single requests, counters and a bounded random-request check for /dev/rust_consumer.
#[derive(Parser, Debug)]
#[command(version, about, after_help = EXIT_HELP)]
struct Args {
    /// The consumer's device node.
    #[arg(long, default_value = Device::DEFAULT_PATH, global = true)]
    device: String,
    /// Expected outcome: "ok" or an errno name such as ENODEV, EINVAL, ENOTTY, EFAULT.
    #[arg(short, long, default_value = "ok", global = true)]
    expect: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// RMC_IOC_CALL: call OP (compute, hold, describe, or a number) with ARG on PROVIDER.
    Call {
        provider: String,
        op: String,
        #[arg(default_value_t = 0)]
        arg: u64,
        /// Value for the `flags` field (must be 0).
        #[arg(long, default_value_t = 0)]
        flags: u32,
        /// Value for the `reserved` field (must be 0).
        #[arg(long, default_value_t = 0)]
        reserved: u32,
        /// Fill the name buffer completely, leaving no terminating NUL.
        #[arg(long)]
        unterminated: bool,
    },
    /// One text request (as a shell would write it); prints the answer.
    Text { request: String },
    /// A raw ioctl: CMD (hex or decimal) with ARG pointing to a zeroed buffer, NULL or an address.
    Ioctl {
        #[arg(value_parser = parse_u64)]
        cmd: u64,
        /// "buffer" (16 KiB of zeroes, the most an ioctl number can encode), "null", or an
        /// address in hex (the kernel may write there: use unmapped addresses only).
        #[arg(long, default_value = "buffer")]
        arg: String,
    },
    /// RMC_IOC_STATS: counters of PROVIDER, or the totals.
    Stats {
        provider: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add and withdraw table NAME through configfs COUNT times: mkdir, a verified compute on it,
    /// rmdir (timed: it returns once the table's calls drained), then ENODEV for NAME.
    TableCycle {
        name: String,
        #[arg(short = 'n', long, default_value_t = 100)]
        count: u64,
        /// The provider's configfs directory.
        #[arg(long, default_value = "/sys/kernel/config/rust_provider")]
        configfs: String,
    },
    /// Send COUNT random, mostly malformed requests (text and ioctl); check each outcome.
    Fuzz {
        #[arg(short = 'n', long, default_value_t = 10_000)]
        count: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(short, long, default_value = "rust_provider")]
        provider: String,
    },
}

/// The largest argument size an ioctl number can encode (14 bits).
const IOC_SIZE_MAX: usize = 1 << 14;

fn parse_u64(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("'{s}' is not a number"))
}

fn op_number(op: &str) -> Result<u32, String> {
    match op {
        "compute" => Ok(OP_COMPUTE),
        "hold" => Ok(OP_HOLD),
        "describe" => Ok(OP_DESCRIBE),
        n => n
            .parse()
            .map_err(|_| format!("unknown op '{op}' (compute, hold, describe or a number)")),
    }
}

fn errno_name(e: Errno) -> String {
    format!("{e:?}")
}

fn outcome_name<T>(r: &Result<T, Errno>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => errno_name(*e),
    }
}

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

fn random_word(rng: &mut Rng, provider: &str) -> Vec<u8> {
    match rng.below(12) {
        0 => b"compute".to_vec(),
        1 => b"hold".to_vec(),
        2 => b"describe".to_vec(),
        3 => b"stats".to_vec(),
        4 => b"list".to_vec(),
        5 => provider.as_bytes().to_vec(),
        6 => b"nosuch_provider".to_vec(),
        7 => rng.next_u64().to_string().into_bytes(),
        8 => format!("0x{:x}", rng.next_u64()).into_bytes(),
        9 => b"99999999999999999999999".to_vec(),
        10 => vec![b'x'; rng.below(40) as usize],
        _ => (0..rng.below(12)).map(|_| rng.below(256) as u8).collect(),
    }
}

/// A random text request: well-formed ones with random arguments, or random word salad.
fn random_text(rng: &mut Rng, provider: &str) -> Vec<u8> {
    let mut req = match rng.below(5) {
        0 => format!("compute {provider} {}", rng.next_u64()).into_bytes(),
        1 => format!("hold {provider} {}", hold_arg(rng)).into_bytes(),
        2 => format!("describe {provider}").into_bytes(),
        _ => {
            let mut v = Vec::new();
            for i in 0..rng.below(6) {
                if i > 0 {
                    v.push(*rng.pick(b" \t\n"));
                }
                let w = random_word(rng, provider);
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

fn fuzz(dev: &Device, count: u64, seed: u64, provider: &str) -> bool {
    let mut rng = Rng(seed);
    let mut t = Tally::default();
    let mut buf = vec![0u8; IOC_SIZE_MAX];
    for _ in 0..count {
        match rng.below(3) {
            0 => {
                let req = random_text(&mut rng, provider);
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
                        let n = provider.len().min(NAME_LEN);
                        name[..n].copy_from_slice(&provider.as_bytes()[..n]);
                    }
                }
                let mut a = rmc::CallArgs {
                    provider: name,
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

/// `table-cycle`: see [`Cmd::TableCycle`].
fn table_cycle(dev: &Device, name: &str, count: u64, configfs: &str) -> Result<(), String> {
    let key = rmc::name_buf(name).ok_or_else(|| format!("bad table name '{name}'"))?;
    let dir = std::path::Path::new(configfs).join(name);
    let mut rmdir_us = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for i in 1..=count {
        std::fs::create_dir(&dir)
            .map_err(|e| format!("cycle {i}: mkdir {}: {e}", dir.display()))?;
        let x = i.wrapping_mul(0x9e37_79b9);
        let a = dev
            .call(&key, OP_COMPUTE, x)
            .map_err(|e| format!("cycle {i}: compute on the new table: {}", errno_name(e)))?;
        if a.result != rmc::compute_expected(x, a.instance_id) {
            return Err(format!("cycle {i}: wrong answer {} for x={x}", a.result));
        }
        let t = std::time::Instant::now();
        std::fs::remove_dir(&dir)
            .map_err(|e| format!("cycle {i}: rmdir {}: {e}", dir.display()))?;
        rmdir_us.push(t.elapsed().as_micros());
        match dev.call(&key, OP_COMPUTE, x) {
            Err(Errno::ENODEV) => {}
            r => {
                return Err(format!(
                    "cycle {i}: after rmdir expected ENODEV, got {}",
                    outcome_name(&r)
                ))
            }
        }
    }
    rmdir_us.sort_unstable();
    let at = |q: usize| {
        rmdir_us
            .get(q * rmdir_us.len().saturating_sub(1) / 100)
            .copied()
            .unwrap_or(0)
    };
    println!(
        "{count} cycles of table {name}: rmdir p50 {} us, p99 {} us, max {} us",
        at(50),
        at(99),
        at(100)
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let dev = match Device::open(&args.device) {
        Ok(d) => d,
        Err(e) => {
            eprintln!(
                "rmc-ctl: cannot open {}: {e} (is rust_consumer loaded? are you root?)",
                args.device
            );
            return ExitCode::from(3);
        }
    };
    let outcome: String = match &args.cmd {
        Cmd::Call {
            provider,
            op,
            arg,
            flags,
            reserved,
            unterminated,
        } => {
            let op = match op_number(op) {
                Ok(op) => op,
                Err(e) => {
                    eprintln!("rmc-ctl: {e}");
                    return ExitCode::from(2);
                }
            };
            let mut name = [0u8; NAME_LEN];
            let n = provider.len().min(NAME_LEN);
            name[..n].copy_from_slice(&provider.as_bytes()[..n]);
            if *unterminated {
                name[n..].fill(b'x');
            }
            let mut a = rmc::CallArgs {
                provider: name,
                op,
                flags: *flags,
                arg: *arg,
                reserved: *reserved,
                ..Default::default()
            };
            // SAFETY: `a` is a `CallArgs` we own, the size `CALL_CMD` encodes.
            let r = unsafe { dev.raw_ioctl(rmc::CALL_CMD, std::ptr::from_mut(&mut a) as usize) };
            if r.is_ok() {
                println!(
                    "ok op={op} result={} instance={:#018x} version={}",
                    a.result, a.instance_id, a.version
                );
                if op == OP_COMPUTE && a.result != rmc::compute_expected(*arg, a.instance_id) {
                    eprintln!("rmc-ctl: wrong answer");
                    return ExitCode::from(1);
                }
            }
            outcome_name(&r)
        }
        Cmd::Text { request } => {
            let r = dev.text(request.as_bytes());
            if let Ok(a) = &r {
                print!("{a}");
            }
            outcome_name(&r)
        }
        Cmd::Ioctl { cmd, arg } => {
            let mut buf = vec![0u8; IOC_SIZE_MAX];
            let ptr = match arg.as_str() {
                "buffer" => buf.as_mut_ptr() as usize,
                "null" => 0,
                a => match parse_u64(a) {
                    Ok(v) => v as usize,
                    Err(e) => {
                        eprintln!("rmc-ctl: {e}");
                        return ExitCode::from(2);
                    }
                },
            };
            // SAFETY: `ptr` is null, our buffer of the largest size an ioctl number encodes, or
            // an address the user typed to test EFAULT (their choice, documented in --help).
            outcome_name(&unsafe { dev.raw_ioctl(*cmd, ptr) })
        }
        Cmd::Stats { provider, json } => {
            let r = dev.stats(provider.as_deref().unwrap_or(""));
            if let Ok(s) = &r {
                if *json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "calls_ok": s.calls_ok, "calls_enodev": s.calls_enodev,
                            "calls_failed": s.calls_failed, "refs_taken": s.refs_taken,
                            "refs_released": s.refs_released, "refs_held": s.refs_held,
                            "providers": s.providers,
                        })
                    );
                } else {
                    println!(
                        "calls_ok={} calls_enodev={} calls_failed={} refs_taken={} refs_released={} refs_held={} providers={}",
                        s.calls_ok, s.calls_enodev, s.calls_failed, s.refs_taken,
                        s.refs_released, s.refs_held, s.providers
                    );
                }
            }
            outcome_name(&r)
        }
        Cmd::TableCycle {
            name,
            count,
            configfs,
        } => {
            return match table_cycle(&dev, name, *count, configfs) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("rmc-ctl: table-cycle: {e}");
                    ExitCode::from(1)
                }
            };
        }
        Cmd::Fuzz {
            count,
            seed,
            provider,
        } => {
            return if fuzz(&dev, *count, *seed, provider) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            };
        }
    };
    if outcome.eq_ignore_ascii_case(&args.expect) {
        ExitCode::SUCCESS
    } else {
        eprintln!("rmc-ctl: got {outcome}, expected {}", args.expect);
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_ops() {
        assert_eq!(parse_u64("0x10"), Ok(16));
        assert_eq!(parse_u64("10"), Ok(10));
        assert!(parse_u64("x").is_err());
        assert_eq!(op_number("hold"), Ok(OP_HOLD));
        assert_eq!(op_number("7"), Ok(7));
        assert!(op_number("nope").is_err());
    }

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
            b"",
            &format!("ok compute provider=p instance=0x9 x=5 y={y}\n"),
            &mut t,
        );
        assert!(t.wrong.is_empty());
        check_text_answer(b"", "ok compute provider=p instance=0x9 x=5 y=1\n", &mut t);
        assert_eq!(t.wrong.len(), 1);
    }

    #[test]
    fn no_command_line_panics() {
        rmc::fuzz_command_lines(
            "rmc-ctl",
            &[
                "call",
                "text",
                "ioctl",
                "stats",
                "fuzz",
                "table-cycle",
                "--expect",
                "-e",
                "ENODEV",
                "ok",
                "--flags",
                "--reserved",
                "--unterminated",
                "--arg",
                "null",
                "buffer",
                "--json",
                "-n",
                "--count",
                "--seed",
                "--provider",
                "-p",
                "--configfs",
                "compute",
                "hold",
                "describe",
                "7",
                "rust_provider",
                "--device",
            ],
            20_000,
            |argv| {
                if let Ok(a) = Args::try_parse_from(argv) {
                    if let Cmd::Call { op, .. } = &a.cmd {
                        let _ = op_number(op);
                    }
                    if let Cmd::Ioctl { arg, .. } = &a.cmd {
                        let _ = parse_u64(arg);
                    }
                    let _ = a;
                }
            },
        );
    }
}
