//! Issue 10: the saturation search and capacity planning against targets whose capacity
//! is known in advance (per-event projector cost and a shared serial section).

use crate::support::{bench, passing_points, root, scenario, succeeded_json};

/// 2 projectors at 5 ms per event apply 400 events/s; the search brackets that, and the
/// failing step says why it failed.
#[test]
fn saturate_finds_the_known_drain_rate() {
    let _timing = crate::support::timing_sensitive();
    let out = tempfile::tempdir().unwrap();
    let result = succeeded_json(
        bench()
            .arg("saturate")
            .arg(root().join("scenarios/capacity.toml"))
            .args(["--quiet", "--out"])
            .arg(out.path())
            .args([
                "--set",
                "target.projectors=2",
                "--set",
                "target.projector_cost=5ms",
                "--set",
                "target.projector_contention=0ms",
                "--set",
                "mix.keys.count=400",
                "--set",
                "saturate.start_rate=300",
                "--set",
                "saturate.step=3s",
                "--set",
                "saturate.warmup=1s",
                "--set",
                "saturate.precision=10%",
                "--set",
                "projection.timeout=5s",
            ]),
        out.path(),
        "saturate.json",
    );
    let max = result["max_events_per_s"].as_f64().expect("a passing rate");
    assert!((max / 400.0 - 1.0).abs() < 0.15, "max {max} events/s vs 400: {result:#}");
    let (pass, fail) = (result["highest_pass"].as_f64().unwrap(), result["lowest_fail"].as_f64().unwrap());
    assert!(pass < fail && (fail - pass) / pass <= 0.1 + 1e-9, "[{pass}, {fail}]");
    let because = result["failed_because"].as_array().unwrap();
    assert!(
        because.iter().any(|r| {
            let r = r.as_str().unwrap();
            r.starts_with("projection_lag_p99") || r.starts_with("projection lag growing")
        }),
        "{because:?}"
    );
    for step in result["steps"].as_array().unwrap() {
        let dir = out.path().join("steps").join(step["result_dir"].as_str().unwrap());
        assert!(dir.join("result.json").is_file(), "{}", dir.display());
    }
    assert!(out.path().join("plots/saturation.svg").is_file());
    assert!(std::fs::read_to_string(out.path().join("report.html")).unwrap().contains("<svg"));
}

/// `capacity` restarts a served reference variant at 1 and 2 projectors (`--projectors`
/// overrides the scenario's list, which has them too), fits the USL and
/// answers `--target-rate` with a count; a rate beyond the peak says so.
#[test]
fn capacity_restarts_a_served_variant_and_answers_with_a_count() {
    let _timing = crate::support::timing_sensitive();
    let out = tempfile::tempdir().unwrap();
    let result = succeeded_json(
        bench()
            .arg("capacity")
            .arg(scenario("capacity-served.toml"))
            .args(["--quiet", "--projectors", "2,1", "--target-rate", "250", "--out"])
            .arg(out.path()),
        out.path(),
        "capacity.json",
    );
    for (point, max, truth) in passing_points(&result, &[100.0, 200.0]) {
        assert!((max / truth - 1.0).abs() < 0.15, "{} projectors: {max} vs {truth}", point["projectors"]);
        assert!(out.path().join(format!("projectors-{}/serve.log", point["projectors"])).is_file());
    }
    let usl = &result["usl"];
    assert!(usl["lambda"].as_f64().unwrap() > 80.0, "{usl}");
    // 250 events/s + 20 % headroom = 300: 3 or 4 projectors on a near-linear fit.
    let count = result["recommendation"]["projectors"].as_u64().expect("a count");
    assert!((3..=4).contains(&count), "{:#}", result["recommendation"]);
    assert_eq!(result["predicted"].as_array().unwrap().len(), 4);
    assert!(out.path().join("plots/capacity.svg").is_file());
    assert!(out.path().join("projectors-2/report.html").is_file());
}

/// Bad input is refused before anything is created or sent: an HTTP target with no way to
/// scale it, a closed model (no rate to search).
#[test]
fn capacity_and_saturate_refuse_what_they_cannot_search() {
    let out = tempfile::tempdir().unwrap();
    let folder = out.path().join("never");
    let output = bench()
        .arg("capacity")
        .arg(root().join("scenarios/bank-http.toml"))
        .arg("--out")
        .arg(&folder)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot change this target's projector count"));
    assert!(!folder.exists());
    let output = bench()
        .arg("saturate")
        .arg(root().join("scenarios/ceiling-closed.toml"))
        .arg("--out")
        .arg(&folder)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("needs load.model = \"open\""));
    assert!(!folder.exists());
}
