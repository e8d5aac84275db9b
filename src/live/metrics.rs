//! The run's Prometheus metrics (`--metrics-listen`): the series, how they are fed, and
//! their OpenMetrics text (served by `serve`).
//!
//! Nothing here runs per operation. The collector adds each worker's second (outcomes,
//! slots, latency histograms by window), the lag collector each probe, the bus sampler
//! each group's lag once a second; in flight, backlog and the run's phase are read from
//! `Gauges` when scraped. These are the figures result.json is built from, so at the end
//! of a run the totals equal it (`finish` adds what only the end of the run knows).

use std::iter::once;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};

use super::{Gauges, Phase, Window};
use crate::operation::Outcomes;
use crate::scenario::OpKind;

/// Upper bounds of the latency and projection-lag buckets, in seconds: 1-2.5-5 steps from
/// 100 µs (a fast in-memory answer) to 10 s, then 30 s (a long timeout; a late probe is
/// counted at its timeout); `+Inf` above. Enough for `histogram_quantile` to tell a
/// 2 ms p99 from a 3 ms one, and few enough series per operation (18).
pub const BUCKETS_S: [f64; 17] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// `BUCKETS_S` in µs, the unit of the run's HdrHistograms.
const BUCKETS_US: [u64; 17] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000, 30_000_000,
];

/// The name of every series the endpoint serves (as scraped: counters with `_total`,
/// histograms without their `_bucket`/`_sum`/`_count`): the guide (docs/src/live-metrics.md)
/// and the Grafana dashboard use these and no others (a test checks the dashboard).
pub const METRIC_NAMES: [&str; 12] = [
    "cqrs_bench_operations_total",
    "cqrs_bench_latency_seconds",
    "cqrs_bench_offered_total",
    "cqrs_bench_dropped_total",
    "cqrs_bench_in_flight",
    "cqrs_bench_backlog",
    "cqrs_bench_projection_lag_seconds",
    "cqrs_bench_projection_probes_total",
    "cqrs_bench_projection_late_probes_total",
    "cqrs_bench_consumer_group_lag_messages",
    "cqrs_bench_run_info",
    "cqrs_bench_run_phase",
];

/// The outcomes of result.json (`ok`, `rejected`, `conflicts`, `errors`), as the `outcome`
/// label. A conflict (a `conflict` rule, issue 31) is neither a refusal nor an error, so it
/// has its own label: `rate(…{outcome="conflict"})` is the live conflict rate.
const OUTCOMES: [&str; 4] = ["ok", "rejected", "conflict", "error"];
/// The `run_phase` after the run, while the endpoint lingers.
const DONE: &str = "done";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    operation: String,
    kind: &'static str,
    phase: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    operation: String,
    kind: &'static str,
    phase: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    group: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunPhaseLabels {
    run_phase: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    scenario: String,
    run_id: String,
}

/// A Prometheus histogram fed with whole HdrHistograms: the bucket counts are computed
/// from the recorded values (each distinct value with its count), so `_count` is exact
/// and a second of thousands of samples costs one pass over its distinct values.
/// (`prometheus_client`'s own histogram only observes one value at a time.)
#[derive(Debug, Clone, Default)]
pub struct Buckets(Arc<Mutex<BucketCounts>>);

#[derive(Debug, Clone, Default, PartialEq)]
pub struct BucketCounts {
    /// Sum of the values, seconds.
    pub sum_s: f64,
    pub count: u64,
    /// Per bucket of `BUCKETS_S`, then `+Inf` (not cumulative).
    pub per_bucket: [u64; BUCKETS_S.len() + 1],
}

/// The bucket a value of `us` µs falls in: the first whose bound is at least it.
fn bucket_of(us: u64) -> usize {
    BUCKETS_US.partition_point(|&bound| bound < us)
}

impl BucketCounts {
    /// Counts every value of an HdrHistogram of µs. A value counts at the highest value
    /// equivalent to it (as the run's percentiles report it: within the histogram's
    /// 0.1 %), and adds its midpoint to the sum.
    pub fn of(histogram: &Histogram<u64>) -> BucketCounts {
        let mut counts = BucketCounts::default();
        let mut sum_us = 0.0;
        for value in histogram.iter_recorded() {
            let n = value.count_at_value();
            let at = histogram.highest_equivalent(value.value_iterated_to());
            counts.per_bucket[bucket_of(at)] += n;
            counts.count += n;
            sum_us += histogram.median_equivalent(at) as f64 * n as f64;
        }
        counts.sum_s = sum_us / 1e6;
        counts
    }

    fn add(&mut self, other: &BucketCounts) {
        self.sum_s += other.sum_s;
        self.count += other.count;
        for (mine, theirs) in self.per_bucket.iter_mut().zip(other.per_bucket) {
            *mine += theirs;
        }
    }
}

impl Buckets {
    /// Adds every value of an HdrHistogram of µs.
    pub fn add_histogram(&self, histogram: &Histogram<u64>) {
        let counts = BucketCounts::of(histogram); // outside the lock
        self.lock().add(&counts);
    }

    /// Adds one value.
    pub fn observe(&self, value: Duration) {
        let us = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        let mut counts = self.lock();
        counts.per_bucket[bucket_of(us)] += 1;
        counts.count += 1;
        counts.sum_s += value.as_secs_f64();
    }

    /// The counts so far.
    pub fn counts(&self) -> BucketCounts {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BucketCounts> {
        // Only additions happen under the lock: a panic there leaves counts still usable.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl TypedMetric for Buckets {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Buckets {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let counts = self.counts();
        let bounds = BUCKETS_S.into_iter().chain(once(f64::INFINITY));
        let buckets: Vec<(f64, u64)> = bounds.zip(counts.per_bucket).collect();
        encoder.encode_histogram::<NoLabelSet>(counts.sum_s, counts.count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// One operation's series, made when the run starts (so every series reads 0 from the
/// first scrape on, and `rate()` sees the first increase).
struct OpSeries {
    /// Per window (`Window as usize`), per outcome (`OUTCOMES`).
    outcomes: [[Counter; 4]; 2],
    /// Per window.
    latency: [Buckets; 2],
}

/// The live metrics of one run.
pub struct LiveMetrics {
    registry: Registry,
    ops: Vec<OpSeries>,
    /// Per window.
    offered: [Counter; 2],
    dropped: [Counter; 2],
    in_flight: Gauge,
    backlog: Gauge,
    lag: Buckets,
    probes: Counter,
    late: Counter,
    consumer_lag: Family<GroupLabels, Gauge>,
    run_phase: Family<RunPhaseLabels, Gauge>,
    done: AtomicBool,
}

impl std::fmt::Debug for LiveMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveMetrics").field("operations", &self.ops.len()).finish_non_exhaustive()
    }
}

fn kind_label(kind: OpKind) -> &'static str {
    match kind {
        OpKind::Command => "command",
        OpKind::Query => "query",
    }
}

impl LiveMetrics {
    /// The series of a run of `scenario` (its name) with `operations` (name and kind, in
    /// the scenario's order: the collector names them by index).
    pub fn new(scenario: &str, run_id: u32, operations: &[(String, OpKind)]) -> LiveMetrics {
        let mut registry = Registry::with_prefix("cqrs_bench");
        let outcomes = Family::<OutcomeLabels, Counter>::default();
        let latency = Family::<LatencyLabels, Buckets>::default();
        let ops = operations
            .iter()
            .map(|(name, kind)| {
                let kind = kind_label(*kind);
                OpSeries {
                    outcomes: Window::ALL.map(|window| {
                        OUTCOMES.map(|outcome| {
                            let labels =
                                OutcomeLabels { operation: name.clone(), kind, phase: window.label(), outcome };
                            outcomes.get_or_create(&labels).clone()
                        })
                    }),
                    latency: Window::ALL.map(|window| {
                        let labels = LatencyLabels { operation: name.clone(), kind, phase: window.label() };
                        latency.get_or_create(&labels).clone()
                    }),
                }
            })
            .collect();
        registry.register(
            "operations",
            "Operations finished, by operation, kind, phase (warmup/measured, by intended start) and outcome",
            outcomes,
        );
        registry.register_with_unit(
            "latency",
            "Latency from the intended start to the answer (coordinated-omission-correct), answered operations",
            Unit::Seconds,
            latency,
        );
        let per_window = |family: &Family<PhaseLabels, Counter>| {
            Window::ALL.map(|window| family.get_or_create(&PhaseLabels { phase: window.label() }).clone())
        };
        let offered_family = Family::<PhaseLabels, Counter>::default();
        let dropped_family = Family::<PhaseLabels, Counter>::default();
        let (offered, dropped) = (per_window(&offered_family), per_window(&dropped_family));
        registry.register("offered", "Operations the schedule offered", offered_family);
        registry.register("dropped", "Offered operations dropped with every lane and the backlog full", dropped_family);
        let (in_flight, backlog) = (Gauge::default(), Gauge::default());
        registry.register("in_flight", "Operations sent and not answered yet", in_flight.clone());
        registry.register("backlog", "Operations due and waiting for a free lane", backlog.clone());
        let (lag, probes, late) = (Buckets::default(), Counter::default(), Counter::default());
        registry.register_with_unit(
            "projection_lag",
            "Projection lag of the probes (acknowledgement to visible in the read model); a late probe at its timeout",
            Unit::Seconds,
            lag.clone(),
        );
        registry.register("projection_probes", "Projection-lag probes finished", probes.clone());
        registry.register(
            "projection_late_probes",
            "Probes that did not see their command within the timeout",
            late.clone(),
        );
        let consumer_lag = Family::<GroupLabels, Gauge>::default();
        registry.register_with_unit(
            "consumer_group_lag",
            "Consumer group lag: log end minus committed offset, summed over partitions ([bus])",
            Unit::Other("messages".into()),
            consumer_lag.clone(),
        );
        let run_phase = Family::<RunPhaseLabels, Gauge>::default();
        for phase in Phase::ALL.map(Phase::label).into_iter().chain(once(DONE)) {
            let _ = run_phase.get_or_create(&RunPhaseLabels { run_phase: phase });
        }
        registry.register("run_phase", "1 for the step the run is in, 0 for the others", run_phase.clone());
        let info = Info::new(RunLabels { scenario: scenario.to_owned(), run_id: format!("{run_id:08x}") });
        registry.register("run", "The run: scenario name and run id (as in result.json)", info);
        LiveMetrics {
            registry,
            ops,
            offered,
            dropped,
            in_flight,
            backlog,
            lag,
            probes,
            late,
            consumer_lag,
            run_phase,
            done: AtomicBool::new(false),
        }
    }

    /// Adds one operation's outcomes in one window.
    pub fn count_outcomes(&self, op: usize, window: Window, outcomes: &Outcomes) {
        let Some(series) = self.ops.get(op) else { return };
        let Outcomes { ok, rejected, conflicts, errors } = *outcomes;
        for (counter, n) in series.outcomes[window as usize].iter().zip([ok, rejected, conflicts, errors]) {
            if n > 0 {
                counter.inc_by(n);
            }
        }
    }

    /// Adds one operation's latency histogram (µs) in one window.
    pub fn observe_latency(&self, op: usize, window: Window, histogram: &Histogram<u64>) {
        if let Some(series) = self.ops.get(op) {
            series.latency[window as usize].add_histogram(histogram);
        }
    }

    /// Adds slots offered and dropped, per window.
    pub fn count_slots(&self, offered: [u64; 2], dropped: [u64; 2]) {
        for (counters, added) in [(&self.offered, offered), (&self.dropped, dropped)] {
            for (counter, n) in counters.iter().zip(added) {
                if n > 0 {
                    counter.inc_by(n);
                }
            }
        }
    }

    /// Adds a finished lag probe: its lag, or (late) the timeout it was recorded at.
    pub fn observe_lag(&self, lag: Duration, late: bool) {
        self.lag.observe(lag);
        self.probes.inc();
        if late {
            self.late.inc();
        }
    }

    /// The latest lag of a consumer group, in messages.
    pub fn set_consumer_lag(&self, group: &str, messages: u64) {
        let labels = GroupLabels { group: group.to_owned() };
        self.consumer_lag.get_or_create(&labels).set(i64::try_from(messages).unwrap_or(i64::MAX));
    }

    /// The run is over: offered and dropped become the run's totals per window (what only
    /// the end knows: slots left in a backlog at the abort are dropped; a closed model
    /// offers what its users started), and the phase `done`.
    pub fn finish(&self, offered: [u64; 2], dropped: [u64; 2]) {
        for (counters, totals) in [(&self.offered, offered), (&self.dropped, dropped)] {
            for (counter, total) in counters.iter().zip(totals) {
                let now = counter.get();
                if total > now {
                    counter.inc_by(total - now);
                }
            }
        }
        self.done.store(true, Ordering::Relaxed);
    }

    /// The OpenMetrics text, with the gauges read now.
    pub fn encode(&self, gauges: &Gauges) -> String {
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.in_flight.set(as_i64(gauges.in_flight.load(Ordering::Relaxed)));
        self.backlog.set(as_i64(gauges.backlog.load(Ordering::Relaxed)));
        let current = if self.done.load(Ordering::Relaxed) { DONE } else { gauges.phase().0.label() };
        for phase in Phase::ALL.map(Phase::label).into_iter().chain(once(DONE)) {
            self.run_phase.get_or_create(&RunPhaseLabels { run_phase: phase }).set(i64::from(phase == current));
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String does not fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::histogram::{new_latency_histogram, record};

    fn histogram(values_us: &[(u64, u64)]) -> Histogram<u64> {
        let mut histogram = new_latency_histogram();
        for &(us, n) in values_us {
            for _ in 0..n {
                record(&mut histogram, Duration::from_micros(us));
            }
        }
        histogram
    }

    /// Each distinct value lands in its bucket with its whole count; a bound is inclusive
    /// (`le`); beyond the last bound is `+Inf`.
    #[test]
    fn hdr_values_fill_their_buckets_exactly() {
        let h = histogram(&[(50, 3), (100, 2), (101, 1), (1_000, 4), (1_500, 5), (45_000_000, 1)]);
        let counts = BucketCounts::of(&h);
        assert_eq!(counts.count, 16);
        let mut expected = [0; 18];
        expected[0] = 5; // 50 µs ×3, 100 µs ×2 (≤ 0.0001 s)
        expected[1] = 1; // 101 µs
        expected[3] = 4; // 1 ms
        expected[4] = 5; // 1.5 ms
        expected[17] = 1; // 45 s: +Inf
        assert_eq!(counts.per_bucket, expected);
        let sum_us = 50.0 * 3.0 + 100.0 * 2.0 + 101.0 + 4_000.0 + 7_500.0 + 45_000_000.0;
        assert!((counts.sum_s - sum_us / 1e6).abs() < 45.0 * 1e-3, "{} vs {}", counts.sum_s, sum_us / 1e6);
    }

    /// Seconds added one by one equal the same values added as one histogram, and the
    /// served text carries the exact count.
    #[test]
    fn histograms_add_up_and_encode_their_count() {
        let metrics = LiveMetrics::new("s", 0xabc, &[("get".into(), OpKind::Query)]);
        let (a, b) = (histogram(&[(300, 7), (20_000, 2)]), histogram(&[(300, 1), (2_000_000, 3)]));
        metrics.observe_latency(0, Window::Measured, &a);
        metrics.observe_latency(0, Window::Measured, &b);
        let mut both = a.clone();
        both.add(&b).unwrap();
        assert_eq!(metrics.ops[0].latency[1].counts().per_bucket, BucketCounts::of(&both).per_bucket);
        metrics.count_outcomes(0, Window::Measured, &Outcomes { ok: 10, rejected: 2, conflicts: 3, errors: 1 });
        let text = metrics.encode(&Gauges::default());
        assert!(text.contains(r#"cqrs_bench_latency_seconds_count{operation="get",kind="query",phase="measured"} 13"#));
        assert!(text.contains(
            r#"cqrs_bench_operations_total{operation="get",kind="query",phase="measured",outcome="conflict"} 3"#
        ));
        assert!(text.contains(
            r#"cqrs_bench_latency_seconds_bucket{le="0.0005",operation="get",kind="query",phase="measured"} 8"#
        ));
        assert!(text.contains(
            r#"cqrs_bench_operations_total{operation="get",kind="query",phase="measured",outcome="error"} 1"#
        ));
        assert!(text.contains(r#"cqrs_bench_run_info{scenario="s",run_id="00000abc"} 1"#));
        assert!(text.contains(r#"cqrs_bench_run_phase{run_phase="setup"} 1"#));
        for name in METRIC_NAMES {
            assert!(text.contains(name) || name.ends_with("_messages"), "{name} is served");
        }
    }

    /// `finish` tops offered and dropped up to the run's totals, never down.
    #[test]
    fn finish_sets_the_run_totals() {
        let metrics = LiveMetrics::new("s", 1, &[]);
        metrics.count_slots([5, 100], [0, 3]);
        metrics.finish([5, 104], [0, 7]);
        assert_eq!(metrics.offered.each_ref().map(Counter::get), [5, 104]);
        assert_eq!(metrics.dropped.each_ref().map(Counter::get), [0, 7]);
        assert!(metrics.encode(&Gauges::default()).contains(r#"cqrs_bench_run_phase{run_phase="done"} 1"#));
    }
}
