//! Reads a (possibly rotated) interval log back: every part, in time order, as
//! (second since the load start, histogram). The one reader `compare` and `merge` share.

use std::fs::File;
use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

use crate::results::histogram::{decode, limits};

/// The parts of log `stem` in `dir`, in time order: `<stem>.hlog`, then `<stem>.N.hlog`
/// by N (a part with no interval may be missing). Empty when there is none.
pub fn parts(dir: &Path, stem: &str) -> anyhow::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading the folder {}", dir.display())),
    };
    let mut parts = Vec::new();
    for entry in entries {
        let name = entry.with_context(|| format!("reading the folder {}", dir.display()))?.file_name();
        if let Some(part) = name.to_str().and_then(|name| super::part_of(name, stem)) {
            parts.push(part);
        }
    }
    parts.sort_unstable();
    Ok(parts.into_iter().map(|part| super::part_path(dir, stem, part)).collect())
}

/// The longest line read from an interval log: a histogram's text at its bound
/// ([`limits::MAX_TEXT_BYTES`]) and the timestamps before it (issue 32). A longer line is a
/// located error, never read whole.
pub const MAX_LINE_BYTES: usize = limits::MAX_TEXT_BYTES + 256;

/// Every interval of every part of a log, in file order, one line in memory at a time
/// (issue 32: `merge` held every second of every shard). Errors name the file and line.
pub struct Intervals {
    parts: std::vec::IntoIter<PathBuf>,
    /// The part being read: its path, reader and the number of the last line read.
    open: Option<(PathBuf, BufReader<File>, usize)>,
    line: Vec<u8>,
}

impl Intervals {
    /// The intervals of log `stem` in `dir`; `None` when the log does not exist.
    pub fn open(dir: &Path, stem: &str) -> anyhow::Result<Option<Intervals>> {
        let parts = parts(dir, stem)?;
        if parts.is_empty() {
            return Ok(None);
        }
        Ok(Some(Intervals { parts: parts.into_iter(), open: None, line: Vec::new() }))
    }

    /// The next interval: (second since the load start, histogram, where it was read).
    pub fn next_interval(&mut self) -> anyhow::Result<Option<(u64, Histogram<u64>, String)>> {
        loop {
            let Some((path, reader, number)) = &mut self.open else {
                let Some(path) = self.parts.next() else { return Ok(None) };
                let file = crate::results::open_regular(&path)?;
                self.open = Some((path, BufReader::new(file), 0));
                continue;
            };
            self.line.clear();
            reader
                .by_ref()
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut self.line)
                .with_context(|| format!("reading {}", path.display()))?;
            *number += 1;
            let at = format!("{}:{number}", path.display());
            if self.line.last() != Some(&b'\n') {
                anyhow::ensure!(
                    self.line.len() <= MAX_LINE_BYTES,
                    "{at}: a line longer than {MAX_LINE_BYTES} bytes: not an interval log line cqrs-bench reads"
                );
                // The end of the part; a line cut short by a kill or a full disk (no
                // newline yet) is not a closed second.
                self.open = None;
                continue;
            }
            let mut entries = IntervalLogIterator::new(&self.line);
            let Some(entry) = entries.next() else { continue };
            let entry = entry.map_err(|_| anyhow::anyhow!("{at}: not an HdrHistogram interval log line"))?;
            let LogEntry::Interval(interval) = entry else { continue };
            let second = interval.start_timestamp().as_secs();
            let histogram = decode(interval.encoded_histogram()).with_context(|| format!("{at}: second {second}"))?;
            return Ok(Some((second, histogram, at)));
        }
    }
}

/// Calls `each(second, histogram)` for every interval of every part of log `stem`, in
/// file order. `Ok(false)` when the log does not exist. Errors name the file and line.
pub fn for_each_interval(
    dir: &Path,
    stem: &str,
    mut each: impl FnMut(u64, Histogram<u64>) -> anyhow::Result<()>,
) -> anyhow::Result<bool> {
    let Some(mut intervals) = Intervals::open(dir, stem)? else { return Ok(false) };
    while let Some((second, histogram, at)) = intervals.next_interval()? {
        each(second, histogram).with_context(|| at)?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::report::hlog::writer::IntervalLog;
    use crate::results::histogram::{new_latency_histogram, record};

    fn one(ms: u64) -> Histogram<u64> {
        let mut h = new_latency_histogram();
        record(&mut h, Duration::from_millis(ms));
        h
    }

    #[test]
    fn reads_every_part_in_order_and_skips_a_cut_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = IntervalLog::create(dir.path(), "op", "c", SystemTime::UNIX_EPOCH, 10).unwrap();
        for second in [0, 9, 10, 25] {
            log.append(second, &one(second + 1)).unwrap();
        }
        log.flush().unwrap();
        // Another log's parts and a stray file are not parts of `op`.
        std::fs::write(dir.path().join("op_x.1.hlog"), "").unwrap();
        std::fs::write(dir.path().join("op.x.hlog"), "").unwrap();
        // A kill mid-line: the cut line is not read.
        let last = dir.path().join("op.2.hlog");
        let mut text = std::fs::read_to_string(&last).unwrap();
        text.push_str("26.000,1.000,0.0,HIST");
        std::fs::write(&last, text).unwrap();
        let names: Vec<_> =
            parts(dir.path(), "op").unwrap().iter().map(|p| p.file_name().unwrap().to_owned()).collect();
        assert_eq!(names, ["op.hlog", "op.1.hlog", "op.2.hlog"]);
        let mut seen = Vec::new();
        let found = for_each_interval(dir.path(), "op", |second, h| {
            seen.push((second, h.max() / 1000));
            Ok(())
        })
        .unwrap();
        assert!(found);
        assert_eq!(seen, [(0, 1), (9, 10), (10, 11), (25, 26)]);
        assert!(!for_each_interval(dir.path(), "other", |_, _| Ok(())).unwrap());
    }

    #[test]
    fn a_bad_line_is_named_by_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("op.hlog"), "#comment\n0.000,1.000,1.0,HISTFAAAAnotbase64!\n").unwrap();
        let error = for_each_interval(dir.path(), "op", |_, _| Ok(())).unwrap_err();
        let text = format!("{error:#}");
        assert!(text.contains("op.hlog"), "{text}");
    }
}
