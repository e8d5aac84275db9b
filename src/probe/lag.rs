//! The projection-lag probe (`[projection]`): for a sampled fraction of acknowledged
//! commands, poll the named query with the command's key until the `until` predicate
//! holds. Lag = send time of the first matching poll − the command's acknowledgement,
//! so its resolution is the poll interval. Probes still unanswered at `timeout` are
//! `late`. Probe polls are not part of the query figures; they are counted as probe load.
//!
//! Once a probe has waited `RELATIVE_RESOLUTION` poll intervals, it polls every
//! 1/`RELATIVE_RESOLUTION` of the time waited so far instead (5 %): a read model seconds
//! behind is not hammered by hundreds of probes every few milliseconds (which would
//! slow the very projectors being measured), and a lag of L is still known to within
//! max(poll interval, L/20).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::SeedableRng as _;
use rand::rngs::SmallRng;
use serde_json::Value;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::generator::executor::{Executed, Executor, Outcome};
use crate::generator::{Gauges, LAG_LATE};
use crate::results::histogram::{new_latency_histogram, record};
use crate::scenario::template::RenderContext;
use crate::scenario::{Predicate, PredicateOp, ProjectionSpec};
use crate::target::Target;

/// Probes running at once; a command sampled while all are busy is counted as skipped.
const MAX_CONCURRENT_PROBES: usize = 512;
/// A probe that has waited longer than this many poll intervals polls every 1/this of
/// the time waited: the lag's resolution becomes relative (5 %).
pub const RELATIVE_RESOLUTION: u32 = 20;

/// One probe's outcome.
#[derive(Debug, Clone, Copy)]
pub struct LagRecord {
    /// The command's acknowledgement.
    pub acked: Instant,
    /// `None` when the read model did not show it within the timeout.
    pub lag: Option<Duration>,
}

/// Starts probes for sampled commands; shared by every operation task.
pub struct LagProbe<T> {
    executor: Arc<Executor<T>>,
    spec: ProjectionSpec,
    /// Per operation index: is it a probed command?
    probed: Vec<bool>,
    /// Sampling threshold on a 64-bit hash of the sequence number.
    threshold: u64,
    seed: u64,
    slots: Arc<Semaphore>,
    records: mpsc::Sender<LagRecord>,
    pub tracker: TaskTracker,
    pub abort: CancellationToken,
    pub polls: AtomicU64,
    pub poll_errors: AtomicU64,
    pub skipped: AtomicU64,
}

impl<T: Target> LagProbe<T> {
    pub fn new(
        executor: Arc<Executor<T>>,
        spec: ProjectionSpec,
        operations: usize,
        seed: u64,
        records: mpsc::Sender<LagRecord>,
    ) -> LagProbe<T> {
        let mut probed = vec![false; operations];
        for &op in &spec.commands {
            probed[op] = true;
        }
        let threshold = (spec.sample.clamp(0.0, 1.0) * u64::MAX as f64) as u64;
        LagProbe {
            executor,
            spec,
            probed,
            threshold,
            seed,
            slots: Arc::new(Semaphore::new(MAX_CONCURRENT_PROBES)),
            records,
            tracker: TaskTracker::new(),
            abort: CancellationToken::new(),
            polls: AtomicU64::new(0),
            poll_errors: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }

    /// Called after every operation: starts a probe when it is a sampled, acknowledged command.
    pub fn after(self: &Arc<Self>, op: usize, key: u64, seq: u64, executed: &Executed) {
        if !self.probed[op] || executed.outcome != Outcome::Ok || !self.sampled(seq) {
            return;
        }
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        // The predicate's value is rendered once, with the command's key, ref and captures.
        let key_text = self.executor.key_text(key);
        let op_ref = self.executor.ref_text(seq);
        let ctx = RenderContext { key: &key_text, op_ref: &op_ref, captures: &executed.captured };
        let expected = self.spec.until.value.render(&ctx, &mut SmallRng::seed_from_u64(seq));
        let (probe, acked, captured) = (self.clone(), executed.done, executed.captured.clone());
        let abort = self.abort.clone();
        self.tracker.spawn(async move {
            let _permit = permit;
            tokio::select! {
                biased;
                _ = abort.cancelled() => {}
                lag = probe.poll_until_visible(key, seq, acked, &expected, &captured) => {
                    let _ = probe.records.send(LagRecord { acked, lag }).await;
                }
            }
        });
    }

    fn sampled(&self, seq: u64) -> bool {
        // A fixed hash of (seed, seq): the same commands are probed in every run with this seed.
        let mut x = seq ^ self.seed.rotate_left(17) ^ 0x9E37_79B9_7F4A_7C15;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        x < self.threshold || self.threshold == u64::MAX
    }

    async fn poll_until_visible(
        &self,
        key: u64,
        seq: u64,
        acked: Instant,
        expected: &str,
        captured: &Vec<(String, String)>,
    ) -> Option<Duration> {
        let deadline = acked + self.spec.timeout;
        loop {
            let sent = Instant::now();
            if sent > deadline {
                return None;
            }
            self.polls.fetch_add(1, Ordering::Relaxed);
            match self.executor.fetch(self.spec.query, key, seq, Some(captured)).await {
                Ok(reply) if holds(&self.spec.until, &reply.body, expected) => {
                    return Some(sent.saturating_duration_since(acked));
                }
                Ok(_) => {}
                Err(_) => {
                    self.poll_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            let interval = self.spec.poll_interval.max(sent.saturating_duration_since(acked) / RELATIVE_RESOLUTION);
            tokio::time::sleep_until(tokio::time::Instant::from_std(sent + interval)).await;
        }
    }
}

/// Does the answer satisfy `POINTER OP VALUE`?
pub fn holds(predicate: &Predicate, body: &[u8], expected: &str) -> bool {
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let Some(found) = json.pointer(&predicate.pointer) else {
        return false;
    };
    match predicate.op {
        PredicateOp::Contains => match found {
            Value::Array(items) => items.iter().any(|item| equals(item, expected)),
            Value::String(s) => s.contains(expected),
            _ => false,
        },
        PredicateOp::Equal => equals(found, expected),
        PredicateOp::GreaterOrEqual => match (number(found), expected.trim().parse::<f64>()) {
            (Some(a), Ok(b)) => a >= b,
            _ => false,
        },
    }
}

fn equals(value: &Value, expected: &str) -> bool {
    match value {
        Value::String(s) => s == expected,
        other => {
            number(other).zip(expected.trim().parse::<f64>().ok()).is_some_and(|(a, b)| a == b) || *other == expected
        }
    }
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Gathers probe records: the lag histogram, late probes, and every record (compact)
/// for the per-second series and recovery times.
pub struct LagFigures {
    pub histogram: Histogram<u64>,
    pub probes: u64,
    pub late: u64,
    /// (acknowledgement offset from load start, lag) per probe, in arrival order.
    pub records: Vec<(Duration, Option<Duration>)>,
}

pub async fn collect(start: Instant, mut records: mpsc::Receiver<LagRecord>, gauges: Arc<Gauges>) -> LagFigures {
    let mut figures = LagFigures { histogram: new_latency_histogram(), probes: 0, late: 0, records: Vec::new() };
    while let Some(record_) = records.recv().await {
        figures.probes += 1;
        let live = match record_.lag {
            Some(lag) => {
                record(&mut figures.histogram, lag);
                (lag.as_micros() as u64).max(1)
            }
            None => {
                figures.late += 1;
                LAG_LATE
            }
        };
        gauges.last_lag_us.store(live, Ordering::Relaxed);
        figures.records.push((record_.acked.saturating_duration_since(start), record_.lag));
    }
    figures
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::template::Template;

    fn predicate(pointer: &str, op: PredicateOp) -> Predicate {
        Predicate { pointer: pointer.into(), op, value: Template::literal("x") }
    }

    #[test]
    fn predicates() {
        let body = br#"{"refs": ["a", "b"], "version": 7, "name": "acct-1"}"#;
        assert!(holds(&predicate("/refs", PredicateOp::Contains), body, "b"));
        assert!(!holds(&predicate("/refs", PredicateOp::Contains), body, "c"));
        assert!(holds(&predicate("/version", PredicateOp::GreaterOrEqual), body, "7"));
        assert!(!holds(&predicate("/version", PredicateOp::GreaterOrEqual), body, "8"));
        assert!(holds(&predicate("/version", PredicateOp::Equal), body, "7"));
        assert!(holds(&predicate("/name", PredicateOp::Equal), body, "acct-1"));
        assert!(!holds(&predicate("/missing", PredicateOp::Equal), body, "7"));
        assert!(!holds(&predicate("/refs", PredicateOp::Contains), b"not json", "a"));
    }
}
