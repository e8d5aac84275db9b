//! Reading a results folder back (`report`, `compare`, `merge`): only regular files, of a
//! bounded size, and every encoded histogram checked before anything uses it (issue 32:
//! a FIFO in place of result.json hung `merge` and `report`; a forged histogram made them
//! allocate 4 GiB). Errors name the file, and the field of a bad histogram.

use std::fs::File;
use std::io::Read as _;
use std::path::Path;

use anyhow::Context as _;

use super::histogram;
use super::model::RunResult;

/// The largest result.json read: 256 MiB (a run's is a few MB; its timeline is capped at
/// 3,600 rows).
pub const MAX_RESULT_BYTES: u64 = 256 * 1024 * 1024;

/// Opens `path` for reading if it is a regular file (a symlink to one is fine). A FIFO,
/// socket or device is refused before it is opened: opening a FIFO waits for a writer,
/// reading a device may never end.
pub fn open_regular(path: &Path) -> anyhow::Result<File> {
    let not_regular = |kind: &str| {
        anyhow::anyhow!("{}: is {kind}, not a regular file: cqrs-bench reads only regular files", path.display())
    };
    let metadata = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if !metadata.is_file() {
        return Err(not_regular(kind_of(&metadata.file_type())));
    }
    let file = File::open(path).with_context(|| format!("reading {}", path.display()))?;
    // Swapped between the two looks: still refused.
    let opened = file.metadata().with_context(|| format!("reading {}", path.display()))?;
    if !opened.is_file() {
        return Err(not_regular(kind_of(&opened.file_type())));
    }
    Ok(file)
}

fn kind_of(file_type: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if file_type.is_dir() {
        "a folder"
    } else if file_type.is_fifo() {
        "a FIFO (named pipe)"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_char_device() || file_type.is_block_device() {
        "a device"
    } else {
        "not a file"
    }
}

/// The text of the regular file `path`, at most `max_bytes` long.
pub fn read_regular(path: &Path, max_bytes: u64) -> anyhow::Result<String> {
    let file = open_regular(path)?;
    let mut text = String::new();
    file.take(max_bytes + 1).read_to_string(&mut text).with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(
        text.len() as u64 <= max_bytes,
        "{}: longer than {max_bytes} bytes: not a file cqrs-bench wrote",
        path.display()
    );
    Ok(text)
}

/// Reads a run folder's result.json, its histograms checked.
pub fn read_result(run_dir: &Path) -> anyhow::Result<RunResult> {
    let path = run_dir.join("result.json");
    let text = read_regular(&path, MAX_RESULT_BYTES)?;
    let result: RunResult =
        serde_json::from_str(&text).with_context(|| format!("{}: not a cqrs-bench result", path.display()))?;
    check_histograms(&result).with_context(|| path.display().to_string())?;
    Ok(result)
}

/// Decodes every encoded histogram of `result` once, so none that is forged or cut
/// reaches a reader; the error names the field.
fn check_histograms(result: &RunResult) -> anyhow::Result<()> {
    let mut fields: Vec<(String, &str)> = Vec::new();
    for (window, operations) in [("operations", &result.operations), ("warmup.operations", &result.warmup.operations)] {
        for (name, stats) in operations {
            fields.push((format!("{window}.{name}.histogram"), &stats.histogram));
            fields.push((format!("{window}.{name}.service_time_histogram"), &stats.service_time_histogram));
        }
    }
    if let Some(projection) = &result.projection {
        fields.push(("projection.histogram".into(), &projection.histogram));
    }
    if let Some(bus) = &result.bus {
        fields.push(("bus.e2e_histogram".into(), &bus.e2e_histogram));
    }
    for (field, text) in fields {
        if !text.is_empty() {
            histogram::decode(text).with_context(|| format!("`{field}`"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 32: a FIFO in place of result.json is refused at once, not waited on.
    #[test]
    fn a_fifo_is_refused_without_opening_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("result.json");
        let made = std::process::Command::new("mkfifo").arg(&path).status().unwrap();
        assert!(made.success());
        let error = format!("{:#}", read_result(dir.path()).unwrap_err());
        assert!(error.contains("result.json: is a FIFO (named pipe), not a regular file"), "{error}");
        let error = format!("{:#}", open_regular(dir.path()).unwrap_err());
        assert!(error.contains("is a folder"), "{error}");
    }

    /// A forged histogram in result.json is named by its field.
    #[test]
    fn a_forged_histogram_is_named_by_its_field() {
        let dir = tempfile::tempdir().unwrap();
        let mut result = RunResult::default();
        let stats = super::super::model::OperationStats {
            kind: "query".into(),
            histogram: histogram::encode(&histogram::new_latency_histogram()),
            // A V2 header claiming a 4 GiB payload (cookie, length, offset, digits, range, ratio).
            service_time_histogram: "HISTE/////8AAAAAAAAAAwAAAAAAAAABAAAAANaTpAA/8AAAAAAAAA==".into(),
            ..Default::default()
        };
        result.operations.insert("get".into(), stats);
        super::super::write_json(&dir.path().join("result.json"), &result).unwrap();
        let error = format!("{:#}", read_result(dir.path()).unwrap_err());
        assert!(
            error.contains("result.json: `operations.get.service_time_histogram`: the histogram claims a payload of 4294967295 bytes but holds 0"),
            "{error}"
        );
    }
}
