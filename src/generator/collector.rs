//! The one owner of the load's figures. Operations send a `Sample` each over a
//! bounded channel; the collector records them into per-operation HdrHistograms
//! (whole measured window, warmup apart) and per-second interval histograms, and
//! closes a timeline row every second. Nothing here formats or prints.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::mpsc;

use super::executor::Outcome;
use crate::probe::ledger::Ledger;
use crate::results::histogram::{self as hist, new_latency_histogram, record};
use crate::results::model::{IntervalLatency, TimelineRow};
use crate::scenario::OpKind;
use crate::target::Failure;

/// One finished operation.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Index into the scenario's operations.
    pub op: usize,
    pub seq: u64,
    pub key: u64,
    /// Its slot in the schedule (closed model: when the user started it).
    pub intended: Instant,
    pub sent: Instant,
    pub done: Instant,
    pub outcome: Outcome,
    /// The command's `[verify] deltas` change (0 when none, NaN when unknown).
    pub delta: f64,
}

/// Live counters shared by the generator, the collector and the progress display.
#[derive(Debug, Default)]
pub struct Gauges {
    /// A warning for the user while the run goes on (the first late probe's explanation).
    pub warning: std::sync::OnceLock<String>,
    /// Worst per-operation latency p99 of the last closed second, µs (0: none yet).
    pub last_second_p99_us: AtomicU64,
    /// Projection lag of the latest probe, µs (at least 1); `LAG_NONE` before any,
    /// `LAG_LATE` if it timed out.
    pub last_lag_us: AtomicU64,
    pub offered: AtomicU64,
    pub dropped: AtomicU64,
    pub completed: AtomicU64,
    pub errors: AtomicU64,
    pub in_flight: AtomicU64,
    pub backlog: AtomicU64,
    pub max_in_flight: AtomicU64,
    pub max_backlog: AtomicU64,
    /// Lag probes waiting for the read model right now.
    pub probes_running: AtomicU64,
    /// The current `Phase`, as its `u8`.
    phase: AtomicU8,
    /// When the current phase began, µs after `epoch`.
    phase_since_us: AtomicU64,
    epoch: Epoch,
}

/// What the run is doing, for the live progress: after the load it names the step that
/// keeps the run going (issue 12), instead of a load line frozen at `offered 0/s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// `[[setup]]` requests before the load.
    Setup = 0,
    /// The scheduled operations.
    Load = 1,
    /// Waiting for the operations still in flight after the schedule ended.
    Draining = 2,
    /// Waiting for lag probes to see their command or time out.
    Settling = 3,
    /// `[verify]`: reading the read model back.
    Verifying = 4,
    /// `[bus]`: waiting for the event stream to go quiet.
    BusDrain = 5,
}

impl Phase {
    const ALL: [Phase; 6] =
        [Phase::Setup, Phase::Load, Phase::Draining, Phase::Settling, Phase::Verifying, Phase::BusDrain];
}

/// The instant phase times are counted from.
#[derive(Debug)]
struct Epoch(Instant);

impl Default for Epoch {
    fn default() -> Self {
        Epoch(Instant::now())
    }
}

/// `Gauges::last_lag_us` before the first probe.
pub const LAG_NONE: u64 = 0;
/// `Gauges::last_lag_us` when the latest probe timed out.
pub const LAG_LATE: u64 = u64::MAX;

impl Gauges {
    pub fn enter_flight(&self) {
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_in_flight.fetch_max(now, Ordering::Relaxed);
    }
    pub fn leave_flight(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
    pub fn enter_backlog(&self) {
        let now = self.backlog.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_backlog.fetch_max(now, Ordering::Relaxed);
    }
    pub fn leave_backlog(&self) {
        self.backlog.fetch_sub(1, Ordering::Relaxed);
    }

    /// Enters `phase` now.
    pub fn set_phase(&self, phase: Phase) {
        let since = self.epoch.0.elapsed().as_micros() as u64;
        self.phase_since_us.store(since, Ordering::Relaxed);
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    /// The current phase and how long it has lasted.
    pub fn phase(&self) -> (Phase, Duration) {
        let phase = self.phase.load(Ordering::Relaxed);
        let since = Duration::from_micros(self.phase_since_us.load(Ordering::Relaxed));
        let phase = Phase::ALL.into_iter().find(|p| *p as u8 == phase).expect("only set_phase stores a phase");
        (phase, self.epoch.0.elapsed().saturating_sub(since))
    }
}

/// Figures of one operation over a window.
#[derive(Debug, Clone)]
pub struct OpFigures {
    pub latency: Histogram<u64>,
    pub service_time: Histogram<u64>,
    pub count: u64,
    pub ok: u64,
    pub rejected: u64,
    pub errors: u64,
    pub errors_by_class: BTreeMap<&'static str, u64>,
    pub errors_by_status: BTreeMap<u16, u64>,
}

impl Default for OpFigures {
    fn default() -> Self {
        OpFigures {
            latency: new_latency_histogram(),
            service_time: new_latency_histogram(),
            count: 0,
            ok: 0,
            rejected: 0,
            errors: 0,
            errors_by_class: BTreeMap::new(),
            errors_by_status: BTreeMap::new(),
        }
    }
}

impl OpFigures {
    fn record(&mut self, sample: &Sample) {
        self.count += 1;
        match sample.outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Rejected => self.rejected += 1,
            Outcome::Status(code) => {
                self.errors += 1;
                *self.errors_by_class.entry("status").or_default() += 1;
                *self.errors_by_status.entry(code).or_default() += 1;
            }
            Outcome::Failed(failure) => {
                self.errors += 1;
                *self.errors_by_class.entry(failure_class(failure)).or_default() += 1;
            }
        }
        // Latency is known only when the target answered; failures are counted above.
        if sample.outcome.answered() {
            record(&mut self.latency, sample.done.saturating_duration_since(sample.intended));
            record(&mut self.service_time, sample.done.saturating_duration_since(sample.sent));
        }
    }

    /// Adds another window's figures (histograms are added, never averaged).
    pub fn add(&mut self, other: &OpFigures) {
        self.latency.add(&other.latency).expect("same histogram bounds");
        self.service_time.add(&other.service_time).expect("same histogram bounds");
        self.count += other.count;
        self.ok += other.ok;
        self.rejected += other.rejected;
        self.errors += other.errors;
        for (class, n) in &other.errors_by_class {
            *self.errors_by_class.entry(class).or_default() += n;
        }
        for (status, n) in &other.errors_by_status {
            *self.errors_by_status.entry(*status).or_default() += n;
        }
    }
}

fn failure_class(failure: Failure) -> &'static str {
    failure.as_str()
}

/// One operation's latency histogram over one second: an entry of its .hlog.
#[derive(Debug, Clone)]
pub struct Interval {
    pub op: usize,
    /// Seconds since the start of the load.
    pub start_s: u64,
    /// HdrHistogram V2 + deflate, base64 (a full histogram is ~180 KB; this is ~100s of bytes).
    pub encoded: String,
}

/// Everything the collector gathered.
pub struct Collected {
    /// Per operation, measured window (after warmup).
    pub measured: Vec<OpFigures>,
    /// Per operation, during warmup.
    pub warmup: Vec<OpFigures>,
    /// Actual send − intended start, every operation.
    pub send_lag: Histogram<u64>,
    pub timeline: Vec<TimelineRow>,
    /// Non-empty one-second latency histograms, per operation, in time order.
    pub intervals: Vec<Interval>,
    /// Operations completed (any outcome), warmup included.
    pub completed: u64,
    /// What the verified commands did (when `[verify]` is set).
    pub ledger: Option<Ledger>,
}

pub struct Collector {
    start: Instant,
    warmup: Duration,
    names: Vec<String>,
    gauges: Arc<Gauges>,
    /// Per operation: does `[verify]` cover it?
    verified: Vec<bool>,
    collected: Collected,
    /// The second being filled and its per-operation histograms.
    second: u64,
    row: TimelineRow,
    interval: Vec<Histogram<u64>>,
}

impl Collector {
    /// `verified` lists the operations whose refs go into the ledger, `valued` those that
    /// change `[verify] value` (both empty: no ledger);
    /// `time_acks` keeps sampled acknowledgement times for the bus probe.
    pub fn new(
        start: Instant,
        warmup: Duration,
        ops: &[(String, OpKind)],
        gauges: Arc<Gauges>,
        verified: &[usize],
        valued: &[usize],
        time_acks: bool,
    ) -> Collector {
        let n = ops.len();
        let mut verified_ops = vec![false; n];
        for &op in verified.iter().chain(valued) {
            verified_ops[op] = true;
        }
        let ledger = (!verified.is_empty() || !valued.is_empty()).then(|| {
            let mut ledger = if time_acks { Ledger::timing_acks() } else { Ledger::default() };
            ledger.refs_of = (0..n).map(|op| verified.contains(&op)).collect();
            ledger
        });
        Collector {
            start,
            warmup,
            names: ops.iter().map(|(name, _)| name.clone()).collect(),
            gauges,
            verified: verified_ops,
            collected: Collected {
                measured: vec![OpFigures::default(); n],
                warmup: vec![OpFigures::default(); n],
                send_lag: new_latency_histogram(),
                timeline: Vec::new(),
                intervals: Vec::new(),
                completed: 0,
                ledger,
            },
            second: 0,
            row: TimelineRow::default(),
            interval: (0..n).map(|_| new_latency_histogram()).collect(),
        }
    }

    /// Receives samples until every sender is gone, closing a timeline row each second.
    pub async fn run(mut self, mut samples: mpsc::Receiver<Sample>) -> Collected {
        let first_tick = tokio::time::Instant::from_std(self.start) + Duration::from_secs(1);
        let mut ticks = tokio::time::interval_at(first_tick, Duration::from_secs(1));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        loop {
            tokio::select! {
                biased;
                sample = samples.recv() => match sample {
                    Some(sample) => self.record(&sample),
                    None => break,
                },
                _ = ticks.tick() => self.close_second(),
            }
        }
        self.close_second();
        self.collected
    }

    fn record(&mut self, sample: &Sample) {
        self.collected.completed += 1;
        self.gauges.completed.fetch_add(1, Ordering::Relaxed);
        // `achieved` is goodput (issue 12): errors and timeouts are counted beside it.
        if sample.outcome.is_error() {
            self.gauges.errors.fetch_add(1, Ordering::Relaxed);
            self.row.errors += 1;
        } else {
            self.row.achieved += 1;
        }
        record(&mut self.collected.send_lag, sample.sent.saturating_duration_since(sample.intended));
        let in_warmup = sample.intended.saturating_duration_since(self.start) < self.warmup;
        let window = if in_warmup { &mut self.collected.warmup } else { &mut self.collected.measured };
        window[sample.op].record(sample);
        if self.verified[sample.op]
            && let Some(ledger) = &mut self.collected.ledger
        {
            ledger.record(sample);
        }
        if sample.outcome.answered() {
            record(&mut self.interval[sample.op], sample.done.saturating_duration_since(sample.intended));
        }
    }

    /// Ends the current second: stores its row and interval histograms.
    fn close_second(&mut self) {
        let mut row = std::mem::take(&mut self.row);
        row.t_s = self.second;
        row.in_flight = self.gauges.in_flight.load(Ordering::Relaxed);
        row.backlog = self.gauges.backlog.load(Ordering::Relaxed);
        let mut worst_p99 = 0;
        for (op, histogram) in self.interval.iter_mut().enumerate() {
            if histogram.is_empty() {
                continue;
            }
            worst_p99 = worst_p99.max(histogram.value_at_quantile(0.99));
            let ms = |v: u64| v as f64 / 1000.0;
            row.latency_ms.insert(
                self.names[op].clone(),
                IntervalLatency {
                    count: histogram.len(),
                    p50: ms(histogram.value_at_quantile(0.5)),
                    p99: ms(histogram.value_at_quantile(0.99)),
                    max: ms(histogram.max()),
                },
            );
            let encoded = hist::encode(histogram);
            histogram.reset();
            self.collected.intervals.push(Interval { op, start_s: self.second, encoded });
        }
        if worst_p99 > 0 {
            self.gauges.last_second_p99_us.store(worst_p99, Ordering::Relaxed);
        }
        self.collected.timeline.push(row);
        self.second += 1;
    }
}
