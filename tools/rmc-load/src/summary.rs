// SPDX-License-Identifier: GPL-2.0

//! The end of a run: the threads' results merged into one [`LoadReport`] (verdict included) and
//! its human summary.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use hdrhistogram::Histogram;
use nix::errno::Errno;
use rmc::report::{Latency, LoadReport};

use crate::{Args, ThreadResult};

pub(crate) fn latency(h: &Histogram<u64>) -> Latency {
    let us = |ns: u64| ns as f64 / 1e3;
    Latency {
        p50: us(h.value_at_quantile(0.50)),
        p99: us(h.value_at_quantile(0.99)),
        p999: us(h.value_at_quantile(0.999)),
        max: us(h.max()),
    }
}

pub(crate) fn report(args: &Args, results: &[ThreadResult], duration: Duration) -> LoadReport {
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
    LoadReport {
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

pub(crate) fn print_human(r: &LoadReport, show_timeline: bool) {
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
    // All of them are in --json; a 500-cycle soak has 501.
    const SHOWN: usize = 8;
    let ids = &r.instance_ids;
    let more = if ids.len() > SHOWN {
        format!(" ... ({} in all)", ids.len())
    } else {
        String::new()
    };
    eprintln!(
        "  instance ids: {}{more}",
        ids[..ids.len().min(SHOWN)].join(" ")
    );
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
