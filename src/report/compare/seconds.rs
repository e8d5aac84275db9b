//! The per-second figures a run folder already holds, read back as the samples a
//! comparison resamples: for each whole second of the measured window, the latency
//! histogram of the commands and of the queries (added from the operations' `.hlog`
//! interval logs, every rotated part), the projection lag (`projection-lag.hlog`) and the goodput
//! (result.json's timeline).
//!
//! A second is the unit because it is what the run records, and because neighbouring
//! operations are not independent (a GC pause or a noisy neighbour hits a whole second):
//! resampling seconds keeps that correlation, resampling single operations would not.

use std::collections::BTreeMap;
use std::path::Path;

use crate::report::hlog;
use crate::results::RunResult;

/// Latency values seen in one second: (value in µs, how many), values ascending. The
/// values are HdrHistogram bucket values (3 significant digits), as in result.json.
pub type Counts = Vec<(u64, u64)>;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Second {
    pub commands: Counts,
    pub queries: Counts,
    /// Projection lag of the probes whose command was acknowledged in this second.
    pub lag: Counts,
    /// Operations answered `ok` or `rejected` in this second.
    pub achieved: u64,
}

/// The seconds of one run's measured window, in time order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSeconds {
    pub seconds: Vec<Second>,
}

/// Reads the measured window's whole seconds of the run in `dir`. `None` when the folder
/// has no interval logs (a merged or hand-made result): its figures are then compared
/// as single values.
pub fn load(dir: &Path, result: &RunResult) -> anyhow::Result<Option<RunSeconds>> {
    // Whole seconds only: the first starts at or after the warmup, the last ends by the end.
    let first = result.warmup_s.ceil() as u64;
    let end = (result.duration_s + 1e-6).floor() as u64;
    if end <= first {
        return Ok(None);
    }
    let mut seconds: BTreeMap<u64, Second> = (first..end).map(|t| (t, Second::default())).collect();
    // A row of several seconds (a run over an hour, issue 15) is spread evenly over them:
    // the goodput's mean stays exact, its spread is that of the rows.
    let step = result.timeline_step();
    for row in &result.timeline {
        for i in 0..step {
            if let Some(second) = seconds.get_mut(&(row.t_s + i)) {
                second.achieved = row.achieved / step + u64::from(i < row.achieved % step);
            }
        }
    }
    let mut any_log = false;
    for (name, op) in &result.operations {
        let command = op.kind == "command";
        any_log |= read_log(dir, &hlog::file_safe(name), &mut seconds, |s| {
            if command { &mut s.commands } else { &mut s.queries }
        })?;
    }
    if any_log {
        read_log(dir, hlog::LAG_STEM, &mut seconds, |second| &mut second.lag)?;
    }
    Ok(any_log.then(|| RunSeconds { seconds: seconds.into_values().collect() }))
}

/// Adds an interval log's seconds (every part of it) into `seconds`, where `into` says;
/// a missing log adds nothing.
fn read_log(
    dir: &Path,
    stem: &str,
    seconds: &mut BTreeMap<u64, Second>,
    into: impl Fn(&mut Second) -> &mut Counts,
) -> anyhow::Result<bool> {
    hlog::read::for_each_interval(dir, stem, |second, histogram| {
        if let Some(second) = seconds.get_mut(&second) {
            add(into(second), histogram.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())));
        }
        Ok(())
    })
}

/// Adds ascending (value, count) pairs into `into`, keeping it ascending.
fn add(into: &mut Counts, values: impl Iterator<Item = (u64, u64)>) {
    let mut merged: BTreeMap<u64, u64> = into.drain(..).collect();
    for (value, count) in values {
        *merged.entry(value).or_default() += count;
    }
    into.extend(merged);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 15: a run whose logs rotated reads back the same seconds as one log.
    #[test]
    fn rotated_logs_read_the_same_seconds_as_one_log() {
        use std::time::{Duration, SystemTime};

        use crate::report::hlog::IntervalLog;
        use crate::results::histogram::{new_latency_histogram, record};
        use crate::results::model::OperationStats;

        let mut result = RunResult { duration_s: 9.0, ..RunResult::default() };
        for (name, kind) in [("put", "command"), ("get", "query")] {
            result.operations.insert(name.into(), OperationStats { kind: kind.into(), ..OperationStats::default() });
        }
        let load = |rotate_s: u64| {
            let dir = tempfile::tempdir().unwrap();
            for (stem, base) in [("put", 1), ("get", 7), (hlog::LAG_STEM, 50)] {
                let mut log = IntervalLog::create(dir.path(), stem, "c", SystemTime::UNIX_EPOCH, rotate_s).unwrap();
                for second in 0..9 {
                    let mut h = new_latency_histogram();
                    record(&mut h, Duration::from_millis(base + second));
                    log.append(second, &h).unwrap();
                }
                log.flush().unwrap();
            }
            load(dir.path(), &result).unwrap().unwrap()
        };
        let (rotated, whole) = (load(2), load(3600));
        assert_eq!(rotated.seconds.len(), 9);
        assert_eq!(rotated, whole);
    }

    #[test]
    fn adding_keeps_values_ascending_and_counts_summed() {
        let mut counts = vec![(10, 1), (30, 2)];
        add(&mut counts, [(20, 5), (30, 1)].into_iter());
        assert_eq!(counts, [(10, 1), (20, 5), (30, 3)]);
    }
}
