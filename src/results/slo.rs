//! SLO verdicts: each `[slo]` rule against the observed figure in the result.

use super::model::{RunResult, SloResult};
use crate::results::histogram;
use crate::scenario::{SloMetric, SloRule};

/// Judges every rule. A rule whose figure the run did not produce fails (`observed: null`):
/// an SLO nobody measured is not met.
pub fn evaluate(rules: &[SloRule], result: &RunResult) -> Vec<SloResult> {
    rules
        .iter()
        .map(|rule| {
            let observed = observe(&rule.metric, result);
            let lower_bound = rule.metric.is_lower_bound();
            let pass = observed.is_some_and(|v| if lower_bound { v >= rule.threshold } else { v <= rule.threshold });
            SloResult {
                name: rule.name.clone(),
                threshold: rule.threshold,
                observed,
                pass,
                comparison: if lower_bound { ">=" } else { "<=" }.into(),
                unit: unit(&rule.metric).into(),
            }
        })
        .collect()
}

fn unit(metric: &SloMetric) -> &'static str {
    match metric {
        SloMetric::CommandLatency(_)
        | SloMetric::QueryLatency(_)
        | SloMetric::OperationLatency { .. }
        | SloMetric::ProjectionLag(_) => "ms",
        SloMetric::BusEndToEnd(_) => "ms",
        SloMetric::Duplicates
        | SloMetric::Missed
        | SloMetric::Unexpected
        | SloMetric::Dropped
        | SloMetric::ConsumerLagMax => "count",
        SloMetric::CommandErrorRate | SloMetric::QueryErrorRate => "ratio",
        SloMetric::MinThroughput => "ops/s",
    }
}

/// Latency percentile over every operation of one kind, from their encoded histograms
/// (added, never averaged).
fn kind_percentile(result: &RunResult, kind: &str, percentile: f64) -> Option<f64> {
    let mut merged = histogram::new_latency_histogram();
    for stats in result.operations.values().filter(|s| s.kind == kind) {
        merged.add(histogram::decode(&stats.histogram).ok()?).ok()?;
    }
    histogram::percentile_ms(&merged, percentile)
}

fn observe(metric: &SloMetric, result: &RunResult) -> Option<f64> {
    let events = result.events.as_ref();
    let bus = result.bus.as_ref();
    match metric {
        SloMetric::CommandLatency(p) => kind_percentile(result, "command", *p),
        SloMetric::QueryLatency(p) => kind_percentile(result, "query", *p),
        SloMetric::OperationLatency { operation, percentile } => {
            let stats = result.operations.get(operation)?;
            histogram::percentile_ms(&histogram::decode(&stats.histogram).ok()?, *percentile)
        }
        SloMetric::ProjectionLag(p) => {
            let projection = result.projection.as_ref()?;
            // Late probes have a lag beyond the probe timeout: a percentile that reaches
            // into them is at least the timeout, so it is not reported as met.
            let visible = projection.probes.saturating_sub(projection.late);
            let within = (projection.probes as f64 * p / 100.0).ceil() as u64;
            if projection.probes == 0 {
                return None;
            }
            if within > visible {
                return Some(projection.timeout_ms);
            }
            let lag = histogram::decode(&projection.histogram).ok()?;
            // The percentile over all probes = the matching rank among the visible ones.
            histogram::percentile_ms(&lag, 100.0 * within as f64 / visible.max(1) as f64)
        }
        // From the read model when `[verify]` ran, else from the bus.
        SloMetric::Duplicates => events.map(|e| e.duplicates).or(bus.map(|b| b.duplicates)).map(|n| n as f64),
        SloMetric::Missed => events.map(|e| e.missed).or(bus.map(|b| b.missed)).map(|n| n as f64),
        SloMetric::Unexpected => events.map(|e| e.unexpected).or(bus.map(|b| b.unexpected)).map(|n| n as f64),
        SloMetric::CommandErrorRate => (result.commands.count > 0).then_some(result.commands.error_rate),
        SloMetric::QueryErrorRate => (result.queries.count > 0).then_some(result.queries.error_rate),
        SloMetric::MinThroughput => Some(result.throughput.achieved_per_s),
        SloMetric::Dropped => Some(result.throughput.dropped as f64),
        SloMetric::ConsumerLagMax => {
            result.bus.as_ref().and_then(|b| b.consumer_lag.values().map(|g| g.max_messages).max()).map(|m| m as f64)
        }
        SloMetric::BusEndToEnd(p) => {
            let bus = result.bus.as_ref()?;
            histogram::percentile_ms(&histogram::decode(&bus.e2e_histogram).ok()?, *p)
        }
    }
}
