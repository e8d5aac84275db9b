//! When the generator itself fell behind its schedule (issue 30). A latency measured from
//! the intended start includes the generator's own lateness: seconds in which it sent late
//! cannot tell a slower target from a slower generator. The timeline has the send-lag p99
//! of each row; this finds the rows after the warmup over a bound, so the summary, the
//! report and `compare` can say so instead of blaming the target.

use crate::scenario::{SloMetric, SloRule};

use super::model::{SendLagOverBound, TimelineRow};

/// The bound without a command-latency SLO: 10 ms, a tenth of a typical 100 ms SLO and far
/// above a healthy generator's send lag (p99 well under 1 ms here at 50,000/s).
pub const DEFAULT_BOUND_MS: f64 = 10.0;

/// The bound's share of the tightest command-latency SLO: lateness under a tenth of it
/// cannot turn a pass into a fail on its own.
pub const SLO_SHARE: f64 = 0.1;

/// The send-lag bound for a scenario's SLOs: 10 % of the tightest command-latency SLO,
/// else [`DEFAULT_BOUND_MS`]; with where it comes from, for result.json and the summary.
pub fn bound(rules: &[SloRule]) -> (f64, String) {
    let tightest = rules
        .iter()
        .filter(|rule| matches!(rule.metric, SloMetric::CommandLatency(_)))
        .min_by(|a, b| a.threshold.total_cmp(&b.threshold));
    match tightest {
        Some(rule) => (rule.threshold * SLO_SHARE, format!("10 % of {} = {} ms", rule.name, rule.threshold)),
        None => (DEFAULT_BOUND_MS, "default (no command latency SLO)".into()),
    }
}

/// The rows from `warmup_s` on whose send-lag p99 is over `bound_ms`: how many seconds,
/// the first and the last (a row of `step` seconds counts as all of them).
pub fn over_bound(
    timeline: &[TimelineRow],
    step: u64,
    warmup_s: f64,
    (bound_ms, bound_from): (f64, String),
) -> SendLagOverBound {
    let step = step.max(1);
    let late: Vec<u64> = timeline
        .iter()
        .filter(|row| row.t_s as f64 >= warmup_s)
        .filter(|row| row.send_lag_p99_ms.is_some_and(|p99| p99 > bound_ms))
        .map(|row| row.t_s)
        .collect();
    SendLagOverBound {
        bound_ms,
        bound_from,
        seconds: late.len() as u64 * step,
        first_s: late.first().copied(),
        last_s: late.last().map(|t_s| t_s + step - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, metric: SloMetric, threshold: f64) -> SloRule {
        SloRule { name: name.into(), metric, threshold }
    }

    #[test]
    fn the_bound_is_a_tenth_of_the_tightest_command_latency_slo() {
        assert_eq!(bound(&[]).0, DEFAULT_BOUND_MS);
        let rules = [
            rule("query_latency_p99", SloMetric::QueryLatency(99.0), 20.0),
            rule("command_latency_p99", SloMetric::CommandLatency(99.0), 500.0),
            rule("command_latency_p95", SloMetric::CommandLatency(95.0), 200.0),
        ];
        let (ms, from) = bound(&rules);
        assert!((ms - 20.0).abs() < 1e-9, "{ms}");
        assert_eq!(from, "10 % of command_latency_p95 = 200 ms");
        assert_eq!(bound(&rules[..1]).0, DEFAULT_BOUND_MS, "a query SLO is not the generator's");
    }

    fn rows(p99s: &[Option<f64>]) -> Vec<TimelineRow> {
        p99s.iter()
            .enumerate()
            .map(|(t, p99)| TimelineRow { t_s: t as u64, send_lag_p99_ms: *p99, ..Default::default() })
            .collect()
    }

    #[test]
    fn counts_the_late_seconds_after_the_warmup() {
        let bound = || (10.0, "default".to_owned());
        // Second 0 is warmup (late, as a cold start is): not counted.
        let timeline = rows(&[Some(50.0), Some(1.0), Some(12.0), None, Some(10.0), Some(30.0), Some(0.2)]);
        let over = over_bound(&timeline, 1, 1.0, bound());
        assert_eq!((over.seconds, over.first_s, over.last_s), (2, Some(2), Some(5)));
        let none = over_bound(&rows(&[Some(1.0), Some(9.9)]), 1, 0.0, bound());
        assert_eq!((none.seconds, none.first_s, none.last_s), (0, None, None));
        // Rows of 4 seconds: a late row is 4 late seconds, the last one its end.
        let long = vec![
            TimelineRow { t_s: 0, send_lag_p99_ms: Some(1.0), ..Default::default() },
            TimelineRow { t_s: 4, send_lag_p99_ms: Some(11.0), ..Default::default() },
        ];
        let over = over_bound(&long, 4, 0.0, bound());
        assert_eq!((over.seconds, over.first_s, over.last_s), (4, Some(4), Some(7)));
    }
}
