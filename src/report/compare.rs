//! `cqrs-bench compare`: runs side by side (terminal table, compare.md for a pull
//! request, overlaid plots) and, with a baseline, the regression gate.
//!
//! A metric regresses when it is worse than the baseline's by more than the allowed
//! percentage. Latencies must also be worse by at least `LATENCY_FLOOR_MS`: sub-millisecond
//! figures jitter by more than 10 % between identical runs. For counts whose baseline is
//! 0 (missed, duplicates), any increase is a regression.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::plots::{self, SpectrumPlot};
use super::summary::fmt_ms;
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
}

const METRICS: &[Metric] = &[
    Metric {
        name: "command latency p50",
        unit: "ms",
        better: Better::Lower,
        value: |r| some_count(r.commands.count, r.commands.latency_ms.p50),
    },
    Metric {
        name: "command latency p95",
        unit: "ms",
        better: Better::Lower,
        value: |r| some_count(r.commands.count, r.commands.latency_ms.p95),
    },
    Metric {
        name: "command latency p99",
        unit: "ms",
        better: Better::Lower,
        value: |r| some_count(r.commands.count, r.commands.latency_ms.p99),
    },
    Metric {
        name: "query latency p50",
        unit: "ms",
        better: Better::Lower,
        value: |r| some_count(r.queries.count, r.queries.latency_ms.p50),
    },
    Metric {
        name: "query latency p95",
        unit: "ms",
        better: Better::Lower,
        value: |r| some_count(r.queries.count, r.queries.latency_ms.p95),
    },
    Metric {
        name: "query latency p99",
        unit: "ms",
        better: Better::Lower,
        value: |r| some_count(r.queries.count, r.queries.latency_ms.p99),
    },
    Metric {
        name: "achieved throughput",
        unit: "ops/s",
        better: Better::Higher,
        value: |r| Some(r.throughput.achieved_per_s),
    },
    Metric {
        name: "command error rate",
        unit: "ratio",
        better: Better::Lower,
        value: |r| some_count(r.commands.count, r.commands.error_rate),
    },
    Metric {
        name: "query error rate",
        unit: "ratio",
        better: Better::Lower,
        value: |r| some_count(r.queries.count, r.queries.error_rate),
    },
    Metric {
        name: "projection lag p99",
        unit: "ms",
        better: Better::Lower,
        value: |r| r.projection.as_ref().map(|p| p.lag_ms.p99),
    },
    Metric {
        name: "missed events",
        unit: "count",
        better: Better::Lower,
        value: |r| r.events.as_ref().map(|e| e.missed as f64),
    },
    Metric {
        name: "duplicate events",
        unit: "count",
        better: Better::Lower,
        value: |r| r.events.as_ref().map(|e| e.duplicates as f64),
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

pub struct Comparison {
    pub table: String,
    pub markdown: String,
    pub regressions: Vec<Regression>,
}

/// Compares `runs` (labelled by folder name) with `baseline` if given.
pub fn compare(
    runs: &[PathBuf],
    baseline: Option<&Path>,
    max_regression_pct: f64,
) -> anyhow::Result<(Comparison, Vec<(String, RunResult)>)> {
    let mut loaded = Vec::new();
    if let Some(b) = baseline {
        loaded.push((format!("{} (baseline)", label(b)), results::read_result(b)?));
    }
    for dir in runs {
        loaded.push((label(dir), results::read_result(dir)?));
    }
    let mut regressions = Vec::new();
    if baseline.is_some() {
        let base = &loaded[0].1;
        for (name, run) in &loaded[1..] {
            for metric in METRICS {
                if let (Some(b), Some(r)) = ((metric.value)(base), (metric.value)(run))
                    && let Some(change_pct) = regressed(metric, b, r, max_regression_pct)
                {
                    regressions.push(Regression {
                        run: name.clone(),
                        metric: metric.name.into(),
                        baseline: show(Some(b), metric.unit),
                        observed: show(Some(r), metric.unit),
                        change_pct,
                    });
                }
            }
        }
    }
    let (table, markdown) = tables(&loaded, &regressions);
    Ok((Comparison { table, markdown, regressions }, loaded))
}

fn label(dir: &Path) -> String {
    dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned())
}

fn tables(runs: &[(String, RunResult)], regressions: &[Regression]) -> (String, String) {
    let mut table = String::new();
    let mut md = String::from("### cqrs-bench comparison\n\n| metric |");
    let _ = write!(table, "{:<22}", "metric");
    for (name, result) in runs {
        let verdict = format!("{name} [{}]", if result.verdict == results::Verdict::Pass { "pass" } else { "FAIL" });
        let _ = write!(table, " {:>24}", truncate(&verdict, 24));
        let _ = write!(md, " {verdict} |");
    }
    table.push('\n');
    md.push_str("\n|---|");
    md.push_str(&"---:|".repeat(runs.len()));
    md.push('\n');
    for metric in METRICS {
        if runs.iter().all(|(_, r)| (metric.value)(r).is_none()) {
            continue;
        }
        let _ = write!(table, "{:<22}", metric.name);
        let _ = write!(md, "| {} |", metric.name);
        for (name, result) in runs {
            let mut cell = show((metric.value)(result), metric.unit);
            if regressions.iter().any(|r| r.run == *name && r.metric == metric.name) {
                cell.push_str(" ▲");
            }
            let _ = write!(table, " {cell:>24}");
            let _ = write!(md, " {cell} |");
        }
        table.push('\n');
        md.push('\n');
    }
    if !regressions.is_empty() {
        table.push('\n');
        md.push_str("\n**Regressions** (▲):\n\n");
        for r in regressions {
            let change = if r.change_pct.is_finite() { format!("{:+.1} %", r.change_pct) } else { "from 0".into() };
            let _ = writeln!(
                table,
                "REGRESSION {}: {} {} vs baseline {} ({change})",
                r.run, r.metric, r.observed, r.baseline
            );
            let _ = writeln!(md, "- {}: {} {} vs baseline {} ({change})", r.run, r.metric, r.observed, r.baseline);
        }
    }
    (table, md)
}

/// One overlaid percentile plot, unless no run has the figure.
fn spectrum(
    out: &Path,
    name: &str,
    title: &str,
    y_label: &str,
    series: Vec<(String, Vec<(f64, f64)>)>,
) -> anyhow::Result<()> {
    if series.is_empty() {
        return Ok(());
    }
    let plot = SpectrumPlot {
        name: name.into(),
        title: title.into(),
        y_label: y_label.into(),
        series,
        thresholds: Vec::new(),
    };
    plots::render(&plot, out).with_context(|| format!("plot {title}"))?;
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_owned() } else { s.chars().take(n - 1).chain(['…']).collect() }
}

/// Writes compare.md and the overlaid plots into `out`.
pub fn write(out: &Path, comparison: &Comparison, runs: &[(String, RunResult)]) -> anyhow::Result<()> {
    results::write_atomic(&out.join("compare.md"), comparison.markdown.as_bytes())?;
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
        spectrum(out, &format!("{kind}-latency-spectrum"), title, "latency (ms)", series)?;
    }
    // How stale each run's read model was: the figure variants are compared on.
    let series = runs
        .iter()
        .filter_map(|(name, r)| {
            let lag = histogram::decode(&r.projection.as_ref()?.histogram).ok()?;
            (!lag.is_empty()).then(|| (name.clone(), SpectrumPlot::points(&lag)))
        })
        .collect();
    spectrum(out, "projection-lag-spectrum", "Projection lag by percentile", "projection lag (ms)", series)?;
    let series = runs
        .iter()
        .enumerate()
        .map(|(i, (name, r))| plots::Series {
            name: name.clone(),
            points: r.timeline.iter().map(|row| (row.t_s as f64 + 0.5, row.achieved as f64)).collect(),
            secondary: false,
            colour: i,
        })
        .collect();
    let duration_s = runs.iter().map(|(_, r)| r.timeline.len()).max().unwrap_or(1) as f64;
    let plot = plots::TimeSeriesPlot {
        name: "throughput".into(),
        title: "Achieved throughput over time".into(),
        y_label: "operations per second".into(),
        series,
        thresholds: Vec::new(),
        markers: Vec::new(),
        duration_s,
        log_y: false,
    };
    plots::render(&plot, out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_rules() {
        let latency = &METRICS[2];
        let throughput = &METRICS[6];
        let missed = &METRICS[10];
        assert_eq!(regressed(latency, 10.0, 10.5, 10.0), None); // within 10 % and the floor
        assert!(regressed(latency, 10.0, 60.0, 10.0).is_some());
        assert_eq!(regressed(latency, 0.2, 0.5, 10.0), None); // +150 % but under 1 ms: noise
        assert!(regressed(throughput, 1000.0, 800.0, 10.0).is_some());
        assert_eq!(regressed(throughput, 1000.0, 1200.0, 10.0), None);
        assert_eq!(regressed(missed, 0.0, 1.0, 10.0), Some(f64::INFINITY));
        assert_eq!(regressed(missed, 0.0, 0.0, 10.0), None);
    }
}
