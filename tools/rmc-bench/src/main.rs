// SPDX-License-Identifier: GPL-2.0

//! `rmc-bench`: what the module reference discipline costs.
//!
//! `rmc-bench kernel` runs the consumer's in-kernel microbenchmark (`RMC_IOC_BENCH`) for the three
//! variants on 1..=N CPUs at once: the consumer starts one kthread bound to each CPU and releases
//! them together once all are waiting. `rmc-bench report DIR` turns the raw JSON
//! files `bench/run.sh` leaves in DIR into `results.json`, a Markdown table and SVG plots.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::{Parser, Subcommand};
use plotters::prelude::*;
use rmc::{Device, BENCH_BARE, BENCH_DISPATCH, BENCH_GET_PUT};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// In-kernel microbenchmarks of the module reference discipline, and the report with plots.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the in-kernel variants at 1..=CPUS concurrent CPUs; JSON on stdout, table on stderr.
    Kernel {
        /// Iterations per thread and run (1 to 100000000).
        #[arg(short = 'n', long, default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..=rmc::BENCH_MAX_ITERS))]
        iters: u64,
        /// Highest number of CPUs to run on at once, 1 or more (default: all online).
        #[arg(long, value_parser = parse_at_least_one)]
        cpus: Option<usize>,
        /// Run only the point at CPUS, not every count from 1 up to it.
        #[arg(long, requires = "cpus")]
        exact: bool,
        /// Repetitions of each point; the median is reported.
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// Run only these variants (default: all), e.g. `--variant c_full_dispatch`.
        #[arg(long, value_parser = parse_variant)]
        variant: Vec<u32>,
        #[arg(short, long, default_value = "rust_provider")]
        provider: String,
        #[arg(long, default_value = Device::DEFAULT_PATH)]
        device: String,
    },
    /// Build results.json, results.md and the SVG plots from the raw files in DIR.
    Report {
        dir: PathBuf,
        /// Where to write (default: DIR/..).
        #[arg(short, long)]
        out: Option<PathBuf>,
        /// Also store this run's results.json under its kernel flavor in this index file
        /// (created if missing; other flavors' entries are kept).
        #[arg(long)]
        index: Option<PathBuf>,
    },
}

const VARIANTS: [(u32, &str); 3] = [
    (BENCH_BARE, "a_bare_call"),
    (BENCH_GET_PUT, "b_get_call_put"),
    (BENCH_DISPATCH, "c_full_dispatch"),
];

#[derive(Serialize, Deserialize, Debug, Clone)]
struct KernelPoint {
    variant: String,
    cpus: usize,
    /// Median over repetitions of the mean ns/op across the concurrent threads.
    ns_per_op: f64,
    /// Every repetition's mean, for the record.
    reps: Vec<f64>,
}

fn parse_variant(s: &str) -> Result<u32, String> {
    VARIANTS
        .iter()
        .find(|(_, name)| *name == s || name.split('_').next() == Some(s))
        .map(|(v, _)| *v)
        .ok_or_else(|| {
            let names: Vec<_> = VARIANTS.iter().map(|(_, n)| *n).collect();
            format!(
                "unknown variant '{s}' (one of {}, or its letter)",
                names.join(", ")
            )
        })
}

/// A count of 1 or more.
fn parse_at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("'{s}' is not a whole number of 1 or more")),
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// One run: `cpus` kthreads in the consumer, one bound to each of the first `cpus` online CPUs,
/// released together; the mean ns/op over the threads.
fn run_point(
    dev: &Device,
    provider: &[u8; rmc::NAME_LEN],
    variant: u32,
    cpus: usize,
    iters: u64,
) -> Result<f64, String> {
    let n = u32::try_from(cpus).map_err(|_| format!("{cpus} CPUs: too many"))?;
    let a = dev.bench(provider, variant, iters, n).map_err(|e| {
        let hint = if e == nix::errno::Errno::EINVAL {
            " (more CPUs than are online?)"
        } else {
            ""
        };
        format!("RMC_IOC_BENCH on {cpus} CPUs: {e}{hint}")
    })?;
    Ok(a.ns as f64 / (iters as f64 * cpus as f64))
}

fn kernel(
    device: &str,
    provider: &str,
    iters: u64,
    cpus: Option<usize>,
    exact: bool,
    reps: usize,
    only: &[u32],
) -> Result<(), String> {
    let dev = Device::open(device).map_err(|e| format!("cannot open {device}: {e}"))?;
    let name = rmc::name_buf(provider).ok_or("bad provider name")?;
    let max = cpus.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut points = Vec::new();
    let min = if exact { max } else { 1 };
    let variants: Vec<_> = VARIANTS
        .iter()
        .filter(|(v, _)| only.is_empty() || only.contains(v))
        .collect();
    for n in min..=max {
        // Repetitions interleave the variants (a b c a b c ...): the emulator's slow spells then
        // hit every variant alike instead of skewing one of them.
        let mut r = vec![Vec::new(); variants.len()];
        for _ in 0..reps.max(1) {
            for (i, (v, _)) in variants.iter().enumerate() {
                r[i].push(run_point(&dev, &name, *v, n, iters)?);
            }
        }
        for ((_, vname), r) in variants.iter().zip(r) {
            let ns = median(&mut r.clone());
            eprintln!("{vname:16} cpus={n} {ns:8.1} ns/op  (reps {r:.1?})");
            points.push(KernelPoint {
                variant: (*vname).into(),
                cpus: n,
                ns_per_op: ns,
                reps: r,
            });
        }
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({ "iters": iters, "points": points }))
            .map_err(|e| e.to_string())?
    );
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Report.

fn read_json(p: &Path) -> Result<Value, String> {
    let s = fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_json::from_str(&s).map_err(|e| format!("{}: {e}", p.display()))
}

fn f(v: &Value, k: &str) -> f64 {
    v.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

/// calls/s of (nop, echo, compute) per round at `threads`: `user-MIX-T-R.json` for R = 1, 2, ...,
/// or the single `user-MIX-T.json` of older raw directories (echo NaN where it is missing).
fn user_rounds(dir: &Path, threads: usize) -> Result<Vec<[f64; 3]>, String> {
    let calls = |mix: &str, suffix: &str| -> Result<f64, String> {
        let v = read_json(&dir.join(format!("user-{mix}-{threads}{suffix}.json")))?;
        Ok(f(&v, "calls_per_s"))
    };
    let mut rounds = Vec::new();
    for r in 1.. {
        let suffix = format!("-{r}");
        if !dir
            .join(format!("user-nop-{threads}{suffix}.json"))
            .exists()
        {
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

fn report(dir: &Path, out: &Path) -> Result<(), String> {
    let kernel = read_json(&dir.join("kernel.json"))?;
    let env = read_json(&dir.join("env.json")).unwrap_or(Value::Null);
    let points: Vec<KernelPoint> =
        serde_json::from_value(kernel["points"].clone()).map_err(|e| e.to_string())?;
    let at = |variant: &str, cpus: usize| {
        points
            .iter()
            .find(|p| p.variant == variant && p.cpus == cpus)
            .map_or(f64::NAN, |p| p.ns_per_op)
    };
    let max_cpus = points.iter().map(|p| p.cpus).max().unwrap_or(1);

    // Userspace throughput: rmc-load JSON per (mix, threads, round). Rounds interleave the mixes
    // (nop echo compute nop echo compute ...), so each round's ratios compare runs made next to
    // each other; the report gives median calls/s and the median of the per-round ratios.
    let mut user = Vec::new();
    for threads in [1, 2, 4] {
        let rounds = user_rounds(dir, threads)?;
        let med = |k: usize| median(&mut rounds.iter().map(|r| r[k]).collect::<Vec<_>>());
        let med_ratio = |num: usize, den: usize| {
            median(&mut rounds.iter().map(|r| r[num] / r[den]).collect::<Vec<_>>())
        };
        let (a, e, b) = (med(0), med(1), med(2));
        user.push(serde_json::json!({
            "threads": threads, "rounds": rounds.len(),
            "nop_calls_per_s": a, "echo_calls_per_s": e, "compute_calls_per_s": b,
            "ratio_b_over_a": med_ratio(2, 0), "ratio_b_over_echo": med_ratio(2, 1),
        }));
    }

    let removal = read_json(&dir.join("removal.json")).unwrap_or(Value::Null);
    // Median of a removal series (NaN when absent: modprobe may be missing; NaN is never "met").
    let ms = |k: &str| f(&removal[k], "median_ms");
    // rmmod-wait against modprobe in one situation ("idle_external", "load_syscalls", ...).
    let vs_modprobe = |what: &str| {
        let (r, m) = (
            ms(&format!("rmmod_wait_{what}")),
            ms(&format!("modprobe_wait_{what}")),
        );
        serde_json::json!({ "rmmod_wait_ms": r, "modprobe_ms": m, "met": r <= m })
    };
    let timeline = read_json(&dir.join("timeline.json")).unwrap_or(Value::Null);
    let marks = read_json(&dir.join("timeline-marks.json")).unwrap_or(Value::Null);

    // Targets.
    // The lookup target per repetition: a, b and c of one repetition ran back to back, so each
    // repetition is a paired comparison; "k/n" says in how many of them it held.
    let reps_met = |cpus: usize| {
        let reps = |v: &str| {
            points
                .iter()
                .find(|p| p.variant == v && p.cpus == cpus)
                .map(|p| p.reps.clone())
                .unwrap_or_default()
        };
        let (a, b, c) = (
            reps("a_bare_call"),
            reps("b_get_call_put"),
            reps("c_full_dispatch"),
        );
        let n = a.len().min(b.len()).min(c.len());
        let met = (0..n)
            .filter(|&i| c[i] - a[i] <= 2.0 * (b[i] - a[i]))
            .count();
        format!("{met}/{n}")
    };
    let (a1, b1, c1) = (
        at("a_bare_call", 1),
        at("b_get_call_put", 1),
        at("c_full_dispatch", 1),
    );
    let (an, bn, cn) = (
        at("a_bare_call", max_cpus),
        at("b_get_call_put", max_cpus),
        at("c_full_dispatch", max_cpus),
    );
    let ratio = |t: usize| {
        user.iter()
            .find(|u| u["threads"] == t)
            .map_or(f64::NAN, |u| f(u, "ratio_b_over_a"))
    };
    let targets = serde_json::json!({
        "lookup_le_2x_reference_1cpu": {
            "c_minus_a": c1 - a1, "two_b_minus_a": 2.0 * (b1 - a1), "met": c1 - a1 <= 2.0 * (b1 - a1),
            "reps_met": reps_met(1),
        },
        "lookup_le_2x_reference_all_cpus": {
            "c_minus_a": cn - an, "two_b_minus_a": 2.0 * (bn - an), "met": cn - an <= 2.0 * (bn - an),
            "reps_met": reps_met(max_cpus),
        },
        "userspace_ratio_1_thread_ge_0_90": { "ratio": ratio(1), "met": ratio(1) >= 0.90 },
        "userspace_ratio_4_threads_ge_0_75": { "ratio": ratio(4), "met": ratio(4) >= 0.75 },
        "removal_after_load_stops_le_20_ms": { "ms": ms("rmmod_wait_idle_internal"), "met": ms("rmmod_wait_idle_internal") <= 20.0 },
        "removal_under_load_le_1_s": { "ms": ms("rmmod_wait_load_internal"), "met": ms("rmmod_wait_load_internal") <= 1000.0 },
        "not_slower_than_modprobe_idle": vs_modprobe("idle_external"),
        "not_slower_than_modprobe_load": vs_modprobe("load_external"),
        // The same comparison without process start-up: first delete_module to last, by strace.
        "not_slower_than_modprobe_idle_syscalls": vs_modprobe("idle_syscalls"),
        "not_slower_than_modprobe_load_syscalls": vs_modprobe("load_syscalls"),
    });
    let results = serde_json::json!({
        "environment": env,
        "kernel_microbench": kernel,
        "userspace_throughput": user,
        "removal_latency": removal,
        "targets": targets,
        "timeline": timeline,
        "timeline_marks": marks,
    });
    fs::create_dir_all(out).map_err(|e| e.to_string())?;
    fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;

    // Markdown table.
    let mut md = String::new();
    md.push_str("| variant | ");
    for n in 1..=max_cpus {
        md.push_str(&format!("{n} CPU{} | ", if n > 1 { "s" } else { "" }));
    }
    md.push_str("\n|---|");
    md.push_str(&"---|".repeat(max_cpus));
    md.push('\n');
    for (_, v) in VARIANTS {
        md.push_str(&format!("| {v} | "));
        for n in 1..=max_cpus {
            md.push_str(&format!("{:.1} | ", at(v, n)));
        }
        md.push('\n');
    }
    md.push_str(
        "\n| threads | a: nop calls/s | echo calls/s | b: compute calls/s | b/a | b/echo |\n\
         |---|---|---|---|---|---|\n",
    );
    for u in &user {
        md.push_str(&format!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.3} | {:.3} |\n",
            u["threads"],
            f(u, "nop_calls_per_s"),
            f(u, "echo_calls_per_s"),
            f(u, "compute_calls_per_s"),
            f(u, "ratio_b_over_a"),
            f(u, "ratio_b_over_echo")
        ));
    }
    if let Some(obj) = removal.as_object() {
        md.push_str("\n| removal | median ms | samples ms |\n|---|---|---|\n");
        for (k, v) in obj {
            md.push_str(&format!(
                "| {k} | {:.1} | {} |\n",
                f(v, "median_ms"),
                v["samples_ms"]
            ));
        }
    }
    md.push_str(&format!(
        "\nTargets: {}\n",
        serde_json::to_string_pretty(&targets).map_err(|e| e.to_string())?
    ));
    fs::write(out.join("results.md"), md).map_err(|e| e.to_string())?;

    plot_kernel(&out.join("kernel-ns-per-op.svg"), &points, max_cpus)?;
    plot_user(&out.join("userspace-calls-per-s.svg"), &user)?;
    if !timeline.is_null() {
        plot_timeline(&out.join("timeline.svg"), &timeline, &marks)?;
    }
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// Puts `results` (a results.json) into `index` under its environment's flavor.
fn update_index(results: &Path, index: &Path) -> Result<(), String> {
    let r = read_json(results)?;
    let flavor = r["environment"]["flavor"]
        .as_str()
        .unwrap_or("unknown")
        .to_string();
    let mut all = if index.exists() {
        read_json(index)?
    } else {
        serde_json::json!({})
    };
    let obj = all
        .as_object_mut()
        .ok_or_else(|| format!("{}: not a JSON object", index.display()))?;
    obj.insert(flavor, r);
    fs::write(
        index,
        serde_json::to_string_pretty(&all).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("{}: {e}", index.display()))
}

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("plot: {e:?}")
}

const COLORS: [RGBColor; 3] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
];

/// A line chart with markers: one series per `(label, points)`, y from 0.
struct LineChart<'a> {
    caption: &'a str,
    x_desc: &'a str,
    y_desc: &'a str,
    x_range: std::ops::Range<f64>,
    legend: SeriesLabelPosition,
}

impl LineChart<'_> {
    fn draw(self, path: &Path, series: &[(String, Vec<(f64, f64)>)]) -> Result<(), String> {
        let ymax = series
            .iter()
            .flat_map(|(_, s)| s.iter().map(|p| p.1))
            .fold(0.0, f64::max)
            * 1.15;
        // One label per whole unit (CPUs, threads).
        let x_labels = (self.x_range.end - self.x_range.start).round() as usize + 1;
        let root = SVGBackend::new(path, (720, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut c = ChartBuilder::on(&root)
            .caption(self.caption, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(72)
            .build_cartesian_2d(self.x_range, 0f64..ymax.max(1.0))
            .map_err(err)?;
        c.configure_mesh()
            .x_desc(self.x_desc)
            .y_desc(self.y_desc)
            .x_labels(x_labels)
            .draw()
            .map_err(err)?;
        for (i, (label, points)) in series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            c.draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(err)?
                .label(label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            c.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(err)?;
        }
        c.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(self.legend)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)
    }
}

fn plot_kernel(path: &Path, points: &[KernelPoint], max_cpus: usize) -> Result<(), String> {
    let series: Vec<(String, Vec<(f64, f64)>)> = VARIANTS
        .iter()
        .map(|(_, v)| {
            let s = points
                .iter()
                .filter(|p| p.variant == *v)
                .map(|p| (p.cpus as f64, p.ns_per_op))
                .collect();
            (v.to_string(), s)
        })
        .collect();
    LineChart {
        caption: "In-kernel cost per call (ns/op) vs concurrent CPUs",
        x_desc: "CPUs running the loop at once",
        y_desc: "ns per op",
        x_range: 0.8..(max_cpus as f64 + 0.2),
        legend: SeriesLabelPosition::UpperLeft,
    }
    .draw(path, &series)
}

fn plot_user(path: &Path, user: &[Value]) -> Result<(), String> {
    let series: Vec<(String, Vec<(f64, f64)>)> = [
        (
            "nop_calls_per_s",
            "a: no-op ioctl (no provider, no reference)",
        ),
        (
            "echo_calls_per_s",
            "echo: a call's copies, no provider, no reference",
        ),
        (
            "compute_calls_per_s",
            "b: compute through the full discipline",
        ),
    ]
    .iter()
    .map(|(key, label)| {
        let s = user.iter().map(|u| (f(u, "threads"), f(u, key))).collect();
        (label.to_string(), s)
    })
    .collect();
    LineChart {
        caption: "Userspace calls/s vs threads (rmc-load)",
        x_desc: "threads",
        y_desc: "calls/s",
        x_range: 0.8..4.2,
        legend: SeriesLabelPosition::LowerRight,
    }
    .draw(path, &series)
}

fn plot_timeline(path: &Path, timeline: &Value, marks: &Value) -> Result<(), String> {
    let rows: Vec<(f64, f64, f64)> = timeline["timeline"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    (
                        r[0].as_f64().unwrap_or(0.0),
                        r[1].as_f64().unwrap_or(0.0),
                        r[2].as_f64().unwrap_or(0.0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let tmax = rows.last().map_or(1.0, |r| r.0 + 0.1);
    let ymax = rows.iter().map(|r| r.1.max(r.2)).fold(0.0, f64::max) * 1.15;
    let root = SVGBackend::new(path, (860, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut c = ChartBuilder::on(&root)
        .caption(
            "Calls per 100 ms across a patient removal and a reload (4 threads)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..tmax, 0f64..ymax.max(1.0))
        .map_err(err)?;
    c.configure_mesh()
        .x_desc("seconds since the load started")
        .y_desc("calls per interval")
        .draw()
        .map_err(err)?;
    for (i, (label, pick)) in [("ok", 1usize), ("ENODEV", 2usize)].iter().enumerate() {
        let s: Vec<(f64, f64)> = rows
            .iter()
            .map(|r| (r.0, if *pick == 1 { r.1 } else { r.2 }))
            .collect();
        let color = COLORS[i];
        c.draw_series(LineSeries::new(s, color.stroke_width(2)))
            .map_err(err)?
            .label(*label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    let marks: BTreeMap<String, f64> = marks
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_f64().map(|t| (k.clone(), t)))
                .collect()
        })
        .unwrap_or_default();
    for (k, t) in &marks {
        c.draw_series(std::iter::once(PathElement::new(
            vec![(*t, 0.0), (*t, ymax)],
            BLACK.stroke_width(1),
        )))
        .map_err(err)?;
        c.draw_series(std::iter::once(Text::new(
            k.clone(),
            (*t, ymax * 0.95),
            ("sans-serif", 14),
        )))
        .map_err(err)?;
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let r = match args.cmd {
        Cmd::Kernel {
            iters,
            cpus,
            exact,
            reps,
            variant,
            provider,
            device,
        } => kernel(&device, &provider, iters, cpus, exact, reps, &variant),
        Cmd::Report { dir, out, index } => {
            let out = out.unwrap_or_else(|| dir.parent().unwrap_or(Path::new(".")).to_path_buf());
            report(&dir, &out).and_then(|()| match index {
                Some(index) => update_index(&out.join("results.json"), &index),
                None => Ok(()),
            })
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rmc-bench: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_cpus_or_iterations_are_usage_errors() {
        for bad in [
            &["rmc-bench", "kernel", "--exact", "--cpus", "0"][..],
            &["rmc-bench", "kernel", "-n", "0"],
            &["rmc-bench", "kernel", "-n", "100000001"],
        ] {
            assert!(Args::try_parse_from(bad).is_err(), "{bad:?}");
        }
        assert!(Args::try_parse_from(["rmc-bench", "kernel", "--exact", "--cpus", "2"]).is_ok());
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }

    #[test]
    fn variants_by_name_or_letter() {
        assert_eq!(parse_variant("c_full_dispatch"), Ok(BENCH_DISPATCH));
        assert_eq!(parse_variant("b"), Ok(BENCH_GET_PUT));
        assert!(parse_variant("d").is_err());
    }

    #[test]
    fn no_command_line_panics() {
        rmc::fuzz_command_lines(
            "rmc-bench",
            &[
                "kernel",
                "report",
                "-n",
                "--iters",
                "--cpus",
                "--exact",
                "--reps",
                "--variant",
                "a",
                "c_full_dispatch",
                "--provider",
                "--out",
                "--index",
                "4",
                "1",
            ],
            20_000,
            |argv| {
                if let Ok(a) = Args::try_parse_from(argv) {
                    let _ = a;
                }
            },
        );
    }
}
