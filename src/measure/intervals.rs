//! What the generator and the probes hand over second by second, below both of them:
//! the sink that streams each closed second's histograms to disk (the .hlog writer),
//! and the timeline's step (issue 15: an hours-long run keeps at most
//! [`DEFAULT_TIMELINE_ROWS`] rows in memory and in result.json; the per-second detail
//! stays in the interval logs).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;

/// Where each closed second's histograms go as the run goes. Failures are kept as
/// warnings, never stop the load.
pub trait IntervalSink: Send {
    /// The load starts at `started_at` (wall clock of second 0).
    fn begin(&mut self, started_at: SystemTime);
    /// Second `second` (since the load start) closed: its non-empty histograms by index
    /// (operation, or 0 for a single series). Written through before returning, so a kill
    /// loses no closed second.
    fn second(&mut self, second: u64, histograms: &BTreeMap<usize, Histogram<u64>>);
    /// The load ended: what could not be written, as warnings.
    fn finish(&mut self) -> Vec<String>;
}

/// Rows the timeline holds at most: one per second up to an hour, then one per
/// `step` seconds (a day: 24 s rows, ~3 MB in memory as in result.json).
pub const DEFAULT_TIMELINE_ROWS: u64 = 3600;

/// Overrides [`DEFAULT_TIMELINE_ROWS`] (tests make long-run rows from short runs).
pub const TIMELINE_ROWS_ENV: &str = "CQRS_BENCH_TIMELINE_ROWS";

/// The timeline's step for a load of `load`: 1 s, or as many seconds as keep the rows
/// within the budget. A bad `CQRS_BENCH_TIMELINE_ROWS` is an error.
pub fn timeline_step(load: Duration) -> anyhow::Result<u64> {
    let rows = match std::env::var(TIMELINE_ROWS_ENV) {
        Err(std::env::VarError::NotPresent) => DEFAULT_TIMELINE_ROWS,
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(rows) if rows >= 1 => rows,
            _ => anyhow::bail!("{TIMELINE_ROWS_ENV}={text:?}: expected a whole number of rows, at least 1"),
        },
        Err(e) => anyhow::bail!("{TIMELINE_ROWS_ENV}: {e}"),
    };
    Ok(step_for(load, rows))
}

fn step_for(load: Duration, rows: u64) -> u64 {
    let seconds = load.as_secs_f64().ceil() as u64; // a last part-second is a row too
    seconds.div_ceil(rows).max(1)
}

/// The start (second) of the row second `second` falls in.
pub fn row_of(second: u64, step: u64) -> u64 {
    second / step * step
}

/// The sum of `per_second[t_s .. t_s + step]` (missing seconds count 0).
pub fn sum_over(per_second: &[u64], t_s: u64, step: u64) -> u64 {
    let from = (t_s as usize).min(per_second.len());
    let to = (t_s.saturating_add(step) as usize).min(per_second.len());
    per_second[from..to].iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_keeps_the_rows_within_the_budget() {
        assert_eq!(step_for(Duration::from_secs(10), 3600), 1);
        assert_eq!(step_for(Duration::from_secs(3600), 3600), 1);
        assert_eq!(step_for(Duration::from_secs(3601), 3600), 2);
        assert_eq!(step_for(Duration::from_secs(86_400), 3600), 24);
        assert_eq!(step_for(Duration::from_millis(7_500), 4), 2, "8 seconds in 4 rows");
        assert_eq!(step_for(Duration::ZERO, 4), 1);
    }

    #[test]
    fn rows_and_sums() {
        assert_eq!(row_of(7, 1), 7);
        assert_eq!(row_of(7, 3), 6);
        assert_eq!(sum_over(&[1, 2, 3, 4, 5], 2, 2), 7);
        assert_eq!(sum_over(&[1, 2, 3], 2, 4), 3, "the last row may be short");
        assert_eq!(sum_over(&[1, 2, 3], 9, 2), 0);
    }
}
