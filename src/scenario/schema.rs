//! The JSON Schema of a scenario file (issue 34): what `cqrs-bench schema scenario` prints
//! and what an editor (taplo / Even Better TOML, through the `#:schema` line of the starter)
//! completes and checks as the user types. It is generated from the serde mirror in
//! `raw.rs`, whose field docs become the descriptions; this module adds what the raw types
//! keep as plain strings or TOML values: durations, templates, selectors, kinds, SLO names.
//!
//! Decisions:
//! - Draft 07, not 2020-12: taplo (Even Better TOML) validates with a draft-07 validator and
//!   follows a `$ref` without reading its siblings; schemars' draft-07 settings put a
//!   field's description beside an `allOf: [{$ref}]`, the form taplo merges for hovers.
//! - No `null`: TOML has none, so an optional key is just absent (schemars would add
//!   `null` to every `Option`, and editors would offer it).
//! - The schema is never stricter than `load`: every file `validate` accepts validates
//!   (a test runs the shipped scenarios and their mutants through both). Checks that need
//!   the whole file (an operation named elsewhere, ranges that depend on the model) stay
//!   with `validate`; a schema error is a subset of what it reports.

use std::borrow::Cow;

use schemars::transform::RecursiveTransform;
use schemars::{JsonSchema, Schema, SchemaGenerator, generate::SchemaSettings, json_schema};
use serde_json::{Value, json};

use super::raw::RawScenario;

/// The file `cqrs-bench init` writes beside the starter, and its `#:schema` line names.
pub const SCHEMA_FILE: &str = "cqrs-bench.schema.json";

/// The scenario schema as a JSON value.
pub fn json_schema() -> Value {
    let mut settings = SchemaSettings::draft07();
    // First, so that `RemoveRefSiblings` sees a `$ref` freed of its `anyOf` with null.
    settings.transforms.insert(0, Box::new(RecursiveTransform(drop_null)));
    settings.transforms.push(Box::new(RecursiveTransform(integer_bounds)));
    let mut schema = SchemaGenerator::new(settings).into_root_schema_for::<RawScenario>();
    schema.insert("title".into(), "cqrs-bench scenario".into());
    schema.insert(
        "description".into(),
        format!(
            "A cqrs-bench scenario: one workload against one target (cqrs-bench {}). \
             Check a file with `cqrs-bench validate FILE.toml`: it also checks what a schema cannot \
             (names that refer to operations, ranges that depend on the load model).",
            env!("CARGO_PKG_VERSION")
        )
        .into(),
    );
    schema.to_value()
}

/// Removes `null` from every type: TOML has no null, an optional key is left out.
fn drop_null(schema: &mut Schema) {
    let Some(object) = schema.as_object_mut() else { return };
    if object.get("default").is_some_and(Value::is_null) {
        object.remove("default");
    }
    if let Some(Value::Array(types)) = object.get_mut("type") {
        types.retain(|t| t != "null");
        if let [only] = types.as_slice() {
            let only = only.clone();
            object.insert("type".into(), only);
        }
    }
    for key in ["anyOf", "oneOf"] {
        let Some(Value::Array(alternatives)) = object.get_mut(key) else { continue };
        alternatives.retain(|a| a.get("type").is_none_or(|t| t != "null"));
        if let [only] = alternatives.as_slice() {
            // `{ anyOf: [X] , description }` is X with the description.
            let Some(only) = only.as_object().cloned() else { continue };
            object.remove(key);
            for (k, v) in only {
                object.entry(k).or_insert(v);
            }
        }
    }
}

/// The largest value of a `u16`/`u32` field (schemars writes only the format): serde
/// refuses more, so the schema does too.
fn integer_bounds(schema: &mut Schema) {
    let Some(object) = schema.as_object_mut() else { return };
    let most = match object.get("format").and_then(Value::as_str) {
        Some("uint16") => u64::from(u16::MAX),
        Some("uint32") => u64::from(u32::MAX),
        _ => return,
    };
    object.entry("maximum").or_insert(most.into());
}

// ---------------------------------------------------------------- string formats

/// A string in the file, described by a pattern (ECMA 262 and Rust `regex` alike) and examples.
fn string(description: &str, pattern: Option<&str>, examples: &[&str]) -> Schema {
    let mut schema = json_schema!({ "type": "string", "description": description });
    if let Some(pattern) = pattern {
        schema.insert("pattern".into(), pattern.into());
    }
    if !examples.is_empty() {
        schema.insert("examples".into(), json!(examples));
    }
    schema
}

/// One of a few words, matched exactly by `load`.
fn one_of(description: &str, words: &[&str]) -> Schema {
    json_schema!({ "type": "string", "description": description, "enum": words })
}

/// Schema-only types: a raw field's `#[schemars(with = "…")]` names one to say what its
/// string means (the raw type keeps a `Spanned<String>` for located errors).
macro_rules! format_type {
    ($(#[doc = $doc:literal])* $name:ident => $schema:expr) => {
        format_type! { $(#[doc = $doc])* $name(_generator) => $schema }
    };
    ($(#[doc = $doc:literal])* $name:ident($generator:ident) => $schema:expr) => {
        $(#[doc = $doc])*
        pub struct $name;

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema($generator: &mut SchemaGenerator) -> Schema {
                $schema
            }
        }
    };
}

/// `${NAME}` anywhere in a string: read from the environment when the scenario loads and
/// checked then, so the schema lets such a string through. (`[\s\S]`, not `.`: any
/// character, newlines too, in both regex dialects.)
macro_rules! or_env {
    ($pattern:literal) => {
        concat!(r"^([\s\S]*\$\{[\s\S]*|", $pattern, ")$")
    };
}

/// humantime's grammar (`humantime::parse_duration`, after a trim): numbers (digits, maybe a
/// fraction), each followed by one of its units; `1h30m`, `1h 30m`, `1.5s`.
const DURATION: &str = or_env!(
    r"\s*([0-9][0-9\s]*(\.[0-9\s]*)?(nanos|nsec|ns|usec|us|µs|millis|msec|ms|seconds|second|secs|sec|s|minutes|minute|mins|min|m|hours|hour|hrs|hr|h|days|day|d|weeks|week|wks|wk|w|months|month|M|years|year|yrs|yr|y)\s*)+"
);

format_type! {
    /// `"250ms"`, `"30s"`, `"5m"`, `"1h 30m"`.
    Duration => string(
        "A duration: a number and a unit (ns, us, ms, s, m, h, d, w), several may follow each other (\"1h 30m\"); at most 30 days. `${ENV}` is read from the environment.",
        Some(DURATION),
        &["250ms", "2s", "30s", "5m"],
    )
}

format_type! {
    /// A request template.
    Template => string(
        "A template, rendered per request: {{key}} (the key drawn by [mix] keys), {{ref}} (this operation's unique ref), \
         {{int A B}}, {{float A B}}, {{choice a b c}}, {{uuid}}, {{now_ms}}, {{bytes N}} (N characters of filler), \
         {{capture.NAME}} (a value captured earlier for this key). `${ENV}` is read from the environment and never written to results.",
        None,
        &[],
    )
}

format_type! {
    /// A selector into a JSON body.
    BodySelector => string(
        "A selector into a JSON answer: a JSON pointer (\"/refs\", \"/data/0/id\") or a JSONPath (\"$.data[*].describe\"); \
         a selection that is one array stands for its items.",
        Some(r"^\s*($|[/$])"),
        &["/refs", "$.data[*].id"],
    )
}

format_type! {
    /// A capture's source in an answer.
    AnswerSelector => string(
        "Where in the answer: a JSON pointer (\"/id\"), a JSONPath (\"$.data.id\"), \"header:NAME\" (a response header) or \"status\".",
        Some(r"^\s*($|[/$]|header:|status\s*$)"),
        &["/version", "header:location", "status"],
    )
}

format_type! {
    /// A JSON pointer.
    Pointer => string("A JSON pointer (RFC 6901), e.g. \"/ref\".", Some("^/"), &["/ref"])
}

format_type! {
    /// `[projection] until`, `[staleness] until`.
    Predicate => string(
        "A predicate on the answer, polled until it holds: \"SELECTOR contains VALUE\", \"SELECTOR matches REGEX\", \
         \"SELECTOR OP VALUE\" (OP: ==, !=, >, >=, <, <=) or \"count(SELECTOR) OP N\". SELECTOR is a JSON pointer or a JSONPath; \
         VALUE is a template ({{ref}}, {{capture.NAME}}, and in [projection] until also {{key.acked}}, {{key.expected}}, {{body./pointer}}).",
        Some(r"^\s*count\(|\s(contains|matches|==|!=|>=|<=|>|<)\s"),
        &["/refs contains {{ref}}", "/version >= {{capture.version}}"],
    )
}

format_type! {
    /// `[verify] deltas` values.
    Delta => string(
        "What the command adds to the number: a JSON pointer into its request body (\"/amount\"); \"-/amount\" subtracts it, \
         \"=/amount\" sets the number to it; \"none\": the command does not change it.",
        Some(r"^\s*(none\s*|[-=]?/[\s\S]*)$"),
        &["/amount", "-/amount", "none"],
    )
}

format_type! {
    /// `[verify] count` rows.
    RowSelector => string(
        "The command's rows in the answer, e.g. \"$[?@.operation=='CREDIT']\"; \"none\": the command writes no row.",
        Some(r"^(none$|\s*($|[/$]))"),
        &["$[?@.operation=='CREDIT']", "none"],
    )
}

format_type! {
    /// `[mix] read_write_ratio`.
    Ratio => string(
        "Queries to commands, by operation count: \"READS:WRITES\" in whole numbers.",
        Some(r"^\s*\+?[0-9]+\s*:\s*\+?[0-9]+\s*$"),
        &["4:1", "1:1"],
    )
}

format_type! {
    /// An HTTP method.
    Method => string(
        "An HTTP method (any case).",
        Some(r"^\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+\s*$"),
        &["GET", "POST", "PUT", "PATCH", "DELETE"],
    )
}

format_type! {
    /// `[[action]] http`.
    HttpAction => string(
        "An HTTP request to the target: \"METHOD /path\".",
        Some(or_env!(r"\s*\S+ +\s*/[\s\S]*")),
        &["POST /admin/pause"],
    )
}

format_type! {
    /// A URL of the system under test.
    HttpUrl => string(
        "An http:// or https:// URL. `${ENV}` is read from the environment.",
        Some(or_env!(r"https?://[\s\S]*")),
        &["http://127.0.0.1:3030"],
    )
}

format_type! {
    /// `[capacity] scale`.
    ScaleCommand => string(
        "A shell command that sets the projector count, with {{projectors}} where the count goes; \
         run through `sh -c`, `${ENV}` passed as a variable, never pasted.",
        Some(r"\{\{projectors\}\}"),
        &["kubectl scale deploy/projector --replicas={{projectors}}"],
    )
}

format_type! {
    /// `[target] max_body`.
    ByteSize => json_schema!({
        "description": "A byte count, or a size: \"64KiB\", \"1MiB\", \"2MB\" (KiB/MiB/GiB are powers of 1024, KB/MB/GB of 1000); 1 byte to 1 GiB.",
        "anyOf": [
            { "type": "integer", "minimum": 1, "maximum": 1_073_741_824u64 },
            { "type": "string", "pattern": r"^\s*[0-9.]+\s*([bB]|[kKmMgG][iI]?[bB])?\s*$" },
        ],
        "examples": ["1MiB", "64KiB"],
    })
}

format_type! {
    /// `[saturate] precision`, `[capacity] headroom`.
    FractionOrPercent => json_schema!({
        "description": "A fraction (0.05) or a percentage (\"5%\").",
        "anyOf": [
            { "type": "number", "minimum": 0 },
            { "type": "string", "pattern": r"%\s*$" },
        ],
    })
}

format_type! {
    /// `capture = { NAME = … }` values.
    Capture(generator) => json_schema!({
        "description": "A value of the answer kept for this key, read later as {{capture.NAME}}: a selector (\"/version\", \
                        \"$.data.id\", \"header:location\", \"status\"), or { from = SELECTOR, regex = \"…(…)…\" } for the \
                        first group of a regular expression.",
        "anyOf": [
            generator.subschema_for::<AnswerSelector>(),
            {
                "type": "object",
                "properties": {
                    "from": generator.subschema_for::<AnswerSelector>(),
                    "regex": { "type": "string", "description": "A regular expression; its first group is the value." },
                },
                "required": ["from"],
                "additionalProperties": false,
            },
        ],
    })
}

// Kinds: `load` matches these words exactly. A new kind goes here too (the shipped and
// test scenarios validate against this schema in `tests`, so a forgotten one shows).

format_type! {
    /// `[target] kind`.
    TargetKind => one_of("\"embedded\": the reference CQRS system in this process; \"http\": a system at base_url.", &["embedded", "http"])
}

format_type! {
    /// `[target] variant`.
    EmbeddedVariant => one_of("The embedded reference system's variant.", &["memory"])
}

format_type! {
    /// `[load] model`.
    LoadModel => one_of(
        "\"open\": operations arrive at the stages' rates whatever the answers (latency from the intended start); \
         \"closed\": the stages' rates are user counts, each user sends its next operation when the last one answered.",
        &["open", "closed"],
    )
}

format_type! {
    /// `[mix] keys.distribution`.
    Distribution => one_of(
        "How keys are drawn: uniform, zipf (with exponent), hotspot (hot_fraction of the keys get hot_traffic of the operations), \
         sequential, latest (recently written keys).",
        &["uniform", "zipf", "hotspot", "sequential", "latest"],
    )
}

format_type! {
    /// An operation's `keys`.
    KeySource => one_of(
        "\"mix\": {{key}} is drawn from [mix] keys; \"created\": {{key}} is an id captured by a `creates_key` command.",
        &["mix", "created"],
    )
}

format_type! {
    /// `[bus] kind`.
    BusKind => one_of("The event bus.", &["kafka"])
}

format_type! {
    /// `[[backlog]] kind`.
    BacklogKind => one_of(
        "\"redis-streams\": entries of `stream` not yet delivered to or acknowledged by `group`; \"sql\": the `head` query's \
         position minus the `checkpoint` query's (PostgreSQL, MySQL/MariaDB); \"nats\": a JetStream durable `consumer`'s \
         pending and unacknowledged messages; \"rabbitmq\": `queue`'s ready and unacknowledged messages.",
        &["redis-streams", "sql", "nats", "rabbitmq"],
    )
}

format_type! {
    /// `[verify] absent`.
    AbsentRows => one_of(
        "A key without a row in the read model: \"absent\" (wrong: counted absent) or \"zero\" (its number is 0).",
        &["absent", "zero"],
    )
}

// ---------------------------------------------------------------- [slo]

/// Percentiles of SLO names: `p50`, `p95`, `p99`, `p999`, `p99.9`.
const PERCENTILE: &str = r"p[0-9.]+";

format_type! {
    /// `[slo]`: fixed names with their meaning, and the families (`<operation>_latency_pNN`, …).
    SloTable(generator) => {
        let mut duration = |what: &str| {
            let mut schema = generator.subschema_for::<Duration>();
            schema.insert("description".into(), what.into());
            schema
        };
        let count = |what: &str| json!({ "type": "number", "minimum": 0, "description": what });
        let rate = |what: &str| json!({ "type": "number", "minimum": 0, "maximum": 1, "description": what });
        json_schema!({
            "description": "Service-level objectives judged on the measured window (after warmup): the run fails (exit 1) when one \
                            is not met, or has no data to judge. Times are durations (\"200ms\"), counts and rates numbers \
                            (a rate is a fraction: 0.001 is 0.1 %).",
            "type": "object",
            "properties": {
                "duplicates": count("Most events applied more than once ([verify])."),
                "missed": count("Most acknowledged commands whose event never reached the read model ([verify])."),
                "unexpected": count("Most refs in the read model that no acknowledged command sent ([verify])."),
                "value_mismatches": count("Most keys whose number differs from what the commands imply ([verify] value)."),
                "count_mismatches": count("Most keys whose rows differ from their acknowledged commands ([verify] count)."),
                "max_dropped": count("Most operations dropped because max_in_flight and max_backlog were full."),
                "min_throughput": count("Least goodput in operations/s over the measured window (ok + refused)."),
                "consumer_lag_max": count("Most messages a consumer group was behind ([bus])."),
                "backlog_max": count("Most entries a [[backlog]] source was behind."),
                "backlog_drain": duration("Longest time a [[backlog]] source took to drain after the load."),
                "command_error_rate": rate("Most command errors / commands."),
                "query_error_rate": rate("Most query errors / queries."),
                "conflict_rate": rate("Most optimistic-concurrency conflicts / answered commands."),
                "late_ratio": rate("Most projection probes not visible within [projection] timeout / probes."),
                "stale_read_rate": rate("Most stale reads / judged reads of the traffic ([staleness] traffic)."),
            },
            "patternProperties": {
                format!("^command_latency_{PERCENTILE}$"):
                    duration("Latency of all commands at a percentile (p50, p90, p95, p99, p999 or p99.9)."),
                format!("^query_latency_{PERCENTILE}$"): duration("Latency of all queries at a percentile."),
                format!("^projection_lag_{PERCENTILE}$"):
                    duration("Projection lag (acknowledgement → visible in the read model) at a percentile."),
                format!("^bus_e2e_{PERCENTILE}$"): duration("Acknowledgement → event on the bus at a percentile ([bus])."),
                format!("^.+_latency_{PERCENTILE}$"): duration("Latency of one operation (its name first) at a percentile."),
                "^stale_read_p_at_.+$":
                    rate("Most P(stale) of a read made this long after the acknowledgement (one of [staleness] delays)."),
            },
            "additionalProperties": false,
        })
    }
}

#[cfg(test)]
mod tests;
