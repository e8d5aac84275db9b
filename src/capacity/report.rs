//! The answers written down: terminal summary, saturate.json / capacity.json, the knee
//! and scalability plots, and a self-contained report.html.

use std::fmt::Write as _;
use std::path::Path;

use super::search::Bracket;
use super::step::Step;
use super::{CapacityResult, Saturation};
use crate::report::junit::escape;
use crate::report::plots::{self, Marker, Threshold, XyPlot, XySeries};
use crate::report::summary::fmt_ms;
use crate::scenario::SaturateSpec;
use plotters::prelude::SeriesLabelPosition;

/// One line per judged step.
pub fn step_line(step: &Step) -> String {
    let mut figures = vec![format!("{:.1} events/s", step.events_per_s)];
    if let Some(p99) = step.command_p99_ms {
        figures.push(format!("command p99 {} ms", fmt_ms(p99)));
    }
    if let Some(p99) = step.lag_p99_ms {
        figures.push(format!("lag p99 {} ms", fmt_ms(p99)));
    }
    if step.pass {
        format!("pass · {}", figures.join(" · "))
    } else {
        format!("FAIL: {} · {}", step.reasons.join("; "), figures.join(" · "))
    }
}

/// The search's answer in one sentence.
pub fn answer(s: &Saturation, bracket: &Bracket, spec: &SaturateSpec) -> String {
    let events = s.max_events_per_s.map_or_else(String::new, |e| format!(" ({e:.1} events/s)"));
    let cut = if s.interrupted { " (interrupted: the search did not finish)" } else { "" };
    match bracket {
        Bracket::Between { pass, fail } => format!(
            "sustains {pass} operations/s{events} within its SLOs; fails at {fail} operations/s \
             (bracket [{pass}, {fail}], precision {:.0} %){cut}",
            spec.precision * 100.0
        ),
        Bracket::AtLeast(pass) => format!(
            "sustains at least {pass} operations/s{events}: the search stopped at max_rate ({}){cut}",
            spec.max_rate
        ),
        Bracket::Below(fail) if s.steps.is_empty() => format!("no step ran{cut}"),
        Bracket::Below(fail) => {
            format!("fails even at {fail} operations/s (min_rate {}): no rate passed{cut}", spec.min_rate)
        }
    }
}

pub fn saturation_summary(s: &Saturation) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\nsaturation search · {} · {}", s.scenario, s.target);
    let _ = writeln!(
        out,
        "{:>4} {:>12} {:>12} {:>11} {:>11} {:>11}  verdict",
        "step", "offered/s", "events/s", "cmd p99", "lag p99", "lag slope"
    );
    let mut steps: Vec<&Step> = s.steps.iter().collect();
    steps.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    for step in steps {
        let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{} ms", fmt_ms(v)));
        let _ = writeln!(
            out,
            "{:>4} {:>12} {:>12.1} {:>11} {:>11} {:>11}  {}",
            step.index,
            step.rate,
            step.events_per_s,
            ms(step.command_p99_ms),
            ms(step.lag_p99_ms),
            step.lag_slope_ms_per_s.map_or("-".to_owned(), |v| format!("{v:.0} ms/s")),
            if step.pass { "pass".to_owned() } else { format!("FAIL: {}", step.reasons.join("; ")) }
        );
    }
    let _ = writeln!(out, "\n{}", s.answer);
    if !s.failed_because.is_empty() {
        let _ = writeln!(out, "lowest failing step: {}", s.failed_because.join("; "));
    }
    for note in &s.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out
}

/// The one line `--quiet` prints: the recommendation, else the fitted law.
pub fn capacity_answer(r: &CapacityResult) -> String {
    match (&r.recommendation, &r.usl) {
        (Some(rec), _) => rec.answer.clone(),
        (None, Some(usl)) => format!(
            "λ = {:.1} events/s per projector, σ = {:.4}, κ = {:.5}{}",
            usl.lambda,
            usl.sigma,
            usl.kappa,
            usl.peak_rate.map_or(String::new(), |x| format!("; predicted peak {x:.0} events/s"))
        ),
        (None, None) => "no projector count sustained any rate".to_owned(),
    }
}

pub fn capacity_summary(r: &CapacityResult) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\ncapacity · {}", r.scenario);
    let _ = writeln!(out, "{:>10} {:>16} {:>16}  bracket (operations/s)", "projectors", "max events/s", "USL fit");
    for p in &r.points {
        let fitted = r.predicted.iter().find(|x| x.projectors == p.projectors).map(|x| x.events_per_s);
        let s = &p.saturation;
        let _ = writeln!(
            out,
            "{:>10} {:>16} {:>16}  [{}, {}]",
            p.projectors,
            p.max_events_per_s.map_or("none".to_owned(), |x| format!("{x:.1}")),
            fitted.map_or("-".to_owned(), |x| format!("{x:.1}")),
            s.highest_pass.map_or("-".to_owned(), |x| x.to_string()),
            s.lowest_fail.map_or("-".to_owned(), |x| x.to_string()),
        );
    }
    match &r.usl {
        Some(usl) => {
            let _ = writeln!(
                out,
                "\nUSL: λ = {:.2} events/s per projector, σ = {:.4}, κ = {:.5}; fit error rms {:.1} %, max {:.1} %",
                usl.lambda, usl.sigma, usl.kappa, usl.rms_error_pct, usl.max_error_pct
            );
            let peak = match (usl.peak_projectors, usl.peak_rate) {
                (Some(n), Some(x)) => format!("peak at {n:.1} projectors: {x:.0} events/s"),
                (None, Some(x)) => format!("no peak (κ = 0): approaches {x:.0} events/s"),
                _ => "no peak and no ceiling within the model (σ = κ = 0: linear)".to_owned(),
            };
            let _ = writeln!(out, "{peak}");
            let predicted: Vec<String> =
                r.predicted.iter().map(|p| format!("{}: {:.0}", p.projectors, p.events_per_s)).collect();
            let _ = writeln!(out, "predicted max events/s by projectors: {}", predicted.join(", "));
        }
        None => {
            let _ = writeln!(out, "\nno USL fit: no projector count sustained any rate");
        }
    }
    if let Some(rec) = &r.recommendation {
        let _ = writeln!(out, "\n{}", rec.answer);
    }
    for note in &r.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out
}

pub fn write_saturation(s: &Saturation, dir: &Path) -> anyhow::Result<()> {
    crate::results::write_atomic(&dir.join("saturate.json"), serde_json::to_string_pretty(s)?.as_bytes())?;
    let svg = plots::render(&knee_plot(s), &dir.join("plots"))?;
    let mut h = page_head(&format!("saturation · {}", s.scenario));
    let detail: Vec<String> = s.failed_because.iter().chain(&s.notes).cloned().collect();
    answer_box(&mut h, s.highest_pass.is_some() && !s.interrupted, &s.answer, &detail.join("; "));
    figure(&mut h, &svg, "Latency and projection lag p99 per offered rate (hollow: the step failed)");
    steps_table(&mut h, s);
    h.push_str("</body></html>\n");
    crate::results::write_atomic(&dir.join("report.html"), h.as_bytes())
}

pub fn write_capacity(r: &CapacityResult, dir: &Path) -> anyhow::Result<()> {
    crate::results::write_atomic(&dir.join("capacity.json"), serde_json::to_string_pretty(r)?.as_bytes())?;
    let svg = plots::render(&scalability_plot(r), &dir.join("plots"))?;
    let mut h = page_head(&format!("capacity · {}", r.scenario));
    let headline = capacity_answer(r);
    let ok = r.usl.is_some() && r.recommendation.as_ref().is_none_or(|rec| rec.projectors.is_some());
    answer_box(&mut h, ok && !r.interrupted, &headline, &r.notes.join("; "));
    figure(&mut h, &svg, "Highest sustained event rate per projector count, and the fitted Universal Scalability Law");
    let _ = writeln!(
        h,
        "<h2>Capacity</h2><table><tr><th>projectors</th><th>measured max events/s</th><th>USL</th><th>bracket (operations/s)</th><th>steps</th><th>why the lowest failing step failed</th></tr>"
    );
    for p in &r.points {
        let fitted = r.predicted.iter().find(|x| x.projectors == p.projectors).map(|x| x.events_per_s);
        let s = &p.saturation;
        let _ = writeln!(
            h,
            "<tr><td><a href=\"projectors-{n}/report.html\">{n}</a></td><td>{}</td><td>{}</td><td>[{}, {}]</td><td>{}</td><td>{}</td></tr>",
            p.max_events_per_s.map_or("none".to_owned(), |x| format!("{x:.1}")),
            fitted.map_or("-".to_owned(), |x| format!("{x:.1}")),
            s.highest_pass.map_or("-".to_owned(), |x| x.to_string()),
            s.lowest_fail.map_or("-".to_owned(), |x| x.to_string()),
            s.steps.len(),
            escape(&s.failed_because.join("; ")),
            n = p.projectors,
        );
    }
    h.push_str("</table>\n");
    if let Some(usl) = &r.usl {
        let _ = writeln!(
            h,
            "<h2>Universal Scalability Law</h2><table><tr><th>λ (events/s, one projector)</th><th>σ (contention)</th><th>κ (coherency)</th><th>peak projectors</th><th>peak events/s</th><th>fit error rms / max</th></tr>\
             <tr><td>{:.2}</td><td>{:.4}</td><td>{:.5}</td><td>{}</td><td>{}</td><td>{:.1} % / {:.1} %</td></tr></table>",
            usl.lambda,
            usl.sigma,
            usl.kappa,
            usl.peak_projectors.map_or("none (κ = 0)".to_owned(), |n| format!("{n:.1}")),
            usl.peak_rate.map_or("unbounded".to_owned(), |x| format!("{x:.0}")),
            usl.rms_error_pct,
            usl.max_error_pct
        );
        h.push_str(
            "<h2>Predicted</h2><table><tr><th>projectors</th><th>predicted max events/s</th><th>measured</th></tr>",
        );
        for p in &r.predicted {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{:.1}</td><td>{}</td></tr>",
                p.projectors,
                p.events_per_s,
                p.measured.map_or("-".to_owned(), |x| format!("{x:.1}"))
            );
        }
        h.push_str("</table>\n");
    }
    let _ = writeln!(h, "<h2>Scenario</h2><pre>{}</pre>", escape(&serde_json::to_string_pretty(&r.recorded)?));
    h.push_str("</body></html>\n");
    crate::results::write_atomic(&dir.join("report.html"), h.as_bytes())
}

fn knee_plot(s: &Saturation) -> XyPlot {
    let series = |name: &str, colour: usize, value: fn(&Step) -> Option<f64>| XySeries {
        name: name.into(),
        points: s.steps.iter().filter_map(|st| value(st).map(|v| (st.rate, v, st.pass))).collect(),
        line: true,
        markers: true,
        secondary: false,
        colour,
    };
    let thresholds = s
        .slo_lines
        .iter()
        .map(|l| Threshold { label: format!("SLO {} {} ms", l.name, fmt_ms(l.threshold_ms)), value: l.threshold_ms })
        .collect();
    let markers = s
        .highest_pass
        .map(|rate| Marker { label: format!("highest passing: {rate}/s"), at_s: rate })
        .into_iter()
        .collect();
    XyPlot {
        name: "saturation".into(),
        title: format!("Saturation: {}", s.target),
        x_label: "offered rate (operations/s)".into(),
        y_label: "p99 (ms)".into(),
        series: [
            series("command latency p99", 0, |s| s.command_p99_ms),
            series("query latency p99", 1, |s| s.query_p99_ms),
            series("projection lag p99", 2, |s| s.lag_p99_ms),
        ]
        .into_iter()
        .filter(|s| !s.points.is_empty())
        .collect(),
        thresholds,
        markers,
        log_y: true,
        legend: SeriesLabelPosition::LowerRight,
        y_max: None,
        x_categories: Vec::new(),
    }
}

fn scalability_plot(r: &CapacityResult) -> XyPlot {
    let largest = r.points.iter().map(|p| p.projectors).max().unwrap_or(1);
    let measured = XySeries {
        name: "measured max (highest passing step)".into(),
        points: r.points.iter().filter_map(|p| p.max_events_per_s.map(|x| (p.projectors as f64, x, true))).collect(),
        line: false,
        markers: true,
        secondary: false,
        colour: 0,
    };
    let mut series = Vec::new();
    let mut markers = Vec::new();
    if let Some(usl) = &r.usl {
        let model = super::usl::Usl {
            lambda: usl.lambda,
            sigma: usl.sigma,
            kappa: usl.kappa,
            rms_error_pct: 0.0,
            max_error_pct: 0.0,
        };
        let end = 2.0 * largest as f64;
        let curve = |f: &dyn Fn(f64) -> f64| -> Vec<(f64, f64, bool)> {
            (0..=200).map(|i| 1.0 + (end - 1.0) * i as f64 / 200.0).map(|n| (n, f(n), true)).collect()
        };
        series.push(XySeries {
            name: "linear (λN)".into(),
            points: curve(&|n| usl.lambda * n),
            line: true,
            markers: false,
            secondary: true,
            colour: 6,
        });
        series.push(XySeries {
            name: format!("USL fit (λ = {:.1}, σ = {:.4}, κ = {:.5})", usl.lambda, usl.sigma, usl.kappa),
            points: curve(&|n| model.rate(n)),
            line: true,
            markers: false,
            secondary: false,
            colour: 1,
        });
        if let Some(peak) = usl.peak_projectors.filter(|n| *n <= end) {
            markers.push(Marker { label: format!("peak N* = {peak:.1}"), at_s: peak });
        }
    }
    // Drawn last: the measurements stay on top of the curves.
    series.push(measured);
    let thresholds = r
        .recommendation
        .iter()
        .map(|rec| Threshold {
            label: format!("target {:.0} events/s + {:.0} % headroom", rec.target_rate, rec.headroom * 100.0),
            value: rec.target_rate * (1.0 + rec.headroom),
        })
        .collect();
    XyPlot {
        name: "capacity".into(),
        title: format!("Capacity: {}", r.scenario),
        x_label: "projectors".into(),
        y_label: "events/s".into(),
        series,
        thresholds,
        markers,
        log_y: false,
        legend: SeriesLabelPosition::UpperLeft,
        y_max: None,
        x_categories: Vec::new(),
    }
}

fn page_head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>cqrs-bench: {t}</title><style>{}</style></head><body>\n<h1>cqrs-bench · {t}</h1>\n",
        crate::report::html::STYLE,
        t = escape(title)
    )
}

fn answer_box(h: &mut String, ok: bool, headline: &str, detail: &str) {
    let _ = writeln!(
        h,
        "<div class=\"verdict {}\">{}<small>{}</small></div>",
        if ok { "pass" } else { "fail" },
        escape(headline),
        escape(detail)
    );
}

fn figure(h: &mut String, svg: &str, caption: &str) {
    let svg = svg.find("<svg").map_or(svg, |i| &svg[i..]);
    let _ = writeln!(h, "<figure>{svg}<figcaption>{}</figcaption></figure>", escape(caption));
}

fn steps_table(h: &mut String, s: &Saturation) {
    let _ = writeln!(
        h,
        "<h2>Steps</h2><table><tr><th>step</th><th>offered/s</th><th>achieved/s</th><th>events/s</th><th>command p99</th><th>query p99</th><th>lag p99</th><th>lag slope</th><th>verdict</th></tr>"
    );
    let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{} ms", fmt_ms(v)));
    for step in &s.steps {
        let _ = writeln!(
            h,
            "<tr><td><a href=\"steps/{dir}/result.json\">{}</a></td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
            step.index,
            step.rate,
            step.achieved_per_s,
            step.events_per_s,
            ms(step.command_p99_ms),
            ms(step.query_p99_ms),
            ms(step.lag_p99_ms),
            step.lag_slope_ms_per_s.map_or("-".to_owned(), |v| format!("{v:.0} ms/s")),
            if step.pass { "ok" } else { "fail" },
            if step.pass { "pass".to_owned() } else { escape(&step.reasons.join("; ")) },
            dir = escape(&step.result_dir),
        );
    }
    h.push_str("</table>\n");
}
