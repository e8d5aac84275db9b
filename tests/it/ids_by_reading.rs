//! Issue 31, item 5 and 6: ids found by reading. The task app answers a create with 201,
//! an empty body and no `Location`; `resolve` finds each id in the projected list, and
//! commands on created keys act only on ids so found. The app counts its own truth.

use std::time::Duration;

use crate::apps::tasks::{self, Projector};
use crate::apps::wallet;
use crate::support::{bench, result_json, scenario};

fn run_against(app: &crate::apps::App, extra: &[&str]) -> (serde_json::Value, serde_json::Value, String) {
    let out = tempfile::tempdir().unwrap();
    let run = bench()
        .args(["run", "--target", &app.url, "--out"])
        .arg(out.path())
        .args(extra)
        .arg(scenario("task-app.toml"))
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&run.get_output().stdout).to_string();
    (result_json(out.path()), app.truth(), stdout)
}

/// Every command the harness sent on a created key reached a task the app had made.
fn assert_commands_hit_existing_ids(result: &serde_json::Value, truth: &serde_json::Value) {
    let ok = |op: &str| result["operations"][op]["ok"].as_u64().unwrap();
    let errors = |op: &str| result["operations"][op]["errors"].as_u64().unwrap();
    assert_eq!(truth["unknown_id_commands"], 0, "{truth}");
    assert_eq!(Some(ok("rename_task") + ok("finish_task")), truth["commands"].as_u64(), "{truth}");
    assert!(ok("rename_task") > 0 && ok("finish_task") > 0);
    for op in ["rename_task", "finish_task", "get_task"] {
        assert_eq!(errors(op), 0, "{op}: {}", result["operations"][op]);
    }
}

#[test]
fn issue31_ids_of_empty_201_creates_are_found_by_reading() {
    let app = tasks::start(Projector { delay: Duration::from_millis(30), stop_after: None });
    let (result, truth, stdout) = run_against(&app, &[]);
    let created = &result["created"]["create_task"];
    println!("truth {truth}\ncreated {created}");
    // Creates acknowledged = the app's creates; all projected, all resolved.
    assert_eq!(result["operations"]["create_task"]["ok"], truth["created"]);
    assert_eq!(created["to_resolve"], truth["created"]);
    assert_eq!(created["resolved"], truth["projected"]);
    assert_eq!(created["resolved"], truth["created"]);
    assert_eq!((created["unresolved"].as_u64(), created["abandoned"].as_u64()), (Some(0), Some(0)));
    assert_eq!(created["query"], "list_tasks");
    // The resolve's time is the creates' lag (measured for every create).
    assert!(created["lag_ms"]["p50"].as_f64().unwrap() > 0.0, "{created}");
    assert_eq!(created["polls"], truth["resolve_reads"]);
    assert_eq!(result["probe_load"]["resolve_polls"], truth["resolve_reads"]);
    assert_commands_hit_existing_ids(&result, &truth);
    let line = stdout.lines().find(|l| l.starts_with("ids of create_task:")).expect("a summary line");
    assert!(line.contains("resolved (lag p50"), "{line}");
}

#[test]
fn issue31_ids_never_projected_are_unresolved_and_never_used() {
    let app = tasks::start(Projector { delay: Duration::from_millis(30), stop_after: Some(40) });
    // Every create lag-probed: its probe is its id search (no second poll for it).
    let probe_creates = ["--set", "projection.commands=[\"create_task\"]", "--set", "projection.sample=1.0"];
    let (result, truth, stdout) = run_against(&app, &probe_creates);
    let created = &result["created"]["create_task"];
    let projection = &result["projection"];
    println!("truth {truth}\ncreated {created}\nprojection {projection}");
    let (made, projected) = (truth["created"].as_u64().unwrap(), truth["projected"].as_u64().unwrap());
    assert_eq!(projected, 40, "{truth}");
    assert!(made > projected + 20, "the projector stopped mid-run: {truth}");
    assert_eq!(created["to_resolve"].as_u64(), Some(made));
    assert_eq!(created["resolved"].as_u64(), Some(projected));
    assert_eq!(created["unresolved"].as_u64(), Some(made - projected), "unresolved = creates never projected");
    // The same searches are the creates' lag probes: late ones = creates never projected.
    assert_eq!(projection["probes"].as_u64(), Some(made));
    assert_eq!(projection["late"].as_u64(), Some(made - projected));
    assert_eq!(projection["polls"], 0, "the lag probe polled nothing itself");
    // Only the 40 resolved ids were used: no command reached an unknown id, and every
    // read of a created key found its task.
    assert_commands_hit_existing_ids(&result, &truth);
    let line = stdout.lines().find(|l| l.starts_with("ids of create_task:")).expect("a summary line");
    assert!(line.contains(&format!("{} unresolved after 1000 ms (never used)", made - projected)), "{line}");
}

#[test]
fn issue31_validate_write_one_checks_selectors_on_a_created_id() {
    let app = tasks::start(Projector { delay: Duration::from_millis(30), stop_after: None });
    let validate = |extra: &[&str]| {
        let out = bench()
            .args(["validate", "--target", &app.url])
            .args(extra)
            .arg(scenario("task-app.toml"))
            .assert()
            .success()
            .get_output()
            .clone();
        (String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    // Without --write-one: nothing to read a created key with, said plainly; nothing written.
    let (stdout, stderr) = validate(&[]);
    assert!(
        stderr.contains(
            "[projection] until: `get_task` was not checked: it reads a created key, and nothing was created"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("pass --write-one"), "{stderr}");
    assert!(!stdout.contains("checked"), "{stdout}");
    assert_eq!(app.truth()["created"], 0);
    // With it: one create, its id found by reading the list, the selector checked on it.
    let (stdout, stderr) = validate(&["--write-one"]);
    println!("{stdout}\n{stderr}");
    let truth = app.truth();
    assert_eq!((truth["created"].as_u64(), truth["projected"].as_u64()), (Some(1), Some(1)), "{truth}");
    assert!(stdout.contains("--write-one: sent one `create_task`"), "{stdout}");
    assert!(stdout.contains("was found by reading `list_tasks`"), "{stdout}");
    assert!(stdout.contains("checked [projection] until on `get_task` (GET /tasks/65a1f0c2"), "{stdout}");
    assert!(stdout.contains("): fits"), "{stdout}");
    assert!(!stderr.contains("was not checked"), "{stderr}");
}

/// Issue 31: the two example scenarios under scenarios/ load, and `validate --target` finds
/// every selector they name fitting against the apps they are shaped after: the wallet
/// (one deposit and one withdrawal on `wallet-0` first, so each history row selector has a
/// row to select) and the NestJS tasks (with `--write-one`: one create, its id found by
/// reading). No warning, nothing left unchecked.
#[test]
fn issue31_the_example_scenarios_validate_cleanly_against_their_apps() {
    let wallet = wallet::start(wallet::Faults { stop_after: usize::MAX, hang_every: usize::MAX, hang: Duration::ZERO });
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        for (command, amount) in [("deposit", 20.5), ("withdraw", 5.25)] {
            let url = format!("{}/wallets/wallet-0/{command}", wallet.url);
            let answer = client
                .post(url)
                .header("content-type", "application/json")
                .body(format!(r#"{{"amount": {amount}}}"#))
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 200, "{command}");
        }
        // The projector writes the rows after the answers.
        while reqwest::get(format!("{}/wallets/wallet-0/history", wallet.url)).await.unwrap().status() != 200 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    });
    let tasks = tasks::start(Projector { delay: Duration::from_millis(30), stop_after: None });
    for (app, file, extra) in
        [(&wallet, "wallet-no-refs.toml", &[][..]), (&tasks, "tasks-nest.toml", &["--write-one"][..])]
    {
        let example = crate::support::root().join("scenarios").join(file);
        let out = bench().args(["validate", "--target", &app.url]).args(extra).arg(&example).assert().success();
        let output = out.get_output();
        let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        println!("{file}\n{stdout}\n{stderr}");
        assert!(!stderr.contains("warning") && !stdout.contains("warning"), "{file}: {stdout}\n{stderr}");
        assert!(!stderr.contains("not checked") && !stdout.contains("not checked"), "{file}: {stdout}\n{stderr}");
        assert!(stdout.contains("): fits"), "{file}: {stdout}");
    }
}
