//! The live view (issue 35): a page at `/` of the `--metrics-listen` endpoint that shows
//! the run while it runs, and the `/live.json` it polls each second: the timeline rows
//! closed so far drawn as report.html's time charts (the same plot structs and chart
//! specs, the same script), the progress line and the SLO table so far.
//!
//! Cheap for the run: the collector hands over each closed row and each worker's
//! measured-window latency histograms once per second (never per operation); a poll only
//! reads them under a lock the collector takes once a second, and the gauges.

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::live::serve::CSP;
use crate::live::{Gauges, LiveFeed};
use crate::measure::histogram;
use crate::report::figures::{TimelineView, live_charts};
use crate::report::interactive::{self, Chart, json_for_script};
use crate::report::junit::escape;
use crate::results::model::{SloResult, TimelineRow};
use crate::scenario::{OpKind, Scenario, SloMetric, SloRule};

/// The page's polling script, beside report.js.
const LIVE_JS: &str = include_str!("interactive/assets/live.js");

/// What the run has so far, for the page.
pub struct LiveView {
    scenario: String,
    operations: Vec<(String, OpKind)>,
    rules: Vec<SloRule>,
    /// The rules as threshold lines of the charts (no figure: the run is not over).
    lines: Vec<SloResult>,
    load: Duration,
    warmup_s: f64,
    step: u64,
    /// Closed-model runs offer an operation when a user starts it (as result.json counts).
    closed: bool,
    so_far: Mutex<SoFar>,
}

impl std::fmt::Debug for LiveView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveView").field("scenario", &self.scenario).finish_non_exhaustive()
    }
}

/// Added to by the collector once per second.
struct SoFar {
    rows: Vec<TimelineRow>,
    /// Per operation: the measured window's latency so far (the SLO figures' window).
    measured: Vec<Option<Histogram<u64>>>,
}

/// `/live.json`.
#[derive(Serialize)]
struct Snapshot<'a> {
    /// Timeline rows closed so far.
    rows: usize,
    phase: &'static str,
    progress: String,
    slo: Vec<SloSoFar>,
    charts: &'a [Chart],
}

/// A row of the SLO table so far.
#[derive(Serialize)]
struct SloSoFar {
    name: String,
    threshold: String,
    /// The figure so far, or why there is none yet.
    so_far: String,
    /// `pass`, `fail` (so far), or `open` (known at the end of the run).
    state: &'static str,
}

impl LiveView {
    pub fn new(scenario: &Scenario, step: u64) -> LiveView {
        let lines = scenario
            .slo
            .iter()
            .map(|rule| SloResult {
                name: rule.name.clone(),
                threshold: rule.threshold,
                observed: None,
                pass: false,
                comparison: if rule.metric.is_lower_bound() { ">=" } else { "<=" }.into(),
                unit: crate::results::slo::unit(&rule.metric).into(),
                unknown_because: None,
                unsure: None,
            })
            .collect();
        LiveView {
            scenario: scenario.name.clone(),
            operations: scenario.operations.iter().map(|o| (o.name.clone(), o.kind)).collect(),
            rules: scenario.slo.clone(),
            lines,
            load: scenario.load_duration(),
            warmup_s: scenario.load.warmup.as_secs_f64(),
            step: step.max(1),
            closed: matches!(scenario.load.model, crate::scenario::LoadModel::Closed { .. }),
            so_far: Mutex::new(SoFar { rows: Vec::new(), measured: vec![None; scenario.operations.len()] }),
        }
    }

    /// A closed timeline row (the collector's, before result.json recounts its offered
    /// and dropped slots by intended second).
    pub fn add_row(&self, row: &TimelineRow) {
        let mut row = row.clone();
        if self.closed {
            row.offered = row.achieved + row.conflicts + row.errors;
        }
        self.so_far.lock().expect("no panic while held").rows.push(row);
    }

    /// A worker's measured-window latency of one second for operation `op`.
    pub fn add_measured(&self, op: usize, histogram: &Histogram<u64>) {
        let mut so_far = self.so_far.lock().expect("no panic while held");
        match &mut so_far.measured[op] {
            Some(sum) => sum.add(histogram).expect("same histogram bounds"),
            slot @ None => *slot = Some(histogram.clone()),
        }
    }

    /// The charts of the rows so far, and their count.
    fn charts(&self) -> (Vec<Chart>, usize) {
        let so_far = self.so_far.lock().expect("no panic while held");
        let view = TimelineView {
            timeline: &so_far.rows,
            step: self.step,
            operations: self.operations.iter().map(|(n, _)| n.as_str()).collect(),
            slo: &self.lines,
        };
        (live_charts(&view, self.load.as_secs_f64().max(1.0)), so_far.rows.len())
    }

    /// `/live.json`.
    pub fn json(&self, gauges: &Gauges) -> String {
        let (charts, rows) = self.charts();
        let (phase, _) = gauges.phase();
        let progress = crate::report::progress::live_line(gauges, self.load, self.last_rates());
        let snapshot = Snapshot { rows, phase: phase.label(), progress, slo: self.slo_so_far(), charts: &charts };
        json_for_script(&snapshot)
    }

    /// Offered and achieved per second of the last closed row.
    fn last_rates(&self) -> Option<(f64, f64)> {
        let so_far = self.so_far.lock().expect("no panic while held");
        let row = so_far.rows.last()?;
        let step = self.step as f64;
        Some((row.offered as f64 / step, row.achieved as f64 / step))
    }

    /// Latency rules from the measured window so far (exact: the histograms added, as at
    /// the end); every other rule needs the end of the run (lag probes settle, the read
    /// model is verified, the bus drains) and is shown open.
    fn slo_so_far(&self) -> Vec<SloSoFar> {
        let so_far = self.so_far.lock().expect("no panic while held");
        let merged = |pick: &dyn Fn(usize) -> bool| -> Option<Histogram<u64>> {
            let mut sum: Option<Histogram<u64>> = None;
            for (i, h) in so_far.measured.iter().enumerate() {
                if let (true, Some(h)) = (pick(i), h) {
                    match &mut sum {
                        Some(s) => s.add(h).expect("same histogram bounds"),
                        None => sum = Some(h.clone()),
                    }
                }
            }
            sum
        };
        let of_kind = |kind: OpKind| merged(&|i| self.operations[i].1 == kind);
        self.rules
            .iter()
            .map(|rule| {
                let latency = match &rule.metric {
                    SloMetric::CommandLatency(p) => Some((of_kind(OpKind::Command), *p)),
                    SloMetric::QueryLatency(p) => Some((of_kind(OpKind::Query), *p)),
                    SloMetric::OperationLatency { operation, percentile } => {
                        let i = self.operations.iter().position(|(n, _)| n == operation);
                        Some((i.and_then(|i| merged(&|j| j == i)), *percentile))
                    }
                    _ => None,
                };
                let lower = rule.metric.is_lower_bound();
                let unit = crate::results::slo::unit(&rule.metric);
                let threshold = format!(
                    "{} {}",
                    if lower { "≥" } else { "≤" },
                    crate::report::summary::format_value(rule.threshold, unit)
                );
                let (so_far, state) = match latency {
                    None => ("known at the end of the run".to_owned(), "open"),
                    Some((None, _)) => ("no operation measured yet".to_owned(), "open"),
                    Some((Some(h), p)) => match histogram::percentile_ms(&h, p) {
                        None => ("no operation measured yet".to_owned(), "open"),
                        Some(v) => {
                            let met = if lower { v >= rule.threshold } else { v <= rule.threshold };
                            (crate::report::summary::format_value(v, unit), if met { "pass" } else { "fail" })
                        }
                    },
                };
                SloSoFar { name: rule.name.clone(), threshold, so_far, state }
            })
            .collect()
    }

    /// The page at `/`: the charts as they are now (report.js draws them at once), then
    /// live.js polls `/live.json` each second. Names reach it escaped, as in report.html.
    pub fn page(&self, gauges: &Gauges) -> String {
        let (charts, _) = self.charts();
        let chart_refs: Vec<&Chart> = charts.iter().collect();
        let boxes: String = charts
            .iter()
            .map(|c| format!("<figure><div class=\"chart-box\" id=\"chart-{}\"></div></figure>\n", escape(&c.id)))
            .collect();
        let first = self.json(gauges);
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\
             <title>cqrs-bench live · {name}</title>{style}<style>{PAGE_STYLE}</style></head>\n<body>\n\
             <h1>cqrs-bench live · {name}</h1>\n\
             <p class=\"progress\" id=\"live-progress\"></p><p class=\"status\" id=\"live-status\">live: updated each second</p>\n\
             <h2>SLO so far</h2>\n<table class=\"slo\" id=\"live-slo\"><thead><tr><th>rule</th><th>threshold</th><th>so far</th></tr></thead><tbody></tbody></table>\n\
             <h2>Over time</h2>\n<div class=\"zoom\">drag to zoom, double-click for the whole run; the final report has every figure</div>\n\
             {boxes}\
             <script type=\"application/json\" id=\"live-first\">{first}</script>\n{scripts}<script>{LIVE_JS}</script>\n</body></html>\n",
            name = escape(&self.scenario),
            style = interactive::style(),
            scripts = interactive::scripts(&chart_refs, self.warmup_s),
        )
    }
}

impl LiveFeed for LiveView {
    fn add_row(&self, row: &TimelineRow) {
        LiveView::add_row(self, row)
    }
    fn add_measured(&self, op: usize, histogram: &Histogram<u64>) {
        LiveView::add_measured(self, op, histogram)
    }
    fn json(&self, gauges: &Gauges) -> String {
        LiveView::json(self, gauges)
    }
    fn page(&self, gauges: &Gauges) -> String {
        LiveView::page(self, gauges)
    }
}

const PAGE_STYLE: &str = r#"
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1200px; padding: 0 16px; color: #1f2430; background: #fafbfc; }
.progress { font-family: ui-monospace, monospace; font-size: 14px; background: white; border: 1px solid #d8dde5; padding: 8px; }
.status { font-size: 13px; color: #5b6472; }
table.slo { border-collapse: collapse; font-size: 14px; } table.slo td, table.slo th { border: 1px solid #d8dde5; padding: 4px 10px; text-align: left; }
tr.pass td:last-child { color: #17663a; } tr.fail td:last-child { color: #b3261e; font-weight: 600; } tr.open td:last-child { color: #5b6472; }
figure { margin: 12px 0; }
"#;

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Instant;

    use super::*;
    use crate::results::model::IntervalLatency;

    /// An hour of rows (the timeline's cap) polled once, names that try to end the page's
    /// elements, and a latency rule judged from the measured histograms so far.
    #[test]
    fn a_poll_of_an_hour_of_rows_with_hostile_names() {
        let mut scenario = crate::scenario::load(Path::new("scenarios/quickstart.toml"), &[]).unwrap();
        scenario.name = "</title><script>alert(1)</script>".into();
        scenario.operations[0].name = "</script><script>alert(2)</script><!--".into();
        assert_eq!(scenario.operations[0].kind, OpKind::Command);
        let view = LiveView::new(&scenario, 1);
        let mut measured = histogram::new_latency_histogram();
        for ms in 1..=100 {
            histogram::record(&mut measured, Duration::from_millis(ms));
        }
        view.add_measured(0, &measured);
        let names: Vec<String> = scenario.operations.iter().map(|o| o.name.clone()).collect();
        for t_s in 0..3600 {
            let mut row = TimelineRow { t_s, offered: 500, achieved: 500, ..TimelineRow::default() };
            for name in &names {
                row.latency_ms.insert(name.clone(), IntervalLatency { count: 125, p50: 1.0, p99: 2.0, max: 3.0 });
            }
            view.add_row(&row);
        }
        let gauges = Gauges::default();
        let began = Instant::now();
        let json = view.json(&gauges);
        eprintln!(
            "/live.json of 3,600 rows × {} operations: {} KB in {:.1?}",
            names.len(),
            json.len() / 1024,
            began.elapsed()
        );
        assert!(!json.contains('<') && !json.contains('>'), "names stay inside the JSON strings");
        let snapshot: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(snapshot["rows"], 3600);
        let throughput = snapshot["charts"].as_array().unwrap().iter().find(|c| c["id"] == "throughput").unwrap();
        assert_eq!(throughput["series"][1]["x"].as_array().unwrap().len(), 3600);
        // command_latency_p95 ≤ 200 ms: the commands' measured p95 so far is ~95 ms.
        let rule = snapshot["slo"].as_array().unwrap().iter().find(|r| r["name"] == "command_latency_p95").unwrap();
        assert_eq!(rule["state"], "pass", "{rule}");
        assert!(rule["so_far"].as_str().unwrap().starts_with("9"), "{rule}");
        // Rules that need the end of the run are open, not 0.
        let lag = snapshot["slo"].as_array().unwrap().iter().find(|r| r["name"] == "projection_lag_p99").unwrap();
        assert_eq!(lag["state"], "open");
        let page = view.page(&gauges);
        assert!(!page.contains("<script>alert"), "the names do not open an element");
        assert!(page.contains("&lt;/title&gt;"), "the title is escaped");
    }
}
