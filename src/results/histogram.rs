//! HdrHistogram helpers: one shape for every latency in the harness (microseconds,
//! 1 µs to 1 h, 3 significant digits), its summary in milliseconds, and the
//! V2 + deflate + base64 encoding used in result.json and .hlog files.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};

use super::model::Percentiles;

/// Highest trackable value: one hour in microseconds. Larger values are clamped.
pub const MAX_MICROS: u64 = 3_600_000_000;

/// A fresh latency histogram (values in microseconds).
pub fn new_latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("static bounds are valid")
}

/// Records a duration, clamped into the histogram's range.
pub fn record(histogram: &mut Histogram<u64>, value: Duration) {
    let micros = u64::try_from(value.as_micros()).unwrap_or(u64::MAX).clamp(1, MAX_MICROS);
    histogram.saturating_record(micros);
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// Summary in milliseconds; all zero for an empty histogram.
pub fn percentiles(histogram: &Histogram<u64>) -> Percentiles {
    if histogram.is_empty() {
        return Percentiles::default();
    }
    let q = |quantile: f64| ms(histogram.value_at_quantile(quantile));
    Percentiles {
        min: ms(histogram.min()),
        mean: histogram.mean() / 1000.0,
        p50: q(0.50),
        p90: q(0.90),
        p95: q(0.95),
        p99: q(0.99),
        p999: q(0.999),
        max: ms(histogram.max()),
    }
}

/// The percentiles, `None` when the histogram is empty (issue 30: an operation without
/// samples showed latencies of 0.00 ms).
pub fn sampled_percentiles(histogram: &Histogram<u64>) -> Option<Percentiles> {
    (!histogram.is_empty()).then(|| percentiles(histogram))
}

/// A percentile (0–100) in milliseconds, `None` when empty.
pub fn percentile_ms(histogram: &Histogram<u64>, percentile: f64) -> Option<f64> {
    (!histogram.is_empty()).then(|| ms(histogram.value_at_percentile(percentile)))
}

/// V2 + deflate, base64: the form HdrHistogram's own tools read.
pub fn encode(histogram: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new().serialize(histogram, &mut bytes).expect("serializing into a Vec cannot fail");
    BASE64.encode(bytes)
}

/// Inverse of [`encode`].
pub fn decode(text: &str) -> anyhow::Result<Histogram<u64>> {
    let bytes = BASE64.decode(text.trim())?;
    let histogram: Histogram<u64> = Deserializer::new().deserialize(&mut bytes.as_slice())?;
    Ok(histogram)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encode_round_trips() {
        let mut h = new_latency_histogram();
        for v in [1, 250, 1_000, 2_000_000] {
            record(&mut h, Duration::from_micros(v));
        }
        let back = decode(&encode(&h)).unwrap();
        assert_eq!(back.len(), 4);
        assert_eq!(back.max(), h.max());
        assert_eq!(percentiles(&back), percentiles(&h));
    }

    proptest! {
        /// Merged per-worker histograms equal one histogram of everything.
        #[test]
        fn merge_equals_single(parts in prop::collection::vec(prop::collection::vec(1u64..10_000_000, 0..50), 1..6)) {
            let mut merged = new_latency_histogram();
            let mut single = new_latency_histogram();
            for part in &parts {
                let mut h = new_latency_histogram();
                for v in part {
                    record(&mut h, Duration::from_micros(*v));
                    record(&mut single, Duration::from_micros(*v));
                }
                merged.add(&h).unwrap();
            }
            prop_assert_eq!(merged.len(), single.len());
            prop_assert_eq!(percentiles(&merged), percentiles(&single));
        }
    }
}
