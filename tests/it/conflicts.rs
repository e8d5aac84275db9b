//! Conflicts apart from refusals (issue 31): an app that answers 400 both for a refused
//! withdrawal and for an optimistic-concurrency conflict, told apart by the body. The
//! harness's counts must equal the app's own.

use crate::apps::contended_wallet;
use crate::support::{bench, result_json, scenario};

#[test]
fn issue31_conflicts_are_counted_apart_from_refusals_and_equal_the_apps() {
    let app = contended_wallet::start();
    let out = tempfile::tempdir().unwrap();
    let run = bench()
        .args(["run", "--target", &app.url, "--out"])
        .arg(out.path())
        .arg(scenario("contended-wallet.toml"))
        .assert();
    let truth = app.truth();
    let result = result_json(out.path());
    let ops = &result["operations"];
    let count = |field: &str| ops["deposit"][field].as_u64().unwrap() + ops["withdraw"][field].as_u64().unwrap();
    println!("truth {truth}\ncommands {}", result["commands"]);
    let conflicts = truth["conflicts"].as_u64().unwrap();
    assert!(conflicts > 0, "3 hot wallets at 300/s, each write 5 ms after its read, must conflict: {truth}");
    assert_eq!(count("conflicts"), conflicts);
    assert_eq!(ops["withdraw"]["rejected"], truth["refusals"]);
    assert_eq!(ops["deposit"]["rejected"], 0);
    assert_eq!(count("ok"), truth["successes"].as_u64().unwrap());
    assert_eq!(count("errors"), 0, "a conflict is not an error");

    // Not goodput; a rate of the answered commands; judged by its SLO.
    let commands = &result["commands"];
    assert_eq!(commands["conflicts"].as_u64(), Some(conflicts));
    let answered = commands["count"].as_u64().unwrap();
    let rate = commands["conflict_rate"].as_f64().unwrap();
    assert!((rate - conflicts as f64 / answered as f64).abs() < 1e-12, "{commands}");
    assert_eq!(result["throughput"]["achieved"].as_u64(), Some(answered - conflicts));
    let timeline: u64 = result["timeline"].as_array().unwrap().iter().filter_map(|r| r["conflicts"].as_u64()).sum();
    assert_eq!(timeline, conflicts, "the timeline's conflicts column adds up");
    let slo = result["slo"].as_array().unwrap().iter().find(|s| s["name"] == "conflict_rate").unwrap();
    assert_eq!(slo["observed"].as_f64(), Some(rate));
    assert_eq!(slo["pass"], true, "{slo}");
    // A conflict changed no balance: value accounting treats it like a refusal.
    assert_eq!(result["values"]["mismatched"], 0, "{}", result["values"]);

    let stdout = String::from_utf8_lossy(&run.get_output().stdout).to_string();
    println!("{}", stdout.lines().find(|l| l.starts_with("conflicts:")).unwrap_or_default());
    let line = format!("conflicts: {conflicts} of {answered} commands");
    assert!(stdout.contains(&line), "{stdout}");
    assert!(out.path().join("plots/conflicts.svg").exists() && out.path().join("plots/conflicts.png").exists());
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(html.contains("<th>conflicts</th>") && html.contains("Conflicts over time"), "report.html shows them");
    run.success();
}

#[test]
fn issue31_the_conflict_rate_slo_fails_above_its_threshold() {
    let app = contended_wallet::start();
    let out = tempfile::tempdir().unwrap();
    let run = bench()
        .args(["run", "--quiet", "--target", &app.url, "--out"])
        .arg(out.path())
        .args(["--set", "slo.conflict_rate=0"])
        .arg(scenario("contended-wallet.toml"))
        .assert();
    let result = result_json(out.path());
    let slo = result["slo"].as_array().unwrap().iter().find(|s| s["name"] == "conflict_rate").unwrap();
    assert!(slo["observed"].as_f64().unwrap() > 0.0, "{slo}");
    assert_eq!(slo["pass"], false, "{slo}");
    run.code(1);
}
