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
use rmc::cli::parse_seconds;

const EXIT_HELP: &str = "\
Exit status:
  0  every module was removed and /sys/module/NAME is gone
  1  another error (the message says which errno)
  2  usage error
  3  timed out: the module is still loaded and in use
  4  the module is not loaded
  5  permission denied (removing modules needs CAP_SYS_MODULE)
  6  other modules depend on it (its holders must be removed first)
  7  the module cannot be removed: it has an init but no exit ([permanent] in /proc/modules)
  8  the module is built into the kernel
  9  without --wait: the module is being loaded or removed right now (another loader or remover)
  130, 143  interrupted by SIGINT, SIGTERM (the module may or may not have been removed)";

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

/// How removing one module ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Removed,
    TimedOut,
    NotLoaded,
    Permission,
    Holders(Vec<String>),
    Permanent,
    BuiltIn,
    /// Without `--wait`: `EBUSY`, the module is not live (`initstate` says which way it goes).
    NotLive(String),
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
            Outcome::Permanent => 7,
            Outcome::BuiltIn => 8,
            Outcome::NotLive(_) => 9,
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

/// What `/sys/module` and `/proc/modules` say about a module when `delete_module` failed.
#[derive(Debug, Default, PartialEq, Eq)]
struct State {
    /// Modules that depend on this one (`/sys/module/NAME/holders`).
    holders: Vec<String>,
    /// `[permanent]` in its `/proc/modules` line: an init but no exit, never removable.
    permanent: bool,
    /// `/sys/module/NAME` exists without `initstate`: built into the kernel.
    built_in: bool,
}

/// Classifies a `delete_module` error. `was_busy`: an earlier attempt found the module in use.
fn classify(err: Errno, st: State, was_busy: bool) -> Step {
    match err {
        // EWOULDBLOCK is "in use": either references are held or other modules depend on it.
        Errno::EWOULDBLOCK if !st.holders.is_empty() => Step::Stop(Outcome::Holders(st.holders)),
        // EBUSY also means "not live" (loading or unloading): only [permanent] is final.
        Errno::EBUSY if st.permanent => Step::Stop(Outcome::Permanent),
        Errno::EWOULDBLOCK | Errno::EBUSY | Errno::EINTR => Step::Retry,
        Errno::ENOENT if st.built_in => Step::Stop(Outcome::BuiltIn),
        // Gone after we found it busy: somebody else finished the removal; the goal holds.
        Errno::ENOENT if was_busy => Step::Stop(Outcome::Removed),
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

/// `/sys/module/NAME/initstate` (`coming`, `live`, `going`), or `?`.
fn initstate(name: &str) -> String {
    std::fs::read_to_string(sys_module(name).join("initstate"))
        .map_or_else(|_| "?".into(), |s| s.trim().to_string())
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

/// Whether `name`'s line in `proc_modules` (the text of `/proc/modules`) says `[permanent]`.
fn is_permanent(proc_modules: &str, name: &str) -> bool {
    proc_modules.lines().any(|l| {
        let mut f = l.split_whitespace();
        f.next() == Some(name) && f.nth(2).is_some_and(|deps| deps.contains("[permanent]"))
    })
}

fn state(name: &str) -> State {
    let dir = sys_module(name);
    State {
        holders: holders(name),
        permanent: is_permanent(
            &std::fs::read_to_string("/proc/modules").unwrap_or_default(),
            name,
        ),
        built_in: dir.exists() && !dir.join("initstate").exists(),
    }
}

/// When a wait of `timeout` seconds from `start` ends; `None`: never (too far to represent).
fn deadline(start: Instant, timeout: f64) -> Option<Instant> {
    Duration::try_from_secs_f64(timeout)
        .ok()
        .and_then(|d| start.checked_add(d))
}

fn remove(name: &str, args: &Args) -> Outcome {
    let Ok(cname) = CString::new(name) else {
        return Outcome::Other(Errno::EINVAL);
    };
    let start = Instant::now();
    let deadline = deadline(start, args.timeout);
    let mut was_busy = false;
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
        let step = classify(err, state(name), was_busy);
        let now = Instant::now();
        match step {
            Step::Stop(Outcome::Removed) => {
                if args.verbose {
                    eprintln!(
                        "rmmod-wait: {name}: attempt {attempt}: not loaded any more: removed by someone else, {:.1} ms",
                        start.elapsed().as_secs_f64() * 1e3
                    );
                }
                return Outcome::Removed;
            }
            Step::Stop(outcome) => return outcome,
            Step::Retry if !args.wait || deadline.is_some_and(|d| now >= d) => {
                if args.verbose {
                    eprintln!(
                        "rmmod-wait: {name}: attempt {attempt}: {}, giving up",
                        err.desc()
                    );
                }
                // One attempt, and someone else is loading or removing the module: not "in use".
                if !args.wait && err == Errno::EBUSY {
                    return Outcome::NotLive(initstate(name));
                }
                return Outcome::TimedOut;
            }
            Step::Retry => {
                was_busy = true;
                let left = deadline.map_or(Duration::MAX, |d| d.saturating_duration_since(now));
                let pause = backoff.next().unwrap_or(Duration::from_millis(1)).min(left);
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
        Outcome::Permanent => {
            format!("{name}: cannot be removed: it has an init but no exit ([permanent])")
        }
        Outcome::BuiltIn => format!("{name}: built into the kernel, cannot be removed"),
        Outcome::NotLive(st) => format!(
            "{name}: being loaded or removed right now (initstate {st}): try again, or use --wait"
        ),
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

    fn st() -> State {
        State::default()
    }

    #[test]
    fn classification() {
        assert_eq!(classify(Errno::EWOULDBLOCK, st(), false), Step::Retry);
        assert_eq!(classify(Errno::EBUSY, st(), false), Step::Retry);
        let held = State {
            holders: vec!["b".into()],
            ..st()
        };
        assert_eq!(
            classify(Errno::EWOULDBLOCK, held, false),
            Step::Stop(Outcome::Holders(vec!["b".into()]))
        );
        assert_eq!(
            classify(Errno::ENOENT, st(), false),
            Step::Stop(Outcome::NotLoaded)
        );
        assert_eq!(
            classify(Errno::EPERM, st(), false),
            Step::Stop(Outcome::Permission)
        );
        assert_eq!(
            classify(Errno::EIO, st(), false),
            Step::Stop(Outcome::Other(Errno::EIO))
        );
    }

    #[test]
    fn permanent_built_in_and_removed_by_someone_else() {
        let permanent = State {
            permanent: true,
            ..st()
        };
        assert_eq!(
            classify(Errno::EBUSY, permanent, true),
            Step::Stop(Outcome::Permanent)
        );
        let built_in = State {
            built_in: true,
            ..st()
        };
        assert_eq!(
            classify(Errno::ENOENT, built_in, false),
            Step::Stop(Outcome::BuiltIn)
        );
        assert_eq!(
            classify(Errno::ENOENT, st(), true),
            Step::Stop(Outcome::Removed)
        );
        let pm = "foo 16384 0 - Live 0x0\nbar 12288 0 [permanent], Live 0x0 (O)\n";
        assert!(is_permanent(pm, "bar"));
        assert!(!is_permanent(pm, "foo"));
        assert!(!is_permanent(pm, "ba"));
    }

    #[test]
    fn huge_timeouts_do_not_overflow() {
        let now = Instant::now();
        assert!(deadline(now, 1e19).is_none());
        assert!(deadline(now, f64::MAX).is_none());
        assert!(deadline(now, 0.5).is_some());
        let a = Args::try_parse_from(["rmmod-wait", "--wait", "-t", "1e19", "m"]).unwrap();
        assert_eq!(a.timeout, 1e19);
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
            Outcome::Permanent,
            Outcome::BuiltIn,
            Outcome::NotLive("going".into()),
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

    #[test]
    fn no_command_line_panics() {
        rmc::testing::fuzz_command_lines(
            "rmmod-wait",
            &[
                "--wait",
                "-w",
                "--timeout",
                "-t",
                "--max-backoff-ms",
                "--verbose",
                "-v",
                "rust_provider",
                "/x/y-z.ko",
                "0.5",
                "60",
                "--help",
                "-V",
            ],
            20_000,
            |argv| {
                if let Ok(a) = Args::try_parse_from(argv) {
                    for m in &a.modules {
                        let _ = module_name(m);
                    }
                    let _ = deadline(Instant::now(), a.timeout);
                    let _ = Backoff::new(Duration::from_millis(a.max_backoff_ms.max(1))).nth(70);
                    let _ = a;
                }
            },
        );
    }
}
