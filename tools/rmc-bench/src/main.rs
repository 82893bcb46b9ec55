// SPDX-License-Identifier: GPL-2.0

//! `rmc-bench`: what the module reference discipline costs.
//!
//! `rmc-bench kernel` runs the consumer's in-kernel microbenchmark (`RMC_IOC_BENCH`) for the three
//! variants on 1..=N CPUs at once: the consumer starts one kthread bound to each CPU and releases
//! them together once all are waiting. `rmc-bench report DIR` turns the raw JSON
//! files `bench/run.sh` leaves in DIR into `results.json`, a Markdown table and SVG plots.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::{Parser, Subcommand};
use rmc::cli::{parse_at_least_one, DeviceArg, TableArg};

mod plot;
mod report;
mod run;
mod stats;
mod targets;

use run::{Plan, Variant};

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
        /// Run in the calling thread (RMC_IOC_BENCH with cpus = 0), not in kthreads; reported as
        /// cpus=0.
        #[arg(long, conflicts_with_all = ["cpus", "exact"])]
        caller: bool,
        /// Repetitions of each point; the median is reported.
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// Run only these variants (default: all), by name or letter.
        #[arg(long, value_enum)]
        variant: Vec<Variant>,
        #[command(flatten)]
        table: TableArg,
        #[command(flatten)]
        device: DeviceArg,
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
    /// Put the verdicts of several runs' results.json side by side (Markdown on stdout); exit 1
    /// if a target is met in one run and not met in another ("within noise" flips are allowed).
    Compare {
        /// Two or more results.json files.
        #[arg(required = true, num_args = 2..)]
        results: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let r = match args.cmd {
        Cmd::Kernel {
            iters,
            cpus,
            exact,
            caller,
            reps,
            variant,
            table,
            device,
        } => device.open().and_then(|dev| {
            let plan = Plan {
                iters,
                cpus,
                exact,
                caller,
                reps,
                only: &variant,
            };
            let run = run::kernel(&dev, &table.name, &plan)?;
            let json = serde_json::to_string_pretty(&run).map_err(|e| e.to_string())?;
            println!("{json}");
            Ok(())
        }),
        Cmd::Compare { results } => match targets::compare(&results) {
            Ok((table, flips)) => {
                print!("{table}");
                if flips.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "met in one run, not met in another: {}",
                        flips.join(", ")
                    ))
                }
            }
            Err(e) => Err(e),
        },
        Cmd::Report { dir, out, index } => {
            let out = out.unwrap_or_else(|| dir.parent().unwrap_or(Path::new(".")).to_path_buf());
            report::report(&dir, &out).and_then(|()| match index {
                Some(index) => report::update_index(&out.join("results.json"), &index),
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
        assert!(Args::try_parse_from(["rmc-bench", "kernel", "--caller"]).is_ok());
        assert!(Args::try_parse_from(["rmc-bench", "kernel", "--caller", "--cpus", "2"]).is_err());
    }

    #[test]
    fn variants_by_name_or_letter() {
        let parse = |v: &str| match Args::try_parse_from(["rmc-bench", "kernel", "--variant", v]) {
            Ok(Args {
                cmd: Cmd::Kernel { variant, .. },
            }) => Some(variant),
            _ => None,
        };
        assert_eq!(parse("c_full_dispatch"), Some(vec![Variant::CFullDispatch]));
        assert_eq!(parse("b"), Some(vec![Variant::BGetCallPut]));
        assert_eq!(parse("d"), None);
    }

    #[test]
    fn a_report_from_raw_files() {
        let dir = std::env::temp_dir().join(format!("rmc-bench-test-{}", std::process::id()));
        let raw = dir.join("raw");
        std::fs::create_dir_all(&raw).unwrap();
        let points = Variant::ALL
            .iter()
            .enumerate()
            .map(|(i, v)| run::KernelPoint {
                variant: v.name().into(),
                cpus: 1,
                ns_per_op: 10.0 * (i + 1) as f64,
                reps: vec![10.0 * (i + 1) as f64; 3],
            })
            .collect();
        let kernel = run::KernelRun { iters: 1, points };
        std::fs::write(
            raw.join("kernel.json"),
            serde_json::to_string(&kernel).unwrap(),
        )
        .unwrap();
        let load = |calls_per_s: f64| rmc::report::LoadReport {
            threads: 1,
            duration_s: 1.0,
            calls: 1,
            calls_per_s,
            calls_per_s_per_thread: vec![calls_per_s],
            ok: 1,
            enodev: 0,
            other_errors: Default::default(),
            wrong_answers: 0,
            wrong_answers_first: vec![],
            instance_ids: vec![],
            latency_us: rmc::report::Latency {
                p50: 1.0,
                p99: 1.0,
                p999: 1.0,
                max: 1.0,
            },
            interval_ms: 100,
            timeline: vec![(0.1, 1, 0, 0)],
            pass: true,
            failures: vec![],
        };
        for t in [1, 2, 4] {
            for (mix, cps) in [("nop", 100.0), ("echo", 95.0), ("compute", 80.0)] {
                let f = raw.join(format!("user-{mix}-{t}-1.json"));
                std::fs::write(f, serde_json::to_string(&load(cps)).unwrap()).unwrap();
            }
        }
        report::report(&raw, &dir).unwrap();
        let r: report::Results =
            serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap())
                .unwrap();
        // (c - a) / 2 (b - a) = 20 / 20 in each of 3 repetitions: exactly at the bound, met.
        let lookup = &r.targets.lookup_le_2x_reference_1cpu;
        assert_eq!((lookup.interval.median, lookup.interval.n), (1.0, 3));
        assert_eq!(lookup.verdict, stats::Verdict::Met);
        assert_eq!(r.userspace_throughput[0].ratio_b_over_a, 0.8);
        assert_eq!(
            r.targets.userspace_ratio_1_thread_ge_0_90.verdict,
            stats::Verdict::NotMet
        );
        assert_eq!(
            r.targets.userspace_ratio_4_threads_ge_0_75.verdict,
            stats::Verdict::Met
        );
        // No removal was measured: no data is never a verdict either way.
        assert_eq!(r.targets.removal_under_load_le_1_s.interval.n, 0);
        assert_eq!(
            r.targets.removal_under_load_le_1_s.verdict,
            stats::Verdict::WithinNoise
        );
        assert!(std::fs::read_to_string(dir.join("results.md"))
            .unwrap()
            .contains("| lookup_le_2x_reference_1cpu |"));
        let index = dir.join("index.json");
        report::update_index(&dir.join("results.json"), &index).unwrap();
        assert!(std::fs::read_to_string(&index)
            .unwrap()
            .contains("\"unknown\""));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn compare_flags_met_against_not_met_only() {
        let dir = std::env::temp_dir().join(format!("rmc-bench-compare-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let run = |name: &str, verdict: &str| {
            let f = dir.join(name);
            let t = format!(
                r#"{{"effect": "e", "bound": "<= 1", "median": 1.0, "lo": 0.9, "hi": 1.1, "n": 15, "verdict": "{verdict}"}}"#
            );
            std::fs::write(&f, format!(r#"{{"targets": {{"x": {t}}}}}"#)).unwrap();
            f
        };
        let (met, noise, not_met) = (
            run("a.json", "met"),
            run("b.json", "within_noise"),
            run("c.json", "not_met"),
        );
        let (table, flips) = targets::compare(&[met.clone(), noise.clone()]).unwrap();
        assert!(flips.is_empty(), "{table}");
        assert!(table.contains(
            "| x | <= 1 | 1.000 [0.900, 1.100] met | 1.000 [0.900, 1.100] within noise |"
        ));
        let (_, flips) = targets::compare(&[met, noise, not_met]).unwrap();
        assert_eq!(flips, ["x"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn no_command_line_panics() {
        rmc::testing::fuzz_command_lines(
            "rmc-bench",
            &[
                "kernel",
                "report",
                "compare",
                "-n",
                "--iters",
                "--cpus",
                "--exact",
                "--caller",
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
