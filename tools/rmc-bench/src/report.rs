// SPDX-License-Identifier: GPL-2.0

//! `rmc-bench report`: the raw files `bench/run.sh` leaves in a directory, read into typed
//! structs, turned into `results.json` (with the targets' verdicts), `results.md` and the plots.

use std::{collections::BTreeMap, fs, path::Path};

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::Value;

use crate::{
    plot,
    run::{KernelPoint, KernelRun, Variant},
};

/// `env.json`: where the run was made. Only the flavor is read; the rest is kept as written.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Environment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor: Option<String>,
    #[serde(flatten)]
    pub rest: serde_json::Map<String, Value>,
}

/// A figure that may be missing: NaN in memory, `null` in JSON (serde_json writes NaN as null).
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// One series of `removal.json`.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct RemovalSeries {
    pub median_ms: f64,
    pub samples_ms: Vec<f64>,
}

/// Userspace throughput at one thread count: medians over the rounds.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct UserRow {
    pub threads: usize,
    pub rounds: usize,
    #[serde(deserialize_with = "nan_if_null")]
    pub nop_calls_per_s: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub echo_calls_per_s: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub compute_calls_per_s: f64,
    /// Median of the per-round compute/nop ratios.
    #[serde(deserialize_with = "nan_if_null")]
    pub ratio_b_over_a: f64,
    /// Median of the per-round compute/echo ratios.
    #[serde(deserialize_with = "nan_if_null")]
    pub ratio_b_over_echo: f64,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct LookupTarget {
    #[serde(deserialize_with = "nan_if_null")]
    pub c_minus_a: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub two_b_minus_a: f64,
    pub met: bool,
    /// In how many paired repetitions it held ("k/n").
    pub reps_met: String,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct RatioTarget {
    #[serde(deserialize_with = "nan_if_null")]
    pub ratio: f64,
    pub met: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct MsTarget {
    #[serde(deserialize_with = "nan_if_null")]
    pub ms: f64,
    pub met: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct VsModprobe {
    #[serde(deserialize_with = "nan_if_null")]
    pub rmmod_wait_ms: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub modprobe_ms: f64,
    pub met: bool,
}

/// The targets and whether this run met them (NaN, an absent figure, is never met).
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Targets {
    pub lookup_le_2x_reference_1cpu: LookupTarget,
    pub lookup_le_2x_reference_all_cpus: LookupTarget,
    pub userspace_ratio_1_thread_ge_0_90: RatioTarget,
    pub userspace_ratio_4_threads_ge_0_75: RatioTarget,
    pub removal_after_load_stops_le_20_ms: MsTarget,
    pub removal_under_load_le_1_s: MsTarget,
    pub not_slower_than_modprobe_idle: VsModprobe,
    pub not_slower_than_modprobe_load: VsModprobe,
    /// The same comparisons without process start-up: first delete_module to last, by strace.
    pub not_slower_than_modprobe_idle_syscalls: VsModprobe,
    pub not_slower_than_modprobe_load_syscalls: VsModprobe,
}

/// `results.json`.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Results {
    pub environment: Option<Environment>,
    pub kernel_microbench: KernelRun,
    pub userspace_throughput: Vec<UserRow>,
    pub removal_latency: Option<BTreeMap<String, RemovalSeries>>,
    pub targets: Targets,
    /// The `rmc-load --json` report of the timeline run, as written (older raw directories hold
    /// older versions of it).
    pub timeline: Option<Value>,
    pub timeline_marks: Option<BTreeMap<String, f64>>,
}

/// The part of an `rmc-load --json` report ([`rmc::report::LoadReport`]) the report needs: raw
/// directories of older runs hold older versions of the rest.
#[derive(Deserialize)]
struct Throughput {
    calls_per_s: f64,
}

/// The same for the timeline plot: `(t_s, ok, enodev, other)` per interval.
#[derive(Deserialize)]
pub struct Timeline {
    pub timeline: Vec<(f64, u64, u64, u64)>,
}

fn read<T: DeserializeOwned>(p: &Path) -> Result<T, String> {
    let s = fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_json::from_str(&s).map_err(|e| format!("{}: {e}", p.display()))
}

/// `read`, but `None` if the file does not exist (a part of the run that was skipped).
fn read_optional<T: DeserializeOwned>(p: &Path) -> Result<Option<T>, String> {
    if p.exists() {
        read(p).map(Some)
    } else {
        Ok(None)
    }
}

fn write(p: &Path, contents: String) -> Result<(), String> {
    fs::write(p, contents).map_err(|e| format!("{}: {e}", p.display()))
}

/// calls/s of (nop, echo, compute) per round at `threads`: `user-MIX-T-R.json` for R = 1, 2, ...,
/// or the single `user-MIX-T.json` of older raw directories (echo NaN where it is missing).
fn user_rounds(dir: &Path, threads: usize) -> Result<Vec<[f64; 3]>, String> {
    let file = |mix: &str, suffix: &str| dir.join(format!("user-{mix}-{threads}{suffix}.json"));
    let calls = |mix: &str, suffix: &str| -> Result<f64, String> {
        read::<Throughput>(&file(mix, suffix)).map(|r| r.calls_per_s)
    };
    let mut rounds = Vec::new();
    for r in 1.. {
        let suffix = format!("-{r}");
        if !file("nop", &suffix).exists() {
            break;
        }
        rounds.push([
            calls("nop", &suffix)?,
            calls("echo", &suffix)?,
            calls("compute", &suffix)?,
        ]);
    }
    if rounds.is_empty() {
        rounds.push([
            calls("nop", "")?,
            calls("echo", "").unwrap_or(f64::NAN),
            calls("compute", "")?,
        ]);
    }
    Ok(rounds)
}

/// Userspace throughput. Rounds interleave the mixes (nop echo compute nop echo compute ...),
/// so each round's ratios compare runs made next to each other; the row gives median calls/s
/// and the median of the per-round ratios.
fn user_row(dir: &Path, threads: usize) -> Result<UserRow, String> {
    let rounds = user_rounds(dir, threads)?;
    let med = |k: usize| rmc::median(&mut rounds.iter().map(|r| r[k]).collect::<Vec<_>>());
    let med_ratio = |num: usize, den: usize| {
        rmc::median(&mut rounds.iter().map(|r| r[num] / r[den]).collect::<Vec<_>>())
    };
    Ok(UserRow {
        threads,
        rounds: rounds.len(),
        nop_calls_per_s: med(0),
        echo_calls_per_s: med(1),
        compute_calls_per_s: med(2),
        ratio_b_over_a: med_ratio(2, 0),
        ratio_b_over_echo: med_ratio(2, 1),
    })
}

fn point(points: &[KernelPoint], v: Variant, cpus: usize) -> Option<&KernelPoint> {
    points
        .iter()
        .find(|p| p.variant == v.name() && p.cpus == cpus)
}

/// The lookup target at `cpus`: the dispatch's extra cost over the bare call (c - a) at most
/// twice the reference's (2 (b - a)); per repetition too (a, b and c of one repetition ran back
/// to back, so each is a paired comparison).
fn lookup_target(points: &[KernelPoint], cpus: usize) -> LookupTarget {
    let ns = |v| point(points, v, cpus).map_or(f64::NAN, |p| p.ns_per_op);
    let reps = |v| {
        point(points, v, cpus)
            .map(|p| p.reps.clone())
            .unwrap_or_default()
    };
    let (a, b, c) = (
        ns(Variant::ABareCall),
        ns(Variant::BGetCallPut),
        ns(Variant::CFullDispatch),
    );
    let (ra, rb, rc) = (
        reps(Variant::ABareCall),
        reps(Variant::BGetCallPut),
        reps(Variant::CFullDispatch),
    );
    let n = ra.len().min(rb.len()).min(rc.len());
    let met = (0..n)
        .filter(|&i| rc[i] - ra[i] <= 2.0 * (rb[i] - ra[i]))
        .count();
    LookupTarget {
        c_minus_a: c - a,
        two_b_minus_a: 2.0 * (b - a),
        met: c - a <= 2.0 * (b - a),
        reps_met: format!("{met}/{n}"),
    }
}

fn targets(
    points: &[KernelPoint],
    max_cpus: usize,
    user: &[UserRow],
    removal: Option<&BTreeMap<String, RemovalSeries>>,
) -> Targets {
    let ms = |k: &str| {
        removal
            .and_then(|r| r.get(k))
            .map_or(f64::NAN, |s| s.median_ms)
    };
    let vs_modprobe = |what: &str| {
        let (r, m) = (
            ms(&format!("rmmod_wait_{what}")),
            ms(&format!("modprobe_wait_{what}")),
        );
        VsModprobe {
            rmmod_wait_ms: r,
            modprobe_ms: m,
            met: r <= m,
        }
    };
    let ratio = |t: usize| {
        user.iter()
            .find(|u| u.threads == t)
            .map_or(f64::NAN, |u| u.ratio_b_over_a)
    };
    let ms_target = |k: &str, bound: f64| MsTarget {
        ms: ms(k),
        met: ms(k) <= bound,
    };
    Targets {
        lookup_le_2x_reference_1cpu: lookup_target(points, 1),
        lookup_le_2x_reference_all_cpus: lookup_target(points, max_cpus),
        userspace_ratio_1_thread_ge_0_90: RatioTarget {
            ratio: ratio(1),
            met: ratio(1) >= 0.90,
        },
        userspace_ratio_4_threads_ge_0_75: RatioTarget {
            ratio: ratio(4),
            met: ratio(4) >= 0.75,
        },
        removal_after_load_stops_le_20_ms: ms_target("rmmod_wait_idle_internal", 20.0),
        removal_under_load_le_1_s: ms_target("rmmod_wait_load_internal", 1000.0),
        not_slower_than_modprobe_idle: vs_modprobe("idle_external"),
        not_slower_than_modprobe_load: vs_modprobe("load_external"),
        not_slower_than_modprobe_idle_syscalls: vs_modprobe("idle_syscalls"),
        not_slower_than_modprobe_load_syscalls: vs_modprobe("load_syscalls"),
    }
}

fn markdown(r: &Results, max_cpus: usize) -> Result<String, String> {
    let points = &r.kernel_microbench.points;
    let mut md = String::from("| variant | ");
    for n in 1..=max_cpus {
        md.push_str(&format!("{n} CPU{} | ", if n > 1 { "s" } else { "" }));
    }
    md.push_str("\n|---|");
    md.push_str(&"---|".repeat(max_cpus));
    md.push('\n');
    for v in Variant::ALL {
        md.push_str(&format!("| {} | ", v.name()));
        for n in 1..=max_cpus {
            let ns = point(points, v, n).map_or(f64::NAN, |p| p.ns_per_op);
            md.push_str(&format!("{ns:.1} | "));
        }
        md.push('\n');
    }
    md.push_str(
        "\n| threads | a: nop calls/s | echo calls/s | b: compute calls/s | b/a | b/echo |\n\
         |---|---|---|---|---|---|\n",
    );
    for u in &r.userspace_throughput {
        md.push_str(&format!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.3} | {:.3} |\n",
            u.threads,
            u.nop_calls_per_s,
            u.echo_calls_per_s,
            u.compute_calls_per_s,
            u.ratio_b_over_a,
            u.ratio_b_over_echo
        ));
    }
    if let Some(removal) = &r.removal_latency {
        md.push_str("\n| removal | median ms | samples ms |\n|---|---|---|\n");
        for (k, s) in removal {
            let samples: Vec<String> = s.samples_ms.iter().map(f64::to_string).collect();
            md.push_str(&format!(
                "| {k} | {:.1} | [{}] |\n",
                s.median_ms,
                samples.join(",")
            ));
        }
    }
    let targets = serde_json::to_string_pretty(&r.targets).map_err(|e| e.to_string())?;
    md.push_str(&format!("\nTargets: {targets}\n"));
    Ok(md)
}

/// Reads the raw files in `dir`, writes `results.json`, `results.md` and the plots into `out`.
pub fn report(dir: &Path, out: &Path) -> Result<(), String> {
    let kernel: KernelRun = read(&dir.join("kernel.json"))?;
    let max_cpus = kernel.points.iter().map(|p| p.cpus).max().unwrap_or(1);
    let user = [1, 2, 4]
        .into_iter()
        .map(|t| user_row(dir, t))
        .collect::<Result<Vec<_>, _>>()?;
    let removal: Option<BTreeMap<String, RemovalSeries>> =
        read_optional(&dir.join("removal.json"))?;
    let results = Results {
        environment: read_optional(&dir.join("env.json"))?,
        targets: targets(&kernel.points, max_cpus, &user, removal.as_ref()),
        kernel_microbench: kernel,
        userspace_throughput: user,
        removal_latency: removal,
        timeline: read_optional(&dir.join("timeline.json"))?,
        timeline_marks: read_optional(&dir.join("timeline-marks.json"))?,
    };
    fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    write(
        &out.join("results.json"),
        serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?,
    )?;
    write(&out.join("results.md"), markdown(&results, max_cpus)?)?;
    plot::kernel(
        &out.join("kernel-ns-per-op.svg"),
        &results.kernel_microbench.points,
        max_cpus,
    )?;
    plot::user(
        &out.join("userspace-calls-per-s.svg"),
        &results.userspace_throughput,
    )?;
    if let Some(timeline) = read_optional::<Timeline>(&dir.join("timeline.json"))? {
        let marks = results.timeline_marks.clone().unwrap_or_default();
        plot::timeline(&out.join("timeline.svg"), &timeline, &marks)?;
    }
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// Puts `results` (a results.json) into `index` under its environment's flavor; the other
/// flavors' entries are kept as they are.
pub fn update_index(results: &Path, index: &Path) -> Result<(), String> {
    /// The part of a results.json that says where it belongs. (The entry itself is copied as
    /// JSON: NaN figures were written as null, which no f64 reads back.)
    #[derive(Deserialize)]
    struct Head {
        environment: Option<Environment>,
    }
    let head: Head = read(results)?;
    let entry: Value = read(results)?;
    let flavor = head
        .environment
        .and_then(|e| e.flavor)
        .unwrap_or_else(|| "unknown".into());
    let mut all: BTreeMap<String, Value> = read_optional(index)?.unwrap_or_default();
    all.insert(flavor, entry);
    write(
        index,
        serde_json::to_string_pretty(&all).map_err(|e| e.to_string())?,
    )
}
