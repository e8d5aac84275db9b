//! Which plots a run gets, built from the result model alone (so `cqrs-bench report`
//! can redraw them from result.json).

use std::path::Path;

use super::interactive::Chart;
use super::plots::{self, BarPlot, Marker, Plot, Series, SpectrumPlot, Threshold, TimeSeriesPlot};
use crate::results::histogram;
use crate::results::model::{RunResult, SloResult, TimelineRow};

/// A plot of the run: its static files (plots/NAME.svg and .png) and its interactive
/// chart in report.html, both from the same plot struct (issue 35).
pub struct Figure {
    pub title: String,
    pub chart: Chart,
}

/// Collects the figures: draws each plot's files and keeps its chart spec.
struct Figures<'a> {
    dir: &'a Path,
    figures: Vec<Figure>,
    warnings: Vec<String>,
}

impl Figures<'_> {
    /// A plot whose files fail is returned as `plots: …: why` (an output not written,
    /// issue 32); its interactive chart is still in the page.
    fn add<P: Plot>(&mut self, plot: &P)
    where
        for<'p> &'p P: Into<Chart>,
    {
        let chart: Chart = plot.into();
        if let Err(e) = plots::render(plot, self.dir) {
            self.warnings.push(format!("plots: `{}`: {e:#}", chart.title));
        }
        self.figures.push(Figure { title: chart.title.clone(), chart });
    }
}

/// Draws every plot that has data into `dir` (SVG + PNG) and returns the figures for
/// report.html, with the plots that could not be written (the others are still drawn).
pub fn render_all(result: &RunResult, dir: &Path) -> (Vec<Figure>, Vec<String>) {
    let mut f = Figures { dir, figures: Vec::new(), warnings: Vec::new() };
    let markers: Vec<Marker> = result.actions.iter().map(|a| Marker { label: a.name.clone(), at_s: a.at_s }).collect();
    let duration_s = (result.timeline.len() as u64 * result.timeline_step()).max(1) as f64;

    f.add(&latency_spectrum(result));
    let view = TimelineView::of(result);
    f.add(&latency_over_time(&view, &markers, duration_s));
    f.add(&throughput(&view, &markers, duration_s));
    if let Some((lag_time, lag_spectrum)) = projection_lag(result, &markers, duration_s) {
        f.add(&lag_time);
        f.add(&lag_spectrum);
    }
    if let Some(stages) = lag_stages(result, &markers, duration_s) {
        f.add(&stages);
    }
    if let Some(curve) = visibility(result) {
        f.add(&curve);
    }
    if let Some(events) = events(result) {
        f.add(&events);
    }
    if let Some(lag) = consumer_lag(result, &markers, duration_s) {
        f.add(&lag);
    }
    if let Some(conflicts) = conflicts(result, &markers, duration_s) {
        f.add(&conflicts);
    }
    for (i, source) in result.backlog.iter().enumerate() {
        for plot in backlog(result, i, source, &markers, duration_s) {
            f.add(&plot);
        }
    }
    (f.figures, f.warnings)
}

/// What the time plots of the load (latency and throughput over time) are drawn from:
/// a finished run's, or the rows a running one has so far (the live view, issue 35).
pub struct TimelineView<'a> {
    pub timeline: &'a [TimelineRow],
    /// Seconds per row (at least 1).
    pub step: u64,
    pub operations: Vec<&'a str>,
    /// The SLO rules, for their threshold lines (a live view's have no figure yet).
    pub slo: &'a [SloResult],
}

impl TimelineView<'_> {
    pub fn of(result: &RunResult) -> TimelineView<'_> {
        TimelineView {
            timeline: &result.timeline,
            step: result.timeline_step(),
            operations: result.operations.keys().map(String::as_str).collect(),
            slo: &result.slo,
        }
    }

    /// The middle of the row starting at `t_s`, where its point is drawn.
    fn mid(&self, t_s: u64) -> f64 {
        t_s as f64 + self.step as f64 / 2.0
    }
}

/// The live view's charts (issue 35): the time plots of the load, as report.html has them.
pub fn live_charts(view: &TimelineView, duration_s: f64) -> Vec<Chart> {
    vec![(&latency_over_time(view, &[], duration_s)).into(), (&throughput(view, &[], duration_s)).into()]
}

/// SLO thresholds whose name matches `pred`, as labelled lines.
fn thresholds(result: &RunResult, pred: impl Fn(&str) -> bool) -> Vec<Threshold> {
    slo_thresholds(&result.slo, pred)
}

fn slo_thresholds(slo: &[SloResult], pred: impl Fn(&str) -> bool) -> Vec<Threshold> {
    slo.iter()
        .filter(|s| pred(&s.name))
        .map(|s| Threshold {
            label: format!(
                "SLO {} {} {}",
                s.name,
                if s.comparison == ">=" { "≥" } else { "≤" },
                super::summary::format_value(s.threshold, &s.unit)
            ),
            value: s.threshold,
        })
        .collect()
}

fn is_latency_slo(name: &str) -> bool {
    name.contains("_latency_p")
}

pub fn latency_spectrum(result: &RunResult) -> SpectrumPlot {
    let series = result
        .operations
        .iter()
        .filter(|(_, op)| op.count > 0)
        .filter_map(|(name, op)| {
            let h = histogram::decode(&op.histogram).ok()?;
            Some((format!("{name} ({})", op.kind), SpectrumPlot::points(&h)))
        })
        .collect();
    SpectrumPlot {
        name: "latency-spectrum".into(),
        title: "Latency by percentile (intended start → last byte)".into(),
        y_label: "latency (ms)".into(),
        series,
        thresholds: thresholds(result, is_latency_slo),
    }
}

/// The middle of the timeline row starting at `t_s`, where its point is drawn.
fn mid(result: &RunResult, t_s: u64) -> f64 {
    t_s as f64 + result.timeline_step() as f64 / 2.0
}

fn latency_over_time(view: &TimelineView, markers: &[Marker], duration_s: f64) -> TimeSeriesPlot {
    let mut series = Vec::new();
    for (i, name) in view.operations.iter().enumerate() {
        let points = |pick: fn(&crate::results::model::IntervalLatency) -> f64| -> Vec<(f64, f64)> {
            view.timeline
                .iter()
                .filter_map(|row| row.latency_ms.get(*name).map(|l| (view.mid(row.t_s), pick(l))))
                .collect()
        };
        series.push(Series { name: format!("{name} p99"), points: points(|l| l.p99), secondary: false, colour: i });
        series.push(Series { name: format!("{name} p50"), points: points(|l| l.p50), secondary: true, colour: i });
    }
    TimeSeriesPlot {
        name: "latency-over-time".into(),
        title: format!(
            "Latency over time (per {})",
            match view.step {
                1 => "second".into(),
                n => format!("{n} s"),
            }
        ),
        y_label: "latency (ms)".into(),
        series,
        faint: send_lag(view).into_iter().collect(),
        thresholds: slo_thresholds(view.slo, is_latency_slo),
        markers: markers.to_vec(),
        duration_s,
        log_y: true,
    }
}

/// The generator's send-lag p99 per row (issue 30): where it rises toward the latencies,
/// they include the generator's own lateness. `None` for results without it.
fn send_lag(view: &TimelineView) -> Option<Series> {
    let points: Vec<(f64, f64)> =
        view.timeline.iter().filter_map(|row| Some((view.mid(row.t_s), row.send_lag_p99_ms?))).collect();
    (!points.is_empty()).then(|| Series {
        name: "generator send lag p99".into(),
        points,
        secondary: true,
        colour: GREY,
    })
}

/// The palette's grey: context, not a figure of the target.
const GREY: usize = 6;

fn throughput(view: &TimelineView, markers: &[Marker], duration_s: f64) -> TimeSeriesPlot {
    let column = |pick: fn(&crate::results::model::TimelineRow) -> u64| -> Vec<(f64, f64)> {
        // Counts per row, as rates.
        let step = view.step as f64;
        view.timeline.iter().map(|row| (view.mid(row.t_s), pick(row) as f64 / step)).collect()
    };
    let mut series = vec![
        Series { name: "offered".into(), points: column(|r| r.offered), secondary: true, colour: 6 },
        Series { name: "achieved".into(), points: column(|r| r.achieved), secondary: false, colour: 0 },
    ];
    if view.timeline.iter().any(|r| r.errors > 0) {
        series.push(Series { name: "errors".into(), points: column(|r| r.errors), secondary: false, colour: 1 });
    }
    if view.timeline.iter().any(|r| r.dropped > 0) {
        series.push(Series { name: "dropped".into(), points: column(|r| r.dropped), secondary: false, colour: 4 });
    }
    TimeSeriesPlot {
        name: "throughput".into(),
        title: "Throughput: offered vs achieved".into(),
        y_label: "operations per second".into(),
        series,
        faint: Vec::new(),
        thresholds: slo_thresholds(view.slo, |n| n == "min_throughput"),
        markers: markers.to_vec(),
        duration_s,
        log_y: false,
    }
}

/// Conflicts per second (issue 31): how hot an aggregate can get before writes lose the
/// race. Drawn when there were conflicts or a command has a `conflict` rule.
fn conflicts(result: &RunResult, markers: &[Marker], duration_s: f64) -> Option<TimeSeriesPlot> {
    let any_conflict = result.timeline.iter().any(|r| r.conflicts > 0);
    if !any_conflict && !has_conflict_rule(result) {
        return None;
    }
    let step = result.timeline_step() as f64;
    let points = result.timeline.iter().map(|row| (mid(result, row.t_s), row.conflicts as f64 / step)).collect();
    Some(TimeSeriesPlot {
        name: "conflicts".into(),
        title: format!("Conflicts over time ({:.1} % of answered commands)", 100.0 * result.commands.conflict_rate),
        y_label: "conflicts per second".into(),
        series: vec![Series { name: "conflicts".into(), points, secondary: false, colour: 3 }],
        faint: Vec::new(),
        thresholds: Vec::new(),
        markers: markers.to_vec(),
        duration_s,
        log_y: false,
    })
}

/// True when a `[[command]]` of the recorded scenario has a `conflict` rule.
fn has_conflict_rule(result: &RunResult) -> bool {
    result
        .scenario
        .get("command")
        .and_then(|c| c.as_array())
        .is_some_and(|commands| commands.iter().any(|c| c.get("conflict").is_some()))
}

fn projection_lag(result: &RunResult, markers: &[Marker], duration_s: f64) -> Option<(TimeSeriesPlot, SpectrumPlot)> {
    let projection = result.projection.as_ref()?;
    let points: Vec<(f64, f64)> =
        result.timeline.iter().filter_map(|row| row.projection_lag_p99_ms.map(|v| (mid(result, row.t_s), v))).collect();
    let lag_thresholds = thresholds(result, |n| n.starts_with("projection_lag_"));
    let over_time = TimeSeriesPlot {
        name: "projection-lag".into(),
        title: format!(
            "Projection lag over time (p99 per {}, resolution {} ms)",
            result.timeline_row_label(),
            projection.resolution_ms
        ),
        y_label: "lag (ms)".into(),
        series: vec![Series { name: "lag p99".into(), points, secondary: false, colour: 2 }],
        faint: Vec::new(),
        thresholds: lag_thresholds.clone(),
        markers: markers.to_vec(),
        duration_s,
        log_y: true,
    };
    let h = histogram::decode(&projection.histogram).ok()?;
    let spectrum = SpectrumPlot {
        name: "projection-lag-spectrum".into(),
        title: format!("Projection lag by percentile ({} probes, {} late)", projection.probes, projection.late),
        y_label: "lag (ms)".into(),
        series: vec![("acknowledgement → visible".into(), SpectrumPlot::points(&h))],
        thresholds: lag_thresholds,
    };
    Some((over_time, spectrum))
}

/// Lag attribution: the mean of each stage per second of acknowledgement, stacked.
fn lag_stages(result: &RunResult, markers: &[Marker], duration_s: f64) -> Option<plots::StackedPlot> {
    let a = result.projection.as_ref()?.attribution.as_ref().filter(|a| a.attributed > 0)?;
    let dominant = a.dominant.as_deref().unwrap_or("-");
    Some(plots::StackedPlot {
        name: "lag-stages".into(),
        title: format!("Where the projection lag comes from ({} probes; {dominant} dominates)", a.attributed),
        y_label: "mean lag per stage (ms)".into(),
        layers: a
            .stages
            .iter()
            .enumerate()
            .map(|(i, s)| {
                (format!("{} (mean {} ms, {:.0} %)", s.name, super::summary::fmt_ms(s.mean_ms), s.share * 100.0), i)
            })
            .collect(),
        rows: a.series.iter().map(|r| (r.t_s as f64 + 0.5, r.mean_ms.clone())).collect(),
        markers: markers.to_vec(),
        duration_s,
    })
}

/// `[staleness]`: P(fresh) per delay after the acknowledgement, with its 95 % interval.
fn visibility(result: &RunResult) -> Option<plots::XyPlot> {
    let st = result.staleness.as_ref().filter(|s| s.reads > 0)?;
    let line = |name: &str,
                colour: usize,
                secondary: bool,
                value: fn(&crate::results::model::StalenessPoint) -> Option<f64>| {
        plots::XySeries {
            name: name.into(),
            points: st
                .points
                .iter()
                .enumerate()
                .filter_map(|(i, p)| value(p).map(|v| (i as f64, v * 100.0, true)))
                .collect(),
            line: true,
            markers: !secondary,
            secondary,
            colour,
        }
    };
    // At the category of its delay; one marker when both points coincide.
    let index_of = |ms: f64| st.points.iter().position(|p| (p.delay_ms - ms).abs() < 1e-9).map(|i| i as f64);
    let mut markers: Vec<Marker> = Vec::new();
    for (at, label) in [(st.fresh_p99_at_ms, "99 %"), (st.fresh_p999_at_ms, "99.9 %")] {
        let Some((ms, x)) = at.and_then(|ms| index_of(ms).map(|x| (ms, x))) else { continue };
        match markers.iter_mut().find(|m| m.at_s == x) {
            Some(m) => m.label = format!("99 % and {label} fresh from {} ms", super::summary::fmt_ms(ms)),
            None => {
                markers.push(Marker { label: format!("{label} fresh from {} ms", super::summary::fmt_ms(ms)), at_s: x })
            }
        }
    }
    Some(plots::XyPlot {
        name: "read-your-writes".into(),
        title: "Read-your-writes: P(a read t ms after the ack is fresh)".into(),
        x_label: "delay after the acknowledgement (ms)".into(),
        y_label: "fresh reads (%)".into(),
        series: vec![
            line("P(fresh)", 0, false, |p| p.p_fresh),
            line("95 % interval, low", 0, true, |p| p.p_fresh_low),
            line("95 % interval, high", 0, true, |p| p.p_fresh_high),
        ],
        thresholds: Vec::new(),
        markers,
        log_y: false,
        legend: plotters::prelude::SeriesLabelPosition::LowerRight,
        y_max: Some(100.0),
        x_categories: st.points.iter().map(|p| format!("{} ms", plots::tick(p.delay_ms))).collect(),
    })
}

/// A `[[backlog]]` source: its backlog over time, and the consumers' throughput beside the
/// events the load produced (commands completed per second, from the timeline), so a
/// projector falling behind shows as a gap between the two lines. An unknown sample is a
/// break in the line (NaN), never 0. Markers: the `[[action]]`s and the load's end (the
/// drain is counted from it). Two plots, as entries and entries/s do not share an axis,
/// and a third of the lag in seconds where the source tells it.
fn backlog(
    result: &RunResult,
    index: usize,
    source: &crate::probe::backlog::BacklogStats,
    markers: &[Marker],
    duration_s: f64,
) -> Vec<TimeSeriesPlot> {
    let mut markers = markers.to_vec();
    markers.push(Marker { label: "load end".into(), at_s: source.load_end_s });
    let duration_s = duration_s.max(source.samples.last().map_or(0.0, |s| s.t_s));
    let file = format!("backlog-{}", crate::report::hlog::file_safe(&source.name));
    let or_gap = |v: Option<f64>| v.unwrap_or(f64::NAN);
    let behind = source.samples.iter().map(|s| (s.t_s, or_gap(s.backlog.map(|b| b as f64)))).collect();
    let drain = match (source.drained_after_ms, source.not_drained) {
        (Some(ms), _) => format!("drained {:.1} s after the load", ms / 1000.0),
        (None, Some(left)) => format!("not drained: {left} left"),
        (None, None) => "drain unknown".into(),
    };
    let over_time = TimeSeriesPlot {
        name: file.clone(),
        title: format!("Backlog of {} ({}): {drain}", source.name, source.kind),
        y_label: "entries behind".into(),
        series: vec![Series { name: "backlog".into(), points: behind, secondary: false, colour: index % 8 }],
        faint: Vec::new(),
        thresholds: thresholds(result, |n| n == "backlog_max"),
        markers: markers.clone(),
        duration_s,
        log_y: false,
    };
    // Commands completed in each timeline row, per second: the events the load produced.
    let step = result.timeline_step() as f64;
    let commands: Vec<&String> =
        result.operations.iter().filter(|(_, o)| o.kind == "command").map(|(name, _)| name).collect();
    let produced = result
        .timeline
        .iter()
        .map(|row| {
            let count: u64 = commands.iter().filter_map(|c| row.latency_ms.get(*c)).map(|l| l.count).sum();
            (row.t_s as f64 + step / 2.0, count as f64 / step)
        })
        .collect();
    let applied = source.samples.iter().map(|s| (s.t_s, or_gap(s.applied_per_s))).collect();
    let throughput = TimeSeriesPlot {
        name: format!("{file}-throughput"),
        title: format!("Consumers of {} vs the load: entries applied and produced per second", source.name),
        y_label: "entries/s".into(),
        series: vec![
            Series { name: "produced (commands/s)".into(), points: produced, secondary: true, colour: 6 },
            Series { name: "applied by the consumers".into(), points: applied, secondary: false, colour: index % 8 },
        ],
        faint: Vec::new(),
        thresholds: Vec::new(),
        markers,
        duration_s,
        log_y: false,
    };
    let mut plots = vec![over_time, throughput];
    // Lag in seconds, where the source tells it (entry ids of Redis Streams, a SQL
    // `oldest_unapplied` timestamp): its own plot, as seconds do not share entries' axis.
    if source.max_lag_s.is_some() {
        let lag = source.samples.iter().map(|s| (s.t_s, or_gap(s.lag_s))).collect();
        plots.push(TimeSeriesPlot {
            name: format!("{file}-lag"),
            title: format!("Lag of {}: age of the oldest entry not applied", source.name),
            y_label: "seconds behind".into(),
            series: vec![Series { name: "lag".into(), points: lag, secondary: false, colour: index % 8 }],
            faint: Vec::new(),
            thresholds: Vec::new(),
            markers: plots[0].markers.clone(),
            duration_s,
            log_y: false,
        });
    }
    plots
}

/// Kafka consumer-group lag in messages, one line per group.
fn consumer_lag(result: &RunResult, markers: &[Marker], duration_s: f64) -> Option<TimeSeriesPlot> {
    let bus = result.bus.as_ref().filter(|b| !b.consumer_lag.is_empty())?;
    let series = bus
        .consumer_lag
        .iter()
        .enumerate()
        .map(|(i, (group, lag))| Series {
            name: format!("{group} (max {:.1} s behind)", lag.max_seconds),
            points: lag.series.iter().map(|s| (s.t_s, s.messages as f64)).collect(),
            secondary: false,
            colour: i,
        })
        .collect();
    Some(TimeSeriesPlot {
        name: "consumer-lag".into(),
        title: format!("Consumer-group lag on {} (log end − committed offset)", bus.topic),
        y_label: "messages behind".into(),
        series,
        faint: Vec::new(),
        thresholds: thresholds(result, |n| n == "consumer_lag_max"),
        markers: markers.to_vec(),
        duration_s: duration_s
            .max(bus.consumer_lag.values().flat_map(|l| l.series.last()).map(|s| s.t_s).fold(0.0, f64::max)),
        log_y: false,
    })
}

fn events(result: &RunResult) -> Option<BarPlot> {
    let e = result.events.as_ref()?;
    Some(BarPlot {
        name: "events".into(),
        title: "Event accounting (read model after the load)".into(),
        y_label: "command refs".into(),
        bars: vec![
            ("acked".into(), e.acked, 0),
            ("missed".into(), e.missed, 1),
            ("duplicates".into(), e.duplicates, 3),
            ("unexpected".into(), e.unexpected, 4),
            ("indeterminate".into(), e.indeterminate, 6),
            ("recovered".into(), e.recovered, 2),
            ("reordered".into(), e.reordered, 5),
        ],
    })
}
