//! The serde mirror of a scenario file (PRODUCT §4). Unknown keys are errors
//! everywhere; values that are checked after parsing keep their span (`Spanned`) so
//! the check can point at them.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    pub name: S<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub seed: Option<u64>,
    pub target: RawTarget,
    pub load: RawLoad,
    /// Optional (issue 31): a scenario whose operations draw no key needs no `[mix]`.
    #[serde(default)]
    pub mix: RawMix,
    #[serde(default)]
    pub setup: Vec<RawSetup>,
    #[serde(default)]
    pub command: Vec<RawOperation>,
    #[serde(default)]
    pub query: Vec<RawOperation>,
    pub projection: Option<S<RawProjection>>,
    pub verify: Option<S<RawVerify>>,
    pub bus: Option<S<RawBus>>,
    /// `[[backlog]]`: event backlog sources (issue 33).
    #[serde(default)]
    pub backlog: Vec<S<RawBacklog>>,
    #[serde(default)]
    pub action: Vec<RawAction>,
    #[serde(default)]
    pub slo: BTreeMap<S<String>, S<toml::Value>>,
    pub staleness: Option<S<RawStaleness>>,
    pub saturate: Option<S<RawSaturate>>,
    pub capacity: Option<S<RawCapacity>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStaleness {
    pub commands: Option<Vec<S<String>>>,
    pub sample: Option<S<f64>>,
    pub query: Option<S<String>>,
    pub until: Option<S<String>>,
    pub delays: Option<S<Vec<S<String>>>>,
    pub traffic: Option<S<Vec<S<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSaturate {
    pub start_rate: Option<S<f64>>,
    pub max_rate: Option<S<f64>>,
    pub min_rate: Option<S<f64>>,
    pub step: Option<S<String>>,
    pub warmup: Option<S<String>>,
    pub growth: Option<S<f64>>,
    /// A fraction (0.05) or a percentage ("5%").
    pub precision: Option<S<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCapacity {
    pub projectors: Option<S<Vec<i64>>>,
    pub scale: Option<S<String>>,
    pub serve: Option<S<String>>,
    pub ready_timeout: Option<S<String>>,
    pub settle: Option<S<String>>,
    /// A fraction (0.2) or a percentage ("20%").
    pub headroom: Option<S<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub kind: S<String>,
    pub base_url: Option<S<String>>,
    pub timeout: Option<S<String>>,
    /// Response bytes kept per answer: a byte count or a size string ("1MiB").
    pub max_body: Option<S<toml::Value>>,
    #[serde(default)]
    pub headers: BTreeMap<String, S<String>>,
    // embedded
    pub variant: Option<S<String>>,
    pub projectors: Option<S<u64>>,
    pub projector_cost: Option<S<String>>,
    pub projector_contention: Option<S<String>>,
    pub faults: Option<S<RawFaults>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFaults {
    pub projection_delay: Option<S<String>>,
    pub projection_jitter: Option<S<String>>,
    pub drop_every: Option<S<u64>>,
    pub duplicate_every: Option<S<u64>>,
    pub reorder_window: Option<S<u64>>,
    pub pause_projector: Option<RawWindow>,
    pub crash_projector_at: Option<S<String>>,
    pub checkpoint_every: Option<S<u64>>,
    pub idempotent: Option<bool>,
    pub slow_commands: Option<RawSlow>,
    pub fail_every: Option<S<u64>>,
    pub stall: Option<RawWindow>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    pub at: S<String>,
    #[serde(rename = "for")]
    pub duration: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSlow {
    pub every: S<u64>,
    pub delay: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLoad {
    pub model: Option<S<String>>,
    pub max_in_flight: Option<S<u64>>,
    pub max_backlog: Option<S<u64>>,
    pub think_time: Option<S<String>>,
    pub warmup: Option<S<String>>,
    pub stages: S<Vec<S<RawStage>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStage {
    pub duration: S<String>,
    pub rate: Option<f64>,
    pub from: Option<f64>,
    pub to: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMix {
    pub read_write_ratio: Option<S<String>>,
    pub keys: Option<S<RawKeys>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeys {
    pub count: S<u64>,
    pub distribution: Option<S<String>>,
    pub exponent: Option<f64>,
    pub hot_fraction: Option<f64>,
    pub hot_traffic: Option<f64>,
    #[serde(default)]
    pub prefix: String,
}

/// The request part shared by `[[setup]]`, `[[command]]` and `[[query]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSetup {
    pub method: Option<S<String>>,
    pub path: S<String>,
    pub body: Option<S<String>>,
    #[serde(default)]
    pub headers: BTreeMap<String, S<String>>,
    #[serde(default)]
    pub expect_status: Vec<u16>,
    #[serde(default)]
    pub reject_status: Vec<u16>,
    #[serde(default)]
    pub capture: BTreeMap<String, S<toml::Value>>,
    pub rate: Option<S<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOperation {
    pub name: S<String>,
    pub weight: Option<S<u32>>,
    pub method: Option<S<String>>,
    pub path: Option<S<String>>,
    /// A command produced to Kafka instead of sent over HTTP.
    pub kafka: Option<S<RawKafkaCommand>>,
    pub body: Option<S<String>>,
    #[serde(default)]
    pub headers: BTreeMap<String, S<String>>,
    #[serde(default)]
    pub expect_status: Vec<u16>,
    #[serde(default)]
    pub reject_status: Vec<u16>,
    /// `{ status = [...], body = "regex" }`: a business refusal told by status and body.
    pub reject: Option<S<RawAnswerRule>>,
    /// `{ status = [...], body = "regex" }`: an optimistic-concurrency conflict.
    pub conflict: Option<S<RawAnswerRule>>,
    #[serde(default)]
    pub capture: BTreeMap<String, S<toml::Value>>,
    /// `"created"`: `{{key}}` is an id captured by a `creates_key` operation.
    pub keys: Option<S<String>>,
    /// The name of a capture that is a new entity's id.
    pub creates_key: Option<S<String>>,
    /// `{ query, select }`: find the created id by reading (a create that answers no id).
    pub resolve: Option<S<RawResolve>>,
}

/// `resolve = { query = "...", select = "..." }` on a `creates_key` command (issue 31).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResolve {
    pub query: S<String>,
    pub select: S<String>,
}

/// `reject = { ... }` / `conflict = { ... }` on an operation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnswerRule {
    pub status: Vec<u16>,
    pub body: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProjection {
    pub commands: Option<Vec<S<String>>>,
    pub sample: Option<S<f64>>,
    pub query: S<String>,
    pub until: S<String>,
    pub poll_interval: Option<S<String>>,
    pub timeout: Option<S<String>>,
    pub stages: Option<S<RawStages>>,
}

/// `[projection.stages]`: where the read model tells its own times (lag attribution).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStages {
    pub received_at: Option<S<String>>,
    pub applied_at: Option<S<String>>,
    pub event_ref: Option<S<String>>,
    pub group: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVerify {
    pub commands: Option<Vec<S<String>>>,
    pub settle: Option<S<String>>,
    pub query: S<String>,
    pub applied_refs: Option<S<String>>,
    pub value: Option<S<RawValues>>,
    #[serde(default)]
    pub deltas: BTreeMap<String, S<String>>,
    pub initial: Option<S<f64>>,
    pub absent: Option<S<String>>,
    pub write_query: Option<S<String>>,
    pub write_value: Option<S<String>>,
    pub page: Option<S<RawPage>>,
    pub count: Option<S<RawCount>>,
}

/// `[verify] value`: one selector (`"/quantity"`, with `deltas`, `initial` and
/// `write_value` beside it), or an array of values, each with its own (issue 31).
#[derive(Debug)]
pub enum RawValues {
    One(String),
    Many(Vec<RawValue>),
}

/// One of several `[verify] value`s: `{ name = "on_hand", select = "/qty_on_hand", deltas = {…} }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawValue {
    pub name: Option<S<String>>,
    pub select: S<String>,
    #[serde(default)]
    pub deltas: BTreeMap<String, S<String>>,
    pub initial: Option<S<f64>>,
    pub write_value: Option<S<String>>,
}

// By hand, not `untagged`: an untagged enum buffers its input, which loses the spans.
impl<'de> Deserialize<'de> for RawValues {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawValues;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a selector such as \"/quantity\", or an array of { name, select, deltas }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawValues, E> {
                Ok(RawValues::One(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawValues, A::Error> {
                let mut values = Vec::new();
                while let Some(value) = seq.next_element::<RawValue>()? {
                    values.push(value);
                }
                Ok(RawValues::Many(values))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// `[verify] count = { query = "get_history", rows = { deposit = "$[?@.operation=='CREDIT']" } }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCount {
    pub query: S<String>,
    pub rows: BTreeMap<String, S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPage {
    pub param: S<String>,
    pub start: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAction {
    pub at: S<String>,
    pub name: Option<String>,
    pub exec: Option<S<String>>,
    pub http: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBus {
    pub kind: S<String>,
    pub brokers: S<String>,
    pub topic: S<String>,
    #[serde(rename = "ref")]
    pub ref_pointer: Option<S<String>>,
    #[serde(default)]
    pub consumer_groups: Vec<String>,
    #[serde(default)]
    pub client: BTreeMap<String, S<String>>,
}

/// `[[backlog]]`: one source of an event backlog (issue 33); the kind-specific keys are
/// checked against `kind` in `load.rs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBacklog {
    pub name: Option<S<String>>,
    pub kind: S<String>,
    pub url: Option<S<String>>,
    pub every: Option<S<String>>,
    pub settle: Option<S<String>>,
    // redis-streams
    pub stream: Option<S<String>>,
    pub group: Option<S<String>>,
    // sql
    pub head: Option<S<String>>,
    pub checkpoint: Option<S<String>>,
    // nats (with `stream`)
    pub consumer: Option<S<String>>,
    /// (projection, checkpoint) rows, instead of `checkpoint`.
    pub checkpoints: Option<S<String>>,
    pub oldest_unapplied: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKafkaCommand {
    pub topic: S<String>,
    pub key: Option<S<String>>,
}
