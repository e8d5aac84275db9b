//! Files are written atomically: a temporary name in the same folder, then a rename,
//! so a crash or a full disk never leaves half a result. (Reading back: `input.rs`.)

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;

use super::model::RunResult;

pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let file_name = path.file_name().context("a file path")?.to_string_lossy();
    let tmp = dir.join(format!(".{file_name}.tmp{}", std::process::id()));
    let written = std::fs::File::create(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))
        .and_then(|mut file| {
            file.write_all(bytes).and_then(|()| file.sync_all()).with_context(|| format!("writing {}", tmp.display()))
        })
        .and_then(|()| {
            std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
        });
    if written.is_err() {
        // A full disk must not leave `.NAME.tmpPID` behind (issue 18).
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

pub fn write_json(path: &Path, result: &RunResult) -> anyhow::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(result).context("encoding result.json")?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}
