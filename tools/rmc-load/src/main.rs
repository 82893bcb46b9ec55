// SPDX-License-Identifier: GPL-2.0

//! `rmc-load`: hammer `/dev/rust_consumer` from several threads and verify every answer.
//!
//! Every `compute` answer is checked against the provider instance that reported it; a wrong
//! answer is a failure, not a statistic. Every error is classified by errno: `ENODEV` (no
//! provider, or it is going away) is allowed by default, any other errno fails the run.

use std::{
    collections::{BTreeMap, BTreeSet},
    process::ExitCode,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use clap::Parser;
use hdrhistogram::Histogram;
use nix::errno::Errno;
use rmc::{
    cli::{parse_seconds, DeviceArg, TableArg},
    Device, NAME_LEN, OP_COMPUTE, OP_DESCRIBE, OP_HOLD,
};

mod summary;

use summary::{print_human, report};

const EXIT_HELP: &str = concat!(
    "\
Exit status:
  0  every outcome was allowed (ok, and the errnos given to --allow) and every answer verified
  1  a disallowed errno, a wrong answer, no call answered (unless --allow-no-answer), or fewer
     instance ids than --min-instances
",
    rmc::exit_status_usage_and_device!()
);

/// Load generator for /dev/rust_consumer that verifies every answer.
#[derive(Parser, Debug)]
#[command(version, about, after_help = EXIT_HELP)]
struct Args {
    #[command(flatten)]
    device: DeviceArg,
    #[command(flatten)]
    table: TableArg,
    /// Worker threads (default: number of online CPUs).
    #[arg(short = 'j', long)]
    threads: Option<usize>,
    /// Run for this many seconds (fractions allowed); default 10 unless --count or
    /// --until-stopped is given.
    #[arg(short, long, value_parser = parse_seconds, conflicts_with = "until_stopped")]
    duration: Option<f64>,
    /// Stop each thread after this many calls.
    #[arg(short = 'n', long, conflicts_with = "until_stopped")]
    count: Option<u64>,
    /// Run until SIGTERM or SIGINT, however long the work around it takes (a background load
    /// in a test); the summary and the exit status are those of a timed run.
    #[arg(long)]
    until_stopped: bool,
    /// Op mix as weights: compute, hold, describe, nop, echo (nop: an ioctl that touches no
    /// provider and copies nothing; echo: the copies of a call without provider or reference).
    #[arg(short, long, default_value = "compute=100", value_parser = parse_mix)]
    mix: Mix,
    /// Microseconds each hold sleeps inside the provider.
    #[arg(long, default_value_t = 1000)]
    hold_us: u32,
    /// Errnos allowed besides success (comma-separated names, or "none").
    #[arg(long, default_value = "ENODEV", value_parser = parse_allow)]
    allow: Allow,
    /// Pass even when no call got an answer (by default a run of only errors fails: a mistyped
    /// provider name gives nothing but ENODEV).
    #[arg(long)]
    allow_no_answer: bool,
    /// Fail unless at least this many distinct provider instance ids answered.
    #[arg(long, default_value_t = 0)]
    min_instances: usize,
    /// Timeline bucket, in milliseconds.
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
    /// Print the timeline in the human summary too.
    #[arg(long)]
    timeline: bool,
    /// Print the result as JSON on stdout (the human summary goes to stderr).
    #[arg(long)]
    json: bool,
}

/// Weights of each op, in the order compute, hold, describe, nop, echo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Mix([u32; 5]);

const OP_NAMES: [&str; 5] = ["compute", "hold", "describe", "nop", "echo"];

fn parse_mix(s: &str) -> Result<Mix, String> {
    let mut w = [0u32; 5];
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (name, weight) = part
            .split_once('=')
            .ok_or_else(|| format!("'{part}': expected OP=WEIGHT"))?;
        let i = OP_NAMES
            .iter()
            .position(|n| *n == name)
            .ok_or_else(|| format!("unknown op '{name}' (ops: {})", OP_NAMES.join(", ")))?;
        w[i] = weight
            .parse()
            .map_err(|_| format!("'{weight}' is not a whole number"))?;
    }
    if w.iter().map(|&x| u64::from(x)).sum::<u64>() == 0 {
        return Err("the mix has no op with a weight above 0".into());
    }
    Ok(Mix(w))
}

impl Mix {
    /// The op for a uniform random `r`.
    fn pick(&self, r: u64) -> usize {
        let total: u64 = self.0.iter().map(|&x| u64::from(x)).sum();
        let mut r = r % total;
        for (i, &w) in self.0.iter().enumerate() {
            if r < u64::from(w) {
                return i;
            }
            r -= u64::from(w);
        }
        unreachable!("r < total")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Allow(BTreeSet<i32>);

fn parse_allow(s: &str) -> Result<Allow, String> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(Allow(BTreeSet::new()));
    }
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            rmc::errno_from_name(p)
                .map(|e| e as i32)
                .ok_or_else(|| format!("unknown errno name '{p}'"))
        })
        .collect::<Result<_, _>>()
        .map(Allow)
}

/// Is `got` the right answer to `compute(x)` from the instance that reported `instance_id`?
fn verify_compute(x: u64, got: u64, instance_id: u64) -> bool {
    got == rmc::compute_expected(x, instance_id)
}

/// What one thread saw.
struct ThreadResult {
    calls: u64,
    /// Verified answers (a wrong one is counted in `wrong_count`, not here).
    ok: u64,
    errors: BTreeMap<i32, u64>,
    /// Every wrong answer, and the first few of them in words.
    wrong_count: u64,
    wrong: Vec<String>,
    instances: BTreeSet<u64>,
    latency_ns: Histogram<u64>,
    /// Per timeline bucket: [ok, enodev, other].
    timeline: Vec<[u64; 3]>,
    elapsed: Duration,
}

struct Shared {
    dev: Device,
    table: [u8; NAME_LEN],
    args: Args,
    stop: Arc<AtomicBool>,
    start: Instant,
    deadline: Option<Instant>,
}

fn worker(sh: &Shared, seed: u64) -> ThreadResult {
    let mut r = ThreadResult {
        calls: 0,
        ok: 0,
        errors: BTreeMap::new(),
        wrong_count: 0,
        wrong: Vec::new(),
        instances: BTreeSet::new(),
        latency_ns: Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds"),
        timeline: Vec::new(),
        elapsed: Duration::ZERO,
    };
    let interval = Duration::from_millis(sh.args.interval_ms.max(1));
    let mut rng = rmc::Rng(seed);
    let mut last_instance = None;
    loop {
        if sh.stop.load(Ordering::Relaxed) || sh.args.count.is_some_and(|n| r.calls >= n) {
            break;
        }
        let t0 = Instant::now();
        if sh.deadline.is_some_and(|d| t0 >= d) {
            break;
        }
        let op = sh.args.mix.pick(rng.next_u64());
        let x = rng.next_u64();
        let res = match op {
            0 => sh.dev.call(&sh.table, OP_COMPUTE, x),
            1 => sh.dev.call(&sh.table, OP_HOLD, u64::from(sh.args.hold_us)),
            2 => sh.dev.call(&sh.table, OP_DESCRIBE, 0),
            3 => sh.dev.nop().map(|()| rmc::CallArgs::default()),
            _ => sh.dev.echo(&sh.table, x).map(|result| rmc::CallArgs {
                result,
                ..Default::default()
            }),
        };
        let t1 = Instant::now();
        r.calls += 1;
        r.latency_ns
            .saturating_record(u64::try_from((t1 - t0).as_nanos()).unwrap_or(u64::MAX));
        let bucket = ((t1 - sh.start).as_nanos() / interval.as_nanos()) as usize;
        if r.timeline.len() <= bucket {
            r.timeline.resize(bucket + 1, [0; 3]);
        }
        match res {
            Ok(a) => {
                // Only on a change: the set is for reloads, not for every call's cost.
                if op < 3 && last_instance != Some(a.instance_id) {
                    last_instance = Some(a.instance_id);
                    r.instances.insert(a.instance_id);
                }
                let wrong = match op {
                    0 if !verify_compute(x, a.result, a.instance_id) => Some(format!(
                        "compute({x:#x}) = {:#x} from instance {:#x}, expected {:#x}",
                        a.result,
                        a.instance_id,
                        rmc::compute_expected(x, a.instance_id)
                    )),
                    4 if a.result != x => Some(format!("echo({x:#x}) = {:#x}", a.result)),
                    _ => None,
                };
                match wrong {
                    Some(w) => {
                        r.wrong_count += 1;
                        if r.wrong.len() < 10 {
                            r.wrong.push(w);
                        }
                    }
                    None => {
                        r.ok += 1;
                        r.timeline[bucket][0] += 1;
                    }
                }
            }
            Err(e) => {
                *r.errors.entry(e as i32).or_default() += 1;
                r.timeline[bucket][if e == Errno::ENODEV { 1 } else { 2 }] += 1;
            }
        }
    }
    r.elapsed = sh.start.elapsed();
    r
}

fn main() -> ExitCode {
    let args = Args::parse();
    let Some(table) = rmc::name_buf(args.table.name.as_bytes()) else {
        eprintln!("rmc-load: provider name must be 1-31 bytes without NUL");
        return ExitCode::from(2);
    };
    let dev = match args.device.open() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("rmc-load: {e}");
            return ExitCode::from(3);
        }
    };
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let duration = match (args.duration, args.count) {
        // `parse_seconds` accepted only what a `Duration` can hold.
        (Some(d), _) => Duration::try_from_secs_f64(d).ok(),
        (None, Some(_)) => None,
        (None, None) if args.until_stopped => None,
        (None, None) => Some(Duration::from_secs(10)),
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&stop)) {
            eprintln!("rmc-load: cannot install signal handler: {e}");
            return ExitCode::from(1);
        }
    }
    let start = Instant::now();
    let shared = Shared {
        dev,
        table,
        deadline: duration.and_then(|d| start.checked_add(d)),
        args,
        stop,
        start,
    };
    let results: Vec<ThreadResult> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let sh = &shared;
                s.spawn(move || worker(sh, 0x9e37_79b9_7f4a_7c15 ^ ((i as u64 + 1) * 0x2545_f491)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker panicked"))
            .collect()
    });
    let rep = report(&shared.args, &results, start.elapsed());
    print_human(&rep, shared.args.timeline);
    if shared.args.json {
        match serde_json::to_string_pretty(&rep) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("rmc-load: JSON: {e}"),
        }
    }
    if rep.pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests;
