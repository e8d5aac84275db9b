//! Lag attribution (issue 14): where a command's projection lag comes from.
//!
//! Each lag probe that saw its command gives two times: the acknowledgement and the
//! first poll that showed it (visible). Between them, up to three times the deployment
//! may tell:
//!
//! - **published**: the event's broker timestamp on the `[bus]` topic;
//! - **consumed**: when the projector took the event: the read model's own
//!   `[projection.stages] received_at`, else when the `[bus]` consumer group's committed
//!   offset passed the event's offset (to `bus::COMMITTED_EVERY` plus the group's commit
//!   interval);
//! - **applied**: when the projector wrote it, the read model's `applied_at`.
//!
//! They cut the lag into the stages **publish** (ack → published: outbox relay,
//! producer), **consume** (published → consumed: waiting in the topic for the group),
//! **project** (consumed → applied: the projector's work) and **read** (applied →
//! visible: the read store, and the probe's poll resolution). A time the deployment does
//! not tell merges its two stages (`publish+consume`). Times out of order (clock skew
//! between hosts, a time of another event) are clamped between their neighbours, so
//! the stages of a probe always add up to its lag, and counted.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::bus::{CommittedTimeline, Placed, consumed_at};
use super::lag_figures::SeenProbe;
use crate::measure::histogram::{new_latency_histogram, percentile_ms, record};

/// The stages in order, between the times that bound them.
pub const STAGES: [&str; 4] = ["publish", "consume", "project", "read"];
/// A time more than this out of order is counted as reordered (broker timestamps are
/// whole milliseconds). The read model's own times can legitimately pass `visible`: the
/// lag is the send time of the poll that saw the event, and the target may have applied
/// it while that poll was on its way (the probe's resolution), so some reorders against
/// the read are expected on a busy host.
const ORDER_TOLERANCE_US: i64 = 1_000;

/// Which of the three inner times this run can know, and why not.
#[derive(Debug, Clone, Default)]
pub struct Sources<'a> {
    /// `[bus]`: the lag probe's events on the topic.
    pub placed: Option<&'a HashMap<u64, Placed>>,
    /// The traced group's committed offsets (when no `received_at` is told).
    pub committed: Option<&'a CommittedTimeline>,
    pub received_told: bool,
    pub applied_told: bool,
}

impl Sources<'_> {
    /// Per inner time (published, consumed, applied): known, or why not.
    fn known(&self) -> [Result<(), &'static str>; 3] {
        [
            if self.placed.is_some() {
                Ok(())
            } else {
                Err("published: no [bus] to read the event's broker timestamp")
            },
            if self.received_told || (self.committed.is_some() && self.placed.is_some()) {
                Ok(())
            } else {
                Err("consumed: no [projection.stages] received_at, and no [bus] consumer group to follow")
            },
            if self.applied_told { Ok(()) } else { Err("applied: no [projection.stages] applied_at") },
        ]
    }
}

/// One stage's figures over every attributed probe.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StageStats {
    /// `publish`, `consume`, `project`, `read`, or merged ones (`publish+consume`).
    pub name: String,
    /// Mean time in this stage, ms.
    pub mean_ms: f64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
    /// Its part of the summed lag of the attributed probes.
    pub share: f64,
}

/// Per second of acknowledgement: the mean of each stage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AttributionRow {
    /// Seconds since the start of the load.
    pub t_s: u64,
    /// Probes attributed in this second.
    pub probes: u64,
    /// In the order of `LagAttribution::stages`.
    pub mean_ms: Vec<f64>,
}

/// `projection.attribution` in result.json.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LagAttribution {
    /// In the order a command's event goes through them; empty when nothing splits.
    pub stages: Vec<StageStats>,
    /// The stage with the largest share.
    pub dominant: Option<String>,
    /// Probes split into stages.
    pub attributed: u64,
    /// Probes that saw their command but could not be split, per reason.
    pub unattributed: BTreeMap<String, u64>,
    /// The times this deployment does not tell, and why (their stages are merged).
    pub unsplit: Vec<String>,
    /// Times clamped between their neighbours (more than 1 ms out of order).
    pub reordered: u64,
    /// Per second of acknowledgement, the mean of each stage.
    pub series: Vec<AttributionRow>,
}

fn wall_us(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

/// Splits every seen probe's lag. `started_at` is the wall-clock time of load offset 0
/// (what `SeenProbe::acked` counts from).
pub fn attribute(probes: &[SeenProbe], started_at: SystemTime, sources: &Sources) -> LagAttribution {
    let known = sources.known();
    let mut attribution = LagAttribution {
        unsplit: known.iter().filter_map(|k| k.err().map(str::to_owned)).collect(),
        ..LagAttribution::default()
    };
    // Stage k of the result covers the base stages between consecutive known times.
    let mut names = Vec::new();
    let mut current = vec![STAGES[0]];
    for (i, k) in known.iter().enumerate() {
        if k.is_ok() {
            names.push(current.join("+"));
            current.clear();
        }
        current.push(STAGES[i + 1]);
    }
    names.push(current.join("+"));
    if names.len() == 1 {
        return attribution; // nothing known between the ack and the read: nothing to split
    }
    let origin_us = wall_us(started_at);
    let mut histograms: Vec<_> = names.iter().map(|_| new_latency_histogram()).collect();
    let mut sums = vec![0.0f64; names.len()];
    let mut per_second: BTreeMap<u64, (u64, Vec<f64>)> = BTreeMap::new();
    for probe in probes {
        let acked = probe.acked.as_micros() as i64;
        let visible = acked + probe.lag.as_micros() as i64;
        let times = match inner_times(probe, sources, origin_us, &known) {
            Ok(times) => times,
            Err(why) => {
                *attribution.unattributed.entry(why.to_owned()).or_default() += 1;
                continue;
            }
        };
        // ack, the known inner times, visible: clamped into order.
        let mut bounds = vec![acked];
        for at in times.into_iter().flatten() {
            let previous = *bounds.last().expect("starts with the ack");
            let clamped = at.clamp(previous, visible);
            if (clamped - at).abs() > ORDER_TOLERANCE_US {
                attribution.reordered += 1;
            }
            bounds.push(clamped);
        }
        bounds.push(visible);
        attribution.attributed += 1;
        let row = per_second.entry(probe.acked.as_secs()).or_insert_with(|| (0, vec![0.0; names.len()]));
        row.0 += 1;
        for (k, pair) in bounds.windows(2).enumerate() {
            let us = (pair[1] - pair[0]).max(0) as u64;
            record(&mut histograms[k], Duration::from_micros(us));
            sums[k] += us as f64;
            row.1[k] += us as f64;
        }
    }
    let total: f64 = sums.iter().sum();
    let n = attribution.attributed.max(1) as f64;
    attribution.stages = names
        .iter()
        .zip(&histograms)
        .zip(&sums)
        .map(|((name, h), sum)| {
            let at = |p: f64| percentile_ms(h, p).unwrap_or(0.0);
            StageStats {
                name: name.clone(),
                mean_ms: sum / n / 1e3,
                p50_ms: at(50.0),
                p90_ms: at(90.0),
                p99_ms: at(99.0),
                max_ms: at(100.0),
                share: if total > 0.0 { sum / total } else { 0.0 },
            }
        })
        .collect();
    attribution.dominant = (attribution.attributed > 0)
        .then(|| attribution.stages.iter().max_by(|a, b| a.share.total_cmp(&b.share)).map(|s| s.name.clone()))
        .flatten();
    attribution.series = per_second
        .into_iter()
        .map(|(t_s, (probes, sums))| AttributionRow {
            t_s,
            probes,
            mean_ms: sums.iter().map(|s| s / probes as f64 / 1e3).collect(),
        })
        .collect();
    attribution
}

/// The probe's published, consumed and applied times (µs from load start) where known
/// for this run: `None` for a time the run does not know at all, an error when the run
/// knows it in general but not for this probe.
fn inner_times(
    probe: &SeenProbe,
    sources: &Sources,
    origin_us: i64,
    known: &[Result<(), &'static str>; 3],
) -> Result<[Option<i64>; 3], &'static str> {
    if probe.told.other_event && (sources.received_told || sources.applied_told) {
        return Err("the answer's times were of a later event on the key");
    }
    let placed = match sources.placed {
        Some(placed) => Some(placed.get(&probe.seq).ok_or("its event was not seen on the bus")?),
        None => None,
    };
    let published = placed.map(|p| p.broker_ms * 1_000 - origin_us);
    let consumed = if known[1].is_err() {
        None
    } else if sources.received_told {
        Some(probe.told.received_us.ok_or("the read model told no received_at")? - origin_us)
    } else {
        let (placed, committed) = placed.zip(sources.committed).ok_or("no committed offsets")?;
        let at_s = consumed_at(committed, placed.partition, placed.offset)
            .ok_or("the group's committed offset never passed its event")?;
        Some((at_s * 1e6) as i64)
    };
    let applied = if sources.applied_told {
        Some(probe.told.applied_us.ok_or("the read model told no applied_at")? - origin_us)
    } else {
        None
    };
    Ok([published, consumed, applied])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::lag::ToldTimes;

    const ORIGIN_MS: i64 = 1_763_942_400_000;

    fn probe(seq: u64, acked_ms: u64, lag_ms: u64, received_ms: i64, applied_ms: i64) -> SeenProbe {
        SeenProbe {
            seq,
            acked: Duration::from_millis(acked_ms),
            lag: Duration::from_millis(lag_ms),
            told: ToldTimes {
                received_us: Some((ORIGIN_MS + received_ms) * 1000),
                applied_us: Some((ORIGIN_MS + applied_ms) * 1000),
                other_event: false,
            },
        }
    }

    fn origin() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ORIGIN_MS as u64)
    }

    #[test]
    fn four_stages_add_up_to_the_lag() {
        let placed = HashMap::from([(1, Placed { partition: 0, offset: 7, broker_ms: ORIGIN_MS + 1_010 })]);
        let sources = Sources { placed: Some(&placed), received_told: true, applied_told: true, ..Sources::default() };
        // ack 1000, published 1010, received 1040, applied 1070, visible 1075 (ms)
        let a = attribute(&[probe(1, 1_000, 75, 1_040, 1_070)], origin(), &sources);
        let names: Vec<&str> = a.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, STAGES);
        let means: Vec<f64> = a.stages.iter().map(|s| (s.mean_ms * 10.0).round() / 10.0).collect();
        assert_eq!(means, [10.0, 30.0, 30.0, 5.0]);
        assert_eq!(a.attributed, 1);
        assert!(a.unsplit.is_empty());
        assert_eq!(a.dominant.as_deref(), Some("project"), "ties go to the later stage");
        assert_eq!(a.series.len(), 1);
        assert_eq!(a.series[0].t_s, 1);
    }

    #[test]
    fn without_a_bus_publish_and_consume_merge() {
        let sources = Sources { received_told: true, applied_told: true, ..Sources::default() };
        let a = attribute(&[probe(1, 0, 50, 5, 45), probe(2, 0, 60, 5, 55)], origin(), &sources);
        let names: Vec<&str> = a.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["publish+consume", "project", "read"]);
        assert_eq!(a.dominant.as_deref(), Some("project"));
        assert_eq!(a.unsplit.len(), 1, "{:?}", a.unsplit);
        let sum: f64 = a.stages.iter().map(|s| s.share).sum();
        assert!((sum - 1.0).abs() < 1e-9);
    }

    #[test]
    fn nothing_known_splits_nothing_and_says_why() {
        let a = attribute(&[probe(1, 0, 50, 5, 45)], origin(), &Sources::default());
        assert!(a.stages.is_empty());
        assert_eq!(a.unsplit.len(), 3);
        assert_eq!(a.dominant, None);
    }

    #[test]
    fn times_out_of_order_are_clamped_and_counted() {
        let sources = Sources { received_told: true, applied_told: true, ..Sources::default() };
        // applied told after the poll saw it (another host's clock 20 ms ahead)
        let a = attribute(&[probe(1, 0, 50, 30, 70)], origin(), &sources);
        assert_eq!(a.reordered, 1);
        let total: f64 = a.stages.iter().map(|s| s.mean_ms).sum();
        assert!((total - 50.0).abs() < 0.01, "{total}");
    }

    #[test]
    fn probes_without_their_times_are_counted_apart() {
        let placed = HashMap::new();
        let sources = Sources { placed: Some(&placed), received_told: true, ..Sources::default() };
        let a = attribute(&[probe(9, 0, 50, 5, 45)], origin(), &sources);
        assert_eq!(a.attributed, 0);
        assert_eq!(a.unattributed.get("its event was not seen on the bus"), Some(&1));
    }
}
