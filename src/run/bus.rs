//! After the load, with `[bus]`: let the event stream go quiet, then account every
//! acknowledged command against what the bus probe read.

use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use super::BusOutcome;
use crate::probe::bus::{self, BusProbe};
use crate::probe::ledger::Ledger;

/// Lets the bus drain (until nothing new arrives for a second, or `settle`), then
/// accounts every acknowledged command against what the probe saw.
pub async fn finish(
    probe: BusProbe,
    ledger: &Ledger,
    settle: Duration,
    start: Instant,
    started_at: SystemTime,
    stop: &CancellationToken,
) -> anyhow::Result<BusOutcome> {
    let deadline = Instant::now() + settle;
    let (mut last, mut quiet_since) = (probe.messages_read(), Instant::now());
    while !stop.is_cancelled() && Instant::now() < deadline && quiet_since.elapsed() < Duration::from_secs(1) {
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
    let (seen, sampled) = probe.finish().await?;
    let mut e2e = crate::results::histogram::new_latency_histogram();
    for (seq, broker_ms) in &seen.broker_ms {
        if let Some(acked) = ledger.sampled_acks.get(seq) {
            let acked_wall = started_at + acked.saturating_duration_since(start);
            let acked_ms = acked_wall.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
            let micros = (broker_ms - acked_ms).max(0) as u64 * 1000;
            crate::results::histogram::record(&mut e2e, Duration::from_micros(micros));
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
    })
}
