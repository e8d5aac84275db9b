//! HdrHistogram interval logs: one `<operation>.hlog` per operation, one interval per
//! second of the load (warmup included: the log is the whole run, result.json's
//! histograms the measured window), readable by HdrHistogram's own log tools.
//! Values are microseconds; the max column is divided by 1000 (milliseconds).
//! `projection-lag.hlog` holds the lag probes the same way, per second of acknowledgement.
//!
//! Issue 15: the logs are written while the run goes ([`IntervalLogs`], fed by the
//! generator's collector as each second closes, and by the lag collector as each second
//! of acknowledgement closes, up to the probe timeout later), so a run holds none of its
//! intervals in memory and a killed run keeps every closed second. Long runs rotate:
//! part 0 is `<stem>.hlog` (seconds 0 to 3599 of the load), part N is `<stem>.N.hlog`
//! (seconds N·3600 to N·3600 + 3599), each a whole log with the same header and
//! timestamps since the load start, so a run under an hour keeps exactly one file per
//! log, HdrHistogram tools read any part alone, and the parts concatenated (minus their
//! headers) are the whole run. [`read::for_each_interval`] reads every part in order.
//! `CQRS_BENCH_HLOG_ROTATE_S` sets another part length (tests use a few seconds).

pub mod read;
mod sink;
mod writer;

use std::path::{Path, PathBuf};

pub use sink::IntervalLogs;
pub use writer::IntervalLog;

/// Seconds of load per part of a rotated log, unless `CQRS_BENCH_HLOG_ROTATE_S` says.
pub const ROTATE_S: u64 = 3600;

/// The environment variable that sets another part length, in whole seconds.
pub const ROTATE_ENV: &str = "CQRS_BENCH_HLOG_ROTATE_S";

/// The part length: [`ROTATE_S`], or `CQRS_BENCH_HLOG_ROTATE_S` (an error names a bad value).
pub fn rotate_seconds() -> anyhow::Result<u64> {
    match std::env::var(ROTATE_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(ROTATE_S),
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(seconds) if seconds >= 1 => Ok(seconds),
            _ => anyhow::bail!("{ROTATE_ENV}={text:?}: expected a whole number of seconds, at least 1"),
        },
        Err(e) => anyhow::bail!("{ROTATE_ENV}: {e}"),
    }
}

/// The comment heading an operation's log.
pub fn operation_comment(name: &str) -> String {
    format!("cqrs-bench latency of `{name}`, microseconds, intended start to last byte")
}

/// The projection-lag interval log: one interval per second of acknowledgement.
pub const LAG_LOG: &str = "projection-lag.hlog";

/// [`LAG_LOG`]'s stem, as [`read::for_each_interval`] takes it.
pub const LAG_STEM: &str = "projection-lag";

/// The comment heading projection-lag.hlog.
pub const LAG_COMMENT: &str =
    "cqrs-bench projection lag, microseconds, per second of acknowledgement; late probes at the timeout";

/// An operation name usable as a file name (never a `.`, so `<stem>.N.hlog` is a part).
pub fn file_safe(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

/// The file of part `part` of log `stem`: `<stem>.hlog`, then `<stem>.N.hlog`.
pub fn part_path(dir: &Path, stem: &str, part: u64) -> PathBuf {
    match part {
        0 => dir.join(format!("{stem}.hlog")),
        n => dir.join(format!("{stem}.{n}.hlog")),
    }
}

/// Which part of log `stem` the file `name` is, if it is one.
fn part_of(name: &str, stem: &str) -> Option<u64> {
    let rest = name.strip_prefix(stem)?.strip_suffix(".hlog")?;
    if rest.is_empty() {
        return Some(0);
    }
    let number = rest.strip_prefix('.')?;
    // `.1`, not `.01` or `.+1`: one file per part.
    (number.bytes().all(|b| b.is_ascii_digit()) && !number.starts_with('0')).then(|| number.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names_round_trip() {
        let dir = Path::new("/d");
        for part in [0, 1, 12] {
            let path = part_path(dir, "get_account", part);
            assert_eq!(part_of(path.file_name().unwrap().to_str().unwrap(), "get_account"), Some(part));
        }
        for other in ["get_account_x.hlog", "get_account.01.hlog", "get_account..hlog", "get_account.1.hlog.tmp"] {
            assert_eq!(part_of(other, "get_account"), None, "{other}");
        }
    }
}
