//! Everything a person or a CI system reads after a run: the terminal summary, live
//! progress and the files of the results folder. Reporters read the result model only
//! (and the per-second histograms for the .hlog files).

pub mod compare;
pub mod figures;
pub mod hlog;
pub mod html;
pub mod junit;
pub mod plots;
pub mod progress;
pub mod summary;

use std::path::Path;

use anyhow::Context as _;

use crate::generator::Interval;
use crate::results::{self, RunResult};

/// Writes every file of the results folder: result.json first (a failure there is an
/// error), then .hlog files, plots, report.html and junit.xml, each atomically and
/// independently so one failing reporter loses nothing else. Returns warnings.
pub fn write_all(
    result: &RunResult,
    op_names: &[String],
    intervals: &[Interval],
    out_dir: &Path,
) -> anyhow::Result<Vec<String>> {
    results::write_json(&out_dir.join("result.json"), result)?;
    let mut warnings = Vec::new();
    let started = humantime::parse_rfc3339_weak(&result.started_at).unwrap_or(std::time::SystemTime::UNIX_EPOCH);
    if let Err(e) = hlog::write(out_dir, op_names, intervals, started) {
        warnings.push(format!("interval logs: {e:#}"));
    }
    warnings.extend(write_views(result, out_dir));
    Ok(warnings)
}

/// Plots, report.html and junit.xml, from the result alone.
fn write_views(result: &RunResult, out_dir: &Path) -> Vec<String> {
    let (figures, mut warnings) = figures::render_all(result, &out_dir.join("plots"));
    if let Err(e) = results::write_atomic(&out_dir.join("report.html"), html::render(result, &figures).as_bytes()) {
        warnings.push(format!("report.html: {e:#}"));
    }
    if let Err(e) = results::write_atomic(&out_dir.join("junit.xml"), junit::render(result).as_bytes()) {
        warnings.push(format!("junit.xml: {e:#}"));
    }
    warnings
}

/// `cqrs-bench report RUN_DIR`: redraws plots, report.html and junit.xml from result.json.
pub fn rebuild(run_dir: &Path) -> anyhow::Result<Vec<String>> {
    let result = results::read_result(run_dir).with_context(|| format!("{} is not a run folder", run_dir.display()))?;
    Ok(write_views(&result, run_dir))
}
