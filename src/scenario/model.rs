//! The checked scenario: what the rest of the harness consumes.
//!
//! `raw.rs` mirrors the TOML file; `load.rs` turns it into these types, with every
//! duration resolved, every template compiled and every cross-reference checked,
//! so nothing downstream re-validates or re-parses.

use std::path::PathBuf;
use std::time::Duration;

use crate::reference::MemoryConfig;
use crate::scenario::template::Template;

pub use super::selector::{Predicate, Selector};

/// One workload against one target (PRODUCT §4).
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// Seeds every random choice of the load (operation mix, keys, template values).
    pub seed: u64,
    pub target: TargetSpec,
    pub load: LoadSpec,
    pub mix: MixSpec,
    /// `[[setup]]` requests: run once per key before the load, outside the SLO figures.
    pub setup: Vec<SetupSpec>,
    /// `[[command]]`s then `[[query]]`s; an operation's index in this list is its id.
    pub operations: Vec<OperationSpec>,
    pub projection: Option<ProjectionSpec>,
    /// `[staleness]`: the read-your-writes probe (issue 14).
    pub staleness: Option<StalenessSpec>,
    pub verify: Option<VerifySpec>,
    /// `[bus]`: the Kafka bus probe.
    pub bus: Option<BusSpec>,
    /// `[[backlog]]`: event backlog sources sampled from the load's start (issue 33).
    pub backlog: Vec<BacklogSpec>,
    pub actions: Vec<ActionSpec>,
    pub slo: Vec<SloRule>,
    /// `[saturate]` (defaults when absent): used by `saturate` and `capacity` only.
    pub saturate: SaturateSpec,
    /// `[capacity]` (defaults when absent): used by `capacity` only.
    pub capacity: CapacitySpec,
    /// The scenario after `--set` overrides and *before* `${ENV}` interpolation, as JSON:
    /// what result.json records, so secrets read from the environment never reach disk.
    pub recorded: serde_json::Value,
    /// The values of the `${ENV}` variables the scenario reads (durations and numbers
    /// aside): masked wherever a resolved string or a program's output is quoted (issue 32).
    pub secrets: Vec<String>,
    /// The file it was read from.
    pub source: PathBuf,
}

impl Scenario {
    pub fn commands(&self) -> impl Iterator<Item = &OperationSpec> {
        self.operations.iter().filter(|o| o.kind == OpKind::Command)
    }
    pub fn queries(&self) -> impl Iterator<Item = &OperationSpec> {
        self.operations.iter().filter(|o| o.kind == OpKind::Query)
    }
    /// Total length of the load (warmup included: it is the leading part of the stages).
    pub fn load_duration(&self) -> Duration {
        self.load.stages.iter().map(|s| s.duration).sum()
    }
    pub fn operation(&self, name: &str) -> Option<&OperationSpec> {
        self.operations.iter().find(|o| o.name == name)
    }
}

#[derive(Debug, Clone)]
pub struct TargetSpec {
    pub kind: TargetKind,
    /// Per-request timeout; a request still unanswered by then is a `timeout` error.
    pub timeout: Duration,
    /// Response bytes kept per answer (`[target] max_body`, default 1 MiB): enough for
    /// captures and predicates; the rest is read and dropped, and the answer counted as
    /// truncated, so a target sending huge bodies cannot grow the harness's memory.
    pub max_body: usize,
    /// Extra headers on every request (templates; `${ENV}` already interpolated).
    pub headers: Vec<(String, Template)>,
}

#[derive(Debug, Clone)]
pub enum TargetKind {
    /// An external system over HTTP/1.1 keep-alive.
    Http {
        base_url: String,
        /// The base URL as it may be shown (result.json, report, terminal, errors): userinfo
        /// redacted, `${ENV}` not interpolated (issue 16).
        label: String,
    },
    /// The `memory` reference target inside this process: no sockets.
    Embedded(Box<MemoryConfig>),
}

#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub model: LoadModel,
    /// The leading part of the stages that is measured but excluded from SLO verdicts.
    pub warmup: Duration,
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LoadModel {
    /// Arrivals at a rate, each with an intended start time (coordinated-omission-correct).
    Open {
        /// Requests outstanding at once (like wrk2's connections).
        max_in_flight: usize,
        /// Operations allowed to wait for a free slot; beyond this a scheduled
        /// operation is counted as `dropped`. 0 = drop as soon as `max_in_flight` is reached.
        max_backlog: usize,
    },
    /// A fixed number of users, each sending its next operation when the last one answered.
    Closed { think_time: Duration },
}

/// One stage of the rate (open: operations/s) or user count (closed) timeline.
/// A constant stage has `from == to`; a ramp goes linearly from `from` to `to`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    pub from: f64,
    pub to: f64,
}

/// The most users any stage asks for.
pub fn max_users(stages: &[Stage]) -> usize {
    stages.iter().map(|s| s.from.max(s.to).round().max(0.0) as usize).max().unwrap_or(0)
}

#[derive(Debug, Clone)]
pub struct MixSpec {
    /// Queries per `reads + writes` operations (from `read_write_ratio = "reads:writes"`).
    pub reads: u32,
    pub writes: u32,
    pub keys: KeySpec,
}

#[derive(Debug, Clone)]
pub struct KeySpec {
    pub count: u64,
    pub distribution: KeyDistribution,
    /// Prepended to the key index: `acct-` gives `acct-0`, `acct-1`, …
    pub prefix: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum KeyDistribution {
    Uniform,
    Zipf {
        exponent: f64,
    },
    /// `hot_traffic` of the operations go to the first `hot_fraction` of the keys.
    Hotspot {
        hot_fraction: f64,
        hot_traffic: f64,
    },
    Sequential,
    /// Commands write keys in sequence; queries read recently written keys (zipf over recency).
    Latest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpKind {
    Command,
    Query,
}

impl OpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Command => "command",
            OpKind::Query => "query",
        }
    }
}

/// A `[[command]]` or `[[query]]`.
#[derive(Debug, Clone)]
pub struct OperationSpec {
    pub name: String,
    pub kind: OpKind,
    /// Relative weight among operations of the same kind.
    pub weight: u32,
    pub request: RequestSpec,
    /// Where `{{key}}` comes from: `[mix] keys`, or ids this run created.
    pub keys: KeySource,
    /// `creates_key = "NAME"`: the capture NAME of a successful answer is a new entity's
    /// id, usable as `{{key}}` by operations with `keys = "created"`.
    pub creates_key: Option<String>,
    /// `resolve = { query, select }`: a create that answers no id has it found by reading.
    pub resolve: Option<ResolveSpec>,
}

/// How the id of a create that answers none is found (issue 31, item 5): poll `query`
/// until `select`, rendered with the create's `{{ref}}`, selects a value: that value is
/// the new id. Polled like a lag probe, at `[projection]`'s interval and timeout.
#[derive(Debug, Clone)]
pub struct ResolveSpec {
    /// Index of the `[[query]]` read.
    pub query: usize,
    /// A body selector, as a template (rendered once per create, then parsed).
    pub select: Template,
    pub poll_interval: Duration,
    /// An id not found this long after the create's acknowledgement is unresolved.
    pub timeout: Duration,
}

impl OperationSpec {
    /// No template reads `{{key}}`: no key is drawn (a create whose id the server makes,
    /// a global list).
    pub fn is_keyless(&self) -> bool {
        self.keys == KeySource::Mix
            && !self.request.templates().any(|t| t.uses_key())
            && self.request.kafka.as_ref().is_none_or(|k| !k.key.uses_key())
    }
}

/// Where an operation's `{{key}}` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// The `[mix] keys` distribution.
    Mix,
    /// Uniformly among the ids captured by `creates_key` operations so far.
    Created,
}

#[derive(Debug, Clone)]
pub struct RequestSpec {
    pub method: http::Method,
    /// Path and query, appended to the target's base URL.
    pub path: Template,
    pub body: Option<Template>,
    pub headers: Vec<(String, Template)>,
    /// Statuses that count as success; empty means any 2xx.
    pub expect_status: Vec<u16>,
    /// Statuses that are a business refusal: neither success nor error, and no event expected.
    pub reject_status: Vec<u16>,
    /// `reject = { status, body }`: a business refusal told by its status and body.
    pub reject: Option<AnswerRule>,
    /// `conflict = { status, body }`: an optimistic-concurrency conflict (issue 31): not
    /// goodput, not an error, no event expected; counted apart.
    pub conflict: Option<AnswerRule>,
    /// `name -> what to take from the answer`; stored per key for `{{capture.NAME}}`.
    pub captures: Vec<(String, CaptureSpec)>,
    /// Produce the rendered body to Kafka instead of sending an HTTP request.
    pub kafka: Option<KafkaSend>,
}

/// `kafka = { topic = "...", key = "{{key}}" }` on a `[[command]]`: the body is the
/// record's value; the acknowledgement is the broker's.
#[derive(Debug, Clone)]
pub struct KafkaSend {
    pub topic: String,
    pub key: Template,
}

/// `{ status = [...], body = "regex" }`: an answer whose status is one of `status` and,
/// when `body` is given, whose body (as kept, up to `[target] max_body`) matches it.
#[derive(Debug, Clone)]
pub struct AnswerRule {
    pub status: Vec<u16>,
    pub body: Option<regex::bytes::Regex>,
}

impl AnswerRule {
    pub fn matches(&self, status: u16, body: &[u8]) -> bool {
        self.status.contains(&status) && self.body.as_ref().is_none_or(|regex| regex.is_match(body))
    }
}

impl RequestSpec {
    /// True when any template of the request reads `{{capture.*}}`.
    pub fn uses_captures(&self) -> bool {
        self.templates().any(|t| t.uses_captures())
    }
    pub fn templates(&self) -> impl Iterator<Item = &Template> {
        std::iter::once(&self.path).chain(self.body.iter()).chain(self.headers.iter().map(|(_, t)| t))
    }
}

#[derive(Debug, Clone)]
pub struct SetupSpec {
    pub request: RequestSpec,
    /// Setup requests per second.
    pub rate: f64,
}

/// `[projection]`: the read-your-write lag probe (PRODUCT §5).
#[derive(Debug, Clone)]
pub struct ProjectionSpec {
    /// Indices into `Scenario::operations` of the probed commands.
    pub commands: Vec<usize>,
    /// Fraction of accepted commands that are probed.
    pub sample: f64,
    /// Index of the query polled with the command's key.
    pub query: usize,
    pub until: Predicate,
    pub poll_interval: Duration,
    pub timeout: Duration,
    /// Where the read model's answer tells when the projector took the event and applied it.
    pub stages: StageTimesSpec,
}

/// `[projection.stages]` (issue 14, lag attribution): selectors into the first answer
/// that shows the command, for the read model's own times of its event (ms since the
/// Unix epoch, µs or ns told apart by size, or RFC 3339 text), and the `[bus]` consumer
/// group whose committed offsets mark an event consumed when the read model tells no
/// `received_at`.
#[derive(Debug, Clone, Default)]
pub struct StageTimesSpec {
    /// When the projector took the event off the bus.
    pub received_at: Option<Selector>,
    /// When the projector wrote it to the read model.
    pub applied_at: Option<Selector>,
    /// The ref of the event those times belong to: the times are used only when it is
    /// the command's own (a later command's event on the same key would mislead).
    pub event_ref: Option<Selector>,
    pub group: Option<String>,
}

/// `[staleness]`: reads of a sampled command's query at fixed delays after its
/// acknowledgement; P(fresh | delay) is the t-visibility curve.
#[derive(Debug, Clone)]
pub struct StalenessSpec {
    /// Indices into `Scenario::operations` of the sampled commands.
    pub commands: Vec<usize>,
    pub sample: f64,
    pub query: usize,
    /// Fresh: the predicate holds on the answer (default: `[projection] until`).
    pub until: Predicate,
    /// Ascending, distinct.
    pub delays: Vec<Duration>,
    /// Queries of the mix whose answers are judged stale or fresh against the commands
    /// acknowledged on their key before they were sent (default: `query`, when it reads a
    /// key). Their answers must have the shape `until` reads.
    pub traffic: Vec<usize>,
}

/// The delays `[staleness]` reads at when the file names none (ms).
pub const DEFAULT_STALENESS_DELAYS_MS: [u64; 9] = [0, 5, 10, 25, 50, 100, 250, 500, 1000];

/// One `capture = { NAME = "SELECTOR" }` entry, or `{ from = "SELECTOR", regex = "…(…)…" }`.
#[derive(Debug, Clone)]
pub struct CaptureSpec {
    pub from: Selector,
    /// Keeps the first group of the first match (or the whole match without a group).
    pub regex: Option<regex::Regex>,
}

impl CaptureSpec {
    /// The captured text of an answer, if the answer has it.
    pub fn take(&self, status: u16, headers: &http::HeaderMap, json: Option<&serde_json::Value>) -> Option<String> {
        let text = self.from.capture(status, headers, json)?;
        match &self.regex {
            None => Some(text),
            Some(re) => {
                let found = re.captures(&text)?;
                found.get(1).or_else(|| found.get(0)).map(|m| m.as_str().to_owned())
            }
        }
    }
}

/// `[verify]`: reconciliation after the load.
#[derive(Debug, Clone)]
pub struct VerifySpec {
    /// Indices into `Scenario::operations` whose refs must appear exactly once.
    pub commands: Vec<usize>,
    pub settle: Duration,
    /// Index of the query that reads the read model: one key's (`{{key}}` in it) or
    /// everything at once (no `{{key}}`: read once per sweep, page by page).
    pub query: usize,
    /// Where the applied refs are in that query's answer; `None`: no ref accounting.
    pub applied_refs: Option<Selector>,
    /// Value accounting: numbers per key checked against what the run sent (empty: none;
    /// at most `MAX_VALUES`, in the scenario's order).
    pub values: Vec<ValueSpec>,
    /// Paging of the verify query: of a global list, or of each key's answer.
    pub page: Option<PageSpec>,
    /// Count accounting: per key, rows per command kind in a list without refs.
    pub count: Option<CountSpec>,
}

/// `[verify] count`: a keyed query read once per key (never paged), and per counted
/// command the selector of its rows; each key must show one row per acknowledged command.
#[derive(Debug, Clone)]
pub struct CountSpec {
    pub query: usize,
    /// (command index, its rows' selector), in the scenario's order of names.
    pub rows: Vec<(usize, Selector)>,
    /// Commands said to write no row (`deposit = "none"`): not counted, not warned about.
    pub without_rows: Vec<usize>,
}

/// Numbers per key `[verify] value` may check: each command carries one change per
/// value in a fixed array (no allocation per command), so their number is bounded.
pub const MAX_VALUES: usize = 4;

/// `[verify] value = "/quantity"` with `deltas` or `write_query`, or one of an array.
#[derive(Debug, Clone)]
pub struct ValueSpec {
    /// Its name in results and in `{{key.expected.NAME}}`: `name`, else the selector's
    /// text (`value` for the one-value form).
    pub name: String,
    /// The read model's number in the verify query's answer.
    pub read: Selector,
    pub expected: ExpectedValue,
    /// What a key with acknowledged commands but no row in the read model is.
    pub absent: AbsentRows,
}

/// `[verify] absent`: how a missing row (a 404, or `value` selecting nothing) is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbsentRows {
    /// The key is `absent`: wrong, counted in `values.absent` (the default, issue 30).
    Absent,
    /// The read model keeps no row for 0: read as 0.
    Zero,
}

/// What a key's number must equal.
#[derive(Debug, Clone)]
pub enum ExpectedValue {
    /// `initial` + the sum of the acknowledged commands' deltas.
    Deltas { initial: f64, deltas: Vec<(usize, Delta)> },
    /// The same number read from the write side: `write_query`, at `write_value`.
    WriteSide { query: usize, read: Selector },
}

/// A command's change to the number: the value at a JSON pointer of the request body it
/// sent, added (`"/amount"`), subtracted (`"-/amount"`) or set outright (`"=/qty"`, a
/// cycle count: the number after this command is the body's value).
#[derive(Debug, Clone, PartialEq)]
pub struct Delta {
    pub pointer: String,
    pub mode: DeltaMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaMode {
    Add,
    Subtract,
    Set,
    /// `"none"`: the command leaves the number alone (said, so `validate` does not warn).
    Unchanged,
}

/// `[verify] page = { param = "page", start = 1 }`: the verify query (keyless, or once per
/// key) is read page by page (`?param=N` appended) until a page selects nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct PageSpec {
    pub param: String,
    pub start: u64,
}

/// `[[action]]`: something done to the system at a time of the load.
#[derive(Debug, Clone)]
pub struct ActionSpec {
    pub name: String,
    /// Offset from the start of the load.
    pub at: Duration,
    pub what: ActionKind,
}

#[derive(Debug, Clone)]
pub enum ActionKind {
    /// A shell command line, run with `sh -c`, its `${ENV}` passed as variables (issue 32).
    Exec(super::ShellCommand),
    /// `METHOD /path` sent to the target.
    Http { method: http::Method, path: String },
}

/// One `[slo]` entry: a metric and its threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct SloRule {
    /// The key as written, e.g. `command_latency_p95`.
    pub name: String,
    pub metric: SloMetric,
    /// Milliseconds for times, a count for counts, a fraction for rates, ops/s for throughput.
    pub threshold: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SloMetric {
    /// Latency percentile (e.g. 95.0, 99.9) over all commands / all queries / one operation.
    CommandLatency(f64),
    QueryLatency(f64),
    OperationLatency {
        operation: String,
        percentile: f64,
    },
    /// Lag percentile over every probe; late probes count at the probe timeout.
    ProjectionLag(f64),
    /// Late probes / probes, a fraction (0..=1).
    LateRatio,
    /// Keys whose `[verify] value` differs from the expected number (unknown when a key
    /// could not be read or its expected number is not known).
    ValueMismatches,
    /// Keys where a command kind's rows (`[verify] count`) differ from its acknowledged
    /// commands (unknown when a key could not be read or a kind had an unanswered command).
    CountMismatches,
    Duplicates,
    Missed,
    Unexpected,
    CommandErrorRate,
    QueryErrorRate,
    /// Conflicts / answered commands (`commands.conflict_rate`, issue 31).
    ConflictRate,
    /// Lower bound: goodput (operations answered ok or refused)/s over the measured window.
    MinThroughput,
    /// Upper bound on operations the generator could not send.
    Dropped,
    /// Largest consumer-group lag in messages (`[bus] consumer_groups`).
    ConsumerLagMax,
    /// Acknowledgement → broker timestamp of the event, percentile.
    BusEndToEnd(f64),
    /// Largest `[[backlog]]` of any source, in entries behind.
    BacklogMax,
    /// Longest time any `[[backlog]]` source took to reach 0 after the load (ms).
    BacklogDrain,
    /// 1 − P(fresh) of `[staleness]` reads this many milliseconds after the acknowledgement.
    StaleReadAt(f64),
    /// Share of the traffic's judged reads that were stale (`[staleness] traffic`).
    StaleReadRate,
}

impl SloMetric {
    /// `min_throughput` passes when observed >= threshold; every other SLO when observed <= threshold.
    pub fn is_lower_bound(&self) -> bool {
        matches!(self, SloMetric::MinThroughput)
    }
}

/// `[bus]` as checked.
#[derive(Debug, Clone)]
pub struct BusSpec {
    pub brokers: String,
    pub topic: String,
    /// JSON pointer to the command ref inside an event.
    pub ref_pointer: String,
    pub consumer_groups: Vec<String>,
    /// librdkafka settings passed through (`security.protocol`, `sasl.*`, `ssl.*`…).
    pub client: Vec<(String, String)>,
    /// How long broker calls may take before the probe reports the broker unreachable.
    pub timeout: Duration,
}

/// `[[backlog]]` as checked: where a projector's backlog is read, and how often.
#[derive(Debug, Clone, PartialEq)]
pub struct BacklogSpec {
    pub name: String,
    /// `${ENV}` interpolated: may carry a password; show it through `redacted_url`.
    pub url: String,
    /// One sample this often.
    pub every: Duration,
    /// After the load, sampling goes on until the source reads 0 or this long has passed
    /// (and at least until `[verify]` ends).
    pub settle: Duration,
    pub source: BacklogSource,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BacklogSource {
    /// XINFO GROUPS: `lag` (not yet delivered) + `pending` (delivered, not acknowledged).
    RedisStreams { stream: String, group: String },
    /// Two queries, each one number: the event store's head position and the projection's
    /// checkpoint; the backlog is head − checkpoint. Postgres or MySQL/MariaDB, by the URL.
    Sql {
        head: String,
        checkpoint: String,
        /// `checkpoint` answers (projection, checkpoint) rows (the `checkpoints` key): each
        /// projection is a source of its own, named `<name>/<projection>`.
        per_projection: bool,
        /// A timestamp: when the oldest entry the projection has not applied was appended
        /// (`$1`, when it appears, is the projection's checkpoint). Lag = the database's
        /// `now()` − it.
        oldest_unapplied: Option<String>,
    },
    /// `$JS.API.CONSUMER.INFO`: a JetStream durable consumer's `num_pending` (not yet
    /// delivered) + `num_ack_pending` (delivered, not acknowledged).
    Nats { stream: String, consumer: String },
    /// A queue's depth: ready (AMQP, live) + unacknowledged (the management API, as of
    /// its last statistics). `management_url`: given, or derived from the AMQP URL.
    RabbitMq { queue: String, management_url: Option<String> },
}

impl BacklogSpec {
    pub fn kind(&self) -> &'static str {
        match self.source {
            BacklogSource::RedisStreams { .. } => "redis-streams",
            BacklogSource::Sql { .. } => "sql",
            BacklogSource::Nats { .. } => "nats",
            BacklogSource::RabbitMq { .. } => "rabbitmq",
        }
    }

    /// The URL with its password masked: what reports and errors show.
    pub fn redacted_url(&self) -> String {
        super::redact::redact_urls(&self.url)
    }
}

/// `[saturate]`: how the saturation search steps through rates (issue 10, PRODUCT §8).
#[derive(Debug, Clone, PartialEq)]
pub struct SaturateSpec {
    /// Operations/s (the whole mix) of the first step.
    pub start_rate: f64,
    /// Never offered above; reaching it passing is an answer (the target is faster).
    pub max_rate: f64,
    /// Never offered below, when even the start rate fails.
    pub min_rate: f64,
    /// Each step's length, its warmup included.
    pub step: Duration,
    /// The leading part of each step, not judged.
    pub warmup: Duration,
    /// Factor between steps until one fails (or, from a failing start, passes).
    pub growth: f64,
    /// Bisecting stops when the lowest failing rate is within this fraction above the
    /// highest passing one.
    pub precision: f64,
}

impl Default for SaturateSpec {
    fn default() -> Self {
        SaturateSpec {
            start_rate: 100.0,
            max_rate: 100_000.0,
            min_rate: 1.0,
            step: Duration::from_secs(15),
            warmup: Duration::from_secs(5),
            growth: 2.0,
            precision: 0.05,
        }
    }
}

/// `[capacity]`: the projector counts to measure and how to get the target to each.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacitySpec {
    pub projectors: Vec<usize>,
    pub scaler: Scaler,
    /// How long to wait for the target to answer after scaling.
    pub ready_timeout: Duration,
    /// Extra wait once it answers (projectors joining a group, caches warming).
    pub settle: Duration,
    /// The answer to `--target-rate R` needs a predicted maximum of R × (1 + headroom).
    pub headroom: f64,
}

impl Default for CapacitySpec {
    fn default() -> Self {
        CapacitySpec {
            projectors: vec![1, 2, 4],
            scaler: Scaler::Embedded,
            ready_timeout: Duration::from_secs(120),
            settle: Duration::ZERO,
            headroom: 0.2,
        }
    }
}

/// How the target gets N projectors.
#[derive(Debug, Clone, PartialEq)]
pub enum Scaler {
    /// `kind = "embedded"`: the harness starts the memory target with N projectors.
    Embedded,
    /// `serve = "--variant outbox …"`: the harness starts `cqrs-bench target serve` with
    /// these arguments and `--projectors N` on a free loopback port, once per count.
    Serve(Vec<String>),
    /// `scale = "kubectl scale … --replicas={{projectors}}"`: run through `sh -c`, its
    /// `${ENV}` passed as variables (issue 32).
    Command(super::ShellCommand),
    /// An HTTP target without `scale` or `serve`: it cannot be scaled by the harness.
    None,
}
