// SPDX-License-Identifier: GPL-2.0

//! Event counters: per registry slot, one copy per CPU, summed on demand.

use kernel::{
    percpu::PerCpuCounters,
    prelude::*, //
};

use crate::uapi;

/// Counter indices.
#[derive(Clone, Copy)]
pub(crate) enum Counter {
    CallsOk = 0,
    CallsEnodev,
    CallsFailed,
    RefsTaken,
    RefsReleased,
}
const NR_COUNTERS: usize = 5;

/// Event counters with a copy per CPU (`kernel::percpu::PerCpuCounters`): an increment is
/// `this_cpu_add()`, and the hot path writes no cache line another CPU writes.
///
/// A sum is exact once no call is in flight. While calls run it is a snapshot that may miss
/// increments made during the sum; `refs_held` is clamped at zero, since the snapshot may see a
/// release whose take it missed (the per-CPU additions are not ordered against each other on
/// every architecture). The selftest checks the counters when no call is in flight.
pub(crate) struct Stats(PerCpuCounters<NR_COUNTERS>);

impl Stats {
    pub(crate) fn new() -> Result<Self> {
        Ok(Self(PerCpuCounters::new()?))
    }

    #[inline(always)]
    pub(crate) fn inc(&self, c: Counter) {
        self.0.add(c as usize, 1);
    }

    /// Adds every count of `self` into `into` and zeroes `self`.
    ///
    /// # Safety
    ///
    /// Nobody may add to `self` meanwhile (`PerCpuCounters::take`'s requirement).
    pub(crate) unsafe fn move_into(&self, into: &Stats) {
        for c in 0..NR_COUNTERS {
            // SAFETY: Nobody adds to `self` meanwhile (the caller's guarantee).
            let sum = unsafe { self.0.take(c) };
            if sum != 0 {
                into.0.add(c, sum);
            }
        }
    }

    /// The sum of several `Stats`, in the ABI's struct (`table` and `tables` zero).
    pub(crate) fn sum<'a>(all: impl Iterator<Item = &'a Stats> + Clone) -> uapi::Stats {
        let sum = |c: Counter| {
            all.clone()
                .fold(0u64, |acc, s| acc.wrapping_add(s.0.sum(c as usize)))
        };
        // Released before taken: then a snapshot misses releases rather than takes (on x86,
        // whose stores are seen in order, exactly so; elsewhere `refs_held` is clamped below).
        let refs_released = sum(Counter::RefsReleased);
        let refs_taken = sum(Counter::RefsTaken);
        uapi::Stats {
            calls_ok: sum(Counter::CallsOk),
            calls_enodev: sum(Counter::CallsEnodev),
            calls_failed: sum(Counter::CallsFailed),
            refs_taken,
            refs_released,
            refs_held: refs_taken.saturating_sub(refs_released),
            ..Default::default()
        }
    }
}
