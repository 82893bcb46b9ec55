// SPDX-License-Identifier: GPL-2.0

//! A consumer module that calls providers' ops only while it holds a reference on their module.
//!
//! Providers register a [`ProviderOps`] table with [`rust_consumer_register`]. Every use of a
//! table goes through [`ProviderRef`], which is obtained only from [`Registry::get`]: it takes
//! `try_module_get(owner)` when made and `module_put(owner)` when dropped. While a provider is
//! going away the get fails and the caller gets `ENODEV`, never a stale pointer.
//!
//! Userspace drives calls through `/dev/rust_consumer` (mode 0600), with a line-oriented text
//! interface for people and ioctls for programs:
//!
//! ```sh
//! exec 3<>/dev/rust_consumer
//! echo 'compute rust_provider 42' >&3; cat <&3
//! # ok compute provider=rust_provider instance=0x... x=42 y=...
//! echo 'hold rust_provider 500000' >&3        # sleeps 0.5 s inside the provider
//! echo 'stats' >&3; cat <&3                    # counters, total and per provider
//! ```
//!
//! See README.md ("Userspace interface") for every request, ioctl, struct layout and errno.

use core::{
    fmt::Write,
    hint::black_box,
    ptr::{
        self,
        NonNull, //
    },
};
use kernel::{
    bindings,
    cpu::CpuId,
    cpumask::Cpumask,
    ffi::{
        c_int,
        c_void, //
    },
    fs::{
        File,
        Kiocb, //
    },
    ioctl::{
        _IO,
        _IOWR, //
    },
    iov::{
        IovIterDest,
        IovIterSource, //
    },
    miscdevice::{
        MiscDevice,
        MiscDeviceOptions,
        MiscDeviceRegistration, //
    },
    new_mutex,
    prelude::*,
    sync::{
        atomic::{
            Acquire,
            Atomic,
            Relaxed,
            Release, //
        },
        rcu,
        Completion,
        Mutex, //
    },
    time::{
        delay::{
            fsleep,
            udelay, //
        },
        Delta,
        Instant,
        Monotonic, //
    },
    transmute::{
        AsBytes,
        FromBytes, //
    },
    uaccess::UserSlice,
};

use pin_init::stack_pin_init;

#[path = "provider_abi.rs"]
mod abi;

use abi::{
    ProviderInfo,
    ProviderOps,
    NAME_LEN, //
};

module! {
    type: RustConsumer,
    name: "rust_consumer",
    authors: ["rust-modref developers"],
    description: "Registry of providers, called only under a module reference",
    license: "GPL",
    params: {
        race_window_us: u32 {
            default: 0,
            description: "Test hook: busy-wait this many microseconds (at most 1000) between \
                finding a provider and taking its reference, to widen the race with its removal",
        },
    },
}

/// Upper bound of `race_window_us`.
const RACE_WINDOW_MAX_US: u32 = 1000;

/// True only in the negative-control build (`make UNSAFE_SKIP_MODULE_GET=1`): [`ModuleRef`] then
/// takes no reference, so a provider can be freed while a call runs in it. Never ship this.
const UNSAFE_SKIP_MODULE_GET: bool = cfg!(rmr_unsafe_skip_module_get);

// ------------------------------------------------------------------------------------------------
// The module reference guard.

/// A counted reference on a module: `try_module_get` when made, `module_put` when dropped.
///
/// While a [`ModuleRef`] exists the module cannot finish unloading: `delete_module` refuses a
/// module whose refcount is not zero, so its code, data and `struct module` stay in memory.
/// Dropping the value is the only way to release the reference, so an early return or a `?`
/// cannot leak it. (`core::mem::forget` can; that is a leak that keeps the module loaded, not
/// unsoundness.)
///
/// # Invariants
///
/// `module` is null (a built-in owner, or the negative-control build) or a module on which this
/// value holds one reference taken by `try_module_get`.
struct ModuleRef {
    module: *mut bindings::module,
}

impl ModuleRef {
    /// Takes a reference on `module` unless it is being removed (or still initialising).
    ///
    /// Returns `None` when the module is on its way out: that is the caller's `ENODEV`.
    ///
    /// # Safety
    ///
    /// `module` must be null or point to a `struct module` that is known to stay allocated for
    /// the duration of this call, by *direct protection* (the caller already holds a reference)
    /// or *implied protection* (something the module's exit path must also wait for is held),
    /// as the `try_module_get()` documentation in `srctree/include/linux/module.h` requires.
    #[inline]
    unsafe fn try_get(module: *mut bindings::module) -> Option<Self> {
        if UNSAFE_SKIP_MODULE_GET {
            // INVARIANT: A null module holds no reference.
            return Some(Self {
                module: ptr::null_mut(),
            });
        }
        // SAFETY: The caller guarantees `module` is null or alive for this call.
        if !unsafe { bindings::try_module_get(module) } {
            return None;
        }
        // INVARIANT: We hold the reference just taken.
        let this = Self { module };
        // Only hand out references on LIVE modules. A COMING module is still running its init,
        // and if that init fails the loader marks it GOING and frees it after an RCU grace period
        // without waiting for references (the only way to see GOING while holding a reference).
        // Our caller's protection still covers the `module_put` that dropping `this` does.
        if module.is_null() {
            return Some(this);
        }
        // SAFETY: We hold a reference (direct protection), so `*module` is alive; the loader
        // writes `state` concurrently with WRITE_ONCE, hence the volatile read.
        let state = unsafe { ptr::addr_of!((*module).state).read_volatile() };
        if state != bindings::module_state_MODULE_STATE_LIVE {
            return None; // `this` is dropped: module_put while still protected.
        }
        Some(this)
    }
}

impl Drop for ModuleRef {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: By the type invariant we hold a reference on `self.module` (or it is null,
        // which `module_put` ignores); it is released exactly once, here.
        unsafe { bindings::module_put(self.module) };
    }
}

// ------------------------------------------------------------------------------------------------
// Counters.

/// Counter indices.
#[derive(Clone, Copy)]
enum Counter {
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
struct ShardIdx(usize);

impl ShardIdx {
    fn current() -> Self {
        Self(CpuId::current().as_u32() as usize % SHARDS)
    }
}

/// Event counters, sharded by CPU. A sum is exact once no call is in flight.
struct Stats([Shard; SHARDS]);

impl Stats {
    const fn new() -> Self {
        Self([const { Shard([const { Atomic::new(0) }; NR_COUNTERS]) }; SHARDS])
    }

    #[inline]
    fn inc(&self, shard: ShardIdx, c: Counter) {
        if let Some(s) = self.0.get(shard.0) {
            s.0[c as usize].add(1u64, Relaxed);
        }
    }

    /// Adds every count of `self` into `into` and zeroes `self`. Exact only while nobody
    /// writes `self`.
    fn drain_into(&self, into: &Stats) {
        for c in 0..NR_COUNTERS {
            let mut sum = 0u64;
            for shard in &self.0 {
                sum = sum.wrapping_add(shard.0[c].load(Relaxed));
                shard.0[c].store(0, Relaxed);
            }
            into.0[0].0[c].add(sum, Relaxed);
        }
    }

    /// The sum of several `Stats`.
    fn sum<'a>(all: impl Iterator<Item = &'a Stats> + Clone) -> StatsOut {
        let sum = |c: Counter| {
            all.clone().flat_map(|s| s.0.iter()).fold(0u64, |acc, s| {
                acc.wrapping_add(s.0[c as usize].load(Relaxed))
            })
        };
        // Released before taken: a reference released during the sum was taken earlier.
        let refs_released = sum(Counter::RefsReleased);
        let refs_taken = sum(Counter::RefsTaken);
        StatsOut {
            provider: [0; NAME_LEN],
            calls_ok: sum(Counter::CallsOk),
            calls_enodev: sum(Counter::CallsEnodev),
            calls_failed: sum(Counter::CallsFailed),
            refs_taken,
            refs_released,
            refs_held: refs_taken.saturating_sub(refs_released),
            providers: 0,
        }
    }
}

// ------------------------------------------------------------------------------------------------
// The registry.

/// Most providers registered at once.
const MAX_PROVIDERS: usize = 8;

/// A registry slot.
///
/// # Invariants
///
/// - `ops` is null or points to a table that satisfies the [`ProviderOps`] contract. It is
///   written only with `REGISTRY_LOCK` held. After it is cleared, the table stays valid for one
///   RCU grace period (see [`rust_consumer_unregister`]).
/// - `stats` is written only by a holder of a reference on the registered table's owner, or
///   inside the RCU read-side critical section in which the table was found. So once the
///   provider's exit has waited for its grace period nobody writes it, and `unregister` moves
///   its counts into [`RETIRED`].
struct Slot {
    ops: Atomic<*const ProviderOps>,
    stats: Stats,
}

static SLOTS: [Slot; MAX_PROVIDERS] = [const {
    Slot {
        ops: Atomic::new(ptr::null()),
        stats: Stats::new(),
    }
}; MAX_PROVIDERS];

/// Counts of providers that have unregistered, and of calls that named no registered provider.
/// The totals are this plus every slot's counters: the hot path writes only its slot.
static RETIRED: Stats = Stats::new();

/// Bit `i` set: slot `i` holds a table. Written only with `REGISTRY_LOCK` held; readers use it
/// to skip empty slots (a stale bit costs one extra slot load, the slot's `ops` decides).
///
/// 64 bits although 8 are used: on 7.3 a module's `Atomic<u32>` operations call the kernel
/// crate's shared, out-of-line `AtomicRepr<i32>::as_ptr`, while `Atomic<u64>` ones compile to a
/// plain `mov` (seen in `objdump -dr rust_consumer.ko`); this load is on every call's path.
static REGISTERED: Atomic<u64> = Atomic::new(0);
const _: () = assert!(MAX_PROVIDERS <= 64);

kernel::sync::global_lock! {
    // SAFETY: Initialised by `RustConsumer::init` before the device exists and before any
    // module can import `rust_consumer_register` (the loader waits for our init to finish).
    //
    // The value: bit `i` set while slot `i` is in use, from registration until `unregister`
    // has moved its counters into `RETIRED` (a grace period after `ops` was cleared).
    unsafe(uninit) static REGISTRY_LOCK: Mutex<u32> = 0;
}

/// The provider registry: lock-free RCU readers, writers serialised by `REGISTRY_LOCK`.
///
/// Why a reader may call `try_module_get` on a provider it found here (implied protection):
///
/// 1. A reader loads a slot and calls `try_module_get(ops.owner)` inside one RCU read-side
///    critical section.
/// 2. A provider's exit clears its slot and then waits for an RCU grace period before it returns
///    (`rust_consumer_unregister`); the module loader frees the provider's memory (the table, its
///    code, its `struct module`) only after its exit returns.
/// 3. So every reader that saw the table finishes its `try_module_get` while the table and the
///    `struct module` are still allocated. The exit runs only once the refcount dropped to zero
///    and the module is `GOING`, so such a late `try_module_get` fails and the caller gets
///    `ENODEV`. A reference taken before that keeps the module from reaching its exit at all.
///
/// After the RCU section, the reference itself (direct protection) keeps the table and code
/// alive for as long as the [`ProviderRef`] exists.
struct Registry;

impl Registry {
    /// Finds the provider called `name` and takes a reference on its module.
    ///
    /// `race_window_us` is the test hook (0 but in the selftest, see the module parameter).
    /// Fails with `ENODEV` when no such provider is registered or it is going away.
    #[inline]
    fn get(key: &[u8; NAME_LEN], race_window_us: u32) -> Result<ProviderRef> {
        let shard = ShardIdx::current();
        let rcu = rcu::read_lock();
        let mut registered = REGISTERED.load(Acquire);
        while registered != 0 {
            let i = registered.trailing_zeros() as usize;
            registered &= registered - 1;
            let Some(slot) = SLOTS.get(i) else { break };
            let ops = slot.ops.load(Acquire);
            if ops.is_null() {
                continue;
            }
            // SAFETY: We are in an RCU read-side critical section and `ops` was loaded from a
            // slot: by the `Slot` invariant it stays valid until at least the end of it.
            let table = unsafe { &*ops };
            if !table.has_key(key) {
                continue;
            }
            // Test hook (0 by default): stretch the window in which only RCU protects the table.
            // A removal that does not wait for a grace period frees it under us right here.
            if race_window_us > 0 {
                udelay(Delta::from_micros(i64::from(race_window_us)));
            }
            // SAFETY: Implied protection: we are still inside the RCU read-side critical
            // section in which `ops` was found, and the provider's exit waits for a grace period
            // after clearing the slot, so `table.owner` is alive for this call (see `Registry`).
            let Some(module_ref) = (unsafe { ModuleRef::try_get(table.owner) }) else {
                // Inside the RCU section: allowed by the `Slot` invariant.
                slot.stats.inc(shard, Counter::CallsEnodev);
                return Err(ENODEV);
            };
            drop(rcu);
            // We hold a reference on the owner: allowed by the `Slot` invariant.
            slot.stats.inc(shard, Counter::RefsTaken);
            // INVARIANT: `module_ref` holds a reference on `table.owner`.
            return Ok(ProviderRef {
                ops: NonNull::from(table),
                slot,
                shard,
                _module_ref: module_ref,
            });
        }
        drop(rcu);
        RETIRED.inc(shard, Counter::CallsEnodev);
        Err(ENODEV)
    }

    fn register(ops: *const ProviderOps) -> Result {
        if ops.is_null() {
            return Err(EINVAL);
        }
        // SAFETY: The caller of `rust_consumer_register` guarantees the table is valid.
        let table = unsafe { &*ops };
        if table.abi_version != abi::ABI_VERSION {
            pr_err!(
                "refusing provider: ABI version {} (this consumer speaks {})\n",
                table.abi_version,
                abi::ABI_VERSION
            );
            return Err(EINVAL);
        }
        let name = table.name();
        if name.is_empty() || !table.is_nul_padded() {
            return Err(EINVAL);
        }
        let mut in_use = REGISTRY_LOCK.lock();
        for slot in &SLOTS {
            let cur = slot.ops.load(Relaxed);
            // SAFETY: A table stays valid while it is in a slot, and we hold the lock that
            // keeps it there.
            if !cur.is_null() && unsafe { (*cur).has_key(&table.name) } {
                return Err(EEXIST);
            }
        }
        let i = (0..MAX_PROVIDERS)
            .find(|i| *in_use & (1 << i) == 0)
            .ok_or(ENOSPC)?;
        let slot = SLOTS.get(i).ok_or(ENOSPC)?;
        *in_use |= 1 << i;
        // INVARIANT: `ops` satisfies the contract (caller) and we hold the lock. The slot's
        // counters are zero: `unregister` drained them before giving the slot back.
        slot.ops.store(ops, Release);
        REGISTERED.store(REGISTERED.load(Relaxed) | (1 << i), Release);
        Ok(())
    }

    fn unregister(ops: *const ProviderOps) {
        let mut cleared = None;
        {
            let _in_use = REGISTRY_LOCK.lock();
            let found = SLOTS
                .iter()
                .enumerate()
                .find(|(_, s)| ptr::eq(s.ops.load(Relaxed), ops));
            if let Some((i, slot)) = found {
                REGISTERED.store(REGISTERED.load(Relaxed) & !(1 << i), Release);
                // INVARIANT: Cleared under the lock; the grace period follows below.
                slot.ops.store(ptr::null(), Release);
                cleared = Some((i, slot));
            }
        }
        // Every reader that could have seen the table has left its RCU section after this. The
        // expedited form gives the same guarantee, faster, at the price of an IPI to each CPU:
        // right for a rare event that a patient `rmmod` waits on.
        // SAFETY: Called from process context (a provider's init or exit) and not inside an RCU
        // read-side critical section, as `synchronize_rcu_expedited()` requires.
        unsafe { bindings::synchronize_rcu_expedited() };
        if let Some((i, slot)) = cleared {
            let mut in_use = REGISTRY_LOCK.lock();
            // Nobody writes the slot's counters any more (`Slot` invariant: no reader is left
            // in the RCU section that found the table, and the provider's exit only runs when
            // no reference is held), so moving them is exact.
            slot.stats.drain_into(&RETIRED);
            *in_use &= !(1 << i);
        }
    }

    /// Writes one line per registered provider.
    fn list(out: &mut Answer) -> core::fmt::Result {
        let _rcu = rcu::read_lock();
        for slot in &SLOTS {
            let ops = slot.ops.load(Acquire);
            if !ops.is_null() {
                // SAFETY: Loaded from a slot inside an RCU read-side critical section.
                let name = unsafe { (*ops).name() };
                writeln!(out, "{}", BStrDisplay(name))?;
            }
        }
        Ok(())
    }

    /// Counters of the provider called `name`, or the totals when `name` is empty.
    ///
    /// Fails with `ENODEV` when `name` is not registered.
    fn stats(name: &[u8]) -> Result<StatsOut> {
        // A name too long to be registered is not registered.
        let key = abi::name_buf(name).ok_or(ENODEV)?;
        // The lock keeps tables in their slots and `unregister` from moving counters meanwhile.
        let _in_use = REGISTRY_LOCK.lock();
        let mut out = if name.is_empty() {
            Stats::sum(Iterator::chain(
                SLOTS.iter().map(|s| &s.stats),
                core::iter::once(&RETIRED),
            ))
        } else {
            let slot = SLOTS
                .iter()
                .find(|s| {
                    let ops = s.ops.load(Relaxed);
                    // SAFETY: A table stays valid while it is in a slot, and we hold the lock
                    // that keeps it there.
                    !ops.is_null() && unsafe { (*ops).has_key(&key) }
                })
                .ok_or(ENODEV)?;
            Stats::sum(core::iter::once(&slot.stats))
        };
        out.providers = u64::from(REGISTERED.load(Relaxed).count_ones());
        Ok(out)
    }
}

/// The exported registration entry point (see `abi::RegisterFn`).
///
/// # Safety
///
/// `ops` must satisfy the [`ProviderOps`] contract until [`rust_consumer_unregister`] returns.
#[no_mangle]
unsafe extern "C" fn rust_consumer_register(ops: *const ProviderOps) -> c_int {
    match Registry::register(ops) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// The exported unregistration entry point (see `abi::UnregisterFn`).
///
/// # Safety
///
/// `ops` must have been passed to [`rust_consumer_register`] by the caller.
#[no_mangle]
unsafe extern "C" fn rust_consumer_unregister(ops: *const ProviderOps) {
    Registry::unregister(ops)
}

// The exported functions have the ABI's signatures.
const _: abi::RegisterFn = rust_consumer_register;
const _: abi::UnregisterFn = rust_consumer_unregister;

/// Exports a function like `EXPORT_SYMBOL_GPL(sym)`: the `.export_symbol` entry modpost reads,
/// laid out as `___EXPORT_SYMBOL` in `srctree/include/linux/export.h` does (label, license,
/// namespace, 8-byte aligned pointer to the symbol).
macro_rules! export_symbol_gpl {
    ($sym:ident) => {
        core::arch::global_asm!(
            ".section \".export_symbol\",\"a\"",
            concat!("__export_symbol_", stringify!($sym), ":"),
            ".asciz \"GPL\"",
            ".asciz \"\"",
            ".balign 8",
            concat!(".quad ", stringify!($sym)),
            ".previous",
        );
    };
}
export_symbol_gpl!(rust_consumer_register);
export_symbol_gpl!(rust_consumer_unregister);

// ------------------------------------------------------------------------------------------------
// Calling a provider.

/// The right to call one provider's ops, obtained only from [`Registry::get`].
///
/// # Invariants
///
/// `_module_ref` holds a reference on `ops.owner` (direct protection), so the table and the code
/// its entries point to stay alive as long as this value does. References to the table handed
/// out by methods borrow `self`, so they cannot outlive it.
struct ProviderRef {
    ops: NonNull<ProviderOps>,
    slot: &'static Slot,
    shard: ShardIdx,
    _module_ref: ModuleRef,
}

impl ProviderRef {
    fn ops(&self) -> &ProviderOps {
        // SAFETY: The table is alive while we hold the module reference (type invariant).
        unsafe { self.ops.as_ref() }
    }

    fn compute(&self, x: u64) -> u64 {
        // SAFETY: We hold a reference on the owner of the code `compute` points to.
        unsafe { (self.ops().compute)(x) }
    }

    fn hold(&self, us: u32) -> Result {
        // SAFETY: We hold a reference on the owner of the code `hold` points to.
        kernel::error::to_result(unsafe { (self.ops().hold)(us) })
    }

    fn describe(&self) -> ProviderInfo {
        let mut info = ProviderInfo {
            name: [0; NAME_LEN],
            version: 0,
            instance_id: 0,
        };
        // SAFETY: We hold a reference on the owner of the code `describe` points to, and `info`
        // is valid for writes.
        unsafe { (self.ops().describe)(&mut info) };
        // One provider may register several tables sharing one `describe`: name the one called.
        info.name = self.ops().name;
        info
    }
}

impl Drop for ProviderRef {
    #[inline]
    fn drop(&mut self) {
        // Still under the reference (`_module_ref` is dropped after this: module_put).
        self.slot.stats.inc(self.shard, Counter::RefsReleased);
    }
}

/// An operation on a provider.
#[derive(Clone, Copy)]
enum Op {
    Compute(u64),
    Hold(u32),
    Describe,
}

/// What a call returns.
struct Reply {
    info: ProviderInfo,
    result: u64,
}

/// Calls `op` on the provider called `name`, under a reference on its module.
fn call(key: &[u8; NAME_LEN], op: Op, race_window_us: u32) -> Result<Reply> {
    let provider = Registry::get(key, race_window_us)?;
    let mut result = 0;
    let outcome = match op {
        Op::Compute(x) => {
            result = provider.compute(x);
            Ok(())
        }
        Op::Hold(us) => provider.hold(us),
        Op::Describe => Ok(()),
    };
    let info = provider.describe();
    let counter = match outcome {
        Ok(()) => Counter::CallsOk,
        Err(_) => Counter::CallsFailed,
    };
    provider.slot.stats.inc(provider.shard, counter);
    outcome.map(|()| Reply { info, result })
}

// ------------------------------------------------------------------------------------------------
// Userspace interface: ioctls.

/// `ioctl` type byte (free in `Documentation/userspace-api/ioctl/ioctl-number.rst`).
const RMC_IOC_MAGIC: u32 = 0xB9;
/// Calls an op on a named provider: `_IOWR(0xB9, 1, struct rmc_call)`.
const RMC_IOC_CALL: u32 = _IOWR::<CallArgs>(RMC_IOC_MAGIC, 1);
/// Reads counters, total (empty name) or of one provider: `_IOWR(0xB9, 2, struct rmc_stats)`.
const RMC_IOC_STATS: u32 = _IOWR::<StatsOut>(RMC_IOC_MAGIC, 2);
/// Does nothing: the baseline for benchmarks (no provider, no reference): `_IO(0xB9, 3)`.
const RMC_IOC_NOP: u32 = _IO(RMC_IOC_MAGIC, 3);
/// In-kernel microbenchmark of one variant: `_IOWR(0xB9, 4, struct rmc_bench)`.
const RMC_IOC_BENCH: u32 = _IOWR::<BenchArgs>(RMC_IOC_MAGIC, 4);
/// `RMC_IOC_CALL`'s argument traffic (read, checks, output fields written back) without a
/// provider or a reference; `result = arg`: `_IOWR(0xB9, 5, struct rmc_call)`. The baseline that
/// separates the cost of the discipline from the cost of the ioctl and its copies.
const RMC_IOC_ECHO: u32 = _IOWR::<CallArgs>(RMC_IOC_MAGIC, 5);

/// `struct rmc_call` operations.
const OP_COMPUTE: u32 = 0;
const OP_HOLD: u32 = 1;
const OP_DESCRIBE: u32 = 2;

/// `struct rmc_call` (72 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
struct CallArgs {
    /// In: NUL-terminated provider name.
    provider: [u8; NAME_LEN],
    /// In: `OP_COMPUTE`, `OP_HOLD` or `OP_DESCRIBE`.
    op: u32,
    /// In: must be 0.
    flags: u32,
    /// In: `x` for compute, microseconds for hold.
    arg: u64,
    /// Out: compute's answer.
    result: u64,
    /// Out: instance id of the provider that answered.
    instance_id: u64,
    /// Out: provider version.
    version: u32,
    /// Must be 0.
    reserved: u32,
}

// SAFETY: `CallArgs` is `repr(C)` with only integer fields and no padding (32+4+4+8+8+8+4+4 =
// 72, every field naturally aligned), so every byte pattern is a valid value.
unsafe impl FromBytes for CallArgs {}
// SAFETY: Same layout argument: no padding bytes, so every byte is initialised.
unsafe impl AsBytes for CallArgs {}

/// `struct rmc_stats` (88 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
struct StatsOut {
    /// In: provider name, or empty for the totals.
    provider: [u8; NAME_LEN],
    calls_ok: u64,
    calls_enodev: u64,
    calls_failed: u64,
    refs_taken: u64,
    refs_released: u64,
    refs_held: u64,
    /// Providers registered now.
    providers: u64,
}

// SAFETY: `repr(C)`, a byte array followed by `u64`s at offsets multiple of 8: no padding, and
// every byte pattern is a valid value.
unsafe impl FromBytes for StatsOut {}
// SAFETY: Same layout argument: no padding bytes.
unsafe impl AsBytes for StatsOut {}

// The layouts the `FromBytes`/`AsBytes` SAFETY comments rely on (no padding) and the sizes
// encoded in the ioctl numbers that userspace uses.
const _: () = assert!(core::mem::size_of::<CallArgs>() == 72);
const _: () = assert!(core::mem::size_of::<StatsOut>() == 88);
const _: () = assert!(core::mem::size_of::<BenchArgs>() == 64);

/// The name in a NUL-terminated fixed buffer coming from userspace.
fn user_name(buf: &[u8; NAME_LEN]) -> Result<&[u8]> {
    match buf.iter().position(|&b| b == 0) {
        Some(len) => Ok(&buf[..len]),
        None => Err(EINVAL),
    }
}

/// The lookup key ([`Registry::get`]) of a NUL-terminated name from userspace: the name
/// NUL-padded to `NAME_LEN`, whatever followed its NUL in the user's buffer.
fn user_key(buf: &[u8; NAME_LEN]) -> Result<[u8; NAME_LEN]> {
    abi::name_buf(user_name(buf)?).ok_or(EINVAL)
}

/// Reads a `T` from the ioctl argument, lets `f` update it, and writes it back.
fn ioctl_inout<T: FromBytes + AsBytes>(
    arg: usize,
    f: impl FnOnce(&mut T) -> Result,
) -> Result<isize> {
    let (mut reader, mut writer) =
        UserSlice::new(UserPtr::from_addr(arg), core::mem::size_of::<T>()).reader_writer();
    let mut v: T = reader.read()?;
    f(&mut v)?;
    writer.write(&v)?;
    Ok(0)
}

/// The output fields of `struct rmc_call`, in its layout: the only bytes `RMC_IOC_CALL` writes
/// back (20 of 72: a user copy costs per byte, and under emulation a lot).
#[repr(C, packed)]
struct CallOut {
    result: u64,
    instance_id: u64,
    version: u32,
}

// SAFETY: `repr(C, packed)` with integer fields only: no padding, every byte is initialised.
unsafe impl AsBytes for CallOut {}

const CALL_OUT_AT: usize = core::mem::offset_of!(CallArgs, result);
const _: () = assert!(
    core::mem::offset_of!(CallArgs, instance_id) == CALL_OUT_AT + 8
        && core::mem::offset_of!(CallArgs, version) == CALL_OUT_AT + 16
        && core::mem::offset_of!(CallArgs, reserved)
            == CALL_OUT_AT + core::mem::size_of::<CallOut>()
);

/// `RMC_IOC_CALL`, or with `echo` `RMC_IOC_ECHO`.
fn ioctl_call(arg: usize, race_window_us: u32, echo: bool) -> Result<isize> {
    let args: CallArgs = UserSlice::new(UserPtr::from_addr(arg), core::mem::size_of::<CallArgs>())
        .reader()
        .read()?;
    if args.flags != 0 || args.reserved != 0 {
        return Err(EINVAL);
    }
    let op = match args.op {
        OP_COMPUTE => Op::Compute(args.arg),
        OP_HOLD => Op::Hold(u32::try_from(args.arg).map_err(|_| EINVAL)?),
        OP_DESCRIBE => Op::Describe,
        _ => return Err(EINVAL),
    };
    let key = user_key(&args.provider)?;
    let out = if echo {
        CallOut {
            result: args.arg,
            instance_id: 0,
            version: 0,
        }
    } else {
        let reply = call(&key, op, race_window_us)?;
        CallOut {
            result: reply.result,
            instance_id: reply.info.instance_id,
            version: reply.info.version,
        }
    };
    // The whole struct was readable; `arg + CALL_OUT_AT` cannot wrap, but a bad pointer still
    // faults cleanly into `EFAULT`.
    let at = arg.checked_add(CALL_OUT_AT).ok_or(EFAULT)?;
    UserSlice::new(UserPtr::from_addr(at), core::mem::size_of::<CallOut>())
        .writer()
        .write(&out)?;
    Ok(0)
}

fn ioctl_stats(query: &mut StatsOut) -> Result {
    let mut out = Registry::stats(user_name(&query.provider)?)?;
    out.provider = query.provider;
    *query = out;
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// In-kernel microbenchmark (off the fast path: only `RMC_IOC_BENCH` runs it).

/// `struct rmc_bench` (64 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
struct BenchArgs {
    /// In: NUL-terminated provider name.
    provider: [u8; NAME_LEN],
    /// In: 0 bare call, 1 get + call + put, 2 full dispatch (see [`Variant`]).
    variant: u32,
    /// Must be 0.
    flags: u32,
    /// In: iterations per thread (1 to `BENCH_MAX_ITERS`).
    iters: u64,
    /// Out: nanoseconds the loop took, summed over the threads that ran it.
    ns: u64,
    /// Out: CPU the calling thread entered the ioctl on.
    cpu: u32,
    /// In: 0 to run the loop in the calling thread; N to run it in N kthreads at once, one bound
    /// to each of the first N online CPUs.
    cpus: u32,
}

// SAFETY: `repr(C)`, integer fields only, no padding (32+4+4+8+8+4+4 = 64, all naturally aligned):
// every byte pattern is a valid value.
unsafe impl FromBytes for BenchArgs {}
// SAFETY: Same layout argument: no padding bytes.
unsafe impl AsBytes for BenchArgs {}

/// `struct rmc_bench` variants, checked once when the request is read.
#[derive(Clone, Copy)]
enum Variant {
    /// (a) A bare indirect call of `compute`, under one reference held for the whole loop.
    Bare,
    /// (b) `try_module_get` + `compute` + `module_put` per iteration.
    GetPut,
    /// (c) The full dispatch per iteration: registry lookup under RCU, guard, `compute`, release.
    Dispatch,
}

impl Variant {
    fn from_abi(v: u32) -> Result<Self> {
        match v {
            0 => Ok(Self::Bare),
            1 => Ok(Self::GetPut),
            2 => Ok(Self::Dispatch),
            _ => Err(EINVAL),
        }
    }
}

const BENCH_MAX_ITERS: u64 = 100_000_000;

/// What one benchmark loop needs; the threads of a concurrent run share one.
struct BenchLoop<'a> {
    /// Held by the ioctl for the whole run: the provider cannot go while we measure it.
    provider: &'a ProviderRef,
    key: &'a [u8; NAME_LEN],
    variant: Variant,
    iters: u64,
    race_window_us: u32,
}

impl BenchLoop<'_> {
    /// Runs the loop in the current thread; returns the nanoseconds it took.
    fn run(&self) -> Result<u64> {
        let start = Instant::<Monotonic>::now();
        match self.variant {
            Variant::Bare => {
                for i in 0..self.iters {
                    black_box(self.provider.compute(i));
                }
            }
            Variant::GetPut => {
                let owner = self.provider.ops().owner;
                for i in 0..self.iters {
                    // SAFETY: Direct protection: `self.provider` holds a reference on `owner`.
                    let r = unsafe { ModuleRef::try_get(owner) }.ok_or(ENODEV)?;
                    black_box(self.provider.compute(i));
                    drop(r);
                }
            }
            Variant::Dispatch => {
                for i in 0..self.iters {
                    let p = Registry::get(self.key, self.race_window_us)?;
                    black_box(p.compute(i));
                }
            }
        }
        Ok(u64::try_from(start.elapsed().as_nanos()).unwrap_or(0))
    }
}

fn ioctl_bench(args: &mut BenchArgs, race_window_us: u32) -> Result {
    if args.flags != 0 || args.iters == 0 || args.iters > BENCH_MAX_ITERS {
        return Err(EINVAL);
    }
    let variant = Variant::from_abi(args.variant)?;
    let key = user_key(&args.provider)?;
    let provider = Registry::get(&key, race_window_us)?;
    let bench = BenchLoop {
        provider: &provider,
        key: &key,
        variant,
        iters: args.iters,
        race_window_us,
    };
    args.cpu = CpuId::current().as_u32();
    args.ns = match args.cpus {
        0 => bench.run()?,
        n => bench_kthreads(&bench, n)?,
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
    let ret = match shared.bench.run() {
        Ok(ns) => {
            job.ns = ns;
            0
        }
        Err(e) => e.to_errno(),
    };
    // Release: `job.ns` is written before the ioctl sees this thread as done.
    shared.done.fetch_add(1, Release);
    ret
}

/// Runs `bench` in `n` kthreads at once, one bound to each of the first `n` online CPUs, released
/// together once all of them are waiting; returns the sum of their loop times.
///
/// The jobs and the completions live in this frame; every thread that was created is stopped
/// (`kthread_stop` waits for it to exit) before this function returns, on every path.
fn bench_kthreads(bench: &BenchLoop<'_>, n: u32) -> Result<u64> {
    // CPU hotplug is held off until every thread has exited: a bound kthread whose CPU goes away
    // would be moved (and logged), and "the first N online CPUs" must stay true while we measure.
    // SAFETY: Paired with the `cpus_read_unlock` below; nothing in between takes the write side.
    unsafe { bindings::cpus_read_lock() };
    let res = bench_kthreads_locked(bench, n);
    // SAFETY: We took the read lock above.
    unsafe { bindings::cpus_read_unlock() };
    res
}

fn bench_kthreads_locked(bench: &BenchLoop<'_>, n: u32) -> Result<u64> {
    // SAFETY: `__cpu_online_mask` is a valid, static cpumask; we read it with hotplug held off.
    let online = unsafe { Cpumask::from_raw(&raw const bindings::__cpu_online_mask) };
    if n > kernel::cpu::nr_cpu_ids() {
        return Err(EINVAL);
    }
    let threads = usize::try_from(n)?;
    let mut cpus = KVec::with_capacity(threads, GFP_KERNEL)?;
    for id in 0..kernel::cpu::nr_cpu_ids() {
        if cpus.len() == threads {
            break;
        }
        let cpu = CpuId::from_u32(id).ok_or(EINVAL)?;
        if online.test(cpu) {
            cpus.push(id, GFP_KERNEL)?;
        }
    }
    if cpus.len() != threads {
        return Err(EINVAL); // More threads asked for than CPUs are online.
    }

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
    for _ in 0..threads {
        jobs.push(
            BenchJob {
                shared: &shared,
                ns: 0,
            },
            GFP_KERNEL,
        )?;
    }
    // No push after this point: the pointers handed to the threads stay valid.
    let mut tasks: KVec<*mut bindings::task_struct> = KVec::with_capacity(threads, GFP_KERNEL)?;
    let mut created = Ok(());
    for (job, &cpu) in jobs.iter_mut().zip(cpus.iter()) {
        // SAFETY: `bench_thread` accepts exactly a `BenchJob`; each job goes to one thread only,
        // and every thread has exited before `jobs` (and what it borrows) goes out of scope, as
        // the `kthread_stop` calls below wait for that. The name format has one `%u`, the CPU.
        let task = unsafe {
            bindings::kthread_create_on_cpu(
                Some(bench_thread),
                ptr::from_mut(job).cast(),
                cpu,
                c"rmc_bench/%u".as_char_ptr(),
            )
        };
        match kernel::error::from_err_ptr(task) {
            Ok(task) => {
                // Our own reference: the thread may exit on its own before we stop it, and
                // `kthread_stop` needs its task to still exist then.
                // SAFETY: `task` is a valid task just created.
                unsafe { bindings::get_task_struct(task) };
                // Cannot fail: the capacity is `threads`.
                if let Err(e) = tasks.push(task, GFP_NOWAIT) {
                    // SAFETY: Created, never woken: stopping it exits it without running
                    // `bench_thread`; then we drop the reference taken above.
                    unsafe { bindings::kthread_stop_put(task) };
                    created = Err(e.into());
                    break;
                }
            }
            Err(e) => {
                created = Err(e);
                break;
            }
        }
    }
    if created.is_ok() {
        for &task in tasks.iter() {
            // SAFETY: `task` is a created kthread on which we hold a reference.
            unsafe { bindings::wake_up_process(task) };
        }
        shared.all_ready.wait_for_completion();
        shared.start.complete_all();
        // Wait in short sleeps rather than in one uninterruptible wait: a long run (up to
        // `BENCH_MAX_ITERS` per thread) must not look like a hung task to the watchdog.
        while shared.done.load(Acquire) < n {
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

// ------------------------------------------------------------------------------------------------
// Userspace interface: text requests.

/// Longest accepted text request, in bytes.
const MAX_REQUEST: usize = 128;
/// Size of the per-file answer buffer.
const ANSWER_LEN: usize = 1024;

/// The answer to the last text request on a file.
struct Answer {
    buf: [u8; ANSWER_LEN],
    len: usize,
}

impl Answer {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl core::fmt::Write for Answer {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(core::fmt::Error)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(core::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Displays bytes that are ASCII as text and anything else as `?`.
struct BStrDisplay<'a>(&'a [u8]);

impl core::fmt::Display for BStrDisplay<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for &b in self.0 {
            f.write_char(if b.is_ascii_graphic() { b as char } else { '?' })?;
        }
        Ok(())
    }
}

/// Parses a decimal or `0x` hexadecimal `u64`.
fn parse_u64(s: &[u8]) -> Result<u64> {
    let (digits, radix) = match s {
        [b'0', b'x' | b'X', rest @ ..] => (rest, 16),
        _ => (s, 10),
    };
    if digits.is_empty() {
        return Err(EINVAL);
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        let d = (b as char).to_digit(radix).ok_or(EINVAL)?;
        acc.checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(d)))
            .ok_or(EINVAL)
    })
}

fn write_stats(out: &mut Answer, name: &[u8], s: &StatsOut) -> core::fmt::Result {
    writeln!(
        out,
        "{} calls_ok={} calls_enodev={} calls_failed={} refs_taken={} refs_released={} refs_held={}",
        if name.is_empty() {
            BStrDisplay(b"total")
        } else {
            BStrDisplay(name)
        },
        s.calls_ok,
        s.calls_enodev,
        s.calls_failed,
        s.refs_taken,
        s.refs_released,
        s.refs_held
    )
}

/// Runs one text request and writes its answer. See README.md for the grammar.
fn text_request(req: &[u8], out: &mut Answer, race_window_us: u32) -> Result {
    let mut words = req
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    let cmd = words.next().ok_or(EINVAL)?;
    let fmt_err = |_| ENOSPC;
    match cmd {
        b"compute" | b"hold" | b"describe" => {
            let name = words.next().ok_or(EINVAL)?;
            let key = abi::name_buf(name).ok_or(EINVAL)?;
            let op = match cmd {
                b"compute" => Op::Compute(parse_u64(words.next().ok_or(EINVAL)?)?),
                b"hold" => {
                    let us = parse_u64(words.next().ok_or(EINVAL)?)?;
                    Op::Hold(u32::try_from(us).map_err(|_| EINVAL)?)
                }
                _ => Op::Describe,
            };
            if words.next().is_some() {
                return Err(EINVAL);
            }
            let reply = call(&key, op, race_window_us)?;
            let id = reply.info.instance_id;
            match op {
                Op::Compute(x) => writeln!(
                    out,
                    "ok compute provider={} instance={:#018x} x={} y={}",
                    BStrDisplay(name),
                    id,
                    x,
                    reply.result
                ),
                Op::Hold(us) => writeln!(
                    out,
                    "ok hold provider={} instance={:#018x} us={}",
                    BStrDisplay(name),
                    id,
                    us
                ),
                Op::Describe => writeln!(
                    out,
                    "ok describe provider={} version={} instance={:#018x}",
                    BStrDisplay(abi::name_bytes(&reply.info.name)),
                    reply.info.version,
                    id
                ),
            }
            .map_err(fmt_err)
        }
        b"stats" => {
            let name = words.next().unwrap_or(b"");
            if words.next().is_some() {
                return Err(EINVAL);
            }
            let total = Registry::stats(name)?;
            write_stats(out, name, &total).map_err(fmt_err)?;
            if name.is_empty() {
                writeln!(out, "providers={}", total.providers).map_err(fmt_err)?;
            }
            Ok(())
        }
        b"list" => {
            if words.next().is_some() {
                return Err(EINVAL);
            }
            Registry::list(out).map_err(fmt_err)
        }
        _ => Err(EINVAL),
    }
}

// ------------------------------------------------------------------------------------------------
// The device.

/// Per-open-file state: the answer to the last text request.
#[pin_data]
struct ConsumerFile {
    #[pin]
    answer: Mutex<Answer>,
    /// `race_window_us`, read once at open rather than on every call (it is fixed at load).
    race_window_us: u32,
}

#[vtable]
impl MiscDevice for ConsumerFile {
    type Ptr = Pin<KBox<Self>>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<Pin<KBox<Self>>> {
        KBox::try_pin_init(
            try_pin_init!(ConsumerFile {
                answer <- new_mutex!(Answer {
                    buf: [0; ANSWER_LEN],
                    len: 0,
                }),
                race_window_us: module_parameters::race_window_us
                    .value()
                    .min(RACE_WINDOW_MAX_US),
            }),
            GFP_KERNEL,
        )
    }

    fn read_iter(mut kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterDest<'_>) -> Result<usize> {
        let me = kiocb.file();
        let answer = me.answer.lock();
        iov.simple_read_from_buffer(kiocb.ki_pos_mut(), answer.as_bytes())
    }

    fn write_iter(mut kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterSource<'_>) -> Result<usize> {
        let len = iov.len();
        if len == 0 || len > MAX_REQUEST {
            return Err(EINVAL);
        }
        let mut req = [0u8; MAX_REQUEST];
        if iov.copy_from_iter(&mut req[..len]) != len {
            return Err(EFAULT);
        }
        // Run the request without holding the file's lock: a hold may sleep for a second.
        let mut out = Answer {
            buf: [0; ANSWER_LEN],
            len: 0,
        };
        let me = kiocb.file();
        let res = text_request(&req[..len], &mut out, me.race_window_us);
        if let Err(e) = res {
            out.len = 0;
            let _ = writeln!(out, "err {}", -e.to_errno());
        }
        *me.answer.lock() = out;
        *kiocb.ki_pos_mut() = 0;
        res.map(|()| len)
    }

    fn ioctl(me: Pin<&ConsumerFile>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        match cmd {
            RMC_IOC_CALL => ioctl_call(arg, me.race_window_us, false),
            RMC_IOC_ECHO => ioctl_call(arg, 0, true),
            RMC_IOC_STATS => ioctl_inout(arg, ioctl_stats),
            RMC_IOC_NOP => Ok(0),
            RMC_IOC_BENCH => ioctl_inout(arg, |a| ioctl_bench(a, me.race_window_us)),
            // The struct size is part of `cmd`: a struct of the wrong size is an unknown command.
            _ => Err(ENOTTY),
        }
    }
}

// ------------------------------------------------------------------------------------------------
// The module.

#[pin_data(PinnedDrop)]
struct RustConsumer {
    #[pin]
    _miscdev: MiscDeviceRegistration<ConsumerFile>,
}

impl kernel::InPlaceModule for RustConsumer {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        // SAFETY: Called exactly once, before anything can use the lock.
        unsafe { REGISTRY_LOCK.init() };
        if UNSAFE_SKIP_MODULE_GET {
            pr_warn!(
                "(init) UNSAFE_SKIP_MODULE_GET build: provider calls take NO module reference; \
                 this build exists only as the selftest's negative control\n"
            );
        }
        pr_info!("(init) /dev/rust_consumer ready\n");
        try_pin_init!(Self {
            _miscdev <- MiscDeviceRegistration::register(MiscDeviceOptions {
                name: c"rust_consumer",
            }),
        })
    }
}

#[pinned_drop]
impl PinnedDrop for RustConsumer {
    fn drop(self: Pin<&mut Self>) {
        pr_info!("(exit)\n");
    }
}
