//! The results folder a person and a CI system read: plots, report.html (in a real
//! browser: browser.rs), junit.xml, .hlog files that HdrHistogram's reader takes back,
//! and the compare gate.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

use crate::support::{Served, bench, result_json};

fn quickstart(dir: &Path, extra: &[&str]) {
    bench()
        .args(["run", "scenarios/quickstart.toml", "--quiet", "--duration", "6s", "--out"])
        .arg(dir)
        .args(extra)
        .assert()
        .code(0);
}

fn count(dir: &Path, ext: &str) -> usize {
    std::fs::read_dir(dir).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == ext)).count()
}

#[test]
fn a_run_folder_holds_every_report() {
    let dir = tempfile::tempdir().unwrap();
    quickstart(dir.path(), &[]);
    for file in ["result.json", "report.html", "junit.xml", "deposit.hlog", "get_account.hlog"] {
        assert!(dir.path().join(file).is_file(), "{file}");
    }
    let plots = dir.path().join("plots");
    assert!(count(&plots, "png") >= 3 && count(&plots, "svg") >= 3);
    let png = std::fs::read(plots.join("latency-spectrum.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");

    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    let result = result_json(dir.path());
    let slos = result["slo"].as_array().unwrap().len();
    assert_eq!(junit.matches("<testcase ").count(), slos);
    assert!(junit.contains(r#"failures="0""#));

    // `report` rebuilds the views from result.json alone.
    std::fs::remove_file(dir.path().join("report.html")).unwrap();
    bench().arg("report").arg(dir.path()).assert().success();
    assert!(dir.path().join("report.html").is_file());
}

#[test]
fn hlog_files_round_trip_through_the_hdrhistogram_reader() {
    let dir = tempfile::tempdir().unwrap();
    // No warmup: the .hlog (whole run) and result.json (measured window) hold the same operations.
    quickstart(dir.path(), &["--set", r#"load.warmup="0s""#, "--set", "slo.min_throughput=100"]);
    let result = result_json(dir.path());
    for (name, op) in result["operations"].as_object().unwrap() {
        if op["count"] == 0 {
            continue; // `account_refs` has weight 0: [verify] reads it, the load does not
        }
        let bytes = std::fs::read(dir.path().join(format!("{name}.hlog"))).unwrap();
        let mut total = 0u64;
        let mut intervals = 0;
        for entry in IntervalLogIterator::new(&bytes) {
            if let LogEntry::Interval(interval) = entry.expect("a well-formed log") {
                let raw = base64::engine::general_purpose::STANDARD.decode(interval.encoded_histogram()).unwrap();
                let h: hdrhistogram::Histogram<u64> = Deserializer::new().deserialize(&mut raw.as_slice()).unwrap();
                total += h.len();
                intervals += 1;
            }
        }
        let answered = op["ok"].as_u64().unwrap() + op["rejected"].as_u64().unwrap();
        assert_eq!(total, answered, "{name}: .hlog counts vs result.json");
        assert!(intervals >= 5, "{name}: one interval per second");
    }
}

fn run_against(served: &Served, dir: &Path) {
    bench()
        .args(["run", "scenarios/bank-http.toml", "--quiet", "--duration", "6s", "--target", &served.url, "--out"])
        .arg(dir)
        .assert()
        .code(0);
}

#[test]
fn compare_passes_against_itself_and_fails_on_a_50ms_slower_command_path() {
    let _timing = crate::support::timing_sensitive();
    let base = tempfile::tempdir().unwrap();
    let slow = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    run_against(&Served::start(&[]), base.path());
    // Every command applied, then answered 50 ms later.
    run_against(&Served::start(&["--slow-every", "1", "--slow-delay", "50ms"]), slow.path());

    bench()
        .arg("compare")
        .arg(base.path())
        .arg("--baseline")
        .arg(base.path())
        .arg("--out")
        .arg(out.path())
        .assert()
        .code(0);
    let assert = bench()
        .arg("compare")
        .arg(slow.path())
        .arg("--baseline")
        .arg(base.path())
        .args(["--max-regression", "10%", "--out"])
        .arg(out.path())
        .assert()
        .code(1);
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    assert!(stdout.contains("REGRESSION") && stdout.contains("command latency p50"), "{stdout}");
    assert!(out.path().join("compare.md").is_file());
    assert!(out.path().join("command-latency-spectrum.png").is_file());
    assert!(out.path().join("projection-lag-spectrum.png").is_file(), "lag overlaid when the runs probed it");
}

/// Issue 15: `run --repeat` makes a baseline set; `compare` calls a run of the same build
/// "within noise" on every figure and a build 40 % slower on its commands "regressed". (How
/// well the gate calls a 20 % change is a measurement, not a test: `benches/gate.sh`, release
/// builds, 10-second runs, 20 of 20 in docs/src/ci.md. A debug build's 5-second runs on a busy
/// 2-core machine measured 10 → 12 ms as +15.7 % with an interval touching the noise band.)
#[test]
fn compare_tells_noise_from_a_40_percent_slower_command_path() {
    let _timing = crate::support::timing_sensitive();
    // Every command answered 10 ms (baseline) or 14 ms (slower) after it was applied.
    let base_target = Served::start(&["--slow-every", "1", "--slow-delay", "10ms"]);
    let slower_target = Served::start(&["--slow-every", "1", "--slow-delay", "14ms"]);
    let runs = tempfile::tempdir().unwrap();
    let run = |served: &Served, out: &Path, extra: &[&str]| {
        bench()
            .args(["run", "scenarios/bank-http.toml", "--quiet", "--duration", "5s", "--rate", "100"])
            .args(["--set", r#"load.warmup="1s""#, "--set", "slo.min_throughput=50", "--target", &served.url, "--out"])
            .arg(out)
            .args(extra)
            .assert()
            .code(0)
    };
    let set = runs.path().join("baseline");
    let repeated = run(&base_target, &set, &["--repeat", "3"]);
    let stdout = String::from_utf8_lossy(&repeated.get_output().stdout).into_owned();
    assert!(stdout.contains("run 3/3: PASS"), "{stdout}");
    for i in 1..=3 {
        assert!(set.join(format!("run-{i}/result.json")).is_file(), "run-{i}");
    }
    let summary = std::fs::read_to_string(set.join("repeat.md")).unwrap();
    assert!(summary.contains("| command latency p99 |"), "{summary}");

    let same = runs.path().join("same");
    let slower = runs.path().join("slower");
    run(&base_target, &same, &[]);
    run(&slower_target, &slower, &[]);
    let compare = |new: &Path, code: i32| {
        let out = tempfile::tempdir().unwrap();
        let assert = bench().arg("compare").arg(new).arg("--baseline").arg(&set).arg("--out").arg(out.path()).assert();
        let stdout = String::from_utf8_lossy(&assert.code(code).get_output().stdout).into_owned();
        let markdown = std::fs::read_to_string(out.path().join("compare.md")).unwrap();
        (stdout, markdown)
    };
    let (stdout, markdown) = compare(&same, 0);
    assert!(stdout.contains("no regression") && !stdout.contains("REGRESSION"), "{stdout}");
    assert!(markdown.contains("| command latency p50 |") && markdown.contains("baseline (3 runs)"), "{markdown}");
    let (stdout, markdown) = compare(&slower, 1);
    let line = stdout.lines().find(|l| l.starts_with("command latency p50")).unwrap_or_default();
    assert!(line.ends_with("regressed ▲"), "{stdout}");
    // 10 → 14 ms of delay on a command path of ~10.3 ms: about +39 % (more when the slower
    // run also met a busier machine).
    let change: f64 =
        line.split_whitespace().find(|w| w.starts_with('+')).unwrap().trim_start_matches('+').parse().unwrap();
    assert!(change >= 25.0, "{line}");
    // The lag is read per second too, from projection-lag.hlog; 4-second runs hold a few
    // probes, too few to judge even its median (20 needed), and the row says so.
    assert!(set.join("run-1/projection-lag.hlog").is_file());
    let row = |name: &str| stdout.lines().find(|l| l.starts_with(name)).unwrap_or_default().to_owned();
    let lag_p50 = row("projection lag p50");
    assert!(lag_p50.contains("< 20") && lag_p50.ends_with("too few samples"), "{lag_p50}");
    let lag_p99 = row("projection lag p99");
    assert!(lag_p99.contains("< 1000") && lag_p99.ends_with("too few samples"), "{lag_p99}");
    for query in ["query latency p50", "achieved throughput"] {
        assert!(row(query).ends_with("within noise"), "{query}: {stdout}");
    }
    assert!(markdown.contains("| command latency p50 |") && markdown.contains("regressed ▲ |"), "{markdown}");
}

/// Issue 15: the CI gate of the README (docker/ci/perf-gate.yml runs docker/ci/gate.sh)
/// end to end as a plain script: a baseline set on "main", a pull request of the same
/// build passes, one whose commands are 20 ms slower fails the job with exit 1.
#[test]
fn the_ci_gate_script_runs_end_to_end() {
    let _timing = crate::support::timing_sensitive();
    let workflow = std::fs::read_to_string(crate::support::root().join("docker/ci/perf-gate.yml")).unwrap();
    assert!(workflow.contains("docker/ci/gate.sh baseline") && workflow.contains("docker/ci/gate.sh check"));
    let dir = tempfile::tempdir().unwrap();
    let free_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let gate = |mode: &str, target: Option<&str>| {
        let mut command = Command::new("bash");
        command
            .arg(crate::support::root().join("docker/ci/gate.sh"))
            .arg(mode)
            .current_dir(crate::support::root())
            .env("BIN", crate::support::BIN)
            .env("BASELINE_DIR", dir.path().join("baseline"))
            .env("OUT", dir.path().join("report"))
            .env("REPEAT", "2")
            .env("RUN_ARGS", r#"--duration 4s --rate 100 --set load.warmup="1s" --set slo.min_throughput=50"#);
        match target {
            // The script serves the memory target itself.
            None => command.env("TARGET_URL", format!("http://127.0.0.1:{free_port}")),
            Some(url) => command.env("TARGET_CMD", "").env("TARGET_URL", url),
        };
        let output = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        (output.status.code(), stdout + &String::from_utf8_lossy(&output.stderr))
    };
    let (code, output) = gate("baseline", None);
    assert_eq!(code, Some(0), "{output}");
    assert!(dir.path().join("baseline/run-2/result.json").is_file() && dir.path().join("baseline/repeat.md").is_file());
    let (code, output) = gate("check", None);
    assert_eq!(code, Some(0), "{output}");
    assert!(output.contains("no regression"), "{output}");
    let compare_md = std::fs::read_to_string(dir.path().join("report/compare.md")).unwrap();
    assert!(compare_md.contains("| metric | baseline | this run |"), "{compare_md}");
    assert!(dir.path().join("report/run/report.html").is_file());

    let slower = Served::start(&["--slow-every", "1", "--slow-delay", "20ms"]);
    let (code, output) = gate("check", Some(&slower.url));
    assert_eq!(code, Some(1), "{output}");
    assert!(output.contains("REGRESSION") && output.contains("command latency p50"), "{output}");
}
