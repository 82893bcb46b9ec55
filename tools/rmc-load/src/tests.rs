// SPDX-License-Identifier: GPL-2.0

//! Parsing, verdicts and the summary, without a device.

use super::*;
use crate::summary::latency;

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
    assert!(Args::try_parse_from(["rmc-load", "--until-stopped"]).is_ok());
    assert!(Args::try_parse_from(["rmc-load", "--until-stopped", "-d", "1"]).is_err());
    assert!(Args::try_parse_from(["rmc-load", "--until-stopped", "-n", "1"]).is_err());
    let a = Args::try_parse_from(["rmc-load", "--allow", "EPERM,ehostunreach,ENODEV"]).unwrap();
    assert_eq!(a.allow.0.len(), 3);
    assert!(Args::try_parse_from(["rmc-load", "--allow", "ENOPE"]).is_err());
}

#[test]
fn no_command_line_panics() {
    rmc::testing::fuzz_command_lines(
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
            "--until-stopped",
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
                let _ = rmc::name_buf(a.table.name.as_bytes());
                let _ = a;
            }
        },
    );
}
