//! Consistency probes against faults the reference target injects and therefore knows:
//! every count is compared with the target's own ground truth, exactly.

use crate::support::{Served, bench, get_json, result_json, scenario};

fn n(v: &serde_json::Value, pointer: &str) -> u64 {
    v.pointer(pointer).and_then(serde_json::Value::as_u64).unwrap_or_else(|| panic!("{pointer} missing in {v:#}"))
}

fn len(v: &serde_json::Value, pointer: &str) -> u64 {
    v.pointer(pointer).and_then(serde_json::Value::as_array).unwrap_or_else(|| panic!("{pointer} missing")).len() as u64
}

fn failed_slos(result: &serde_json::Value) -> Vec<String> {
    result["slo"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["pass"] == false)
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

/// GET a JSON document from the served target.
#[test]
fn drops_and_duplicates_match_the_ground_truth_embedded() {
    let dir = tempfile::tempdir().unwrap();
    bench()
        .args(["run", "--quiet", "--set", "target.faults.drop_every=50", "--set", "target.faults.duplicate_every=40"])
        .arg(scenario("faults.toml"))
        .arg("--out")
        .arg(dir.path())
        .assert()
        .code(1);
    let result = result_json(dir.path());
    let truth = &result["target_truth"];
    assert!(n(&result, "/events/acked") >= 5000, "at least 5,000 acknowledged commands");
    assert_eq!(n(&result, "/events/missed"), len(truth, "/dropped_refs"));
    assert_eq!(n(&result, "/events/duplicates"), len(truth, "/duplicated_refs"));
    // Every 50th event dropped; every 40th doubled unless it was dropped (every 200th).
    let acked = n(&result, "/events/acked");
    assert_eq!(n(&result, "/events/missed"), acked / 50);
    assert_eq!(n(&result, "/events/duplicates"), acked / 40 - acked / 200);
    assert_eq!(n(&result, "/events/unexpected"), 0);
    assert_eq!(failed_slos(&result), ["duplicates", "missed"]);
}

#[test]
fn drops_and_duplicates_match_the_ground_truth_over_http() {
    let served = Served::start(&[
        "--drop-every",
        "50",
        "--duplicate-every",
        "40",
        "--projection-delay",
        "2ms",
        "--non-idempotent",
    ]);
    let dir = tempfile::tempdir().unwrap();
    // Three generator threads on two cores (issue 11): the schedule, the lanes and the
    // ledger are split unevenly over them, and the accounting must stay exact.
    bench()
        .args(["run", "--quiet", "--threads", "3", "--target", &served.url])
        .arg(scenario("faults.toml"))
        .arg("--out")
        .arg(dir.path())
        .assert()
        .code(1);
    let result = result_json(dir.path());
    let truth = get_json(&format!("{}/admin/ground-truth", served.url));
    assert!(n(&result, "/events/acked") >= 5000);
    assert_eq!(n(&result, "/events/missed"), len(&truth, "/dropped_refs"));
    assert_eq!(n(&result, "/events/duplicates"), len(&truth, "/duplicated_refs"));
    assert!(n(&result, "/events/missed") > 0 && n(&result, "/events/duplicates") > 0);
    assert_eq!(failed_slos(&result), ["duplicates", "missed"]);
}

#[test]
fn a_fixed_projection_delay_shows_as_lag() {
    let dir = tempfile::tempdir().unwrap();
    bench().args(["run", "--quiet"]).arg(scenario("lag.toml")).arg("--out").arg(dir.path()).assert().code(0);
    let result = result_json(dir.path());
    let p50 = result["projection"]["lag_ms"]["p50"].as_f64().unwrap();
    assert!(n(&result, "/projection/probes") > 300);
    assert_eq!(n(&result, "/projection/late"), 0);
    assert_eq!(result["projection"]["resolution_ms"].as_f64(), Some(5.0));
    assert!((25.0..=40.0).contains(&p50), "lag p50 {p50} ms for a 30 ms delay polled every 5 ms");
}

fn run_crash(idempotent: bool) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    bench()
        .args(["run", "--quiet", "--set", &format!("target.faults.idempotent={idempotent}")])
        .arg(scenario("crash.toml"))
        .arg("--out")
        .arg(dir.path())
        .assert()
        .code(if idempotent { 0 } else { 1 });
    result_json(dir.path())
}

#[test]
fn a_crashed_non_idempotent_projector_applies_events_twice() {
    let result = run_crash(false);
    let duplicates = n(&result, "/events/duplicates");
    assert!(duplicates > 0, "redelivery after the crash applies events again");
    assert_eq!(duplicates, len(&result["target_truth"], "/duplicated_refs"));
    assert_eq!(n(&result, "/events/missed"), 0);
    let recovery = &result["recovery"][0];
    assert_eq!(recovery["action"], "crash projector 0");
    assert!(recovery["recovered_after_s"].as_f64().is_some(), "lag came back under its SLO: {recovery}");
    assert_eq!(result["actions"][0]["ok"], true);
}

#[test]
fn an_idempotent_projector_survives_the_same_crash_without_duplicates() {
    let result = run_crash(true);
    assert_eq!(n(&result, "/events/duplicates"), 0);
    assert_eq!(len(&result["target_truth"], "/duplicated_refs"), 0);
    assert_eq!(n(&result, "/events/missed"), 0);
}

#[test]
fn a_command_that_timed_out_but_was_applied_is_recovered() {
    let dir = tempfile::tempdir().unwrap();
    bench().args(["run", "--quiet"]).arg(scenario("slow.toml")).arg("--out").arg(dir.path()).assert().code(0);
    let result = result_json(dir.path());
    let slow = len(&result["target_truth"], "/slow_refs");
    assert!(slow >= 15, "every 100th of ~2,000 commands is slow: {slow}");
    assert_eq!(n(&result, "/events/recovered"), slow);
    assert_eq!(n(&result, "/events/indeterminate"), 0);
    assert_eq!(n(&result, "/events/unexpected"), 0);
    assert_eq!(n(&result, "/events/missed"), 0);
    // The client saw timeouts: counted by class, not as event errors.
    assert_eq!(n(&result, "/operations/deposit/errors_by_class/timeout"), slow);
}
