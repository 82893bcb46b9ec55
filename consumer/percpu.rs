// SPDX-License-Identifier: GPL-2.0

//! Per-CPU memory, which 7.3's kernel crate has no API for: `this_cpu_add()` and per-CPU
//! counters (`alloc_percpu()`, a sum over the possible CPUs, `free_percpu()`).
//!
//! Why: an increment of the current CPU's copy needs no `lock` prefix and no preemption
//! control, where an atomic counter shared by CPUs needs a locked read-modify-write on a cache
//! line other CPUs write. The hot path of a call makes four such increments (the drain's enter
//! and exit, `refs_taken`, `refs_released`).

use core::ptr::{
    self,
    NonNull, //
};
use kernel::{
    bindings,
    cpu::{
        nr_cpu_ids,
        CpuId, //
    },
    cpumask::Cpumask,
    prelude::*,
    sync::atomic::{
        Acquire,
        Atomic,
        Relaxed,
        Release, //
    },
};

/// `this_cpu_add(*p, n)`: adds `n` to the current CPU's copy of the per-CPU `u64` at `p`.
///
/// On x86-64 this is what C compiles `this_cpu_add()` to: one `add` addressed relative to `%gs`,
/// the current CPU's per-CPU base. A single instruction cannot be split by preemption or
/// migration, and an interrupt on the same CPU sees it whole; it is not a locked operation, so
/// another CPU reading the copy sees the old or the new value (an aligned 8-byte store). On x86
/// its store is ordered after the task's earlier stores (TSO), which [`PerCpuCounters::sum`]
/// relies on.
///
/// # Safety
///
/// `p` must be a per-CPU address (from `alloc_percpu()` or inside a per-CPU allocation such as
/// an SRCU structure's counters) of an 8-byte aligned `u64`, alive for the call, whose copies are
/// only written by this function (or by C's `this_cpu_add()` and kin) and read atomically.
#[inline(always)]
pub(crate) unsafe fn this_cpu_add(p: *mut u64, n: u64) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `%gs` holds this CPU's per-CPU base, so `%gs:p` is this CPU's copy of `*p` (the
    // caller guarantees `p` is a per-CPU address of a `u64`); `add` writes no other memory and
    // no register but the flags.
    unsafe {
        core::arch::asm!("add qword ptr gs:[{p}], {n}", p = in(reg) p, n = in(reg) n,
                         options(nostack));
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: The caller's guarantees are those of `this_cpu_add_atomic`.
    unsafe {
        this_cpu_add_atomic(p, n)
    }
}

/// `this_cpu_add()` as C does it where no single instruction can: an atomic addition to the
/// copy of the CPU we run on (`atomic_long_add(n, raw_cpu_ptr(p))`, as SRCU-fast does on such
/// architectures). If the task migrates between reading the CPU id and the addition, it adds to
/// another CPU's copy, atomically: nothing is lost. `Release`, so that a sum that sees this
/// addition also sees the task's earlier ones (x86's `add` has that from TSO). Compiled
/// everywhere so KUnit can check it against [`this_cpu_add`].
///
/// # Safety
///
/// As [`this_cpu_add`].
#[inline]
#[cfg_attr(
    all(target_arch = "x86_64", not(CONFIG_KUNIT = "y")),
    expect(
        dead_code,
        reason = "x86-64 uses the single instruction; KUnit tests this one"
    )
)]
pub(crate) unsafe fn this_cpu_add_atomic(p: *mut u64, n: u64) {
    // SAFETY: `p` is a per-CPU address (caller), so its copy for a CPU that exists is valid,
    // aligned, and written only atomically.
    unsafe { Atomic::from_ptr(per_cpu_ptr(p, CpuId::current())) }.fetch_add(n, Release);
}

/// `per_cpu_ptr(p, cpu)`: the address of `cpu`'s copy of the per-CPU object at `p`.
fn per_cpu_ptr<T>(p: *mut T, cpu: CpuId) -> *mut T {
    let offsets = ptr::addr_of!(bindings::__per_cpu_offset).cast::<usize>();
    // SAFETY: `__per_cpu_offset` has `NR_CPUS` entries and `cpu < nr_cpu_ids <= NR_CPUS`
    // (`CpuId` invariant); the entries of possible CPUs are written once, at boot.
    let off = unsafe { offsets.add(cpu.as_u32() as usize).read() };
    p.wrapping_byte_add(off)
}

/// The possible CPUs: every CPU that has a copy of a per-CPU object.
fn possible_cpus() -> impl Iterator<Item = CpuId> {
    // SAFETY: `__cpu_possible_mask` is a valid cpumask for the kernel's lifetime, set at boot.
    let possible = unsafe { Cpumask::from_raw(ptr::addr_of!(bindings::__cpu_possible_mask)) };
    (0..nr_cpu_ids())
        .filter_map(CpuId::from_u32)
        .filter(move |&cpu| possible.test(cpu))
}

/// `N` counters with a copy per CPU, zero when made.
///
/// # Invariants
///
/// `ptr` is a per-CPU address returned by `pcpu_alloc_noprof()` for a `[u64; N]`, owned by this
/// value and freed only in its drop. The copies are written only by [`this_cpu_add`] (through
/// [`PerCpuCounters::inc`] and [`PerCpuCounters::add`]) and atomically by
/// [`PerCpuCounters::take`].
pub(crate) struct PerCpuCounters<const N: usize> {
    ptr: NonNull<[u64; N]>,
}

// SAFETY: Per-CPU memory belongs to no thread; every access is an atomic load, an atomic
// exchange, or a single-instruction per-CPU increment, from any thread.
unsafe impl<const N: usize> Send for PerCpuCounters<N> {}
// SAFETY: As above: shared access from several threads is by atomic operations only.
unsafe impl<const N: usize> Sync for PerCpuCounters<N> {}

impl<const N: usize> PerCpuCounters<N> {
    /// Allocates the counters (`alloc_percpu(u64[N])`: every CPU's copy zeroed).
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: Plain allocation call; `GFP_KERNEL` is allowed here (process context, module
        // init or a configfs `mkdir`), and the result is checked for null below.
        let p = unsafe {
            bindings::pcpu_alloc_noprof(
                core::mem::size_of::<[u64; N]>(),
                core::mem::align_of::<u64>(),
                false,
                bindings::GFP_KERNEL,
            )
        };
        // INVARIANT: A non-null result is a zeroed per-CPU `[u64; N]` that we own.
        Ok(Self {
            ptr: NonNull::new(p.cast()).ok_or(ENOMEM)?,
        })
    }

    /// The per-CPU address of counter `i`.
    #[inline(always)]
    fn counter(&self, i: usize) -> *mut u64 {
        self.ptr.as_ptr().cast::<u64>().wrapping_add(i.min(N - 1))
    }

    /// Adds 1 to counter `i` (clamped to `N - 1`) on the current CPU.
    #[inline(always)]
    pub(crate) fn inc(&self, i: usize) {
        self.add(i, 1);
    }

    /// Adds `n` to counter `i` (clamped to `N - 1`) on the current CPU.
    #[inline(always)]
    pub(crate) fn add(&self, i: usize, n: u64) {
        // SAFETY: `counter(i)` is a per-CPU address of a `u64` inside our allocation (type
        // invariant), written only per-CPU and read atomically.
        unsafe { this_cpu_add(self.counter(i), n) };
    }

    /// The sum of counter `i` over all CPUs. Exact when nobody increments it meanwhile;
    /// otherwise a snapshot that may miss increments made while it reads.
    pub(crate) fn sum(&self, i: usize) -> u64 {
        possible_cpus().fold(0u64, |acc, cpu| {
            // SAFETY: `cpu` is possible, so its copy exists inside our allocation; it is only
            // written by single-instruction increments or atomically.
            let c = unsafe { Atomic::from_ptr(per_cpu_ptr(self.counter(i), cpu)) };
            acc.wrapping_add(c.load(Acquire))
        })
    }

    /// Adds `n` to counter `i` the way architectures without a single-instruction per-CPU add
    /// do ([`this_cpu_add_atomic`]), for KUnit to check both ways against each other.
    #[cfg(CONFIG_KUNIT = "y")]
    pub(crate) fn add_atomic(&self, i: usize, n: u64) {
        // SAFETY: As in `add`.
        unsafe { this_cpu_add_atomic(self.counter(i), n) };
    }

    /// Zeroes counter `i` on every CPU and returns the sum it had. Exact only while nobody
    /// increments it (an increment racing with the exchange on another CPU could be lost).
    pub(crate) fn take(&self, i: usize) -> u64 {
        possible_cpus().fold(0u64, |acc, cpu| {
            // SAFETY: As in `sum`.
            let c = unsafe { Atomic::from_ptr(per_cpu_ptr(self.counter(i), cpu)) };
            acc.wrapping_add(c.xchg(0, Relaxed))
        })
    }
}

impl<const N: usize> Drop for PerCpuCounters<N> {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `pcpu_alloc_noprof()` and is freed once, here (type invariant).
        unsafe { bindings::free_percpu(self.ptr.as_ptr().cast()) };
    }
}
