//! compare.html (issue 35): the compared runs side by side in one self-contained page:
//! each run's SLO table and verdict, the figures per side, with a baseline each run's
//! bootstrap verdicts with their intervals, the event accounting per run, and the
//! overlaid charts (interactive, from the same plots as the PNG/SVG files).

use std::fmt::Write as _;

use super::{Comparison, METRICS, Side, Verdict, label, show, show_change, verdict_tag};
use crate::report::html::{STYLE, plot_boxes};
use crate::report::interactive::{self, Chart};
use crate::report::junit::escape;
use crate::report::summary::{format_value, observed_text};

/// The page: verdicts first, then the charts, then the tables per run.
pub fn render(comparison: &Comparison, sides: &[Side], charts: &[Chart]) -> String {
    let mut h = String::new();
    let names: Vec<&str> = sides.iter().map(|s| s.label.as_str()).collect();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{}\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>cqrs-bench comparison: {}</title><style>{STYLE}</style>{}</head><body>\n",
        interactive::CSP,
        escape(&names.join(" · ")),
        interactive::style()
    );
    let _ = writeln!(h, "<h1>cqrs-bench · comparison</h1><div class=\"meta\">{}</div>", escape(&names.join(" · ")));
    figures(&mut h, sides);
    if !comparison.judged.is_empty() {
        against_baseline(&mut h, comparison, sides);
    }
    let boxes: Vec<&Chart> = charts.iter().collect();
    plot_boxes(&mut h, &boxes, "");
    slo_tables(&mut h, sides);
    accounting(&mut h, sides);
    h.push_str(&interactive::scripts(&boxes, 0.0));
    h.push_str("</body></html>\n");
    h
}

/// Every side's figures in one table, the side's verdict in its head.
fn figures(h: &mut String, sides: &[Side]) {
    h.push_str("<h2>Runs side by side</h2><table id=\"figures\"><tr><th>figure</th>");
    for side in sides {
        let class = if side.passed() { "ok" } else { "fail" };
        let _ = write!(h, "<th>{} <span class=\"{class}\">[{}]</span></th>", escape(&side.label), verdict_tag(side));
    }
    h.push_str("</tr>\n");
    for metric in METRICS {
        if sides.iter().all(|s| s.value(metric).is_none()) {
            continue;
        }
        let _ = write!(h, "<tr><td>{}</td>", escape(metric.name));
        for side in sides {
            let _ = write!(h, "<td>{}</td>", escape(&show(side.value(metric), metric.unit)));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
}

/// Per run: each figure against the baseline, its change, 95 % interval and verdict.
fn against_baseline(h: &mut String, comparison: &Comparison, sides: &[Side]) {
    let base = &sides[0];
    for run in &sides[1..] {
        let rows: Vec<_> = comparison.judged.iter().filter(|j| j.run == run.label).collect();
        let _ = writeln!(
            h,
            "<h2>{} vs {}: {}</h2><table class=\"judged\"><tr><th>figure</th><th>baseline</th><th>this run</th>\
             <th>change</th><th>95 % interval</th><th>verdict</th></tr>",
            escape(&run.label),
            escape(&base.label),
            escape(&super::headline(&rows))
        );
        for j in &rows {
            let (change, interval) = show_change(j);
            let class = match j.verdict {
                Verdict::Regressed => "fail",
                Verdict::Improved => "ok",
                _ => "",
            };
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{}</td></tr>",
                escape(&j.metric),
                escape(&j.baseline),
                escape(&j.observed),
                escape(&change),
                escape(&interval),
                escape(j.verdict.label())
            );
        }
        h.push_str("</table>\n");
        if let Some(why) = rows.iter().find_map(|j| j.reason.as_ref()) {
            let _ = writeln!(h, "<p>Suspect: {}: it cannot prove a regression.</p>", escape(why));
        }
    }
}

/// Each run's own SLO table, as its report.html shows it.
fn slo_tables(h: &mut String, sides: &[Side]) {
    h.push_str("<h2>SLOs per run</h2>\n");
    for side in sides {
        for run in &side.runs {
            let r = &run.result;
            let (class, word) = match r.verdict {
                _ if r.verdict_reason.is_some() => ("fail", "COULD NOT RUN"),
                crate::results::Verdict::Pass => ("ok", "PASS"),
                crate::results::Verdict::Fail => ("fail", "FAIL"),
            };
            let name =
                if side.runs.len() == 1 { side.label.clone() } else { format!("{}/{}", side.label, label(&run.dir)) };
            let _ = writeln!(
                h,
                "<h3>{} <span class=\"{class}\">{word}</span></h3><table class=\"slo\"><tr><th>SLO</th><th>observed</th>\
                 <th></th><th>threshold</th><th>verdict</th></tr>",
                escape(&name)
            );
            for s in &r.slo {
                let (class, word) = if s.pass { ("ok", "ok") } else { ("fail", "FAIL") };
                let _ = writeln!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{word}</td></tr>",
                    escape(&s.name),
                    escape(&observed_text(s)),
                    escape(&s.comparison),
                    escape(&format_value(s.threshold, &s.unit))
                );
            }
            h.push_str("</table>\n");
        }
    }
}

/// The event accounting of every run that has one, a row each.
fn accounting(h: &mut String, sides: &[Side]) {
    let runs: Vec<(String, &crate::probe::reconcile::EventCounts)> = sides
        .iter()
        .flat_map(|side| {
            side.runs.iter().filter_map(move |run| {
                let name = if side.runs.len() == 1 {
                    side.label.clone()
                } else {
                    format!("{}/{}", side.label, label(&run.dir))
                };
                Some((name, run.result.events.as_ref()?))
            })
        })
        .collect();
    let Some((_, first)) = runs.first() else { return };
    h.push_str("<h2>Event accounting</h2><table id=\"accounting\"><tr><th>run</th>");
    for (class, _) in first.classes() {
        let _ = write!(h, "<th>{class}</th>");
    }
    h.push_str("</tr>\n");
    for (name, e) in &runs {
        let _ = write!(h, "<tr><td>{}</td>", escape(name));
        for (_, n) in e.classes() {
            let _ = write!(h, "<td>{n}</td>");
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
}
