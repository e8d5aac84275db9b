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
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::live::{Gauges, LAG_LATE};
use crate::operation::{Executed, Executor, Outcome, Probe};
use crate::results::histogram::{new_latency_histogram, record};
use crate::scenario::ProjectionSpec;
use crate::scenario::template::RenderContext;
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
    /// `probes_running` is kept here, for the progress display.
    gauges: Arc<Gauges>,
    pub tracker: TaskTracker,
    pub abort: CancellationToken,
    /// The run's runtime: probes outlive the generator threads whose operations start them.
    runtime: tokio::runtime::Handle,
    pub polls: AtomicU64,
    pub poll_errors: AtomicU64,
    pub skipped: AtomicU64,
    /// Why the predicate may never hold, from the first late probe's last answer.
    pub misfit: std::sync::OnceLock<String>,
}

impl<T: Target> LagProbe<T> {
    /// Must be called on the run's runtime (its probes run there).
    pub fn new(
        executor: Arc<Executor<T>>,
        spec: ProjectionSpec,
        operations: usize,
        seed: u64,
        records: mpsc::Sender<LagRecord>,
        gauges: Arc<Gauges>,
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
            gauges,
            tracker: TaskTracker::new(),
            abort: CancellationToken::new(),
            runtime: tokio::runtime::Handle::current(),
            polls: AtomicU64::new(0),
            poll_errors: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            misfit: std::sync::OnceLock::new(),
        }
    }

    /// Called after every operation: starts a probe when it is a sampled, acknowledged command.
    pub fn after(self: &Arc<Self>, op: usize, seq: u64, executed: &Executed) {
        // The key the command ended up on (a create's new id, for `creates_key`).
        let key = executed.key;
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
        let running = Running::enter(self.gauges.clone());
        self.tracker.spawn_on(
            async move {
                let (_permit, _running) = (permit, running);
                tokio::select! {
                    biased;
                    _ = abort.cancelled() => {}
                    lag = probe.poll_until_visible(key, seq, acked, &expected, &captured) => {
                        let _ = probe.records.send(LagRecord { acked, lag }).await;
                    }
                }
            },
            &self.runtime,
        );
    }

    fn sampled(&self, seq: u64) -> bool {
        super::sampled(seq, self.seed, self.threshold)
    }

    /// On the first late probe: why might `until` never hold on such answers? (issue 12:
    /// a predicate for plain lists on a list of objects silently made every probe late.)
    fn explain_late(&self, last: Option<&crate::target::Reply>) {
        if self.misfit.get().is_some() {
            return;
        }
        let query = self.executor.op_name(self.spec.query);
        let why = match last {
            None => return,
            Some(reply) => match serde_json::from_slice::<serde_json::Value>(&reply.body) {
                Err(_) if (200..300).contains(&reply.status) => {
                    format!("its answer (status {}) is not JSON", reply.status)
                }
                Err(_) => return, // a 404 while the read model catches up: just late
                Ok(json) => match super::shape::predicate_misfit(&self.spec.until, &json) {
                    Some(why) if (200..300).contains(&reply.status) => why,
                    _ => return,
                },
            },
        };
        let why = format!("a lag probe was late and `[projection] until` may never hold on `{query}`: {why}");
        // Shown live too, so a long run can be stopped early.
        let _ = self.gauges.warning.set(why.clone());
        let _ = self.misfit.set(why);
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
        let mut last_answer = None;
        loop {
            let sent = Instant::now();
            if sent > deadline {
                self.explain_late(last_answer.as_ref());
                return None;
            }
            self.polls.fetch_add(1, Ordering::Relaxed);
            match self.executor.fetch(Probe::Lag, self.spec.query, key, seq, Some(captured)).await {
                Ok(reply) if self.spec.until.holds(&reply.body, expected) => {
                    return Some(sent.saturating_duration_since(acked));
                }
                Ok(reply) => last_answer = Some(reply),
                Err(_) => {
                    self.poll_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            let interval = self.spec.poll_interval.max(sent.saturating_duration_since(acked) / RELATIVE_RESOLUTION);
            tokio::time::sleep_until(tokio::time::Instant::from_std(sent + interval)).await;
        }
    }
}

/// Counts a probe in `Gauges::probes_running` while it lives (finished or aborted).
struct Running(Arc<Gauges>);

impl Running {
    fn enter(gauges: Arc<Gauges>) -> Running {
        gauges.probes_running.fetch_add(1, Ordering::Relaxed);
        Running(gauges)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.probes_running.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Gathers probe records: the lag histogram, late probes, and every record (compact)
/// for the per-second series and recovery times.
pub struct LagFigures {
    /// Every probe's lag; a late one at the probe timeout (issue 12: a censored value, so
    /// the percentiles, the per-second series and the SLO all tell the same story).
    pub histogram: Histogram<u64>,
    pub probes: u64,
    pub late: u64,
    /// (acknowledgement offset from load start, lag) per probe, in arrival order; `None`
    /// for a late probe (recovery times need to know it was not seen).
    pub records: Vec<(Duration, Option<Duration>)>,
}

/// Receives probe records until every probe is done; `timeout` is the probe timeout, the
/// value late probes are recorded at.
pub async fn collect(
    start: Instant,
    timeout: Duration,
    mut records: mpsc::Receiver<LagRecord>,
    gauges: Arc<Gauges>,
) -> LagFigures {
    let mut figures = LagFigures { histogram: new_latency_histogram(), probes: 0, late: 0, records: Vec::new() };
    while let Some(record_) = records.recv().await {
        figures.probes += 1;
        let live = match record_.lag {
            Some(lag) => {
                record(&mut figures.histogram, lag);
                (lag.as_micros() as u64).max(1)
            }
            None => {
                record(&mut figures.histogram, timeout);
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

    /// Issue 12: a late probe is a censored value, recorded at the timeout; its record
    /// stays `None` (recovery times need to know it was never seen).
    #[tokio::test]
    async fn late_probes_are_recorded_at_the_timeout() {
        let (tx, rx) = mpsc::channel(4);
        let start = Instant::now();
        tx.send(LagRecord { acked: start, lag: Some(Duration::from_millis(20)) }).await.unwrap();
        tx.send(LagRecord { acked: start, lag: None }).await.unwrap();
        drop(tx);
        let gauges = Arc::new(Gauges::default());
        let figures = collect(start, Duration::from_secs(2), rx, gauges.clone()).await;
        assert_eq!((figures.probes, figures.late, figures.histogram.len()), (2, 1, 2));
        assert!(figures.histogram.equivalent(figures.histogram.max(), 2_000_000));
        assert_eq!(figures.records[1].1, None);
        assert_eq!(gauges.last_lag_us.load(Ordering::Relaxed), LAG_LATE);
    }
}
