//! Probes against read models shaped like third-party apps (issue 12), not our
//! reference bank: lists of objects with refs inside strings, ids made by the server,
//! quantities. Each app reports what it did (`GET /truth`); the figures must equal it.

use crate::apps::{stock, todo};
use crate::support::{bench, result_json, scenario};

#[test]
fn issue12_list_of_objects_with_server_ids_counts_exactly() {
    let app = todo::start(todo::Faults { duplicate_every: 9, drop_every: 13 });
    let out = tempfile::tempdir().unwrap();
    let run = bench()
        .args(["run", "--quiet", "--target", &app.url, "--out"])
        .arg(out.path())
        .arg(scenario("todo-app.toml"))
        .assert();
    let truth = app.truth();
    let result = result_json(out.path());
    let events = &result["events"];
    println!("truth {truth}\nevents {events}\nprojection {}", result["projection"]);
    assert_eq!(truth["projected"], true);
    let created = &result["operations"]["create_todo"];
    assert_eq!(created["ok"], truth["created"], "every create acknowledged");
    assert_eq!(events["acked"], truth["created"]);
    // The app's own truth: lost creates are missed, double inserts are duplicates.
    assert_eq!(events["missed"], truth["lost"]);
    assert_eq!(events["duplicates"], truth["duplicated_rows"]);
    assert!(truth["lost"].as_u64().unwrap() > 0 && truth["duplicated_rows"].as_u64().unwrap() > 0);
    assert_eq!(events["foreign"], 0);
    assert_eq!(events["unknown"], 0);
    // Finishes went to ids the server made (none unknown to it).
    let finish = &result["operations"]["finish_todo"];
    assert!(finish["ok"].as_u64().unwrap() > 0);
    assert_eq!(finish["errors"], 0, "finish_todo: {finish}");
    // Lag probes saw the created items appear: lost ones are late, the others visible.
    let projection = &result["projection"];
    let (probes, late) = (projection["probes"].as_u64().unwrap(), projection["late"].as_u64().unwrap());
    assert!(probes > 50 && late < probes / 4, "{projection}");
    assert!(projection["lag_ms"]["p50"].as_f64().unwrap() > 0.0);
    // The missed/duplicates SLOs fail: exit 1.
    run.code(1);
}

#[test]
fn issue12_quantities_checked_against_deltas_and_the_write_side() {
    let app = stock::start(17);
    for (name, extra) in [
        ("deltas", vec![]),
        (
            "write side",
            vec![
                "--set",
                "verify.deltas={}",
                "--set",
                "verify.write_query=\"get_item_write\"",
                "--set",
                "verify.write_value=\"/quantity\"",
            ],
        ),
    ] {
        let out = tempfile::tempdir().unwrap();
        let run = bench()
            .args(["run", "--quiet", "--target", &app.url, "--out"])
            .arg(out.path())
            .args(&extra)
            .arg(scenario("stock-app.toml"))
            .assert();
        let truth = app.truth();
        let values = &result_json(out.path())["values"];
        println!("{name}: truth {truth}\nvalues {values}");
        assert_eq!(truth["projected"], true);
        assert!(truth["lost"].as_u64().unwrap() > 0);
        assert_eq!(values["mismatched"], truth["wrong_keys"], "{name}");
        assert_eq!(values["unreadable"], 0, "{name}");
        assert_eq!(values["unsure"], 0, "{name}");
        assert!(values["largest_difference"].as_f64().unwrap() >= 1.0, "{name}");
        run.code(1);
    }
}
