//! report.html: one self-contained file (inline CSS, chart data and scripts; no network).
//! Verdict first, then the SLO table, the interactive charts (issue 35: drawn by
//! [`super::interactive`], the static SVG/PNG of each linked), per-operation figures,
//! probes, the scenario and the environment.

use std::fmt::Write as _;

use super::figures::Figure;
use super::interactive;
use super::junit::escape;
use super::summary::{fmt_ms, fmt_some_ms, format_value, send_lag_text};
use crate::results::model::{RunResult, Verdict};

pub(crate) const STYLE: &str = r#"
body { font-family: "DejaVu Sans", Verdana, sans-serif; margin: 0 auto; max-width: 1060px; padding: 24px; color: #1d2330; background: #fafbfc; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 32px 0 10px; border-bottom: 1px solid #dde1e7; padding-bottom: 4px; }
.meta { color: #5b6472; font-size: 14px; }
.verdict { border-radius: 8px; padding: 16px 20px; margin: 18px 0; font-size: 22px; font-weight: bold; color: white; }
.verdict.pass { background: #1a7f4b; } .verdict.fail { background: #b3261e; }
.verdict small { display: block; font-size: 14px; font-weight: normal; margin-top: 4px; }
table { border-collapse: collapse; width: 100%; font-size: 14px; background: white; }
th, td { padding: 6px 10px; border-bottom: 1px solid #e6e9ee; text-align: right; }
th:first-child, td:first-child { text-align: left; } th { background: #f0f2f5; }
td.ok { color: #1a7f4b; font-weight: bold; } td.fail { color: #b3261e; font-weight: bold; }
figure { margin: 18px 0; background: white; border: 1px solid #e6e9ee; border-radius: 6px; padding: 8px; }
figure svg { width: 100%; height: auto; } figcaption { font-size: 13px; color: #5b6472; }
pre { background: #f0f2f5; padding: 12px; overflow-x: auto; font-size: 12px; }
"#;

pub fn render(result: &RunResult, figures: &[Figure]) -> String {
    let name = result.scenario.get("name").and_then(|v| v.as_str()).unwrap_or("scenario");
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{}\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>cqrs-bench: {}</title><style>{STYLE}</style>{}</head><body>\n",
        interactive::CSP,
        escape(name),
        interactive::style()
    );
    let _ = writeln!(h, "<h1>cqrs-bench · {}</h1>", escape(name));
    let _ = writeln!(
        h,
        "<div class=\"meta\">started {} · {:.1} s of load ({:.1} s measured after {:.1} s warmup) · target {} · run {}</div>",
        escape(&result.started_at),
        result.duration_s,
        result.measured_s,
        result.warmup_s,
        escape(&result.environment.target),
        escape(&result.run_id)
    );
    verdict(&mut h, result);
    slo_table(&mut h, result);
    let charts: Vec<&interactive::Chart> = figures.iter().map(|f| &f.chart).collect();
    plot_boxes(&mut h, &charts, "plots/");
    operations(&mut h, result);
    probes(&mut h, result);
    let _ = writeln!(
        h,
        "<h2>Scenario</h2><pre>{}</pre>",
        escape(&serde_json::to_string_pretty(&result.scenario).unwrap_or_default())
    );
    let env = &result.environment;
    let _ = writeln!(
        h,
        "<h2>Environment</h2><table><tr><th>host</th><th>os / arch</th><th>cores</th><th>git revision</th><th>cqrs-bench</th></tr>\
         <tr><td>{}</td><td>{} / {}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
        escape(&env.host),
        escape(&env.os),
        escape(&env.arch),
        env.cores,
        escape(env.git_revision.as_deref().unwrap_or("-")),
        escape(&result.tool_version)
    );
    h.push_str(&interactive::scripts(&charts, result.warmup_s));
    h.push_str("</body></html>\n");
    h
}

/// The charts, each in its box with its title and links to its static files in
/// `static_dir` (`plots/`, or `` beside compare.html); the zoom bar acts on every time
/// chart at once.
pub(crate) fn plot_boxes(h: &mut String, charts: &[&interactive::Chart], static_dir: &str) {
    h.push_str(
        "<h2>Plots</h2>\n<div class=\"zoom\">time charts: drag to zoom, double-click for the whole run, \
         Shift + wheel to pan, Ctrl + wheel to zoom; click a legend entry to hide its line \
         <button data-zoom=\"in\">zoom in</button><button data-zoom=\"out\">zoom out</button>\
         <button data-zoom=\"left\">◀</button><button data-zoom=\"right\">▶</button>\
         <button data-zoom=\"all\">whole run</button></div>\n\
         <noscript><p>The charts need JavaScript; the same plots are beside this page as SVG and PNG.</p></noscript>\n",
    );
    for chart in charts {
        let id = escape(&chart.id);
        let _ = writeln!(
            h,
            "<figure><div class=\"chart-box\" id=\"chart-{id}\"></div><figcaption>{} · \
             <a href=\"{static_dir}{id}.svg\">SVG</a> · <a href=\"{static_dir}{id}.png\">PNG</a></figcaption></figure>",
            escape(&chart.title)
        );
    }
}

fn verdict(h: &mut String, result: &RunResult) {
    let failed: Vec<&str> = result.slo.iter().filter(|s| !s.pass).map(|s| s.name.as_str()).collect();
    let (class, text, detail) = match result.verdict {
        _ if result.verdict_reason.is_some() => {
            ("fail", "COULD NOT RUN".to_owned(), result.verdict_reason.clone().unwrap_or_default())
        }
        Verdict::Pass => ("pass", "PASS".to_owned(), format!("all {} SLOs met", result.slo.len())),
        Verdict::Fail => ("fail", "FAIL".to_owned(), format!("violated: {}", failed.join(", "))),
    };
    let interrupted = if result.interrupted { " · interrupted: figures cover what ran" } else { "" };
    let _ = writeln!(
        h,
        "<div class=\"verdict {class}\" id=\"verdict\">{text}<small>{}{interrupted}</small></div>",
        escape(&detail)
    );
}

fn slo_table(h: &mut String, result: &RunResult) {
    let _ = writeln!(
        h,
        "<h2>SLOs</h2><table id=\"slo\"><tr><th>SLO</th><th>observed</th><th></th><th>threshold</th><th>verdict</th></tr>"
    );
    for s in &result.slo {
        let observed = crate::report::summary::observed_text(s);
        let (class, word) = if s.pass { ("ok", "ok") } else { ("fail", "FAIL") };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{word}</td></tr>",
            escape(&s.name),
            escape(&observed),
            escape(&s.comparison),
            escape(&format_value(s.threshold, &s.unit))
        );
    }
    h.push_str("</table>\n");
}

fn operations(h: &mut String, result: &RunResult) {
    let _ = writeln!(
        h,
        "<h2>Operations</h2><table><tr><th>operation</th><th>kind</th><th>count</th><th>ok</th><th>rejected</th><th>conflicts</th>\
         <th>errors</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>max ms</th><th>service p99 ms</th></tr>"
    );
    for (name, op) in &result.operations {
        let l = |pick: fn(&crate::results::model::Percentiles) -> f64| fmt_some_ms(op.latency_ms.as_ref().map(pick));
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(name),
            escape(&op.kind),
            op.count,
            op.ok,
            op.rejected,
            op.conflicts,
            op.errors,
            l(|p| p.p50),
            l(|p| p.p90),
            l(|p| p.p99),
            l(|p| p.p999),
            l(|p| p.max),
            fmt_some_ms(op.service_time_ms.as_ref().map(|p| p.p99))
        );
    }
    h.push_str("</table>\n");
    let t = &result.throughput;
    let g = &result.generator;
    let _ = writeln!(
        h,
        "<p class=\"meta\">offered {:.1}/s · achieved {:.1}/s · dropped {} · unfinished {} · generator {}{} · \
         most in flight {} · largest backlog {}</p>",
        t.offered_per_s,
        t.achieved_per_s,
        t.dropped,
        t.unfinished,
        escape(&send_lag_text(g)),
        g.send_lag_over_bound
            .as_ref()
            .and_then(|o| o.describe())
            .map_or_else(String::new, |late| format!(" · <strong>fell behind: {}</strong>", escape(&late))),
        g.max_in_flight,
        g.max_backlog
    );
}

fn probes(h: &mut String, result: &RunResult) {
    backlog(h, result);
    if let Some(p) = &result.projection {
        let _ = writeln!(h, "<h2>Projection lag</h2><p>{}</p>", escape(&super::summary::projection_line(p)));
        if let Some(a) = &p.attribution {
            let _ = writeln!(
                h,
                "<h3>Lag by stage</h3><p>{}</p><table><tr><th>stage</th><th>p50</th><th>p90</th><th>p99</th><th>max</th><th>mean</th><th>share</th></tr>",
                escape(&super::summary::attribution_line(a))
            );
            for st in &a.stages {
                let _ = writeln!(
                    h,
                    "<tr><td>{}</td><td>{} ms</td><td>{} ms</td><td>{} ms</td><td>{} ms</td><td>{} ms</td><td>{:.1} %</td></tr>",
                    escape(&st.name),
                    fmt_ms(st.p50_ms),
                    fmt_ms(st.p90_ms),
                    fmt_ms(st.p99_ms),
                    fmt_ms(st.max_ms),
                    fmt_ms(st.mean_ms),
                    st.share * 100.0
                );
            }
            h.push_str("</table>\n");
        }
    }
    if let Some(st) = &result.staleness {
        let _ = writeln!(
            h,
            "<h2>Read-your-writes</h2><p>{}</p><table><tr><th>delay after the ack</th><th>reads</th><th>fresh</th><th>P(fresh)</th><th>95 % interval</th><th>mean actual delay</th></tr>",
            escape(&super::summary::staleness_line(st))
        );
        for p in &st.points {
            let _ = writeln!(
                h,
                "<tr><td>{} ms</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ms</td></tr>",
                fmt_ms(p.delay_ms),
                p.reads,
                p.fresh,
                p.p_fresh.map_or("-".to_owned(), |v| format!("{v:.4}")),
                p.p_fresh_low.zip(p.p_fresh_high).map_or("-".to_owned(), |(l, h)| format!("{l:.4} – {h:.4}")),
                fmt_ms(p.mean_actual_delay_ms)
            );
        }
        h.push_str("</table>\n");
        if !st.traffic.is_empty() {
            let _ = writeln!(
                h,
                "<h3>Stale reads in the traffic</h3><p>A read is stale when its answer misses a command acknowledged on its key before it was sent.</p>\
                 <table><tr><th>query</th><th>judged reads</th><th>stale</th><th>stale rate</th><th>95 % interval</th><th>unjudged</th></tr>"
            );
            for t in &st.traffic {
                let _ = writeln!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&t.query),
                    t.reads,
                    t.stale,
                    t.stale_rate.map_or("unknown".to_owned(), |v| format!("{v:.4}")),
                    t.stale_rate_low.zip(t.stale_rate_high).map_or("-".to_owned(), |(l, h)| format!("{l:.4} – {h:.4}")),
                    t.unjudged
                );
            }
            h.push_str("</table>\n");
        }
    }
    if let Some(e) = &result.events {
        events(h, e);
    }
    if let Some(why) = result.verify.as_ref().and_then(|v| v.stopped_because.as_ref()) {
        let _ = writeln!(h, "<p>Verification: {}</p>", escape(why));
    }
    if let Some(v) = &result.values {
        values(h, v);
    }
    if let Some(c) = &result.counts {
        counts(h, c);
    }
    if !result.actions.is_empty() {
        let _ = writeln!(
            h,
            "<h2>Actions</h2><table><tr><th>action</th><th>at (s)</th><th>result</th><th>lag back under SLO after (s)</th></tr>"
        );
        for a in &result.actions {
            let recovered = result.recovery.iter().find(|r| r.action == a.name).map_or("-".to_owned(), |r| {
                r.recovered_after_s.map_or("not recovered".to_owned(), |s| format!("{s:.2}"))
            });
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{:.2}</td><td>{}</td><td>{}</td></tr>",
                escape(&a.name),
                a.at_s,
                escape(&a.detail),
                escape(&recovered)
            );
        }
        h.push_str("</table>\n");
    }
}

/// Event accounting, with every example ref (issue 30: up to 20 of each class).
fn events(h: &mut String, e: &crate::probe::reconcile::EventCounts) {
    let columns =
        e.classes().into_iter().chain([("foreign", e.foreign), ("unknown", e.unknown), ("keys read", e.keys_checked)]);
    let (heads, cells): (String, String) =
        columns.map(|(name, n)| (format!("<th>{name}</th>"), format!("<td>{n}</td>"))).unzip();
    let _ = writeln!(h, "<h2>Event accounting</h2><table><tr>{heads}</tr><tr>{cells}</tr></table>");
    if e.examples.is_empty() {
        return;
    }
    h.push_str("<table><tr><th>class</th><th>ref</th><th>key</th><th>operation</th><th>answered at (s)</th><th>the read model</th></tr>\n");
    for x in &e.examples {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&x.class),
            escape(&x.op_ref),
            escape(x.key.as_deref().unwrap_or("-")),
            escape(x.operation.as_deref().unwrap_or("-")),
            x.acked_at_ms.map_or("-".to_owned(), |ms| format!("{:.3}", ms as f64 / 1e3)),
            escape(&x.shown)
        );
    }
    h.push_str("</table>\n");
}

/// Value accounting, with the first mismatched or absent keys.
fn values(h: &mut String, v: &crate::probe::values::ValueCounts) {
    // Several values (issue 31): one row each, then their sums.
    let several = !v.by_value.is_empty();
    let _ = write!(
        h,
        "<h2>Value accounting</h2><table><tr>{}<th>keys checked</th><th>matched</th><th>mismatched</th><th>absent</th><th>unsure</th>\
         <th>unreadable</th><th>largest difference</th></tr>",
        if several { "<th>value</th>" } else { "" }
    );
    let row = |h: &mut String, name: Option<&str>, c: &crate::probe::values::ValueCounts| {
        let _ = write!(h, "<tr>");
        if let Some(name) = name {
            let _ = write!(h, "<td>{}</td>", escape(name));
        }
        let _ = write!(
            h,
            "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            c.keys_checked, c.matched, c.mismatched, c.absent, c.unsure, c.unreadable, c.largest_difference
        );
    };
    for one in &v.by_value {
        row(h, Some(one.name.as_deref().unwrap_or("value")), one);
    }
    row(h, several.then_some("all"), v);
    h.push_str("</table>\n");
    if v.mismatches.is_empty() {
        return;
    }
    let _ = writeln!(
        h,
        "<table><tr><th>key</th>{}<th>expected</th><th>the read model</th></tr>",
        if several { "<th>value</th>" } else { "" }
    );
    for m in &v.mismatches {
        let value = m.value.as_deref().map_or(String::new(), |name| format!("<td>{}</td>", escape(name)));
        let _ = writeln!(
            h,
            "<tr><td>{}</td>{value}<td>{}</td><td>{}</td></tr>",
            escape(&m.key),
            m.expected.map_or("unknown".to_owned(), |n| n.to_string()),
            m.observed.map_or("no row".to_owned(), |n| n.to_string())
        );
    }
    h.push_str("</table>\n");
}

/// Count accounting, with the first keys whose rows are wrong (issue 31).
/// `[[backlog]]`: a row per source (the figures the summary line gives, in columns).
fn backlog(h: &mut String, result: &RunResult) {
    if result.backlog.is_empty() {
        return;
    }
    h.push_str(
        "<h2>Backlog</h2><table><tr><th>source</th><th>kind</th><th>url</th><th>max behind</th>\
         <th>max lag</th><th>after the load</th><th>unknown</th></tr>\n",
    );
    for b in &result.backlog {
        let drain = match (b.drained_after_ms, b.not_drained) {
            (Some(ms), _) => format!("drained in {} ms", fmt_ms(ms)),
            (None, Some(left)) => format!("not drained: {left} left"),
            (None, None) => "unknown".to_owned(),
        };
        let unknown = match b.unknown_seconds {
            s if s > 0.0 => format!("{s:.1} s ({})", b.unknown_because.as_deref().unwrap_or("")),
            _ => "–".to_owned(),
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&b.name),
            escape(&b.kind),
            escape(&b.url),
            b.max.map_or("unknown".to_owned(), |m| m.to_string()),
            escape(&b.max_lag_s.map_or_else(
                || format!("unknown ({})", b.lag_unknown_because.as_deref().unwrap_or("")),
                |s| format!("{s:.1} s")
            )),
            escape(&drain),
            escape(&unknown)
        );
    }
    h.push_str("</table>\n");
}

fn counts(h: &mut String, c: &crate::probe::counts::RowCounts) {
    let _ = writeln!(
        h,
        "<h2>Count accounting</h2><table><tr><th>keys checked</th><th>matched</th><th>wrong</th><th>rows missed</th>\
         <th>duplicates</th><th>unsure</th><th>unreadable</th></tr><tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
         <td>{}</td><td>{}</td><td>{}</td></tr></table>",
        c.keys_checked, c.matched, c.mismatched_keys, c.missed, c.duplicates, c.unsure, c.unreadable
    );
    if c.keys.is_empty() {
        return;
    }
    h.push_str("<table><tr><th>key</th><th>command</th><th>acknowledged</th><th>rows</th></tr>\n");
    for m in &c.keys {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&m.key),
            escape(&m.operation),
            m.expected,
            m.observed
        );
    }
    h.push_str("</table>\n");
}
