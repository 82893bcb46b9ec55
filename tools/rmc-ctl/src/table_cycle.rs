// SPDX-License-Identifier: GPL-2.0

//! `rmc-ctl table-cycle` (also a request of `rmc-ctl serve`): a table added and withdrawn through
//! configfs, again and again, each withdrawal timed and checked.

use std::process::ExitCode;

use nix::errno::Errno;
use rmc::{cli::DeviceArg, errno_name, Device, OP_COMPUTE};

use crate::requests::{open, outcome_name};

/// `table-cycle`: see `rmc-ctl table-cycle --help`.
pub(crate) fn cmd(device: &DeviceArg, name: &str, count: u64, configfs: &str) -> ExitCode {
    let dev = match open(device) {
        Ok(dev) => dev,
        Err(code) => return code,
    };
    match table_cycle(&dev, name, count, configfs) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rmc-ctl: table-cycle: {e}");
            ExitCode::from(1)
        }
    }
}

/// `table-cycle`: add and withdraw table `name` `count` times (see `rmc-ctl table-cycle --help`).
pub(crate) fn table_cycle(
    dev: &Device,
    name: &str,
    count: u64,
    configfs: &str,
) -> Result<String, String> {
    let padded =
        rmc::name_buf(name.as_bytes()).ok_or_else(|| format!("bad table name '{name}'"))?;
    let dir = std::path::Path::new(configfs).join(name);
    let mut rmdir_us = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for i in 1..=count {
        std::fs::create_dir(&dir)
            .map_err(|e| format!("cycle {i}: mkdir {}: {e}", dir.display()))?;
        let x = i.wrapping_mul(0x9e37_79b9);
        let a = dev
            .call(&padded, OP_COMPUTE, x)
            .map_err(|e| format!("cycle {i}: compute on the new table: {}", errno_name(e)))?;
        if a.result != rmc::compute_expected(x, a.instance_id) {
            return Err(format!("cycle {i}: wrong answer {} for x={x}", a.result));
        }
        let t = std::time::Instant::now();
        std::fs::remove_dir(&dir)
            .map_err(|e| format!("cycle {i}: rmdir {}: {e}", dir.display()))?;
        rmdir_us.push(t.elapsed().as_secs_f64() * 1e6);
        match dev.call(&padded, OP_COMPUTE, x) {
            Err(Errno::ENODEV) => {}
            r => {
                return Err(format!(
                    "cycle {i}: after rmdir expected ENODEV, got {}",
                    outcome_name(&r)
                ))
            }
        }
    }
    rmdir_us.sort_unstable_by(f64::total_cmp);
    let at = |q: f64| rmc::quantile(&rmdir_us, q);
    Ok(format!(
        "{count} cycles of table {name}: rmdir p50 {:.0} us, p99 {:.0} us, max {:.0} us",
        at(0.5),
        at(0.99),
        at(1.0)
    ))
}
