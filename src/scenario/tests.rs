//! Scenario loading against the shipped scenarios and the bad fixtures
//! (tests/fixtures/scenarios/bad, each error pinned by a snapshot), overrides, and
//! property tests that no input panics the loader.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn shipped_and_test_scenarios_load() {
    for path in files("scenarios").into_iter().chain(files("tests/it/scenarios")) {
        if let Err(e) = load(&path, &[]) {
            panic!("{}: {e}", path.display());
        }
    }
}

#[test]
fn bad_fixtures_fail_with_located_errors() {
    let bad = files("tests/fixtures/scenarios/bad");
    assert!(bad.len() >= 7);
    for path in bad {
        let relative = path.strip_prefix(root()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let error = load_str(&text, relative, &[]).expect_err("a bad fixture must not load");
        assert!(matches!(error, ScenarioError::Located(_)), "{}: not located: {error}", relative.display());
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        insta::assert_snapshot!(name, error.to_string());
    }
}

#[test]
fn starter_scenario_loads() {
    let scenario = load_str(&starter_scenario("demo"), Path::new("demo.toml"), &[]).unwrap();
    assert_eq!(scenario.name, "demo");
    assert!(scenario.projection.is_some() && scenario.verify.is_some());
}

#[test]
fn overrides_set_values_by_dotted_path() {
    let path = root().join("scenarios/quickstart.toml");
    let overrides = [
        "load.stages.1.rate=800".to_owned(),
        "command.1.weight=5".to_owned(),
        r#"slo.command_latency_p95="300ms""#.to_owned(),
        "target.faults.drop_every=7".to_owned(),
        "seed=9".to_owned(),
    ];
    let s = load(&path, &overrides).unwrap();
    assert_eq!(s.load.stages[1].from, 800.0);
    assert_eq!(s.operations[1].weight, 5);
    assert_eq!(s.seed, 9);
    let rule = s.slo.iter().find(|r| r.name == "command_latency_p95").unwrap();
    assert_eq!(rule.threshold, 300.0);
    let TargetKind::Embedded(config) = &s.target.kind else { panic!("embedded") };
    assert_eq!(config.faults.drop_every, Some(7));
    assert_eq!(s.recorded["load"]["stages"][1]["rate"], 800);

    for bad in ["nokey", "load.stages.9.rate=1", "nothere.x=1", "load.stages.x=1"] {
        let e = load(&path, &[bad.to_owned()]).unwrap_err();
        assert!(matches!(e, ScenarioError::Override { .. }), "{bad}: {e}");
    }
}

#[test]
fn env_values_are_interpolated_but_not_recorded() {
    let text = std::fs::read_to_string(root().join("scenarios/bank-http.toml"))
        .unwrap()
        .replace("timeout = \"2s\"", "timeout = \"2s\"\nheaders = { X-Home = \"${HOME}\" }");
    let s = load_str(&text, Path::new("x.toml"), &[]).unwrap();
    assert_eq!(s.recorded["target"]["headers"]["X-Home"], "${HOME}");
    let missing = text.replace("${HOME}", "${CQRS_BENCH_SURELY_UNSET}");
    let e = load_str(&missing, Path::new("x.toml"), &[]).unwrap_err();
    assert!(e.to_string().contains("CQRS_BENCH_SURELY_UNSET"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Arbitrary text never panics the loader.
    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        let _ = load_str(&text, Path::new("fuzz.toml"), &[]);
    }

    /// Arbitrary edits of a valid scenario never panic it (errors are fine).
    #[test]
    fn mutated_scenarios_never_panic(at in 0usize..4000, len in 0usize..20, insert in "[ -~\n]{0,12}") {
        let text = include_str!("../../scenarios/quickstart.toml");
        let at = at.min(text.len());
        let end = (at + len).min(text.len());
        if text.is_char_boundary(at) && text.is_char_boundary(end) {
            let mutated = format!("{}{}{}", &text[..at], insert, &text[end..]);
            let _ = load_str(&mutated, Path::new("fuzz.toml"), &[]);
        }
    }

    /// Arbitrary overrides never panic either.
    #[test]
    fn arbitrary_overrides_never_panic(arg in "[a-z0-9._=\"]{0,30}") {
        let text = include_str!("../../scenarios/quickstart.toml");
        let _ = load_str(text, Path::new("fuzz.toml"), &[arg]);
    }
}
