// SPDX-License-Identifier: GPL-2.0

//! `rmc-bench kernel`: the consumer's in-kernel microbenchmark (`RMC_IOC_BENCH`) for each
//! variant at 1..=N concurrent CPUs, repetitions interleaved, medians reported.

use clap::ValueEnum;
use rmc::{Device, BENCH_BARE, BENCH_DISPATCH, BENCH_GET_PUT, NAME_LEN};
use serde::{Deserialize, Serialize};

/// What one iteration of the in-kernel loop does.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// A: call the op directly (the floor).
    #[value(name = "a_bare_call", alias = "a")]
    ABareCall,
    /// B: try_module_get, the call, module_put (the reference alone).
    #[value(name = "b_get_call_put", alias = "b")]
    BGetCallPut,
    /// C: the full dispatch: lookup, drain, reference, call, release.
    #[value(name = "c_full_dispatch", alias = "c")]
    CFullDispatch,
}

impl Variant {
    pub const ALL: [Variant; 3] = [Self::ABareCall, Self::BGetCallPut, Self::CFullDispatch];

    /// The name in results files and plots.
    pub fn name(self) -> &'static str {
        match self {
            Self::ABareCall => "a_bare_call",
            Self::BGetCallPut => "b_get_call_put",
            Self::CFullDispatch => "c_full_dispatch",
        }
    }

    /// The `RMC_IOC_BENCH` variant number.
    fn number(self) -> u32 {
        match self {
            Self::ABareCall => BENCH_BARE,
            Self::BGetCallPut => BENCH_GET_PUT,
            Self::CFullDispatch => BENCH_DISPATCH,
        }
    }
}

/// One point of the kernel microbenchmark.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct KernelPoint {
    pub variant: String,
    pub cpus: usize,
    /// Median over repetitions of the mean ns/op across the concurrent threads.
    pub ns_per_op: f64,
    /// Every repetition's mean, for the record.
    pub reps: Vec<f64>,
}

/// What `rmc-bench kernel` prints (`kernel.json`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct KernelRun {
    pub iters: u64,
    pub points: Vec<KernelPoint>,
}

/// What to run.
pub struct Plan<'a> {
    pub iters: u64,
    /// Highest CPU count (default: all online).
    pub cpus: Option<usize>,
    /// Only the point at `cpus`.
    pub exact: bool,
    /// Only one point, in the calling thread (`cpus` 0 in the ioctl).
    pub caller: bool,
    pub reps: usize,
    /// Variants to run (empty: all).
    pub only: &'a [Variant],
}

/// One run: `cpus` kthreads in the consumer, one bound to each of the first `cpus` online CPUs,
/// released together; the mean ns/op over the threads.
fn run_point(
    dev: &Device,
    table: &[u8; NAME_LEN],
    variant: Variant,
    cpus: usize,
    iters: u64,
) -> Result<f64, String> {
    let n = u32::try_from(cpus).map_err(|_| format!("{cpus} CPUs: too many"))?;
    let a = dev.bench(table, variant.number(), iters, n).map_err(|e| {
        let hint = match e {
            nix::errno::Errno::EINVAL => " (more CPUs than are online?)",
            nix::errno::Errno::EAGAIN => " (a CPU went offline during the run: run it again)",
            _ => "",
        };
        format!("RMC_IOC_BENCH on {cpus} CPUs: {e}{hint}")
    })?;
    // `ns` is summed over the threads: one in the calling thread (`cpus` 0).
    Ok(a.ns as f64 / (iters as f64 * cpus.max(1) as f64))
}

/// Runs the plan; a table on stderr as it goes.
pub fn kernel(dev: &Device, table: &str, plan: &Plan) -> Result<KernelRun, String> {
    let name =
        rmc::name_buf(table.as_bytes()).ok_or("provider name must be 1-31 bytes without NUL")?;
    let max = plan
        .cpus
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let (min, max) = match (plan.caller, plan.exact) {
        (true, _) => (0, 0),
        (false, true) => (max, max),
        (false, false) => (1, max),
    };
    let variants: Vec<Variant> = Variant::ALL
        .into_iter()
        .filter(|v| plan.only.is_empty() || plan.only.contains(v))
        .collect();
    let mut points = Vec::new();
    for n in min..=max {
        // Repetitions interleave the variants (a b c a b c ...): the emulator's slow spells then
        // hit every variant alike instead of skewing one of them.
        let mut r = vec![Vec::new(); variants.len()];
        for _ in 0..plan.reps.max(1) {
            for (i, v) in variants.iter().enumerate() {
                r[i].push(run_point(dev, &name, *v, n, plan.iters)?);
            }
        }
        for (v, r) in variants.iter().zip(r) {
            let ns = rmc::median(&mut r.clone());
            eprintln!("{:16} cpus={n} {ns:8.1} ns/op  (reps {r:.1?})", v.name());
            points.push(KernelPoint {
                variant: v.name().into(),
                cpus: n,
                ns_per_op: ns,
                reps: r,
            });
        }
    }
    Ok(KernelRun {
        iters: plan.iters,
        points,
    })
}
