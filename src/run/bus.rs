//! After the load, with `[bus]`: let the event stream go quiet and the consumer groups
//! drain, then account every acknowledged command against what the bus probe read, and
//! give each group's lag as a backlog source (kind `kafka`, issue 33).

use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use super::BusOutcome;
use crate::probe::backlog::BacklogStats;
use crate::probe::backlog::figures::{self, Described, Sample};
use crate::probe::backlog::sources::Reading;
use crate::probe::bus::{self, BusProbe, GroupReading};
use crate::probe::ledger::Ledger;
use crate::scenario::BusSpec;

/// Lets the bus drain (until nothing new arrives for a second and no consumer group is
/// still draining, or `settle`), then accounts every acknowledged command against what
/// the probe saw.
pub async fn finish(
    probe: BusProbe,
    ledger: &Ledger,
    settle: Duration,
    (start, load_end): (Instant, Instant),
    started_at: SystemTime,
    spec: &BusSpec,
    stop: &CancellationToken,
) -> anyhow::Result<BusOutcome> {
    let deadline = Instant::now() + settle;
    let load_end_s = load_end.saturating_duration_since(start).as_secs_f64();
    let (mut last, mut quiet_since) = (probe.messages_read(), Instant::now());
    while !stop.is_cancelled()
        && Instant::now() < deadline
        && (quiet_since.elapsed() < Duration::from_secs(1) || probe.groups_draining(load_end_s))
    {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        let now = probe.messages_read();
        if now != last {
            (last, quiet_since) = (now, Instant::now());
        }
    }
    let (seen, mut sampled) = probe.finish().await?;
    let backlog = std::mem::take(&mut sampled.readings)
        .into_iter()
        .map(|(group, readings)| group_backlog(spec, &group, &readings, load_end_s))
        .collect();
    let mut e2e = crate::measure::histogram::new_latency_histogram();
    for (seq, broker_ms) in &seen.broker_ms {
        if let Some(acked) = ledger.sampled_acks.get(seq) {
            let acked_wall = started_at + acked.saturating_duration_since(start);
            let acked_ms = acked_wall.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
            let micros = (broker_ms - acked_ms).max(0) as u64 * 1000;
            crate::measure::histogram::record(&mut e2e, Duration::from_micros(micros));
        }
    }
    Ok(BusOutcome {
        counts: bus::account(&seen, ledger),
        messages: seen.messages,
        foreign: seen.foreign,
        timestamp_type: seen.timestamp_type,
        e2e,
        consumer_lag: sampled.lag,
        placed: seen.placed,
        committed: sampled.committed,
        backlog,
    })
}

/// A consumer group's lag as a backlog source: named after the group, read every second,
/// its committed offsets' sum as progress (their growth per second is the group's rate),
/// its lag in seconds the estimate `bus.consumer_lag` gives (from the log-end timeline).
fn group_backlog(spec: &BusSpec, group: &str, readings: &[GroupReading], load_end_s: f64) -> BacklogStats {
    let first_error = readings.iter().find_map(|r| r.reading.as_ref().err().cloned());
    let samples: Vec<Sample> = readings
        .iter()
        .map(|r| Sample {
            t_s: r.t_s,
            reading: r.reading.as_ref().ok().map(|&(backlog, committed, seconds)| Reading {
                backlog,
                progress: Some(committed),
                pending: None,
                lag_s: Some(seconds),
            }),
        })
        .collect();
    let source = Described {
        name: group,
        kind: "kafka",
        url: &spec.brokers,
        every: bus::LAG_EVERY,
        // Every known sample has its seconds (0 when caught up).
        lag_unknown: "no sample could be read",
        stale: None,
    };
    figures::figures_of(&source, &samples, load_end_s, first_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 33: a group's readings as a `kafka` backlog source: an unknown sample stays
    /// unknown (never 0) and breaks no rate; progress is the committed offsets' sum.
    #[test]
    fn issue33_a_groups_lag_is_a_kafka_backlog() {
        let spec = BusSpec {
            brokers: "127.0.0.1:9092".into(),
            topic: "events".into(),
            ref_pointer: "/ref".into(),
            consumer_groups: vec!["view".into()],
            client: Vec::new(),
            timeout: Duration::from_secs(1),
        };
        let at = |t_s: f64, reading: Result<(u64, i64, f64), &str>| GroupReading {
            t_s,
            reading: reading.map_err(String::from),
        };
        let readings = [
            at(1.0, Ok((50, 100, 0.5))),
            at(2.0, Err("committed offsets: timed out")),
            at(3.0, Ok((20, 400, 1.5))),
            at(4.0, Ok((0, 520, 0.0))),
        ];
        let stats = group_backlog(&spec, "view", &readings, 2.5);
        assert_eq!((stats.name.as_str(), stats.kind.as_str(), stats.url.as_str()), ("view", "kafka", "127.0.0.1:9092"));
        assert_eq!((stats.max, stats.max_lag_s), (Some(50), Some(1.5)));
        assert_eq!(stats.drained_after_ms, Some(1500.0));
        assert_eq!(stats.unknown_seconds, 1.0);
        assert_eq!(stats.unknown_because.as_deref(), Some("committed offsets: timed out"));
        let backlog: Vec<_> = stats.samples.iter().map(|s| s.backlog).collect();
        assert_eq!(backlog, [Some(50), None, Some(20), Some(0)]);
        let rates: Vec<_> = stats.samples.iter().map(|s| s.applied_per_s).collect();
        assert_eq!(rates, [None, None, Some(150.0), Some(120.0)]);
    }
}
