//! A worker's own figures: every operation it finishes is recorded where it finished,
//! with no channel per sample. Over the whole run: latency and service time per
//! operation (measured window and warmup apart) and send lag. Per second: a latency
//! histogram per operation and the counts of the timeline row, handed to the collector
//! at each second boundary (`SecondReport`), where the workers' seconds are added up.
//! The report also carries what the live metrics need, taken per second from figures
//! the worker keeps anyway: the outcomes and slots since the last report (differences of
//! its running totals) and the latency split by window (one histogram per operation and
//! window, so each sample is still recorded once).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::Dispatched;
use crate::live::{Gauges, Window};
use crate::measure::histogram::{new_latency_histogram, record};
use crate::operation::{Outcome, Outcomes, Sample};

/// Figures of one operation over a window.
#[derive(Debug, Clone)]
pub struct OpFigures {
    pub latency: Histogram<u64>,
    pub service_time: Histogram<u64>,
    pub count: u64,
    pub ok: u64,
    pub rejected: u64,
    /// Optimistic-concurrency conflicts (a `conflict` rule): not goodput, not errors.
    pub conflicts: u64,
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
            conflicts: 0,
            errors: 0,
            errors_by_class: BTreeMap::new(),
            errors_by_status: BTreeMap::new(),
        }
    }
}

impl OpFigures {
    pub fn record(&mut self, sample: &Sample) {
        self.count += 1;
        match sample.outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Rejected => self.rejected += 1,
            Outcome::Conflict => self.conflicts += 1,
            Outcome::Status(code) => {
                self.errors += 1;
                *self.errors_by_class.entry("status").or_default() += 1;
                *self.errors_by_status.entry(code).or_default() += 1;
            }
            Outcome::Failed(failure) => {
                self.errors += 1;
                *self.errors_by_class.entry(failure.as_str()).or_default() += 1;
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
        self.conflicts += other.conflicts;
        self.errors += other.errors;
        for (class, n) in &other.errors_by_class {
            *self.errors_by_class.entry(class).or_default() += n;
        }
        for (status, n) in &other.errors_by_status {
            *self.errors_by_status.entry(*status).or_default() += n;
        }
    }
}

/// A worker's figures over the whole run.
#[derive(Debug, Clone)]
pub struct Totals {
    /// Per operation, measured window (after warmup).
    pub measured: Vec<OpFigures>,
    /// Per operation, during warmup.
    pub warmup: Vec<OpFigures>,
    /// Actual send − intended start, of the operations scheduled after warmup: like every
    /// other figure, the generator's accuracy is judged on the measured window, not on its
    /// start-up (connections and caches still cold: tens of ms at 50,000/s here).
    pub send_lag: Histogram<u64>,
    /// The same, of the operations scheduled during warmup.
    pub send_lag_warmup: Histogram<u64>,
    /// Operations finished (any outcome), warmup included.
    pub completed: u64,
}

impl Totals {
    pub fn new(operations: usize) -> Totals {
        Totals {
            measured: vec![OpFigures::default(); operations],
            warmup: vec![OpFigures::default(); operations],
            send_lag: new_latency_histogram(),
            send_lag_warmup: new_latency_histogram(),
            completed: 0,
        }
    }

    /// Adds another worker's totals.
    pub fn add(&mut self, other: &Totals) {
        for (mine, theirs) in self.measured.iter_mut().zip(&other.measured) {
            mine.add(theirs);
        }
        for (mine, theirs) in self.warmup.iter_mut().zip(&other.warmup) {
            mine.add(theirs);
        }
        self.send_lag.add(&other.send_lag).expect("same histogram bounds");
        self.send_lag_warmup.add(&other.send_lag_warmup).expect("same histogram bounds");
        self.completed += other.completed;
    }
}

// The counting is the recorder's; the type sits in `operation`, where the live view reads it too.
impl Outcomes {
    fn of(figures: &OpFigures) -> Outcomes {
        Outcomes { ok: figures.ok, rejected: figures.rejected, conflicts: figures.conflicts, errors: figures.errors }
    }

    fn since(self, before: Outcomes) -> Outcomes {
        Outcomes {
            ok: self.ok - before.ok,
            rejected: self.rejected - before.rejected,
            conflicts: self.conflicts - before.conflicts,
            errors: self.errors - before.errors,
        }
    }
}

/// One worker's second, for the collector.
#[derive(Debug)]
pub struct SecondReport {
    pub worker: usize,
    /// Seconds since the start of the load.
    pub second: u64,
    /// Answered operations that were neither errors nor conflicts (goodput).
    pub achieved: u64,
    pub errors: u64,
    /// Latency of the operations answered in this second, per operation and window
    /// (non-empty only).
    pub latency: Vec<(usize, Window, Histogram<u64>)>,
    /// Operations finished since the last report, per operation and window (non-zero only).
    pub outcomes: Vec<(usize, Window, Outcomes)>,
    /// Slots offered and dropped since the last report, per window (`Window as usize`).
    pub offered: [u64; 2],
    pub dropped: [u64; 2],
    /// Send lag of the operations finished in this second (every operation and window);
    /// `None` when none finished.
    pub send_lag: Option<Histogram<u64>>,
}

/// What a worker tells the collector.
#[derive(Debug)]
pub enum Report {
    Second(SecondReport),
    /// The worker has finished: it will report no later second.
    Done {
        worker: usize,
    },
}

pub struct Recorder {
    worker: usize,
    start: Instant,
    warmup: Duration,
    pub totals: Totals,
    /// Slots offered and dropped (the open model's worker counts them here).
    pub dispatched: Dispatched,
    /// The second being filled.
    second: u64,
    achieved: u64,
    errors: u64,
    /// Per operation, the measured window's.
    interval: Vec<Histogram<u64>>,
    /// Per operation, the warmup's: made on its first sample of a second, so after the
    /// warmup (or in a run without one) it costs no memory.
    interval_warmup: Vec<Option<Histogram<u64>>>,
    /// Send lag of the second being filled (issue 30: when the generator fell behind,
    /// not only by how much over the whole run).
    interval_send_lag: Histogram<u64>,
    /// The outcomes and slots already reported, per operation and window.
    reported: Vec<[Outcomes; 2]>,
    reported_dispatched: Dispatched,
}

impl Recorder {
    pub fn new(worker: usize, start: Instant, warmup: Duration, operations: usize) -> Recorder {
        Recorder {
            worker,
            start,
            warmup,
            totals: Totals::new(operations),
            dispatched: Dispatched::default(),
            second: 0,
            achieved: 0,
            errors: 0,
            interval: (0..operations).map(|_| new_latency_histogram()).collect(),
            interval_warmup: vec![None; operations],
            interval_send_lag: new_latency_histogram(),
            reported: vec![[Outcomes::default(); 2]; operations],
            reported_dispatched: Dispatched::default(),
        }
    }

    pub fn record(&mut self, sample: &Sample, gauges: &Gauges) {
        self.totals.completed += 1;
        gauges.completed.fetch_add(1, Ordering::Relaxed);
        // `achieved` is goodput (issue 12): errors, timeouts and conflicts are counted beside it.
        if sample.outcome.is_error() {
            gauges.errors.fetch_add(1, Ordering::Relaxed);
            self.errors += 1;
        } else if sample.outcome != Outcome::Conflict {
            self.achieved += 1;
        }
        let in_warmup = sample.intended.saturating_duration_since(self.start) < self.warmup;
        let send_lag = if in_warmup { &mut self.totals.send_lag_warmup } else { &mut self.totals.send_lag };
        let lag = sample.sent.saturating_duration_since(sample.intended);
        record(send_lag, lag);
        record(&mut self.interval_send_lag, lag);
        let window = if in_warmup { &mut self.totals.warmup } else { &mut self.totals.measured };
        window[sample.op].record(sample);
        if sample.outcome.answered() {
            let interval = if in_warmup {
                self.interval_warmup[sample.op].get_or_insert_with(new_latency_histogram)
            } else {
                &mut self.interval[sample.op]
            };
            record(interval, sample.done.saturating_duration_since(sample.intended));
        }
    }

    /// When the second being filled ends.
    pub fn next_boundary(&self) -> Instant {
        self.start + Duration::from_secs(self.second + 1)
    }

    /// Every second that has ended by `now`, for the collector.
    pub fn take_due(&mut self, now: Instant) -> Vec<Report> {
        let mut due = Vec::new();
        while now >= self.next_boundary() {
            due.push(self.take_second());
        }
        due
    }

    /// The second being filled (also a partial last one), for the collector; starts the next.
    pub fn take_second(&mut self) -> Report {
        let mut latency = Vec::new();
        let mut outcomes = Vec::new();
        for op in 0..self.interval.len() {
            if let Some(histogram) = self.interval_warmup[op].take().filter(|h| !h.is_empty()) {
                latency.push((op, Window::Warmup, histogram));
            }
            if !self.interval[op].is_empty() {
                let histogram = std::mem::replace(&mut self.interval[op], new_latency_histogram());
                latency.push((op, Window::Measured, histogram));
            }
            for window in Window::ALL {
                let figures = match window {
                    Window::Warmup => &self.totals.warmup[op],
                    Window::Measured => &self.totals.measured[op],
                };
                let now = Outcomes::of(figures);
                let before = std::mem::replace(&mut self.reported[op][window as usize], now);
                if now != before {
                    outcomes.push((op, window, now.since(before)));
                }
            }
        }
        let (d, before) = (&self.dispatched, &self.reported_dispatched);
        let offered_measured = d.offered_measured - before.offered_measured;
        let dropped_measured = d.dropped_measured - before.dropped_measured;
        let offered = [d.offered - before.offered - offered_measured, offered_measured];
        let dropped = [d.dropped - before.dropped - dropped_measured, dropped_measured];
        self.reported_dispatched = Dispatched {
            offered: d.offered,
            offered_measured: d.offered_measured,
            dropped: d.dropped,
            dropped_measured: d.dropped_measured,
            ..Dispatched::default()
        };
        let send_lag = (!self.interval_send_lag.is_empty())
            .then(|| std::mem::replace(&mut self.interval_send_lag, new_latency_histogram()));
        let report = SecondReport {
            send_lag,
            worker: self.worker,
            second: self.second,
            achieved: std::mem::take(&mut self.achieved),
            errors: std::mem::take(&mut self.errors),
            latency,
            outcomes,
            offered,
            dropped,
        };
        self.second += 1;
        Report::Second(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(op: usize, intended: Instant, outcome: Outcome) -> Sample {
        let done = intended + Duration::from_millis(2);
        Sample { op, seq: 1, key: 0, intended, sent: intended, done, outcome, change: Default::default() }
    }

    /// The seconds' outcome counts and latency samples add up to the worker's totals, per
    /// window (what the live metrics are fed, so they end equal to result.json).
    #[test]
    fn seconds_add_up_to_the_totals_per_window() {
        let start = Instant::now();
        let mut recorder = Recorder::new(0, start, Duration::from_secs(1), 2);
        let gauges = Gauges::default();
        let timeout = Outcome::Failed(crate::target::Failure::Timeout);
        let plan = [
            (0, 0, Outcome::Ok),
            (1, 500, Outcome::Rejected),
            (0, 900, timeout),
            (0, 1_200, Outcome::Ok),
            (1, 1_500, Outcome::Status(503)),
            (0, 2_100, Outcome::Ok),
        ];
        let mut reports = Vec::new();
        for (op, at_ms, outcome) in plan {
            recorder.record(&sample(op, start + Duration::from_millis(at_ms), outcome), &gauges);
            reports.push(recorder.take_second());
        }
        let mut counted = [[Outcomes::default(); 2]; 2];
        let mut latency_samples = [[0; 2]; 2];
        for report in reports {
            let Report::Second(second) = report else { unreachable!("take_second reports a second") };
            for (op, window, o) in second.outcomes {
                let c = &mut counted[op][window as usize];
                (c.ok, c.rejected, c.errors) = (c.ok + o.ok, c.rejected + o.rejected, c.errors + o.errors);
            }
            for (op, window, histogram) in second.latency {
                latency_samples[op][window as usize] += histogram.len();
            }
        }
        for op in 0..2 {
            for (window, figures) in
                [(Window::Warmup, &recorder.totals.warmup[op]), (Window::Measured, &recorder.totals.measured[op])]
            {
                assert_eq!(counted[op][window as usize], Outcomes::of(figures), "op {op} {window:?}");
                assert_eq!(latency_samples[op][window as usize], figures.latency.len(), "op {op} {window:?}");
            }
        }
        // The timeout has no latency; the 503 has one.
        assert_eq!((recorder.totals.warmup[0].errors, recorder.totals.warmup[0].latency.len()), (1, 1));
        assert_eq!(latency_samples[1], [1, 1]);
    }

    /// The send lag of the measured window leaves out the warmup's start-up, which is
    /// kept beside it.
    #[test]
    fn send_lag_is_kept_apart_for_warmup() {
        let start = Instant::now();
        let mut recorder = Recorder::new(0, start, Duration::from_secs(1), 1);
        let gauges = Gauges::default();
        for (at_ms, lag_ms) in [(0, 30), (400, 20), (1_000, 1), (1_500, 2), (2_000, 3)] {
            let mut late = sample(0, start + Duration::from_millis(at_ms), Outcome::Ok);
            late.sent = late.intended + Duration::from_millis(lag_ms);
            recorder.record(&late, &gauges);
        }
        let (measured, warmup) = (&recorder.totals.send_lag, &recorder.totals.send_lag_warmup);
        assert_eq!((measured.len(), warmup.len()), (3, 2));
        assert!(measured.max() < 3_100, "measured max {} µs", measured.max());
        assert!(warmup.min() >= 19_900, "warmup min {} µs", warmup.min());
    }
}
