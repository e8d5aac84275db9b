//! One interval log written as its seconds come: each interval is appended as one line
//! and flushed with its second, so a killed run keeps every second it closed (issue 15),
//! and the log is split into parts of `rotate_s` seconds (naming in [`super`]). Every
//! part is a whole log: the same header (comment, StartTime, BaseTime = the load start,
//! MaxValueDivisor), so HdrHistogram's tools read each part alone, and timestamps stay
//! seconds since the load start across parts.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;

use crate::results::histogram;

/// Interval maxima are written in milliseconds (values are microseconds), as before.
const MAX_VALUE_DIVISOR: f64 = 1000.0;

pub struct IntervalLog {
    dir: PathBuf,
    stem: String,
    comment: String,
    started_at: SystemTime,
    rotate_s: u64,
    /// Parts created by this writer (a part is created on its first interval).
    created: BTreeSet<u64>,
    /// The part being appended to.
    open: Option<(u64, BufWriter<File>)>,
}

impl IntervalLog {
    /// Creates part 0 with its header, so the log exists (and is readable) from the start.
    pub fn create(
        dir: &Path,
        stem: &str,
        comment: &str,
        started_at: SystemTime,
        rotate_s: u64,
    ) -> anyhow::Result<IntervalLog> {
        let mut log = IntervalLog {
            dir: dir.to_path_buf(),
            stem: stem.to_string(),
            comment: comment.to_string(),
            started_at,
            rotate_s: rotate_s.max(1),
            created: BTreeSet::new(),
            open: None,
        };
        log.switch_to(0)?;
        log.flush()?;
        Ok(log)
    }

    /// Appends `histogram` as the interval `[second, second + 1)` (seconds since the load
    /// start) to the part holding that second. Written on [`flush`](Self::flush).
    pub fn append(&mut self, second: u64, histogram: &Histogram<u64>) -> anyhow::Result<()> {
        let part = second / self.rotate_s;
        if self.open.as_ref().is_none_or(|(open, _)| *open != part) {
            self.switch_to(part)?;
        }
        let line = interval_line(second, histogram);
        let path = self.path(part);
        let (_, file) = self.open.as_mut().expect("switch_to opened the part");
        file.write_all(line.as_bytes()).with_context(|| format!("writing {}", path.display()))
    }

    /// Hands what was appended to the OS: survives a killed process (not a power cut).
    pub fn flush(&mut self) -> anyhow::Result<()> {
        let Some((part, file)) = self.open.as_mut() else { return Ok(()) };
        let part = *part;
        file.flush().with_context(|| format!("writing {}", self.path(part).display()))
    }

    fn path(&self, part: u64) -> PathBuf {
        super::part_path(&self.dir, &self.stem, part)
    }

    /// Flushes the open part and opens `part`: created with its header the first time,
    /// appended to after (a lag second that came late may belong to an earlier part).
    fn switch_to(&mut self, part: u64) -> anyhow::Result<()> {
        self.flush()?;
        self.open = None;
        let path = self.path(part);
        let file = if self.created.insert(part) {
            let mut file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
            file.write_all(&self.header(part)?).with_context(|| format!("writing {}", path.display()))?;
            file
        } else {
            OpenOptions::new().append(true).open(&path).with_context(|| format!("opening {}", path.display()))?
        };
        self.open = Some((part, BufWriter::new(file)));
        Ok(())
    }

    fn header(&self, part: u64) -> anyhow::Result<Vec<u8>> {
        let mut builder = IntervalLogWriterBuilder::new();
        builder.add_comment(&self.comment);
        if part > 0 {
            let (from, to) = (part * self.rotate_s, (part + 1) * self.rotate_s);
            builder.add_comment(&format!(
                "part {part} of a rotated log: seconds {from} to {to} of the load (parts: {0}.hlog, {0}.1.hlog, …)",
                self.stem
            ));
        }
        let mut bytes = Vec::new();
        let mut serializer = V2DeflateSerializer::new();
        builder
            .with_start_time(self.started_at)
            .with_base_time(self.started_at)
            .with_max_value_divisor(MAX_VALUE_DIVISOR)
            .begin_log_with(&mut bytes, &mut serializer)?;
        Ok(bytes)
    }
}

/// An interval line exactly as HdrHistogram's `IntervalLogWriter` writes it (start,
/// length, max / divisor, V2 + deflate + base64), checked by a test below.
fn interval_line(second: u64, h: &Histogram<u64>) -> String {
    let start = Duration::from_secs(second).as_secs_f64();
    format!("{start:.3},{:.3},{:.3},{}\n", 1.0, h.max() as f64 / MAX_VALUE_DIVISOR, histogram::encode(h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::histogram::{new_latency_histogram, record};

    fn histogram_of(ms: &[u64]) -> Histogram<u64> {
        let mut h = new_latency_histogram();
        for v in ms {
            record(&mut h, Duration::from_millis(*v));
        }
        h
    }

    /// The streamed log is byte for byte what the library's writer makes of the same intervals.
    #[test]
    fn lines_match_the_library_writer() {
        let started = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let intervals = [(0, histogram_of(&[1, 2, 3])), (1, histogram_of(&[40])), (7, histogram_of(&[5, 5]))];
        let dir = tempfile::tempdir().unwrap();
        let mut log = IntervalLog::create(dir.path(), "op", "a comment", started, 3600).unwrap();
        for (second, h) in &intervals {
            log.append(*second, h).unwrap();
        }
        log.flush().unwrap();
        let mut expected = Vec::new();
        let mut serializer = V2DeflateSerializer::new();
        {
            let mut writer = IntervalLogWriterBuilder::new()
                .add_comment("a comment")
                .with_start_time(started)
                .with_base_time(started)
                .with_max_value_divisor(1000.0)
                .begin_log_with(&mut expected, &mut serializer)
                .unwrap();
            for (second, h) in &intervals {
                writer.write_histogram(h, Duration::from_secs(*second), Duration::from_secs(1), None).unwrap();
            }
        }
        assert_eq!(String::from_utf8(std::fs::read(dir.path().join("op.hlog")).unwrap()).unwrap(), {
            String::from_utf8(expected).unwrap()
        });
    }

    /// Seconds go to the part of their `rotate_s` window, each part with its own header;
    /// a second that comes back to an earlier part is appended there.
    #[test]
    fn rotates_into_numbered_parts() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = IntervalLog::create(dir.path(), "op", "c", SystemTime::UNIX_EPOCH, 2).unwrap();
        for second in [0, 1, 2, 5, 3] {
            log.append(second, &histogram_of(&[1])).unwrap();
        }
        log.flush().unwrap();
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
        let starts = |text: String| -> Vec<String> {
            text.lines().filter(|l| !l.starts_with('#')).map(|l| l.split(',').next().unwrap().to_string()).collect()
        };
        assert_eq!(starts(read("op.hlog")), ["0.000", "1.000"]);
        assert_eq!(starts(read("op.1.hlog")), ["2.000", "3.000"]);
        assert_eq!(starts(read("op.2.hlog")), ["5.000"]);
        assert!(read("op.2.hlog").contains("#[BaseTime: 0.000"));
    }
}
