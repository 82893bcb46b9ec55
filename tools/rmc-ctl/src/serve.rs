// SPDX-License-Identifier: GPL-2.0

//! `rmc-ctl serve` and the table add/withdraw cycle it shares with `rmc-ctl table-cycle`.
//!
//! Under a 4-thread load in a TCG guest on the debug kernel, starting a process costs about 4 s
//! (measured in the cycles case: a one-table `table-cycle` 4.4 s, `insmod` 2.5 s, a 0.5 s
//! removal by `rmmod-wait` 4.3 s). A selftest that runs hundreds of cycles keeps one `rmc-ctl
//! serve` as a coprocess for its table cycles and reloads instead.

use std::{
    ffi::CString,
    fs::File,
    io::{BufRead, Write},
};

use nix::{
    errno::Errno,
    kmod::{finit_module, ModuleInitFlags},
};
use rmc::{errno_name, Device, OP_COMPUTE};

/// `table-cycle`: add and withdraw table `name` `count` times (see `rmc-ctl table-cycle --help`).
pub fn table_cycle(dev: &Device, name: &str, count: u64, configfs: &str) -> Result<String, String> {
    let key = rmc::name_buf(name).ok_or_else(|| format!("bad table name '{name}'"))?;
    let dir = std::path::Path::new(configfs).join(name);
    let mut rmdir_us = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for i in 1..=count {
        std::fs::create_dir(&dir)
            .map_err(|e| format!("cycle {i}: mkdir {}: {e}", dir.display()))?;
        let x = i.wrapping_mul(0x9e37_79b9);
        let a = dev
            .call(&key, OP_COMPUTE, x)
            .map_err(|e| format!("cycle {i}: compute on the new table: {}", errno_name(e)))?;
        if a.result != rmc::compute_expected(x, a.instance_id) {
            return Err(format!("cycle {i}: wrong answer {} for x={x}", a.result));
        }
        let t = std::time::Instant::now();
        std::fs::remove_dir(&dir)
            .map_err(|e| format!("cycle {i}: rmdir {}: {e}", dir.display()))?;
        rmdir_us.push(t.elapsed().as_micros());
        match dev.call(&key, OP_COMPUTE, x) {
            Err(Errno::ENODEV) => {}
            r => {
                return Err(format!(
                    "cycle {i}: after rmdir expected ENODEV, got {}",
                    crate::outcome_name(&r)
                ))
            }
        }
    }
    rmdir_us.sort_unstable();
    let at = |q: usize| {
        rmdir_us
            .get(q * rmdir_us.len().saturating_sub(1) / 100)
            .copied()
            .unwrap_or(0)
    };
    Ok(format!(
        "{count} cycles of table {name}: rmdir p50 {} us, p99 {} us, max {} us",
        at(50),
        at(99),
        at(100)
    ))
}

/// One request line; the answer line without its "ok "/"err " prefix.
fn answer(line: &str, device: &str, configfs: &str) -> Result<String, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["table-cycle", name, count] => {
            let count: u64 = count.parse().map_err(|_| format!("bad count '{count}'"))?;
            let dev = Device::open(device).map_err(|e| format!("cannot open {device}: {e}"))?;
            table_cycle(&dev, name, count, configfs)
        }
        ["load", path, params @ ..] => {
            let f = File::open(path).map_err(|e| format!("{path}: {e}"))?;
            let params = CString::new(params.join(" ")).map_err(|e| e.to_string())?;
            finit_module(&f, &params, ModuleInitFlags::empty())
                .map(|()| format!("loaded {path}"))
                .map_err(|e| format!("finit_module {path}: {}", errno_name(e)))
        }
        _ => Err(format!(
            "unknown request '{line}' (table-cycle NAME COUNT, load PATH [PARAMS])"
        )),
    }
}

/// Answers requests from stdin until it closes; one line each, flushed.
pub fn serve(device: &str, configfs: &str) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    // Bytes, not `lines()`: a request that is not UTF-8 gets an answer, it does not end the server.
    for line in std::io::stdin().lock().split(b'\n') {
        let line = line.map_err(|e| format!("reading a request: {e}"))?;
        let line = String::from_utf8_lossy(&line);
        let reply = match answer(&line, device, configfs) {
            Ok(a) => format!("ok {a}"),
            // One line whatever the message holds.
            Err(e) => format!("err {}", e.replace('\n', " ")),
        };
        writeln!(out, "{reply}")
            .and_then(|()| out.flush())
            .map_err(|e| format!("writing an answer: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::answer;

    #[test]
    fn requests_that_need_no_kernel() {
        let a = |l| answer(l, "/nonexistent/dev", "/nonexistent/cfg");
        assert!(a("table-cycle t x").unwrap_err().contains("bad count 'x'"));
        assert!(a("frobnicate").unwrap_err().starts_with("unknown request"));
        assert!(a("table-cycle t")
            .unwrap_err()
            .starts_with("unknown request"));
        assert!(a("load /nonexistent/m.ko")
            .unwrap_err()
            .starts_with("/nonexistent/m.ko:"));
        assert!(a("table-cycle t 1")
            .unwrap_err()
            .starts_with("cannot open /nonexistent/dev"));
    }
}
