//! The interval logs written while the run goes: the generator's collector hands each
//! closed second's histograms to the operations' logs, the lag collector each closed
//! second of acknowledgement to projection-lag.hlog (issue 15). A log that cannot be
//! written (full disk, removed folder) stops with one warning; the run and the other
//! logs go on, and what it had flushed stays, but the run ends in exit 3 (issue 32: an
//! output not written fails the run), read through [`IntervalLogs::failures`]. The writes are a few hundred bytes per log
//! per second into the page cache (flushed, not fsynced: a killed process loses nothing,
//! a power cut may), on the collectors' tasks, never on the generator threads' hot path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;

use super::IntervalLog;
use crate::results::intervals::IntervalSink;

/// Interval logs by index (operation, or 0 for the lag).
pub struct IntervalLogs {
    dir: PathBuf,
    /// Per index: the file stem and the comment heading the log.
    heads: Vec<(String, String)>,
    rotate_s: u64,
    /// Per index; `None` before `begin` or after a failure.
    logs: Vec<Option<IntervalLog>>,
    warnings: Vec<String>,
    /// The logs that stopped, `file: why`, for whoever decides the exit code.
    failures: Arc<Mutex<Vec<String>>>,
}

impl IntervalLogs {
    /// Logs for the operations `names` (index = operation) in `dir`, parts of `rotate_s`
    /// seconds; the files are created by [`IntervalSink::begin`], when the load start is known.
    pub fn operations(dir: &Path, names: Vec<String>, rotate_s: u64) -> IntervalLogs {
        let heads = names.iter().map(|name| (super::file_safe(name), super::operation_comment(name))).collect();
        IntervalLogs::new(dir, heads, rotate_s)
    }

    /// projection-lag.hlog: one interval per second of acknowledgement.
    pub fn lag(dir: &Path, rotate_s: u64) -> IntervalLogs {
        IntervalLogs::new(dir, vec![(super::LAG_STEM.into(), super::LAG_COMMENT.into())], rotate_s)
    }

    fn new(dir: &Path, heads: Vec<(String, String)>, rotate_s: u64) -> IntervalLogs {
        let failures = Arc::default();
        IntervalLogs { dir: dir.to_path_buf(), heads, rotate_s, logs: Vec::new(), warnings: Vec::new(), failures }
    }

    /// The logs that could not be written, `NAME.hlog: why`, filled as they fail (read it
    /// after the run; the sink itself is handed to the collector).
    pub fn failures(&self) -> Arc<Mutex<Vec<String>>> {
        self.failures.clone()
    }

    fn fail(&mut self, index: usize, error: &anyhow::Error) {
        self.logs[index] = None;
        let stem = &self.heads[index].0;
        self.warnings.push(format!("interval log `{stem}.hlog` stopped: {error:#}"));
        self.failures.lock().expect("never held across a panic").push(format!("{stem}.hlog: {error:#}"));
    }
}

impl IntervalSink for IntervalLogs {
    fn begin(&mut self, started_at: SystemTime) {
        // To the millisecond, as result.json's `started_at` (and projection-lag.hlog's header).
        let since_epoch = started_at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        let started_at = SystemTime::UNIX_EPOCH + Duration::from_millis(since_epoch.as_millis() as u64);
        self.logs = (0..self.heads.len()).map(|_| None).collect();
        for op in 0..self.heads.len() {
            let (stem, comment) = &self.heads[op];
            match IntervalLog::create(&self.dir, stem, comment, started_at, self.rotate_s) {
                Ok(log) => self.logs[op] = Some(log),
                Err(e) => self.fail(op, &e),
            }
        }
    }

    fn second(&mut self, second: u64, histograms: &BTreeMap<usize, Histogram<u64>>) {
        for (&op, histogram) in histograms {
            let Some(Some(log)) = self.logs.get_mut(op) else { continue };
            if let Err(e) = log.append(second, histogram) {
                self.fail(op, &e);
            }
        }
        for op in 0..self.logs.len() {
            if let Some(log) = &mut self.logs[op]
                && let Err(e) = log.flush()
            {
                self.fail(op, &e);
            }
        }
    }

    fn finish(&mut self) -> Vec<String> {
        self.logs.clear(); // every second was flushed as it closed
        std::mem::take(&mut self.warnings)
    }
}
