//! HdrHistogram helpers: one shape for every latency in the harness (microseconds,
//! 1 µs to 1 h, 3 significant digits), its summary in milliseconds, and the
//! V2 + deflate + base64 encoding used in result.json and .hlog files.
//!
//! Decoding checks an encoded histogram before the hdrhistogram crate sees it (issue
//! 32): the crate allocates whatever payload length a header claims, so a 60-character
//! forged line claiming 4 GiB aborted `merge` and `compare`. [`decode`] holds every
//! input to the bounds in [`limits`]: the text's length, the compressed length against
//! the bytes present, the deflate output (a zlib bomb stops at the bound), the payload
//! length against the bytes present, and the histogram's shape (at most the range and
//! precision cqrs-bench writes, so the counts array is at most [`limits::MAX_COUNTS`]).

use std::io::Read as _;
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Latency summary; every figure in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Percentiles {
    /// Smallest sample.
    pub min: f64,
    /// Mean of the samples.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest sample.
    pub max: f64,
}

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

/// What an encoded histogram read back may hold (issue 32). Every histogram cqrs-bench
/// writes fits well within them: 1 µs to 1 h at 3 significant digits is 23,552 counters,
/// at most 9 bytes each once decompressed (212 KB; a real second is a few hundred bytes).
pub mod limits {
    /// The largest significant-digit precision read (cqrs-bench writes 3).
    pub const MAX_DIGITS: u32 = 3;
    /// The highest value a histogram read may track: one hour in microseconds.
    pub const MAX_HIGHEST: u64 = super::MAX_MICROS;
    /// The counters of the widest histogram read (1 µs to 1 h, 3 digits).
    pub const MAX_COUNTS: usize = 23_552;
    /// The V2 form (40-byte header and counts) once decompressed: 9 bytes per counter at
    /// most, rounded up to 256 KiB.
    pub const MAX_V2_BYTES: usize = 256 * 1024;
    /// The base64 text of one histogram: 1 MiB (deflate can grow incompressible input a
    /// little, base64 by a third).
    pub const MAX_TEXT_BYTES: usize = 1024 * 1024;
}

/// The V2 cookies the hdrhistogram crate writes and reads (plain and deflated).
const V2_COOKIE: u32 = 0x1c84_9313;
const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9314;
/// cookie, payload length, normalizing offset, digits, lowest, highest, ratio.
const V2_HEADER_BYTES: usize = 4 + 4 + 4 + 4 + 8 + 8 + 8;

/// Inverse of [`encode`]. Errors say what the input claims against what it holds; the
/// caller names the file and line or the field.
pub fn decode(text: &str) -> anyhow::Result<Histogram<u64>> {
    let text = text.trim();
    anyhow::ensure!(
        text.len() <= limits::MAX_TEXT_BYTES,
        "the encoded histogram is {} characters long; at most {} are read",
        text.len(),
        limits::MAX_TEXT_BYTES
    );
    let bytes = BASE64.decode(text).map_err(|e| anyhow::anyhow!("not base64: {e}"))?;
    let v2 = match be_u32(&bytes, 0) {
        Some(V2_COMPRESSED_COOKIE) => inflate(&bytes)?,
        Some(V2_COOKIE) => bytes,
        Some(other) => anyhow::bail!("not an HdrHistogram V2 histogram (cookie {other:#010x})"),
        None => anyhow::bail!("{} bytes: too short for an HdrHistogram", bytes.len()),
    };
    check_v2_header(&v2)?;
    let histogram: Histogram<u64> = Deserializer::new()
        .deserialize(&mut v2.as_slice())
        .map_err(|e| anyhow::anyhow!("not a valid HdrHistogram: {e}"))?;
    Ok(histogram)
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn be_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// The deflated form: cookie, compressed length, zlib data. The length must be what is
/// there, and the output stops at [`limits::MAX_V2_BYTES`] (a zlib bomb).
fn inflate(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let claimed = be_u32(bytes, 4).context("too short for a compressed HdrHistogram")? as usize;
    let present = bytes.len() - 8;
    anyhow::ensure!(
        claimed <= present,
        "the histogram claims {claimed} compressed bytes but holds {present} (forged or cut short)"
    );
    let mut v2 = Vec::new();
    flate2::read::ZlibDecoder::new(&bytes[8..8 + claimed])
        .take(limits::MAX_V2_BYTES as u64 + 1)
        .read_to_end(&mut v2)
        .map_err(|e| anyhow::anyhow!("the compressed histogram does not inflate: {e}"))?;
    anyhow::ensure!(
        v2.len() <= limits::MAX_V2_BYTES,
        "the compressed histogram inflates to more than {} bytes (cqrs-bench's are at most {})",
        limits::MAX_V2_BYTES,
        limits::MAX_V2_BYTES
    );
    anyhow::ensure!(be_u32(&v2, 0) == Some(V2_COOKIE), "the compressed histogram does not hold a V2 histogram");
    Ok(v2)
}

/// The V2 header against the bytes present and the shapes read.
fn check_v2_header(v2: &[u8]) -> anyhow::Result<()> {
    anyhow::ensure!(v2.len() >= V2_HEADER_BYTES, "{} bytes: too short for an HdrHistogram header", v2.len());
    anyhow::ensure!(
        v2.len() <= limits::MAX_V2_BYTES,
        "the histogram is {} bytes; at most {} are read",
        v2.len(),
        limits::MAX_V2_BYTES
    );
    let header = |at| be_u32(v2, at).expect("length checked");
    let claimed = header(4) as usize;
    let present = v2.len() - V2_HEADER_BYTES;
    anyhow::ensure!(
        claimed <= present,
        "the histogram claims a payload of {claimed} bytes but holds {present} (forged or cut short)"
    );
    let digits = header(12);
    let (lowest, highest) = (be_u64(v2, 16).expect("length checked"), be_u64(v2, 24).expect("length checked"));
    anyhow::ensure!(
        digits <= limits::MAX_DIGITS && lowest >= 1 && highest <= limits::MAX_HIGHEST,
        "the histogram's shape ({lowest} to {highest}, {digits} significant digits) is wider than cqrs-bench's \
         (1 to {} µs, {} digits)",
        limits::MAX_HIGHEST,
        limits::MAX_DIGITS
    );
    Ok(())
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

    /// A V2 header: the payload length claimed, the shape, then `payload`.
    fn v2(claimed: u32, digits: u32, highest: u64, payload: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend(V2_COOKIE.to_be_bytes());
        bytes.extend(claimed.to_be_bytes());
        bytes.extend(0u32.to_be_bytes());
        bytes.extend(digits.to_be_bytes());
        bytes.extend(1u64.to_be_bytes());
        bytes.extend(highest.to_be_bytes());
        bytes.extend(1.0f64.to_be_bytes());
        bytes.extend(payload);
        bytes
    }

    fn deflated(v2: &[u8]) -> String {
        use std::io::Write as _;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(v2).unwrap();
        let z = z.finish().unwrap();
        let mut bytes = V2_COMPRESSED_COOKIE.to_be_bytes().to_vec();
        bytes.extend((z.len() as u32).to_be_bytes());
        bytes.extend(z);
        BASE64.encode(bytes)
    }

    fn error_of(text: &str) -> String {
        format!("{:#}", decode(text).unwrap_err())
    }

    /// Issue 32: a header claiming a 4 GiB payload is refused before anything is allocated,
    /// plain or inside the deflated form (the 60-character forged `.hlog` line).
    #[test]
    fn a_forged_payload_length_is_refused() {
        let plain = BASE64.encode(v2(u32::MAX, 3, MAX_MICROS, &[]));
        assert!(plain.len() < 60, "{plain}");
        assert!(error_of(&plain).contains("claims a payload of 4294967295 bytes but holds 0"), "{}", error_of(&plain));
        let inner = deflated(&v2(u32::MAX, 3, MAX_MICROS, &[]));
        assert!(inner.starts_with("HIST") && inner.len() <= 64, "{inner}");
        assert!(error_of(&inner).contains("claims a payload of 4294967295 bytes"), "{}", error_of(&inner));
        // The compressed length itself.
        let mut outer = BASE64.decode(deflated(&v2(2, 3, MAX_MICROS, &[2, 2]))).unwrap();
        outer[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        let outer = BASE64.encode(outer);
        assert!(error_of(&outer).contains("claims 4294967295 compressed bytes"), "{}", error_of(&outer));
    }

    /// A zlib bomb (10 MB of zeros after a valid header) stops at the bound.
    #[test]
    fn a_zlib_bomb_stops_at_the_bound() {
        let bomb = deflated(&v2(10_000_000, 3, MAX_MICROS, &vec![0; 10_000_000]));
        assert!(bomb.len() < 20_000, "{}", bomb.len());
        assert!(error_of(&bomb).contains("inflates to more than 262144 bytes"), "{}", error_of(&bomb));
    }

    /// A shape wider than cqrs-bench's (5 digits to u64::MAX: 50 MB of counters) is refused.
    #[test]
    fn a_wider_shape_is_refused() {
        let wide = deflated(&v2(0, 5, u64::MAX, &[]));
        assert!(error_of(&wide).contains("wider than cqrs-bench's"), "{}", error_of(&wide));
        let text = "x".repeat(limits::MAX_TEXT_BYTES + 1);
        assert!(error_of(&text).contains("at most 1048576 are read"), "{}", error_of(&text));
    }

    /// The bounds hold every histogram cqrs-bench writes: the worst case, every counter
    /// non-zero with the largest count, decodes back.
    #[test]
    fn the_fullest_histogram_is_within_the_bounds() {
        let mut h = new_latency_histogram();
        assert_eq!(h.distinct_values(), limits::MAX_COUNTS);
        for value in h.clone().iter_all().map(|v| v.value_iterated_to()).collect::<Vec<_>>() {
            h.record_n(value, u64::MAX / (limits::MAX_COUNTS as u64 * 2)).unwrap();
        }
        let back = decode(&encode(&h)).unwrap();
        assert_eq!(back, h);
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
