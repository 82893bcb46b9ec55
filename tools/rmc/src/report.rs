// SPDX-License-Identifier: GPL-2.0

//! The JSON report of one `rmc-load` run: written by `rmc-load --json`, read back by
//! `rmc-bench report` (the same types on both sides).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One `rmc-load` run.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LoadReport {
    pub threads: usize,
    pub duration_s: f64,
    pub calls: u64,
    pub calls_per_s: f64,
    pub calls_per_s_per_thread: Vec<f64>,
    pub ok: u64,
    pub enodev: u64,
    /// Other errnos by name, with their counts.
    pub other_errors: BTreeMap<String, u64>,
    pub wrong_answers: u64,
    pub wrong_answers_first: Vec<String>,
    /// Provider instance ids that answered, in hex.
    pub instance_ids: Vec<String>,
    pub latency_us: Latency,
    pub interval_ms: u64,
    /// `(t_s, ok, enodev, other)` per interval.
    pub timeline: Vec<(f64, u64, u64, u64)>,
    pub pass: bool,
    pub failures: Vec<String>,
}

/// Call latency percentiles, in microseconds.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}
