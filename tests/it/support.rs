//! Helpers shared by the integration tests.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

/// The crate's root folder.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A test scenario under tests/it/scenarios/.
pub fn scenario(name: &str) -> PathBuf {
    root().join("tests/it/scenarios").join(name)
}

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_cqrs-bench");

/// `cqrs-bench` with the working directory at the crate root.
pub fn bench() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(BIN);
    cmd.current_dir(root());
    cmd
}

/// Reads a run folder's result.json as JSON.
pub fn result_json(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("result.json")).expect("result.json written");
    serde_json::from_str(&text).expect("result.json is JSON")
}

/// A `cqrs-bench target serve` process on a free loopback port; killed on drop.
pub struct Served {
    child: Child,
    pub url: String,
}

impl Served {
    /// The `memory` target with extra flags.
    pub fn start(extra: &[&str]) -> Served {
        Served::start_variant("memory", extra)
    }

    pub fn start_variant(variant: &str, extra: &[&str]) -> Served {
        let mut child = std::process::Command::new(BIN)
            .args(["target", "serve", "--variant", variant, "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("target serve starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("reads the listening line");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_owned();
        Served { child, url }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
