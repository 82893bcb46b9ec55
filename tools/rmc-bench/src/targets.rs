// SPDX-License-Identifier: GPL-2.0

//! The targets of `results.json`: each a statistic of paired repetitions with its interval and a
//! verdict among three ([`crate::stats`]); what is reported without a verdict; the host's speed
//! at both ends of the run.

use std::{collections::BTreeMap, path::Path};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    plot,
    report::{point, read_optional, RemovalSeries, Results, UserRow},
    run::{KernelPoint, KernelRun, Variant},
    stats::{self, Interval, Verdict},
};

/// A target: its effect (a statistic of paired repetitions, or of one series' samples) with a
/// bootstrap 95 % interval, judged against its bound: met, not met, or within noise.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Target {
    /// What one sample is.
    pub effect: String,
    /// The bound, with the side the interval must lie on.
    pub bound: String,
    #[serde(flatten)]
    pub interval: Interval,
    pub verdict: Verdict,
}

/// The targets this run judged.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Targets {
    pub lookup_le_2x_reference_1cpu: Target,
    pub lookup_le_2x_reference_all_cpus: Target,
    pub userspace_ratio_1_thread_ge_0_90: Target,
    pub userspace_ratio_4_threads_ge_0_75: Target,
    pub removal_after_load_stops_le_20_ms: Target,
    pub removal_under_load_le_1_s: Target,
    /// rmmod-wait against `modprobe -r --wait`, each removal's own time: first `delete_module`
    /// to the last one's return (strace), free of process start-up.
    pub not_slower_than_modprobe_idle_syscalls: Target,
    pub not_slower_than_modprobe_load_syscalls: Target,
}

/// Figures reported, not judged: a whole command's time includes starting its process, which
/// under a 4-thread load in the emulator is most of it and says nothing about the tool.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Reported {
    pub rmmod_wait_idle_external_ms: Interval,
    pub modprobe_idle_external_ms: Interval,
    pub rmmod_wait_load_external_ms: Interval,
    pub modprobe_load_external_ms: Interval,
}

/// The host's speed at the start and at the end of the run: variant (a), the bare call, on one
/// CPU. Intervals that do not overlap mean the host changed speed under the run.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct HostSpeed {
    pub bare_call_ns_start: Interval,
    pub bare_call_ns_end: Interval,
    pub changed: bool,
}

/// The lookup target at `cpus`: the dispatch's extra cost over the bare call (c - a) at most
/// twice the reference's (2 (b - a)). a, b and c of one repetition ran back to back: each
/// repetition gives the ratio (c - a) / 2 (b - a), which a change of host speed between
/// repetitions scales out of.
fn lookup_target(points: &[KernelPoint], cpus: usize) -> Target {
    let reps = |v| {
        point(points, v, cpus)
            .map(|p| p.reps.clone())
            .unwrap_or_default()
    };
    let (ra, rb, rc) = (
        reps(Variant::ABareCall),
        reps(Variant::BGetCallPut),
        reps(Variant::CFullDispatch),
    );
    let ratios: Vec<f64> = (0..ra.len().min(rb.len()).min(rc.len()))
        .map(|i| {
            let reference = 2.0 * (rb[i] - ra[i]);
            // A reference that costs nothing leaves no room for the lookup.
            if reference > 0.0 {
                (rc[i] - ra[i]) / reference
            } else {
                f64::INFINITY
            }
        })
        .collect();
    let interval = Interval::of(&ratios);
    Target {
        effect: format!("(c - a) / 2 (b - a) per repetition, {cpus} CPU(s)"),
        bound: "<= 1".into(),
        verdict: interval.at_most(1.0),
        interval,
    }
}

/// The samples of a removal series (empty if it was not measured).
fn samples(removal: Option<&BTreeMap<String, RemovalSeries>>, k: &str) -> Vec<f64> {
    removal
        .and_then(|r| r.get(k))
        .map(|s| s.samples_ms.clone())
        .unwrap_or_default()
}

pub fn targets(
    points: &[KernelPoint],
    max_cpus: usize,
    user: &[UserRow],
    removal: Option<&BTreeMap<String, RemovalSeries>>,
) -> Targets {
    let vs_modprobe = |mode: &str| {
        let ratios = stats::paired(
            &samples(removal, &format!("rmmod_wait_{mode}_syscalls")),
            &samples(removal, &format!("modprobe_wait_{mode}_syscalls")),
            |r, m| r / m,
        );
        let interval = Interval::of(&ratios);
        Target {
            effect: format!(
                "rmmod-wait / modprobe -r --wait, first delete_module to last (strace), {mode}, per pair"
            ),
            bound: "<= 1".into(),
            verdict: interval.at_most(1.0),
            interval,
        }
    };
    let user = |t: usize, bound: f64| {
        let interval = Interval::of(
            user.iter()
                .find(|u| u.threads == t)
                .map_or(&[][..], |u| &u.ratio_b_over_a_rounds),
        );
        Target {
            effect: format!("compute / nop calls/s per round, {t} thread(s)"),
            bound: format!(">= {bound}"),
            verdict: interval.at_least(bound),
            interval,
        }
    };
    let ms = |k: &str, what: &str, bound: f64| {
        let interval = Interval::of(&samples(removal, k));
        Target {
            effect: format!("rmmod-wait's own time, first attempt to gone (ms), {what}"),
            bound: format!("<= {bound}"),
            verdict: interval.at_most(bound),
            interval,
        }
    };
    Targets {
        lookup_le_2x_reference_1cpu: lookup_target(points, 1),
        lookup_le_2x_reference_all_cpus: lookup_target(points, max_cpus),
        userspace_ratio_1_thread_ge_0_90: user(1, 0.90),
        userspace_ratio_4_threads_ge_0_75: user(4, 0.75),
        removal_after_load_stops_le_20_ms: ms("rmmod_wait_idle_internal", "idle", 20.0),
        removal_under_load_le_1_s: ms("rmmod_wait_load_internal", "under load", 1000.0),
        not_slower_than_modprobe_idle_syscalls: vs_modprobe("idle"),
        not_slower_than_modprobe_load_syscalls: vs_modprobe("load"),
    }
}

pub fn reported(removal: Option<&BTreeMap<String, RemovalSeries>>) -> Reported {
    let i = |k: &str| Interval::of(&samples(removal, k));
    Reported {
        rmmod_wait_idle_external_ms: i("rmmod_wait_idle_external"),
        modprobe_idle_external_ms: i("modprobe_wait_idle_external"),
        rmmod_wait_load_external_ms: i("rmmod_wait_load_external"),
        modprobe_load_external_ms: i("modprobe_wait_load_external"),
    }
}

/// `host-speed-{start,end}.json`: variant (a) on one CPU, if the run measured it.
pub fn host_speed(dir: &Path) -> Result<Option<HostSpeed>, String> {
    let bare = |f: &str| -> Result<Option<Interval>, String> {
        Ok(read_optional::<KernelRun>(&dir.join(f))?
            .and_then(|k| point(&k.points, Variant::ABareCall, 1).map(|p| Interval::of(&p.reps))))
    };
    Ok(
        match (bare("host-speed-start.json")?, bare("host-speed-end.json")?) {
            (Some(start), Some(end)) => Some(HostSpeed {
                changed: start.hi < end.lo || end.hi < start.lo,
                bare_call_ns_start: start,
                bare_call_ns_end: end,
            }),
            _ => None,
        },
    )
}

/// The targets as a table: effect, median with its 95 % interval, pairs, bound, verdict; then
/// what is reported without a verdict, and the host's speed at both ends of the run.
pub fn markdown(r: &Results) -> Result<String, String> {
    let mut md = String::from(
        "\n| target | effect | median [95 % interval] | n | bound | verdict |\n|---|---|---|---|---|---|\n",
    );
    let Value::Object(targets) = serde_json::to_value(&r.targets).map_err(|e| e.to_string())?
    else {
        return Err("targets: not an object".into());
    };
    for (name, t) in targets {
        let t: Target = serde_json::from_value(t).map_err(|e| e.to_string())?;
        md.push_str(&format!(
            "| {name} | {} | {} | {} | {} | {} |\n",
            t.effect,
            t.interval.text(3),
            t.interval.n,
            t.bound,
            t.verdict.text()
        ));
    }
    let rep = &r.reported;
    md.push_str("\nReported, not judged (a whole command's time, its process start included):\n\n");
    for (what, i) in [
        ("rmmod-wait, idle", &rep.rmmod_wait_idle_external_ms),
        ("modprobe -r --wait, idle", &rep.modprobe_idle_external_ms),
        ("rmmod-wait, under load", &rep.rmmod_wait_load_external_ms),
        (
            "modprobe -r --wait, under load",
            &rep.modprobe_load_external_ms,
        ),
    ] {
        md.push_str(&format!("- {what}: {} ms (n {})\n", i.text(1), i.n));
    }
    if let Some(h) = &r.host_speed {
        md.push_str(&format!(
            "\nHost speed, the bare call on 1 CPU: {} ns/op at the start, {} at the end{}.\n",
            h.bare_call_ns_start.text(1),
            h.bare_call_ns_end.text(1),
            if h.changed {
                ": **the host changed speed under the run**"
            } else {
                ""
            }
        ));
    }
    Ok(md)
}

/// The targets for the verdicts plot: effect relative to bound, oriented so that above 1 is
/// the side that meets it (bound / x for "<=" bounds, x / bound for ">=").
pub fn verdict_rows(targets: &Targets) -> Result<Vec<plot::VerdictRow>, String> {
    let Value::Object(all) = serde_json::to_value(targets).map_err(|e| e.to_string())? else {
        return Err("targets: not an object".into());
    };
    all.into_iter()
        .map(|(name, t)| {
            let t: Target = serde_json::from_value(t).map_err(|e| e.to_string())?;
            let (side, bound) = t.bound.split_once(' ').ok_or("bound without a side")?;
            let bound: f64 = bound.parse().map_err(|e| format!("bound {bound}: {e}"))?;
            let i = t.interval;
            // For "<=", a value at or below 0 is as far on the good side as it gets.
            let headroom = |x: f64| if x <= 0.0 { f64::INFINITY } else { bound / x };
            let (a, median, b) = if side == "<=" {
                (headroom(i.hi), headroom(i.median), headroom(i.lo))
            } else {
                (i.lo / bound, i.median / bound, i.hi / bound)
            };
            let (lo, hi) = (a.min(b), a.max(b));
            Ok(plot::VerdictRow {
                name,
                lo,
                median,
                hi,
                verdict: t.verdict.text(),
            })
        })
        .collect()
}

/// The targets of several `results.json` side by side: a Markdown table (a column per run:
/// median [interval] and verdict), and the targets met in one run and not met in another.
pub fn compare(files: &[std::path::PathBuf]) -> Result<(String, Vec<String>), String> {
    #[derive(Deserialize)]
    struct Head {
        targets: BTreeMap<String, Target>,
    }
    let runs = files
        .iter()
        .map(|f| {
            let s = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
            serde_json::from_str::<Head>(&s).map_err(|e| format!("{}: {e}", f.display()))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let mut md = String::from("| target | bound |");
    for i in 1..=runs.len() {
        md.push_str(&format!(" run {i} |"));
    }
    md.push_str("\n|---|---|");
    md.push_str(&"---|".repeat(runs.len()));
    md.push('\n');
    let mut flips = Vec::new();
    for (name, first) in &runs[0].targets {
        md.push_str(&format!("| {name} | {} |", first.bound));
        let mut seen = Vec::new();
        for run in &runs {
            match run.targets.get(name) {
                Some(t) => {
                    md.push_str(&format!(" {} {} |", t.interval.text(3), t.verdict.text()));
                    seen.push(t.verdict);
                }
                None => md.push_str(" - |"),
            }
        }
        if seen.contains(&Verdict::Met) && seen.contains(&Verdict::NotMet) {
            flips.push(name.clone());
        }
        md.push('\n');
    }
    Ok((md, flips))
}
