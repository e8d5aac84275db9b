//! Whole runs of the real binary against the reference target.

use predicates::prelude::*;

use crate::support::{Served, bench, result_json, scenario};

fn f(v: &serde_json::Value, pointer: &str) -> f64 {
    v.pointer(pointer).and_then(serde_json::Value::as_f64).unwrap_or_else(|| panic!("{pointer} missing in {v:#}"))
}

#[test]
fn quickstart_meets_its_slos_and_writes_results() {
    let dir = tempfile::tempdir().unwrap();
    bench()
        .args(["run", "scenarios/quickstart.toml", "--duration", "8s", "--out"])
        .arg(dir.path())
        .assert()
        .code(0)
        // Not a terminal: live progress comes as a plain line every 5 s.
        .stderr(
            predicate::str::is_match(
                r"\[\s*5\.0s/8s\] offered \d+/s achieved \d+/s p99 [0-9.]+ ms errors 0 dropped 0 in flight \d+ lag [0-9.]+ ms",
            )
            .unwrap(),
        );
    let result = result_json(dir.path());
    assert_eq!(result["verdict"], "pass");
    assert_eq!(result["interrupted"], false);
    for kind in ["commands", "queries"] {
        assert!(f(&result, &format!("/{kind}/count")) > 100.0, "{kind} count");
        assert!(f(&result, &format!("/{kind}/latency_ms/p99")) > 0.0, "{kind} p99");
    }
    assert!(f(&result, "/operations/deposit/latency_ms/p50") > 0.0);
    assert!(!result["operations"]["deposit"]["histogram"].as_str().unwrap().is_empty());
    assert!(result["timeline"].as_array().unwrap().len() >= 8);
}

#[test]
fn an_slo_that_cannot_be_met_exits_1_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    bench()
        .args([
            "run",
            "scenarios/quickstart.toml",
            "--duration",
            "5s",
            "--set",
            r#"slo.command_latency_p95="1us""#,
            "--out",
        ])
        .arg(dir.path())
        .assert()
        .code(1)
        .stdout(predicate::str::is_match(r"command_latency_p95\s+[0-9.]+ ms\s+<=\s+0.001 ms\s+FAIL").unwrap())
        .stdout(predicate::str::contains("FAIL: 1 SLO(s) violated: command_latency_p95"));
    let result = result_json(dir.path());
    let slo = result["slo"].as_array().unwrap().iter().find(|s| s["name"] == "command_latency_p95").unwrap();
    assert_eq!(slo["pass"], false);
    assert!(slo["observed"].as_f64().unwrap() > slo["threshold"].as_f64().unwrap());
}

#[test]
fn a_stall_shows_in_latency_but_not_in_service_time() {
    let _timing = crate::support::timing_sensitive();
    let dir = tempfile::tempdir().unwrap();
    bench().args(["run", "--quiet"]).arg(scenario("stall.toml")).arg("--out").arg(dir.path()).assert().code(0);
    let result = result_json(dir.path());
    let latency_p99 = f(&result, "/operations/get_account/latency_ms/p99");
    let service_p99 = f(&result, "/operations/get_account/service_time_ms/p99");
    let service_max = f(&result, "/operations/get_account/service_time_ms/max");
    // 200 of the 2,000 measured operations fall in the 1 s stall: p99 sits inside it.
    assert!(latency_p99 >= 800.0, "latency p99 {latency_p99} ms should show the 1 s stall");
    // Only the 8 requests in flight when the stall began waited in the target.
    assert!(service_max >= 800.0, "some request was in flight during the stall: {service_max}");
    assert!(service_p99 < 50.0, "service time p99 {service_p99} ms should not show the stall");
    assert_eq!(f(&result, "/throughput/dropped"), 0.0);
    // Issue 30: the queued operations were sent late (waiting for one of the 8 stuck
    // slots): the generator's send lag per second shows when, and the run says so.
    let rows = result["timeline"].as_array().unwrap();
    let worst = rows.iter().filter_map(|r| r["send_lag_p99_ms"].as_f64()).fold(0.0, f64::max);
    assert!(worst >= 500.0, "a row's send-lag p99 shows the 1 s stall: {worst} ms");
    let over = &result["generator"]["send_lag_over_bound"];
    assert_eq!(over["bound_ms"], 10.0, "no command-latency SLO: the default bound");
    assert!(over["seconds"].as_u64().unwrap() >= 1, "{over}");
    let (first, last) = (over["first_s"].as_u64().unwrap(), over["last_s"].as_u64().unwrap());
    assert!(first <= 5 && last >= 4, "the stall (4 s … 5 s) is among the late seconds: {over}");
}

/// Issue 30: with nothing sent after the warmup, there is no send lag and no latency to
/// show: null in result.json (with the reason), `–` in the summary, never zeros; `report`
/// and `compare` read such a result back.
#[test]
fn nothing_after_the_warmup_is_null_not_zero() {
    let dir = tempfile::tempdir().unwrap();
    let run = bench()
        .args(["run", "--set", "load.stages.0.rate=1", "--set", "load.stages.0.duration=\"2s\""])
        .args(["--set", "load.warmup=\"1500ms\"", "--out"])
        .arg(dir.path())
        .arg(scenario("steady.toml"))
        .assert();
    let stdout = String::from_utf8_lossy(&run.get_output().stdout).to_string();
    let result = result_json(dir.path());
    let generator = &result["generator"];
    assert!(generator["send_lag_ms"].is_null(), "{generator}");
    assert_eq!(generator["send_lag_unknown"], "nothing was sent after the warmup");
    assert!(stdout.contains("send lag – (nothing was sent after the warmup)"), "{stdout}");
    for op in ["deposit", "get_account"] {
        let stats = &result["operations"][op];
        assert_eq!(stats["count"], 0, "{op}: {stats}");
        assert!(stats["latency_ms"].is_null() && stats["service_time_ms"].is_null(), "{op}: {stats}");
        let row = stdout.lines().find(|l| l.starts_with(op)).unwrap();
        assert_eq!(row.split_whitespace().filter(|c| *c == "–").count(), 6, "{row}");
    }
    assert!(result["warmup"]["count"].as_u64().unwrap() > 0);
    bench().args(["report"]).arg(dir.path()).assert().success();
    let out = tempfile::tempdir().unwrap();
    bench().args(["compare"]).arg(dir.path()).arg(dir.path()).arg("--out").arg(out.path()).assert().success();
}

#[test]
fn achieved_matches_offered_at_a_rate_the_target_keeps_up_with() {
    let _timing = crate::support::timing_sensitive();
    let dir = tempfile::tempdir().unwrap();
    bench().args(["run", "--quiet"]).arg(scenario("steady.toml")).arg("--out").arg(dir.path()).assert().code(0);
    let result = result_json(dir.path());
    let offered = f(&result, "/throughput/offered");
    let achieved = f(&result, "/throughput/achieved");
    assert_eq!(f(&result, "/throughput/dropped"), 0.0);
    assert!((offered - 5000.0).abs() <= 1.0, "5 s measured at 1000/s: {offered}");
    assert!((achieved - offered).abs() <= offered * 0.01, "achieved {achieved} vs offered {offered}");
    assert!((f(&result, "/throughput/achieved_per_s") - 1000.0).abs() <= 10.0);
}

#[test]
fn bank_http_runs_against_target_serve() {
    let served = Served::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    bench()
        .args(["run", "scenarios/bank-http.toml", "--quiet", "--duration", "6s", "--target", &served.url, "--out"])
        .arg(dir.path())
        .assert()
        .code(0);
    let result = result_json(dir.path());
    assert!(f(&result, "/commands/count") > 100.0);
    assert!(f(&result, "/queries/count") > 100.0);
    assert_eq!(f(&result, "/commands/errors"), 0.0);
    assert_eq!(result["environment"]["target"], served.url.as_str());
}

#[test]
fn sigint_stops_the_load_and_still_writes_results() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(crate::support::BIN)
        .current_dir(crate::support::root())
        .args(["run", "scenarios/quickstart.toml", "--quiet", "--out"])
        .arg(dir.path())
        .spawn()
        .unwrap();
    // Let setup finish and the load run for a while, then interrupt.
    std::thread::park_timeout(std::time::Duration::from_secs(5));
    let killed = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "an interrupted run is not a verdict");
    let result = result_json(dir.path());
    assert_eq!(result["interrupted"], true);
    assert!(f(&result, "/duration_s") < 10.0, "stopped early: {}", result["duration_s"]);
    assert!(f(&result, "/throughput/achieved") > 0.0, "what ran is reported");
    assert!(dir.path().join("report.html").is_file());
}
