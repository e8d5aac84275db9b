//! The terminal summary: verdict, SLO table (observed vs threshold), per-operation
//! latency table, throughput and generator accuracy. Returns text; the caller prints.

use std::fmt::Write as _;

use crate::results::model::{Percentiles, ProjectionStats, RunResult, SloResult, Verdict};

pub fn render(result: &RunResult, out_dir: &std::path::Path) -> String {
    let mut s = String::new();
    let name = result.scenario.get("name").and_then(|v| v.as_str()).unwrap_or("scenario");
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{name}: {:.1}s load ({:.1}s measured after {:.1}s warmup) against {}{}",
        result.duration_s,
        result.measured_s,
        result.warmup_s,
        result.environment.target,
        if result.interrupted { "  [INTERRUPTED]" } else { "" }
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{:<16} {:>4} {:>8} {:>8} {:>8} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "operation",
        "kind",
        "count",
        "ok",
        "rejected",
        "err",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "svc p99"
    );
    for (name, op) in &result.operations {
        let kind = if op.kind == "command" { "cmd" } else { "qry" };
        let _ = writeln!(
            s,
            "{:<16} {:>4} {:>8} {:>8} {:>8} {:>6} {}  {:>9}",
            truncate(name, 16),
            kind,
            op.count,
            op.ok,
            op.rejected,
            op.errors,
            latency_cells(&op.latency_ms),
            fmt_ms(op.service_time_ms.p99)
        );
    }
    let t = &result.throughput;
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "throughput: offered {:.1}/s, achieved {:.1}/s (ok + rejected), errors {:.1}/s, dropped {}, unfinished {}   send lag p50 {} ms, p99 {} ms",
        t.offered_per_s,
        t.achieved_per_s,
        t.errors_per_s,
        t.dropped,
        t.unfinished,
        fmt_ms(result.generator.send_lag_ms.p50),
        fmt_ms(result.generator.send_lag_ms.p99)
    );
    if result.setup.requests > 0 {
        let _ = writeln!(
            s,
            "setup: {} requests in {:.1}s, {} errors",
            result.setup.requests, result.setup.duration_s, result.setup.errors
        );
    }
    if let Some(p) = &result.projection {
        let _ = writeln!(s, "projection lag: {}", projection_line(p));
        if let Some(a) = &p.attribution {
            let _ = writeln!(s, "lag by stage: {}", attribution_line(a));
        }
    }
    if let Some(st) = &result.staleness {
        let _ = writeln!(s, "read-your-writes: {}", staleness_line(st));
        if !st.traffic.is_empty() {
            let _ = writeln!(s, "stale reads in traffic: {}", traffic_staleness_line(st));
        }
    }
    if let Some(load) = &result.probe_load {
        let _ = writeln!(s, "probe load: {}", probe_load_line(load));
    }
    if let Some(e) = &result.events {
        let _ = writeln!(
            s,
            "events: {} acked, {} missed, {} duplicates, {} unexpected, {} indeterminate, {} recovered, {} reordered{}",
            e.acked,
            e.missed,
            e.duplicates,
            e.unexpected,
            e.indeterminate,
            e.recovered,
            e.reordered,
            if e.foreign > 0 { format!(", {} foreign", e.foreign) } else { String::new() }
        );
        if !e.complete() {
            let _ = writeln!(
                s,
                "events: could not verify {} acknowledged refs ({} of {} reads of the read model failed)",
                e.unknown, e.read_errors, e.keys_checked
            );
        }
    }
    if let Some(v) = &result.values {
        let _ = writeln!(
            s,
            "values: {} keys checked, {} match, {} mismatched (largest difference {}, total {}), {} unsure, {} unreadable",
            v.keys_checked, v.matched, v.mismatched, v.largest_difference, v.total_difference, v.unsure, v.unreadable
        );
        for m in v.mismatches.iter().take(5) {
            let _ = writeln!(s, "  {}: expected {}, read model has {}", m.key, m.expected, m.observed);
        }
    }
    if let Some(b) = &result.bus {
        let _ = writeln!(
            s,
            "bus {}: {} events, {} seen, {} missed, {} duplicates, {} unexpected; ack → broker ({}) p50 {} ms, p99 {} ms",
            b.topic,
            b.messages,
            b.seen,
            b.missed,
            b.duplicates,
            b.unexpected,
            b.timestamp_type,
            fmt_ms(b.e2e_ms.p50),
            fmt_ms(b.e2e_ms.p99)
        );
        for (group, lag) in &b.consumer_lag {
            let _ =
                writeln!(s, "consumer group {group}: lag max {} messages, {:.1} s", lag.max_messages, lag.max_seconds);
        }
    }
    for r in &result.recovery {
        let after = r.recovered_after_s.map_or("not recovered".to_owned(), |s| format!("recovered after {s:.2}s"));
        let _ = writeln!(s, "action `{}` at {:.1}s: lag under {} ms {after}", r.action, r.at_s, fmt_ms(r.threshold_ms));
    }
    if !result.slo.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(s, "{:<28} {:>14} {:>4} {:>14}  verdict", "SLO", "observed", "", "threshold");
        for slo in &result.slo {
            let _ = writeln!(s, "{}", slo_line(slo));
        }
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "{}", verdict_line(result));
    let _ = writeln!(s, "results: {}", out_dir.display());
    s
}

/// `PASS: all SLOs met` or `FAIL: 2 SLO(s) violated: a, b`: the summary's last word, also
/// all that `--quiet` prints.
pub fn verdict_line(result: &RunResult) -> String {
    let verdict = match (result.verdict, &result.verdict_reason) {
        // No successful answer (issue 18): not an SLO verdict, whatever the SLOs say.
        (_, Some(reason)) => format!("COULD NOT RUN: {reason}"),
        (Verdict::Pass, None) => "PASS: all SLOs met".to_owned(),
        (Verdict::Fail, None) => {
            let failed: Vec<&str> = result.slo.iter().filter(|s| !s.pass).map(|s| s.name.as_str()).collect();
            format!("FAIL: {} SLO(s) violated: {}", failed.len(), failed.join(", "))
        }
    };
    if result.interrupted { format!("{verdict}  [INTERRUPTED]") } else { verdict }
}

/// `P(fresh) 0 ms 0.00, 10 ms 0.42, …; 99 % fresh from 50 ms; 3600 reads of 400 commands`.
pub fn staleness_line(st: &crate::results::model::StalenessStats) -> String {
    let curve: Vec<String> = st
        .points
        .iter()
        .map(|p| format!("{} ms {}", fmt_ms(p.delay_ms), p.p_fresh.map_or("-".to_owned(), |v| format!("{v:.3}"))))
        .collect();
    let at =
        |v: Option<f64>| v.map_or("never within the delays read".to_owned(), |ms| format!("from {} ms", fmt_ms(ms)));
    format!(
        "P(fresh) {}; 99 % fresh {}, 99.9 % {}; {} reads of {} commands ({} errors, {} skipped)",
        curve.join(", "),
        at(st.fresh_p99_at_ms),
        at(st.fresh_p999_at_ms),
        st.reads,
        st.sampled,
        st.errors,
        st.skipped
    )
}

/// `get_account 412 of 2391 judged reads stale (17.23 %, 95 % CI 15.78–18.79 %)`, per
/// judged query.
pub fn traffic_staleness_line(st: &crate::results::model::StalenessStats) -> String {
    let per_query: Vec<String> = st
        .traffic
        .iter()
        .map(|t| {
            let rate = match (t.stale_rate, t.stale_rate_low, t.stale_rate_high) {
                (Some(r), Some(l), Some(h)) => {
                    format!("{:.2} %, 95 % CI {:.2}–{:.2} %", r * 100.0, l * 100.0, h * 100.0)
                }
                _ => "unknown: no read of a key written before it".to_owned(),
            };
            let unjudged = if t.unjudged > 0 { format!(", {} unjudged", t.unjudged) } else { String::new() };
            format!("{} {} of {} judged reads stale ({rate}){unjudged}", t.query, t.stale, t.reads)
        })
        .collect();
    per_query.join("; ")
}

/// `publish p50 2.1 ms / mean 2.4 ms (5 %), consume …; project dominates; 180 of 182
/// probes split (2: its event was not seen on the bus)`, and what cannot be split.
pub fn attribution_line(a: &crate::probe::attribution::LagAttribution) -> String {
    let mut line = if a.stages.is_empty() {
        "nothing to split".to_owned()
    } else {
        let stages: Vec<String> = a
            .stages
            .iter()
            .map(|st| {
                format!(
                    "{} p50 {} ms, p99 {} ms, mean {} ms ({:.0} %)",
                    st.name,
                    fmt_ms(st.p50_ms),
                    fmt_ms(st.p99_ms),
                    fmt_ms(st.mean_ms),
                    st.share * 100.0
                )
            })
            .collect();
        let dominant = a.dominant.as_ref().map_or(String::new(), |d| format!("; {d} dominates"));
        let unattributed: u64 = a.unattributed.values().sum();
        let why: Vec<String> = a.unattributed.iter().map(|(why, n)| format!("{n}: {why}")).collect();
        let left = if unattributed > 0 { format!(" ({})", why.join("; ")) } else { String::new() };
        format!(
            "{}{dominant}; {} of {} probes split{left}",
            stages.join(" · "),
            a.attributed,
            a.attributed + unattributed
        )
    };
    if a.reordered > 0 {
        line.push_str(&format!("; {} times out of order (clamped)", a.reordered));
    }
    if !a.unsplit.is_empty() {
        line.push_str(&format!("; not known: {}", a.unsplit.join("; ")));
    }
    line
}

/// `172 probes, p50 18.0 ms, …`: the projection probe in one line (terminal and HTML).
/// Late probes count at the timeout, so a percentile there reads `≥ 10000 ms`.
pub fn projection_line(p: &ProjectionStats) -> String {
    let lag = |ms: f64| match p.censored_at_ms {
        Some(at) if ms >= at => format!("≥ {} ms", fmt_ms(at)),
        _ => format!("{} ms", fmt_ms(ms)),
    };
    let late = match (p.late, p.censored_at_ms) {
        (0, _) | (_, None) => format!("{} late", p.late),
        (n, Some(at)) => format!("{n} late (counted at the {} ms timeout)", fmt_ms(at)),
    };
    format!(
        "{} probes, p50 {}, p99 {}, max {} (resolution {} ms), {late}, {} probe polls ({} failed)",
        p.probes,
        lag(p.lag_ms.p50),
        lag(p.lag_ms.p99),
        lag(p.lag_ms.max),
        fmt_ms(p.resolution_ms),
        p.polls,
        p.poll_errors
    )
}

/// `412 requests (41.2/s, 3.1 % of all sent): 380 lag polls, 32 read-your-writes reads`
pub fn probe_load_line(load: &crate::results::model::ProbeLoad) -> String {
    format!(
        "{} requests ({:.1}/s, {:.1} % of all sent): {} lag polls, {} read-your-writes reads",
        load.requests,
        load.per_s,
        load.share_of_requests * 100.0,
        load.lag_polls,
        load.staleness_reads
    )
}

/// `command_latency_p95   412.3 ms  <=  200 ms  FAIL`
pub fn slo_line(slo: &SloResult) -> String {
    let line = format!(
        "{:<28} {:>14} {:>4} {:>14}  {}",
        slo.name,
        slo.observed.map_or("no data".to_owned(), |v| format_value(v, &slo.unit)),
        slo.comparison,
        format_value(slo.threshold, &slo.unit),
        if slo.pass { "ok" } else { "FAIL" }
    );
    match &slo.unknown_because {
        Some(why) => format!("{line} ({why})"),
        None => line,
    }
}

/// The observed figure, or "no data" and why.
pub fn observed_text(slo: &SloResult) -> String {
    match (slo.observed, &slo.unknown_because) {
        (Some(v), _) => format_value(v, &slo.unit),
        (None, Some(why)) => format!("no data: {why}"),
        (None, None) => "no data".to_owned(),
    }
}

pub fn format_value(value: f64, unit: &str) -> String {
    match unit {
        "ms" => format!("{} ms", fmt_ms(value)),
        "count" => format!("{value:.0}"),
        "ratio" => format!("{:.3} %", value * 100.0),
        "ops/s" => format!("{value:.1}/s"),
        other => format!("{value} {other}"),
    }
}

fn latency_cells(p: &Percentiles) -> String {
    format!("{:>9} {:>9} {:>9} {:>9} {:>9}", fmt_ms(p.p50), fmt_ms(p.p90), fmt_ms(p.p99), fmt_ms(p.p999), fmt_ms(p.max))
}

/// Three significant figures, as the histograms hold.
pub fn fmt_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else if ms >= 0.01 || ms == 0.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.3}")
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_owned() } else { s.chars().take(n - 1).chain(['…']).collect() }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::results::model::{OperationStats, Throughput};

    fn result() -> RunResult {
        let withdraw =
            OperationStats { kind: "command".into(), count: 100, ok: 90, rejected: 7, errors: 3, ..Default::default() };
        RunResult {
            operations: [("withdraw".to_owned(), withdraw)].into(),
            throughput: Throughput { achieved_per_s: 97.0, errors_per_s: 3.0, ..Default::default() },
            ..Default::default()
        }
    }

    /// Issue 12: refused commands have their own column instead of hiding under `ok`.
    #[test]
    fn the_table_has_a_rejected_column() {
        let text = render(&result(), Path::new("reports/x"));
        let header = text.lines().find(|l| l.starts_with("operation")).unwrap();
        let columns: Vec<&str> = header.split_whitespace().take(6).collect();
        assert_eq!(columns, ["operation", "kind", "count", "ok", "rejected", "err"]);
        let row = text.lines().find(|l| l.starts_with("withdraw")).unwrap();
        let cells: Vec<&str> = row.split_whitespace().take(6).collect();
        assert_eq!(cells, ["withdraw", "cmd", "100", "90", "7", "3"]);
        assert!(text.contains("achieved 97.0/s (ok + rejected), errors 3.0/s"), "{text}");
    }

    #[test]
    fn the_verdict_line_ends_the_summary() {
        let mut result = result();
        let text = render(&result, Path::new("reports/x"));
        assert!(text.ends_with("PASS: all SLOs met\nresults: reports/x\n"), "{text}");
        result.verdict = Verdict::Fail;
        result.slo = ["command_latency_p95", "late_ratio"]
            .iter()
            .map(|name| SloResult {
                name: (*name).into(),
                threshold: 0.0,
                observed: None,
                pass: false,
                comparison: "<=".into(),
                unit: "ms".into(),
                unknown_because: None,
            })
            .collect();
        assert_eq!(verdict_line(&result), "FAIL: 2 SLO(s) violated: command_latency_p95, late_ratio");
        result.interrupted = true;
        assert!(verdict_line(&result).ends_with("[INTERRUPTED]"));
    }

    /// Issue 12: late probes are recorded at the timeout, so a percentile there is a bound.
    #[test]
    fn a_percentile_at_the_timeout_is_shown_as_a_bound() {
        let lag_ms = Percentiles { p50: 18.0, p99: 10_000.0, max: 10_000.0, ..Default::default() };
        let projection = ProjectionStats {
            probes: 200,
            late: 4,
            timeout_ms: 10_000.0,
            censored_at_ms: Some(10_000.0),
            resolution_ms: 5.0,
            lag_ms,
            ..Default::default()
        };
        let line = projection_line(&projection);
        assert!(
            line.starts_with("200 probes, p50 18.0 ms, p99 ≥ 10000 ms, max ≥ 10000 ms (resolution 5.00 ms), 4 late (counted at the 10000 ms timeout)"),
            "{line}"
        );
        let visible =
            ProjectionStats { late: 0, lag_ms: Percentiles { p99: 40.0, ..Default::default() }, ..projection };
        assert!(projection_line(&visible).contains("p99 40.0 ms, max 0.00 ms (resolution 5.00 ms), 0 late,"));
    }

    /// Issue 30: the probes' load in one line.
    #[test]
    fn probe_load_in_one_line() {
        let load = crate::results::model::ProbeLoad {
            requests: 412,
            per_s: 41.2,
            share_of_requests: 0.031,
            lag_polls: 380,
            staleness_reads: 32,
        };
        let mut result = result();
        result.probe_load = Some(load);
        let text = render(&result, Path::new("reports/x"));
        let line = text.lines().find(|l| l.starts_with("probe load:")).expect("a probe load line");
        assert_eq!(
            line,
            "probe load: 412 requests (41.2/s, 3.1 % of all sent): 380 lag polls, 32 read-your-writes reads"
        );
    }
}
