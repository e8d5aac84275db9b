//! Issue 12, "Probes that work on real read models": goodput instead of completions,
//! late probes as censored lag values, the verdict under `--quiet`, and a progress line
//! that names the phase after the load.

use predicates::prelude::*;

use crate::support::{bench, result_json, scenario, slo};

fn f(v: &serde_json::Value, pointer: &str) -> f64 {
    v.pointer(pointer).and_then(serde_json::Value::as_f64).unwrap_or_else(|| panic!("{pointer} missing in {v:#}"))
}

/// Every 2nd command is answered 500: they all complete, half of them are throughput.
#[test]
fn issue12_goodput_leaves_errors_out_and_quiet_prints_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let assert =
        bench().args(["run", "--quiet"]).arg(scenario("failing.toml")).arg("--out").arg(dir.path()).assert().code(1);
    // --quiet drops progress and summary, not the verdict (with the results folder).
    let output = assert.get_output();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout, format!("FAIL: 1 SLO(s) violated: min_throughput ({})\n", dir.path().display()));
    assert!(!String::from_utf8_lossy(&output.stderr).contains("offered"), "no progress with --quiet");

    let result = result_json(dir.path());
    let (count, errors) = (f(&result, "/commands/count"), f(&result, "/commands/errors"));
    assert!(count > 100.0, "the users kept sending: {count}");
    assert!((errors - count / 2.0).abs() <= 1.0, "every 2nd command fails: {errors} of {count}");
    assert_eq!(f(&result, "/throughput/achieved"), count - errors);
    assert_eq!(f(&result, "/throughput/errors"), errors);
    let per_s = f(&result, "/throughput/achieved_per_s");
    assert!((per_s - f(&result, "/throughput/errors_per_s")).abs() <= 1.0, "{}", result["throughput"]);
    let min_throughput = slo(&result, "min_throughput");
    assert_eq!(min_throughput["observed"], per_s);
    // Closed model: offered still counts every operation a user started.
    assert!(f(&result, "/throughput/offered") >= count);
    let timeline = result["timeline"].as_array().unwrap();
    let sum = |column: &str| timeline.iter().map(|row| row[column].as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum("achieved") as f64, count - errors);
    assert_eq!(sum("offered"), sum("achieved") + sum("errors"));
}

/// Every command is answered 500: none is throughput, and `min_throughput` fails.
#[test]
fn issue12_a_run_where_every_request_fails_has_no_goodput() {
    let dir = tempfile::tempdir().unwrap();
    // Exit 3: without a single successful answer the run "could not run" (issue 18).
    bench()
        .args(["run", "--quiet", "--set", "target.faults.fail_every=1", "--set", "slo.min_throughput=10"])
        .arg(scenario("failing.toml"))
        .arg("--out")
        .arg(dir.path())
        .assert()
        .code(3);
    let result = result_json(dir.path());
    let count = f(&result, "/commands/count");
    assert!(count > 100.0, "the users kept sending: {count}");
    assert_eq!(f(&result, "/throughput/achieved"), 0.0);
    assert_eq!(f(&result, "/throughput/achieved_per_s"), 0.0);
    assert_eq!(f(&result, "/throughput/errors"), count);
    let min_throughput = slo(&result, "min_throughput");
    assert_eq!(min_throughput["observed"], 0.0);
    assert_eq!(min_throughput["pass"], false);
    assert_eq!(result["verdict"], "fail");
}

/// Projector paused longer than the probe timeout: lag p99 is the timeout everywhere.
#[test]
fn issue12_late_probes_count_at_the_timeout_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let assert = bench()
        .arg("run")
        .arg(scenario("late.toml"))
        .arg("--out")
        .arg(dir.path())
        .assert()
        .code(1)
        // The summary marks the censored percentile and agrees with the SLO row.
        .stdout(predicate::str::contains("p99 ≥ 1000 ms"))
        .stdout(predicate::str::is_match(r"projection_lag_p99\s+1000 ms\s+<=\s+500 ms\s+FAIL").unwrap())
        .stdout(predicate::str::is_match(r"late_ratio\s+[0-9.]+ %\s+<=\s+1.000 %\s+FAIL").unwrap())
        // Not a terminal: after the load, the progress names what the run waits for.
        .stderr(predicate::str::is_match(r"\[settling\] waiting for \d+ lag probes? \(").unwrap())
        .stderr(predicate::str::contains("[verify] reading the read model back ("));
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();

    let result = result_json(dir.path());
    let (probes, late) = (f(&result, "/projection/probes"), f(&result, "/projection/late"));
    assert!(late > probes / 3.0 && late < probes, "{late} of {probes} probes late");
    assert_eq!(f(&result, "/projection/censored_at_ms"), 1000.0);
    assert_eq!(f(&result, "/projection/lag_ms/p99"), 1000.0);
    assert_eq!(slo(&result, "projection_lag_p99")["observed"], 1000.0);
    assert_eq!(slo(&result, "late_ratio")["observed"].as_f64().unwrap(), late / probes);
    let p99s: Vec<f64> =
        result["timeline"].as_array().unwrap().iter().filter_map(|r| r["projection_lag_p99_ms"].as_f64()).collect();
    assert_eq!(p99s.iter().copied().fold(0.0, f64::max), 1000.0, "per-second p99 {p99s:?}");
    // No load line while the run waits after the load.
    let after_load = stderr.split("[settling]").nth(1).unwrap_or_default();
    assert!(!after_load.contains("offered"), "{stderr}");
}
