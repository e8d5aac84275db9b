//! One step of a saturation search: the scenario's workload at one constant rate for
//! `[saturate] step`, run and judged like any run (its SLOs, on the part after the step's
//! warmup), plus two judgements only a search needs: nothing dropped, and no backlog
//! growing across the step (projection lag, with `[bus]` the consumer groups' lag, and
//! every `[[backlog]]` source's backlog).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::trend::Trend;
use crate::live::Gauges;
use crate::results::model::{KindStats, SloResult};
use crate::results::{self, RunResult};
use crate::run::{self, LoadOutcome, RunIds};
use crate::scenario::{OpKind, Scenario, SloMetric, Stage};
use crate::target::{AnyTarget, Routed};

/// Projection lag growing at least this fast (ms per s) across a step fails it: about
/// 1 % more events than the projectors apply.
pub const LAG_GROWTH_MIN_MS_PER_S: f64 = 10.0;
/// ... and only when the fitted line rose by at least this much over the judged part
/// (a few milliseconds of drift are no backlog).
pub const LAG_RISE_MIN_MS: f64 = 50.0;
/// Consumer-group lag growing by at least this share of the event rate (messages per s
/// per event/s) fails a step; at least one message per second.
pub const CONSUMER_GROWTH_MIN_SHARE: f64 = 0.01;
/// Longest wait for a backlog (the setup's, or a failing step's) to drain.
pub const MAX_DRAIN: Duration = Duration::from_secs(600);

/// A judged step, as saturate.json and capacity.json record it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    /// 1-based, in the order run.
    pub index: usize,
    /// Offered operations/s (the whole mix).
    pub rate: f64,
    /// Goodput over the judged part (answered ok or refused).
    pub achieved_per_s: f64,
    /// Acknowledged commands that emit an event (`[projection] commands`, else every
    /// command), per second over the judged part.
    pub events_per_s: f64,
    pub pass: bool,
    /// Why it failed, one line per cause; empty when it passed.
    pub reasons: Vec<String>,
    pub command_p99_ms: Option<f64>,
    pub query_p99_ms: Option<f64>,
    pub lag_p99_ms: Option<f64>,
    /// Slope of projection lag over the judged part (ms per s); `None` without probes.
    pub lag_slope_ms_per_s: Option<f64>,
    /// Slope of each consumer group's lag (messages per s).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub consumer_lag_slope: std::collections::BTreeMap<String, f64>,
    /// Slope of each `[[backlog]]` source's backlog (entries per s).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub backlog_slope: std::collections::BTreeMap<String, f64>,
    pub dropped: u64,
    pub slo: Vec<SloResult>,
    /// The step's own results folder, relative to the search's.
    pub result_dir: String,
    /// Waited after the step for its backlog to drain (s).
    pub drained_after_s: f64,
}

/// The scenario a step runs: one constant stage, the search's warmup, no actions, and no
/// `min_throughput` (a floor on the rate would fail every low step of a search that
/// measures the rate itself).
pub fn step_scenario(base: &Scenario, rate: f64) -> Scenario {
    let mut scenario = base.clone();
    let spec = &base.saturate;
    scenario.load.stages = vec![Stage { duration: spec.step, from: rate, to: rate }];
    scenario.load.warmup = spec.warmup;
    scenario.actions.clear();
    scenario.slo.retain(|rule| rule.metric != SloMetric::MinThroughput);
    if let Some(object) = scenario.recorded.as_object_mut() {
        object.insert("saturate_step".into(), serde_json::json!({ "rate": rate }));
    }
    scenario
}

/// Runs and judges one step; its result.json goes to `dir`.
pub async fn run_step(
    base: &Scenario,
    index: usize,
    rate: f64,
    target: Arc<Routed>,
    threads: usize,
    dir: &std::path::Path,
    shutdown: &CancellationToken,
) -> anyhow::Result<(Step, RunResult)> {
    let scenario = step_scenario(base, rate);
    let ids = RunIds::single();
    let gauges = Arc::new(Gauges::default());
    let on_load_start = || {
        if let AnyTarget::Embedded(embedded) = &target.main {
            embedded.app().restart_fault_clock();
        }
    };
    // The lag trend is fitted on every probe's record.
    let hooks = run::Hooks { on_load_start, intervals: None, lag_intervals: None, keep_lag_records: true };
    let outcome = run::drive(&scenario, target.clone(), ids, threads, shutdown.clone(), gauges, hooks).await?;
    let result = results::build(results::BuildInput {
        scenario: &scenario,
        outcome: &outcome,
        run_id: ids.run_id,
        target_label: crate::run::target_label(&scenario),
    });
    crate::report::prepare_dir(dir)?;
    results::write_json(&dir.join("result.json"), &result)?;
    let mut step = judge(&scenario, &outcome, &result, index, rate);
    step.result_dir = dir.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    Ok((step, result))
}

/// The verdict on a finished step.
pub fn judge(scenario: &Scenario, outcome: &LoadOutcome, result: &RunResult, index: usize, rate: f64) -> Step {
    let mut reasons: Vec<String> = result
        .slo
        .iter()
        .filter(|slo| !slo.pass)
        .map(|slo| {
            format!(
                "{} {} (limit {} {})",
                slo.name,
                crate::report::summary::observed_text(slo),
                slo.comparison,
                crate::report::summary::format_value(slo.threshold, &slo.unit)
            )
        })
        .collect();
    if let Some(why) = &result.verdict_reason {
        reasons.push(why.clone());
    }
    if result.throughput.dropped > 0 {
        reasons.push(format!(
            "{} operations dropped: the generator reached max_in_flight ({})",
            result.throughput.dropped, result.generator.max_in_flight
        ));
    }
    let warmup = scenario.load.warmup.as_secs_f64();
    let judged_s = result.measured_s.max(f64::MIN_POSITIVE);
    let lag_trend = outcome.probes.lag.as_ref().and_then(|lag| {
        let timeout_ms = scenario.projection.as_ref().map_or(0.0, |p| p.timeout.as_secs_f64() * 1e3);
        let points: Vec<(f64, f64)> = lag
            .figures
            .records
            .iter()
            .filter(|(acked, _)| acked.as_secs_f64() >= warmup)
            .map(|(acked, lag)| (acked.as_secs_f64(), lag.map_or(timeout_ms, |l| l.as_secs_f64() * 1e3)))
            .collect();
        Trend::fit(&points)
    });
    if let Some(trend) = lag_trend
        && trend.growing(LAG_GROWTH_MIN_MS_PER_S)
        && trend.slope * judged_s >= LAG_RISE_MIN_MS
    {
        reasons.push(format!("projection lag growing at {:.0} ms/s (±{:.0})", trend.slope, 2.0 * trend.slope_error));
    }
    let events_per_s = events_per_s(scenario, result);
    let mut consumer_lag_slope = std::collections::BTreeMap::new();
    if let Some(bus) = &outcome.probes.bus {
        for (group, lag) in &bus.consumer_lag {
            let points: Vec<(f64, f64)> = lag
                .series
                .iter()
                .filter(|s| s.t_s >= warmup && s.t_s <= warmup + judged_s)
                .map(|s| (s.t_s, s.messages as f64))
                .collect();
            if let Some(trend) = Trend::fit(&points) {
                consumer_lag_slope.insert(group.clone(), trend.slope);
                if trend.growing((CONSUMER_GROWTH_MIN_SHARE * events_per_s).max(1.0)) {
                    reasons.push(format!("consumer group {group} lag growing at {:.0} messages/s", trend.slope));
                }
            }
        }
    }
    // Every `[[backlog]]` source is judged as a consumer group is: its known samples in the
    // judged part (unknown ones are left out, never read as 0).
    let mut backlog_slope = std::collections::BTreeMap::new();
    for source in &result.backlog {
        let points: Vec<(f64, f64)> = source
            .samples
            .iter()
            .filter(|s| s.t_s >= warmup && s.t_s <= warmup + judged_s)
            .filter_map(|s| s.backlog.map(|b| (s.t_s, b as f64)))
            .collect();
        if let Some(trend) = Trend::fit(&points) {
            backlog_slope.insert(source.name.clone(), trend.slope);
            // A `[bus]` consumer group (kind `kafka`) was judged above, on the same lag.
            let judged_above = source.kind == "kafka" && consumer_lag_slope.contains_key(&source.name);
            if !judged_above && trend.growing((CONSUMER_GROWTH_MIN_SHARE * events_per_s).max(1.0)) {
                reasons.push(format!(
                    "backlog {} ({}) growing at {:.0} entries/s (±{:.0})",
                    source.name,
                    source.kind,
                    trend.slope,
                    2.0 * trend.slope_error
                ));
            }
        }
    }
    let kind_p99 = |kind: &KindStats| (kind.count > 0).then_some(kind.latency_ms.p99);
    Step {
        index,
        rate,
        achieved_per_s: result.throughput.achieved_per_s,
        events_per_s,
        pass: reasons.is_empty() && !result.interrupted,
        reasons,
        command_p99_ms: kind_p99(&result.commands),
        query_p99_ms: kind_p99(&result.queries),
        lag_p99_ms: result.projection.as_ref().filter(|p| p.probes > 0).map(|p| p.lag_ms.p99),
        lag_slope_ms_per_s: lag_trend.map(|t| t.slope),
        consumer_lag_slope,
        backlog_slope,
        dropped: result.throughput.dropped,
        slo: result.slo.clone(),
        result_dir: String::new(),
        drained_after_s: 0.0,
    }
}

/// Acknowledged event-emitting commands per second of the judged part.
fn events_per_s(scenario: &Scenario, result: &RunResult) -> f64 {
    let emitting: Vec<&str> = match &scenario.projection {
        Some(p) => p.commands.iter().map(|&i| scenario.operations[i].name.as_str()).collect(),
        None => scenario.commands().map(|o| o.name.as_str()).collect(),
    };
    let ok: u64 = result
        .operations
        .iter()
        .filter(|(name, stats)| stats.kind == OpKind::Command.as_str() && emitting.contains(&name.as_str()))
        .map(|(_, stats)| stats.ok)
        .sum();
    if result.measured_s > 0.0 { ok as f64 / result.measured_s } else { 0.0 }
}

/// Waits until the read model keeps up again: a short check at a low rate, every
/// command probed, repeated (after a pause as long as the lag it saw) until the largest
/// lag is within the projection lag SLO (1 s without one). Runs before the first step
/// (the setup's own events may still be queued) and after a failing step, so no step
/// starts on another's backlog. Without `[projection]` nothing can be checked.
/// Returns how long it waited, and whether the target caught up within `MAX_DRAIN`.
pub async fn wait_for_drain(
    base: &Scenario,
    target: Arc<Routed>,
    threads: usize,
    shutdown: &CancellationToken,
) -> anyhow::Result<(Duration, bool)> {
    let Some(projection) = &base.projection else { return Ok((Duration::ZERO, true)) };
    let began = Instant::now();
    let threshold = base
        .slo
        .iter()
        .find_map(|r| {
            matches!(r.metric, SloMetric::ProjectionLag(_)).then(|| Duration::from_secs_f64(r.threshold / 1e3))
        })
        .unwrap_or(Duration::from_secs(1));
    let mut check = base.clone();
    check.load.stages = vec![Stage { duration: DRAIN_CHECK, from: DRAIN_CHECK_RATE, to: DRAIN_CHECK_RATE }];
    check.load.warmup = Duration::ZERO;
    check.actions.clear();
    check.verify = None;
    check.bus = None;
    check.slo.clear();
    check.projection = Some(crate::scenario::ProjectionSpec { sample: 1.0, ..projection.clone() });
    while began.elapsed() < MAX_DRAIN && !shutdown.is_cancelled() {
        let ids = RunIds::single();
        let gauges = Arc::new(Gauges::default());
        let hooks = run::Hooks { on_load_start: || {}, intervals: None, lag_intervals: None, keep_lag_records: true };
        let outcome = run::drive(&check, target.clone(), ids, threads, shutdown.clone(), gauges, hooks).await?;
        let Some(lag) = &outcome.probes.lag else { break };
        let worst = lag.figures.records.iter().map(|(_, lag)| lag.unwrap_or(projection.timeout)).max();
        match worst {
            Some(worst) if worst > threshold => {
                let pause = worst.min(MAX_DRAIN.saturating_sub(began.elapsed()));
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(pause) => {}
                }
            }
            // Caught up, or no command was acknowledged (nothing to wait for).
            _ => return Ok((began.elapsed(), true)),
        }
    }
    Ok((began.elapsed(), false))
}

/// A drain check: this long at `DRAIN_CHECK_RATE` operations/s.
const DRAIN_CHECK: Duration = Duration::from_secs(2);
const DRAIN_CHECK_RATE: f64 = 10.0;
