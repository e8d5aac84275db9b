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

/// `cqrs-bench run SCENARIO --quiet --out OUT`, to assert on.
pub fn run_quiet(scenario: &Path, out: &Path) -> assert_cmd::Command {
    let mut cmd = bench();
    cmd.arg("run").arg(scenario).args(["--quiet", "--out"]).arg(out);
    cmd
}

/// `cqrs-bench run SCENARIO --target URL --out OUT` with `flags` (`--quiet`…), to assert on.
pub fn run_against(url: &str, scenario: &Path, out: &Path, flags: &[&str]) -> assert_cmd::assert::Assert {
    bench().args(["run", "--target", url, "--out"]).arg(out).args(flags).arg(scenario).assert()
}

/// The same run as a child process (stdout dropped, stderr piped), for tests that signal it.
pub fn spawn_run(scenario: &Path, out: &Path) -> Child {
    std::process::Command::new(BIN)
        .current_dir(root())
        .arg("run")
        .arg(scenario)
        .args(["--quiet", "--out"])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cqrs-bench starts")
}

/// Reads a run folder's result.json as JSON, checked against `cqrs-bench schema result`
/// (issue 34: every run of the suite, whatever its sections, fits the schema).
pub fn result_json(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("result.json")).expect("result.json written");
    let result = serde_json::from_str(&text).expect("result.json is JSON");
    crate::schema::assert_valid_result(&result, dir);
    result
}

/// GETs `url` and parses the body as JSON.
pub fn get_json(url: &str) -> serde_json::Value {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let bytes = runtime.block_on(async { reqwest::get(url).await.unwrap().bytes().await.unwrap() });
    serde_json::from_slice(&bytes).unwrap()
}

/// POSTs to `url` without a body and parses the answer as JSON.
pub fn post_json(url: &str) -> serde_json::Value {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let bytes = runtime.block_on(async {
        let client = reqwest::Client::new();
        client.post(url).send().await.unwrap().error_for_status().unwrap().bytes().await.unwrap()
    });
    serde_json::from_slice(&bytes).unwrap()
}

/// A `cqrs-bench target serve` process on a free loopback port; killed on drop.
pub struct Served {
    child: Child,
    pub url: String,
    /// The lines printed before `listening on` (the outbox variant's Kafka address).
    pub banner: Vec<String>,
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
        let mut banner = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("reads target serve's output");
            if let Some(url) = line.trim().strip_prefix("listening on ") {
                return Served { child, url: url.to_owned(), banner };
            }
            banner.push(line);
        }
        let status = child.wait();
        panic!("target serve --variant {variant} ended before listening ({status:?}); it printed {banner:?}")
    }

    /// The outbox variant's Kafka bootstrap servers (`kafka ADDR topic ...`).
    pub fn kafka(&self) -> String {
        self.banner
            .iter()
            .find_map(|line| line.strip_prefix("kafka ").and_then(|rest| rest.split_whitespace().next()))
            .unwrap_or_else(|| panic!("no kafka line in {:?}", self.banner))
            .to_owned()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Tests whose figures hang on the machine's timing (a few hundred operations a second in a
/// debug build, delays of a few ms, a saturation search) take one of two permits: the suite
/// runs on more threads than cores (`RUST_TEST_THREADS` in .cargo/config.toml: most tests
/// wait on the clock, not the CPU), but never more than two of these at once, as when it ran
/// on two threads. Held until the returned guard drops.
pub fn timing_sensitive() -> TimingPermit {
    take_permits(1)
}

/// Every permit: no other timing-sensitive test runs beside this one. For a test whose
/// figure is a debug build's sustained rate held to its truth (a Redis-stream outbox's
/// drain within 25 %: 61 events/s read for 100 with another such test beside it).
pub fn timing_sensitive_alone() -> TimingPermit {
    take_permits(TIMING_PERMITS)
}

fn take_permits(count: usize) -> TimingPermit {
    let mut running = TIMING.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    while *running + count > TIMING_PERMITS {
        running = TIMING.1.wait(running).unwrap_or_else(|poisoned| poisoned.into_inner());
    }
    *running += count;
    TimingPermit(count)
}

const TIMING_PERMITS: usize = 2;
static TIMING: (std::sync::Mutex<usize>, std::sync::Condvar) = (std::sync::Mutex::new(0), std::sync::Condvar::new());

/// `timing_sensitive`'s permits (how many); given back on drop (also when the test panics).
pub struct TimingPermit(usize);

impl Drop for TimingPermit {
    fn drop(&mut self) {
        *TIMING.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) -= self.0;
        TIMING.1.notify_all();
    }
}

/// A service's URL from the environment (`CQRS_BENCH_PG_URL`…), when set and not empty.
pub fn env_url(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|url| !url.is_empty())
}

/// The same, saying on stderr that the test is skipped when it is not set.
pub fn service_url(name: &str) -> Option<String> {
    let url = env_url(name);
    if url.is_none() {
        eprintln!("skipped: {name} is not set");
    }
    url
}

/// Reads a JSON file the binary wrote (`capacity.json`, `saturate.json`…).
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("written")).expect("JSON")
}

/// Runs `command`, which must exit 0 (else its stdout and stderr are shown), and reads the
/// JSON `file` it wrote in `out`.
pub fn succeeded_json(command: &mut assert_cmd::Command, out: &Path, file: &str) -> serde_json::Value {
    let output = command.output().unwrap();
    let said = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    assert_eq!(output.status.code(), Some(0), "{}{}", said(&output.stdout), said(&output.stderr));
    read_json(&out.join(file))
}

/// result.json's judgement of the SLO `name`.
pub fn slo<'a>(result: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    result["slo"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no SLO {name}"))
}

/// One shard of a run as a child process: `cqrs-bench run SCENARIO --quiet --shard I/N
/// --start-at AT --out OUT` (stdout dropped), to add flags to and spawn.
pub fn shard_run(scenario: &Path, (index, count): (usize, usize), start_at: &str, out: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(BIN);
    command
        .current_dir(root())
        .arg("run")
        .arg(scenario)
        .args(["--quiet", "--shard", &format!("{index}/{count}"), "--start-at", start_at, "--out"])
        .arg(out)
        .stdout(Stdio::null());
    command
}

/// capacity.json's points, one per projector count, each with the rate it passed (which it
/// must have) and the truth it is held to: as many points as `truths`, in order.
pub fn passing_points<'a>(result: &'a serde_json::Value, truths: &[f64]) -> Vec<(&'a serde_json::Value, f64, f64)> {
    let points = result["points"].as_array().unwrap();
    assert_eq!(points.len(), truths.len(), "{result:#}");
    let passed = |point: &serde_json::Value| point["max_events_per_s"].as_f64().expect("a passing rate");
    points.iter().zip(truths).map(|(point, truth)| (point, passed(point), *truth)).collect()
}
