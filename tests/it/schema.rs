//! `cqrs-bench schema scenario|result` (issue 34): both print JSON Schema documents, the
//! starter `init` writes names the scenario one, and result.json of a real run validates.
//! `support::result_json` checks every run of this suite against the result schema too.

use std::path::Path;
use std::sync::OnceLock;

use predicates::prelude::*;
use serde_json::Value;

use crate::support::bench;

/// A compiled schema: compiling checks it against its meta-schema (draft 07).
pub struct Validator {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
}

impl Validator {
    pub fn new(schema: Value) -> Validator {
        let mut schemas = boon::Schemas::new();
        let mut compiler = boon::Compiler::new();
        compiler.add_resource("schema.json", schema).expect("a JSON document");
        let index =
            compiler.compile("schema.json", &mut schemas).unwrap_or_else(|e| panic!("not a JSON Schema: {e:#}"));
        Validator { schemas, index }
    }

    /// `None` when `instance` validates; else every error, with where it is.
    pub fn errors(&self, instance: &Value) -> Option<String> {
        self.schemas.validate(instance, self.index).err().map(|e| format!("{e}"))
    }
}

/// The result schema with every object closed: a field written but not described fails.
/// (The schema itself leaves objects open: newer files may have more fields.)
fn closed(mut schema: Value) -> Value {
    fn close(value: &mut Value) {
        match value {
            Value::Object(object) => {
                if object.contains_key("properties") && !object.contains_key("additionalProperties") {
                    object.insert("additionalProperties".into(), false.into());
                }
                object.values_mut().for_each(close);
            }
            Value::Array(items) => items.iter_mut().for_each(close),
            _ => {}
        }
    }
    close(&mut schema);
    schema
}

/// Panics, naming `what`, unless `result` validates against the closed result schema.
pub fn assert_valid_result(result: &Value, what: &Path) {
    static CLOSED: OnceLock<Validator> = OnceLock::new();
    let validator = CLOSED.get_or_init(|| Validator::new(closed(cqrs_bench::results::schema::json_schema())));
    if let Some(errors) = validator.errors(result) {
        panic!("{}: result.json does not fit `cqrs-bench schema result`:\n{errors}", what.display());
    }
}

fn printed_schema(of: &str) -> Value {
    let output = bench().args(["schema", of]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

#[test]
fn schema_prints_a_json_schema_of_scenarios_and_of_results() {
    for (of, title) in [("scenario", "cqrs-bench scenario"), ("result", "cqrs-bench result.json")] {
        let schema = printed_schema(of);
        assert_eq!(schema["title"], title);
        assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
        Validator::new(schema);
    }
    bench().args(["schema", "report"]).assert().code(2).stderr(predicate::str::contains("scenario, result"));
}

#[test]
fn result_json_of_a_quickstart_run_validates() {
    let dir = tempfile::tempdir().unwrap();
    bench()
        .args(["run", "scenarios/quickstart.toml", "--quiet", "--duration", "5s", "--out"])
        .arg(dir.path())
        .timeout(std::time::Duration::from_secs(90))
        .assert()
        .code(predicate::in_iter([0, 1]));
    let text = std::fs::read_to_string(dir.path().join("result.json")).unwrap();
    let result: Value = serde_json::from_str(&text).unwrap();
    // The sections the quickstart fills are there to be checked.
    for section in ["operations", "projection", "events", "verify", "timeline", "slo"] {
        assert!(!result[section].is_null(), "no {section}");
    }
    let printed = Validator::new(printed_schema("result"));
    assert_eq!(printed.errors(&result), None);
    assert_valid_result(&result, dir.path());
    // A field of the wrong type, or one the schema does not know, does not validate.
    let mut wrong = result.clone();
    wrong["throughput"]["achieved"] = "many".into();
    assert!(printed.errors(&wrong).is_some_and(|e| e.contains("/throughput/achieved")));
    let mut unknown = result.clone();
    unknown["throughput"]["achieved_ops"] = 1.into();
    assert!(std::panic::catch_unwind(|| assert_valid_result(&unknown, dir.path())).is_err());
}

#[test]
fn init_writes_the_schema_its_starter_names() {
    let dir = tempfile::tempdir().unwrap();
    let init = |name: &str| {
        let mut cmd = assert_cmd::Command::new(crate::support::BIN);
        cmd.current_dir(dir.path()).args(["init", name]);
        cmd
    };
    init("starter").assert().success().stdout(predicate::str::contains("wrote cqrs-bench.schema.json"));
    let starter = std::fs::read_to_string(dir.path().join("starter.toml")).unwrap();
    assert_eq!(starter.lines().next(), Some("#:schema ./cqrs-bench.schema.json"));
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("cqrs-bench.schema.json")).unwrap()).unwrap();
    assert_eq!(written, printed_schema("scenario"), "init writes what `schema scenario` prints");
    let table: toml::Table = toml::from_str(&starter).unwrap();
    assert_eq!(Validator::new(written).errors(&serde_json::to_value(table).unwrap()), None);
    // A second scenario beside it keeps the schema file (it may be the user's).
    std::fs::write(dir.path().join("cqrs-bench.schema.json"), "{}").unwrap();
    init("second").assert().success().stdout(predicate::str::contains("kept cqrs-bench.schema.json"));
    assert_eq!(std::fs::read_to_string(dir.path().join("cqrs-bench.schema.json")).unwrap(), "{}");
    init("second").arg("--force").assert().success().stdout(predicate::str::contains("wrote cqrs-bench.schema.json"));
}
