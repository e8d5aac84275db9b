//! The serde mirror of a scenario file (PRODUCT §4). Unknown keys are errors
//! everywhere; values that are checked after parsing keep their span (`Spanned`) so
//! the check can point at them.
//!
//! The same types describe the file's JSON Schema (`cqrs-bench schema scenario`, issue 34):
//! field docs are what an editor shows, and `#[schemars(with = "…")]` names what the user
//! writes where the field keeps a `Spanned` (`toml::Spanned` has no schema of its own), with
//! the string formats of `schema.rs` (`Duration`, `Template`, …). A new field needs both.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use super::schema as format;

type S<T> = Spanned<T>;

/// A cqrs-bench scenario: one workload against one target.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    /// The scenario's name: it names the results folder and the report.
    #[schemars(with = "String", length(min = 1))]
    pub name: S<String>,
    /// What this workload represents.
    #[serde(default)]
    pub description: String,
    /// Seeds every random choice (operation, key, template values): the same seed and
    /// `--threads` give the same run. Default 0.
    #[serde(default)]
    pub seed: Option<u64>,
    /// The system under test.
    pub target: RawTarget,
    /// How operations are generated: the load model and its stages.
    pub load: RawLoad,
    /// Which operations and keys the load draws. Optional (issue 31): a scenario whose
    /// operations draw no key needs no `[mix]`.
    #[serde(default)]
    pub mix: RawMix,
    /// `[[setup]]`: requests sent once per key before the load, outside every figure.
    #[serde(default)]
    pub setup: Vec<RawSetup>,
    /// `[[command]]`: the writes of the load.
    #[serde(default)]
    pub command: Vec<RawOperation>,
    /// `[[query]]`: the reads of the load (weight 0: only read by probes or `[verify]`).
    #[serde(default)]
    pub query: Vec<RawOperation>,
    /// The projection-lag probe: for a sample of acknowledged commands, poll a query until
    /// the read model shows the command.
    #[schemars(with = "Option<RawProjection>")]
    pub projection: Option<S<RawProjection>>,
    /// Reconciliation after the load: every acknowledged command applied exactly once, and
    /// the numbers and rows they imply.
    #[schemars(with = "Option<RawVerify>")]
    pub verify: Option<S<RawVerify>>,
    /// The Kafka bus probe: events read from the topic and consumer-group lag.
    #[schemars(with = "Option<RawBus>")]
    pub bus: Option<S<RawBus>>,
    /// `[[backlog]]`: event backlog sources (issue 33), sampled during and after the load.
    #[serde(default)]
    #[schemars(with = "Vec<RawBacklog>")]
    pub backlog: Vec<S<RawBacklog>>,
    /// `[[action]]`: things done to the system at a time of the load (faults, maintenance);
    /// the report shows the time until projection lag recovered.
    #[serde(default)]
    pub action: Vec<RawAction>,
    /// Service-level objectives: the run's verdict.
    #[serde(default)]
    #[schemars(with = "format::SloTable")]
    pub slo: BTreeMap<S<String>, S<toml::Value>>,
    /// The read-your-writes probe (issue 14): P(a read this long after the acknowledgement
    /// is fresh), and stale reads in the traffic. What it does not say comes from `[projection]`.
    #[schemars(with = "Option<RawStaleness>")]
    pub staleness: Option<S<RawStaleness>>,
    /// `cqrs-bench saturate`: how the rate steps search for the highest sustainable rate.
    #[schemars(with = "Option<RawSaturate>")]
    pub saturate: Option<S<RawSaturate>>,
    /// `cqrs-bench capacity`: the projector counts to measure and how to get the target to each.
    #[schemars(with = "Option<RawCapacity>")]
    pub capacity: Option<S<RawCapacity>>,
}

/// `[staleness]`: the read-your-writes probe.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStaleness {
    /// The `[[command]]`s sampled (default: `[projection] commands`, else all).
    #[schemars(with = "Option<Vec<String>>")]
    pub commands: Option<Vec<S<String>>>,
    /// Fraction of those commands, after warmup, whose reads are made. Default 0.2.
    #[schemars(with = "Option<f64>", extend("exclusiveMinimum" = 0, "maximum" = 1))]
    pub sample: Option<S<f64>>,
    /// The `[[query]]` read after each delay (default: `[projection] query`).
    #[schemars(with = "Option<String>")]
    pub query: Option<S<String>>,
    /// When a read is fresh (default: `[projection] until`).
    #[schemars(with = "Option<format::Predicate>")]
    pub until: Option<S<String>>,
    /// Delays after the acknowledgement at which to read, increasing, at most 64.
    /// Default 0ms, 5ms, 10ms, 25ms, 50ms, 100ms, 250ms, 500ms, 1s.
    #[schemars(with = "Option<Vec<format::Duration>>", length(min = 1, max = 64))]
    pub delays: Option<S<Vec<S<String>>>>,
    /// Queries of the load whose answers are judged stale or fresh against the commands
    /// acknowledged on their key before they were sent (default: `query`, when it reads a key).
    #[schemars(with = "Option<Vec<String>>")]
    pub traffic: Option<S<Vec<S<String>>>>,
}

/// `[saturate]`: the rate search of `cqrs-bench saturate`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSaturate {
    /// Operations/s (the whole mix) of the first step. Default 100.
    #[schemars(with = "Option<f64>", range(min = 0.001, max = 10_000_000.0))]
    pub start_rate: Option<S<f64>>,
    /// Never offered above. Default 100,000.
    #[schemars(with = "Option<f64>", range(min = 0.001, max = 10_000_000.0))]
    pub max_rate: Option<S<f64>>,
    /// Never offered below, when even the start rate fails. Default 1.
    #[schemars(with = "Option<f64>", range(min = 0.001, max = 10_000_000.0))]
    pub min_rate: Option<S<f64>>,
    /// Each step's length, its warmup included. Default 15s.
    #[schemars(with = "Option<format::Duration>")]
    pub step: Option<S<String>>,
    /// The leading part of each step, not judged. Default 5s (at most a third of `step`).
    #[schemars(with = "Option<format::Duration>")]
    pub warmup: Option<S<String>>,
    /// Factor between steps until one fails, more than 1 and at most 100. Default 2.
    #[schemars(with = "Option<f64>", extend("exclusiveMinimum" = 1, "maximum" = 100))]
    pub growth: Option<S<f64>>,
    /// How close the answer is to the true limit: a fraction (0.05) or a percentage ("5%"),
    /// 0.1 % to 100 %. Default 5 %.
    #[schemars(with = "Option<format::FractionOrPercent>")]
    pub precision: Option<S<toml::Value>>,
}

/// `[capacity]`: the projector counts `cqrs-bench capacity` measures.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCapacity {
    /// Projector counts to measure, each from 1 to 1024. Default [1, 2, 4].
    #[schemars(with = "Option<Vec<i64>>", length(min = 1), inner(range(min = 1, max = 1024)))]
    pub projectors: Option<S<Vec<i64>>>,
    /// For an http target: a shell command that sets the projector count, e.g.
    /// "kubectl scale deploy/projector --replicas={{projectors}}".
    #[schemars(with = "Option<format::ScaleCommand>")]
    pub scale: Option<S<String>>,
    /// For an http target: `cqrs-bench target serve` arguments of a reference variant the
    /// harness serves itself at each count, e.g. "--variant outbox --projector-cost 10ms".
    #[schemars(with = "Option<String>")]
    pub serve: Option<S<String>>,
    /// How long to wait for the target to answer after scaling. Default 120s.
    #[schemars(with = "Option<format::Duration>")]
    pub ready_timeout: Option<S<String>>,
    /// Extra wait once it answers (projectors joining a group, caches warming). Default 0s.
    #[schemars(with = "Option<format::Duration>")]
    pub settle: Option<S<String>>,
    /// Headroom the answer keeps above `--target-rate`: a fraction (0.2) or a percentage
    /// ("20%"), 0 to 1000 %. Default 20 %.
    #[schemars(with = "Option<format::FractionOrPercent>")]
    pub headroom: Option<S<toml::Value>>,
}

/// `[target]`: the system under test.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    /// "embedded" (the reference CQRS system in this process) or "http".
    #[schemars(with = "format::TargetKind")]
    pub kind: S<String>,
    /// kind = "http": the system's base URL (`--target` and CQRS_BENCH_TARGET override it).
    #[schemars(with = "Option<format::HttpUrl>")]
    pub base_url: Option<S<String>>,
    /// Per-request timeout: a request unanswered by then is a `timeout` error. Default 5s.
    #[schemars(with = "Option<format::Duration>")]
    pub timeout: Option<S<String>>,
    /// Answer bytes kept per answer, for captures and predicates (the rest is read and
    /// dropped): a byte count or a size ("64KiB", "1MiB"). Default 1MiB.
    #[schemars(with = "Option<format::ByteSize>")]
    pub max_body: Option<S<toml::Value>>,
    /// Headers on every request (templates): `{ Authorization = "Bearer ${API_TOKEN}" }`.
    /// `${ENV}` values are never written to results.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, format::Template>")]
    pub headers: BTreeMap<String, S<String>>,
    // embedded
    /// kind = "embedded": the reference system's variant. Default "memory".
    #[schemars(with = "Option<format::EmbeddedVariant>")]
    pub variant: Option<S<String>>,
    /// kind = "embedded": projector tasks, 1 to 1024. Default 2.
    #[schemars(with = "Option<u64>")]
    pub projectors: Option<S<u64>>,
    /// kind = "embedded": time each projector spends per event, in parallel. Default 0s.
    #[schemars(with = "Option<format::Duration>")]
    pub projector_cost: Option<S<String>>,
    /// kind = "embedded": time per event in a section shared by every projector. Default 0s.
    #[schemars(with = "Option<format::Duration>")]
    pub projector_contention: Option<S<String>>,
    /// kind = "embedded": faults the reference system injects and counts, to check the
    /// harness against its own books.
    #[schemars(with = "Option<RawFaults>")]
    pub faults: Option<S<RawFaults>>,
}

/// `[target.faults]`: what the embedded reference system does wrong, on purpose.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFaults {
    /// Every event becomes visible in the read model this long after it was accepted.
    #[schemars(with = "Option<format::Duration>")]
    pub projection_delay: Option<S<String>>,
    /// A uniform extra delay per event, from 0 to this.
    #[schemars(with = "Option<format::Duration>")]
    pub projection_jitter: Option<S<String>>,
    /// Lose every k-th event on the bus (never applied).
    #[schemars(with = "Option<u64>", range(min = 1))]
    pub drop_every: Option<S<u64>>,
    /// Deliver every m-th event twice.
    #[schemars(with = "Option<u64>", range(min = 1))]
    pub duplicate_every: Option<S<u64>>,
    /// Shuffle events within windows of this many events per projector (1 to 100,000).
    #[schemars(with = "Option<u64>", range(min = 1, max = 100_000))]
    pub reorder_window: Option<S<u64>>,
    /// Projector 0 stops applying events during this window: `{ at = "10s", for = "5s" }`.
    pub pause_projector: Option<RawWindow>,
    /// Projector 0 crashes at this time of the load and restarts from its last checkpoint
    /// (events after it are delivered again).
    #[schemars(with = "Option<format::Duration>")]
    pub crash_projector_at: Option<S<String>>,
    /// Events between projector checkpoints (what a crash redelivers). Default 100.
    #[schemars(with = "Option<u64>", range(min = 1))]
    pub checkpoint_every: Option<S<u64>>,
    /// An idempotent projector skips events it already applied; a non-idempotent one
    /// applies them again. Default true.
    pub idempotent: Option<bool>,
    /// Every n-th command is applied, then answered only after a delay: `{ every = 50, delay = "1s" }`.
    pub slow_commands: Option<RawSlow>,
    /// Every n-th command fails with 500 and is not applied.
    #[schemars(with = "Option<u64>", range(min = 1))]
    pub fail_every: Option<S<u64>>,
    /// The whole target stops answering during this window (a stop-the-world pause).
    pub stall: Option<RawWindow>,
}

/// A window of the load: from `at` for `for`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    /// When it starts, from the start of the load.
    #[schemars(with = "format::Duration")]
    pub at: S<String>,
    /// How long it lasts.
    #[serde(rename = "for")]
    #[schemars(with = "format::Duration")]
    pub duration: S<String>,
}

/// `slow_commands = { every, delay }`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSlow {
    /// Every n-th command is slow.
    #[schemars(with = "u64", range(min = 1))]
    pub every: S<u64>,
    /// How long its answer waits.
    #[schemars(with = "format::Duration")]
    pub delay: S<String>,
}

/// `[load]`: how operations are generated.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLoad {
    /// "open" (arrivals at a rate, latency from the intended start) or "closed" (fixed
    /// users, each waiting for its answer). Default "open".
    #[schemars(with = "Option<format::LoadModel>")]
    pub model: Option<S<String>>,
    /// Open model: requests outstanding at once, 1 to 1,000,000. Default 1024.
    #[schemars(with = "Option<u64>", range(min = 1, max = 1_000_000))]
    pub max_in_flight: Option<S<u64>>,
    /// Open model: operations waiting for a free slot, 0 to 10,000,000; beyond, they are
    /// dropped (counted, never sent). Default 100,000.
    #[schemars(with = "Option<u64>", range(max = 10_000_000))]
    pub max_backlog: Option<S<u64>>,
    /// Closed model: each user's pause between an answer and its next operation. Default 0s.
    #[schemars(with = "Option<format::Duration>")]
    pub think_time: Option<S<String>>,
    /// The leading part of the stages: measured and shown, excluded from SLO verdicts.
    /// Default 0s.
    #[schemars(with = "Option<format::Duration>")]
    pub warmup: Option<S<String>>,
    /// The load's stages, one after another: `{ duration = "10s", rate = 200 }` (constant)
    /// or `{ duration = "5s", from = 10, to = 200 }` (linear ramp). Rates are operations/s
    /// (open model) or users (closed).
    #[schemars(with = "Vec<RawStage>", length(min = 1))]
    pub stages: S<Vec<S<RawStage>>>,
}

/// One stage of the load: `rate` (constant) or `from` and `to` (a linear ramp).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [
    { "required": ["rate"], "not": { "anyOf": [{ "required": ["from"] }, { "required": ["to"] }] } },
    { "required": ["from", "to"], "not": { "required": ["rate"] } },
]))]
pub struct RawStage {
    /// How long the stage lasts.
    #[schemars(with = "format::Duration")]
    pub duration: S<String>,
    /// A constant rate: operations/s (open model, 0 pauses; at most 10,000,000) or users (closed).
    #[schemars(range(min = 0.0))]
    pub rate: Option<f64>,
    /// A ramp's rate at the start of the stage.
    #[schemars(range(min = 0.0))]
    pub from: Option<f64>,
    /// A ramp's rate at the end of the stage.
    #[schemars(range(min = 0.0))]
    pub to: Option<f64>,
}

/// `[mix]`: which operations and keys the load draws.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMix {
    /// Queries to commands, by operation count: "4:1". Default "1:1". Within each kind,
    /// operations are drawn by their `weight`.
    #[schemars(with = "Option<format::Ratio>")]
    pub read_write_ratio: Option<S<String>>,
    /// The keys `{{key}}` is drawn from.
    #[schemars(with = "Option<RawKeys>")]
    pub keys: Option<S<RawKeys>>,
}

/// `[mix] keys = { count, distribution, prefix, … }`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawKeys {
    /// How many keys.
    #[schemars(with = "u64", range(min = 1))]
    pub count: S<u64>,
    /// How keys are drawn: "uniform" (default), "zipf" (with `exponent`), "hotspot" (with
    /// `hot_fraction` and `hot_traffic`), "sequential", "latest" (recently written keys).
    #[schemars(with = "Option<format::Distribution>")]
    pub distribution: Option<S<String>>,
    /// zipf: the skew, more than 0 and at most 100; 1.1 is typical. Default 1.
    pub exponent: Option<f64>,
    /// hotspot: the fraction of keys that are hot, 0 to 1. Default 0.2.
    pub hot_fraction: Option<f64>,
    /// hotspot: the fraction of operations that go to hot keys, 0 to 1. Default 0.8.
    pub hot_traffic: Option<f64>,
    /// Put before each key's number: "acct-" gives acct-0, acct-1, …
    #[serde(default)]
    pub prefix: String,
}

/// `[[setup]]`: a request sent once per key before the load, outside every figure.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSetup {
    /// The HTTP method. Default POST.
    #[schemars(with = "Option<format::Method>")]
    pub method: Option<S<String>>,
    /// The path after the base URL, starting with `/` (a template): "/accounts/{{key}}/open".
    #[schemars(with = "format::Template", extend("pattern" = "^/"))]
    pub path: S<String>,
    /// The request body (a template).
    #[schemars(with = "Option<format::Template>")]
    pub body: Option<S<String>>,
    /// Headers of this request (templates), beside `[target] headers`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, format::Template>")]
    pub headers: BTreeMap<String, S<String>>,
    /// Statuses that count as success. Default: any 2xx.
    #[serde(default)]
    #[schemars(inner(range(min = 100, max = 599)))]
    pub expect_status: Vec<u16>,
    /// Statuses of a refusal: neither success nor error.
    #[serde(default)]
    #[schemars(inner(range(min = 100, max = 599)))]
    pub reject_status: Vec<u16>,
    /// Values of the answer kept per key, read later as {{capture.NAME}}.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, format::Capture>")]
    pub capture: BTreeMap<String, S<toml::Value>>,
    /// Setup requests per second. Default 1000.
    #[schemars(with = "Option<f64>", range(min = 0.001, max = 10_000_000.0))]
    pub rate: Option<S<f64>>,
}

/// `[[command]]` or `[[query]]`: one operation of the load.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawOperation {
    /// The operation's name, unique in the file: it names its figures and is how
    /// `[projection]`, `[verify]` and `[slo]` refer to it.
    #[schemars(with = "String")]
    pub name: S<String>,
    /// Its share among the operations of its kind. Default 1; 0: not in the load (only
    /// read by probes or `[verify]`).
    #[schemars(with = "Option<u32>")]
    pub weight: Option<S<u32>>,
    /// The HTTP method. Default POST for a command, GET for a query.
    #[schemars(with = "Option<format::Method>")]
    pub method: Option<S<String>>,
    /// The path after the base URL, starting with `/` (a template): "/accounts/{{key}}/deposit".
    #[schemars(with = "Option<format::Template>", extend("pattern" = "^/"))]
    pub path: Option<S<String>>,
    /// A command produced to Kafka instead of sent over HTTP: `{ topic = "…", key = "{{key}}" }`
    /// (needs `[bus]`; the body is the record's value).
    #[schemars(with = "Option<RawKafkaCommand>")]
    pub kafka: Option<S<RawKafkaCommand>>,
    /// The request body (a template): '{"amount": {{int 1 100}}, "ref": "{{ref}}"}'.
    #[schemars(with = "Option<format::Template>")]
    pub body: Option<S<String>>,
    /// Headers of this request (templates), beside `[target] headers`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, format::Template>")]
    pub headers: BTreeMap<String, S<String>>,
    /// Statuses that count as success (a command's event is then expected). Default: any 2xx.
    #[serde(default)]
    #[schemars(inner(range(min = 100, max = 599)))]
    pub expect_status: Vec<u16>,
    /// Statuses of a business refusal: neither success nor error, no event expected.
    #[serde(default)]
    #[schemars(inner(range(min = 100, max = 599)))]
    pub reject_status: Vec<u16>,
    /// `{ status = [...], body = "regex" }`: a business refusal told by status and body
    /// (instead of `reject_status`).
    #[schemars(with = "Option<RawAnswerRule>")]
    pub reject: Option<S<RawAnswerRule>>,
    /// `{ status = [...], body = "regex" }`: an optimistic-concurrency conflict, counted
    /// apart (neither goodput nor error, no event expected).
    #[schemars(with = "Option<RawAnswerRule>")]
    pub conflict: Option<S<RawAnswerRule>>,
    /// Values of the answer kept per key, read later as {{capture.NAME}}:
    /// `{ version = "/version" }`, `{ id = { from = "header:location", regex = "/things/(.+)$" } }`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, format::Capture>")]
    pub capture: BTreeMap<String, S<toml::Value>>,
    /// `"created"`: `{{key}}` is an id captured by a `creates_key` operation; "mix"
    /// (default): drawn from `[mix] keys`.
    #[schemars(with = "Option<format::KeySource>")]
    pub keys: Option<S<String>>,
    /// The name of a capture that is a new entity's id: later operations with
    /// keys = "created" use it.
    #[schemars(with = "Option<String>")]
    pub creates_key: Option<S<String>>,
    /// `{ query, select }`: find the created id by reading (a create that answers no id).
    #[schemars(with = "Option<RawResolve>")]
    pub resolve: Option<S<RawResolve>>,
}

/// `resolve = { query = "...", select = "..." }` on a `creates_key` command (issue 31).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawResolve {
    /// The `[[query]]` polled until the id shows (a list without {{key}}).
    #[schemars(with = "String")]
    pub query: S<String>,
    /// Where the id is in its answer, with the create's {{ref}}:
    /// "$.data[?@.describe == '{{ref}} buy milk']._id".
    #[schemars(with = "format::BodySelector")]
    pub select: S<String>,
}

/// `reject = { ... }` / `conflict = { ... }` on an operation.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAnswerRule {
    /// The statuses of such an answer.
    #[schemars(length(min = 1), inner(range(min = 100, max = 599)))]
    pub status: Vec<u16>,
    /// A regular expression the answer's body must also match (optional).
    pub body: Option<String>,
}

/// `[projection]`: the projection-lag probe.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawProjection {
    /// The `[[command]]`s that leave a trace in the read model (default: all).
    #[schemars(with = "Option<Vec<String>>")]
    pub commands: Option<Vec<S<String>>>,
    /// Fraction of those acknowledged commands that are probed, in (0, 1]. Default 0.05.
    #[schemars(with = "Option<f64>", extend("exclusiveMinimum" = 0, "maximum" = 1))]
    pub sample: Option<S<f64>>,
    /// The `[[query]]` polled, rendered with the command's key.
    #[schemars(with = "String")]
    pub query: S<String>,
    /// When the read model shows the command: "/refs contains {{ref}}",
    /// "/version >= {{capture.version}}", "count($[*]) >= {{key.acked}}".
    #[schemars(with = "format::Predicate")]
    pub until: S<String>,
    /// Time between polls: lag is known to this resolution. Default 5ms.
    #[schemars(with = "Option<format::Duration>")]
    pub poll_interval: Option<S<String>>,
    /// Not visible by then: the probe is late (its lag counts at the timeout). Default 10s.
    #[schemars(with = "Option<format::Duration>")]
    pub timeout: Option<S<String>>,
    /// Where the read model tells its own times, to split the lag into stages.
    #[schemars(with = "Option<RawStages>")]
    pub stages: Option<S<RawStages>>,
}

/// `[projection.stages]`: where the read model tells its own times (lag attribution).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStages {
    /// Selector of when the projector received the event.
    #[schemars(with = "Option<format::BodySelector>")]
    pub received_at: Option<S<String>>,
    /// Selector of when the projector applied it.
    #[schemars(with = "Option<format::BodySelector>")]
    pub applied_at: Option<S<String>>,
    /// Selector of the event's ref on the bus.
    #[schemars(with = "Option<format::BodySelector>")]
    pub event_ref: Option<S<String>>,
    /// The `[bus] consumer_groups` entry whose committed offsets mark an event consumed.
    #[schemars(with = "Option<String>")]
    pub group: Option<S<String>>,
}

/// `[verify]`: reconciliation after the load.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("anyOf" = [
    { "required": ["applied_refs"] }, { "required": ["value"] }, { "required": ["count"] },
]))]
pub struct RawVerify {
    /// The `[[command]]`s whose refs must appear exactly once (default: all).
    #[schemars(with = "Option<Vec<String>>")]
    pub commands: Option<Vec<S<String>>>,
    /// How long after the load the read model may take to settle. Default 30s.
    #[schemars(with = "Option<format::Duration>")]
    pub settle: Option<S<String>>,
    /// The `[[query]]` read per written key (or once, without {{key}}: a global list).
    #[schemars(with = "String")]
    pub query: S<String>,
    /// Selector of the applied command refs in its answer ("/refs", "$.data[*].describe");
    /// refs are found inside strings and objects too.
    #[schemars(with = "Option<format::BodySelector>")]
    pub applied_refs: Option<S<String>>,
    /// Value accounting: a selector of one number per key ("/balance", with `deltas`,
    /// `initial` or `write_value` beside it), or an array of up to 4 values, each
    /// `{ name, select, deltas, initial, write_value }`.
    #[schemars(with = "Option<RawValues>")]
    pub value: Option<S<RawValues>>,
    /// Per command, what it adds to the number: `{ deposit = "/amount", withdraw = "-/amount" }`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, format::Delta>")]
    pub deltas: BTreeMap<String, S<String>>,
    /// The number before the load. Default 0.
    #[schemars(with = "Option<f64>")]
    pub initial: Option<S<f64>>,
    /// A key without a row: "absent" (wrong) or "zero" (its number is 0). Default "absent".
    #[schemars(with = "Option<format::AbsentRows>")]
    pub absent: Option<S<String>>,
    /// Instead of deltas, compare with the write side: the `[[query]]` that reads it.
    #[schemars(with = "Option<String>")]
    pub write_query: Option<S<String>>,
    /// With `write_query`: the number's selector in its answer.
    #[schemars(with = "Option<format::BodySelector>")]
    pub write_value: Option<S<String>>,
    /// Read page after page (&param=N from `start`) until a page has no refs.
    #[schemars(with = "Option<RawPage>")]
    pub page: Option<S<RawPage>>,
    /// Count accounting: per key, rows per command kind against its acknowledged commands.
    #[schemars(with = "Option<RawCount>")]
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
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawValue {
    /// The value's name (letters, digits, `_`, `-`), read as {{key.expected.NAME}} in
    /// `[projection] until`. Default: its selector.
    #[schemars(with = "Option<String>")]
    pub name: Option<S<String>>,
    /// The number's selector in the read model's answer.
    #[schemars(with = "format::BodySelector")]
    pub select: S<String>,
    /// Per command, what it adds to this number: `{ restock = "/qty", sell = "-/qty" }`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, format::Delta>")]
    pub deltas: BTreeMap<String, S<String>>,
    /// The number before the load. Default 0.
    #[schemars(with = "Option<f64>")]
    pub initial: Option<S<f64>>,
    /// Instead of deltas: the number's selector in `[verify] write_query`'s answer.
    #[schemars(with = "Option<format::BodySelector>")]
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

// By hand like its `Deserialize`: a string or an array of `RawValue`.
impl JsonSchema for RawValues {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RawValues".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "anyOf": [
                generator.subschema_for::<format::BodySelector>(),
                { "type": "array", "items": generator.subschema_for::<RawValue>(), "minItems": 1, "maxItems": 4 },
            ],
        })
    }
}

/// `[verify] count = { query = "get_history", rows = { deposit = "$[?@.operation=='CREDIT']" } }`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCount {
    /// The `[[query]]` that reads one key's rows (with {{key}}).
    #[schemars(with = "String")]
    pub query: S<String>,
    /// Per `[[command]]`, the selector of its rows in the answer ("none": it writes none).
    #[schemars(with = "BTreeMap<String, format::RowSelector>")]
    pub rows: BTreeMap<String, S<String>>,
}

/// `[verify] page = { param, start }`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPage {
    /// The query parameter of the page number: "page".
    #[schemars(with = "String", pattern(r"^\s*[^&=? ]+\s*$"))]
    pub param: S<String>,
    /// The first page's number. Default 1.
    pub start: Option<u64>,
}

/// `[[action]]`: something done to the system at a time of the load.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [{ "required": ["exec"] }, { "required": ["http"] }]))]
pub struct RawAction {
    /// When, from the start of the load.
    #[schemars(with = "format::Duration")]
    pub at: S<String>,
    /// Its name in the report and results. Default: the command or request.
    pub name: Option<String>,
    /// A shell command (`sh -c`): "kubectl scale deploy/projector --replicas=0".
    /// `${ENV}` is passed as a variable, never pasted.
    #[schemars(with = "Option<String>")]
    pub exec: Option<S<String>>,
    /// A request to the target: "POST /admin/pause".
    #[schemars(with = "Option<format::HttpAction>")]
    pub http: Option<S<String>>,
}

/// `[bus]`: the Kafka bus probe.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBus {
    /// The bus: "kafka".
    #[schemars(with = "format::BusKind")]
    pub kind: S<String>,
    /// Bootstrap servers, "HOST:PORT[,HOST:PORT]" (CQRS_BENCH_KAFKA_BROKERS overrides them).
    #[schemars(with = "String")]
    pub brokers: S<String>,
    /// The topic of the events.
    #[schemars(with = "String")]
    pub topic: S<String>,
    /// JSON pointer to the command's ref inside an event. Default "/ref".
    #[serde(rename = "ref")]
    #[schemars(with = "Option<format::Pointer>")]
    pub ref_pointer: Option<S<String>>,
    /// Projector consumer groups whose lag is sampled every second.
    #[serde(default)]
    pub consumer_groups: Vec<String>,
    /// librdkafka client options (e.g. `"security.protocol" = "SASL_SSL"`); `${ENV}` is read
    /// from the environment.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub client: BTreeMap<String, S<String>>,
}

/// `[[backlog]]`: one source of an event backlog (issue 33); the kind-specific keys are
/// checked against `kind` in `load.rs`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBacklog {
    /// Its name in the figures. Default: "STREAM/GROUP" (redis-streams), "STREAM/CONSUMER"
    /// (nats), the queue (rabbitmq) or "sql".
    #[schemars(with = "Option<String>")]
    pub name: Option<S<String>>,
    /// "redis-streams", "sql", "nats" or "rabbitmq".
    #[schemars(with = "format::BacklogKind")]
    pub kind: S<String>,
    /// Where the source is: "redis://127.0.0.1:6379", "postgres://user@127.0.0.1:5432/db",
    /// "mysql://root@127.0.0.1:3306/db", "nats://127.0.0.1:4222" or
    /// "amqp://guest:guest@127.0.0.1:5672/%2f"; `${ENV}` is read from the environment.
    #[schemars(with = "Option<String>")]
    pub url: Option<S<String>>,
    /// Time between samples, at least 100ms. Default 1s.
    #[schemars(with = "Option<format::Duration>")]
    pub every: Option<S<String>>,
    /// How long sampling goes on after the load, waiting for the backlog to drain. Default 10s.
    #[schemars(with = "Option<format::Duration>")]
    pub settle: Option<S<String>>,
    // redis-streams
    /// redis-streams: the stream's key; nats: the JetStream stream's name.
    #[schemars(with = "Option<String>")]
    pub stream: Option<S<String>>,
    /// redis-streams: the projector's consumer group.
    #[schemars(with = "Option<String>")]
    pub group: Option<S<String>>,
    // sql
    /// sql: a query answering the newest event's position: "select max(id) from events".
    #[schemars(with = "Option<String>")]
    pub head: Option<S<String>>,
    /// sql: a query answering the projector's checkpoint:
    /// "select position from checkpoints where name = 'view'".
    #[schemars(with = "Option<String>")]
    pub checkpoint: Option<S<String>>,
    /// nats: the durable consumer the projector pulls from.
    #[schemars(with = "Option<String>")]
    pub consumer: Option<S<String>>,
    /// sql (PostgreSQL), instead of `checkpoint`: a query answering (projection, checkpoint)
    /// rows, each projection its own source: "select name, position from tracking".
    #[schemars(with = "Option<String>")]
    pub checkpoints: Option<S<String>>,
    /// sql (PostgreSQL): a query answering when the oldest entry not applied was appended (a
    /// timestamp; `$1` is the checkpoint): "select min(created_at) from events where id > $1".
    #[schemars(with = "Option<String>")]
    pub oldest_unapplied: Option<S<String>>,
    // rabbitmq
    /// rabbitmq: the queue the projector consumes.
    #[schemars(with = "Option<String>")]
    pub queue: Option<S<String>>,
    /// rabbitmq: the management API ("http://guest:guest@127.0.0.1:15672"); default: the
    /// AMQP URL's host and credentials on port 15672.
    #[schemars(with = "Option<String>")]
    pub management_url: Option<S<String>>,
}

/// `kafka = { topic, key }` on a command produced to Kafka.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawKafkaCommand {
    /// The topic the command is produced to.
    #[schemars(with = "String")]
    pub topic: S<String>,
    /// The record's key (a template). Default "{{key}}".
    #[schemars(with = "Option<format::Template>")]
    pub key: Option<S<String>>,
}
