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

/// Issue 30: the per-operation counts leave the warmup out, event accounting does not;
/// result.json holds the warmup's own counts, so the two reconcile exactly, and the
/// summary says so.
#[test]
fn issue30_warmup_and_load_counts_add_up_to_the_acknowledged_events() {
    let app = todo::start(todo::Faults { duplicate_every: 1_000_000, drop_every: 1_000_000 });
    let out = tempfile::tempdir().unwrap();
    let run = bench()
        .args(["run", "--duration", "3s", "--set", "load.warmup=\"1s\"", "--target", &app.url, "--out"])
        .arg(out.path())
        .arg(scenario("todo-app.toml"))
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&run.get_output().stdout).to_string();
    let truth = app.truth();
    let result = result_json(out.path());
    let ok = |ops: &serde_json::Value| ops["create_todo"]["ok"].as_u64().unwrap();
    let (warmup, load) = (ok(&result["warmup"]["operations"]), ok(&result["operations"]));
    assert!(warmup > 0 && load > 0, "{warmup} + {load}");
    assert_eq!(Some(warmup + load), result["events"]["acked"].as_u64(), "{}", result["events"]);
    assert_eq!(Some(warmup + load), truth["created"].as_u64(), "the app's own count: {truth}");
    assert!(stdout.contains(&format!("events cover warmup + load: {warmup} + {load} ok commands")), "{stdout}");
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

#[test]
fn issue12_selectors_that_do_not_fit_the_answers_are_called_out() {
    // `validate --target` reads one answer of the verify query and explains the misfit.
    let app = stock::start(1_000);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let url = format!("{}/items/sku-0/restock", app.url);
        reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .body(r#"{"quantity": 3}"#)
            .send()
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    });
    bench()
        .args(["validate", "--target", &app.url, "--set", "verify.value=\"/qty\""])
        .arg(scenario("stock-app.toml"))
        .assert()
        .success()
        .stderr(predicates::str::contains("`/qty` selects nothing in an object with fields `quantity`, `sku`"));

    // `run`: a predicate that compares whole objects is late on every probe; the run says why.
    let todo = todo::start(todo::Faults { duplicate_every: 1_000, drop_every: 1_000 });
    let out = tempfile::tempdir().unwrap();
    let assert = bench()
        .args(["run", "--quiet", "--duration", "1s", "--target", &todo.url, "--out"])
        .arg(out.path())
        .args(["--set", "projection.until=\"$.data == {{ref}}\"", "--set", "projection.timeout=\"500ms\""])
        .arg(scenario("todo-app.toml"))
        .assert();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    assert!(stderr.contains("`$.data` selects 1 object(s) with fields"), "{stderr}");
    let warnings = result_json(out.path())["warnings"].clone();
    assert!(warnings.to_string().contains("may never hold on `get_todo`"), "{warnings}");
}

#[test]
#[allow(clippy::disallowed_methods)] // std::thread::sleep: a plain test thread, not a runtime worker
fn issue16_a_killed_target_leaves_events_unknown_not_missed() {
    let served = crate::support::Served::start(&[]);
    let out = tempfile::tempdir().unwrap();
    let run = std::process::Command::new(crate::support::BIN)
        .current_dir(crate::support::root())
        .args(["run", "--quiet", "--duration", "3s", "--set", "verify.settle=\"2s\"", "--set", "load.warmup=\"1s\""])
        .args(["--target", &served.url, "--out"])
        .arg(out.path())
        .arg(crate::support::root().join("scenarios/bank-http.toml"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Setup (1,000 keys at 5,000/s) and part of the load, then the target dies (SIGKILL).
    std::thread::sleep(std::time::Duration::from_millis(2_000));
    drop(served);
    let output = run.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let result = result_json(out.path());
    let events = &result["events"];
    println!("{events}\n{stdout}");
    assert!(events["acked"].as_u64().unwrap() > 0);
    assert_eq!(events["read_errors"], events["keys_checked"], "every read failed");
    assert_eq!(events["missed"], 0, "nothing can be called missed");
    assert_eq!(events["unknown"], events["acked"]);
    let missed = result["slo"].as_array().unwrap().iter().find(|s| s["name"] == "missed").expect("missed SLO").clone();
    assert_eq!(missed["pass"], false);
    // Issue 30: the definite count (none could be judged) with what could not be verified.
    assert_eq!(missed["observed"], 0.0, "{missed}");
    assert!(missed["unsure"].as_str().unwrap().starts_with("could not verify"), "{missed}");
    assert_ne!(output.status.code(), Some(0));
}
