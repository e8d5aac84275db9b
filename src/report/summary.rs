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
        "{:<16} {:>4} {:>8} {:>8} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "operation", "kind", "count", "ok", "err", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "svc p99"
    );
    for (name, op) in &result.operations {
        let kind = if op.kind == "command" { "cmd" } else { "qry" };
        let _ = writeln!(
            s,
            "{:<16} {:>4} {:>8} {:>8} {:>6} {}  {:>9}",
            truncate(name, 16),
            kind,
            op.count,
            op.ok + op.rejected,
            op.errors,
            latency_cells(&op.latency_ms),
            fmt_ms(op.service_time_ms.p99)
        );
    }
    let t = &result.throughput;
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "throughput: offered {:.1}/s, achieved {:.1}/s, dropped {}, unfinished {}   send lag p50 {} ms, p99 {} ms",
        t.offered_per_s,
        t.achieved_per_s,
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
    let verdict = match result.verdict {
        Verdict::Pass => "PASS: all SLOs met".to_owned(),
        Verdict::Fail => {
            let failed: Vec<&str> = result.slo.iter().filter(|s| !s.pass).map(|s| s.name.as_str()).collect();
            format!("FAIL: {} SLO(s) violated: {}", failed.len(), failed.join(", "))
        }
    };
    let _ = writeln!(s, "{verdict}");
    let _ = writeln!(s, "results: {}", out_dir.display());
    s
}

/// `172 probes, p50 18.0 ms, …`: the projection probe in one line (terminal and HTML).
pub fn projection_line(p: &ProjectionStats) -> String {
    format!(
        "{} probes, p50 {} ms, p99 {} ms, max {} ms (resolution {} ms), {} late, {} probe polls ({} failed)",
        p.probes,
        fmt_ms(p.lag_ms.p50),
        fmt_ms(p.lag_ms.p99),
        fmt_ms(p.lag_ms.max),
        fmt_ms(p.resolution_ms),
        p.late,
        p.polls,
        p.poll_errors
    )
}

/// `command_latency_p95   412.3 ms  <=  200 ms  FAIL`
pub fn slo_line(slo: &SloResult) -> String {
    let observed = slo.observed.map_or("no data".to_owned(), |v| format_value(v, &slo.unit));
    format!(
        "{:<28} {:>14} {:>4} {:>14}  {}",
        slo.name,
        observed,
        slo.comparison,
        format_value(slo.threshold, &slo.unit),
        if slo.pass { "ok" } else { "FAIL" }
    )
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
