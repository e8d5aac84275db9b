//! Joins the workers' seconds into one timeline. A second closes when every worker has
//! handed it over (or finished): its histograms are added per operation, summarised in
//! the timeline row and handed to the [`IntervalSink`] (the .hlog writer), then dropped:
//! the collector keeps only the small timeline rows (issue 15: an hours-long run holds no
//! interval histograms). One message per worker per second, so the collector costs
//! nothing per operation. Nothing here formats or prints.
//!
//! With `--metrics-listen` each worker's second is also added to the live metrics as it
//! arrives (outcomes, slots, latency by window): the same figures result.json adds up,
//! so the live totals end equal to it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use hdrhistogram::Histogram;
use tokio::sync::mpsc::Receiver;

use super::recorder::{Report, SecondReport};
use crate::live::Gauges;
use crate::results::model::{IntervalLatency, TimelineRow};

/// Where each closed second's per-operation histograms go as the run goes (the .hlog
/// writer, `report::hlog::OperationLogs`). Failures are kept as warnings, never stop the load.
pub trait IntervalSink: Send {
    /// The load starts at `started_at` (wall clock of second 0).
    fn begin(&mut self, started_at: SystemTime);
    /// Second `second` (since the load start) closed: its non-empty histograms by
    /// operation index. Written through before returning, so a kill loses no closed second.
    fn second(&mut self, second: u64, histograms: &BTreeMap<usize, Histogram<u64>>);
    /// The load ended: what could not be written, as warnings.
    fn finish(&mut self) -> Vec<String>;
}

/// The run's seconds.
#[derive(Debug, Default)]
pub struct Timeline {
    pub rows: Vec<TimelineRow>,
    /// The interval sink's warnings (a log that could not be written).
    pub warnings: Vec<String>,
}

/// A second some workers have handed over.
#[derive(Default)]
struct OpenSecond {
    reported: usize,
    achieved: u64,
    errors: u64,
    latency: BTreeMap<usize, Histogram<u64>>,
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
}

impl Collector {
    pub fn new(
        names: Vec<String>,
        gauges: Arc<Gauges>,
        workers: usize,
        sink: Option<Box<dyn IntervalSink>>,
    ) -> Collector {
        Collector {
            sink,
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
        if let Some(sink) = &mut self.sink {
            self.timeline.warnings = sink.finish();
        }
        self.timeline
    }

    fn add(&mut self, report: SecondReport) {
        self.next_of[report.worker] = report.second + 1;
        if let Some(metrics) = &self.gauges.metrics {
            for &(op, window, o) in &report.outcomes {
                metrics.count_outcomes(op, window, o.ok, o.rejected, o.errors);
            }
            for (op, window, histogram) in &report.latency {
                metrics.observe_latency(*op, *window, histogram);
            }
            metrics.count_slots(report.offered, report.dropped);
        }
        let open = self.open.entry(report.second).or_default();
        open.reported += 1;
        open.achieved += report.achieved;
        open.errors += report.errors;
        // The timeline and the .hlog have one histogram per operation: the windows are added.
        for (op, _window, histogram) in report.latency {
            match open.latency.get_mut(&op) {
                Some(sum) => sum.add(&histogram).expect("same histogram bounds"),
                None => {
                    open.latency.insert(op, histogram);
                }
            }
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
        let mut row = TimelineRow {
            t_s: second,
            achieved: open.achieved,
            errors: open.errors,
            in_flight: self.gauges.in_flight.load(Ordering::Relaxed),
            backlog: self.gauges.backlog.load(Ordering::Relaxed),
            ..TimelineRow::default()
        };
        let mut worst_p99 = 0;
        for (&op, histogram) in &open.latency {
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
        }
        if let Some(sink) = &mut self.sink {
            sink.second(second, &open.latency);
        }
        if worst_p99 > 0 {
            self.gauges.last_second_p99_us.store(worst_p99, Ordering::Relaxed);
        }
        self.timeline.rows.push(row);
        self.closing = second + 1;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::results::histogram::{new_latency_histogram, record};

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
        })
    }

    /// Two workers' seconds are added into one row per second, closed in order, and a
    /// worker that finished early does not hold the others' seconds back.
    #[tokio::test]
    async fn adds_the_workers_seconds() {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = Box::new(Recording(seen.clone()));
        let collector = Collector::new(vec!["get".into()], Arc::new(Gauges::default()), 2, Some(sink));
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
