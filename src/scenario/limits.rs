//! The ranges scenario values must fall in (issue 16): every value that reaches a
//! `Duration`, an allocation, a semaphore or a sum is checked against these at load
//! time, so `validate` rejects what `run` could not carry out. The command line's
//! `--rate` and `--duration` are held to the same bounds.

use std::time::Duration;

/// Longest single duration (timeouts, warmup, think time, settle, fault windows, SLOs): 30 days.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);
/// Longest load (the stages together): 30 days.
pub const MAX_LOAD: Duration = MAX_DURATION;
/// Human form of the duration bounds, for hints.
pub const MAX_DURATION_TEXT: &str = "30 days (\"720h\")";

/// Highest rate of a stage or a setup, operations/s.
pub const MAX_RATE: f64 = 10_000_000.0;
/// Lowest non-zero rate, operations/s (one operation every 1000 s).
pub const MIN_RATE: f64 = 0.001;
/// Most users of a closed-model stage (each is a task).
pub const MAX_USERS: f64 = 100_000.0;
/// Most requests outstanding at once (`max_in_flight`, a semaphore).
pub const MAX_IN_FLIGHT: u64 = 1_000_000;
/// Most operations waiting for a slot (`max_backlog`).
pub const MAX_BACKLOG: u64 = 10_000_000;
/// Largest `reorder_window` of the embedded target (a buffer of that many events).
pub const MAX_REORDER_WINDOW: u64 = 100_000;
/// Largest zipf exponent of the key distribution.
pub const MAX_ZIPF_EXPONENT: f64 = 100.0;
/// Largest count threshold (`duplicates`, `missed`, `max_dropped`, …): exact in an f64.
pub const MAX_COUNT: f64 = 1e15;

/// Request bytes rendered at once (issue 32: `{{bytes 16777216}}` rendered for every
/// request in flight reached 3.6 GB in 8 s): requests in flight (`max_in_flight`, or the
/// most users) × the largest request's text and `{{bytes N}}` fillers must stay under it.
pub const MAX_REQUEST_BYTES_IN_FLIGHT: usize = 256 * 1024 * 1024;
/// Human form of it, for errors.
pub const MAX_REQUEST_BYTES_IN_FLIGHT_TEXT: &str = "256 MiB";

/// Response bytes the answers being read at once keep together (issue 32: memory was
/// bounded only by requests in flight × `max_body`). At least one `max_body`.
pub const MAX_ANSWER_BYTES_IN_FLIGHT: usize = 256 * 1024 * 1024;

/// Response bytes kept per answer when `[target] max_body` is not set.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;
/// Largest `[target] max_body`: 1 GiB.
pub const MAX_BODY: usize = 1024 * 1024 * 1024;

/// `Ok` when `rate` is a usable open-model or setup rate: 0 (when `zero_ok`) or in
/// `MIN_RATE..=MAX_RATE`; `Err` says what is allowed.
pub fn check_rate(rate: f64, zero_ok: bool) -> Result<(), String> {
    let ok = (zero_ok && rate == 0.0) || (MIN_RATE..=MAX_RATE).contains(&rate);
    if ok {
        Ok(())
    } else {
        let zero = if zero_ok { "0 or " } else { "" };
        Err(format!("a rate is {zero}between {MIN_RATE} and {MAX_RATE:.0} operations/s, not {rate}"))
    }
}

/// Parses a size: a byte count (`65536`) or a number with a unit (`"512KiB"`, `"1MiB"`,
/// `"2MB"`, `"100B"`; KiB/MiB/GiB are powers of 1024, KB/MB/GB of 1000).
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = (text[..split].trim(), text[split..].trim());
    let number: f64 = number.parse().ok()?;
    let scale: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = number * scale;
    (bytes.is_finite() && bytes >= 0.0 && bytes <= u64::MAX as f64).then_some(bytes.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1MiB"), Some(1 << 20));
        assert_eq!(parse_size("512 KiB"), Some(512 * 1024));
        assert_eq!(parse_size("2MB"), Some(2_000_000));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("1.5KiB"), Some(1536));
        assert_eq!(parse_size("1 parsec"), None);
        assert_eq!(parse_size("-1"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn rates() {
        assert!(check_rate(0.0, true).is_ok());
        assert!(check_rate(0.0, false).is_err());
        assert!(check_rate(1e-300, true).is_err());
        assert!(check_rate(f64::NAN, true).is_err());
        assert!(check_rate(f64::INFINITY, true).is_err());
        assert!(check_rate(1e308, true).is_err());
        assert!(check_rate(MAX_RATE, false).is_ok());
    }
}
