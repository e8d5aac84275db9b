//! Everything a person or a CI system reads after a run: the terminal summary, live
//! progress and the files of the results folder. Reporters read the result model only;
//! the operations' .hlog files are written during the run ([`hlog::OperationLogs`]).

pub mod compare;
pub mod figures;
pub mod hlog;
pub mod html;
pub mod interactive;
pub mod junit;
pub mod live_view;
pub mod plots;
pub mod progress;
pub mod summary;

use std::path::Path;

use anyhow::Context as _;

use crate::results::{self, RunResult};

/// Files and folders of a results folder, all written by [`write_all`], or by
/// `saturate` and `capacity` (with `projectors-N/` folders).
const RUN_FILES: [&str; 7] =
    ["result.json", "report.html", "junit.xml", "plots", "saturate.json", "capacity.json", "steps"];

/// Gets `out_dir` ready before the first request (issue 18: a bad `--out` was found only
/// after the whole load): creates it, checks that a file can be written there, and
/// empties a previous run's folder of the files this tool writes (result.json, *.hlog,
/// plots/, report.html, junit.xml), so the new run's files never mix with the old ones.
/// A folder holding anything else is refused rather than mixed into (exit 2). Errors
/// name the folder; a full disk is exit 3, the rest exit 2.
pub fn prepare_dir(out_dir: &Path) -> anyhow::Result<()> {
    let fail = |e: std::io::Error, what: String| -> anyhow::Error {
        let error = anyhow::Error::new(e).context(what);
        if error.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::StorageFull) {
            crate::exit::RunFailure(error).into()
        } else {
            crate::exit::Usage(error).into()
        }
    };
    let shown = out_dir.display();
    if out_dir.exists() && !out_dir.is_dir() {
        return Err(crate::exit::Usage(anyhow::anyhow!("--out {shown}: exists and is not a folder")).into());
    }
    std::fs::create_dir_all(out_dir).map_err(|e| fail(e, format!("--out {shown}: cannot create the folder")))?;
    let entries = std::fs::read_dir(out_dir).map_err(|e| fail(e, format!("--out {shown}: cannot read the folder")))?;
    let mut ours = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| fail(e, format!("--out {shown}: cannot read the folder")))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_ours = RUN_FILES.contains(&name.as_str())
            || name.ends_with(".hlog")
            || name.strip_prefix("projectors-").is_some_and(|n| n.parse::<usize>().is_ok())
            || (name.starts_with('.') && name.contains(".tmp")); // left by a crash mid-write
        if !is_ours {
            return Err(crate::exit::Usage(anyhow::anyhow!(
                "--out {shown}: the folder holds `{name}`, which is not from a cqrs-bench run; \
                 choose an empty or new folder (a previous run's folder is emptied and reused)"
            ))
            .into());
        }
        ours.push(entry.path());
    }
    for path in ours {
        let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        removed.map_err(|e| fail(e, format!("--out {shown}: cannot remove the previous run's {}", path.display())))?;
    }
    let probe = out_dir.join(format!(".write-check.tmp{}", std::process::id()));
    let written = std::fs::write(&probe, b"cqrs-bench").and_then(|()| std::fs::remove_file(&probe));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&probe);
        return Err(fail(e, format!("--out {shown}: cannot write there")));
    }
    Ok(())
}

/// The output files that could not be written, each as `file: why` (issue 32: a full
/// disk ended a run in exit 0 without report.html and junit.xml, and a CI gate that wrote
/// no junit.xml must not pass). Not to be dropped: [`Unwritten::into_result`] makes it
/// the exit-3 error, once everything else is done.
#[must_use = "an output that could not be written must fail the command"]
#[derive(Debug, Default)]
pub struct Unwritten(pub Vec<String>);

impl Unwritten {
    /// `Ok` when everything was written; else an [`crate::exit::OutputFailure`] (exit 3)
    /// naming every file and why, and saying whether result.json was kept.
    pub fn into_result(self) -> anyhow::Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        let kept = if self.0.iter().any(|f| f.starts_with("result.json")) {
            "result.json was not written either"
        } else {
            "what was measured is in result.json"
        };
        Err(crate::exit::OutputFailure(anyhow::anyhow!(
            "{} output file(s) could not be written ({kept}): {}",
            self.0.len(),
            self.0.join("; ")
        ))
        .into())
    }
}

/// Writes the files of the results folder left to write at the end: result.json first,
/// then plots, report.html and junit.xml, each atomically and on its own, so one that
/// fails loses nothing else; every one is tried. Returns those that could not be written.
/// (The interval logs, the operations' and projection-lag.hlog, were written during the
/// run; `merge` writes its own.)
pub fn write_all(result: &RunResult, out_dir: &Path) -> Unwritten {
    let mut unwritten = Unwritten::default();
    if let Err(e) = results::write_json(&out_dir.join("result.json"), result) {
        unwritten.0.push(format!("result.json: {e:#}"));
    }
    unwritten.0.extend(write_views(result, out_dir).0);
    unwritten
}

/// Plots, report.html and junit.xml, from the result alone.
fn write_views(result: &RunResult, out_dir: &Path) -> Unwritten {
    let (figures, mut unwritten) = figures::render_all(result, &out_dir.join("plots"));
    if let Err(e) = results::write_atomic(&out_dir.join("report.html"), html::render(result, &figures).as_bytes()) {
        unwritten.push(format!("report.html: {e:#}"));
    }
    if let Err(e) = results::write_atomic(&out_dir.join("junit.xml"), junit::render(result).as_bytes()) {
        unwritten.push(format!("junit.xml: {e:#}"));
    }
    Unwritten(unwritten)
}

/// `cqrs-bench report RUN_DIR`: redraws plots, report.html and junit.xml from result.json.
/// A file that cannot be written is an [`crate::exit::OutputFailure`] (exit 3), after
/// the others were written.
pub fn rebuild(run_dir: &Path) -> anyhow::Result<()> {
    let result = results::read_result(run_dir).with_context(|| format!("{} is not a run folder", run_dir.display()))?;
    write_views(&result, run_dir).into_result()
}
