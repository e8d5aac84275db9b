//! Issue 14: the read-your-writes probe's t-visibility curve against targets whose
//! staleness is known (a projection delay with jitter; dropped events).

use crate::support::{result_json, run_quiet, scenario};

fn point(result: &serde_json::Value, delay_ms: f64) -> (u64, f64) {
    let points = result["staleness"]["points"].as_array().expect("staleness points");
    let p = points.iter().find(|p| p["delay_ms"].as_f64() == Some(delay_ms)).expect("a point at that delay");
    (p["reads"].as_u64().unwrap(), p["p_fresh"].as_f64().expect("reads at that delay"))
}

/// Delay 30 ms + jitter 0–10 ms: nothing is fresh before 30 ms, everything from 40 ms
/// on, and the 99 % point is within one delay step (5 ms) of 40 ms.
#[test]
fn visibility_curve_follows_a_known_delay() {
    let out = tempfile::tempdir().unwrap();
    run_quiet(&scenario("staleness.toml"), out.path()).assert().code(0);
    let result = result_json(out.path());
    for ms in [0.0, 10.0, 20.0, 25.0] {
        let (reads, p) = point(&result, ms);
        assert!(reads >= 300, "{ms} ms: {reads} reads");
        assert!(p <= 0.01, "{ms} ms: P(fresh) {p}");
    }
    let (_, middle) = point(&result, 35.0);
    assert!((0.2..=0.8).contains(&middle), "35 ms: P(fresh) {middle} (truth about 0.5)");
    for ms in [45.0, 50.0, 60.0, 100.0, 1000.0] {
        let (_, p) = point(&result, ms);
        assert!(p >= 0.99, "{ms} ms: P(fresh) {p}");
    }
    let at = result["staleness"]["fresh_p99_at_ms"].as_f64().expect("a 99 % point");
    assert!((35.0..=45.0).contains(&at), "99 % fresh from {at} ms (truth: 40 ms)");
    let slo = result["slo"].as_array().unwrap().iter().find(|s| s["name"] == "stale_read_p_at_100ms").unwrap();
    assert_eq!(slo["pass"], true, "{slo}");
    // Probe reads are probe load: the query figures hold only the mix's queries.
    let queries = result["operations"]["get_account"]["count"].as_u64().unwrap();
    assert!(queries < 2400, "{queries} queries: the probe's reads leaked into the query figures");
    assert!(out.path().join("plots/read-your-writes.svg").is_file());
}

/// Every 5th event dropped: a fifth of the reads stay stale forever, so P(fresh | 1 s)
/// plateaus at 0.8, and the SLO on stale reads at 100 ms fails with that figure.
#[test]
fn dropped_events_stay_stale() {
    let out = tempfile::tempdir().unwrap();
    run_quiet(&scenario("staleness.toml"), out.path()).args(["--set", "target.faults.drop_every=5"]).assert().code(1);
    let result = result_json(out.path());
    let (reads, p) = point(&result, 1000.0);
    assert!(reads >= 300, "{reads} reads");
    assert!((p - 0.8).abs() <= 0.05, "P(fresh | 1 s) = {p}, truth 0.8");
    assert_eq!(result["staleness"]["fresh_p99_at_ms"], serde_json::Value::Null);
    let slo = result["slo"].as_array().unwrap().iter().find(|s| s["name"] == "stale_read_p_at_100ms").unwrap();
    assert_eq!(slo["pass"], false);
    assert!((slo["observed"].as_f64().unwrap() - 0.2).abs() <= 0.05, "{slo}");
}
