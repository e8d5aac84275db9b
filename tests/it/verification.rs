//! Verification against projectors that are not ours (issue 30): a cron projector that
//! runs every few seconds, a projector that stops for good while the API answers, a
//! command that sets a number outright. Each app counts its own truth; the harness's
//! figures must equal it, and what it cannot know it must call pending or unsure, never
//! missed or matched.

use std::path::Path;
use std::time::Duration;

use crate::apps::{journal, stock, wallet};
use crate::support::{bench, result_json, run_against, scenario, slo};
use predicates::prelude::*;

/// `[projection]` on the journal's command, appended to its scenario.
const PROJECTION: &str = r#"
[projection]
sample = 0.2
query = "get_entries"
until = "$.items[*].ref contains {{ref}}"
poll_interval = "20ms"
timeout = "6s"
"#;

/// Runs the journal scenario (with `extra` appended) against `app`: its result.json and
/// report.html.
fn run_journal(app: &crate::apps::App, extra: &str, sets: &[&str]) -> (serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.toml");
    let text = std::fs::read_to_string(scenario("journal-app.toml")).unwrap();
    std::fs::write(&path, format!("{text}{extra}")).unwrap();
    let out = dir.path().join("out");
    let _ = run_against(&app.url, &path, &out, &[&["--quiet"], sets].concat());
    (result_json(&out), std::fs::read_to_string(out.join("report.html")).unwrap())
}

/// Runs `scenario_name` (with `flags`) against a wallet app whose projector stops for good
/// after 150 updates and hangs every 23rd: the run, the app's truth, result.json.
fn run_stopping_wallet(scenario_name: &str, flags: &[&str]) -> Ran {
    let faults = wallet::Faults { stop_after: 150, hang_every: 23, hang: Duration::from_millis(2_500) };
    let dir = tempfile::tempdir().unwrap();
    run_on(&wallet::start(faults), &scenario(scenario_name), dir.path(), flags)
}

/// A finished run against one of tests/it/apps.
struct Ran {
    run: assert_cmd::assert::Assert,
    /// The app's own count, read once the run ended.
    truth: serde_json::Value,
    result: serde_json::Value,
    html: String,
}

/// Runs the scenario at `path` (with `flags`) against `app`, into `dir`/out.
fn run_on(app: &crate::apps::App, path: &Path, dir: &Path, flags: &[&str]) -> Ran {
    let out = dir.join("out");
    let run = run_against(&app.url, path, &out, flags);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    Ran { run, truth: app.truth(), result: result_json(&out), html }
}

/// `validate` accepts the scenario at `path` and warns of nothing.
fn validates_without_warnings(path: &Path) {
    bench().arg("validate").arg(path).assert().success().stderr(predicates::str::contains("warning").not());
}

#[test]
fn issue30_a_cron_projector_is_waited_for_with_and_without_projection() {
    for extra in ["", PROJECTION] {
        // Runs at 4 s and 8 s: the last second of the load waits 3 s, longer than the
        // quiet second after which verification used to call the waiting refs missed.
        let app = journal::start(Duration::from_secs(4));
        let (result, _) = run_journal(&app, extra, &[]);
        let (truth, events, verify) = (app.truth(), &result["events"], &result["verify"]);
        println!("truth {truth}\nevents {events}\nverify {verify}");
        assert_eq!(truth["projected"], truth["stored"], "the app projected everything");
        assert_eq!(events["acked"], truth["stored"]);
        assert_eq!((events["missed"].as_u64(), events["pending"].as_u64()), (Some(0), Some(0)), "{events}");
        assert_eq!(verify["stopped"], "complete", "{verify}");
        let settled = verify["settled_after_s"].as_f64().unwrap();
        assert!(settled < 10.0, "it waited for the projector, not out settle: {verify}");
        if extra.is_empty() {
            // (With `[projection]` the lag probes' own wait already covers the next run.)
            assert!(settled > 1.5, "it waited past the old quiet second: {verify}");
        }
        assert_eq!(slo(&result, "missed")["pass"], true);
    }
}

#[test]
fn issue30_settle_below_the_period_leaves_refs_pending_not_missed() {
    for extra in ["", PROJECTION] {
        // The projector's first run is 60 s away: nothing becomes visible during the run.
        let app = journal::start(Duration::from_secs(60));
        let (result, html) = run_journal(&app, extra, &["--set", "verify.settle=\"1500ms\""]);
        let (truth, events, verify) = (app.truth(), &result["events"], &result["verify"]);
        println!("truth {truth}\nevents {events}\nverify {verify}");
        assert_eq!(truth["projected"], 0);
        assert_eq!(events["acked"], truth["stored"]);
        assert_eq!(events["missed"], 0, "never missed: {events}");
        assert_eq!(events["pending"], events["acked"], "{events}");
        assert_eq!(verify["stopped"], "settle", "{verify}");
        assert!(verify["stopped_because"].as_str().unwrap().contains("refs pending"), "{verify}");
        let missed = slo(&result, "missed");
        assert_eq!((missed["observed"].as_f64(), missed["pass"].as_bool()), (Some(0.0), Some(false)), "{missed}");
        assert!(missed["unsure"].as_str().unwrap().contains("refs pending"), "{missed}");
        let examples = events["examples"].as_array().unwrap();
        assert_eq!(examples.len(), 20, "the first 20 pending refs");
        assert!(
            examples.iter().all(|x| x["class"] == "pending" && x["key"].is_string() && x["operation"] == "add_entry")
        );
        assert!(examples.iter().all(|x| html.contains(x["ref"].as_str().unwrap())), "all 20 in report.html");
    }
}

#[test]
fn issue30_a_stopped_projector_leaves_absent_rows_and_definite_mismatches() {
    let Ran { run, truth, result, .. } = run_stopping_wallet("wallet-app.toml", &["--quiet"]);
    let values = &result["values"];
    println!("truth {truth}\nvalues {values}\nverify {}", result["verify"]);
    assert_eq!(truth["applied"], 150, "the projector stopped for good");
    assert!(truth["absent_keys"].as_u64().unwrap() > 0 && truth["unsure_keys"].as_u64().unwrap() > 0);
    assert_eq!(values["absent"], truth["absent_keys"], "{values}");
    assert_eq!(values["mismatched"], truth["stale_keys"], "{values}");
    assert_eq!(values["unsure"], truth["unsure_keys"], "{values}");
    assert_eq!(values["unreadable"], 0);
    // Absent keys are listed with the mismatches, by key, with no number read.
    let listed = values["mismatches"].as_array().unwrap();
    assert_eq!(listed.len(), 20);
    let keys: Vec<&str> = listed.iter().map(|m| m["key"].as_str().unwrap()).collect();
    let index = |key: &str| key.trim_start_matches("w-").parse::<u64>().unwrap();
    assert!(keys.windows(2).all(|w| index(w[0]) < index(w[1])), "by key: {keys:?}");
    assert!(listed.iter().any(|m| m["observed"].is_null()), "absent rows are listed");
    // The definite count fails the gate; the unsure keys are named beside it.
    let judged = slo(&result, "value_mismatches");
    let definite = truth["absent_keys"].as_f64().unwrap() + truth["stale_keys"].as_f64().unwrap();
    assert_eq!(judged["observed"].as_f64(), Some(definite), "{judged}");
    assert_eq!(judged["pass"], false);
    assert!(judged["unsure"].as_str().unwrap().contains("without an answer"), "{judged}");
    let stdout = String::from_utf8_lossy(&run.get_output().stdout).to_string();
    assert!(stdout.contains("value_mismatches"), "{stdout}");
    run.code(1);
}

/// Issue 31: a history list without refs, counted per wallet and kind. The projector stops
/// for good: the rows it never wrote are `missed` by count, exactly the app's own, on the
/// wallets whose counts are sure; wallets with a hung deposit are unsure, not judged.
#[test]
fn issue31_a_stopped_projector_leaves_history_rows_missed_by_count() {
    let Ran { run, truth, result, html } = run_stopping_wallet("wallet-history.toml", &[]); // not quiet: the summary is checked
    let counts = &result["counts"];
    println!("truth {truth}\ncounts {counts}\nverify {}", result["verify"]);
    assert_eq!(truth["applied"], 150, "the projector stopped for good");
    assert!(truth["history_missed_rows"].as_u64().unwrap() > 0 && truth["history_unsure_keys"].as_u64().unwrap() > 0);
    assert_eq!(counts["missed"], truth["history_missed_rows"], "{counts}");
    assert_eq!(counts["mismatched_keys"], truth["history_wrong_keys"], "{counts}");
    assert_eq!(counts["unsure"], truth["history_unsure_keys"], "{counts}");
    assert_eq!((counts["duplicates"].as_u64(), counts["unreadable"].as_u64()), (Some(0), Some(0)), "{counts}");
    // The numbers are still judged beside the counts (the same figures as without `count`).
    assert_eq!(result["values"]["absent"], truth["absent_keys"]);
    // The first wrong kinds by key, each naming its command; rows never exceed the acks.
    let listed = counts["keys"].as_array().unwrap();
    assert_eq!(listed.len(), 20);
    let index = |m: &serde_json::Value| m["key"].as_str().unwrap().trim_start_matches("w-").parse::<u64>().unwrap();
    assert!(listed.windows(2).all(|w| index(&w[0]) <= index(&w[1])), "by key: {listed:?}");
    assert!(listed.iter().all(|m| ["deposit", "withdraw"].contains(&m["operation"].as_str().unwrap())
        && m["observed"].as_u64() < m["expected"].as_u64()));
    // The definite count fails the gate; the unsure keys are named beside it.
    let judged = slo(&result, "count_mismatches");
    assert_eq!(judged["observed"], truth["history_wrong_keys"].as_f64().unwrap(), "{judged}");
    assert_eq!(judged["pass"], false);
    assert!(judged["unsure"].as_str().unwrap().contains("row count is unknown"), "{judged}");
    assert_ne!(result["verify"]["stopped"], "complete", "wrong counts are never complete");
    let stdout = String::from_utf8_lossy(&run.get_output().stdout).to_string();
    assert!(stdout.contains("counts: ") && stdout.contains("count_mismatches"), "{stdout}");
    assert!(html.contains("Count accounting"));
    run.code(1);
}

/// The stock scenario with a cycle count that sets the quantity (`count = "=/qty"` when
/// `delta` is given), one user at a time so no command overlaps another on its key.
fn stock_with_count(dir: &std::path::Path, delta: Option<&str>) -> std::path::PathBuf {
    let text = std::fs::read_to_string(scenario("stock-app.toml")).unwrap();
    let deltas = match delta {
        Some(delta) => format!(r#"deltas = {{ restock = "/quantity", sell = "-/quantity", count = "{delta}" }}"#),
        None => r#"deltas = { restock = "/quantity", sell = "-/quantity" }"#.to_owned(),
    };
    let text = text
        .replace(r#"deltas = { restock = "/quantity", sell = "-/quantity" }"#, &deltas)
        .replace("[load]\n", "[load]\nmodel = \"closed\"\n")
        .replace("rate = 150", "rate = 1")
        .replace(
            "[[query]]\nname = \"get_item\"",
            "[[command]]\nname = \"count\"\nweight = 1\npath = \"/items/{{key}}/count\"\nbody = '{\"qty\": {{int 0 60}}}'\nexpect_status = [202]\n\n[[query]]\nname = \"get_item\"",
        );
    let path = dir.join("stock-count.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn issue30_a_command_that_sets_the_number_is_accounted_and_one_left_out_is_warned() {
    let dir = tempfile::tempdir().unwrap();
    // Without a delta for `count`, `validate` says the number would be wrong.
    let unnamed = stock_with_count(dir.path(), None);
    bench()
        .arg("validate")
        .arg(&unnamed)
        .assert()
        .success()
        .stderr(predicates::str::contains("command `count` writes keys that `get_item` reads but is not in `deltas`"));
    let named = stock_with_count(dir.path(), Some("=/qty"));
    validates_without_warnings(&named);

    // Every 7th update is lost: the keys whose read model is wrong are the app's own.
    let app = stock::start(7);
    let Ran { run, truth, result, .. } = run_on(&app, &named, dir.path(), &["--quiet"]);
    let values = &result["values"];
    println!("truth {truth}\nvalues {values}");
    assert_eq!(truth["projected"], true);
    assert!(result["operations"]["count"]["ok"].as_u64().unwrap() > 0);
    assert!(truth["wrong_keys"].as_u64().unwrap() > 0);
    assert_eq!(values["unsure"], 0, "one user: no command overlaps another");
    assert_eq!(values["mismatched"], truth["wrong_keys"], "{values}");
    assert_eq!(values["absent"], 0);
    run.code(1);
}

/// `[verify] value` of the stock app with `reserved`: two numbers by their deltas.
const RESERVED_BY_DELTAS: &str = r#"value = [
  { name = "on_hand", select = "/quantity", deltas = { restock = "/quantity", sell = "-/quantity", reserve = "none" } },
  { name = "reserved", select = "/reserved", deltas = { reserve = "/quantity", restock = "none", sell = "none" } },
]"#;

/// The stock scenario with a `reserve` command and `values` as its `[verify] value`; with
/// `one_user`, a closed model of one user (5 ms between operations), so no command
/// overlaps another on its key.
fn stock_with_reserved(dir: &std::path::Path, values: &str, one_user: bool) -> std::path::PathBuf {
    let text = std::fs::read_to_string(scenario("stock-app.toml")).unwrap();
    let reserve = r#"[[command]]
name = "reserve"
weight = 1
path = "/items/{{key}}/reserve"
body = '{"quantity": {{int 1 5}}}'
expect_status = [202]

[[query]]
name = "get_item""#;
    let mut text = text
        .replace("value = \"/quantity\"\ndeltas = { restock = \"/quantity\", sell = \"-/quantity\" }", values)
        .replacen("[[query]]\nname = \"get_item\"", reserve, 1);
    if one_user {
        let closed = "[load]\nmodel = \"closed\"\nthink_time = \"5ms\"\n";
        text = text.replace("[load]\n", closed).replace("rate = 150", "rate = 1");
    }
    assert!(text.contains("name = \"reserve\"") && text.contains("reserved"), "{text}");
    let path = dir.join("stock-reserved.toml");
    std::fs::write(&path, &text).unwrap();
    path
}

/// Issue 31, item 3: two numbers per item, `quantity` and `reserved`, checked at once.
/// The projector loses every 11th update of any kind and, on top, every 3rd reservation:
/// the harness's per-value mismatched and absent keys equal the app's own, per number.
#[test]
fn issue31_two_values_per_key_are_checked_each() {
    let dir = tempfile::tempdir().unwrap();
    let path = stock_with_reserved(dir.path(), RESERVED_BY_DELTAS, false);
    validates_without_warnings(&path);

    let app = stock::with_reserved(11, 3);
    let Ran { run, truth, result, html } = run_on(&app, &path, dir.path(), &["--quiet"]);
    let values = &result["values"];
    println!("truth {truth}\nvalues {values}");
    assert_eq!(truth["projected"], true);
    assert!(truth["lost_reserved"].as_u64().unwrap() > 0);
    let by_value = values["by_value"].as_array().expect("one entry per value");
    assert_eq!(by_value.len(), 2);
    let (on_hand, reserved) = (&by_value[0], &by_value[1]);
    assert_eq!((on_hand["name"].as_str(), reserved["name"].as_str()), (Some("on_hand"), Some("reserved")));
    assert!(truth["wrong_reserved"].as_u64().unwrap() > truth["wrong_quantity"].as_u64().unwrap(), "{truth}");
    assert_eq!(on_hand["mismatched"], truth["wrong_quantity"], "{values}");
    assert_eq!(reserved["mismatched"], truth["wrong_reserved"], "{values}");
    for one in [on_hand, reserved] {
        assert_eq!(one["absent"], truth["absent"], "{values}");
        assert_eq!(one["unsure"], 0, "one user: no command overlaps another");
    }
    // The top-level figures are the sums over the values.
    for field in ["keys_checked", "matched", "mismatched", "absent", "unsure", "unreadable"] {
        let sum = on_hand[field].as_u64().unwrap() + reserved[field].as_u64().unwrap();
        assert_eq!(values[field].as_u64(), Some(sum), "{field}: {values}");
    }
    let named = values["mismatches"].as_array().unwrap();
    assert!(named.iter().any(|m| m["value"] == "reserved"), "mismatches name their value: {values}");
    // report.html has a row per value; the SLO judges the sum.
    assert!(html.contains("<td>on_hand</td>") && html.contains("<td>reserved</td>"), "a row per value");
    let wrong = values["mismatched"].as_u64().unwrap() + values["absent"].as_u64().unwrap();
    assert_eq!(slo(&result, "value_mismatches")["observed"].as_f64(), Some(wrong as f64));
    run.code(1);
}

/// Issue 31, item 6: `validate --target` samples `[verify] count` row selectors too.
#[test]
fn issue31_validate_target_samples_count_rows() {
    let app = wallet::start(wallet::Faults { stop_after: usize::MAX, hang_every: usize::MAX, hang: Duration::ZERO });
    let out = bench()
        .args(["validate", "--target", &app.url])
        .arg(scenario("wallet-history.toml"))
        .assert()
        .success()
        .get_output()
        .clone();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    for kind in ["deposit", "withdraw"] {
        let named = format!("[verify] count rows of `{kind}` on `get_history` (GET /wallets/w-0/history)");
        assert!(stdout.contains(&named) || stderr.contains(&named), "{kind}: {stdout}\n{stderr}");
    }
}

/// Issue 31: lag probes on read models that carry nothing of the command, against the
/// wallet app (float amounts) whose projector stops for good after 150 events: every
/// deposit and withdrawal answered 200 is probed until the balance equals
/// `{{key.expected}}`, or until the history has `{{key.acked}}` rows. Late probes are the
/// app's commands never projected; those after a hung deposit on their wallet are
/// ambiguous, counted apart; refusals are not probed.
#[test]
fn issue31_lag_probes_on_a_balance_and_a_history_without_refs() {
    for (query, until) in
        [("get_wallet", "/balance == {{key.expected}}"), ("get_history", "count($[*]) >= {{key.acked}}")]
    {
        let (query, until) = (format!("projection.query=\"{query}\""), format!("projection.until=\"{until}\""));
        // One generator thread: keys in turn, two commands on a wallet half a second apart.
        let flags = ["--quiet", "--threads", "1", "--set", &query, "--set", &until];
        let Ran { truth, result, html, .. } = run_stopping_wallet("wallet-lag.toml", &flags);
        let (projection, operations) = (&result["projection"], &result["operations"]);
        println!(
            "{until}\ntruth {truth}\nprojection {projection}\nvalues {}\ncounts {}",
            result["values"], result["counts"]
        );
        assert_eq!(truth["applied"], 150, "the projector stopped for good");
        let figure = |v: &serde_json::Value| v.as_u64().unwrap();
        assert!(figure(&truth["lag_unprojected"]) > 0 && figure(&truth["lag_ambiguous"]) > 0, "{truth}");
        assert!(figure(&operations["withdraw"]["rejected"]) > 0, "some withdrawals are refused");
        // Every command answered 200 is probed or ambiguous; refusals are neither.
        let acked = figure(&operations["deposit"]["ok"]) + figure(&operations["withdraw"]["ok"]);
        assert_eq!(acked, figure(&truth["lag_acked"]));
        assert_eq!(projection["skipped"], 0);
        assert_eq!(figure(&projection["probes"]) + figure(&projection["ambiguous"]), acked, "{projection}");
        assert_eq!(projection["late"], truth["lag_unprojected"], "late = never projected: {projection}");
        assert_eq!(projection["ambiguous"], truth["lag_ambiguous"], "{projection}");
        assert!(html.contains(&format!("{} ambiguous", truth["lag_ambiguous"])), "named in report.html");
        // Verification beside it: the same truths as without probes.
        let (values, counts) = (&result["values"], &result["counts"]);
        assert_eq!(values["absent"], truth["absent_keys"], "{values}");
        assert_eq!(values["mismatched"], truth["stale_keys"], "{values}");
        assert_eq!(values["unsure"], truth["unsure_keys"], "{values}");
        assert_eq!(counts["missed"], truth["history_missed_rows"], "{counts}");
        assert_eq!(counts["mismatched_keys"], truth["history_wrong_keys"], "{counts}");
    }
}

/// Issue 31: a lag probe on one of two numbers, `{{key.expected.reserved}}`. Every
/// reservation is probed until the item's `reserved` equals the harness's expected number
/// after it. The projector stops for good after 150 updates: late probes = the app's
/// reservations never projected. One user: no reservation overlaps another command on its
/// key, so none is ambiguous. (A projector that drops single reservations is not used
/// here: a number cannot tell which command moved it, so a dropped reservation of 3 made
/// up by a later one of 3 shows the dropped one's expected number and its probe is
/// visible; see docs/src/scenario/projection.md.)
#[test]
fn issue31_lag_probe_on_one_of_two_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = stock_with_reserved(dir.path(), RESERVED_BY_DELTAS, true);
    let projection = r#"
[projection]
commands = ["reserve"]
sample = 1.0
query = "get_item"
until = "/reserved == {{key.expected.reserved}}"
poll_interval = "20ms"
timeout = "1s"
"#;
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("\n[verify]\n", &format!("{projection}\n[verify]\n"))).unwrap();
    validates_without_warnings(&path);

    let app = stock::with_reserved_stopping(150);
    let Ran { truth, result, .. } = run_on(&app, &path, dir.path(), &["--quiet"]);
    let (projection, reserve) = (&result["projection"], &result["operations"]["reserve"]);
    println!("truth {truth}\nprojection {projection}\nreserve {reserve}");
    assert!(truth["updates"].as_u64() > Some(150), "the projector stopped: {truth}");
    let figure = |v: &serde_json::Value| v.as_u64().unwrap();
    assert!(figure(&truth["reservations_unprojected"]) > 0, "{truth}");
    assert!(figure(&truth["reservations_unprojected"]) < figure(&truth["reservations"]), "{truth}");
    // Every acknowledged reservation is probed or ambiguous; nothing else is probed.
    assert_eq!(reserve["ok"], truth["reservations"]);
    assert_eq!(projection["skipped"], 0);
    assert_eq!(projection["ambiguous"], 0, "one user: {projection}");
    assert_eq!(figure(&projection["probes"]) + figure(&projection["ambiguous"]), figure(&truth["reservations"]));
    assert_eq!(projection["late"], truth["reservations_unprojected"], "late = never projected: {projection}");
}

/// Issue 31: two numbers per item compared with the write side (`write_query`, a
/// `write_value` per value): each value's mismatched and absent keys equal the app's own.
#[test]
fn issue31_two_values_compared_with_the_write_side() {
    let dir = tempfile::tempdir().unwrap();
    let values = r#"write_query = "get_item_write"
value = [
  { name = "on_hand", select = "/quantity", write_value = "/quantity" },
  { name = "reserved", select = "/reserved", write_value = "/reserved" },
]"#;
    let path = stock_with_reserved(dir.path(), values, false);
    validates_without_warnings(&path);

    let app = stock::with_reserved(11, 3);
    let Ran { run, truth, result, .. } = run_on(&app, &path, dir.path(), &["--quiet"]);
    let values = &result["values"];
    println!("truth {truth}\nvalues {values}");
    assert_eq!(truth["projected"], true);
    let by_value = values["by_value"].as_array().expect("one entry per value");
    let (on_hand, reserved) = (&by_value[0], &by_value[1]);
    assert_eq!((on_hand["name"].as_str(), reserved["name"].as_str()), (Some("on_hand"), Some("reserved")));
    assert!(truth["wrong_reserved"].as_u64().unwrap() > 0, "{truth}");
    assert_eq!(on_hand["mismatched"], truth["wrong_quantity"], "{values}");
    assert_eq!(reserved["mismatched"], truth["wrong_reserved"], "{values}");
    for one in [on_hand, reserved] {
        assert_eq!(one["absent"], truth["absent"], "{values}");
        assert_eq!((one["unsure"].as_u64(), one["unreadable"].as_u64()), (Some(0), Some(0)), "{values}");
    }
    let wrong = values["mismatched"].as_u64().unwrap() + values["absent"].as_u64().unwrap();
    assert_eq!(slo(&result, "value_mismatches")["observed"].as_f64(), Some(wrong as f64));
    run.code(1);
}
