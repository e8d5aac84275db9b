//! Command-line behaviour: validate, init, exit codes for bad input.

use predicates::prelude::*;

use crate::support::{bench, root};

#[test]
fn validate_accepts_the_shipped_scenarios() {
    bench()
        .args(["validate", "scenarios/quickstart.toml", "scenarios/bank-http.toml", "scenarios/tasks-nest.toml"])
        .assert()
        .success()
        .stdout(predicate::str::contains("quickstart.toml: ok"))
        .stdout(predicate::str::contains("tasks-nest.toml: ok"));
}

#[test]
fn validate_names_file_line_and_column_of_a_misspelled_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.toml");
    let text = std::fs::read_to_string(root().join("scenarios/quickstart.toml")).unwrap();
    let broken = text.replacen("warmup", "warmpu", 1);
    let line = broken.lines().position(|l| l.contains("warmpu")).unwrap() + 1;
    std::fs::write(&path, broken).unwrap();
    bench()
        .args(["validate"])
        .arg(&path)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!("typo.toml:{line}:1")))
        .stderr(predicate::str::contains("warmpu"));
}

#[test]
fn bad_duration_and_template_exit_2_with_location() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("scenarios/quickstart.toml")).unwrap();
    for (name, from, to) in [
        ("duration.toml", r#"warmup = "3s""#, r#"warmup = "3 parsecs""#),
        ("template.toml", "{{int 1 100}}", "{{int 1}}"),
    ] {
        let path = dir.path().join(name);
        assert!(text.contains(from), "quickstart has {from}");
        let broken = text.replacen(from, to, 1);
        let line = broken.lines().position(|l| l.contains(to)).unwrap() + 1;
        std::fs::write(&path, broken).unwrap();
        bench().arg("validate").arg(&path).assert().code(2).stderr(predicate::str::contains(format!("{name}:{line}:")));
    }
}

#[test]
fn run_with_a_missing_scenario_exits_2() {
    bench().args(["run", "no/such/file.toml"]).assert().code(2).stderr(predicate::str::contains("no/such/file.toml"));
}

#[test]
fn unreachable_target_exits_3_quickly() {
    let dir = tempfile::tempdir().unwrap();
    // Port 9 (discard) on loopback: nothing listens there.
    bench()
        .args(["run", "scenarios/bank-http.toml", "--quiet", "--target", "http://127.0.0.1:9", "--out"])
        .arg(dir.path())
        .timeout(std::time::Duration::from_secs(30))
        .assert()
        .code(3)
        .stderr(predicate::str::contains("unreachable"));
}

#[test]
fn init_writes_a_scenario_that_validates() {
    let dir = tempfile::tempdir().unwrap();
    bench().current_dir(dir.path()).args(["init", "starter"]).assert().success();
    bench().current_dir(dir.path()).args(["validate", "starter.toml"]).assert().success();
    bench().current_dir(dir.path()).args(["init", "starter"]).assert().code(2);
}

/// Issue 34 item 4: the harness alone serves `memory`; without `cqrs-bench-reference` beside
/// it or on PATH, `target serve` of another variant says exactly what to install (exit 3),
/// after the flags it can check itself (exit 2).
#[test]
fn target_serve_of_a_services_variant_without_the_reference_binary_says_what_to_install() {
    let alone = tempfile::tempdir().unwrap();
    let bin = alone.path().join("cqrs-bench");
    std::fs::copy(crate::support::BIN, &bin).unwrap();
    let run = |args: &[&str]| {
        let mut cmd = assert_cmd::Command::new(&bin);
        cmd.args(args).env("PATH", alone.path());
        cmd.assert()
    };
    run(&["target", "serve", "--variant", "pg-sync", "--listen", "127.0.0.1:0"])
        .code(3)
        .stderr(predicate::str::contains("the pg-sync variant is served by `cqrs-bench-reference`"))
        .stderr(predicate::str::contains(format!("found neither beside {} nor on PATH", bin.display())))
        .stderr(predicate::str::contains("cargo install --locked --path crates/reference"));
    run(&["target", "replay"]).code(3).stderr(predicate::str::contains("the event-sourced variant is served by"));
    // Flags the harness checks itself still come first.
    run(&["target", "serve", "--variant", "pg-sync", "--bus", "redis-streams"])
        .code(2)
        .stderr(predicate::str::contains("--bus is the outbox variant's"));
    run(&["target", "serve", "--variant", "nope"]).code(2).stderr(predicate::str::contains("unknown variant `nope`"));
}

/// With `cqrs-bench-reference` beside it (as `cargo build` and `cargo test` leave it), the
/// harness hands the variant over with its arguments as typed: the reference binary's own
/// check answers.
#[test]
fn target_serve_hands_a_services_variant_to_the_reference_binary_with_its_arguments() {
    bench()
        .args(["target", "serve", "--variant", "pg-sync", "--schema", "Not-A-Name", "--listen", "127.0.0.1:0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--schema `Not-A-Name`: use lowercase letters, digits and _"));
}
