// SPDX-License-Identifier: GPL-2.0

//! Event counters: per registry slot, sharded by CPU, summed on demand.

use kernel::{
    cpu::CpuId,
    sync::atomic::{
        Acquire,
        Atomic,
        Relaxed,
        Release, //
    },
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
/// Counters are sharded by CPU so the hot path writes no cache line other CPUs write.
const SHARDS: usize = 16;

#[repr(C, align(64))]
struct Shard([Atomic<u64>; NR_COUNTERS]);

/// The shard the current CPU writes, looked up once per call.
///
/// A stale value after preemption only costs a shared cache line, never a lost count: every
/// increment is atomic.
#[derive(Clone, Copy)]
pub(crate) struct ShardIdx(usize);

impl ShardIdx {
    pub(crate) fn current() -> Self {
        Self(CpuId::current().as_u32() as usize % SHARDS)
    }
}

/// Event counters, sharded by CPU.
///
/// A sum is exact once no call is in flight. While calls run it is a snapshot that may miss
/// increments made during the sum, with one guarantee: a reference counted as released was
/// also counted as taken (released is incremented with `Release` after taken, and summed with
/// `Acquire` before it), so `refs_held` is never negative.
pub(crate) struct Stats([Shard; SHARDS]);

impl Stats {
    pub(crate) const fn new() -> Self {
        Self([const { Shard([const { Atomic::new(0) }; NR_COUNTERS]) }; SHARDS])
    }

    #[inline]
    pub(crate) fn inc(&self, shard: ShardIdx, c: Counter) {
        if let Some(s) = self.0.get(shard.0) {
            match c {
                // Orders the `RefsTaken` increment of the same reference before this one.
                Counter::RefsReleased => {
                    s.0[c as usize].fetch_add(1u64, Release);
                }
                _ => s.0[c as usize].add(1u64, Relaxed),
            }
        }
    }

    /// Adds every count of `self` into `into` and zeroes `self`. Exact only while nobody
    /// writes `self`.
    pub(crate) fn drain_into(&self, into: &Stats) {
        for c in 0..NR_COUNTERS {
            let mut sum = 0u64;
            for shard in &self.0 {
                sum = sum.wrapping_add(shard.0[c].load(Relaxed));
                shard.0[c].store(0, Relaxed);
            }
            into.0[0].0[c].add(sum, Relaxed);
        }
    }

    /// The sum of several `Stats`, in the ABI's struct (`provider` and `providers` zero).
    pub(crate) fn sum<'a>(all: impl Iterator<Item = &'a Stats> + Clone) -> uapi::Stats {
        let sum = |c: Counter| {
            all.clone().flat_map(|s| s.0.iter()).fold(0u64, |acc, s| {
                acc.wrapping_add(s.0[c as usize].load(Acquire))
            })
        };
        // Released before taken: a reference seen released was taken earlier (see `inc`).
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
