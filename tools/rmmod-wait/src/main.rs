// SPDX-License-Identifier: GPL-2.0

//! `rmmod-wait`: remove kernel modules the way `rmmod --wait` would, if kmod had it.
//!
//! Each attempt is `delete_module(NAME, O_NONBLOCK)`. While the module is in use the tool backs
//! off (1 ms, doubling, capped) and tries again until the module is gone or the timeout passes.
//! It reports success only when `/sys/module/NAME` no longer exists: kmod's `modprobe -r --wait`
//! (kmod <= 34.2) reports success on timeout, this tool never does.

use std::{
    ffi::CString,
    path::Path,
    process::ExitCode,
    thread::sleep,
    time::{Duration, Instant},
};

use clap::Parser;
use nix::{
    errno::Errno,
    kmod::{delete_module, DeleteModuleFlags},
};

const EXIT_HELP: &str = "\
Exit status:
  0  every module was removed and /sys/module/NAME is gone
  1  another error (the message says which errno)
  2  usage error
  3  timed out: the module is still loaded and in use
  4  the module is not loaded
  5  permission denied (removing modules needs CAP_SYS_MODULE)
  6  other modules depend on it (its holders must be removed first)";

/// Remove kernel modules; with --wait, retry while they are in use.
#[derive(Parser, Debug)]
#[command(version, about, after_help = EXIT_HELP)]
struct Args {
    /// Retry while the module is in use, until it is gone or --timeout passes (without it: one
    /// attempt, like rmmod).
    #[arg(short, long)]
    wait: bool,
    /// How long --wait keeps trying, in seconds (fractions allowed).
    #[arg(short, long, default_value_t = 60.0, value_parser = parse_seconds)]
    timeout: f64,
    /// Longest pause between attempts, in milliseconds (the first is 1 ms, then doubling).
    #[arg(long, default_value_t = 50)]
    max_backoff_ms: u64,
    /// Print every attempt, its errno and the module's refcount.
    #[arg(short, long)]
    verbose: bool,
    /// Modules to remove, in order (names or paths to .ko files; '-' and '_' are equivalent).
    #[arg(required = true)]
    modules: Vec<String>,
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("'{s}' is not a non-negative number of seconds"))
    }
}

/// How removing one module ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Removed,
    TimedOut,
    NotLoaded,
    Permission,
    Holders(Vec<String>),
    Other(Errno),
}

impl Outcome {
    fn exit_code(&self) -> u8 {
        match self {
            Outcome::Removed => 0,
            Outcome::Other(_) => 1,
            Outcome::TimedOut => 3,
            Outcome::NotLoaded => 4,
            Outcome::Permission => 5,
            Outcome::Holders(_) => 6,
        }
    }
}

/// What to do after one failed `delete_module`.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// The module is busy (references held, or it is still loading/unloading): try again.
    Retry,
    /// Give up with this outcome.
    Stop(Outcome),
}

/// Classifies a `delete_module` error. `holders` lists modules that depend on this one.
fn classify(err: Errno, holders: Vec<String>) -> Step {
    match err {
        // EWOULDBLOCK is "in use": either references are held or other modules depend on it.
        Errno::EWOULDBLOCK if !holders.is_empty() => Step::Stop(Outcome::Holders(holders)),
        Errno::EWOULDBLOCK | Errno::EBUSY | Errno::EINTR => Step::Retry,
        Errno::ENOENT => Step::Stop(Outcome::NotLoaded),
        Errno::EPERM | Errno::EACCES => Step::Stop(Outcome::Permission),
        e => Step::Stop(Outcome::Other(e)),
    }
}

/// Exponential backoff: 1 ms, 2 ms, 4 ms, ... capped at `cap`.
struct Backoff {
    next: Duration,
    cap: Duration,
}

impl Backoff {
    fn new(cap: Duration) -> Self {
        Self {
            next: Duration::from_millis(1).min(cap),
            cap,
        }
    }
}

impl Iterator for Backoff {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        let cur = self.next;
        self.next = (cur * 2).min(self.cap);
        Some(cur)
    }
}

/// The module name the kernel uses for `arg` (`/a/b/foo-bar.ko` -> `foo_bar`).
fn module_name(arg: &str) -> String {
    let base = Path::new(arg)
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| arg.to_string());
    let base = base
        .strip_suffix(".ko")
        .or_else(|| base.strip_suffix(".ko.xz"))
        .or_else(|| base.strip_suffix(".ko.zst"))
        .or_else(|| base.strip_suffix(".ko.gz"))
        .unwrap_or(&base);
    base.replace('-', "_")
}

fn sys_module(name: &str) -> std::path::PathBuf {
    Path::new("/sys/module").join(name)
}

fn refcnt(name: &str) -> Option<u64> {
    std::fs::read_to_string(sys_module(name).join("refcnt"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn holders(name: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(sys_module(name).join("holders"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn remove(name: &str, args: &Args) -> Outcome {
    let Ok(cname) = CString::new(name) else {
        return Outcome::Other(Errno::EINVAL);
    };
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.timeout);
    let mut backoff = Backoff::new(Duration::from_millis(args.max_backoff_ms.max(1)));
    let mut attempt = 0u64;
    loop {
        attempt += 1;
        let err = match delete_module(&cname, DeleteModuleFlags::O_NONBLOCK) {
            Ok(()) => {
                // Success means the exit ran and the module was freed; sysfs is torn down before
                // delete_module returns. Only a gone /sys/module/NAME counts.
                if sys_module(name).exists() {
                    eprintln!("rmmod-wait: {name}: delete_module succeeded but /sys/module/{name} still exists (reloaded?)");
                    return Outcome::Other(Errno::EEXIST);
                }
                if args.verbose {
                    eprintln!(
                        "rmmod-wait: {name}: removed after {attempt} attempt(s), {:.1} ms",
                        start.elapsed().as_secs_f64() * 1e3
                    );
                }
                return Outcome::Removed;
            }
            Err(e) => e,
        };
        let step = classify(err, holders(name));
        let now = Instant::now();
        match step {
            Step::Stop(outcome) => return outcome,
            Step::Retry if !args.wait || now >= deadline => {
                if args.verbose {
                    eprintln!(
                        "rmmod-wait: {name}: attempt {attempt}: {}, giving up",
                        err.desc()
                    );
                }
                return Outcome::TimedOut;
            }
            Step::Retry => {
                let pause = backoff
                    .next()
                    .unwrap_or(Duration::from_millis(1))
                    .min(deadline - now);
                if args.verbose {
                    let rc = refcnt(name).map_or("?".to_string(), |r| r.to_string());
                    eprintln!(
                        "rmmod-wait: {name}: attempt {attempt}: {} (refcnt {rc}), retry in {:.0} ms",
                        err.desc(),
                        pause.as_secs_f64() * 1e3
                    );
                }
                sleep(pause);
            }
        }
    }
}

fn describe(name: &str, outcome: &Outcome, args: &Args) -> String {
    match outcome {
        Outcome::Removed => format!("{name}: removed"),
        Outcome::TimedOut if args.wait => format!(
            "{name}: still in use after {:.3} s (refcnt {}); not removed",
            args.timeout,
            refcnt(name).map_or("?".into(), |r| r.to_string())
        ),
        Outcome::TimedOut => format!("{name}: in use (use --wait to retry)"),
        Outcome::NotLoaded => format!("{name}: not loaded"),
        Outcome::Permission => format!("{name}: permission denied (needs CAP_SYS_MODULE)"),
        Outcome::Holders(h) => format!("{name}: in use by {}", h.join(" ")),
        Outcome::Other(e) => format!("{name}: {}", e.desc()),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    for m in &args.modules {
        let name = module_name(m);
        let outcome = remove(&name, &args);
        if outcome != Outcome::Removed {
            eprintln!("rmmod-wait: {}", describe(&name, &outcome, &args));
            return ExitCode::from(outcome.exit_code());
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_1ms_and_caps() {
        let v: Vec<u64> = Backoff::new(Duration::from_millis(50))
            .take(9)
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(v, [1, 2, 4, 8, 16, 32, 50, 50, 50]);
        let tiny: Vec<_> = Backoff::new(Duration::from_micros(500)).take(2).collect();
        assert_eq!(tiny, [Duration::from_micros(500); 2]);
    }

    #[test]
    fn classification() {
        assert_eq!(classify(Errno::EWOULDBLOCK, vec![]), Step::Retry);
        assert_eq!(classify(Errno::EBUSY, vec![]), Step::Retry);
        assert_eq!(
            classify(Errno::EWOULDBLOCK, vec!["b".into()]),
            Step::Stop(Outcome::Holders(vec!["b".into()]))
        );
        assert_eq!(
            classify(Errno::ENOENT, vec![]),
            Step::Stop(Outcome::NotLoaded)
        );
        assert_eq!(
            classify(Errno::EPERM, vec![]),
            Step::Stop(Outcome::Permission)
        );
        assert_eq!(
            classify(Errno::EIO, vec![]),
            Step::Stop(Outcome::Other(Errno::EIO))
        );
    }

    #[test]
    fn exit_codes_are_distinct() {
        let all = [
            Outcome::Removed,
            Outcome::Other(Errno::EIO),
            Outcome::TimedOut,
            Outcome::NotLoaded,
            Outcome::Permission,
            Outcome::Holders(vec![]),
        ];
        let mut codes: Vec<u8> = all.iter().map(Outcome::exit_code).collect();
        assert_eq!(codes[0], 0);
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        assert!(!codes.contains(&2), "2 is clap's usage error");
    }

    #[test]
    fn module_names() {
        assert_eq!(module_name("rust_provider"), "rust_provider");
        assert_eq!(module_name("/x/y/rust-provider.ko"), "rust_provider");
        assert_eq!(module_name("foo.ko.zst"), "foo");
    }

    #[test]
    fn argument_parsing() {
        let a = Args::try_parse_from(["rmmod-wait", "--wait", "-t", "0.5", "m"]).unwrap();
        assert!(a.wait);
        assert_eq!(a.timeout, 0.5);
        assert_eq!(a.modules, ["m"]);
        let plain = Args::try_parse_from(["rmmod-wait", "m"]).unwrap();
        assert!(!plain.wait);
        assert!(Args::try_parse_from(["rmmod-wait"]).is_err());
        assert!(Args::try_parse_from(["rmmod-wait", "-t", "-1", "m"]).is_err());
        assert!(Args::try_parse_from(["rmmod-wait", "-t", "nan", "m"]).is_err());
    }
}
