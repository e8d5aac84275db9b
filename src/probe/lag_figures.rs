//! Gathers the lag probes' records into the run's lag figures, in bounded memory
//! (issue 15). Every probe goes into the lag histogram as it reports. Its second (of
//! acknowledgement) stays open until no probe acknowledged in it can still report; then
//! it is written to projection-lag.hlog, added into its timeline row, and dropped. A
//! probe reports within its timeout (plus one poll) of its second, so only about
//! `timeout` seconds are ever open, however long the run.
//!
//! The per-probe records (16 bytes each) are kept only for whoever asks: the recovery
//! times after `[[action]]`s, and the capacity steps' trend; the seen probes only for
//! lag attribution.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::mpsc;

use super::lag::{LagRecord, ToldTimes};
use crate::live::{Gauges, LAG_LATE};
use crate::measure::histogram::{new_latency_histogram, percentile_ms, record};
use crate::measure::intervals::{IntervalSink, row_of};

/// How long after a command's acknowledgement its probe may still be registering (the
/// generator thread calls the probe right after the answer, so microseconds; a stalled
/// machine gets this much slack).
const REGISTRATION_SLACK: Duration = Duration::from_secs(2);

/// How often the open seconds are checked for closing.
const CLOSE_EVERY: Duration = Duration::from_millis(500);

/// The acknowledgement times of the probes still running: a second with none of them,
/// and old enough, can get no more records.
#[derive(Debug, Default)]
pub struct Outstanding(Mutex<BTreeMap<Instant, u32>>);

impl Outstanding {
    pub fn enter(&self, acked: Instant) {
        *self.0.lock().expect("outstanding probes").entry(acked).or_default() += 1;
    }

    /// After the probe's record was sent (or it was aborted and sends none).
    pub fn leave(&self, acked: Instant) {
        let mut running = self.0.lock().expect("outstanding probes");
        if let Some(count) = running.get_mut(&acked) {
            *count -= 1;
            if *count == 0 {
                running.remove(&acked);
            }
        }
    }

    fn oldest(&self) -> Option<Instant> {
        self.0.lock().expect("outstanding probes").keys().next().copied()
    }
}

/// What to keep per probe, beyond the figures.
#[derive(Debug, Clone, Copy, Default)]
pub struct Keep {
    /// [`LagFigures::records`].
    pub records: bool,
    /// [`LagFigures::seen`].
    pub seen: bool,
}

/// How the lag collector works for one run.
pub struct LagCollecting {
    /// The load start (second 0).
    pub start: Instant,
    /// The probe timeout: late probes are recorded at it.
    pub timeout: Duration,
    /// Seconds per timeline row.
    pub step: u64,
    pub keep: Keep,
    pub outstanding: Arc<Outstanding>,
    /// projection-lag.hlog (already begun), one histogram per second at index 0.
    pub sink: Option<Box<dyn IntervalSink>>,
    pub gauges: Arc<Gauges>,
}

/// The lag of one timeline row: the probes acknowledged in it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LagRow {
    pub t_s: u64,
    /// Late probes count at the timeout; capped at it (the histogram's rounding).
    pub p99_ms: Option<f64>,
    pub late: u64,
}

/// The lag probes' figures.
pub struct LagFigures {
    /// Every probe's lag; a late one at the probe timeout (issue 12: a censored value, so
    /// the percentiles, the per-second series and the SLO all tell the same story).
    pub histogram: Histogram<u64>,
    pub probes: u64,
    pub late: u64,
    /// Per timeline row with probes, in time order.
    pub rows: Vec<LagRow>,
    /// (acknowledgement offset from load start, lag) per probe, in arrival order; `None`
    /// for a late probe. Empty unless [`Keep::records`].
    pub records: Vec<(Duration, Option<Duration>)>,
    /// The probes that saw their command, with what lag attribution needs; empty unless
    /// [`Keep::seen`] (~80 bytes a probe).
    pub seen: Vec<SeenProbe>,
    /// What could not be written (projection-lag.hlog) or placed.
    pub warnings: Vec<String>,
    /// The longest lag of a probe that saw its command (late ones left out).
    pub longest_seen: Duration,
    /// The refs and acknowledgements of the first `MAX_LATE_KEPT` late probes: `[verify]`
    /// tells an event never applied from one applied after the timeout (issue 30).
    pub late_probes: Vec<(u64, Instant)>,
}

/// Late probes whose refs are kept for `[verify]`.
pub const MAX_LATE_KEPT: usize = 4096;

/// A probe that saw its command: its ref, times, and the read model's own times.
#[derive(Debug, Clone, Copy)]
pub struct SeenProbe {
    pub seq: u64,
    /// Acknowledgement, from load start.
    pub acked: Duration,
    pub lag: Duration,
    pub told: ToldTimes,
}

/// Receives probe records until every probe is done (the channel closes).
pub async fn collect(mut config: LagCollecting, mut records: mpsc::Receiver<LagRecord>) -> LagFigures {
    let mut book = Book::new();
    let mut check = tokio::time::interval(CLOSE_EVERY);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            received = records.recv() => match received {
                Some(r) => book.add(&config, r),
                None => break,
            },
            _ = check.tick() => {
                // The oldest running probe first, then what is queued: a probe that left
                // the outstanding set had sent its record, so the drain gets it.
                let oldest = config.outstanding.oldest();
                while let Ok(r) = records.try_recv() {
                    book.add(&config, r);
                }
                // Tokio's clock, so a test with paused time can move it.
                let now = tokio::time::Instant::now().into_std();
                let now = now.saturating_duration_since(config.start + REGISTRATION_SLACK);
                let running = oldest.map_or(u64::MAX, |at| at.saturating_duration_since(config.start).as_secs());
                book.close_before(&mut config, now.as_secs().min(running));
            }
        }
    }
    book.close_before(&mut config, u64::MAX);
    let mut figures = book.figures;
    if let Some(sink) = &mut config.sink {
        figures.warnings.extend(sink.finish());
    }
    figures
}

/// The figures and the seconds still open.
struct Book {
    figures: LagFigures,
    /// Per open second: its histogram and late probes.
    open: BTreeMap<u64, (Histogram<u64>, u64)>,
    /// Seconds before this are closed.
    closed_through: u64,
    /// The row being added up: its first second, histogram and late probes.
    row: Option<(u64, Histogram<u64>, u64)>,
    /// Records that came after their second had closed (never seen; counted, not lost).
    after_close: u64,
}

impl Book {
    fn new() -> Book {
        Book {
            figures: LagFigures {
                histogram: new_latency_histogram(),
                probes: 0,
                late: 0,
                rows: Vec::new(),
                records: Vec::new(),
                seen: Vec::new(),
                warnings: Vec::new(),
                longest_seen: Duration::ZERO,
                late_probes: Vec::new(),
            },
            open: BTreeMap::new(),
            closed_through: 0,
            row: None,
            after_close: 0,
        }
    }

    fn add(&mut self, config: &LagCollecting, r: LagRecord) {
        let figures = &mut self.figures;
        figures.probes += 1;
        let counted = r.lag.unwrap_or(config.timeout);
        record(&mut figures.histogram, counted);
        figures.late += u64::from(r.lag.is_none());
        match r.lag {
            Some(lag) => figures.longest_seen = figures.longest_seen.max(lag),
            None if figures.late_probes.len() < MAX_LATE_KEPT => figures.late_probes.push((r.seq, r.acked)),
            None => {}
        }
        if let Some(metrics) = &config.gauges.metrics {
            // As in the histogram above: a late probe at the timeout.
            metrics.observe_lag(counted, r.lag.is_none());
        }
        let live = r.lag.map_or(LAG_LATE, |lag| (lag.as_micros() as u64).max(1));
        config.gauges.last_lag_us.store(live, Ordering::Relaxed);
        let acked = r.acked.saturating_duration_since(config.start);
        if config.keep.records {
            figures.records.push((acked, r.lag));
        }
        if let Some(lag) = r.lag
            && config.keep.seen
        {
            figures.seen.push(SeenProbe { seq: r.seq, acked, lag, told: r.told });
        }
        let second = acked.as_secs();
        if second < self.closed_through {
            self.after_close += 1;
            return;
        }
        let (histogram, late) = self.open.entry(second).or_insert_with(|| (new_latency_histogram(), 0));
        record(histogram, counted);
        *late += u64::from(r.lag.is_none());
    }

    /// Closes every open second before `horizon`, in order, and the row that ends by it.
    fn close_before(&mut self, config: &mut LagCollecting, horizon: u64) {
        while let Some(entry) = self.open.first_entry() {
            if *entry.key() >= horizon {
                break;
            }
            let (second, (histogram, late)) = entry.remove_entry();
            if let Some(sink) = &mut config.sink {
                sink.second(second, &BTreeMap::from([(0, histogram.clone())]));
            }
            let row_start = row_of(second, config.step);
            if self.row.as_ref().is_some_and(|(t_s, ..)| *t_s != row_start) {
                self.close_row(config);
            }
            let (_, row, row_late) = self.row.get_or_insert_with(|| (row_start, new_latency_histogram(), 0));
            row.add(&histogram).expect("same histogram bounds");
            *row_late += late;
        }
        self.closed_through = self.closed_through.max(horizon);
        if self.row.as_ref().is_some_and(|(t_s, ..)| t_s.saturating_add(config.step) <= horizon) {
            self.close_row(config);
        }
        if horizon == u64::MAX && self.after_close > 0 {
            self.figures.warnings.push(format!(
                "{} lag probe(s) reported after their second had been written to projection-lag.hlog: \
                 in the lag totals, not in the per-second lag",
                self.after_close
            ));
        }
    }

    fn close_row(&mut self, config: &LagCollecting) {
        let Some((t_s, histogram, late)) = self.row.take() else { return };
        let timeout_ms = config.timeout.as_secs_f64() * 1000.0;
        let p99_ms = percentile_ms(&histogram, 99.0).map(|p99| p99.min(timeout_ms));
        self.figures.rows.push(LagRow { t_s, p99_ms, late });
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn config(start: Instant, step: u64, sink: Option<Box<dyn IntervalSink>>) -> LagCollecting {
        LagCollecting {
            start,
            timeout: Duration::from_secs(2),
            step,
            keep: Keep { records: true, seen: true },
            outstanding: Arc::default(),
            sink,
            gauges: Arc::new(Gauges::default()),
        }
    }

    fn at(start: Instant, ms: u64, lag_ms: Option<u64>) -> LagRecord {
        LagRecord {
            seq: ms,
            acked: start + Duration::from_millis(ms),
            lag: lag_ms.map(Duration::from_millis),
            told: ToldTimes::default(),
        }
    }

    /// Issue 12: a late probe is a censored value, recorded at the timeout; its record
    /// stays `None` (recovery times need to know it was never seen).
    #[tokio::test]
    async fn late_probes_are_recorded_at_the_timeout() {
        let (tx, rx) = mpsc::channel(4);
        let start = Instant::now();
        tx.send(at(start, 0, Some(20))).await.unwrap();
        tx.send(at(start, 0, None)).await.unwrap();
        drop(tx);
        let gauges = Arc::new(Gauges::default());
        let figures = collect(LagCollecting { gauges: gauges.clone(), ..config(start, 1, None) }, rx).await;
        assert_eq!((figures.probes, figures.late, figures.histogram.len()), (2, 1, 2));
        assert!(figures.histogram.equivalent(figures.histogram.max(), 2_000_000));
        assert_eq!(figures.records[1].1, None);
        assert_eq!(gauges.last_lag_us.load(Ordering::Relaxed), LAG_LATE);
        assert_eq!(figures.seen.len(), 1);
        assert_eq!(figures.rows, [LagRow { t_s: 0, p99_ms: Some(2000.0), late: 1 }]);
    }

    /// Seconds close in order into the sink and into rows of the step; a row's p99 is of
    /// all its seconds' probes together, and nothing but the open seconds is held.
    #[tokio::test]
    async fn seconds_close_into_the_log_and_rows() {
        let (tx, rx) = mpsc::channel(16);
        let start = Instant::now();
        let written = Arc::new(Mutex::new(Vec::new()));
        let sink = Box::new(Written(written.clone()));
        for (ms, lag) in [(100, Some(10)), (1_500, Some(300)), (1_900, None), (4_200, Some(50))] {
            tx.send(at(start, ms, lag)).await.unwrap();
        }
        drop(tx);
        let figures = collect(config(start, 2, Some(sink)), rx).await;
        assert_eq!(*written.lock().unwrap(), [(0, 1), (1, 2), (4, 1)]);
        let rows: Vec<(u64, u64)> = figures.rows.iter().map(|r| (r.t_s, r.late)).collect();
        assert_eq!(rows, [(0, 1), (4, 0)]);
        assert_eq!(figures.rows[0].p99_ms, Some(2000.0), "the late probe at the timeout");
        assert!((figures.rows[1].p99_ms.unwrap() - 50.0).abs() < 0.1);
    }

    /// A second is not closed while a probe acknowledged in it still runs, nor before the
    /// registration slack has passed; once both hold, it is closed mid-run.
    #[tokio::test(start_paused = true)]
    async fn a_second_waits_for_its_running_probes() {
        let (tx, rx) = mpsc::channel(16);
        let start = tokio::time::Instant::now().into_std();
        let outstanding = Arc::new(Outstanding::default());
        let written = Arc::new(Mutex::new(Vec::new()));
        let collecting = LagCollecting {
            outstanding: outstanding.clone(),
            ..config(start, 1, Some(Box::new(Written(written.clone()))))
        };
        let running = tokio::spawn(collect(collecting, rx));
        // A probe of second 0 reports; another of second 0 is still running.
        let slow = start + Duration::from_millis(300);
        outstanding.enter(slow);
        tx.send(at(start, 100, Some(5))).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(written.lock().unwrap().is_empty(), "second 0 has a running probe");
        tx.send(at(start, 300, Some(4_000))).await.unwrap();
        outstanding.leave(slow);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(*written.lock().unwrap(), [(0, 2)], "closed mid-run once its probes are in");
        drop(tx);
        let figures = running.await.unwrap();
        assert_eq!(figures.rows.len(), 1);
        assert!(figures.warnings.is_empty(), "{:?}", figures.warnings);
    }

    /// (second, probes) per second written.
    struct Written(Arc<Mutex<Vec<(u64, u64)>>>);

    impl IntervalSink for Written {
        fn begin(&mut self, _: SystemTime) {}
        fn second(&mut self, second: u64, histograms: &BTreeMap<usize, Histogram<u64>>) {
            self.0.lock().unwrap().push((second, histograms[&0].len()));
        }
        fn finish(&mut self) -> Vec<String> {
            Vec::new()
        }
    }
}
