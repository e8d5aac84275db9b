//! The JSON Schema of result.json (`cqrs-bench schema result`, issue 34), generated from
//! the result model whose field docs document the file: what a tool reading result.json
//! can rely on.
//!
//! Decisions: draft 07 like the scenario schema (one dialect for both; every validator
//! reads it). It describes what this version writes (schemars' serialize contract: a field
//! is required unless it is left out when empty). Objects stay open to more properties:
//! result.json gains fields without a `schema_version` bump (`model.rs`), and a reader
//! checking a newer file against this schema must not fail on them. The tests check a run's
//! result.json against a closed copy, so a field written but not described shows.

use schemars::{SchemaGenerator, generate::SchemaSettings};
use serde_json::Value;

use super::model::{RunResult, SCHEMA_VERSION};

/// The result.json schema as a JSON value.
pub fn json_schema() -> Value {
    let settings = SchemaSettings::draft07().for_serialize();
    let mut schema = SchemaGenerator::new(settings).into_root_schema_for::<RunResult>();
    schema.insert("title".into(), "cqrs-bench result.json".into());
    schema.insert(
        "description".into(),
        format!(
            "What one run of cqrs-bench {} writes as result.json (schema_version {SCHEMA_VERSION}). Times are \
             milliseconds unless the name says otherwise (_s: seconds); a figure that could not be measured is null \
             with a reason beside it, never 0.",
            env!("CARGO_PKG_VERSION")
        )
        .into(),
    );
    schema.to_value()
}
