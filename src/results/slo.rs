//! SLO verdicts: each `[slo]` rule against the observed figure in the result.

use super::model::{RunResult, SloResult};
use crate::probe::reconcile::EventCounts;
use crate::results::histogram;
use crate::scenario::{SloMetric, SloRule};

/// Judges every rule. A rule whose figure the run did not produce fails (`observed: null`):
/// an SLO nobody measured is not met.
pub fn evaluate(rules: &[SloRule], result: &RunResult) -> Vec<SloResult> {
    rules
        .iter()
        .map(|rule| {
            let observed = observe(&rule.metric, result);
            let unsure = observed.and_then(|_| unsure(&rule.metric, result));
            let lower_bound = rule.metric.is_lower_bound();
            let met = observed.is_some_and(|v| if lower_bound { v >= rule.threshold } else { v <= rule.threshold });
            // A definite figure over the threshold fails; within it, the unsure ones fail
            // the rule unless even the worst they could be keeps it (issue 30).
            let pass =
                met && unsure.as_ref().is_none_or(|u| observed.is_some_and(|v| u.cannot_break(v, rule.threshold)));
            SloResult {
                name: rule.name.clone(),
                threshold: rule.threshold,
                observed,
                pass,
                comparison: if lower_bound { ">=" } else { "<=" }.into(),
                unit: unit(&rule.metric).into(),
                unknown_because: if observed.is_none() { unknown_because(&rule.metric, result) } else { None },
                unsure: unsure.map(|u| match pass {
                    true => format!("{}: within the threshold even at worst", u.left),
                    false => format!("could not verify: {}", u.left),
                }),
            }
        })
        .collect()
}

pub(crate) fn unit(metric: &SloMetric) -> &'static str {
    match metric {
        SloMetric::CommandLatency(_)
        | SloMetric::QueryLatency(_)
        | SloMetric::OperationLatency { .. }
        | SloMetric::ProjectionLag(_) => "ms",
        SloMetric::BusEndToEnd(_) | SloMetric::BacklogDrain => "ms",
        SloMetric::Duplicates
        | SloMetric::ValueMismatches
        | SloMetric::CountMismatches
        | SloMetric::Missed
        | SloMetric::Unexpected
        | SloMetric::Dropped
        | SloMetric::ConsumerLagMax
        | SloMetric::BacklogMax => "count",
        SloMetric::CommandErrorRate
        | SloMetric::QueryErrorRate
        | SloMetric::ConflictRate
        | SloMetric::LateRatio
        | SloMetric::StaleReadAt(_)
        | SloMetric::StaleReadRate => "ratio",
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

/// Why a rule has no figure, when the run knows.
fn unknown_because(metric: &SloMetric, result: &RunResult) -> Option<String> {
    match metric {
        SloMetric::Duplicates | SloMetric::Missed if acked(result) == Some(0) => {
            Some("no data: nothing was acknowledged (nothing to verify)".into())
        }
        SloMetric::Duplicates | SloMetric::Missed | SloMetric::Unexpected => match &result.events {
            None if result.verify.as_ref().is_some_and(|v| v.cut_short) => {
                Some("could not verify: interrupted before a sweep of the read model finished".into())
            }
            None if result.verify.is_none() && result.bus.is_none() => Some("no [verify] or [bus] ran".into()),
            _ => None,
        },
        SloMetric::ConflictRate if result.commands.count == 0 => Some("no data: no command ran".into()),
        SloMetric::BacklogMax => {
            let unread: Vec<&str> =
                result.backlog.iter().filter(|b| b.max.is_none()).map(|b| b.name.as_str()).collect();
            Some(format!("no sample of [[backlog]] {} could be read", unread.join(", ")))
        }
        SloMetric::BacklogDrain => {
            let left: Vec<String> = result
                .backlog
                .iter()
                .filter(|b| b.drained_after_ms.is_none())
                .map(|b| match b.not_drained {
                    Some(n) => format!("`{}` not drained: {n} left", b.name),
                    None => format!("`{}`: no sample after the load could be read", b.name),
                })
                .collect();
            Some(left.join("; "))
        }
        SloMetric::ValueMismatches => match &result.values {
            Some(_) => None,
            None => Some("no [verify] value accounting ran".into()),
        },
        SloMetric::CountMismatches => match &result.counts {
            Some(_) => None,
            None => Some("no [verify] count accounting ran".into()),
        },
        SloMetric::StaleReadAt(ms) => Some(match stale_point(result, *ms) {
            None => "no [staleness] reads ran".into(),
            Some(p) if p.errors > 0 => format!("no reads answered at {ms} ms ({} failed)", p.errors),
            Some(_) => format!("no command was sampled for reads at {ms} ms"),
        }),
        SloMetric::StaleReadRate => Some(match &result.staleness {
            None => "no [staleness] ran".into(),
            Some(s) if s.traffic.iter().any(|t| t.unjudged > 0) => {
                "no read of the traffic could be judged (keys with too many unseen commands)".into()
            }
            Some(_) => "no read of the traffic was of a key with a command acknowledged before it".into(),
        }),
        _ => None,
    }
}

/// What a verdict's figure leaves out (issue 30): the definite count is judged, and the
/// refs or keys that could not be judged are named beside it.
struct Unsure {
    /// How much they could add to the figure at worst (`None`: without bound, e.g. the
    /// duplicates an unreadable key may hide).
    at_most: Option<u64>,
    /// What was left unjudged, in words.
    left: String,
}

impl Unsure {
    /// The rule holds whatever the unsure ones turn out to be.
    fn cannot_break(&self, observed: f64, threshold: f64) -> bool {
        self.at_most.is_some_and(|n| observed + n as f64 <= threshold)
    }
}

fn unsure(metric: &SloMetric, result: &RunResult) -> Option<Unsure> {
    // A maximum over samples some of which were unknown may miss the real maximum.
    if *metric == SloMetric::BacklogMax {
        let left: Vec<String> = result
            .backlog
            .iter()
            .filter(|b| b.unknown_seconds > 0.0)
            .map(|b| format!("`{}` unknown for {:.0} s", b.name, b.unknown_seconds))
            .collect();
        return (!left.is_empty()).then(|| Unsure { at_most: None, left: left.join("; ") });
    }
    let (at_most, left) = match (metric, &result.events, &result.values) {
        (SloMetric::Duplicates | SloMetric::Missed | SloMetric::Unexpected, Some(e), _) => {
            let mut left = Vec::new();
            if e.unknown > 0 {
                left.push(format!(
                    "{} acknowledged refs unknown ({} of {} reads of the read model failed)",
                    e.unknown, e.read_errors, e.keys_checked
                ));
            }
            let pending = if *metric == SloMetric::Missed { e.pending } else { 0 };
            if pending > 0 {
                left.push(format!(
                    "{pending} refs pending (not visible when verification stopped, not passed by the projector)"
                ));
            }
            // Each unknown or pending ref is at most one miss; what an unread key hides
            // of the other classes has no bound.
            let at_most = match metric {
                SloMetric::Missed => Some(e.unknown + pending),
                _ => (e.unknown == 0).then_some(0),
            };
            (at_most, left)
        }
        (SloMetric::ValueMismatches, _, Some(v)) => {
            let mut left = Vec::new();
            if v.unreadable > 0 {
                left.push(format!("{} of {} keys unreadable", v.unreadable, v.keys_checked));
            }
            if v.unsure > 0 {
                left.push(format!("{} keys had commands without an answer (their value is unknown)", v.unsure));
            }
            (Some(v.unreadable + v.unsure), left)
        }
        (SloMetric::CountMismatches, ..) => {
            let Some(c) = &result.counts else { return None };
            let mut left = Vec::new();
            if c.unreadable > 0 {
                left.push(format!("{} of {} keys unreadable", c.unreadable, c.keys_checked));
            }
            if c.unsure > 0 {
                left.push(format!("{} keys had commands without an answer (their row count is unknown)", c.unsure));
            }
            (Some(c.unreadable + c.unsure), left)
        }
        _ => return None,
    };
    (!left.is_empty()).then(|| Unsure { at_most, left: left.join("; ") })
}

/// Commands acknowledged (the refs `missed` and `duplicates` are about): from the read
/// model's accounting, else from the bus (acknowledged refs seen or missed on it).
fn acked(result: &RunResult) -> Option<u64> {
    match (&result.events, &result.bus) {
        (Some(e), _) => Some(e.acked),
        (None, Some(b)) => Some(b.missed + b.seen.saturating_sub(b.unexpected)),
        (None, None) => None,
    }
}

/// A count from the read model when `[verify]` ran (counted on the keys it could read;
/// what it could not judge is `unsure`), else from the bus.
fn verified(events: Option<&EventCounts>, bus: Option<u64>, count: impl Fn(&EventCounts) -> u64) -> Option<f64> {
    match events {
        Some(e) => Some(count(e) as f64),
        None => bus.map(|n| n as f64),
    }
}

fn observe(metric: &SloMetric, result: &RunResult) -> Option<f64> {
    let events = result.events.as_ref();
    let bus = result.bus.as_ref();
    match metric {
        SloMetric::StaleReadAt(ms) => stale_point(result, *ms)?.p_fresh.map(|p| 1.0 - p),
        SloMetric::StaleReadRate => result.staleness.as_ref()?.traffic_stale_rate(),
        SloMetric::CommandLatency(p) => kind_percentile(result, "command", *p),
        SloMetric::QueryLatency(p) => kind_percentile(result, "query", *p),
        SloMetric::OperationLatency { operation, percentile } => {
            let stats = result.operations.get(operation)?;
            histogram::percentile_ms(&histogram::decode(&stats.histogram).ok()?, *percentile)
        }
        // Late probes are in the histogram at the timeout (issue 12): a percentile that
        // reaches into them reads as the timeout, capped there as in `projection.lag_ms`.
        SloMetric::ProjectionLag(p) => {
            let projection = result.projection.as_ref()?;
            let lag = histogram::percentile_ms(&histogram::decode(&projection.histogram).ok()?, *p)?;
            Some(projection.censored_at_ms.map_or(lag, |at| lag.min(at)))
        }
        SloMetric::LateRatio => {
            let projection = result.projection.as_ref().filter(|p| p.probes > 0)?;
            Some(projection.late as f64 / projection.probes as f64)
        }
        // From the read model when `[verify]` ran, else from the bus. What could not be
        // judged (unreadable keys, pending refs) fails the rule beside the definite count
        // (issue 30), rather than hiding it or passing on what could be read.
        // Nothing acknowledged: nothing was verified, so `missed = 0` is no evidence (issue 18).
        SloMetric::Duplicates | SloMetric::Missed if acked(result) == Some(0) => None,
        SloMetric::Duplicates => verified(events, bus.map(|b| b.duplicates), |e| e.duplicates),
        SloMetric::Missed => verified(events, bus.map(|b| b.missed), |e| e.missed),
        SloMetric::Unexpected => verified(events, bus.map(|b| b.unexpected), |e| e.unexpected),
        SloMetric::ValueMismatches => result.values.as_ref().map(|v| v.wrong() as f64),
        SloMetric::CountMismatches => result.counts.as_ref().map(|c| c.wrong() as f64),
        SloMetric::CommandErrorRate => (result.commands.count > 0).then_some(result.commands.error_rate),
        SloMetric::QueryErrorRate => (result.queries.count > 0).then_some(result.queries.error_rate),
        SloMetric::ConflictRate => (result.commands.count > 0).then_some(result.commands.conflict_rate),
        SloMetric::MinThroughput => Some(result.throughput.achieved_per_s),
        SloMetric::Dropped => Some(result.throughput.dropped as f64),
        SloMetric::ConsumerLagMax => {
            result.bus.as_ref().and_then(|b| b.consumer_lag.values().map(|g| g.max_messages).max()).map(|m| m as f64)
        }
        SloMetric::BusEndToEnd(p) => {
            let bus = result.bus.as_ref()?;
            histogram::percentile_ms(&histogram::decode(&bus.e2e_histogram).ok()?, *p)
        }
        // Judged per source: the worst source's figure; one without a figure (nothing
        // read; not drained) leaves the rule unknown, and so failed.
        SloMetric::BacklogMax if !result.backlog.is_empty() => {
            result.backlog.iter().map(|b| b.max.map(|m| m as f64)).try_fold(0.0_f64, |worst, m| Some(worst.max(m?)))
        }
        SloMetric::BacklogDrain if !result.backlog.is_empty() => {
            result.backlog.iter().map(|b| b.drained_after_ms).try_fold(0.0_f64, |worst, ms| Some(worst.max(ms?)))
        }
        SloMetric::BacklogMax | SloMetric::BacklogDrain => None,
    }
}

/// The `[staleness]` point at `ms` after the acknowledgement.
fn stale_point(result: &RunResult, ms: f64) -> Option<&super::model::StalenessPoint> {
    result.staleness.as_ref()?.points.iter().find(|p| (p.delay_ms - ms).abs() < 1e-6)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::results::model::{KindStats, ProjectionStats};

    fn rule(name: &str, metric: SloMetric, threshold: f64) -> SloRule {
        SloRule { name: name.into(), metric, threshold }
    }

    /// Issue 18: `missed = 0` with nothing acknowledged verified nothing: no data, fails.
    #[test]
    fn issue18_nothing_acknowledged_is_no_data() {
        let rules = [rule("missed", SloMetric::Missed, 0.0), rule("duplicates", SloMetric::Duplicates, 0.0)];
        let mut result = RunResult { events: Some(EventCounts::default()), ..Default::default() };
        for judged in evaluate(&rules, &result) {
            assert!(!judged.pass && judged.observed.is_none(), "{judged:?}");
            assert_eq!(
                judged.unknown_because.as_deref(),
                Some("no data: nothing was acknowledged (nothing to verify)")
            );
        }
        result.events = Some(EventCounts { acked: 3, ..Default::default() });
        assert!(evaluate(&rules, &result).iter().all(|j| j.pass && j.observed == Some(0.0)));
        // From the bus: acknowledged refs are those seen (not unexpected) or missed.
        result.events = None;
        result.bus = Some(crate::results::model::BusStats { seen: 2, unexpected: 2, ..Default::default() });
        assert!(evaluate(&rules, &result).iter().all(|j| !j.pass));
        result.bus = Some(crate::results::model::BusStats { seen: 3, unexpected: 2, ..Default::default() });
        assert!(evaluate(&rules, &result).iter().all(|j| j.pass));
    }

    /// Issue 31: `conflict_rate` is a ratio of the answered commands, failing above its
    /// threshold; no data without commands.
    #[test]
    fn conflict_rate_is_judged_on_commands() {
        let rules = [rule("conflict_rate", SloMetric::ConflictRate, 0.05)];
        let mut result = RunResult::default();
        let judged = &evaluate(&rules, &result)[0];
        assert!(!judged.pass && judged.observed.is_none(), "{judged:?}");
        assert_eq!(judged.unknown_because.as_deref(), Some("no data: no command ran"));
        result.commands = KindStats { count: 100, conflicts: 4, conflict_rate: 0.04, ..Default::default() };
        assert!(evaluate(&rules, &result)[0].pass);
        result.commands.conflict_rate = 0.06;
        let judged = &evaluate(&rules, &result)[0];
        assert!(!judged.pass && judged.observed == Some(0.06), "{judged:?}");
        assert_eq!(judged.unit, "ratio");
    }

    /// Issue 12: the lag SLO reads the histogram, where late probes sit at the timeout,
    /// capped there as `projection.lag_ms` is; `late_ratio` is late / probes.
    #[test]
    fn lag_slos_read_the_censored_histogram() {
        let mut lag = histogram::new_latency_histogram();
        for _ in 0..95 {
            histogram::record(&mut lag, Duration::from_millis(20));
        }
        for _ in 0..5 {
            histogram::record(&mut lag, Duration::from_secs(10)); // late: at the timeout
        }
        let projection = ProjectionStats {
            probes: 100,
            late: 5,
            timeout_ms: 10_000.0,
            censored_at_ms: Some(10_000.0),
            histogram: histogram::encode(&lag),
            ..Default::default()
        };
        let mut result = RunResult { projection: Some(projection), ..Default::default() };
        let rules = [
            rule("projection_lag_p99", SloMetric::ProjectionLag(99.0), 500.0),
            rule("projection_lag_p90", SloMetric::ProjectionLag(90.0), 500.0),
            rule("late_ratio", SloMetric::LateRatio, 0.01),
        ];
        let judged = evaluate(&rules, &result);
        assert_eq!(judged[0].observed, Some(10_000.0), "p99 reaches the late probes: the timeout, not 10.008 s");
        assert!(!judged[0].pass);
        assert!(judged[1].observed.is_some_and(|v| (v - 20.0).abs() < 0.1) && judged[1].pass);
        assert_eq!(judged[2].observed, Some(0.05));
        assert!(!judged[2].pass);
        assert_eq!(judged[2].unit, "ratio");

        // No probes: no data, which fails.
        result.projection = Some(ProjectionStats::default());
        let judged = evaluate(&rules, &result);
        assert!(judged.iter().all(|s| s.observed.is_none() && !s.pass), "{judged:?}");
    }

    /// Issue 30: the definite count is the figure; what could not be judged fails the rule
    /// beside it, unless even its worst keeps the rule.
    #[test]
    fn issue30_definite_counts_are_judged_and_the_unsure_named_beside_them() {
        let events = |missed, pending| EventCounts { acked: 100, missed, pending, ..Default::default() };
        let judge =
            |result: &RunResult, threshold| evaluate(&[rule("missed", SloMetric::Missed, threshold)], result).remove(0);
        let mut result = RunResult { events: Some(events(3, 2)), ..Default::default() };
        let judged = judge(&result, 0.0);
        assert_eq!((judged.observed, judged.pass), (Some(3.0), false));
        assert!(judged.unsure.as_deref().unwrap().starts_with("could not verify: 2 refs pending"), "{judged:?}");
        // Within the threshold even if both pending refs were missed: a pass, with the note.
        let judged = judge(&result, 5.0);
        assert!(judged.pass && judged.unsure.as_deref().unwrap().ends_with("within the threshold even at worst"));
        // Nothing definite, but the pending could break it: no pass.
        result.events = Some(events(0, 2));
        let judged = judge(&result, 1.0);
        assert_eq!((judged.observed, judged.pass), (Some(0.0), false));
        // Duplicates are not made unsure by pending refs.
        let judged = evaluate(&[rule("duplicates", SloMetric::Duplicates, 0.0)], &result).remove(0);
        assert!(judged.pass && judged.unsure.is_none(), "{judged:?}");

        // Values: 23 definitely wrong (mismatched or absent), 58 unsure: fails with 23.
        let mut values = crate::probe::values::ValueCounts::default();
        (values.keys_checked, values.mismatched, values.absent, values.unsure) = (100, 20, 3, 58);
        let result = RunResult { values: Some(values), ..Default::default() };
        let judged = evaluate(&[rule("value_mismatches", SloMetric::ValueMismatches, 0.0)], &result).remove(0);
        assert_eq!((judged.observed, judged.pass), (Some(23.0), false));
        assert!(judged.unsure.as_deref().unwrap().contains("58 keys had commands without an answer"));
    }

    /// Issue 31: `count_mismatches` judges the keys definitely wrong and names the unsure
    /// and unreadable ones beside them; within the threshold it still fails unless even
    /// their worst keeps it.
    #[test]
    fn issue31_count_mismatches_judge_definite_keys_and_name_the_unsure() {
        let mut counts = crate::probe::counts::RowCounts::default();
        (counts.keys_checked, counts.mismatched_keys, counts.unsure, counts.unreadable) = (100, 7, 4, 1);
        let result = RunResult { counts: Some(counts), ..Default::default() };
        let judge =
            |threshold| evaluate(&[rule("count_mismatches", SloMetric::CountMismatches, threshold)], &result).remove(0);
        let judged = judge(0.0);
        assert_eq!((judged.observed, judged.pass, judged.unit.as_str()), (Some(7.0), false, "count"));
        let unsure = judged.unsure.unwrap();
        assert!(unsure.contains("1 of 100 keys unreadable") && unsure.contains("4 keys had commands"), "{unsure}");
        assert!(!judge(10.0).pass, "7 + 5 unsure could exceed 10");
        assert!(judge(12.0).pass, "even at worst 12");
        let none = evaluate(&[rule("count_mismatches", SloMetric::CountMismatches, 0.0)], &RunResult::default());
        assert_eq!(none[0].observed, None);
    }
}
