// SPDX-License-Identifier: GPL-2.0

//! `RMC_IOC_BENCH`: the in-kernel microbenchmark of the three ways to call a table, in the
//! calling thread or in one kthread per CPU. Off the fast path: nothing else runs this code.

use core::{
    hint::black_box,
    marker::PhantomData,
    ptr, //
};
use kernel::{
    bindings,
    cpu::CpuId,
    cpumask::Cpumask,
    ffi::{
        c_int,
        c_void, //
    },
    prelude::*,
    sync::{
        atomic::{Acquire, Atomic, Relaxed, Release},
        Completion,
    },
    time::{
        delay::fsleep,
        Delta,
        Instant,
        Monotonic, //
    },
};
use pin_init::stack_pin_init;

use crate::{
    abi::NAME_LEN,
    call, module_ref,
    registry::Registry,
    uapi::{
        self,
        BenchArgs, //
    },
};

/// `struct rmc_bench` variants, checked once when the request is read.
#[derive(Clone, Copy)]
enum Variant {
    /// (a) A bare indirect call of `compute`, under the run's reference.
    Bare,
    /// (b) `try_module_get` + `compute` + `module_put` per iteration.
    GetPut,
    /// (c) The full dispatch per iteration: lookup, drain, reference, `compute`, release.
    Dispatch,
}

impl Variant {
    fn from_abi(v: u32) -> Result<Self> {
        match v {
            uapi::BENCH_BARE => Ok(Self::Bare),
            uapi::BENCH_GET_PUT => Ok(Self::GetPut),
            uapi::BENCH_DISPATCH => Ok(Self::Dispatch),
            _ => Err(EINVAL),
        }
    }
}

/// Iterations between two looks at the stop condition (a signal, or the run being stopped).
const CHECK_EVERY: u64 = 4096;
/// Longest total busy-wait a run may ask of the race-window test hook, in microseconds.
const MAX_RACE_WAIT_US: u64 = 10_000_000;

/// What one benchmark loop needs; the threads of a concurrent run share one.
///
/// `BenchLoop` is `Sync` by its fields' types: a name and atomics. It holds no table: every
/// chunk of [`CHECK_EVERY`] iterations looks the table up and runs inside that lookup's drain
/// section and under its module reference, as every call does, so a withdrawal of the table
/// waits for one chunk at most, never for the run (which the user sizes, up to
/// `BENCH_MAX_ITERS` per thread).
struct BenchLoop<'a> {
    name: &'a [u8; NAME_LEN],
    variant: Variant,
    iters: u64,
    /// Nonzero when the run must stop early: the errno every thread then returns (`EINTR` for a
    /// signal to the ioctl's caller, or the first error one of the threads met).
    stop: Atomic<i32>,
}

impl BenchLoop<'_> {
    /// Whether the loop must stop: a signal to this thread (`EINTR`), or the run being stopped.
    fn stopped(&self) -> Result {
        match self.stop.load(Relaxed) {
            0 if kernel::current!().signal_pending() => Err(EINTR),
            0 => Ok(()),
            code => Err(Error::from_errno(code)),
        }
    }

    /// Stops the run for every thread with `e`, unless it was stopped already.
    fn stop_with(&self, e: Error) {
        // An `Err` means another reason came first; that one stands.
        let _ = self.stop.cmpxchg(0, e.to_errno(), Relaxed);
    }

    /// Runs the loop in the current thread; returns the nanoseconds it took.
    ///
    /// A thread bound to `cpu` checks between chunks that it still runs there: CPU hotplug moves
    /// a bound kthread whose CPU goes offline, and a run that did not stay on its CPUs measured
    /// something else than it was asked to (`EAGAIN`).
    fn run(&self, cpu: Option<CpuId>) -> Result<u64> {
        let start = Instant::<Monotonic>::now();
        let mut i = 0;
        while i < self.iters {
            let chunk_end = self.iters.min(i + CHECK_EVERY);
            self.chunk(i, chunk_end)?;
            i = chunk_end;
            if i < self.iters {
                self.stopped()?;
            }
            if cpu.is_some_and(|c| c != CpuId::current()) {
                return Err(EAGAIN);
            }
        }
        Ok(u64::try_from(start.elapsed().as_nanos()).unwrap_or(0))
    }

    /// Iterations `from..to`: the measured code. Out of line, so that what the run does between
    /// chunks cannot change how the compiler lays out the loops it measures.
    #[inline(never)]
    fn chunk(&self, from: u64, to: u64) -> Result {
        match self.variant {
            Variant::Bare => {
                let chunk = Registry::global().get(self.name)?;
                let ops = chunk.ops();
                for x in from..to {
                    // SAFETY: `chunk` holds a reference on the owner (and the drain keeps the
                    // table).
                    black_box(unsafe { call::compute(ops, x) });
                }
            }
            Variant::GetPut => {
                let chunk = Registry::global().get(self.name)?;
                let ops = chunk.ops();
                for x in from..to {
                    // SAFETY: Direct protection: `chunk` holds a reference on the owner.
                    let r = unsafe { module_ref::try_get(ops.owner) }.ok_or(ENODEV)?;
                    // SAFETY: We hold `r` (and `chunk`'s reference).
                    black_box(unsafe { call::compute(ops, x) });
                    drop(r);
                }
            }
            Variant::Dispatch => {
                for x in from..to {
                    let p = Registry::global().get(self.name)?;
                    black_box(p.compute(x));
                }
            }
        }
        Ok(())
    }
}

/// `RMC_IOC_BENCH`.
pub(crate) fn ioctl(args: &mut BenchArgs, race_window_us: u32) -> Result {
    if args.flags != 0 || args.iters == 0 || args.iters > uapi::BENCH_MAX_ITERS {
        return Err(EINVAL);
    }
    let variant = Variant::from_abi(args.variant)?;
    // The race-window hook busy-waits in every lookup: bound the run's total.
    if matches!(variant, Variant::Dispatch)
        && args.iters.saturating_mul(u64::from(race_window_us)) > MAX_RACE_WAIT_US
    {
        return Err(EINVAL);
    }
    let name = uapi::user_name_padded(&args.table)?;
    // The table must exist now (`ENODEV` at once, not from every thread); the run holds nothing.
    drop(Registry::global().get(&name)?);
    let bench = BenchLoop {
        name: &name,
        variant,
        iters: args.iters,
        stop: Atomic::new(0),
    };
    args.cpu = CpuId::current().as_u32();
    args.ns = match args.cpus {
        0 => bench.run(None)?,
        n => run_kthreads(&bench, n)?,
    };
    Ok(())
}

/// What the threads of a concurrent run share. Lives in the ioctl's frame.
struct BenchStart<'a> {
    bench: &'a BenchLoop<'a>,
    threads: u32,
    /// Counts the threads that reached the start line; the last one completes `all_ready`.
    ready: Atomic<u32>,
    all_ready: &'a Completion,
    start: &'a Completion,
    /// Counts the threads that are done with their job (the last thing each one touches).
    done: Atomic<u32>,
}

/// One kthread's share of a concurrent run. Lives in the ioctl's frame until the thread exited.
struct BenchJob<'a> {
    shared: &'a BenchStart<'a>,
    /// The CPU the thread is bound to.
    cpu: CpuId,
    /// Out: the thread's loop time.
    ns: u64,
}

/// The body of an `rmc_bench/N` kthread: meet the others at the start line, run, report.
///
/// # Safety
///
/// `data` points to a [`BenchJob`] that no other thread accesses, and that (with everything it
/// borrows) stays valid until this thread has exited.
unsafe extern "C" fn bench_thread(data: *mut c_void) -> c_int {
    // SAFETY: The caller guarantees `data` is a valid `BenchJob` that only we access.
    let job = unsafe { &mut *data.cast::<BenchJob<'_>>() };
    let shared = job.shared;
    // The ordering is provided by the completions' lock; the count only has to be exact.
    if shared.ready.fetch_add(1, Relaxed) + 1 == shared.threads {
        shared.all_ready.complete_all();
    }
    shared.start.wait_for_completion();
    let ret = match shared.bench.run(Some(job.cpu)) {
        Ok(ns) => {
            job.ns = ns;
            0
        }
        Err(e) => {
            // The others stop too: one thread's error is the run's.
            shared.bench.stop_with(e);
            e.to_errno()
        }
    };
    // Release: `job.ns` is written before the ioctl sees this thread as done.
    shared.done.fetch_add(1, Release);
    ret
}

/// Runs `bench` in `n` kthreads at once, one bound to each of the first `n` online CPUs, released
/// together once all of them are waiting; returns the sum of their loop times.
///
/// CPU hotplug is held off only while the CPUs are picked and the threads created and bound, never
/// while they run: a reader of the hotplug lock that waits for a run the user sized would stall
/// a CPU going offline, and behind that pending writer every new reader in the system (module
/// loading among them). A CPU that goes offline during the run moves its thread (a bound kthread
/// that is not a per-CPU one is pushed away, silently); the thread notices and the run ends with
/// `EAGAIN`.
///
/// The jobs and the completions live in this frame; every thread that was created is stopped
/// (`kthread_stop` waits for it to exit) before this function returns, on every path.
fn run_kthreads(bench: &BenchLoop<'_>, n: u32) -> Result<u64> {
    if n > kernel::cpu::nr_cpu_ids() {
        return Err(EINVAL);
    }
    let threads = usize::try_from(n)?;
    stack_pin_init!(let all_ready = Completion::new());
    stack_pin_init!(let start = Completion::new());
    let shared = BenchStart {
        bench,
        threads: n,
        ready: Atomic::new(0),
        all_ready: &all_ready,
        start: &start,
        done: Atomic::new(0),
    };
    let mut jobs = KVec::with_capacity(threads, GFP_KERNEL)?;
    let mut tasks: KVec<*mut bindings::task_struct> = KVec::with_capacity(threads, GFP_KERNEL)?;
    let hotplug = CpusReadGuard::lock();
    let created =
        pick_cpus(&shared, &mut jobs, threads).and_then(|()| create_threads(&mut jobs, &mut tasks));
    drop(hotplug);
    if created.is_ok() {
        for &task in tasks.iter() {
            // SAFETY: `task` is a created kthread on which we hold a reference.
            unsafe { bindings::wake_up_process(task) };
        }
        shared.all_ready.wait_for_completion();
        shared.start.complete_all();
        // Wait in short sleeps rather than in one uninterruptible wait: a long run must not look
        // like a hung task to the watchdog, and a signal to the caller stops the threads.
        while shared.done.load(Acquire) < n {
            if kernel::current!().signal_pending() {
                bench.stop_with(EINTR);
            }
            fsleep(Delta::from_millis(10));
        }
    }
    // Threads never woken exit without running `bench_thread` (only on the error path above);
    // the others are waited for until they have returned from it.
    let mut first_err = created;
    for &task in tasks.iter() {
        // SAFETY: We hold a reference on `task`, a kthread; `kthread_stop_put` waits for it to
        // exit, returns what its function returned and drops our reference.
        let ret = unsafe { bindings::kthread_stop_put(task) };
        if ret != 0 && first_err.is_ok() {
            first_err = Err(Error::from_errno(ret));
        }
    }
    first_err?;
    Ok(jobs.iter().map(|j| j.ns).sum())
}

/// CPU hotplug held off (`cpus_read_lock()`) until dropped, in the task that took it (the guard
/// is not `Send`). Without `CONFIG_HOTPLUG_CPU` no CPU can go offline, and C's `cpus_read_lock()`
/// is an empty `static inline` with no symbol to bind to (arm64 makes the option a choice; x86
/// selects it with SMP): the guard then does nothing.
struct CpusReadGuard(PhantomData<*mut ()>);

impl CpusReadGuard {
    fn lock() -> Self {
        #[cfg(CONFIG_HOTPLUG_CPU)]
        // SAFETY: We are in process context and may sleep (the bench ioctl), and this task does
        // not hold the hotplug lock already (the ioctl takes it only here). While the guard
        // lives, the caller only picks CPUs and creates and binds kthreads, none of which takes
        // `cpus_write_lock()` or waits for a hotplug operation. `Drop` releases it.
        unsafe {
            bindings::cpus_read_lock()
        };
        Self(PhantomData)
    }
}

impl Drop for CpusReadGuard {
    fn drop(&mut self) {
        #[cfg(CONFIG_HOTPLUG_CPU)]
        // SAFETY: `lock()`, which created this guard, took the read lock in this task (the
        // guard is not `Send`).
        unsafe {
            bindings::cpus_read_unlock()
        };
    }
}

/// Fills `jobs` with one job per CPU, the first `threads` online CPUs. Called with CPU hotplug
/// held off.
fn pick_cpus<'a>(
    shared: &'a BenchStart<'a>,
    jobs: &mut KVec<BenchJob<'a>>,
    threads: usize,
) -> Result {
    // SAFETY: `__cpu_online_mask` is a valid, static cpumask; we read it with hotplug held off.
    let online = unsafe { Cpumask::from_raw(&raw const bindings::__cpu_online_mask) };
    for id in 0..kernel::cpu::nr_cpu_ids() {
        if jobs.len() == threads {
            break;
        }
        let cpu = CpuId::from_u32(id).ok_or(EINVAL)?;
        if online.test(cpu) {
            jobs.push(BenchJob { shared, cpu, ns: 0 }, GFP_KERNEL)?;
        }
    }
    if jobs.len() != threads {
        return Err(EINVAL); // More threads asked for than CPUs are online.
    }
    Ok(())
}

/// Creates one kthread per job, bound to the job's CPU, not yet woken; each goes into `tasks`
/// with a reference of ours. Stops at the first failure; the threads created so far stay in
/// `tasks`. Called with CPU hotplug held off, so that every CPU picked is still online.
fn create_threads(
    jobs: &mut KVec<BenchJob<'_>>,
    tasks: &mut KVec<*mut bindings::task_struct>,
) -> Result {
    // No push to `jobs` after this point: the pointers handed to the threads stay valid.
    for job in jobs.iter_mut() {
        let cpu = job.cpu.as_u32();
        // SAFETY: `bench_thread` accepts exactly a `BenchJob`; each job goes to one thread only,
        // and every thread has exited before `jobs` (and what it borrows) goes out of scope, as
        // `run_kthreads` stops every task in `tasks`. The name format has one `%u`, the CPU.
        let task = unsafe {
            bindings::kthread_create_on_cpu(
                Some(bench_thread),
                ptr::from_mut(job).cast(),
                cpu,
                c"rmc_bench/%u".as_char_ptr(),
            )
        };
        let task = kernel::error::from_err_ptr(task)?;
        // Our own reference: the thread may exit on its own before we stop it, and
        // `kthread_stop` needs its task to still exist then.
        // SAFETY: `task` is a valid task just created.
        unsafe { bindings::get_task_struct(task) };
        // Cannot fail: the capacity is the number of jobs.
        if let Err(e) = tasks.push(task, GFP_NOWAIT) {
            // SAFETY: Created, never woken: stopping it exits it without running
            // `bench_thread`; then we drop the reference taken above.
            unsafe { bindings::kthread_stop_put(task) };
            return Err(e.into());
        }
    }
    Ok(())
}
