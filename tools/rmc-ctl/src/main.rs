// SPDX-License-Identifier: GPL-2.0

//! `rmc-ctl`: one request to `/dev/rust_consumer`, its counters, or a bounded random-request
//! check that every answer is right and every errno is one the interface documents.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use nix::errno::Errno;
use rmc::cli::{parse_u64, DeviceArg};

mod fail_nth;
mod fuzz;
mod requests;
mod serve;
mod table_cycle;

const EXIT_HELP: &str = concat!(
    "Exit status:
  0  the outcome matched --expect (default: success); fuzz: every outcome was documented
  1  it did not (the message says what happened)
",
    rmc::exit_status_usage_and_device!()
);

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
    /// RMC_IOC_CALL: call OP (compute, hold, describe, or a number) with ARG on table PROVIDER.
    Call {
        #[arg(value_name = "PROVIDER")]
        table: String,
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
    /// RMC_IOC_STATS: counters of table PROVIDER, or the totals.
    Stats {
        #[arg(value_name = "PROVIDER")]
        table: Option<String>,
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
        /// The table the well-formed requests name.
        #[arg(short = 'p', long = "provider", default_value = "rust_provider")]
        table: String,
    },
}

fn parse_errno(s: &str) -> Result<Errno, String> {
    rmc::errno_from_name(s).ok_or_else(|| format!("unknown errno name '{s}'"))
}

/// Runs the subcommand. The single requests (call, text, ioctl, stats) return their outcome,
/// which is then held against `--expect`; the others have exit statuses of their own.
fn main() -> ExitCode {
    let args = Args::parse();
    let device = &args.device;
    let outcome = match &args.cmd {
        Cmd::Call {
            table,
            op,
            arg,
            flags,
            reserved,
            unterminated,
        } => requests::call(device, table, op, *arg, *flags, *reserved, *unterminated),
        Cmd::Text { request } => requests::text(device, request),
        Cmd::Ioctl { cmd, arg } => requests::ioctl(device, *cmd, arg),
        Cmd::Stats { table, json } => requests::stats(device, table.as_deref(), *json),
        Cmd::TableCycle {
            name,
            count,
            configfs,
        } => return table_cycle::cmd(device, name, *count, configfs),
        Cmd::Serve { configfs } => return serve::cmd(&device.path, configfs),
        Cmd::FailNth {
            target,
            allow,
            max_n,
            step,
            verbose,
        } => {
            // The device is opened by the target, if at all: it may not exist yet.
            let found = fail_nth::run(target, &device.path, allow, *max_n, *step, *verbose);
            return fail_nth::report(target, *step, found);
        }
        Cmd::Fuzz { count, seed, table } => return fuzz::cmd(device, *count, *seed, table),
    };
    match outcome {
        Ok(outcome) if outcome.eq_ignore_ascii_case(&args.expect) => ExitCode::SUCCESS,
        Ok(outcome) => {
            eprintln!("rmc-ctl: got {outcome}, expected {}", args.expect);
            ExitCode::from(1)
        }
        Err(code) => code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops() {
        assert_eq!(requests::op_number("hold"), Ok(rmc::OP_HOLD));
        assert_eq!(requests::op_number("7"), Ok(7));
        assert!(requests::op_number("nope").is_err());
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
        rmc::testing::fuzz_command_lines(
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
                        let _ = requests::op_number(op);
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
