// SPDX-License-Identifier: GPL-2.0

//! `rmc-ctl serve`: table cycles and module loads on request, one line each, for a script that
//! would otherwise start a process per step (under load a process start is the slowest step of
//! the selftest's cycles case: the figures are in bench/README.md).

use std::{
    ffi::CString,
    fs::File,
    io::{BufRead, Write},
    process::ExitCode,
};

use nix::kmod::{finit_module, ModuleInitFlags};
use rmc::{errno_name, Device};

use crate::table_cycle::table_cycle;

/// One request line; the answer line without its "ok "/"err " prefix.
fn answer(line: &str, device: &str, configfs: &str) -> Result<String, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["table-cycle", name, count] => {
            let count: u64 = count.parse().map_err(|_| format!("bad count '{count}'"))?;
            let dev = Device::open_checked(device)?;
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

/// `serve`: see `rmc-ctl serve --help`.
pub(crate) fn cmd(device: &str, configfs: &str) -> ExitCode {
    match serve(device, configfs) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rmc-ctl: serve: {e}");
            ExitCode::from(1)
        }
    }
}

/// Answers requests from stdin until it closes; one line each, flushed.
fn serve(device: &str, configfs: &str) -> Result<(), String> {
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
