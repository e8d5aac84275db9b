//! The scenario schema against what `validate` does: every scenario it accepts validates,
//! every file serde cannot read does not, and editors' typos are caught.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::json_schema;
use crate::scenario::mutants::Mutator;
use crate::scenario::raw::RawScenario;

/// The scenario schema, compiled (and so checked against the draft-07 meta-schema).
struct Validator {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
}

impl Validator {
    fn new() -> Validator {
        let mut schemas = boon::Schemas::new();
        let mut compiler = boon::Compiler::new();
        compiler.add_resource("cqrs-bench.schema.json", json_schema()).expect("a JSON document");
        let index = compiler.compile("cqrs-bench.schema.json", &mut schemas).unwrap_or_else(|e| panic!("{e:#}"));
        Validator { schemas, index }
    }

    /// `None` when `text` (TOML) validates; else the validator's errors.
    fn errors(&self, text: &str) -> Option<String> {
        let json = toml_to_json(text).expect("TOML");
        self.schemas.validate(&json, self.index).err().map(|e| format!("{e}"))
    }
}

/// What an editor validates: the TOML document as JSON.
fn toml_to_json(text: &str) -> Option<Value> {
    let table: toml::Table = toml::from_str(text).ok()?;
    Some(serde_json::to_value(table).expect("TOML values are JSON values"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// The shipped scenarios, the integration tests' and the starter: all meant to be valid.
fn valid_scenarios() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    for dir in ["scenarios", "scenarios/variants", "tests/it/scenarios"] {
        files.extend(toml_files(&root().join(dir)));
    }
    let mut scenarios: Vec<(PathBuf, String)> =
        files.into_iter().map(|p| (p.clone(), std::fs::read_to_string(&p).expect("readable"))).collect();
    scenarios.push((PathBuf::from("starter.toml"), crate::scenario::starter_scenario("starter")));
    scenarios
}

#[test]
fn the_schema_is_a_draft_07_schema_that_closes_every_table() {
    let schema = json_schema();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    Validator::new(); // compiles: valid against the meta-schema, patterns are ECMA 262
    // Every table of the file rejects unknown keys, as serde's deny_unknown_fields does.
    let definitions = schema["definitions"].as_object().expect("definitions");
    let mut tables = vec![("(root)", &schema)];
    tables.extend(definitions.iter().map(|(name, d)| (name.as_str(), d)).filter(|(_, d)| d["type"] == "object"));
    assert!(tables.len() >= 25, "{} tables", tables.len());
    for (name, table) in tables {
        assert_eq!(table["additionalProperties"], false, "{name} is open");
    }
    // No null: TOML has none (neither a null type nor a null default).
    let compact = schema.to_string();
    assert!(!compact.contains("\"null\"") && !compact.contains(":null"), "a null is left");
}

#[test]
fn every_shipped_and_test_scenario_validates() {
    let validator = Validator::new();
    let scenarios = valid_scenarios();
    assert!(scenarios.len() >= 30, "{} scenarios", scenarios.len());
    let failures: Vec<String> = scenarios
        .iter()
        .filter_map(|(path, text)| validator.errors(text).map(|e| format!("{}: {e}", path.display())))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The typos and wrong types a user makes, each rejected, at the key it is in.
#[test]
fn a_misspelled_key_or_a_wrong_type_does_not_validate() {
    let validator = Validator::new();
    let quickstart = std::fs::read_to_string(root().join("scenarios/quickstart.toml")).unwrap();
    assert!(validator.errors(&quickstart).is_none());
    for (from, to, at) in [
        ("expect_status", "expect_staus", "/setup/0"),
        ("warmup", "warmpu", "/load"),
        ("[projection]", "[projections]", ""),
        ("weight = 3", "weight = \"3\"", "/command/0/weight"),
        ("weight = 3", "weight = -3", "/command/0/weight"),
        ("kind = \"embedded\"", "kind = \"embeded\"", "/target/kind"),
        ("model = \"open\"", "model = \"opne\"", "/load/model"),
        ("distribution = \"zipf\"", "distribution = \"zip\"", "/mix/keys/distribution"),
        ("warmup = \"3s\"", "warmup = \"3 parsecs\"", "/load/warmup"),
        ("warmup = \"3s\"", "warmup = 3", "/load/warmup"),
        ("read_write_ratio = \"4:1\"", "read_write_ratio = \"4 to 1\"", "/mix/read_write_ratio"),
        // (`comand_latency_p95` validates: `<operation>_latency_p95` may name an operation.)
        ("duplicates = 0", "duplicate = 0", "/slo"),
        ("command_latency_p95", "command_latency_95", "/slo"),
        ("command_latency_p95 = \"200ms\"", "command_latency_p95 = 200", "/slo/command_latency_p95"),
        ("duplicates = 0", "duplicates = \"none\"", "/slo/duplicates"),
        ("sample = 0.1", "sample = 10", "/projection/sample"),
        ("path = \"/accounts/{{key}}/deposit\"", "path = \"accounts/{{key}}/deposit\"", "/command/0/path"),
    ] {
        assert!(quickstart.contains(from), "quickstart has {from}");
        let broken = quickstart.replacen(from, to, 1);
        let errors = validator.errors(&broken).unwrap_or_else(|| panic!("`{to}` validates"));
        assert!(errors.contains(&format!("at '{at}")), "`{to}`: not at {at}:\n{errors}");
    }
}

/// The schema is never stricter than `validate`, and catches whatever serde catches:
/// over the shipped scenarios' mutants (typos, numbers out of range, broken durations,
/// escapes, byte flips), a mutant `load` accepts validates, and one serde cannot read
/// into `RawScenario` does not.
#[test]
fn schema_and_validate_agree_on_mutants() {
    let validator = Validator::new();
    let mutator = Mutator::new(valid_scenarios());
    let (mut accepted, mut unreadable, mut caught_more) = (0, 0, 0);
    for index in 0..3_000 {
        let (path, mutant) = mutator.mutant(34, index);
        let Ok(text) = std::str::from_utf8(&mutant.bytes) else { continue };
        if toml_to_json(text).is_none() {
            continue; // not TOML: an editor's TOML parser says so before any schema
        }
        let schema_errors = validator.errors(text);
        let loads = crate::scenario::load_str(text, path, &[]).is_ok();
        let read = toml::from_str::<RawScenario>(text).map(drop).map_err(|e| e.to_string());
        let reads = read.is_ok();
        if loads {
            accepted += 1;
            assert!(
                schema_errors.is_none(),
                "mutant {index} of {} ({:?}) loads but does not validate:\n{}\n{text}",
                path.display(),
                mutant.edits,
                schema_errors.unwrap_or_default()
            );
        }
        // JSON has one number type: `weight = 2.0` is an integer to JSON Schema (a
        // number with no fraction), a float to serde. A limit of the schema, documented.
        if read.as_ref().is_err_and(|e| e.contains("invalid type: floating point")) {
            continue;
        }
        if !reads {
            unreadable += 1;
            assert!(
                schema_errors.is_some(),
                "mutant {index} of {} ({:?}) is not a scenario to serde but validates:\n{}\n{text}",
                path.display(),
                mutant.edits,
                read.err().unwrap_or_default()
            );
        }
        if reads && !loads && schema_errors.is_some() {
            caught_more += 1; // a value the schema knows is wrong (a duration, a kind, a range)
        }
    }
    // The corpus reached both sides (figures for the notes: `--nocapture`).
    println!("mutants: {accepted} accepted by load, {unreadable} unreadable, {caught_more} more caught by the schema");
    assert!(accepted > 100 && unreadable > 100, "{accepted} accepted, {unreadable} unreadable");
}

/// The bad fixtures serde rejects (unknown keys, wrong types) are rejected by the schema too.
#[test]
fn bad_fixtures_serde_rejects_do_not_validate() {
    let validator = Validator::new();
    let mut rejected_by_serde = Vec::new();
    for path in toml_files(&root().join("tests/fixtures/scenarios/bad")) {
        let text = std::fs::read_to_string(&path).unwrap();
        if toml_to_json(&text).is_none() || toml::from_str::<RawScenario>(&text).is_ok() {
            continue;
        }
        assert!(validator.errors(&text).is_some(), "{} validates", path.display());
        rejected_by_serde.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    for name in ["misspelled-key.toml", "reject-unknown-field.toml"] {
        assert!(rejected_by_serde.iter().any(|n| n == name), "{name} among {rejected_by_serde:?}");
    }
}

/// The duration pattern accepts what humantime parses (`validate` uses it), and refuses
/// the mistakes an editor should show.
#[test]
fn the_duration_pattern_follows_humantime() {
    let pattern = regex::Regex::new(super::DURATION).unwrap();
    for good in [
        "250ms",
        "2s",
        "30s",
        "5m",
        "1h 30m",
        "1h30m",
        "1.5s",
        "0s",
        " 10 ms ",
        "2 days",
        "1w",
        "3M",
        "1µs",
        "720h",
        "${WARMUP}",
        "${N}s",
    ] {
        if !good.contains("${") {
            assert!(humantime::parse_duration(good.trim()).is_ok(), "humantime refuses {good}");
        }
        assert!(pattern.is_match(good), "the pattern refuses {good}");
    }
    for bad in ["3 parsecs", "5", "s", "fast", "", "1,5s", "-1s", "1 hour and 2 minutes"] {
        assert!(humantime::parse_duration(bad.trim()).is_err(), "humantime takes {bad}");
        assert!(!pattern.is_match(bad), "the pattern takes {bad}");
    }
}
