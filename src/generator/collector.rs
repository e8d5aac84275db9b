//! Joins the workers' seconds into one timeline. A second closes when every worker has
//! handed it over (or finished): its histograms are added per operation, handed to the
//! [`IntervalSink`] (the .hlog writer), and added into the timeline row it falls in
//! (one per `step` seconds, so an hours-long run holds a bounded timeline, issue 15),
//! then dropped. One message per worker per second, so the collector costs nothing per
//! operation. Nothing here formats or prints.
//!
//! With `--metrics-listen` each worker's second is also added to the live metrics as it
//! arrives (outcomes, slots, latency by window): the same figures result.json adds up,
//! so the live totals end equal to it. The live view gets each closed row and the
//! measured-window histograms the same way.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use hdrhistogram::Histogram;
use tokio::sync::mpsc::Receiver;

use super::recorder::{Report, SecondReport};
use crate::live::Gauges;
pub use crate::measure::intervals::IntervalSink;
use crate::measure::intervals::row_of;
use crate::measure::timeline::{IntervalLatency, TimelineRow};

/// The run's seconds.
#[derive(Debug, Default)]
pub struct Timeline {
    pub rows: Vec<TimelineRow>,
    /// The interval sink's warnings (a log that could not be written).
    pub warnings: Vec<String>,
}

/// A second some workers have handed over, or the row being added up.
#[derive(Default)]
struct OpenSecond {
    reported: usize,
    /// Slots offered and dropped, as the workers reported them (the live view's; result.json
    /// recounts them by intended second).
    offered: u64,
    dropped: u64,
    achieved: u64,
    conflicts: u64,
    errors: u64,
    latency: BTreeMap<usize, Histogram<u64>>,
    send_lag: Option<Histogram<u64>>,
}

impl OpenSecond {
    fn add_send_lag(&mut self, histogram: &Histogram<u64>) {
        match &mut self.send_lag {
            Some(sum) => sum.add(histogram).expect("same histogram bounds"),
            None => self.send_lag = Some(histogram.clone()),
        }
    }

    fn add_latency(&mut self, op: usize, histogram: &Histogram<u64>) {
        match self.latency.get_mut(&op) {
            Some(sum) => sum.add(histogram).expect("same histogram bounds"),
            None => {
                self.latency.insert(op, histogram.clone());
            }
        }
    }
}

pub struct Collector {
    names: Vec<String>,
    gauges: Arc<Gauges>,
    /// Per worker: the next second it has not handed over yet (`u64::MAX`: finished).
    next_of: Vec<u64>,
    open: BTreeMap<u64, OpenSecond>,
    /// The next second to close.
    closing: u64,
    timeline: Timeline,
    sink: Option<Box<dyn IntervalSink>>,
    /// Seconds per timeline row.
    step: u64,
    /// The row being added up: its first second and figures.
    row: Option<(u64, OpenSecond)>,
}

impl Collector {
    pub fn new(
        names: Vec<String>,
        gauges: Arc<Gauges>,
        workers: usize,
        step: u64,
        sink: Option<Box<dyn IntervalSink>>,
    ) -> Collector {
        Collector {
            sink,
            step: step.max(1),
            row: None,
            names,
            gauges,
            next_of: vec![0; workers],
            open: BTreeMap::new(),
            closing: 0,
            timeline: Timeline::default(),
        }
    }

    /// Receives reports until every worker is done and the channel closes.
    pub async fn run(mut self, mut reports: Receiver<Report>) -> Timeline {
        while let Some(report) = reports.recv().await {
            match report {
                Report::Second(second) => self.add(second),
                Report::Done { worker } => self.next_of[worker] = u64::MAX,
            }
            self.close_ready();
        }
        // A worker that died without saying so: close what is left, in order.
        while let Some(&second) = self.open.keys().next() {
            self.closing = second;
            self.close(second);
        }
        self.close_row();
        if let Some(sink) = &mut self.sink {
            self.timeline.warnings = sink.finish();
        }
        self.timeline
    }

    fn add(&mut self, report: SecondReport) {
        self.next_of[report.worker] = report.second + 1;
        if let Some(metrics) = &self.gauges.metrics {
            for &(op, window, o) in &report.outcomes {
                metrics.count_outcomes(op, window, &o);
            }
            for (op, window, histogram) in &report.latency {
                metrics.observe_latency(*op, *window, histogram);
            }
            metrics.count_slots(report.offered, report.dropped);
        }
        if let Some(live) = &self.gauges.live {
            for (op, window, histogram) in &report.latency {
                if *window == crate::live::Window::Measured {
                    live.add_measured(*op, histogram);
                }
            }
        }
        let open = self.open.entry(report.second).or_default();
        open.reported += 1;
        open.offered += report.offered.iter().sum::<u64>();
        open.dropped += report.dropped.iter().sum::<u64>();
        open.achieved += report.achieved;
        open.conflicts += report.outcomes.iter().map(|(_, _, o)| o.conflicts).sum::<u64>();
        open.errors += report.errors;
        // The timeline and the .hlog have one histogram per operation: the windows are added.
        for (op, _window, histogram) in &report.latency {
            open.add_latency(*op, histogram);
        }
        if let Some(send_lag) = &report.send_lag {
            open.add_send_lag(send_lag);
        }
    }

    /// Closes every second all workers have handed over.
    fn close_ready(&mut self) {
        let all_through = self.next_of.iter().copied().min().unwrap_or(u64::MAX);
        while self.closing < all_through {
            if self.open.is_empty() && all_through == u64::MAX {
                return; // every worker is done and nothing is left
            }
            self.close(self.closing);
        }
    }

    fn close(&mut self, second: u64) {
        let open = self.open.remove(&second).unwrap_or_default();
        if let Some(sink) = &mut self.sink {
            sink.second(second, &open.latency);
        }
        let worst_p99 = open.latency.values().map(|h| h.value_at_quantile(0.99)).max().unwrap_or(0);
        if worst_p99 > 0 {
            self.gauges.last_second_p99_us.store(worst_p99, Ordering::Relaxed);
        }
        let row_start = row_of(second, self.step);
        if self.row.as_ref().is_some_and(|(t_s, _)| *t_s != row_start) {
            self.close_row();
        }
        let (_, row) = self.row.get_or_insert_with(|| (row_start, OpenSecond::default()));
        row.offered += open.offered;
        row.dropped += open.dropped;
        row.achieved += open.achieved;
        row.conflicts += open.conflicts;
        row.errors += open.errors;
        for (op, histogram) in &open.latency {
            row.add_latency(*op, histogram);
        }
        if let Some(send_lag) = &open.send_lag {
            row.add_send_lag(send_lag);
        }
        self.closing = second + 1;
        if second + 1 == row_start + self.step {
            self.close_row();
        }
    }

    /// Summarises the row being added up into the timeline; its in-flight and backlog
    /// are those at its end.
    fn close_row(&mut self) {
        let Some((t_s, open)) = self.row.take() else { return };
        let mut row = TimelineRow {
            t_s,
            offered: open.offered,
            dropped: open.dropped,
            achieved: open.achieved,
            conflicts: open.conflicts,
            errors: open.errors,
            in_flight: self.gauges.in_flight.load(Ordering::Relaxed),
            backlog: self.gauges.backlog.load(Ordering::Relaxed),
            send_lag_p99_ms: open.send_lag.map(|h| h.value_at_quantile(0.99) as f64 / 1000.0),
            ..TimelineRow::default()
        };
        for (&op, histogram) in &open.latency {
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
        }
        if let Some(live) = &self.gauges.live {
            live.add_row(&row);
        }
        self.timeline.rows.push(row);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::measure::histogram::{new_latency_histogram, record};

    fn second(worker: usize, second: u64, achieved: u64, latency_ms: &[u64]) -> Report {
        let mut histogram = new_latency_histogram();
        for ms in latency_ms {
            record(&mut histogram, Duration::from_millis(*ms));
        }
        let latency = if latency_ms.is_empty() { vec![] } else { vec![(0, crate::live::Window::Measured, histogram)] };
        Report::Second(SecondReport {
            worker,
            second,
            achieved,
            errors: 0,
            latency,
            outcomes: vec![],
            offered: [0; 2],
            dropped: [0; 2],
            send_lag: None,
        })
    }

    /// Two workers' seconds are added into one row per second, closed in order, and a
    /// worker that finished early does not hold the others' seconds back.
    #[tokio::test]
    async fn adds_the_workers_seconds() {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = Box::new(Recording(seen.clone()));
        let collector = Collector::new(vec!["get".into()], Arc::new(Gauges::default()), 2, 1, Some(sink));
        tx.send(second(0, 0, 2, &[1, 2])).await.unwrap();
        tx.send(second(1, 0, 1, &[30])).await.unwrap();
        tx.send(second(1, 1, 1, &[4])).await.unwrap();
        tx.send(Report::Done { worker: 1 }).await.unwrap();
        tx.send(second(0, 1, 0, &[])).await.unwrap();
        tx.send(second(0, 2, 5, &[1, 1, 1, 1, 1])).await.unwrap();
        tx.send(Report::Done { worker: 0 }).await.unwrap();
        drop(tx);
        let timeline = collector.run(rx).await;
        let achieved: Vec<u64> = timeline.rows.iter().map(|r| r.achieved).collect();
        assert_eq!(achieved, [3, 1, 5]);
        assert_eq!(timeline.rows[0].latency_ms["get"].count, 3);
        assert!((timeline.rows[0].latency_ms["get"].max - 30.0).abs() < 0.1);
        // The sink got each closed second once, in order, with its added histogram.
        assert_eq!(*seen.lock().unwrap(), [(0, 3), (1, 1), (2, 5)]);
        assert_eq!(timeline.warnings, ["finished"]);
    }

    /// With 2-second rows, each row adds up its seconds (counts and histograms), the
    /// last row may be short, and the sink still gets every second.
    #[tokio::test]
    async fn adds_seconds_into_rows_of_the_step() {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = Box::new(Recording(seen.clone()));
        let collector = Collector::new(vec!["get".into()], Arc::new(Gauges::default()), 1, 2, Some(sink));
        tx.send(second(0, 0, 2, &[1, 2])).await.unwrap();
        tx.send(second(0, 1, 1, &[30])).await.unwrap();
        tx.send(second(0, 2, 5, &[1, 1, 1, 1, 1])).await.unwrap();
        tx.send(Report::Done { worker: 0 }).await.unwrap();
        drop(tx);
        let timeline = collector.run(rx).await;
        let rows: Vec<(u64, u64)> = timeline.rows.iter().map(|r| (r.t_s, r.achieved)).collect();
        assert_eq!(rows, [(0, 3), (2, 5)]);
        assert_eq!(timeline.rows[0].latency_ms["get"].count, 3);
        assert!((timeline.rows[0].latency_ms["get"].max - 30.0).abs() < 0.1);
        assert_eq!(*seen.lock().unwrap(), [(0, 2), (1, 1), (2, 5)]);
    }

    /// Issue 30: the workers' send lag of a second is added into its row's p99; a row
    /// without finished operations has none.
    #[tokio::test]
    async fn the_send_lag_p99_of_each_row() {
        let with_lag = |worker, second_no, lag_ms: &[u64]| {
            let Report::Second(mut report) = second(worker, second_no, 1, &[1]) else { unreachable!() };
            let mut histogram = new_latency_histogram();
            for ms in lag_ms {
                record(&mut histogram, Duration::from_millis(*ms));
            }
            report.send_lag = (!lag_ms.is_empty()).then_some(histogram);
            Report::Second(report)
        };
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let collector = Collector::new(vec!["get".into()], Arc::new(Gauges::default()), 2, 1, None);
        tx.send(with_lag(0, 0, &[1; 98])).await.unwrap();
        tx.send(with_lag(1, 0, &[40, 40])).await.unwrap(); // 2 of 100: the p99 is theirs
        tx.send(with_lag(0, 1, &[])).await.unwrap();
        tx.send(with_lag(1, 1, &[])).await.unwrap();
        drop(tx);
        let timeline = collector.run(rx).await;
        let p99: Vec<Option<f64>> = timeline.rows.iter().map(|r| r.send_lag_p99_ms).collect();
        assert_eq!(p99.len(), 2);
        assert!(p99[0].is_some_and(|ms| (ms - 40.0).abs() < 0.1), "{p99:?}");
        assert_eq!(p99[1], None);
    }

    /// (second, operations' count) per closed second.
    struct Recording(Arc<std::sync::Mutex<Vec<(u64, u64)>>>);

    impl IntervalSink for Recording {
        fn begin(&mut self, _: SystemTime) {}
        fn second(&mut self, second: u64, histograms: &BTreeMap<usize, Histogram<u64>>) {
            if let Some(h) = histograms.get(&0) {
                self.0.lock().unwrap().push((second, h.len()));
            }
        }
        fn finish(&mut self) -> Vec<String> {
            vec!["finished".into()]
        }
    }
}
