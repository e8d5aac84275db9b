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
