//! The read-your-writes probe (`[staleness]`, issue 14): for a sampled share of
//! acknowledged commands, one read of the command's query at each of a set of delays
//! after the acknowledgement, judged with the lag probe's predicate. Per delay t, the
//! share of fresh answers estimates P(fresh | t), the t-visibility curve of
//! Probabilistically Bounded Staleness (Bailis et al., VLDB 2012).
//!
//! Each sampled command's reads are spaced by its own acknowledgement, so reads of
//! different commands never pile up on one instant. Their load is counted apart and
//! kept out of the query figures, as lag probe polls are. Commands acknowledged in the
//! warmup are not sampled.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::SeedableRng as _;
use rand::rngs::SmallRng;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::operation::{Executed, Executor, Outcome, Probe};
use crate::scenario::StalenessSpec;
use crate::scenario::template::RenderContext;
use crate::target::Target;

/// Sampled commands being read at once; one sampled while all are busy is skipped.
const MAX_CONCURRENT: usize = 512;

/// Counts per delay, filled by the probes as their reads come back.
#[derive(Debug, Default)]
struct DelayCounts {
    reads: AtomicU64,
    fresh: AtomicU64,
    errors: AtomicU64,
    /// Sum over reads of (actual send − acknowledgement), µs: timers are not exact.
    actual_us: AtomicU64,
}

/// P(fresh | t) at one delay, with counts.
#[derive(Debug, Clone, PartialEq)]
pub struct DelayFigures {
    pub delay: Duration,
    /// Reads that got an answer (errors are counted apart, not as stale).
    pub reads: u64,
    pub fresh: u64,
    pub errors: u64,
    /// Mean delay actually waited before the read was sent.
    pub mean_actual: Duration,
}

pub struct StalenessProbe<T> {
    executor: Arc<Executor<T>>,
    spec: StalenessSpec,
    probed: Vec<bool>,
    sampling: super::Sampling,
    /// Commands acknowledged before this are in the warmup: not sampled.
    measured_from: Instant,
    counts: Vec<DelayCounts>,
    slots: Arc<Semaphore>,
    pub tracker: TaskTracker,
    pub abort: CancellationToken,
    runtime: tokio::runtime::Handle,
    pub sampled: AtomicU64,
    pub skipped: AtomicU64,
}

impl<T: Target> StalenessProbe<T> {
    /// Must be called on the run's runtime (its reads run there).
    pub fn new(
        executor: Arc<Executor<T>>,
        spec: StalenessSpec,
        operations: usize,
        seed: u64,
        measured_from: Instant,
    ) -> StalenessProbe<T> {
        let mut probed = vec![false; operations];
        for &op in &spec.commands {
            probed[op] = true;
        }
        let counts = spec.delays.iter().map(|_| DelayCounts::default()).collect();
        // Not the lag probe's sampling: the two probes pick different commands.
        let sampling = super::Sampling::new(spec.sample, seed ^ 0x5A17_5EED);
        StalenessProbe {
            executor,
            spec,
            probed,
            sampling,
            measured_from,
            counts,
            slots: Arc::new(Semaphore::new(MAX_CONCURRENT)),
            tracker: TaskTracker::new(),
            abort: CancellationToken::new(),
            runtime: tokio::runtime::Handle::current(),
            sampled: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }

    /// Called after every operation: starts the reads of a sampled, acknowledged command.
    pub fn after(self: &Arc<Self>, op: usize, seq: u64, executed: &Executed) {
        if !self.probed[op]
            || executed.outcome != Outcome::Ok
            || executed.done < self.measured_from
            || !self.sampling.picks(seq)
        {
            return;
        }
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        self.sampled.fetch_add(1, Ordering::Relaxed);
        let key_text = self.executor.key_text(executed.key);
        let op_ref = self.executor.ref_text(seq);
        let ctx = RenderContext { key: &key_text, op_ref: &op_ref, captures: &executed.captured };
        let expected = self.spec.until.value.render(&ctx, &mut SmallRng::seed_from_u64(seq));
        let (probe, key, acked, captured) = (self.clone(), executed.key, executed.done, executed.captured.clone());
        let abort = self.abort.clone();
        self.tracker.spawn_on(
            async move {
                let _permit = permit;
                tokio::select! {
                    biased;
                    _ = abort.cancelled() => {}
                    _ = probe.read_at_delays(key, seq, acked, &expected, &captured) => {}
                }
            },
            &self.runtime,
        );
    }

    async fn read_at_delays(
        &self,
        key: u64,
        seq: u64,
        acked: Instant,
        expected: &str,
        captured: &Vec<(String, String)>,
    ) {
        for (delay, counts) in self.spec.delays.iter().zip(&self.counts) {
            let due = acked + *delay;
            if due > Instant::now() {
                tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
            }
            let sent = Instant::now();
            let waited = sent.saturating_duration_since(acked);
            match self.executor.fetch(Probe::Staleness, self.spec.query, key, seq, Some(captured)).await {
                Ok(reply) => {
                    counts.reads.fetch_add(1, Ordering::Relaxed);
                    counts.actual_us.fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
                    if self.spec.until.holds(&reply.body, expected) {
                        counts.fresh.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(_) => {
                    counts.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Reads still to come, at most: each sampled command's last delay after its ack.
    pub fn longest_delay(&self) -> Duration {
        self.spec.delays.iter().copied().max().unwrap_or_default()
    }

    /// The figures per delay, in the order of `delays`.
    pub fn figures(&self) -> Vec<DelayFigures> {
        self.spec
            .delays
            .iter()
            .zip(&self.counts)
            .map(|(delay, c)| {
                let reads = c.reads.load(Ordering::Relaxed);
                let actual = c.actual_us.load(Ordering::Relaxed);
                DelayFigures {
                    delay: *delay,
                    reads,
                    fresh: c.fresh.load(Ordering::Relaxed),
                    errors: c.errors.load(Ordering::Relaxed),
                    mean_actual: Duration::from_micros(actual.checked_div(reads).unwrap_or(0)),
                }
            })
            .collect()
    }
}

/// The 95 % Wilson score interval of a proportion `k / n` (sound at 0 and n, unlike
/// the normal approximation): `None` when n = 0.
pub fn wilson_interval(k: u64, n: u64) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    const Z: f64 = 1.959_963_984_540_054;
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let z2 = Z * Z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// `k / n` with its 95 % Wilson interval, as result.json holds them: (share, low, high),
/// all `None` when n = 0.
pub fn share_with_interval(k: u64, n: u64) -> (Option<f64>, Option<f64>, Option<f64>) {
    let interval = wilson_interval(k, n);
    ((n > 0).then(|| k as f64 / n as f64), interval.map(|i| i.0), interval.map(|i| i.1))
}

/// The smallest delay whose P(fresh) reaches `share` and stays there at every longer
/// delay (a noisy dip after it would make the point meaningless).
pub fn visible_at(points: &[DelayFigures], share: f64) -> Option<Duration> {
    let mut sorted: Vec<&DelayFigures> = points.iter().filter(|p| p.reads > 0).collect();
    sorted.sort_by_key(|p| p.delay);
    let reaches = |p: &&DelayFigures| p.fresh as f64 / p.reads as f64 >= share;
    let first_of_tail = sorted.iter().rposition(|p| !reaches(p)).map_or(0, |i| i + 1);
    sorted.get(first_of_tail).map(|p| p.delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(ms: u64, reads: u64, fresh: u64) -> DelayFigures {
        DelayFigures { delay: Duration::from_millis(ms), reads, fresh, errors: 0, mean_actual: Duration::ZERO }
    }

    #[test]
    fn wilson_interval_brackets_the_proportion() {
        let (low, high) = wilson_interval(50, 100).unwrap();
        assert!((low - 0.404).abs() < 0.002 && (high - 0.596).abs() < 0.002, "{low} {high}");
        let (low, high) = wilson_interval(0, 20).unwrap();
        assert_eq!(low, 0.0);
        assert!((high - 0.161).abs() < 0.002, "{high}");
        let (low, high) = wilson_interval(200, 200).unwrap();
        assert!(low > 0.98 && (high - 1.0).abs() < 1e-12);
        assert_eq!(wilson_interval(0, 0), None);
    }

    #[test]
    fn visibility_point_is_where_the_curve_stays_above() {
        let points =
            [point(0, 100, 0), point(25, 100, 40), point(50, 100, 99), point(75, 100, 98), point(100, 100, 100)];
        assert_eq!(visible_at(&points, 0.99), Some(Duration::from_millis(100)));
        assert_eq!(visible_at(&points, 0.95), Some(Duration::from_millis(50)));
        assert_eq!(visible_at(&points, 1.0), Some(Duration::from_millis(100)));
        let plateau = [point(0, 100, 0), point(1000, 100, 80)];
        assert_eq!(visible_at(&plateau, 0.99), None);
    }
}
