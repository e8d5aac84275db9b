//! Issue 30, item 7: lag probes on a keyless list share their polls, so the probes'
//! load on the read model does not grow with `sample` (it grew ~10× from 0.05 to 0.5
//! when each probe polled on its own).

use std::time::Duration;

use crate::apps::todo;
use crate::support::{result_json, scenario};

/// Runs the keyless-list scenario at `sample` against a fresh todo app projecting every
/// second; returns (the app's truth, result.json).
fn run_at(sample: f64) -> (serde_json::Value, serde_json::Value) {
    let faults = todo::Faults { duplicate_every: 1_000_000, drop_every: 1_000_000 };
    let app = todo::start_projecting_every(faults, Duration::from_secs(1));
    let out = tempfile::tempdir().unwrap();
    crate::support::bench()
        .args(["run", "--quiet", "--target", &app.url, "--out"])
        .arg(out.path())
        .args(["--set", &format!("projection.sample={sample}")])
        .arg(scenario("todo-list-lag.toml"))
        .assert()
        .code(0);
    (app.truth(), result_json(out.path()))
}

/// Probe polls per second of the load, as the app counted them; checks the harness
/// reported the same count, and the probe load's share.
fn app_polls_per_s(truth: &serde_json::Value, result: &serde_json::Value) -> f64 {
    let polls = truth["lag_polls"].as_u64().unwrap();
    let projection = &result["projection"];
    assert_eq!(projection["late"], 0, "{projection}");
    assert_eq!(projection["poll_errors"], 0, "{projection}");
    // Every poll the harness counts is sent, and answered (no errors): the app saw each.
    assert_eq!(projection["polls"].as_u64(), Some(polls), "app {truth}");
    let load = &result["probe_load"];
    assert_eq!(load["lag_polls"].as_u64(), Some(polls), "{load}");
    let share = load["share_of_requests"].as_f64().expect("probe load share");
    assert!((0.0..=1.0).contains(&share), "{load}");
    polls as f64 / result["duration_s"].as_f64().unwrap()
}

#[test]
fn keyless_list_polls_do_not_grow_with_the_sample() {
    let (truth_low, low) = run_at(0.05);
    let (truth_high, high) = run_at(0.5);
    let (few, many) = (app_polls_per_s(&truth_low, &low), app_polls_per_s(&truth_high, &high));
    let probes = |r: &serde_json::Value| r["projection"]["probes"].as_u64().unwrap();
    println!(
        "sample 0.05: {} probes, {few:.1} polls/s; sample 0.5: {} probes, {many:.1} polls/s",
        probes(&low),
        probes(&high)
    );
    assert!(probes(&high) >= 5 * probes(&low), "the sample changes the probes: {} vs {}", probes(&high), probes(&low));
    assert!(many <= 1.5 * few + 5.0, "polls/s {many:.1} at sample 0.5 against {few:.1} at 0.05");
}
