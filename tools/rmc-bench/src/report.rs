// SPDX-License-Identifier: GPL-2.0

//! `rmc-bench report`: the raw files `bench/run.sh` leaves in a directory, read into typed
//! structs, turned into `results.json` (with the targets' verdicts), `results.md` and the plots.

use std::{collections::BTreeMap, fs, path::Path};

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::Value;

use crate::{
    plot,
    run::{KernelPoint, KernelRun, Variant},
    targets::{self, HostSpeed, Reported, Targets},
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

/// NaN for each `null` of a list (a sample that was not measured keeps its place in the pairs).
fn nans_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    Ok(Vec::<Option<f64>>::deserialize(d)?
        .into_iter()
        .map(|x| x.unwrap_or(f64::NAN))
        .collect())
}

/// One series of `removal.json`: its samples in repetition order (`null` where one was not
/// measured), so that the same index of two series is one pair.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct RemovalSeries {
    #[serde(deserialize_with = "nan_if_null")]
    pub median_ms: f64,
    #[serde(deserialize_with = "nans_if_null")]
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
    /// Each round's calls/s of nop, echo and compute, run one after the other.
    #[serde(default)]
    pub calls_per_s_rounds: Vec<[f64; 3]>,
    /// Each round's compute/nop ratio (the two ran next to each other).
    #[serde(default, deserialize_with = "nans_if_null")]
    pub ratio_b_over_a_rounds: Vec<f64>,
    /// Median of the per-round compute/echo ratios.
    #[serde(deserialize_with = "nan_if_null")]
    pub ratio_b_over_echo: f64,
}

/// `results.json`.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Results {
    pub environment: Option<Environment>,
    pub kernel_microbench: KernelRun,
    pub userspace_throughput: Vec<UserRow>,
    pub removal_latency: Option<BTreeMap<String, RemovalSeries>>,
    pub targets: Targets,
    pub reported: Reported,
    pub host_speed: Option<HostSpeed>,
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
pub(crate) fn read_optional<T: DeserializeOwned>(p: &Path) -> Result<Option<T>, String> {
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
        ratio_b_over_a_rounds: rounds.iter().map(|r| r[2] / r[0]).collect(),
        calls_per_s_rounds: rounds.clone(),
        ratio_b_over_echo: med_ratio(2, 1),
    })
}

pub(crate) fn point(points: &[KernelPoint], v: Variant, cpus: usize) -> Option<&KernelPoint> {
    points
        .iter()
        .find(|p| p.variant == v.name() && p.cpus == cpus)
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
    md.push_str(&targets::markdown(r)?);
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
        targets: targets::targets(&kernel.points, max_cpus, &user, removal.as_ref()),
        reported: targets::reported(removal.as_ref()),
        host_speed: targets::host_speed(dir)?,
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
    plot::verdicts(
        &out.join("verdicts.svg"),
        &targets::verdict_rows(&results.targets)?,
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
