//! The operations' interval logs, written while the run goes: the generator's collector
//! hands each closed second's histograms here (issue 15). A log that cannot be written
//! (full disk, removed folder) stops with one warning; the run and the other logs go on,
//! and what it had flushed stays. The writes are a few hundred bytes per operation per
//! second into the page cache (flushed, not fsynced: a killed process loses nothing, a
//! power cut may), on the collector's task, never on the generator threads' hot path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;

use super::IntervalLog;
use crate::generator::IntervalSink;

pub struct OperationLogs {
    dir: PathBuf,
    names: Vec<String>,
    rotate_s: u64,
    /// Per operation index; `None` before `begin` or after a failure.
    logs: Vec<Option<IntervalLog>>,
    warnings: Vec<String>,
}

impl OperationLogs {
    /// Logs for `names` (index = operation) in `dir`, parts of `rotate_s` seconds; the
    /// files are created by [`IntervalSink::begin`], when the load start is known.
    pub fn new(dir: &Path, names: Vec<String>, rotate_s: u64) -> OperationLogs {
        OperationLogs { dir: dir.to_path_buf(), names, rotate_s, logs: Vec::new(), warnings: Vec::new() }
    }

    fn fail(&mut self, op: usize, error: &anyhow::Error) {
        self.logs[op] = None;
        self.warnings.push(format!("interval log of `{}` stopped: {error:#}", self.names[op]));
    }
}

impl IntervalSink for OperationLogs {
    fn begin(&mut self, started_at: SystemTime) {
        // To the millisecond, as result.json's `started_at` (and projection-lag.hlog's header).
        let since_epoch = started_at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        let started_at = SystemTime::UNIX_EPOCH + Duration::from_millis(since_epoch.as_millis() as u64);
        self.logs = (0..self.names.len()).map(|_| None).collect();
        for op in 0..self.names.len() {
            let name = &self.names[op];
            let comment = super::operation_comment(name);
            match IntervalLog::create(&self.dir, &super::file_safe(name), &comment, started_at, self.rotate_s) {
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
