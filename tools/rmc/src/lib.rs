// SPDX-License-Identifier: GPL-2.0

//! Userspace side of `/dev/rust_consumer`: the ioctl ABI and the wire contract every answer is
//! verified against (both `consumer_uapi.rs`, compiled into the modules too), an open device,
//! and what the tools share (arguments, numbers, reports).

use std::{
    fs::{File, OpenOptions},
    os::fd::AsRawFd,
    path::Path,
};

use nix::errno::Errno;

pub mod cli;
pub mod report;
#[cfg(feature = "testing")]
pub mod testing;

/// The ioctl ABI, written once in the repository's `consumer_uapi.rs` and compiled into both
/// the consumer module and this library (`src/uapi.rs` is a symlink to it, which a copy made
/// with `rsync -rL`, as the kselftest instructions say, turns into the file itself).
mod uapi;
pub use uapi::{
    compute_expected, name_buf, BenchArgs, CallArgs, Stats, BENCH_BARE, BENCH_DISPATCH,
    BENCH_GET_PUT, BENCH_MAX_ITERS, HOLD_MAX_US, NAME_LEN, OP_COMPUTE, OP_DESCRIBE, OP_HOLD,
};

/// `ioctl` type byte of `/dev/rust_consumer`.
pub const IOC_MAGIC: u8 = uapi::IOC_MAGIC as u8;
/// `RMC_IOC_CALL`, `RMC_IOC_STATS`, `RMC_IOC_NOP`, `RMC_IOC_BENCH`, `RMC_IOC_ECHO` as numbers.
pub const CALL_CMD: u64 = uapi::RMC_IOC_CALL as u64;
pub const STATS_CMD: u64 = uapi::RMC_IOC_STATS as u64;
pub const NOP_CMD: u64 = uapi::RMC_IOC_NOP as u64;
pub const BENCH_CMD: u64 = uapi::RMC_IOC_BENCH as u64;
pub const ECHO_CMD: u64 = uapi::RMC_IOC_ECHO as u64;
// nix computes the same numbers from the struct types: the two must agree. (`ioctl_num_type` is
// `c_ulong` with glibc and `c_int` with musl: the casts are needed on one of them.)
#[allow(clippy::unnecessary_cast)]
const _: () = {
    assert!(CALL_CMD == nix::request_code_readwrite!(IOC_MAGIC, 1, size_of::<CallArgs>()) as u64);
    assert!(STATS_CMD == nix::request_code_readwrite!(IOC_MAGIC, 2, size_of::<Stats>()) as u64);
    assert!(NOP_CMD == nix::request_code_none!(IOC_MAGIC, 3) as u64);
    assert!(BENCH_CMD == nix::request_code_readwrite!(IOC_MAGIC, 4, size_of::<BenchArgs>()) as u64);
    assert!(ECHO_CMD == nix::request_code_readwrite!(IOC_MAGIC, 5, size_of::<CallArgs>()) as u64);
};
nix::ioctl_readwrite!(ioc_call, IOC_MAGIC, 1, CallArgs);
nix::ioctl_readwrite!(ioc_stats, IOC_MAGIC, 2, Stats);
nix::ioctl_none!(ioc_nop, IOC_MAGIC, 3);
nix::ioctl_readwrite!(ioc_bench, IOC_MAGIC, 4, BenchArgs);
nix::ioctl_readwrite!(ioc_echo, IOC_MAGIC, 5, CallArgs);

/// The errno called `name` (`"ENODEV"`, any case), for every errno the C library knows.
pub fn errno_from_name(name: &str) -> Option<Errno> {
    let name = name.to_ascii_uppercase();
    (1..4096)
        .map(Errno::from_raw)
        .filter(|e| *e != Errno::UnknownErrno)
        .find(|e| format!("{e:?}") == name)
}

/// The name of `e` (`"ENODEV"`).
pub fn errno_name(e: Errno) -> String {
    format!("{e:?}")
}

/// A small deterministic generator (SplitMix64) for the load generator and the fuzzers.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits: SplitMix64, whose output function is `compute_expected(_, 0)`.
    pub fn next_u64(&mut self) -> u64 {
        let z = compute_expected(self.0, 0);
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64().checked_rem(n).unwrap_or(0)
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(nix::libc::EIO))
}

/// The `q` quantile (0 to 1) of `sorted`, interpolated linearly between the two nearest ranks;
/// NaN for no data. The tools' one percentile and median.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return f64::NAN;
    };
    let at = q.clamp(0.0, 1.0) * last as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    // Equal neighbours (two infinities among them) need no interpolation, which would be NaN.
    if sorted[lo] == sorted[hi] {
        return sorted[lo];
    }
    sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo as f64)
}

/// The median of `v` (sorted in place); NaN for no data.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_unstable_by(f64::total_cmp);
    quantile(v, 0.5)
}

/// Where the loaded consumer's device number is: `MAJOR:MINOR`.
const MISC_DEV: &str = "/sys/class/misc/rust_consumer/dev";

/// An open `/dev/rust_consumer`.
pub struct Device {
    file: File,
}

/// Whether a text answer is the consumer's answer to a request that succeeded: `ok`, a command,
/// and nothing before them.
pub fn answer_is_ok(answer: &str) -> bool {
    answer
        .strip_prefix("ok ")
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_lowercase()))
}

impl Device {
    pub const DEFAULT_PATH: &'static str = "/dev/rust_consumer";

    /// Opens `path` as it is (for `rmc-ctl fail-nth open`, which fails the open's allocations);
    /// everything else uses [`Device::open_checked`].
    pub fn open(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Self { file })
    }

    /// Opens `path` and checks that it is the consumer's device: a character device with the
    /// number the loaded consumer registered (`/sys/class/misc/rust_consumer/dev`). A shell's
    /// `exec 3<>/dev/rust_consumer` while the consumer is not loaded creates a regular file
    /// there, which devtmpfs does not replace: every ioctl on it fails with `ENOTTY` and a text
    /// request "succeeds" with an empty answer. Says what is wrong and what to do.
    pub fn open_checked(path: &str) -> Result<Self, String> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let dev = Self::open(path).map_err(|e| {
            let hint = match e.kind() {
                std::io::ErrorKind::NotFound => " (is rust_consumer loaded?)",
                std::io::ErrorKind::PermissionDenied => " (the device is root's: mode 600)",
                _ => "",
            };
            format!("cannot open {path}: {e}{hint}")
        })?;
        let meta = dev
            .file
            .metadata()
            .map_err(|e| format!("cannot stat {path}: {e}"))?;
        let fix = format!(
            "remove it (rm {path}) and load rust_consumer again: devtmpfs then creates the device"
        );
        let ft = meta.file_type();
        if !ft.is_char_device() {
            let what = if ft.is_file() {
                "a regular file (a shell's `exec 3<>` creates one when the device is missing)"
            } else if ft.is_dir() {
                "a directory"
            } else {
                "not a character device"
            };
            return Err(format!(
                "{path} is {what}, not the consumer's device: {fix}"
            ));
        }
        let (major, minor) = (
            nix::sys::stat::major(meta.rdev()),
            nix::sys::stat::minor(meta.rdev()),
        );
        match std::fs::read_to_string(MISC_DEV) {
            Ok(want) if want.trim() == format!("{major}:{minor}") => Ok(dev),
            Ok(want) => Err(format!(
                "{path} is character device {major}:{minor}, but rust_consumer's is {}: {fix}",
                want.trim()
            )),
            Err(_) => Err(format!(
                "{path} is character device {major}:{minor}, but rust_consumer is not loaded ({MISC_DEV} is missing)"
            )),
        }
    }

    /// Calls `op` with `arg` of the table whose name buffer is `table`.
    pub fn call(&self, table: &[u8; NAME_LEN], op: u32, arg: u64) -> Result<CallArgs, Errno> {
        self.call_args_ioctl(ioc_call, table, op, arg)
    }

    /// Issues `ioc` (`RMC_IOC_CALL` or `RMC_IOC_ECHO`) with a `struct rmc_call` built from the
    /// arguments; returns the struct as the kernel left it.
    fn call_args_ioctl(
        &self,
        ioc: unsafe fn(nix::libc::c_int, *mut CallArgs) -> nix::Result<nix::libc::c_int>,
        table: &[u8; NAME_LEN],
        op: u32,
        arg: u64,
    ) -> Result<CallArgs, Errno> {
        let mut args = CallArgs {
            table: *table,
            op,
            arg,
            ..Default::default()
        };
        // SAFETY: `ioc` is one of the `struct rmc_call` ioctls, and `args` is a valid, writable
        // `struct rmc_call` for the duration of the call.
        unsafe { ioc(self.file.as_raw_fd(), &mut args) }?;
        Ok(args)
    }

    /// Reads the counters of table `name`, or the totals when `name` is empty.
    pub fn stats(&self, name: &str) -> Result<Stats, Errno> {
        let mut s = Stats {
            table: name_buf(name.as_bytes()).ok_or(Errno::EINVAL)?,
            ..Default::default()
        };
        // SAFETY: `s` is a valid, writable `struct rmc_stats` for the duration of the call.
        unsafe { ioc_stats(self.file.as_raw_fd(), &mut s) }?;
        Ok(s)
    }

    /// Writes one text request: one `write(2)`, nothing else (the answer stays unread).
    pub fn send(&self, request: &[u8]) -> Result<(), Errno> {
        use std::io::Write;
        let n = (&self.file).write(request).map_err(io_errno)?;
        if n != request.len() {
            return Err(Errno::EIO);
        }
        Ok(())
    }

    /// Sends one text request and returns the answer (the request's errno on failure).
    ///
    /// The consumer's answer to a request that succeeded starts with `ok `; anything else did
    /// not come from it (a regular file in the device's place answers with what was written)
    /// and is `EBADMSG`, never success.
    pub fn text(&self, request: &[u8]) -> Result<String, Errno> {
        self.send(request)?;
        let answer = self.read_answer()?;
        if !answer_is_ok(&answer) {
            return Err(Errno::EBADMSG);
        }
        Ok(answer)
    }

    /// Reads the answer to the last request sent on this file.
    fn read_answer(&self) -> Result<String, Errno> {
        use std::io::Read;
        let mut f = &self.file;
        let mut answer = String::new();
        f.read_to_string(&mut answer).map_err(io_errno)?;
        Ok(answer)
    }

    /// Issues a raw ioctl with `arg` as its argument (for tests of bad input).
    ///
    /// # Safety
    ///
    /// The kernel may write through `arg` as `cmd` says (up to the size encoded in `cmd`):
    /// `arg` must be null, an address that is not mapped (the kernel then fails with
    /// `EFAULT`), or point to memory the caller owns and may have overwritten, of at least that
    /// size.
    pub unsafe fn raw_ioctl(&self, cmd: u64, arg: usize) -> Result<i32, Errno> {
        // SAFETY: The caller guarantees that whatever the kernel writes through `arg` lands in
        // memory it owns, or faults cleanly.
        let r = unsafe { nix::libc::ioctl(self.file.as_raw_fd(), cmd as _, arg) };
        Errno::result(r)
    }

    /// Runs `iters` iterations of a microbenchmark variant in the kernel, in the calling thread
    /// (`cpus` = 0) or in `cpus` kthreads at once (one per online CPU, `iters` each); returns the
    /// filled args (`ns` is the loop time summed over the threads).
    pub fn bench(
        &self,
        table: &[u8; NAME_LEN],
        variant: u32,
        iters: u64,
        cpus: u32,
    ) -> Result<BenchArgs, Errno> {
        let mut a = BenchArgs {
            table: *table,
            variant,
            iters,
            cpus,
            ..Default::default()
        };
        // SAFETY: `a` is a valid, writable `struct rmc_bench` for the duration of the call.
        unsafe { ioc_bench(self.file.as_raw_fd(), &mut a) }?;
        Ok(a)
    }

    /// `RMC_IOC_ECHO`: the argument traffic of a call, no provider, no reference; returns `x`.
    pub fn echo(&self, table: &[u8; NAME_LEN], x: u64) -> Result<u64, Errno> {
        self.call_args_ioctl(ioc_echo, table, OP_COMPUTE, x)
            .map(|a| a.result)
    }

    /// The no-op ioctl: touches no provider and no module reference.
    pub fn nop(&self) -> Result<(), Errno> {
        // SAFETY: `RMC_IOC_NOP` takes no argument.
        unsafe { ioc_nop(self.file.as_raw_fd()) }.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_kernel() {
        assert_eq!(std::mem::size_of::<CallArgs>(), 72);
        assert_eq!(std::mem::size_of::<Stats>(), 88);
        assert_eq!(std::mem::size_of::<BenchArgs>(), 64);
        assert_eq!(std::mem::offset_of!(CallArgs, arg), 40);
        assert_eq!(std::mem::offset_of!(CallArgs, instance_id), 56);
        assert_eq!(std::mem::offset_of!(Stats, calls_ok), 32);
    }

    #[test]
    fn ioctl_numbers_match_the_kernel() {
        // _IOWR(0xB9, 1, 72 bytes) and _IOWR(0xB9, 2, 88 bytes), _IO(0xB9, 3).
        assert_eq!(nix::request_code_readwrite!(IOC_MAGIC, 1, 72), 0xc048_b901);
        assert_eq!(nix::request_code_readwrite!(IOC_MAGIC, 2, 88), 0xc058_b902);
        assert_eq!(nix::request_code_none!(IOC_MAGIC, 3), 0xb903);
        assert_eq!(CALL_CMD, 0xc048_b901);
        assert_eq!(STATS_CMD, 0xc058_b902);
    }

    #[test]
    fn compute_is_splitmix64() {
        // SplitMix64's first output for seed 0 is 0xe220a8397b1dcdaf.
        assert_eq!(compute_expected(0, 0), 0xe220_a839_7b1d_cdaf);
        assert_ne!(compute_expected(1, 7), compute_expected(1, 8));
    }

    #[test]
    fn names() {
        assert_eq!(&name_buf(b"ab").unwrap()[..3], b"ab\0");
        assert!(name_buf("x".repeat(31).as_bytes()).is_some());
        assert!(name_buf("x".repeat(32).as_bytes()).is_none());
        assert!(name_buf(b"a\0b").is_none());
    }

    #[test]
    fn only_an_ok_answer_is_success() {
        assert!(answer_is_ok("ok list 0\n"));
        assert!(answer_is_ok("ok stats total calls_ok=1 tables=0\n"));
        assert!(!answer_is_ok("err 19\n"));
        // What a regular file in the device's place gives back: the request, or nothing.
        assert!(!answer_is_ok("list\n"));
        assert!(!answer_is_ok(""));
        assert!(!answer_is_ok("rust_provider\n"));
        assert!(!answer_is_ok("ok\n"));
    }

    #[test]
    fn a_node_that_is_not_the_device_is_refused() {
        let dir = std::env::temp_dir().join(format!("rmc-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("rust_consumer");
        std::fs::write(&file, b"").unwrap();
        let err = Device::open_checked(file.to_str().unwrap()).err().unwrap();
        assert!(
            err.contains("a regular file") && err.contains("rm "),
            "{err}"
        );
        let err = Device::open_checked(dir.to_str().unwrap()).err().unwrap();
        assert!(
            err.contains("cannot open") || err.contains("a directory"),
            "{err}"
        );
        let err = Device::open_checked("/nonexistent/rust_consumer")
            .err()
            .unwrap();
        assert!(err.contains("is rust_consumer loaded?"), "{err}");
        // A character device, but not the consumer's (on a host without it: not loaded).
        if let Err(err) = Device::open_checked("/dev/null") {
            assert!(err.contains("character device 1:3"), "{err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rng_is_splitmix64() {
        // SplitMix64 seeded with 0: 0xe220a8397b1dcdaf, then 0x6e789e6aa1b965f4.
        let mut r = Rng(0);
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn quantiles() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&mut []).is_nan());
        let v: Vec<f64> = (0..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&[5.0], 0.5), 5.0);
    }
}
