// SPDX-License-Identifier: GPL-2.0

//! `rmc-ctl fail-nth`: every kernel allocation of one syscall made to fail in turn, the way
//! syzkaller does it: for N = 1, 2, ... write N to `/proc/thread-self/fail-nth`, make the call
//! from the same thread, read the file back (0: the Nth allocation was failed), until a call
//! runs without an injected failure. Every injected failure must end in success (the failure was
//! absorbed) or an allowed errno; nothing may be left behind that stops the next attempt.
//!
//! The kernel needs `CONFIG_FAULT_INJECTION` with failslab and fail_page_alloc, whose
//! `ignore-gfp-wait` must be `N` (and fail_page_alloc's `min-order` 0) for `GFP_KERNEL`
//! allocations to be failed; the selftest sets them.

use std::{
    ffi::CString,
    fs::{File, OpenOptions},
    io::Write,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use clap::Subcommand;
use nix::{
    errno::Errno,
    kmod::{delete_module, finit_module, DeleteModuleFlags, ModuleInitFlags},
    sys::mman::{mlockall, MlockAllFlags},
};
use std::process::ExitCode;

use rmc::{errno_name, Device, OP_COMPUTE};

/// The syscall whose allocations are failed.
#[derive(Subcommand, Debug, Clone)]
pub enum Target {
    /// finit_module of PATH with PARAMS; a load that succeeds is undone (delete_module).
    Load {
        path: PathBuf,
        #[arg(default_value = "")]
        params: String,
    },
    /// open of the device (--device).
    Open,
    /// RMC_IOC_CALL compute on PROVIDER, on a device opened beforehand.
    Call {
        #[arg(value_name = "PROVIDER")]
        table: String,
    },
    /// One text request written to the device opened beforehand.
    Text { request: String },
    /// mkdir DIR (a configfs table); a mkdir that succeeds is undone (rmdir).
    Mkdir { dir: PathBuf },
}

/// What the attempts gave.
#[derive(Debug, Default)]
pub struct Tally {
    /// Attempts in which an allocation was failed.
    pub injected: u64,
    /// Of those, the ones that succeeded anyway.
    pub absorbed: u64,
    /// Errnos of the failed ones, by name.
    pub errnos: std::collections::BTreeMap<String, u64>,
    /// The N at which the call ran without an injected failure.
    pub clean_at: Option<u64>,
    /// What was wrong, if anything.
    pub problems: Vec<String>,
}

/// The per-thread fault counter. No seek: the file has no llseek (fs/proc/base.c), its write
/// ignores the offset and its read is made with pread at offset 0 (as the kernel's
/// fault-injection documentation does).
struct FailNth(File);

impl FailNth {
    fn open() -> Result<Self, String> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open("/proc/thread-self/fail-nth")
            .map(Self)
            .map_err(|e| {
                format!("/proc/thread-self/fail-nth: {e} (a kernel with CONFIG_FAULT_INJECTION?)")
            })
    }

    /// Arms the counter: the `n`th allocation from now on in this thread fails.
    fn arm(&self, n: u64) -> Result<(), String> {
        (&self.0)
            .write_all(n.to_string().as_bytes())
            .map_err(|e| format!("writing fail-nth: {e}"))
    }

    /// Reads the counter and disarms it at once (two syscalls, no allocation in between: the
    /// count must not be spent here); `true` if the armed failure was injected (it read 0).
    fn take(&self) -> Result<bool, String> {
        let mut buf = [0u8; 24];
        let n = self.0.read_at(&mut buf, 0);
        let disarm = (&self.0).write_all(b"0");
        let n = n.map_err(|e| format!("reading fail-nth: {e}"))?;
        disarm.map_err(|e| format!("disarming fail-nth: {e}"))?;
        let text = std::str::from_utf8(&buf[..n]).unwrap_or("").trim();
        let left: u64 = text
            .parse()
            .map_err(|_| format!("fail-nth reads '{text}'"))?;
        Ok(left == 0)
    }
}

/// One attempt's inputs, opened before anything is armed.
struct Attempt<'a> {
    target: &'a Target,
    device: &'a str,
    module: Option<&'a (File, CString, CString)>,
    dev: Option<&'a Device>,
    name: Option<&'a [u8; rmc::NAME_LEN]>,
}

impl Attempt<'_> {
    /// Makes the call with the counter armed at `arm` (nothing armed: `None`), reads the
    /// counter back, and undoes a success; returns the call's result and whether the armed
    /// failure was injected. `arg` is the compute argument of a `Call`.
    fn once(
        &self,
        fail_nth: &FailNth,
        arm: Option<u64>,
        arg: u64,
    ) -> Result<(Result<(), Errno>, bool), String> {
        if let Some(n) = arm {
            fail_nth.arm(n)?;
        }
        // Nothing but the call itself between arming and reading back: what the call returns
        // (an open device) is dropped only after the counter is disarmed.
        let r: Result<Option<Device>, Errno> = match self.target {
            Target::Load { .. } => {
                let (f, params, _) = self.module.ok_or("no module file")?;
                finit_module(f, params, ModuleInitFlags::empty()).map(|()| None)
            }
            Target::Open => Device::open(self.device)
                .map(Some)
                .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0))),
            Target::Call { .. } => {
                let (d, k) = (
                    self.dev.ok_or("no device")?,
                    self.name.ok_or("no table name")?,
                );
                d.call(k, OP_COMPUTE, arg).map(|_| None)
            }
            Target::Text { request } => self
                .dev
                .ok_or("no device")?
                .send(request.as_bytes())
                .map(|()| None),
            Target::Mkdir { dir } => std::fs::create_dir(dir)
                .map(|()| None)
                .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0))),
        };
        // Read back (and disarm) before the undo; an unreadable counter is reported after it,
        // so that a success is never left behind.
        let injected = match arm {
            Some(_) => fail_nth.take(),
            None => Ok(false),
        };
        let r = r.map(drop);
        let n = arm.unwrap_or(0);
        // Undo a success, so that the next attempt starts from the same state.
        if r.is_ok() {
            match self.target {
                Target::Load { .. } => {
                    let (_, _, name) = self.module.ok_or("no module file")?;
                    delete_module(name, DeleteModuleFlags::O_NONBLOCK)
                        .map_err(|e| format!("N={n}: removing the loaded module: {e}"))?;
                }
                Target::Mkdir { dir } => std::fs::remove_dir(dir)
                    .map_err(|e| format!("N={n}: rmdir {}: {e}", dir.display()))?,
                _ => {}
            }
        }
        Ok((r, injected?))
    }
}

fn module_name(path: &Path) -> Result<CString, String> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| format!("{}: not a module file name", path.display()))?;
    CString::new(stem.replace('-', "_")).map_err(|e| e.to_string())
}

/// `fail-nth`'s report of what [`run`] found for `target` (every `step`-th N), and its exit
/// status.
pub(crate) fn report(target: &Target, step: u64, found: Result<Tally, String>) -> ExitCode {
    match found {
        Ok(t) => {
            let clean = t.clean_at.map_or("never".into(), |n| format!("at N={n}"));
            let which = if step == 1 {
                String::new()
            } else {
                format!(" (every {step}th)")
            };
            println!(
                "fail-nth {target:?}: {} allocation(s) failed in turn{which}: {:?}, {} absorbed; ran clean {clean}",
                t.injected, t.errnos, t.absorbed
            );
            for p in &t.problems {
                println!("FAIL: {p}");
            }
            if t.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("rmc-ctl: fail-nth: {e}");
            ExitCode::from(1)
        }
    }
}

/// Runs the attempts for `target` with N from 1 to `max_n`, every `step`-th N.
pub fn run(
    target: &Target,
    device: &str,
    allow: &[Errno],
    max_n: u64,
    step: u64,
    verbose: bool,
) -> Result<Tally, String> {
    let fail_nth = FailNth::open()?;
    let mut t = Tally::default();
    // What must exist before the call, opened before the counter is armed.
    let module = match target {
        Target::Load { path, params } => Some((
            File::open(path).map_err(|e| format!("{}: {e}", path.display()))?,
            CString::new(params.as_str()).map_err(|e| e.to_string())?,
            module_name(path)?,
        )),
        _ => None,
    };
    let dev = match target {
        Target::Call { .. } | Target::Text { .. } => Some(Device::open_checked(device)?),
        _ => None,
    };
    let name = match target {
        Target::Call { table } => Some(
            rmc::name_buf(table.as_bytes()).ok_or_else(|| format!("bad table name '{table}'"))?,
        ),
        _ => None,
    };
    let ctx = Attempt {
        target,
        device,
        module: module.as_ref(),
        dev: dev.as_ref(),
        name: name.as_ref(),
    };
    // The warm-up: the same call once with nothing armed (undone like the others). It must
    // succeed, and it faults in this path's code and stack, so that no page fault of our own
    // (whose allocation the armed counter would fail: "Huh VM_FAULT_OOM leaked out to the #PF
    // handler") falls between arming and reading back. mlockall keeps every page mapped now and
    // later populated (best effort: without CAP_IPC_LOCK the warm-up alone remains).
    let _ = mlockall(MlockAllFlags::MCL_CURRENT | MlockAllFlags::MCL_FUTURE);
    match ctx.once(&fail_nth, None, 0)? {
        (Ok(()), _) => {}
        (Err(e), _) => {
            return Err(format!(
                "the call fails with {} before any allocation is failed",
                errno_name(e)
            ))
        }
    }
    // A step of 0 would never advance; clap refuses it, this keeps `run` total.
    for n in (1..=max_n).step_by(usize::try_from(step.max(1)).unwrap_or(usize::MAX)) {
        let (r, injected) = match ctx.once(&fail_nth, Some(n), n) {
            Ok(x) => x,
            Err(e) => {
                t.problems.push(e);
                break;
            }
        };
        if verbose {
            let what = r.map_or_else(errno_name, |()| "ok".into());
            let note = if injected { "" } else { " (nothing failed)" };
            eprintln!("N={n}: {what}{note}");
        }
        if !injected {
            match r {
                Ok(()) => t.clean_at = Some(n),
                Err(e) => t.problems.push(format!(
                    "N={n}: failed with {} although no allocation was failed",
                    errno_name(e)
                )),
            }
            break;
        }
        t.injected += 1;
        match r {
            Ok(()) => t.absorbed += 1,
            Err(e) => {
                *t.errnos.entry(errno_name(e)).or_default() += 1;
                if !allow.contains(&e) {
                    t.problems
                        .push(format!("N={n}: {} is not an allowed errno", errno_name(e)));
                }
            }
        }
    }
    if t.clean_at.is_none() && t.problems.is_empty() {
        t.problems.push(format!(
            "still failing allocations after N={max_n} (raise --max-n)"
        ));
    }
    Ok(t)
}
