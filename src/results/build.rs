//! From what the generator collected to the result model, then the SLO verdicts.

use std::collections::BTreeMap;

use std::time::Duration;

use super::histogram::{encode, percentiles, sampled_percentiles};
use super::model::*;
use super::outcome::{LoadOutcome, StalenessOutcome};
use super::slo;
use crate::generator::OpFigures;
use crate::probe::actions::recovery_after;
use crate::probe::lag_figures::LagRow;
use crate::results::intervals::sum_over;
use crate::scenario::{LoadModel, OpKind, Scenario, SloMetric};

pub struct BuildInput<'a> {
    pub scenario: &'a Scenario,
    pub outcome: &'a LoadOutcome,
    pub run_id: u32,
    /// Where the load went, for the environment block.
    pub target_label: String,
}

pub fn build(input: BuildInput<'_>) -> RunResult {
    let BuildInput { scenario, outcome, run_id, target_label } = input;
    let collected = &outcome.totals;
    let warmup = scenario.load.warmup;
    let duration_s = outcome.load_elapsed.as_secs_f64();
    let measured_s = (outcome.load_elapsed.saturating_sub(warmup)).as_secs_f64();

    let per_operation = |window: &[OpFigures]| -> BTreeMap<String, OperationStats> {
        scenario
            .operations
            .iter()
            .zip(window)
            .map(|(op, figures)| (op.name.clone(), operation_stats(op.kind, figures)))
            .collect()
    };
    let operations = per_operation(&collected.measured);
    let kind_stats = |kind: OpKind| {
        let mut all = OpFigures::default();
        for (op, figures) in scenario.operations.iter().zip(&collected.measured) {
            if op.kind == kind {
                all.add(figures);
            }
        }
        KindStats {
            count: all.count,
            ok: all.ok,
            rejected: all.rejected,
            conflicts: all.conflicts,
            conflict_rate: conflict_rate(&all),
            errors: all.errors,
            error_rate: if all.count == 0 { 0.0 } else { all.errors as f64 / all.count as f64 },
            latency_ms: percentiles(&all.latency),
            service_time_ms: percentiles(&all.service_time),
        }
    };
    // Goodput (issue 12): a 500 or a timeout is not throughput; a business refusal is.
    let achieved: u64 = collected.measured.iter().map(|f| f.ok + f.rejected).sum();
    let errors: u64 = collected.measured.iter().map(|f| f.errors).sum();
    let per_s = |n: u64| {
        if measured_s > 0.0 { n as f64 / measured_s } else { 0.0 }
    };
    let throughput = Throughput {
        offered_per_s: per_s(outcome.dispatched.offered_measured),
        achieved_per_s: per_s(achieved),
        offered: outcome.dispatched.offered_measured,
        achieved,
        errors,
        errors_per_s: per_s(errors),
        dropped: outcome.dispatched.dropped_measured,
        unfinished: outcome.unfinished,
    };

    let mut warmup_all = OpFigures::default();
    for figures in &collected.warmup {
        warmup_all.add(figures);
    }

    let step = outcome.timeline_step;
    let closed = matches!(scenario.load.model, LoadModel::Closed { .. });
    let mut timeline = outcome.timeline.rows.clone();
    for row in &mut timeline {
        // Closed model: an operation is offered when a user starts it (issue 12).
        row.offered = if closed {
            row.achieved + row.conflicts + row.errors
        } else {
            sum_over(&outcome.dispatched.offered_per_s, row.t_s, step)
        };
        row.dropped = sum_over(&outcome.dispatched.dropped_per_s, row.t_s, step);
    }

    let mut result = RunResult {
        schema_version: SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").into(),
        verdict: Verdict::Pass,
        verdict_reason: None,
        interrupted: outcome.interrupted,
        started_at: humantime::format_rfc3339_millis(outcome.started_at).to_string(),
        duration_s,
        measured_s,
        warmup_s: warmup.as_secs_f64(),
        run_id: format!("{run_id:08x}"),
        shard: None,
        scenario: scenario.recorded.clone(),
        environment: environment(target_label),
        operations,
        commands: kind_stats(OpKind::Command),
        queries: kind_stats(OpKind::Query),
        throughput,
        generator: GeneratorStats {
            threads: Some(outcome.threads as u64),
            send_lag_ms: sampled_percentiles(&collected.send_lag),
            send_lag_unknown: collected.send_lag.is_empty().then(|| NOTHING_SENT_AFTER_WARMUP.into()),
            send_lag_over_bound: Some(super::send_lag::over_bound(
                &timeline,
                step,
                warmup.as_secs_f64(),
                super::send_lag::bound(&scenario.slo),
            )),
            max_in_flight: outcome.max_in_flight,
            max_backlog: outcome.max_backlog,
            max_backlog_bytes: outcome.max_backlog * crate::generator::BACKLOG_SLOT_BYTES as u64,
            // Set by the caller, which owns the HTTP target (issue 16).
            truncated_bodies: 0,
        },
        setup: SetupStats {
            requests: outcome.setup.requests,
            ok: outcome.setup.ok,
            errors: outcome.setup.errors,
            errors_by_class: outcome.setup.errors_by_class.clone(),
            errors_by_status: outcome.setup.errors_by_status.clone(),
            duration_s: outcome.setup.duration.as_secs_f64(),
        },
        warmup: WarmupStats {
            count: warmup_all.count,
            errors: warmup_all.errors,
            latency_ms: percentiles(&warmup_all.latency),
            send_lag_ms: (!collected.send_lag_warmup.is_empty()).then(|| percentiles(&collected.send_lag_warmup)),
            // Only a run with a warmup has any (event accounting covers it: issue 30).
            operations: if warmup.is_zero() { BTreeMap::new() } else { per_operation(&collected.warmup) },
        },
        projection: None,
        created: outcome.probes.created.clone(),
        staleness: outcome.probes.staleness.as_ref().map(|s| staleness_stats(s, scenario)),
        probe_load: None,
        events: None,
        values: None,
        counts: None,
        verify: None,
        bus: None,
        backlog: outcome.probes.backlog.clone(),
        actions: outcome.probes.actions.clone(),
        recovery: Vec::new(),
        target_truth: None,
        timeline,
        timeline_step_s: step,
        slo: Vec::new(),
        warnings: Vec::new(),
    };
    result.warnings.extend(crate::scenario::lint(scenario));
    result.warnings.extend(outcome.warnings.iter().cloned());
    add_probes(&mut result, scenario, outcome);
    crate::probe::backlog::figures::add_timeline_column(&mut result.timeline, &result.backlog, step);
    result.probe_load = probe_load(&result);
    result.warnings.extend(probe_load_warning(result.probe_load.as_ref()));
    judge(&mut result, scenario);
    result
}

/// Above this share of the requests, the probes are said to load what they measure.
pub const PROBE_LOAD_WARNING_SHARE: f64 = 0.10;

/// The probes' requests against everything sent during the load; `None` without probes.
pub fn probe_load(result: &RunResult) -> Option<ProbeLoad> {
    if result.projection.is_none() && result.staleness.is_none() && result.created.is_empty() {
        return None;
    }
    let lag_polls = result.projection.as_ref().map_or(0, |p| p.polls);
    let staleness_reads = result.staleness.as_ref().map_or(0, |s| s.reads);
    let resolve_polls = result.created.values().map(|c| c.polls).sum::<u64>();
    let requests = lag_polls + staleness_reads + resolve_polls;
    let operations: u64 =
        result.operations.values().map(|o| o.count).sum::<u64>() + result.warmup.count + result.throughput.unfinished;
    let all = requests + operations;
    Some(ProbeLoad {
        requests,
        per_s: if result.duration_s > 0.0 { requests as f64 / result.duration_s } else { 0.0 },
        share_of_requests: if all == 0 { 0.0 } else { requests as f64 / all as f64 },
        lag_polls,
        staleness_reads,
        resolve_polls,
    })
}

fn probe_load_warning(load: Option<&ProbeLoad>) -> Option<String> {
    let load = load.filter(|l| l.share_of_requests > PROBE_LOAD_WARNING_SHARE)?;
    Some(format!(
        "the probes sent {:.0} % of the requests ({} requests, {:.1}/s; over {:.0} %): they load the system \
         they measure; lower `[projection] sample` on a keyed query, `[staleness] sample`, or raise \
         `poll_interval`",
        load.share_of_requests * 100.0,
        load.requests,
        load.per_s,
        PROBE_LOAD_WARNING_SHARE * 100.0
    ))
}

fn add_probes(result: &mut RunResult, scenario: &Scenario, outcome: &LoadOutcome) {
    let probes = &outcome.probes;
    if let (Some(lag), Some(spec)) = (&probes.lag, &scenario.projection) {
        let figures = &lag.figures;
        result.warnings.extend(lag.misfit.clone());
        let timeout_ms = spec.timeout.as_secs_f64() * 1000.0;
        result.projection = Some(ProjectionStats {
            probes: figures.probes,
            late: figures.late,
            skipped: lag.skipped,
            ambiguous: lag.ambiguous,
            polls: lag.polls,
            poll_errors: lag.poll_errors,
            resolution_ms: lag.resolution.as_secs_f64() * 1000.0,
            timeout_ms,
            censored_at_ms: Some(timeout_ms),
            lag_ms: censored(percentiles(&figures.histogram), timeout_ms),
            histogram: encode(&figures.histogram),
            attribution: attribution(spec, outcome),
        });
        add_lag_timeline(&mut result.timeline, &figures.rows);
        // Recovery is judged against the projection-lag SLO (its tightest threshold), or
        // against the probe timeout when the scenario sets none.
        let threshold = scenario
            .slo
            .iter()
            .filter(|rule| matches!(rule.metric, SloMetric::ProjectionLag(_)))
            .map(|rule| Duration::from_secs_f64(rule.threshold / 1000.0))
            .min()
            .unwrap_or(spec.timeout);
        result.recovery = probes
            .actions
            .iter()
            .map(|action| {
                let at = Duration::from_secs_f64(action.at_s);
                Recovery {
                    action: action.name.clone(),
                    at_s: action.at_s,
                    recovered_after_s: recovery_after(at, threshold, RECOVERY_HOLD, &figures.records)
                        .map(|d| d.as_secs_f64()),
                    threshold_ms: threshold.as_secs_f64() * 1000.0,
                }
            })
            .collect();
    }
    if let Some(bus) = &probes.bus {
        // As written (`${ENV}` unresolved; issue 32), unless the harness set it (`capacity`
        // serving a reference variant names its own topic).
        let written = scenario.recorded.pointer("/bus/topic").and_then(|t| t.as_str()).filter(|t| t.contains("${"));
        let topic = match (written, &scenario.bus) {
            (Some(written), _) => written.to_owned(),
            (None, bus) => bus.as_ref().map_or_else(String::new, |b| b.topic.clone()),
        };
        result.bus = Some(BusStats {
            topic,
            messages: bus.messages,
            seen: bus.counts.seen,
            missed: bus.counts.missed,
            duplicates: bus.counts.duplicates,
            unexpected: bus.counts.unexpected,
            foreign: bus.foreign,
            timestamp_type: bus.timestamp_type.clone(),
            e2e_ms: percentiles(&bus.e2e),
            e2e_samples: bus.e2e.len(),
            e2e_histogram: encode(&bus.e2e),
            consumer_lag: bus.consumer_lag.clone(),
        });
    }
    if let Some(verify) = &probes.verify {
        result.events = verify.counts.clone();
        result.values = verify.values.clone();
        result.counts = verify.rows.clone();
        result.verify = Some(VerifyStats {
            sweeps: verify.sweeps,
            settled_after_s: verify.settled_after.as_secs_f64(),
            ledger_bytes: probes.ledger_bytes as u64,
            cut_short: verify.cut_short,
            stopped: Some(verify.stopped),
            stopped_because: Some(verify.stopped_because()),
            lag_bound_ms: verify.lag_bound.map(|b| b.as_secs_f64() * 1e3),
        });
    }
}

/// Lag attribution, when the run can tell any time between the ack and the read.
fn attribution(
    spec: &crate::scenario::ProjectionSpec,
    outcome: &LoadOutcome,
) -> Option<crate::probe::attribution::LagAttribution> {
    use crate::probe::attribution::{Sources, attribute};
    let (lag, bus) = (outcome.probes.lag.as_ref()?, outcome.probes.bus.as_ref());
    let received_told = spec.stages.received_at.is_some();
    let sources = Sources {
        placed: bus.map(|b| &b.placed),
        committed: bus.filter(|_| !received_told).map(|b| &b.committed),
        received_told,
        applied_told: spec.stages.applied_at.is_some(),
    };
    if sources.placed.is_none() && !sources.received_told && !sources.applied_told {
        return None;
    }
    Some(attribute(&lag.figures.seen, outcome.started_at, &sources))
}

/// Why `generator.send_lag_ms` is null.
pub const NOTHING_SENT_AFTER_WARMUP: &str = "nothing was sent after the warmup";

/// Lag must stay under its threshold this long to count as recovered.
const RECOVERY_HOLD: Duration = Duration::from_secs(1);

/// The lag of each timeline row, as the lag collector closed it.
fn add_lag_timeline(timeline: &mut [TimelineRow], rows: &[LagRow]) {
    let by_start: BTreeMap<u64, &LagRow> = rows.iter().map(|r| (r.t_s, r)).collect();
    for row in timeline {
        if let Some(lag) = by_start.get(&row.t_s) {
            row.projection_lag_p99_ms = lag.p99_ms;
            row.projection_late = lag.late;
        }
    }
}

/// Caps every figure at the censoring point. The histogram keeps 3 significant digits, so
/// a late probe recorded at a 10 s timeout reads back as up to 10.008 s; no probe is
/// visible after the timeout, so anything above it is that rounding.
fn censored(p: Percentiles, at_ms: f64) -> Percentiles {
    let cap = |v: f64| v.min(at_ms);
    Percentiles {
        min: cap(p.min),
        mean: cap(p.mean),
        p50: cap(p.p50),
        p90: cap(p.p90),
        p95: cap(p.p95),
        p99: cap(p.p99),
        p999: cap(p.p999),
        max: cap(p.max),
    }
}

/// (Re)computes the SLO table and the verdict. A run in which no operation got a
/// successful answer fails whatever its SLOs say, and is "could not run" (issue 18: a
/// target answering garbage passed `min_throughput` on errors, `missed = 0` on nothing).
pub fn judge(result: &mut RunResult, scenario: &Scenario) {
    judge_rules(result, &scenario.slo);
}

/// The SLO verdicts and the run's verdict, by `rules` (`merge` reads them back from the
/// shards' results).
pub fn judge_rules(result: &mut RunResult, rules: &[crate::scenario::SloRule]) {
    result.slo = slo::evaluate(rules, result);
    let unanswered = no_successful_answer(result);
    result.verdict =
        if unanswered.is_none() && result.slo.iter().all(|s| s.pass) { Verdict::Pass } else { Verdict::Fail };
    result.verdict_reason = unanswered;
}

/// `Some(why)` when no load operation (warmup included) was answered ok or refused by a
/// business rule.
fn no_successful_answer(result: &RunResult) -> Option<String> {
    let warmup_answered = result.warmup.count.saturating_sub(result.warmup.errors);
    // Conflicts are answers too: a run of nothing but conflicts is judged by its SLOs.
    let conflicts = result.commands.conflicts + result.queries.conflicts;
    if result.throughput.achieved + warmup_answered + conflicts > 0 {
        return None;
    }
    let failed = result.throughput.errors + result.warmup.errors;
    let unfinished = result.throughput.unfinished;
    if failed == 0 {
        return Some(if unfinished > 0 {
            format!("no operation got an answer: {unfinished} sent, none answered before the run ended")
        } else {
            "no operation ran".into()
        });
    }
    // The breakdown counts what `failed` counts: the warmup's failures too (issue 32:
    // "1825 failed (transport: 1000)" listed the measured window's only).
    let mut by_class: BTreeMap<String, u64> = BTreeMap::new();
    for stats in result.operations.values().chain(result.warmup.operations.values()) {
        for (class, n) in &stats.errors_by_class {
            if class == "status" {
                for (status, n) in &stats.errors_by_status {
                    *by_class.entry(format!("status {status}")).or_default() += n;
                }
            } else {
                *by_class.entry(class.clone()).or_default() += n;
            }
        }
    }
    let mut classes: Vec<String> = by_class.iter().map(|(class, n)| format!("{class}: {n}")).collect();
    // Results written before the warmup kept its figures per operation have no breakdown of it.
    let classified: u64 = by_class.values().sum();
    if !classes.is_empty() && classified < failed {
        classes.push(format!("not classified: {}", failed - classified));
    }
    let detail = if classes.is_empty() { String::new() } else { format!(" ({})", classes.join(", ")) };
    let unfinished = if unfinished > 0 { format!(", {unfinished} unanswered") } else { String::new() };
    Some(format!("no operation got a successful answer: {failed} failed{detail}{unfinished}"))
}

/// Conflicts / answered operations: how often a write lost the race for its aggregate.
fn conflict_rate(figures: &OpFigures) -> f64 {
    let unexpected_statuses = figures.errors_by_class.get("status").copied().unwrap_or(0);
    let answered = figures.ok + figures.rejected + figures.conflicts + unexpected_statuses;
    if answered == 0 { 0.0 } else { figures.conflicts as f64 / answered as f64 }
}

fn operation_stats(kind: OpKind, figures: &OpFigures) -> OperationStats {
    OperationStats {
        kind: kind.as_str().into(),
        count: figures.count,
        ok: figures.ok,
        rejected: figures.rejected,
        conflicts: figures.conflicts,
        conflict_rate: conflict_rate(figures),
        errors: figures.errors,
        errors_by_class: figures.errors_by_class.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        errors_by_status: figures.errors_by_status.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        latency_ms: sampled_percentiles(&figures.latency),
        service_time_ms: sampled_percentiles(&figures.service_time),
        histogram: encode(&figures.latency),
        service_time_histogram: encode(&figures.service_time),
    }
}

fn environment(target: String) -> Environment {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let git_revision = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    Environment {
        host,
        os: std::env::consts::OS.into(),
        arch: std::env::consts::ARCH.into(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        git_revision,
        target,
    }
}

/// `[staleness]` figures as result.json holds them: per delay, P(fresh) with its interval.
fn staleness_stats(outcome: &StalenessOutcome, scenario: &Scenario) -> crate::results::model::StalenessStats {
    use crate::probe::staleness::{share_with_interval, visible_at};
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let points = outcome
        .figures
        .iter()
        .map(|f| {
            let (p_fresh, p_fresh_low, p_fresh_high) = share_with_interval(f.fresh, f.reads);
            crate::results::model::StalenessPoint {
                delay_ms: ms(f.delay),
                reads: f.reads,
                fresh: f.fresh,
                errors: f.errors,
                p_fresh,
                p_fresh_low,
                p_fresh_high,
                mean_actual_delay_ms: ms(f.mean_actual),
            }
        })
        .collect();
    crate::results::model::StalenessStats {
        sampled: outcome.sampled,
        skipped: outcome.skipped,
        reads: outcome.figures.iter().map(|f| f.reads).sum(),
        errors: outcome.figures.iter().map(|f| f.errors).sum(),
        points,
        fresh_p99_at_ms: visible_at(&outcome.figures, 0.99).map(ms),
        fresh_p999_at_ms: visible_at(&outcome.figures, 0.999).map(ms),
        traffic: outcome
            .traffic
            .iter()
            .map(|t| {
                let (stale_rate, stale_rate_low, stale_rate_high) = share_with_interval(t.stale, t.reads);
                crate::results::model::TrafficStaleness {
                    query: scenario.operations[t.op].name.clone(),
                    reads: t.reads,
                    stale: t.stale,
                    unjudged: t.unjudged,
                    stale_rate,
                    stale_rate_low,
                    stale_rate_high,
                }
            })
            .collect(),
        traffic_untracked: outcome.traffic_untracked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 18: a run whose every operation failed is "could not run", whatever its SLOs.
    #[test]
    fn issue18_no_successful_answer_is_named() {
        let mut result = RunResult::default();
        assert_eq!(no_successful_answer(&result).as_deref(), Some("no operation ran"));
        result.throughput.unfinished = 7;
        assert_eq!(
            no_successful_answer(&result).as_deref(),
            Some("no operation got an answer: 7 sent, none answered before the run ended")
        );
        result.throughput.errors = 10;
        result.warmup = WarmupStats { count: 2, errors: 2, ..Default::default() };
        let op = OperationStats {
            errors_by_class: [("status".to_owned(), 4), ("timeout".to_owned(), 6)].into(),
            errors_by_status: [("502".to_owned(), 4)].into(),
            ..Default::default()
        };
        result.operations.insert("deposit".into(), op);
        assert_eq!(
            no_successful_answer(&result).as_deref(),
            Some(
                "no operation got a successful answer: 12 failed (status 502: 4, timeout: 6, not classified: 2), \
                 7 unanswered"
            )
        );
        // Issue 32: the warmup's failures are in the breakdown as in the total.
        let warmup = OperationStats { errors_by_class: [("transport".to_owned(), 2)].into(), ..Default::default() };
        result.warmup.operations.insert("deposit".into(), warmup);
        assert_eq!(
            no_successful_answer(&result).as_deref(),
            Some(
                "no operation got a successful answer: 12 failed (status 502: 4, timeout: 6, transport: 2), 7 unanswered"
            )
        );
        // One success anywhere (a business refusal counts, as in goodput): the SLOs decide.
        result.warmup.errors = 1;
        assert_eq!(no_successful_answer(&result), None);
        result.warmup.errors = 2;
        result.throughput.achieved = 1;
        assert_eq!(no_successful_answer(&result), None);
    }

    /// Issue 30: the probes' requests against everything sent, and a warning above 10 %.
    #[test]
    fn probe_load_is_a_share_of_all_requests() {
        let mut result = RunResult { duration_s: 10.0, ..Default::default() };
        assert_eq!(probe_load(&result), None);
        result.operations.insert("create".into(), OperationStats { count: 700, ..Default::default() });
        result.warmup.count = 100;
        result.projection = Some(ProjectionStats { polls: 150, ..Default::default() });
        result.staleness = Some(StalenessStats { reads: 50, ..Default::default() });
        let load = probe_load(&result).unwrap();
        assert_eq!((load.requests, load.lag_polls, load.staleness_reads), (200, 150, 50));
        assert_eq!((load.per_s, load.share_of_requests), (20.0, 0.2));
        let warning = probe_load_warning(Some(&load)).expect("20 % is over 10 %");
        assert!(warning.starts_with("the probes sent 20 % of the requests (200 requests, 20.0/s"), "{warning}");
        let light = ProbeLoad { share_of_requests: 0.1, ..load };
        assert_eq!(probe_load_warning(Some(&light)), None);
    }
}
