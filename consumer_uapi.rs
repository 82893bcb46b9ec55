// SPDX-License-Identifier: GPL-2.0

//! The userspace ABI of `/dev/rust_consumer`: ioctl numbers, argument structs and op codes.
//!
//! Written once, compiled three times: into the consumer module (`consumer/uapi.rs`), into the
//! provider (for the wire contract a table's answers follow: [`compute_expected`],
//! [`HOLD_MAX_US`], [`name_buf`]) and into the userspace library `tools/rmc`, which checks every
//! answer against the same definitions. It therefore uses `core` only. Sizes and field offsets are
//! asserted at compile time below: a change that moves a field breaks both builds, not a user.
//!
//! A C view of the same ABI (the numbers are those of `_IOWR(0xB9, nr, struct ...)`):
//!
//! ```c
//! struct rmc_call  { char table[32]; __u32 op, flags; __u64 arg;        /* in */
//!                    __u64 result, instance_id; __u32 version, reserved; };  /* 72 bytes */
//! struct rmc_stats { char table[32]; __u64 calls_ok, calls_enodev, calls_failed,
//!                    refs_taken, refs_released, refs_held, tables; };        /* 88 bytes */
//! struct rmc_bench { char table[32]; __u32 variant, flags; __u64 iters;
//!                    __u64 ns; __u32 cpu, cpus; };                           /* 64 bytes */
//! ```

// Each side uses its own part (the tools do not run benchmarks through every constant).
#![allow(dead_code)]

/// Size of a table name buffer, including the terminating NUL.
pub const NAME_LEN: usize = 32;

/// Longest `hold` a provider accepts, in microseconds; a longer one fails with `EINVAL`.
pub const HOLD_MAX_US: u32 = 1_000_000;

/// A NUL-padded name buffer, or `None` if `name` does not fit with its NUL or contains a NUL.
pub const fn name_buf(name: &[u8]) -> Option<[u8; NAME_LEN]> {
    if name.len() >= NAME_LEN {
        return None;
    }
    let mut buf = [0u8; NAME_LEN];
    let mut i = 0;
    while i < name.len() {
        if name[i] == 0 {
            return None;
        }
        buf[i] = name[i];
        i += 1;
    }
    Some(buf)
}

/// The answer `compute(x)` must give for a provider instance: the SplitMix64 finaliser of
/// `x ^ instance_id`. The provider computes it, the tools verify every answer with it.
pub const fn compute_expected(x: u64, instance_id: u64) -> u64 {
    let mut z = (x ^ instance_id).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `ioctl` type byte (free in `Documentation/userspace-api/ioctl/ioctl-number.rst`).
pub const IOC_MAGIC: u32 = 0xB9;

const IOC_NONE: u32 = 0;
const IOC_WRITE: u32 = 1;
const IOC_READ: u32 = 2;

/// `_IOC(dir, IOC_MAGIC, nr, size)` of the generic (x86, arm64, riscv) encoding.
const fn ioc(dir: u32, nr: u32, size: usize) -> u32 {
    (dir << 30) | ((size as u32) << 16) | (IOC_MAGIC << 8) | nr
}

/// Calls an op of a named table: `_IOWR(0xB9, 1, struct rmc_call)` = `0xc048b901`.
pub const RMC_IOC_CALL: u32 = ioc(IOC_READ | IOC_WRITE, 1, core::mem::size_of::<CallArgs>());
/// Reads counters, total (empty name) or of one table: `_IOWR(0xB9, 2, struct rmc_stats)`.
pub const RMC_IOC_STATS: u32 = ioc(IOC_READ | IOC_WRITE, 2, core::mem::size_of::<Stats>());
/// Does nothing: the benchmarks' baseline (no table, no reference): `_IO(0xB9, 3)`.
pub const RMC_IOC_NOP: u32 = ioc(IOC_NONE, 3, 0);
/// In-kernel microbenchmark of one variant: `_IOWR(0xB9, 4, struct rmc_bench)`.
pub const RMC_IOC_BENCH: u32 = ioc(IOC_READ | IOC_WRITE, 4, core::mem::size_of::<BenchArgs>());
/// `RMC_IOC_CALL`'s argument traffic without a table or a reference; `result = arg`:
/// `_IOWR(0xB9, 5, struct rmc_call)`. Separates the cost of the discipline from the ioctl's.
pub const RMC_IOC_ECHO: u32 = ioc(IOC_READ | IOC_WRITE, 5, core::mem::size_of::<CallArgs>());

/// `CallArgs::op`: `compute(arg)`.
pub const OP_COMPUTE: u32 = 0;
/// `CallArgs::op`: `hold(arg)` microseconds.
pub const OP_HOLD: u32 = 1;
/// `CallArgs::op`: `describe()`.
pub const OP_DESCRIBE: u32 = 2;

/// `BenchArgs::variant`: (a) a bare indirect call under one reference held for the whole loop.
pub const BENCH_BARE: u32 = 0;
/// `BenchArgs::variant`: (b) `try_module_get` + call + `module_put` per iteration.
pub const BENCH_GET_PUT: u32 = 1;
/// `BenchArgs::variant`: (c) the full dispatch per iteration (lookup, drain guard, reference).
pub const BENCH_DISPATCH: u32 = 2;
/// Most iterations per thread of one `RMC_IOC_BENCH`.
pub const BENCH_MAX_ITERS: u64 = 100_000_000;

/// `struct rmc_call`: one call of an op of a named table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallArgs {
    /// In: NUL-terminated table name.
    pub table: [u8; NAME_LEN],
    /// In: `OP_COMPUTE`, `OP_HOLD` or `OP_DESCRIBE`.
    pub op: u32,
    /// In: must be 0.
    pub flags: u32,
    /// In: `x` for compute, microseconds for hold.
    pub arg: u64,
    /// Out: compute's answer.
    pub result: u64,
    /// Out: instance id of the provider that answered.
    pub instance_id: u64,
    /// Out: provider version.
    pub version: u32,
    /// Must be 0.
    pub reserved: u32,
}

/// `struct rmc_stats`: counters, total (empty name) or of one table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// In: table name, or empty for the totals.
    pub table: [u8; NAME_LEN],
    /// Out: calls that got an answer.
    pub calls_ok: u64,
    /// Out: calls refused with `ENODEV` (no such table, or its owner is going away).
    pub calls_enodev: u64,
    /// Out: calls the provider answered with an error.
    pub calls_failed: u64,
    /// Out: module references taken.
    pub refs_taken: u64,
    /// Out: module references released.
    pub refs_released: u64,
    /// Out: `refs_taken - refs_released`: calls in flight (approximate while calls run).
    pub refs_held: u64,
    /// Out: tables registered now.
    pub tables: u64,
}

/// `struct rmc_bench`: one in-kernel microbenchmark run.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BenchArgs {
    /// In: NUL-terminated table name.
    pub table: [u8; NAME_LEN],
    /// In: `BENCH_BARE`, `BENCH_GET_PUT` or `BENCH_DISPATCH`.
    pub variant: u32,
    /// In: must be 0.
    pub flags: u32,
    /// In: iterations per thread (1 to `BENCH_MAX_ITERS`).
    pub iters: u64,
    /// Out: nanoseconds the loop took, summed over the threads that ran it.
    pub ns: u64,
    /// Out: CPU the calling thread entered the ioctl on.
    pub cpu: u32,
    /// In: 0 runs the loop in the calling thread; N runs it in N kthreads at once, one bound to
    /// each of the first N online CPUs.
    pub cpus: u32,
}

/// The output fields of `struct rmc_call`, in its layout from `result` on: the only bytes
/// `RMC_IOC_CALL` writes back.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CallOut {
    /// `CallArgs::result`.
    pub result: u64,
    /// `CallArgs::instance_id`.
    pub instance_id: u64,
    /// `CallArgs::version`.
    pub version: u32,
}

/// Offset of [`CallOut`] in [`CallArgs`].
pub const CALL_OUT_AT: usize = core::mem::offset_of!(CallArgs, result);

// The layouts are part of the ABI: every field naturally aligned, no padding (which the
// consumer's `FromBytes`/`AsBytes` impls rely on), sizes as encoded in the ioctl numbers.
const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<CallArgs>() == 72);
    assert!(offset_of!(CallArgs, op) == 32 && offset_of!(CallArgs, flags) == 36);
    assert!(offset_of!(CallArgs, arg) == 40 && offset_of!(CallArgs, result) == 48);
    assert!(offset_of!(CallArgs, instance_id) == 56 && offset_of!(CallArgs, version) == 64);
    assert!(offset_of!(CallArgs, reserved) == 68);
    assert!(size_of::<Stats>() == 88);
    assert!(offset_of!(Stats, calls_ok) == 32 && offset_of!(Stats, tables) == 80);
    assert!(size_of::<BenchArgs>() == 64);
    assert!(offset_of!(BenchArgs, variant) == 32 && offset_of!(BenchArgs, iters) == 40);
    assert!(offset_of!(BenchArgs, ns) == 48 && offset_of!(BenchArgs, cpus) == 60);
    assert!(size_of::<CallOut>() == 20 && CALL_OUT_AT + size_of::<CallOut>() == 68);
    assert!(RMC_IOC_CALL == 0xc048_b901 && RMC_IOC_STATS == 0xc058_b902);
    assert!(RMC_IOC_NOP == 0x0000_b903 && RMC_IOC_BENCH == 0xc040_b904);
    assert!(RMC_IOC_ECHO == 0xc048_b905);
};
