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
}

#[test]
fn achieved_matches_offered_at_a_rate_the_target_keeps_up_with() {
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
