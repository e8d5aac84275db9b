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
            latency_cells(op.latency_ms.as_ref()),
            fmt_some_ms(op.service_time_ms.as_ref().map(|p| p.p99))
        );
    }
    let t = &result.throughput;
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "throughput: offered {:.1}/s, achieved {:.1}/s (ok + rejected), errors {:.1}/s, dropped {}, unfinished {}   {}",
        t.offered_per_s,
        t.achieved_per_s,
        t.errors_per_s,
        t.dropped,
        t.unfinished,
        send_lag_text(&result.generator)
    );
    if let Some(line) = conflicts_line(result) {
        let _ = writeln!(s, "{line}");
    }
    if let Some(late) = result.generator.send_lag_over_bound.as_ref().and_then(|o| o.describe()) {
        let _ = writeln!(s, "generator fell behind: {late}; latencies there include its own lateness");
    }
    if result.setup.requests > 0 {
        let _ = writeln!(s, "{}", setup_line(&result.setup));
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
    for (op, created) in &result.created {
        let _ = writeln!(s, "ids of {op}: {}", created_line(created));
    }
    if let Some(load) = &result.probe_load {
        let _ = writeln!(s, "probe load: {}", probe_load_line(load));
    }
    if let Some(e) = &result.events {
        let classes: Vec<String> = e.classes().iter().map(|(name, n)| format!("{n} {name}")).collect();
        let foreign = if e.foreign > 0 { format!(", {} foreign", e.foreign) } else { String::new() };
        let _ = writeln!(s, "events: {}{foreign}", classes.join(", "));
        if let Some(line) = events_coverage_line(result) {
            let _ = writeln!(s, "{line}");
        }
        if !e.complete() {
            let _ = writeln!(
                s,
                "events: could not verify {} acknowledged refs ({} of {} reads of the read model failed)",
                e.unknown, e.read_errors, e.keys_checked
            );
        }
        for example in e.examples.iter().filter(|x| x.class != "pending").take(3) {
            let _ = writeln!(s, "  {}", ref_example_line(example));
        }
    }
    if let Some(v) = &result.verify
        && let Some(why) = &v.stopped_because
    {
        let _ = writeln!(s, "verify: {why}");
    }
    if let Some(v) = &result.values {
        let _ = writeln!(
            s,
            "values: {} keys checked, {} match, {} mismatched (largest difference {}, total {}), {} absent, {} unsure, {} unreadable",
            v.keys_checked,
            v.matched,
            v.mismatched,
            v.largest_difference,
            v.total_difference,
            v.absent,
            v.unsure,
            v.unreadable
        );
        // Several values: the line above sums them, one line each follows (issue 31).
        for one in &v.by_value {
            let _ = writeln!(
                s,
                "  {}: {} match, {} mismatched (largest difference {}), {} absent, {} unsure, {} unreadable",
                one.name.as_deref().unwrap_or("value"),
                one.matched,
                one.mismatched,
                one.largest_difference,
                one.absent,
                one.unsure,
                one.unreadable
            );
        }
        for m in v.mismatches.iter().take(5) {
            let expected = m.expected.map_or("unknown".to_owned(), |n| n.to_string());
            let key = match &m.value {
                Some(value) => format!("{} {value}", m.key),
                None => m.key.clone(),
            };
            match m.observed {
                Some(observed) => {
                    let _ = writeln!(s, "  {key}: expected {expected}, read model has {observed}");
                }
                None => {
                    let _ = writeln!(s, "  {key}: expected {expected}, read model has no row");
                }
            }
        }
    }
    if let Some(c) = &result.counts {
        let _ = writeln!(
            s,
            "counts: {} keys checked, {} match, {} wrong ({} rows missed, {} duplicated), {} unsure, {} unreadable",
            c.keys_checked, c.matched, c.mismatched_keys, c.missed, c.duplicates, c.unsure, c.unreadable
        );
        for m in c.keys.iter().take(5) {
            let _ = writeln!(s, "  {} {}: {} acknowledged, {} rows", m.key, m.operation, m.expected, m.observed);
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
    for source in &result.backlog {
        let _ = writeln!(s, "{}", source.summary());
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

/// `events cover warmup + load: 14 + 382 ok commands`: `events.acked` counts every
/// acknowledged command, warmup included, while the table above leaves the warmup out
/// (issue 30: `ok 382` beside `396 acked` with nothing saying why). `None` without a warmup.
pub fn events_coverage_line(result: &RunResult) -> Option<String> {
    if result.warmup.operations.is_empty() {
        return None;
    }
    let covered = accounted_commands(result);
    let ok = |ops: &std::collections::BTreeMap<String, crate::results::model::OperationStats>| -> u64 {
        ops.iter().filter(|(name, op)| op.kind == "command" && covered(name)).map(|(_, op)| op.ok).sum()
    };
    Some(format!(
        "events cover warmup + load: {} + {} ok commands",
        ok(&result.warmup.operations),
        ok(&result.operations)
    ))
}

/// Whether event accounting covers a command: those of `[verify] commands`, else every one.
fn accounted_commands(result: &RunResult) -> impl Fn(&str) -> bool + '_ {
    let named = result.scenario.pointer("/verify/commands").and_then(|v| v.as_array());
    move |name: &str| named.is_none_or(|names| names.iter().any(|n| n.as_str() == Some(name)))
}

/// `send lag p50 0.01 ms, p99 0.20 ms`, or `send lag – (nothing was sent after the warmup)`.
pub fn send_lag_text(g: &crate::results::model::GeneratorStats) -> String {
    match (&g.send_lag_ms, &g.send_lag_unknown) {
        (Some(p), _) => format!("send lag p50 {} ms, p99 {} ms", fmt_ms(p.p50), fmt_ms(p.p99)),
        (None, Some(why)) => format!("send lag {NO_SAMPLES} ({why})"),
        (None, None) => format!("send lag {NO_SAMPLES}"),
    }
}

/// `setup: 1000 requests in 3.7s, 1 errors (1× 500)`: which statuses and failures.
pub fn setup_line(setup: &crate::results::model::SetupStats) -> String {
    let mut line = format!("setup: {} requests in {:.1}s, {} errors", setup.requests, setup.duration_s, setup.errors);
    // Statuses by code; the `status` class is what they add up to.
    let statuses = setup.errors_by_status.iter().map(|(code, n)| format!("{n}× {code}"));
    let classes =
        setup.errors_by_class.iter().filter(|(class, _)| *class != "status").map(|(c, n)| format!("{n}× {c}"));
    let parts: Vec<String> = statuses.chain(classes).collect();
    if !parts.is_empty() {
        let _ = write!(line, " ({})", parts.join(", "));
    }
    line
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
/// Late probes count at the timeout, so a percentile there reads `≥ 10000 ms`; one below
/// the poll interval is not known more finely than that, so it reads `< 2 ms`.
pub fn projection_line(p: &ProjectionStats) -> String {
    let lag = |ms: f64| match p.censored_at_ms {
        Some(at) if ms >= at => format!("≥ {} ms", fmt_ms(at)),
        _ if ms < p.resolution_ms => format!("< {} ms", fmt_bound(p.resolution_ms)),
        _ => format!("{} ms", fmt_ms(ms)),
    };
    let late = match (p.late, p.censored_at_ms) {
        (0, _) | (_, None) => format!("{} late", p.late),
        (n, Some(at)) => format!("{n} late (counted at the {} ms timeout)", fmt_ms(at)),
    };
    // Issue 31: probes whose per-key expectation was not known, apart from the late ones.
    let late = match p.ambiguous {
        0 => late,
        n => format!("{late}, {n} ambiguous (another command on the key overlapped: not probed)"),
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

/// `missed 5.0.12 (acct-7, deposit, answered at 3.214 s): not visible, though …`
pub fn ref_example_line(x: &crate::probe::reconcile::RefExample) -> String {
    let mut about = Vec::new();
    about.extend(x.key.clone());
    about.extend(x.operation.clone());
    about.extend(x.acked_at_ms.map(|ms| format!("answered at {:.3} s", ms as f64 / 1e3)));
    let about = if about.is_empty() { String::new() } else { format!(" ({})", about.join(", ")) };
    format!("{} {}{about}: {}", x.class, x.op_ref, x.shown)
}

/// `412 requests (41.2/s, 3.1 % of all sent): 380 lag polls, 32 read-your-writes reads`
pub fn probe_load_line(load: &crate::results::model::ProbeLoad) -> String {
    let resolve = match load.resolve_polls {
        0 => String::new(),
        n => format!(", {n} id-resolving reads"),
    };
    format!(
        "{} requests ({:.1}/s, {:.1} % of all sent): {} lag polls, {} read-your-writes reads{resolve}",
        load.requests,
        load.per_s,
        load.share_of_requests * 100.0,
        load.lag_polls,
        load.staleness_reads
    )
}

/// `120 to find by reading list_tasks: 110 resolved (lag p50 35.0 ms, p99 80.0 ms), 10
/// unresolved after 2000 ms (never used)`
pub fn created_line(c: &crate::probe::resolve::ResolveStats) -> String {
    let lag = match &c.lag_ms {
        Some(p) => format!(" (lag p50 {} ms, p99 {} ms)", fmt_ms(p.p50), fmt_ms(p.p99)),
        None => String::new(),
    };
    let mut also = Vec::new();
    for (n, what) in [
        (c.abandoned, "abandoned when the run stopped"),
        (c.skipped, "not looked for (too many at once)"),
        (c.not_kept, "resolved but not kept (pool full)"),
    ] {
        if n > 0 {
            also.push(format!(", {n} {what}"));
        }
    }
    format!(
        "{} to find by reading {}: {} resolved{lag}, {} unresolved after {} ms (never used){}, {} polls ({} failed)",
        c.to_resolve,
        c.query,
        c.resolved,
        c.unresolved,
        fmt_ms(c.timeout_ms),
        also.concat(),
        c.polls,
        c.poll_errors
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
    match (&slo.unknown_because, &slo.unsure) {
        (Some(why), _) | (None, Some(why)) => format!("{line} ({why})"),
        (None, None) => line,
    }
}

/// The observed figure, or "no data" and why.
pub fn observed_text(slo: &SloResult) -> String {
    match (slo.observed, &slo.unknown_because) {
        (Some(v), _) => match &slo.unsure {
            Some(unsure) => format!("{} ({unsure})", format_value(v, &slo.unit)),
            None => format_value(v, &slo.unit),
        },
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

/// An operation's latency columns; `–` in each when it has no samples.
fn latency_cells(p: Option<&Percentiles>) -> String {
    let cell = |pick: fn(&Percentiles) -> f64| fmt_some_ms(p.map(pick));
    format!(
        "{:>9} {:>9} {:>9} {:>9} {:>9}",
        cell(|p| p.p50),
        cell(|p| p.p90),
        cell(|p| p.p99),
        cell(|p| p.p999),
        cell(|p| p.max)
    )
}

/// A figure that may not exist: `–` for no samples, never a made-up 0.00.
pub fn fmt_some_ms(ms: Option<f64>) -> String {
    ms.map_or_else(|| NO_SAMPLES.to_owned(), fmt_ms)
}

/// Shown in place of a figure that has no samples.
pub const NO_SAMPLES: &str = "–";

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

/// A bound as written in a scenario: `2`, `0.5`, `12.5` (no trailing zeros).
fn fmt_bound(ms: f64) -> String {
    let text = fmt_ms(ms);
    if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_owned() } else { text }
}

/// `conflicts: 12 of 900 commands (1.3 %), withdraw 12`: of the answered commands, per
/// operation with conflicts; `None` without conflicts.
fn conflicts_line(result: &RunResult) -> Option<String> {
    let commands = result.operations.iter().filter(|(_, op)| op.kind == "command");
    let answered: u64 = commands.clone().map(|(_, op)| op.answered()).sum();
    let conflicts: u64 = commands.clone().map(|(_, op)| op.conflicts).sum();
    if conflicts == 0 {
        return None;
    }
    let per_operation: Vec<String> =
        commands.filter(|(_, op)| op.conflicts > 0).map(|(name, op)| format!("{name} {}", op.conflicts)).collect();
    let percent = 100.0 * conflicts as f64 / answered.max(1) as f64;
    Some(format!("conflicts: {conflicts} of {answered} commands ({percent:.1} %), {}", per_operation.join(", ")))
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

    /// Issue 31: conflicts of the answered commands, per operation; no line without any.
    #[test]
    fn conflicts_have_their_line() {
        let mut result = result();
        assert!(!render(&result, Path::new("reports/x")).contains("conflicts:"));
        let withdraw = result.operations.get_mut("withdraw").unwrap();
        // 90 ok + 7 rejected + 12 conflicts + 3 errors (2 of them answered with a status).
        (withdraw.count, withdraw.conflicts) = (112, 12);
        withdraw.errors_by_class = [("status".to_owned(), 2), ("timeout".to_owned(), 1)].into();
        let text = render(&result, Path::new("reports/x"));
        assert!(text.contains("conflicts: 12 of 111 commands (10.8 %), withdraw 12\n"), "{text}");
    }

    /// Issue 31: several values, a line each under their sums; mismatches name the value.
    #[test]
    fn each_value_has_its_line() {
        use crate::probe::values::{Observed, ValueCounts};
        let (mut on_hand, mut reserved) = (ValueCounts::default(), ValueCounts::default());
        on_hand.add(0, "sku-0".into(), Observed::Number(5.0), Some(5.0), true);
        reserved.add(0, "sku-0".into(), Observed::Number(1.0), Some(4.0), true);
        let mut result = result();
        result.values = Some(ValueCounts::of_values(vec![("on_hand".into(), on_hand), ("reserved".into(), reserved)]));
        let text = render(&result, Path::new("reports/x"));
        assert!(text.contains("values: 2 keys checked, 1 match, 1 mismatched"), "{text}");
        assert!(text.contains("  on_hand: 1 match, 0 mismatched"), "{text}");
        assert!(text.contains("  reserved: 0 match, 1 mismatched (largest difference 3)"), "{text}");
        assert!(text.contains("  sku-0 reserved: expected 4, read model has 1"), "{text}");
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
                unsure: None,
            })
            .collect();
        assert_eq!(verdict_line(&result), "FAIL: 2 SLO(s) violated: command_latency_p95, late_ratio");
        result.interrupted = true;
        assert!(verdict_line(&result).ends_with("[INTERRUPTED]"));
    }

    /// Issue 30: the summary says that event accounting covers the warmup too, counting
    /// only the commands `[verify]` accounts for.
    #[test]
    fn events_coverage_adds_the_warmup() {
        let mut result = result();
        result.events = Some(Default::default());
        assert_eq!(events_coverage_line(&result), None, "no warmup, nothing to explain");
        let op = |kind: &str, ok| OperationStats { kind: kind.into(), ok, ..Default::default() };
        result.warmup.operations =
            [("withdraw".to_owned(), op("command", 14)), ("audit".to_owned(), op("command", 5))].into();
        result.operations.insert("audit".into(), op("command", 50));
        result.operations.insert("balance".into(), op("query", 70));
        assert_eq!(events_coverage_line(&result).unwrap(), "events cover warmup + load: 19 + 140 ok commands");
        result.scenario = serde_json::json!({ "verify": { "commands": ["withdraw"] } });
        let text = render(&result, Path::new("reports/x"));
        assert!(text.contains("\nevents cover warmup + load: 14 + 90 ok commands\n"), "{text}");
    }

    /// Issue 30: a generator that fell behind after the warmup is named with its seconds;
    /// one that kept up is not.
    #[test]
    fn a_late_generator_is_named() {
        use crate::results::model::SendLagOverBound;
        let mut result = result();
        result.generator.send_lag_ms = Some(Percentiles { p50: 0.02, p99: 31.0, ..Default::default() });
        let kept_up = SendLagOverBound { bound_ms: 10.0, bound_from: "default".into(), ..Default::default() };
        result.generator.send_lag_over_bound = Some(kept_up.clone());
        let text = render(&result, Path::new("reports/x"));
        assert!(text.contains("send lag p50 0.02 ms, p99 31.0 ms\n"), "{text}");
        assert!(!text.contains("fell behind"), "{text}");
        let late = SendLagOverBound { seconds: 2, first_s: Some(3), last_s: Some(7), ..kept_up };
        result.generator.send_lag_over_bound = Some(late);
        let text = render(&result, Path::new("reports/x"));
        assert!(
            text.contains("generator fell behind: send lag p99 over 10 ms in 2 s (3 s … 7 s; bound: default); latencies there include its own lateness\n"),
            "{text}"
        );
    }

    /// Issue 30: the setup line says which statuses and failures its errors were.
    #[test]
    fn setup_errors_are_named() {
        let mut setup = crate::results::model::SetupStats {
            requests: 1000,
            ok: 999,
            errors: 1,
            duration_s: 3.71,
            ..Default::default()
        };
        assert_eq!(setup_line(&setup), "setup: 1000 requests in 3.7s, 1 errors");
        setup.errors = 4;
        setup.errors_by_status = [("500".to_owned(), 1)].into();
        setup.errors_by_class =
            [("status".to_owned(), 1), ("timeout".to_owned(), 2), ("unanswered".to_owned(), 1)].into();
        assert_eq!(setup_line(&setup), "setup: 1000 requests in 3.7s, 4 errors (1× 500, 2× timeout, 1× unanswered)");
    }

    /// Issue 30: an operation without samples has no latency, not 0.00 ms.
    #[test]
    fn an_operation_without_samples_shows_no_latency() {
        let mut result = result();
        let failed = OperationStats { kind: "query".into(), count: 3, errors: 3, ..Default::default() };
        result.operations.insert("account_refs".into(), failed);
        let text = render(&result, Path::new("reports/x"));
        let row = text.lines().find(|l| l.starts_with("account_refs")).unwrap();
        let cells: Vec<&str> = row.split_whitespace().skip(6).collect();
        assert_eq!(cells, ["–"; 6], "{row}");
        // result.json holds null there, and reads back.
        let json = serde_json::to_value(&result.operations["account_refs"]).unwrap();
        assert!(json["latency_ms"].is_null() && json["service_time_ms"].is_null(), "{json}");
        let back: OperationStats = serde_json::from_value(json).unwrap();
        assert!(back.latency_ms.is_none());
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
        let lag_ms = Percentiles { p99: 40.0, max: 52.0, ..Default::default() };
        let ambiguous = ProjectionStats { ambiguous: 3, ..projection.clone() };
        assert!(projection_line(&ambiguous).contains("4 late (counted at the 10000 ms timeout), 3 ambiguous"));
        let visible = ProjectionStats { late: 0, lag_ms, ..projection };
        assert!(projection_line(&visible).contains("p99 40.0 ms, max 52.0 ms (resolution 5.00 ms), 0 late,"));
    }

    /// Issue 30: a lag under the poll interval is not known more finely: `< 2 ms`.
    #[test]
    fn a_lag_below_the_resolution_is_shown_as_a_bound() {
        let lag_ms = Percentiles { p50: 0.16, p99: 2.0, max: 7.5, ..Default::default() };
        let projection = ProjectionStats { probes: 10, resolution_ms: 2.0, lag_ms, ..Default::default() };
        let line = projection_line(&projection);
        assert!(line.starts_with("10 probes, p50 < 2 ms, p99 2.00 ms, max 7.50 ms (resolution 2.00 ms)"), "{line}");
        let fine = ProjectionStats { resolution_ms: 0.5, ..projection };
        assert!(projection_line(&fine).starts_with("10 probes, p50 < 0.5 ms,"), "{}", projection_line(&fine));
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
            resolve_polls: 0,
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
