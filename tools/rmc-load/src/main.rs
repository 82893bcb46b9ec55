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
use rmc::{Device, NAME_LEN, OP_COMPUTE, OP_DESCRIBE, OP_HOLD};
use serde::Serialize;

const EXIT_HELP: &str = "\
Exit status:
  0  every outcome was allowed (ok, and the errnos given to --allow) and every answer verified
  1  a disallowed errno, a wrong answer, no call answered (unless --allow-no-answer), or fewer
     instance ids than --min-instances
  2  usage error
  3  the device could not be opened";

/// Load generator for /dev/rust_consumer that verifies every answer.
#[derive(Parser, Debug)]
#[command(version, about, after_help = EXIT_HELP)]
struct Args {
    /// The consumer's device node.
    #[arg(long, default_value = Device::DEFAULT_PATH)]
    device: String,
    /// Provider to call.
    #[arg(short, long, default_value = "rust_provider")]
    provider: String,
    /// Worker threads (default: number of online CPUs).
    #[arg(short = 'j', long)]
    threads: Option<usize>,
    /// Run for this many seconds (fractions allowed); default 10 unless --count is given.
    #[arg(short, long, value_parser = parse_seconds)]
    duration: Option<f64>,
    /// Stop each thread after this many calls.
    #[arg(short = 'n', long)]
    count: Option<u64>,
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

/// A duration in seconds that `Duration` can hold.
fn parse_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    match Duration::try_from_secs_f64(v) {
        Ok(_) => Ok(v),
        Err(_) => Err(format!(
            "'{s}' is not a duration (0 to {} s)",
            Duration::MAX.as_secs()
        )),
    }
}

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
    provider: [u8; NAME_LEN],
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
            0 => sh.dev.call(&sh.provider, OP_COMPUTE, x),
            1 => sh
                .dev
                .call(&sh.provider, OP_HOLD, u64::from(sh.args.hold_us)),
            2 => sh.dev.call(&sh.provider, OP_DESCRIBE, 0),
            3 => sh.dev.nop().map(|()| rmc::CallArgs::default()),
            _ => sh.dev.echo(&sh.provider, x).map(|result| rmc::CallArgs {
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

#[derive(Serialize)]
struct Report {
    threads: usize,
    duration_s: f64,
    calls: u64,
    calls_per_s: f64,
    calls_per_s_per_thread: Vec<f64>,
    ok: u64,
    enodev: u64,
    other_errors: BTreeMap<String, u64>,
    wrong_answers: u64,
    wrong_answers_first: Vec<String>,
    instance_ids: Vec<String>,
    latency_us: Latency,
    interval_ms: u64,
    /// [t_s, ok, enodev, other] per interval.
    timeline: Vec<(f64, u64, u64, u64)>,
    pass: bool,
    failures: Vec<String>,
}

#[derive(Serialize, Debug, PartialEq)]
struct Latency {
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

fn latency(h: &Histogram<u64>) -> Latency {
    let us = |ns: u64| ns as f64 / 1e3;
    Latency {
        p50: us(h.value_at_quantile(0.50)),
        p99: us(h.value_at_quantile(0.99)),
        p999: us(h.value_at_quantile(0.999)),
        max: us(h.max()),
    }
}

fn report(args: &Args, results: &[ThreadResult], duration: Duration) -> Report {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds");
    let mut errors: BTreeMap<i32, u64> = BTreeMap::new();
    let mut instances: BTreeSet<u64> = BTreeSet::new();
    let mut timeline: Vec<[u64; 3]> = Vec::new();
    let mut wrong = Vec::new();
    for r in results {
        hist.add(&r.latency_ns).expect("same bounds");
        for (e, n) in &r.errors {
            *errors.entry(*e).or_default() += n;
        }
        instances.extend(&r.instances);
        wrong.extend(r.wrong.iter().cloned());
        if timeline.len() < r.timeline.len() {
            timeline.resize(r.timeline.len(), [0; 3]);
        }
        for (t, b) in timeline.iter_mut().zip(&r.timeline) {
            for k in 0..3 {
                t[k] += b[k];
            }
        }
    }
    let calls: u64 = results.iter().map(|r| r.calls).sum();
    let ok: u64 = results.iter().map(|r| r.ok).sum();
    let wrong_count: u64 = results.iter().map(|r| r.wrong_count).sum();
    let enodev = errors.get(&(Errno::ENODEV as i32)).copied().unwrap_or(0);
    let secs = duration.as_secs_f64().max(1e-9);
    let mut failures = Vec::new();
    let mut other_errors = BTreeMap::new();
    for (e, n) in &errors {
        let name = rmc::errno_name(Errno::from_raw(*e));
        if !args.allow.0.contains(e) {
            failures.push(format!(
                "{n} call(s) failed with {name}, which is not allowed"
            ));
        }
        if *e != Errno::ENODEV as i32 {
            other_errors.insert(name, *n);
        }
    }
    if let Some(first) = wrong.first() {
        failures.push(format!("{wrong_count} wrong answer(s), first: {first}"));
    }
    if ok == 0 && !args.allow_no_answer {
        failures.push("no call got an answer (wrong provider name? --allow-no-answer)".into());
    }
    if instances.len() < args.min_instances {
        failures.push(format!(
            "{} instance id(s) answered, --min-instances asks for {}",
            instances.len(),
            args.min_instances
        ));
    }
    let step = args.interval_ms as f64 / 1e3;
    Report {
        threads: results.len(),
        duration_s: secs,
        calls,
        calls_per_s: calls as f64 / secs,
        calls_per_s_per_thread: results
            .iter()
            .map(|r| r.calls as f64 / r.elapsed.as_secs_f64().max(1e-9))
            .collect(),
        ok,
        enodev,
        other_errors,
        wrong_answers: wrong_count,
        wrong_answers_first: wrong,
        instance_ids: instances.iter().map(|i| format!("{i:#018x}")).collect(),
        latency_us: latency(&hist),
        interval_ms: args.interval_ms,
        timeline: timeline
            .iter()
            .enumerate()
            .map(|(i, b)| (i as f64 * step, b[0], b[1], b[2]))
            .collect(),
        pass: failures.is_empty(),
        failures,
    }
}

fn print_human(r: &Report, show_timeline: bool) {
    eprintln!(
        "rmc-load: {} threads, {:.2} s, {} calls, {:.0} calls/s",
        r.threads, r.duration_s, r.calls, r.calls_per_s
    );
    let per: Vec<String> = r
        .calls_per_s_per_thread
        .iter()
        .map(|c| format!("{c:.0}"))
        .collect();
    eprintln!("  calls/s per thread: {}", per.join(" "));
    eprintln!(
        "  ok {}  ENODEV {}  other errno {:?}",
        r.ok, r.enodev, r.other_errors
    );
    eprintln!("  wrong answers {}", r.wrong_answers);
    eprintln!(
        "  latency us: p50 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
        r.latency_us.p50, r.latency_us.p99, r.latency_us.p999, r.latency_us.max
    );
    eprintln!("  instance ids: {}", r.instance_ids.join(" "));
    if show_timeline {
        for (t, ok, enodev, other) in &r.timeline {
            eprintln!("  t={t:7.2}s ok {ok:8} ENODEV {enodev:8} other {other}");
        }
    }
    if r.pass {
        eprintln!("rmc-load: PASS");
    } else {
        for f in &r.failures {
            eprintln!("rmc-load: FAIL: {f}");
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let Some(provider) = rmc::name_buf(&args.provider) else {
        eprintln!("rmc-load: provider name must be 1-31 bytes without NUL");
        return ExitCode::from(2);
    };
    let dev = match Device::open(&args.device) {
        Ok(d) => d,
        Err(e) => {
            eprintln!(
                "rmc-load: cannot open {}: {e} (is rust_consumer loaded? are you root?)",
                args.device
            );
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
        provider,
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
mod tests {
    use super::*;

    #[test]
    fn mix_parsing_and_picking() {
        let m = parse_mix("compute=3,hold=1").unwrap();
        assert_eq!(m, Mix([3, 1, 0, 0, 0]));
        let picks: Vec<usize> = (0..4).map(|r| m.pick(r)).collect();
        assert_eq!(picks, [0, 0, 0, 1]);
        assert!(parse_mix("compute=0").is_err());
        assert!(parse_mix("frobnicate=1").is_err());
        assert!(parse_mix("compute").is_err());
        assert_eq!(parse_mix("nop=1").unwrap().pick(12345), 3);
    }

    #[test]
    fn allow_parsing() {
        assert_eq!(
            parse_allow("ENODEV").unwrap().0,
            BTreeSet::from([Errno::ENODEV as i32])
        );
        assert_eq!(
            parse_allow("enodev,einval").unwrap().0.len(),
            2,
            "names are case-insensitive"
        );
        assert!(parse_allow("none").unwrap().0.is_empty());
        assert!(parse_allow("EBOGUS").is_err());
    }

    #[test]
    fn verification() {
        let id = 0x1234_5678_9abc_def0;
        assert!(verify_compute(7, rmc::compute_expected(7, id), id));
        assert!(!verify_compute(7, rmc::compute_expected(7, id), id + 1));
        assert!(!verify_compute(8, rmc::compute_expected(7, id), id));
    }

    #[test]
    fn percentiles_on_a_known_input() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        for ns in 1..=1000u64 {
            h.record(ns * 1000).unwrap(); // 1..1000 us
        }
        let l = latency(&h);
        assert!((l.p50 - 500.0).abs() <= 0.5, "{l:?}");
        assert!((l.p99 - 990.0).abs() <= 1.0, "{l:?}");
        assert!((l.p999 - 999.0).abs() <= 1.0, "{l:?}");
        assert!((l.max - 1000.0).abs() <= 1.0, "{l:?}");
    }

    fn result(ok: u64, errors: &[(Errno, u64)], instances: &[u64]) -> ThreadResult {
        ThreadResult {
            calls: ok + errors.iter().map(|e| e.1).sum::<u64>(),
            ok,
            errors: errors.iter().map(|(e, n)| (*e as i32, *n)).collect(),
            wrong_count: 0,
            wrong: Vec::new(),
            instances: instances.iter().copied().collect(),
            latency_ns: Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap(),
            timeline: vec![[ok, 0, 0]],
            elapsed: Duration::from_secs(1),
        }
    }

    #[test]
    fn outcomes_decide_pass() {
        let args = Args::try_parse_from(["rmc-load", "--min-instances", "2"]).unwrap();
        let good = [
            result(10, &[(Errno::ENODEV, 3)], &[1]),
            result(5, &[], &[2]),
        ];
        let r = report(&args, &good, Duration::from_secs(1));
        assert!(r.pass, "{:?}", r.failures);
        assert_eq!((r.calls, r.ok, r.enodev), (18, 15, 3));

        let one_instance = [result(10, &[], &[1])];
        assert!(!report(&args, &one_instance, Duration::from_secs(1)).pass);

        let strict = Args::try_parse_from(["rmc-load", "--allow", "none"]).unwrap();
        assert!(!report(&strict, &good, Duration::from_secs(1)).pass);

        let other = [result(10, &[(Errno::EINVAL, 1)], &[1])];
        let r = report(
            &Args::try_parse_from(["rmc-load"]).unwrap(),
            &other,
            Duration::from_secs(1),
        );
        assert!(!r.pass);
        assert_eq!(r.other_errors.get("EINVAL"), Some(&1));

        // Only ENODEV (a mistyped name): fails unless --allow-no-answer.
        let none = [result(0, &[(Errno::ENODEV, 9)], &[])];
        let default = Args::try_parse_from(["rmc-load"]).unwrap();
        assert!(!report(&default, &none, Duration::from_secs(1)).pass);
        let lenient = Args::try_parse_from(["rmc-load", "--allow-no-answer"]).unwrap();
        assert!(report(&lenient, &none, Duration::from_secs(1)).pass);

        // Every wrong answer counts, and none of them as ok.
        let mut w = result(5, &[], &[1]);
        w.wrong_count = 25;
        w.wrong = vec!["x".into(); 10];
        let r = report(&default, &[w], Duration::from_secs(1));
        assert!(!r.pass);
        assert_eq!((r.ok, r.wrong_answers), (5, 25));
    }

    #[test]
    fn durations_and_errno_names() {
        assert!(Args::try_parse_from(["rmc-load", "-d", "inf"]).is_err());
        assert!(Args::try_parse_from(["rmc-load", "-d", "-1"]).is_err());
        assert!(Args::try_parse_from(["rmc-load", "-d", "1e300"]).is_err());
        assert!(Args::try_parse_from(["rmc-load", "-d", "0.5"]).is_ok());
        let a = Args::try_parse_from(["rmc-load", "--allow", "EPERM,ehostunreach,ENODEV"]).unwrap();
        assert_eq!(a.allow.0.len(), 3);
        assert!(Args::try_parse_from(["rmc-load", "--allow", "ENOPE"]).is_err());
    }

    #[test]
    fn no_command_line_panics() {
        rmc::fuzz_command_lines(
            "rmc-load",
            &[
                "-j",
                "--threads",
                "-d",
                "--duration",
                "-n",
                "--count",
                "-m",
                "--mix",
                "compute=1,hold=2",
                "nop=1",
                "--hold-us",
                "--allow",
                "ENODEV,EPERM",
                "--min-instances",
                "--interval-ms",
                "--timeline",
                "--json",
                "--allow-no-answer",
                "-p",
                "--provider",
                "--device",
                "4",
                "0.5",
                "1000",
            ],
            20_000,
            |argv| {
                if let Ok(a) = Args::try_parse_from(argv) {
                    let _ = a.duration.map(Duration::try_from_secs_f64);
                    let _ = a.mix.pick(u64::MAX);
                    let _ = rmc::name_buf(&a.provider);
                    let _ = a;
                }
            },
        );
    }
}
