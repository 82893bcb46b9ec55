// SPDX-License-Identifier: GPL-2.0

//! Command-line pieces every tool shares: the device and provider arguments (flattened into each
//! tool's own arguments) and the number parsers.

use std::time::Duration;

use crate::Device;

/// The exit statuses every tool that opens the device shares, as lines of its `--help`:
/// `concat!("Exit status:\n  0 ...\n  1 ...\n", rmc::exit_status_usage_and_device!())`.
#[macro_export]
macro_rules! exit_status_usage_and_device {
    () => {
        "  2  usage error\n  3  the device could not be opened"
    };
}

/// `--device`: the consumer's device node.
#[derive(clap::Args, Debug, Clone)]
pub struct DeviceArg {
    /// The consumer's device node.
    // An id of its own: a subcommand's `path` argument must not collide with it.
    #[arg(id = "device", long = "device", default_value = Device::DEFAULT_PATH, global = true)]
    pub path: String,
}

impl DeviceArg {
    /// Opens the device after checking it is the consumer's ([`Device::open_checked`]), or
    /// says what is wrong and what to do.
    pub fn open(&self) -> Result<Device, String> {
        Device::open_checked(&self.path)
    }
}

/// `-p/--provider`: the name of the table to call (the flag keeps its name: a table is a
/// provider's, and the default is the provider's first table).
#[derive(clap::Args, Debug, Clone)]
pub struct TableArg {
    /// Provider (table name) to call.
    #[arg(
        id = "provider",
        short = 'p',
        long = "provider",
        default_value = "rust_provider"
    )]
    pub name: String,
}

/// A number in decimal or, with `0x`, in hex.
pub fn parse_u64(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("'{s}' is not a number (decimal, or hex with 0x)"))
}

/// A non-negative number of seconds (fractions allowed) that a `Duration` can hold.
pub fn parse_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    match Duration::try_from_secs_f64(v) {
        Ok(_) => Ok(v),
        Err(_) => Err(format!(
            "'{s}' is not a duration (0 to {} s)",
            Duration::MAX.as_secs()
        )),
    }
}

/// A count of 1 or more.
pub fn parse_at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("'{s}' is not a whole number of 1 or more")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_u64("42"), Ok(42));
        assert_eq!(parse_u64("0x10"), Ok(16));
        assert!(parse_u64("x").is_err());
        assert_eq!(parse_u64("0x2A"), Ok(42));
        assert_eq!(parse_u64("0XfF"), Ok(255));
        assert!(parse_u64("0x").is_err());
        assert!(parse_u64("-1").is_err());
        assert!(parse_u64("18446744073709551616").is_err());
        assert_eq!(parse_seconds("0.5"), Ok(0.5));
        assert_eq!(parse_seconds("0"), Ok(0.0));
        for bad in ["-1", "inf", "nan", "1e300", "x"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_at_least_one("1"), Ok(1));
        assert!(parse_at_least_one("0").is_err());
    }
}
