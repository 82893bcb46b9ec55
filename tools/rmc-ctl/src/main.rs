// SPDX-License-Identifier: GPL-2.0

//! `rmc-ctl`: one request to `/dev/rust_consumer`, its counters, or a bounded random-request
//! check that every answer is right and every errno is one the interface documents.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use nix::errno::Errno;
use rmc::{
    cli::{parse_u64, DeviceArg},
    errno_name, NAME_LEN, OP_COMPUTE, OP_DESCRIBE, OP_HOLD,
};

mod fail_nth;
mod fuzz;
mod serve;

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
    #[command(flatten)]
    device: DeviceArg,
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
    /// Requests read from stdin, one a line, answered on stdout, one line each ("ok ..." or
    /// "err ..."): `table-cycle NAME COUNT`, `load PATH [PARAMS]` (finit_module). For a script
    /// that would otherwise start a process per step (a coprocess; see the selftest's cycles).
    Serve {
        /// The provider's configfs directory.
        #[arg(long, default_value = "/sys/kernel/config/rust_provider")]
        configfs: String,
    },
    /// Fail the 1st, 2nd, ... kernel allocation of one syscall (/proc/thread-self/fail-nth) until
    /// it runs clean; every failure must give an allowed errno or be absorbed.
    FailNth {
        #[command(subcommand)]
        target: fail_nth::Target,
        /// Errnos an injected failure may give (comma-separated names).
        #[arg(long, default_value = "ENOMEM", value_delimiter = ',', value_parser = parse_errno)]
        allow: Vec<Errno>,
        /// The largest N tried.
        #[arg(long, default_value_t = 5000)]
        max_n: u64,
        /// Try every STEP-th N only (1, 1 + STEP, ...): a sample of the failure points.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        step: u64,
        /// Print every attempt.
        #[arg(short, long)]
        verbose: bool,
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

fn parse_errno(s: &str) -> Result<Errno, String> {
    rmc::errno_from_name(s).ok_or_else(|| format!("unknown errno name '{s}'"))
}

/// `fail-nth`: see [`Cmd::FailNth`]; its own exit status (the device may not exist yet).
fn fail_nth_cmd(
    target: &fail_nth::Target,
    device: &str,
    allow: &[Errno],
    max_n: u64,
    step: u64,
    verbose: bool,
) -> ExitCode {
    match fail_nth::run(target, device, allow, max_n, step, verbose) {
        Ok(t) => {
            let clean = t.clean_at.map_or("never".into(), |n| format!("at N={n}"));
            let which = if step == 1 {
                String::new()
            } else {
                format!(" (every {step}th)")
            };
            println!(
                "fail-nth {target:?}: {} allocation(s) failed in turn{which}: {:?}, {} absorbed; ran clean {clean}",
                t.injected, t.errnos, t.absorbed
            );
            for p in &t.problems {
                println!("FAIL: {p}");
            }
            if t.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("rmc-ctl: fail-nth: {e}");
            ExitCode::from(1)
        }
    }
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

fn outcome_name<T>(r: &Result<T, Errno>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => errno_name(*e),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Cmd::FailNth {
        target,
        allow,
        max_n,
        step,
        verbose,
    } = &args.cmd
    {
        return fail_nth_cmd(target, &args.device.path, allow, *max_n, *step, *verbose);
    }
    if let Cmd::Serve { configfs } = &args.cmd {
        return match serve::serve(&args.device.path, configfs) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rmc-ctl: serve: {e}");
                ExitCode::from(1)
            }
        };
    }
    let dev = match args.device.open() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("rmc-ctl: {e}");
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
            return match serve::table_cycle(&dev, name, *count, configfs) {
                Ok(summary) => {
                    println!("{summary}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("rmc-ctl: table-cycle: {e}");
                    ExitCode::from(1)
                }
            };
        }
        Cmd::FailNth { .. } | Cmd::Serve { .. } => {
            unreachable!("dispatched before the device is opened")
        }
        Cmd::Fuzz {
            count,
            seed,
            provider,
        } => {
            return if fuzz::fuzz(&dev, *count, *seed, provider) {
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
    fn ops() {
        assert_eq!(op_number("hold"), Ok(OP_HOLD));
        assert_eq!(op_number("7"), Ok(7));
        assert!(op_number("nope").is_err());
    }

    #[test]
    fn fail_nth_targets_parse() {
        let a = Args::try_parse_from(["rmc-ctl", "fail-nth", "load", "/m/x.ko", "a=1"]).unwrap();
        assert_eq!(a.device.path, rmc::Device::DEFAULT_PATH);
        match a.cmd {
            Cmd::FailNth {
                target: fail_nth::Target::Load { path, params },
                allow,
                ..
            } => {
                assert_eq!(path, std::path::PathBuf::from("/m/x.ko"));
                assert_eq!(params, "a=1");
                assert_eq!(allow, vec![Errno::ENOMEM]);
            }
            c => panic!("{c:?}"),
        }
        let a = Args::try_parse_from(["rmc-ctl", "--device", "/d", "fail-nth", "open"]).unwrap();
        assert_eq!(a.device.path, "/d");
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
                "fail-nth",
                "load",
                "open",
                "mkdir",
                "x.ko",
                "--allow",
                "ENOMEM,EINVAL",
                "--max-n",
                "--verbose",
            ],
            20_000,
            |argv| {
                if let Ok(a) = Args::try_parse_from(argv) {
                    let _ = &a.device.path;
                    if let Cmd::FailNth { target, .. } = &a.cmd {
                        let _ = format!("{target:?}");
                    }
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
