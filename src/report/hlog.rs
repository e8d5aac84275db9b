//! HdrHistogram interval logs: one `<operation>.hlog` per operation, one interval per
//! second of the load (warmup included: the log is the whole run, result.json's
//! histograms the measured window), readable by HdrHistogram's own log tools.
//! Values are microseconds; the max column is divided by 1000 (milliseconds).
//! `projection-lag.hlog` holds the lag probes the same way, per second of acknowledgement.

use std::path::Path;
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;

use crate::generator::Interval;
use crate::results::histogram;

/// Writes `dir/<name>.hlog` for every operation in `names` (index = `Interval::op`).
pub fn write(dir: &Path, names: &[String], intervals: &[Interval], started_at: SystemTime) -> anyhow::Result<()> {
    for (op, name) in names.iter().enumerate() {
        let mut bytes = Vec::new();
        let mut serializer = V2DeflateSerializer::new();
        {
            let mut writer = IntervalLogWriterBuilder::new()
                .add_comment(&format!("cqrs-bench latency of `{name}`, microseconds, intended start to last byte"))
                .with_start_time(started_at)
                .with_base_time(started_at)
                .with_max_value_divisor(1000.0)
                .begin_log_with(&mut bytes, &mut serializer)?;
            for interval in intervals.iter().filter(|i| i.op == op) {
                let h = histogram::decode(&interval.encoded)?;
                writer
                    .write_histogram(&h, Duration::from_secs(interval.start_s), Duration::from_secs(1), None)
                    .map_err(|e| anyhow::anyhow!("{name}.hlog: {e:?}"))?;
            }
        }
        crate::results::write_atomic(&dir.join(format!("{}.hlog", file_safe(name))), &bytes)?;
    }
    Ok(())
}

/// The projection-lag interval log: one interval per second of acknowledgement.
pub const LAG_LOG: &str = "projection-lag.hlog";

/// Writes `dir/projection-lag.hlog` from the probes' (acknowledged at, lag) records; a late
/// probe counts at `timeout`, as in result.json's lag histogram. Values are microseconds.
pub fn write_lag(
    dir: &Path,
    records: &[(Duration, Option<Duration>)],
    timeout: Duration,
    started_at: SystemTime,
) -> anyhow::Result<()> {
    let mut per_second: std::collections::BTreeMap<u64, hdrhistogram::Histogram<u64>> = Default::default();
    for (acked, lag) in records {
        let histogram = per_second.entry(acked.as_secs()).or_insert_with(histogram::new_latency_histogram);
        histogram::record(histogram, lag.unwrap_or(timeout));
    }
    let mut bytes = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    {
        let mut writer = IntervalLogWriterBuilder::new()
            .add_comment(
                "cqrs-bench projection lag, microseconds, per second of acknowledgement; late probes at the timeout",
            )
            .with_start_time(started_at)
            .with_base_time(started_at)
            .with_max_value_divisor(1000.0)
            .begin_log_with(&mut bytes, &mut serializer)?;
        for (second, h) in &per_second {
            writer
                .write_histogram(h, Duration::from_secs(*second), Duration::from_secs(1), None)
                .map_err(|e| anyhow::anyhow!("{LAG_LOG}: {e:?}"))?;
        }
    }
    crate::results::write_atomic(&dir.join(LAG_LOG), &bytes)
}

/// An operation name usable as a file name.
pub fn file_safe(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}
