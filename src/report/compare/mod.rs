//! `cqrs-bench compare`: runs side by side (terminal table, compare.md for a pull
//! request, overlaid plots, compare.html with interactive charts) and, with a baseline, the regression gate.
//!
//! A side is one run folder or a set of runs (a `run --repeat` folder, or several
//! `--baseline` folders). Against a baseline, each figure recorded per second (command
//! and query latency percentiles, projection lag percentiles, goodput) gets a change with a
//! 95 % bootstrap interval (`bootstrap`): it is *regressed* when the whole interval is worse
//! than the noise band and the change is larger than `--max-regression`; a percentile with
//! too few samples beyond it on either side is not judged (`bootstrap::min_samples`). The noise band is `--noise`, widened
//! to the spread a baseline set showed between its runs. Latencies must also be worse by
//! at least `LATENCY_FLOOR_MS`. Figures without per-second samples (error rates, missed
//! and duplicate events, and anything of a merged run) are judged as single
//! values against the worst run of the baseline: worse by more than `--max-regression`
//! regresses, and for counts whose baseline is 0 (missed, duplicates), any increase.

mod bootstrap;
mod page;
mod seconds;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

pub use self::bootstrap::{Change, Verdict};
use self::seconds::RunSeconds;
use super::interactive::Chart;
use super::plots::{self, SpectrumPlot};
use super::summary::fmt_ms;
use crate::results::model::TimelineRow;
use crate::results::{self, RunResult, histogram};

/// Latency differences below this are noise, never a regression.
pub const LATENCY_FLOOR_MS: f64 = 1.0;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Better {
    Lower,
    Higher,
}

struct Metric {
    name: &'static str,
    unit: &'static str,
    better: Better,
    value: fn(&RunResult) -> Option<f64>,
    /// Its index among the figures resampled per second, if it is one.
    per_second: Option<usize>,
}

const METRICS: &[Metric] = &[
    Metric {
        name: "command latency p50",
        unit: "ms",
        better: Better::Lower,
        value: |r| some_count(r.commands.count, r.commands.latency_ms.p50),
        per_second: Some(bootstrap::latency(0, 0)),
    },
    Metric {
        name: "command latency p95",
        unit: "ms",
        better: Better::Lower,
        value: |r| some_count(r.commands.count, r.commands.latency_ms.p95),
        per_second: Some(bootstrap::latency(0, 1)),
    },
    Metric {
        name: "command latency p99",
        unit: "ms",
        better: Better::Lower,
        value: |r| some_count(r.commands.count, r.commands.latency_ms.p99),
        per_second: Some(bootstrap::latency(0, 2)),
    },
    Metric {
        name: "query latency p50",
        unit: "ms",
        better: Better::Lower,
        value: |r| some_count(r.queries.count, r.queries.latency_ms.p50),
        per_second: Some(bootstrap::latency(1, 0)),
    },
    Metric {
        name: "query latency p95",
        unit: "ms",
        better: Better::Lower,
        value: |r| some_count(r.queries.count, r.queries.latency_ms.p95),
        per_second: Some(bootstrap::latency(1, 1)),
    },
    Metric {
        name: "query latency p99",
        unit: "ms",
        better: Better::Lower,
        value: |r| some_count(r.queries.count, r.queries.latency_ms.p99),
        per_second: Some(bootstrap::latency(1, 2)),
    },
    Metric {
        name: "achieved throughput",
        unit: "ops/s",
        better: Better::Higher,
        value: |r| Some(r.throughput.achieved_per_s),
        per_second: Some(bootstrap::GOODPUT),
    },
    Metric {
        name: "command error rate",
        unit: "ratio",
        better: Better::Lower,
        value: |r| some_count(r.commands.count, r.commands.error_rate),
        per_second: None,
    },
    Metric {
        name: "query error rate",
        unit: "ratio",
        better: Better::Lower,
        value: |r| some_count(r.queries.count, r.queries.error_rate),
        per_second: None,
    },
    Metric {
        name: "projection lag p50",
        unit: "ms",
        better: Better::Lower,
        value: |r| r.projection.as_ref().map(|p| p.lag_ms.p50),
        per_second: Some(bootstrap::latency(2, 0)),
    },
    Metric {
        name: "projection lag p95",
        unit: "ms",
        better: Better::Lower,
        value: |r| r.projection.as_ref().map(|p| p.lag_ms.p95),
        per_second: Some(bootstrap::latency(2, 1)),
    },
    Metric {
        name: "projection lag p99",
        unit: "ms",
        better: Better::Lower,
        value: |r| r.projection.as_ref().map(|p| p.lag_ms.p99),
        per_second: Some(bootstrap::latency(2, 2)),
    },
    Metric {
        name: "missed events",
        unit: "count",
        better: Better::Lower,
        value: |r| r.events.as_ref().map(|e| e.missed as f64),
        per_second: None,
    },
    Metric {
        name: "duplicate events",
        unit: "count",
        better: Better::Lower,
        value: |r| r.events.as_ref().map(|e| e.duplicates as f64),
        per_second: None,
    },
];

fn some_count(count: u64, value: f64) -> Option<f64> {
    (count > 0).then_some(value)
}

fn show(value: Option<f64>, unit: &str) -> String {
    match value {
        None => "-".into(),
        Some(v) => match unit {
            "ms" => format!("{} ms", fmt_ms(v)),
            "ratio" => format!("{:.3} %", v * 100.0),
            "ops/s" => format!("{v:.1}/s"),
            _ => format!("{v:.0}"),
        },
    }
}

/// How strict the gate is, in fractions (0.10 is 10 %).
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    pub max_regression: f64,
    pub noise: f64,
}

/// One run folder, read back.
pub struct LoadedRun {
    pub dir: PathBuf,
    pub result: RunResult,
    /// Its per-second samples; `None` without interval logs.
    seconds: Option<RunSeconds>,
}

/// One side of a comparison: a run, or a set of runs of the same build.
pub struct Side {
    pub label: String,
    pub runs: Vec<LoadedRun>,
}

impl Side {
    /// A run folder, or a folder of run folders (`run --repeat`), or several folders as one set.
    pub fn load(dirs: &[PathBuf]) -> anyhow::Result<Side> {
        let mut runs = Vec::new();
        for dir in dirs {
            for run_dir in run_dirs(dir)? {
                let result = results::read_result(&run_dir)?;
                let seconds = seconds::load(&run_dir, &result)
                    .with_context(|| format!("{}: reading the interval logs", run_dir.display()))?;
                runs.push(LoadedRun { dir: run_dir, result, seconds });
            }
        }
        let mut label = dirs.iter().map(|d| label(d)).collect::<Vec<_>>().join("+");
        if runs.len() > 1 {
            let _ = write!(label, " ({} runs)", runs.len());
        }
        Ok(Side { label, runs })
    }

    /// The figure shown for this side: its run's, or the median of its runs'.
    fn value(&self, metric: &Metric) -> Option<f64> {
        let mut values: Vec<f64> = self.runs.iter().filter_map(|r| (metric.value)(&r.result)).collect();
        values.sort_by(f64::total_cmp);
        (!values.is_empty()).then(|| values[values.len() / 2])
    }

    /// The baseline's worst run on this figure: single values are judged against it.
    fn worst(&self, metric: &Metric) -> Option<f64> {
        let values = self.runs.iter().filter_map(|r| (metric.value)(&r.result));
        match metric.better {
            Better::Lower => values.reduce(f64::max),
            Better::Higher => values.reduce(f64::min),
        }
    }

    /// Every run's per-second samples, if every run has them.
    fn seconds(&self) -> Option<Vec<RunSeconds>> {
        self.runs.iter().map(|r| r.seconds.clone()).collect()
    }

    fn passed(&self) -> bool {
        self.runs.iter().all(|r| r.result.verdict == results::Verdict::Pass)
    }
}

/// `dir` itself when it holds result.json, else its sub-folders that do, by name.
fn run_dirs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    // `exists`, not `is_file`: a result.json that is not a regular file is named as such
    // when read (issue 32), not taken for a missing one.
    if dir.join("result.json").exists() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    let mut runs: Vec<PathBuf> =
        entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.join("result.json").exists()).collect();
    runs.sort();
    anyhow::ensure!(
        !runs.is_empty(),
        "{}: no result.json there, nor in its sub-folders (a run folder, or a `run --repeat` folder)",
        dir.display()
    );
    Ok(runs)
}

/// One figure of one run judged against the baseline.
#[derive(Debug, Clone)]
pub struct Judged {
    pub run: String,
    pub metric: String,
    pub baseline: String,
    pub observed: String,
    /// Relative change with its 95 % interval (bootstrap), or a point alone (single values).
    pub change: Option<Change>,
    pub bootstrapped: bool,
    /// The noise band used, a fraction.
    pub noise: f64,
    pub verdict: Verdict,
    /// Too few samples: the count each side needed (`bootstrap::min_samples`).
    pub needed: Option<u64>,
    /// Why a figure is suspect rather than regressed.
    pub reason: Option<String>,
}

/// One regression found.
#[derive(Debug, Clone, PartialEq)]
pub struct Regression {
    pub run: String,
    pub metric: String,
    pub baseline: String,
    pub observed: String,
    pub change_pct: f64,
}

/// `None` when `run` is not worse than `base` beyond `max_pct`; else the change in percent.
fn regressed(metric: &Metric, base: f64, run: f64, max_pct: f64) -> Option<f64> {
    let worse_by = match metric.better {
        Better::Lower => run - base,
        Better::Higher => base - run,
    };
    if worse_by <= 0.0 || (metric.unit == "ms" && worse_by < LATENCY_FLOOR_MS) {
        return None;
    }
    if base == 0.0 {
        return Some(f64::INFINITY);
    }
    let pct = worse_by / base.abs() * 100.0;
    (pct > max_pct).then_some(pct)
}

/// Whether the generator's lateness enters the figure: latencies from the intended start
/// and goodput do; projection lag (from the acknowledgement) and counts do not.
fn timed_by_generator(metric: &Metric) -> bool {
    (metric.unit == "ms" && !metric.name.starts_with("projection")) || metric.unit == "ops/s"
}

/// Why the run side cannot prove a regression of a figure its generator times: one of its
/// runs fell behind its schedule after the warmup.
fn generator_late(run: &Side) -> Option<String> {
    run.runs.iter().find_map(|r| {
        let late = r.result.generator.send_lag_over_bound.as_ref()?.describe()?;
        let name = if run.runs.len() > 1 { format!("{}: ", label(&r.dir)) } else { String::new() };
        Some(format!("the generator was late ({name}{late})"))
    })
}

/// A regression of a figure the late generator timed is only suspect (issue 30).
fn suspect_if_late(entry: &mut Judged, metric: &Metric, late: Option<&String>) {
    if let (Verdict::Regressed, true, Some(why)) = (entry.verdict, timed_by_generator(metric), late) {
        entry.verdict = Verdict::Suspect;
        entry.reason = Some(why.clone());
    }
}

/// Judges every figure of `run` against `base`.
fn judge_run(base: &Side, run: &Side, thresholds: Thresholds) -> Vec<Judged> {
    let late = generator_late(run);
    let sampled = base.seconds().zip(run.seconds());
    let changes = sampled.as_ref().map(|(b, r)| bootstrap::changes(b, r));
    let spread = sampled.as_ref().map(|(b, _)| bootstrap::spread(b));
    let mut judged = Vec::new();
    for metric in METRICS {
        let (Some(shown_base), Some(observed)) = (base.value(metric), run.value(metric)) else { continue };
        let mut entry = Judged {
            run: run.label.clone(),
            metric: metric.name.into(),
            baseline: show(Some(shown_base), metric.unit),
            observed: show(Some(observed), metric.unit),
            change: None,
            bootstrapped: false,
            noise: thresholds.noise,
            verdict: Verdict::WithinNoise,
            needed: None,
            reason: None,
        };
        let resampled = metric.per_second.zip(changes.as_ref()).and_then(|(i, c)| Some((i, c[i]?)));
        if let (Some((i, change)), Some(spread)) = (resampled, &spread) {
            entry.bootstrapped = true;
            // The figures the change is between: each side's seconds pooled (a set's runs
            // together), which for one run is its own figure over whole measured seconds.
            entry.baseline = show(Some(change.base), metric.unit);
            entry.observed = show(Some(change.new), metric.unit);
            entry.noise = thresholds.noise.max(spread[i]);
            entry.verdict =
                bootstrap::judge(&change, metric.better == Better::Lower, entry.noise, thresholds.max_regression);
            // Sub-millisecond latencies jitter by more than any sensible percentage.
            if metric.unit == "ms" && (change.new - change.base).abs() < LATENCY_FLOOR_MS {
                entry.verdict = Verdict::WithinNoise;
            }
            if !change.enough_samples(i) {
                entry.verdict = Verdict::TooFewSamples;
                entry.needed = Some(bootstrap::min_samples(i));
            }
            entry.change = Some(change);
        } else if let Some(worst) = base.worst(metric) {
            entry.baseline = show(Some(worst), metric.unit);
            let point =
                if worst == 0.0 { if observed > 0.0 { f64::INFINITY } else { 0.0 } } else { observed / worst - 1.0 };
            entry.change = Some(Change {
                point,
                low: point,
                high: point,
                base: worst,
                new: observed,
                base_samples: 0,
                new_samples: 0,
            });
            if regressed(metric, worst, observed, thresholds.max_regression * 100.0).is_some() {
                entry.verdict = Verdict::Regressed;
            }
        }
        suspect_if_late(&mut entry, metric, late.as_ref());
        judged.push(entry);
    }
    judged
}

pub struct Comparison {
    pub table: String,
    pub markdown: String,
    pub judged: Vec<Judged>,
    pub regressions: Vec<Regression>,
}

/// Compares `runs` with each other, and with `baseline` if given.
pub fn compare(
    runs: &[PathBuf],
    baseline: &[PathBuf],
    thresholds: Thresholds,
) -> anyhow::Result<(Comparison, Vec<Side>)> {
    let mut sides = Vec::new();
    if !baseline.is_empty() {
        let mut base = Side::load(baseline)?;
        base.label.push_str(" (baseline)");
        sides.push(base);
    }
    for dir in runs {
        sides.push(Side::load(std::slice::from_ref(dir))?);
    }
    let judged: Vec<Judged> = if baseline.is_empty() {
        Vec::new()
    } else {
        sides[1..].iter().flat_map(|run| judge_run(&sides[0], run, thresholds)).collect()
    };
    let regressions = judged
        .iter()
        .filter(|j| j.verdict == Verdict::Regressed)
        .map(|j| Regression {
            run: j.run.clone(),
            metric: j.metric.clone(),
            baseline: j.baseline.clone(),
            observed: j.observed.clone(),
            change_pct: j.change.map_or(f64::NAN, |c| c.point * 100.0),
        })
        .collect();
    let (table, markdown) =
        if baseline.is_empty() { side_by_side(&sides) } else { against_baseline(&sides, &judged, thresholds) };
    Ok((Comparison { table, markdown, judged, regressions }, sides))
}

fn label(dir: &Path) -> String {
    dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned())
}

fn verdict_tag(side: &Side) -> &'static str {
    if side.passed() { "pass" } else { "FAIL" }
}

/// Without a baseline: one column per side.
fn side_by_side(sides: &[Side]) -> (String, String) {
    let mut table = String::new();
    let mut md = String::from("### cqrs-bench comparison\n\n| metric |");
    let _ = write!(table, "{:<22}", "metric");
    for side in sides {
        let verdict = format!("{} [{}]", side.label, verdict_tag(side));
        let _ = write!(table, " {:>24}", truncate(&verdict, 24));
        let _ = write!(md, " {verdict} |");
    }
    table.push('\n');
    md.push_str("\n|---|");
    md.push_str(&"---:|".repeat(sides.len()));
    md.push('\n');
    for metric in METRICS {
        if sides.iter().all(|s| s.value(metric).is_none()) {
            continue;
        }
        let _ = write!(table, "{:<22}", metric.name);
        let _ = write!(md, "| {} |", metric.name);
        for side in sides {
            let cell = show(side.value(metric), metric.unit);
            let _ = write!(table, " {cell:>24}");
            let _ = write!(md, " {cell} |");
        }
        table.push('\n');
        md.push('\n');
    }
    (table, md)
}

fn show_change(j: &Judged) -> (String, String) {
    let pct = |x: f64| if x.is_finite() { format!("{:+.1} %", x * 100.0) } else { "from 0".into() };
    match j.change {
        None => ("-".into(), "-".into()),
        Some(c) if j.needed.is_some() => {
            (pct(c.point), format!("n {}/{} < {}", c.base_samples, c.new_samples, j.needed.unwrap_or_default()))
        }
        Some(c) if j.bootstrapped => (pct(c.point), format!("{} … {}", pct(c.low), pct(c.high))),
        Some(c) => (pct(c.point), "single value".into()),
    }
}

/// With a baseline: per run, each figure's change, interval and verdict.
fn against_baseline(sides: &[Side], judged: &[Judged], thresholds: Thresholds) -> (String, String) {
    let base = &sides[0];
    let mut table = String::new();
    let mut md = String::new();
    for run in &sides[1..] {
        let rows: Vec<&Judged> = judged.iter().filter(|j| j.run == run.label).collect();
        let headline = headline(&rows);
        let _ = writeln!(
            table,
            "{} [{}] vs {} [{}]: {headline}",
            run.label,
            verdict_tag(run),
            base.label,
            verdict_tag(base)
        );
        let _ = writeln!(
            table,
            "{:<22} {:>12} {:>12} {:>9} {:>19}  verdict",
            "metric", "baseline", "run", "change", "95 % interval"
        );
        let _ = writeln!(md, "### cqrs-bench: {} vs {}: {headline}\n", run.label, base.label);
        md.push_str(
            "| metric | baseline | this run | change | 95 % interval | verdict |\n|---|---:|---:|---:|---:|---|\n",
        );
        for j in &rows {
            let (change, interval) = show_change(j);
            let mark = match j.verdict {
                Verdict::Regressed => " ▲",
                Verdict::Suspect => " ?",
                Verdict::Improved => " ▼",
                _ => "",
            };
            let verdict = format!("{}{mark}", j.verdict.label());
            let _ = writeln!(
                table,
                "{:<22} {:>12} {:>12} {change:>9} {interval:>19}  {verdict}",
                j.metric, j.baseline, j.observed
            );
            let _ =
                writeln!(md, "| {} | {} | {} | {change} | {interval} | {verdict} |", j.metric, j.baseline, j.observed);
        }
        // Why a figure is only suspect, once per run (the reason is the run's).
        if let Some(why) = rows.iter().find_map(|j| j.reason.as_ref()) {
            let _ = writeln!(table, "suspect: {why}: it cannot prove a regression");
            let _ = writeln!(md, "\nSuspect: {why}: it cannot prove a regression.");
        }
        table.push('\n');
        md.push('\n');
    }
    let rule = format!(
        "Change: this run / baseline − 1, with a 95 % bootstrap interval over the per-second figures \
         (runs and seconds resampled). Regressed: the whole interval is worse than the noise band \
         (±{:.0} %, wider where the baseline runs differed more) and the change exceeds the allowed \
         {:+.0} %; latencies also by at least {LATENCY_FLOOR_MS} ms. \"too few samples\": a percentile \
         is judged only with {tail} samples beyond it on each side (p99: 1,000; \"n base/run < needed\"), \
         fewer say nothing about it. \"single value\": no per-second \
         figures; judged against the baseline's worst run. \"suspect\": would be regressed, but the run's \
         generator fell behind its schedule (`generator.send_lag_over_bound`), so its latencies and \
         goodput include the generator's own lateness; not a regression (exit 0). Baseline and run figures of resampled \
         metrics are over whole measured seconds, a set's runs pooled.",
        thresholds.noise * 100.0,
        thresholds.max_regression * 100.0,
        tail = bootstrap::TAIL_SAMPLES,
    );
    let _ = writeln!(md, "{rule}");
    for j in judged.iter().filter(|j| j.verdict == Verdict::Regressed) {
        let (change, interval) = show_change(j);
        let _ = writeln!(
            table,
            "REGRESSION {}: {} {} vs baseline {} ({change}, {interval})",
            j.run, j.metric, j.observed, j.baseline
        );
    }
    (table, md)
}

/// `2 regressed, 1 suspect`, or `no regression`.
fn headline(rows: &[&Judged]) -> String {
    let count = |verdict: Verdict| rows.iter().filter(|j| j.verdict == verdict).count();
    let (regressed, suspect) = (count(Verdict::Regressed), count(Verdict::Suspect));
    let mut parts = Vec::new();
    if regressed > 0 {
        parts.push(format!("{regressed} regressed"));
    }
    if suspect > 0 {
        parts.push(format!("{suspect} suspect"));
    }
    if parts.is_empty() { "no regression".to_owned() } else { parts.join(", ") }
}

/// `run --repeat`: each figure's median, range and spread ((max − min) / median) over a
/// set's runs, as a terminal table and markdown.
pub fn spread_summary(side: &Side) -> (String, String) {
    let mut table = format!("{:<22} {:>12} {:>12} {:>12} {:>8}\n", "metric", "median", "min", "max", "spread");
    let mut md = format!(
        "### cqrs-bench: {}\n\n| metric | median | min | max | spread |\n|---|---:|---:|---:|---:|\n",
        side.label
    );
    for metric in METRICS {
        let values: Vec<f64> = side.runs.iter().filter_map(|r| (metric.value)(&r.result)).collect();
        let (Some(median), Some(min), Some(max)) =
            (side.value(metric), values.iter().copied().reduce(f64::min), values.iter().copied().reduce(f64::max))
        else {
            continue;
        };
        let spread = if median > 0.0 { format!("{:.1} %", (max - min) / median * 100.0) } else { "-".into() };
        let [median, min, max] = [median, min, max].map(|v| show(Some(v), metric.unit));
        let _ = writeln!(table, "{:<22} {median:>12} {min:>12} {max:>12} {spread:>8}", metric.name);
        let _ = writeln!(md, "| {} | {median} | {min} | {max} | {spread} |", metric.name);
    }
    (table, md)
}

/// One overlaid percentile plot, unless no run has the figure.
fn spectrum(name: &str, title: &str, y_label: &str, series: Vec<(String, Vec<(f64, f64)>)>) -> Option<SpectrumPlot> {
    (!series.is_empty()).then(|| SpectrumPlot {
        name: name.into(),
        title: title.into(),
        y_label: y_label.into(),
        series,
        thresholds: Vec::new(),
    })
}

/// Draws `plot` (SVG + PNG into `out`) and keeps its interactive chart for compare.html.
fn draw<P: plots::Plot>(out: &Path, charts: &mut Vec<Chart>, plot: &P) -> anyhow::Result<()>
where
    for<'p> &'p P: Into<Chart>,
{
    let chart: Chart = plot.into();
    plots::render(plot, out).with_context(|| format!("plot {}", chart.title))?;
    charts.push(chart);
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_owned() } else { s.chars().take(n - 1).chain(['…']).collect() }
}

/// Writes compare.md, the overlaid plots and compare.html (issue 35) into `out`.
pub fn write(out: &Path, comparison: &Comparison, sides: &[Side]) -> anyhow::Result<()> {
    results::write_atomic(&out.join("compare.md"), comparison.markdown.as_bytes())?;
    // Every run of a set gets its own line.
    let runs: Vec<(String, &RunResult)> = sides
        .iter()
        .flat_map(|side| {
            side.runs.iter().map(move |run| match side.runs.len() {
                1 => (side.label.clone(), &run.result),
                _ => (format!("{}/{}", side.label, label(&run.dir)), &run.result),
            })
        })
        .collect();
    let mut charts = Vec::new();
    for (kind, title) in [("command", "Command latency by percentile"), ("query", "Query latency by percentile")] {
        let series = runs
            .iter()
            .filter_map(|(name, r)| {
                let mut merged = histogram::new_latency_histogram();
                for op in r.operations.values().filter(|o| o.kind == kind) {
                    merged.add(histogram::decode(&op.histogram).ok()?).ok()?;
                }
                (!merged.is_empty()).then(|| (name.clone(), SpectrumPlot::points(&merged)))
            })
            .collect();
        if let Some(plot) = spectrum(&format!("{kind}-latency-spectrum"), title, "latency (ms)", series) {
            draw(out, &mut charts, &plot)?;
        }
    }
    // How stale each run's read model was: the figure variants are compared on.
    let series = runs
        .iter()
        .filter_map(|(name, r)| {
            let lag = histogram::decode(&r.projection.as_ref()?.histogram).ok()?;
            (!lag.is_empty()).then(|| (name.clone(), SpectrumPlot::points(&lag)))
        })
        .collect();
    if let Some(plot) =
        spectrum("projection-lag-spectrum", "Projection lag by percentile", "projection lag (ms)", series)
    {
        draw(out, &mut charts, &plot)?;
    }
    let duration_s = runs.iter().map(|(_, r)| r.timeline.len() as u64 * r.timeline_step()).max().unwrap_or(1) as f64;
    let over_time = |name: &str,
                     title: &str,
                     y_label: &str,
                     log_y: bool,
                     value: fn(&RunResult, &TimelineRow) -> Option<f64>| {
        let series: Vec<plots::Series> = runs
            .iter()
            .enumerate()
            .map(|(i, (run, r))| plots::Series {
                name: run.clone(),
                points: {
                    let step = r.timeline_step() as f64;
                    r.timeline.iter().filter_map(|row| Some((row.t_s as f64 + step / 2.0, value(r, row)?))).collect()
                },
                secondary: false,
                colour: i,
            })
            .filter(|s| !s.points.is_empty())
            .collect();
        (!series.is_empty()).then(|| plots::TimeSeriesPlot {
            name: name.into(),
            title: title.into(),
            y_label: y_label.into(),
            series,
            faint: Vec::new(),
            thresholds: Vec::new(),
            markers: Vec::new(),
            duration_s,
            log_y,
        })
    };
    let throughput =
        over_time("throughput", "Achieved throughput over time", "operations per second", false, |r, row| {
            Some(row.achieved as f64 / r.timeline_step() as f64)
        });
    if let Some(plot) = throughput {
        draw(out, &mut charts, &plot)?;
    }
    let lag = over_time("projection-lag", "Projection lag over time (p99 per row)", "lag (ms)", true, |_, row| {
        row.projection_lag_p99_ms
    });
    if let Some(plot) = lag {
        draw(out, &mut charts, &plot)?;
    }
    if let Some(plot) = staleness(&runs) {
        draw(out, &mut charts, &plot)?;
    }
    results::write_atomic(&out.join("compare.html"), page::render(comparison, sides, &charts).as_bytes())?;
    Ok(())
}

/// Read-your-writes of each run with `[staleness]`: P(fresh) per delay after the
/// acknowledgement, on the delays any run read at.
fn staleness(runs: &[(String, &RunResult)]) -> Option<plots::XyPlot> {
    let mut delays: Vec<f64> = runs
        .iter()
        .filter_map(|(_, r)| r.staleness.as_ref())
        .flat_map(|s| s.points.iter().map(|p| p.delay_ms))
        .collect();
    delays.sort_by(f64::total_cmp);
    delays.dedup();
    let series: Vec<plots::XySeries> = runs
        .iter()
        .enumerate()
        .filter_map(|(i, (name, r))| {
            let st = r.staleness.as_ref().filter(|s| s.reads > 0)?;
            let points = st
                .points
                .iter()
                .filter_map(|p| {
                    let x = delays.iter().position(|d| *d == p.delay_ms)? as f64;
                    Some((x, p.p_fresh? * 100.0, true))
                })
                .collect();
            Some(plots::XySeries { name: name.clone(), points, line: true, markers: true, secondary: false, colour: i })
        })
        .collect();
    (!series.is_empty()).then(|| plots::XyPlot {
        name: "read-your-writes".into(),
        title: "Read-your-writes: P(a read t ms after the ack is fresh)".into(),
        x_label: "delay after the acknowledgement (ms)".into(),
        y_label: "fresh reads (%)".into(),
        series,
        thresholds: Vec::new(),
        markers: Vec::new(),
        log_y: false,
        legend: plotters::prelude::SeriesLabelPosition::LowerRight,
        y_max: Some(100.0),
        x_categories: delays.iter().map(|d| format!("{} ms", plots::tick(*d))).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::results::model::SendLagOverBound;

    fn side(name: &str, p99_ms: f64, late: Option<SendLagOverBound>) -> Side {
        let mut result = RunResult::default();
        result.commands.count = 1000;
        result.commands.latency_ms.p99 = p99_ms;
        result.generator.send_lag_over_bound = late;
        Side { label: name.into(), runs: vec![LoadedRun { dir: PathBuf::from(name), result, seconds: None }] }
    }

    /// Issue 30: a run whose generator fell behind cannot prove a latency regression: it is
    /// suspect (not in the regressions, so exit 0), with the reason; a figure the generator
    /// does not time still regresses.
    #[test]
    fn a_late_generator_makes_a_regression_suspect() {
        let thresholds = Thresholds { max_regression: 0.10, noise: 0.05 };
        let p99 = |judged: &[Judged]| judged.iter().find(|j| j.metric == "command latency p99").unwrap().clone();
        let (base, kept_up) = (side("base", 10.0, None), side("new", 60.0, Some(SendLagOverBound::default())));
        assert_eq!(p99(&judge_run(&base, &kept_up, thresholds)).verdict, Verdict::Regressed);
        let over = SendLagOverBound {
            bound_ms: 10.0,
            bound_from: "default".into(),
            seconds: 3,
            first_s: Some(4),
            last_s: Some(8),
        };
        let (mut base, mut late) = (base, side("new", 60.0, Some(over)));
        let judged = judge_run(&base, &late, thresholds);
        let j = p99(&judged);
        assert_eq!(j.verdict, Verdict::Suspect);
        assert_eq!(
            j.reason.as_deref(),
            Some("the generator was late (send lag p99 over 10 ms in 3 s (4 s … 8 s; bound: default))")
        );
        assert_eq!(headline(&judged.iter().collect::<Vec<_>>()), "1 suspect");
        let sides = [side("base", 10.0, None), side("new", 60.0, None)];
        let (table, md) = against_baseline(&sides, &judged, thresholds);
        assert!(table.contains("suspect: the generator was late (send lag p99 over 10 ms"), "{table}");
        assert!(md.contains("| suspect ? |"), "{md}");
        // Missed events are not timed by the generator: still a regression.
        base.runs[0].result.events = Some(Default::default());
        late.runs[0].result.events = Some(crate::probe::reconcile::EventCounts { missed: 2, ..Default::default() });
        let judged = judge_run(&base, &late, thresholds);
        let missed = judged.iter().find(|j| j.metric == "missed events").unwrap();
        assert_eq!(missed.verdict, Verdict::Regressed);
    }

    #[test]
    fn regression_rules() {
        let latency = &METRICS[2];
        let throughput = &METRICS[6];
        let missed = &METRICS[12];
        assert_eq!(regressed(latency, 10.0, 10.5, 10.0), None); // within 10 % and the floor
        assert!(regressed(latency, 10.0, 60.0, 10.0).is_some());
        assert_eq!(regressed(latency, 0.2, 0.5, 10.0), None); // +150 % but under 1 ms: noise
        assert!(regressed(throughput, 1000.0, 800.0, 10.0).is_some());
        assert_eq!(regressed(throughput, 1000.0, 1200.0, 10.0), None);
        assert_eq!(regressed(missed, 0.0, 1.0, 10.0), Some(f64::INFINITY));
        assert_eq!(regressed(missed, 0.0, 0.0, 10.0), None);
    }
}
