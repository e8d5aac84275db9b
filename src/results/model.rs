//! The result model: exactly what result.json holds (PRODUCT §6). Field docs here
//! document the file. Times are milliseconds as floats unless the name says otherwise.
//! Paths listed in PRODUCT §6 are stable; adding fields is fine, changing them bumps
//! `SCHEMA_VERSION`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::probe::actions::ActionRun;
pub use crate::probe::reconcile::EventCounts;
// Measured by the stages below, kept in result.json as they hand them over.
pub use crate::measure::histogram::Percentiles;
pub use crate::measure::timeline::{IntervalLatency, TimelineRow};

pub const SCHEMA_VERSION: u32 = 3;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(Default))] // tests fill in what they look at
pub struct RunResult {
    /// The result format's version: it changes when a field changes meaning or goes (fields are added without it).
    pub schema_version: u32,
    /// The cqrs-bench version that wrote the file.
    pub tool_version: String,
    /// `pass` when every SLO holds, else `fail`; always `fail` when no operation got a
    /// successful answer (issue 18: a gate with nothing to judge must not pass).
    pub verdict: Verdict,
    /// Why the run could not be carried out although it ran (exit 3, like `interrupted`):
    /// no operation got a successful answer (every one failed, timed out or was never
    /// answered). The verdict is then `fail` whatever the SLOs say. Absent when the SLOs
    /// decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict_reason: Option<String>,
    /// True when the run was stopped early (Ctrl-C, SIGTERM); figures cover what ran.
    pub interrupted: bool,
    /// UTC start of the load, RFC 3339.
    pub started_at: String,
    /// Length of the load phase that ran, warmup included, in seconds.
    pub duration_s: f64,
    /// Length of the measured window (the load after warmup), in seconds.
    pub measured_s: f64,
    /// Length of the warmup (the leading part of the load, measured but not judged), in seconds.
    pub warmup_s: f64,
    /// This run's id: the first part of every `{{ref}}` it sent.
    pub run_id: String,
    /// One shard of a run spread over processes (`--shard I/N`); `merge` combines them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardInfo>,
    /// The scenario after overrides, with `${ENV}` values left unresolved.
    pub scenario: serde_json::Value,
    /// Where the run ran and what it loaded.
    pub environment: Environment,
    /// Per operation, over the measured window.
    pub operations: BTreeMap<String, OperationStats>,
    /// All commands together, over the measured window.
    pub commands: KindStats,
    /// All queries together, over the measured window.
    pub queries: KindStats,
    /// Offered and achieved rates over the measured window.
    pub throughput: Throughput,
    /// The generator's own accuracy: how late operations were sent against their intended start.
    pub generator: GeneratorStats,
    /// Setup requests (outside every SLO figure).
    pub setup: SetupStats,
    /// Operations during warmup (measured, not judged).
    pub warmup: WarmupStats,
    /// The projection-lag probe (`[projection]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projection: Option<ProjectionStats>,
    /// Ids of creates that answered none, found by reading (`resolve`, issue 31), by
    /// create operation: how many were looked for, resolved, unresolved (never used),
    /// and the acknowledgement → found lag. Absent without `resolve`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub created: BTreeMap<String, crate::probe::resolve::ResolveStats>,
    /// The read-your-writes probe (`[staleness]`): P(fresh) per delay after the ack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staleness: Option<StalenessStats>,
    /// What the probes sent to the target during the load (issue 30): their reads load
    /// the system they measure. Absent without probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_load: Option<ProbeLoad>,
    /// Event accounting from the read model after the load (`[verify]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<EventCounts>,
    /// Value accounting from the read model after the load (`[verify] value`): per key,
    /// the number against the sum of acknowledged deltas or the write side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<crate::probe::values::ValueCounts>,
    /// Count accounting from the read model after the load (`[verify] count`): per key,
    /// rows per command kind against its acknowledged commands (issue 31).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<crate::probe::counts::RowCounts>,
    /// How the reconciliation went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyStats>,
    /// The Kafka bus probe (`[bus]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<BusStats>,
    /// `[[backlog]]` sources (issue 33): entries behind per sample, maximum, drain time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backlog: Vec<crate::probe::backlog::BacklogStats>,
    /// `[[action]]`s as they ran.
    #[serde(default)]
    pub actions: Vec<ActionRun>,
    /// Per action: the time until projection lag was back under its SLO.
    #[serde(default)]
    pub recovery: Vec<Recovery>,
    /// For the embedded reference target: what it injected, from its own books
    /// (`GET /admin/ground-truth` of `target serve`), to check the harness against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_truth: Option<serde_json::Value>,
    /// One row per `timeline_step_s` seconds of the load (1 up to an hour; a longer run's
    /// rows are longer so there are at most 3,600; the per-second latency and lag are
    /// in the .hlog files).
    pub timeline: Vec<TimelineRow>,
    /// The seconds each timeline row covers (its counts are sums over them).
    #[serde(default = "one_second", skip_serializing_if = "is_one_second")]
    pub timeline_step_s: u64,
    /// Every `[slo]` rule with its threshold, the observed figure and whether it held.
    pub slo: Vec<SloResult>,
    /// Things the run noticed that may make its figures misleading (a probe predicate that
    /// does not fit the read model's answers, …); also printed on stderr.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(Default))]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    #[cfg_attr(test, default)]
    Pass,
    Fail,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(Default))]
pub struct Environment {
    /// The host name of the machine that ran the load.
    pub host: String,
    /// Its operating system (`linux`, `macos`, …).
    pub os: String,
    /// Its CPU architecture (`x86_64`, `aarch64`, …).
    pub arch: String,
    /// Its logical CPU cores.
    pub cores: usize,
    /// `git rev-parse HEAD` of the working directory, when it is a checkout.
    pub git_revision: Option<String>,
    /// Where the load went: `embedded:memory` or the base URL.
    pub target: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(test, derive(Default))]
pub struct OperationStats {
    /// `command` or `query`.
    pub kind: String,
    /// Operations completed (answered or failed) in the measured window.
    pub count: u64,
    /// Answered with an expected status.
    pub ok: u64,
    /// Answered with a `reject_status` (or matched by `reject`): a business refusal,
    /// neither success nor error.
    pub rejected: u64,
    /// Matched by the `conflict` rule: an optimistic-concurrency conflict. Neither
    /// goodput nor error; no event expected (issue 31). 0 in results written before.
    #[serde(default)]
    pub conflicts: u64,
    /// conflicts / answered (every operation that got an answer); 0 when none did.
    #[serde(default)]
    pub conflict_rate: f64,
    /// Failed: an unexpected status, a transport error or a timeout (by class in `errors_by_class`).
    pub errors: u64,
    /// `connect`, `timeout`, `body`, `transport`, `status`.
    pub errors_by_class: BTreeMap<String, u64>,
    /// Unexpected statuses by code.
    pub errors_by_status: BTreeMap<String, u64>,
    /// Intended start → last byte of the answer (coordinated-omission-correct), for every
    /// operation that got an answer; null when none did (no samples: not a latency of 0).
    pub latency_ms: Option<Percentiles>,
    /// Actual send → last byte of the answer; null when no operation got an answer.
    pub service_time_ms: Option<Percentiles>,
    /// The latency histogram, HdrHistogram V2 + deflate, base64, values in microseconds.
    pub histogram: String,
    /// The service-time histogram, same encoding.
    pub service_time_histogram: String,
}

impl OperationStats {
    /// Operations that got an answer: ok, refused, in conflict or with an unexpected status.
    pub fn answered(&self) -> u64 {
        let unexpected_statuses = self.errors_by_class.get("status").copied().unwrap_or(0);
        self.ok + self.rejected + self.conflicts + unexpected_statuses
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct KindStats {
    /// Operations of this kind completed in the measured window.
    pub count: u64,
    /// Answered with an expected status.
    pub ok: u64,
    /// Refused by a business rule (`reject_status` / `reject`).
    pub rejected: u64,
    /// Optimistic-concurrency conflicts (the operations' `conflict` rules).
    #[serde(default)]
    pub conflicts: u64,
    /// conflicts / answered; 0 when nothing was answered.
    #[serde(default)]
    pub conflict_rate: f64,
    /// Failed: unexpected statuses, transport errors and timeouts.
    pub errors: u64,
    /// errors / count.
    pub error_rate: f64,
    /// Intended start → last byte of the answer, over the answered operations.
    pub latency_ms: Percentiles,
    /// Actual send → last byte of the answer.
    pub service_time_ms: Percentiles,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Throughput {
    /// Operations scheduled per second of the measured window.
    pub offered_per_s: f64,
    /// Goodput: operations per second of the measured window that succeeded or were
    /// refused by a business rule (`ok` + `rejected`); errors and timeouts are not in it
    /// (issue 12). `min_throughput` judges this figure.
    pub achieved_per_s: f64,
    /// Operations scheduled in the measured window.
    pub offered: u64,
    /// Goodput: operations of the measured window answered `ok` or `rejected`.
    pub achieved: u64,
    /// Operations of the measured window that failed: unexpected statuses, transport
    /// errors and timeouts. `achieved` + conflicts + `errors` = every completed operation.
    #[serde(default)]
    pub errors: u64,
    /// `errors` per second of the measured window.
    #[serde(default)]
    pub errors_per_s: f64,
    /// Scheduled operations never sent because `max_in_flight` and `max_backlog` were full.
    pub dropped: u64,
    /// Sent but not answered when the run ended (interrupted or past the drain grace).
    pub unfinished: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct GeneratorStats {
    /// Generator threads the load ran on (`--threads`, issue 11); null in results
    /// written before it was recorded.
    #[serde(default)]
    pub threads: Option<u64>,
    /// Actual send − intended start (includes waiting for a free slot), over the load
    /// operations scheduled after warmup; the warmup's is in `warmup.send_lag_ms`. Null
    /// when nothing was sent after the warmup (`send_lag_unknown` says so).
    pub send_lag_ms: Option<Percentiles>,
    /// Why `send_lag_ms` is null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_lag_unknown: Option<String>,
    /// The seconds after the warmup whose send-lag p99 (timeline `send_lag_p99_ms`) was
    /// over a bound: the generator fell behind its schedule, so the latencies of those
    /// seconds include its own lateness (issue 30). Absent in results written before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_lag_over_bound: Option<SendLagOverBound>,
    /// Most requests outstanding at once.
    pub max_in_flight: u64,
    /// Most operations waiting for a slot at once.
    pub max_backlog: u64,
    /// What the backlog held at its peak: `max_backlog` × the bytes of one waiting slot
    /// (issue 17: a waiting operation is a schedule slot, rendered when a lane takes it).
    #[serde(default)]
    pub max_backlog_bytes: u64,
    /// Answers longer than `[target] max_body`: their first `max_body` bytes were kept, the
    /// rest read and dropped (issue 16).
    #[serde(default)]
    pub truncated_bodies: u64,
}

/// How long the generator's send lag was over its bound after the warmup.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SendLagOverBound {
    /// 10 % of the tightest command-latency SLO, else 10 ms.
    pub bound_ms: f64,
    /// Where the bound comes from, e.g. `10 % of command_latency_p95 = 200 ms`.
    pub bound_from: String,
    /// Seconds whose send-lag p99 was over the bound (0: the generator kept up).
    pub seconds: u64,
    /// The first and last such second since the start of the load; null when none.
    pub first_s: Option<u64>,
    /// The last such second; null when none.
    pub last_s: Option<u64>,
}

impl SendLagOverBound {
    /// `send lag p99 over 10 ms in 5 s (12 s … 16 s; bound: …)`, or `None` when it never was.
    pub fn describe(&self) -> Option<String> {
        let (first, last) = (self.first_s?, self.last_s?);
        let when = if first == last { format!("at {first} s") } else { format!("{first} s … {last} s") };
        (self.seconds > 0).then(|| {
            format!("send lag p99 over {} ms in {} s ({when}; bound: {})", self.bound_ms, self.seconds, self.bound_from)
        })
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct SetupStats {
    /// Setup requests sent (one per key and `[[setup]]`).
    pub requests: u64,
    /// Answered with an expected status.
    pub ok: u64,
    /// Failed (see `errors_by_class`).
    pub errors: u64,
    /// The errors by class, as in `operations` (`connect`, `timeout`, `body`, `transport`,
    /// `status`), and `unanswered`: no answer within the setup's grace.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors_by_class: BTreeMap<String, u64>,
    /// Unexpected statuses by code.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors_by_status: BTreeMap<String, u64>,
    /// How long the setup took, in seconds.
    pub duration_s: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct WarmupStats {
    /// Operations completed during the warmup.
    pub count: u64,
    /// Of those, failed.
    pub errors: u64,
    /// Their latency (intended start → last byte).
    pub latency_ms: Percentiles,
    /// The generator's send lag during warmup (null in results written before it was
    /// kept apart, when `generator.send_lag_ms` covered the warmup too).
    #[serde(default)]
    pub send_lag_ms: Option<Percentiles>,
    /// Per operation, the warmup's own figures (the same fields as `operations`): with
    /// `operations`, they add up to what event accounting (`events.acked`) covers, which
    /// is every command of the load, warmup included. Absent in results written before.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub operations: BTreeMap<String, OperationStats>,
}

impl RunResult {
    /// Seconds per timeline row (at least 1).
    pub fn timeline_step(&self) -> u64 {
        self.timeline_step_s.max(1)
    }

    /// "second", or "N s" for a longer row, for titles and captions.
    pub fn timeline_row_label(&self) -> String {
        match self.timeline_step() {
            1 => "second".into(),
            n => format!("{n} s"),
        }
    }
}

fn one_second() -> u64 {
    1
}

fn is_one_second(step: &u64) -> bool {
    *step == 1
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct ProjectionStats {
    /// Probes that finished (visible or late).
    pub probes: u64,
    /// Not visible within the probe timeout.
    pub late: u64,
    /// Sampled commands not probed because too many probes were running.
    pub skipped: u64,
    /// Sampled commands not probed because `until` reads `{{key.acked}}` or
    /// `{{key.expected}}` and another command on their key overlapped them, or one before
    /// them got no answer: what the read model must show after them is not known (issue 31).
    /// Neither visible nor late, and not in the lag figures.
    #[serde(default)]
    pub ambiguous: u64,
    /// Probe polls sent (probe load, not part of the query figures).
    pub polls: u64,
    /// Polls that got no usable answer (an error status, a timeout, a body that is not JSON).
    pub poll_errors: u64,
    /// The poll interval: lag is known to this resolution, or to 5 % of the lag when that
    /// is coarser (probes waiting long poll less often, see `probe::lag`).
    pub resolution_ms: f64,
    /// The probe timeout: a late probe's lag is at least this.
    pub timeout_ms: f64,
    /// Late probes are recorded at the timeout: a percentile equal to it means ≥ timeout
    /// (the lag is censored there). Equals `timeout_ms`; `null` in files written before
    /// issue 12, whose figures cover visible probes only.
    #[serde(default)]
    pub censored_at_ms: Option<f64>,
    /// Acknowledgement → first poll that shows the command, over every probe, late ones
    /// at `censored_at_ms` (so p99 reaches the timeout when more than 1 % are late).
    /// Percentiles are capped at `censored_at_ms`.
    pub lag_ms: Percentiles,
    /// The lag histogram (late probes at the timeout), HdrHistogram V2 + deflate, base64,
    /// microseconds.
    pub histogram: String,
    /// Where the lag comes from, stage by stage (with `[bus]` or `[projection.stages]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution: Option<crate::probe::attribution::LagAttribution>,
}

/// The probes' requests: lag polls and read-your-writes reads (`[verify]` reads the read
/// model after the load, so it is not counted). Includes the probes finishing after the
/// load's last operation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProbeLoad {
    /// Probe requests sent during the load (lag polls and staleness reads).
    pub requests: u64,
    /// Per second of the load phase (warmup included).
    pub per_s: f64,
    /// Probe requests over all requests sent during the load (probes and operations).
    pub share_of_requests: f64,
    /// `projection.polls`.
    pub lag_polls: u64,
    /// `staleness.reads`.
    pub staleness_reads: u64,
    /// `created.<op>.polls`: reads that found the ids of creates (`resolve`).
    #[serde(default)]
    pub resolve_polls: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct VerifyStats {
    /// Sweeps over the written keys until the read model settled.
    pub sweeps: u32,
    /// From the end of the load to the last sweep, in seconds.
    pub settled_after_s: f64,
    /// Memory held by the ledger of refs, in bytes.
    pub ledger_bytes: u64,
    /// Stopped by Ctrl-C or SIGTERM before the read model settled (issue 18): the counts
    /// are those of the last whole sweep, or absent when none finished.
    #[serde(default)]
    pub cut_short: bool,
    /// Why the sweeps stopped: `complete`, `judged`, `settle` or `signal` (issue 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<crate::probe::verify::Stopped>,
    /// The same, in words, with what was left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_because: Option<String>,
    /// The time rule's bound (twice the longest probed lag), when the lag probes gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_bound_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Recovery {
    /// The `[[action]]`'s name.
    pub action: String,
    /// When the action ran, seconds since the start of the load.
    pub at_s: f64,
    /// Seconds until projection lag was back under its SLO and stayed; 0 if it never
    /// broke it; `null` if it had not recovered by the end of the run.
    pub recovered_after_s: Option<f64>,
    /// The lag threshold used, in milliseconds.
    pub threshold_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SloResult {
    /// The rule as written in `[slo]`, e.g. `command_latency_p95`.
    pub name: String,
    /// Milliseconds for times, a count for counts, a fraction for rates, ops/s for throughput.
    pub threshold: f64,
    /// `None` when the run produced no data for it (e.g. no queries ran): that fails.
    pub observed: Option<f64>,
    /// Whether the rule held (false when `observed` is null).
    pub pass: bool,
    /// `<=` or `>=`: how observed is compared with threshold.
    pub comparison: String,
    /// `ms`, `count`, `ratio` or `ops/s`.
    pub unit: String,
    /// Why there is no observed figure (e.g. "no [verify] value accounting ran").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_because: Option<String>,
    /// What the observed figure leaves out (e.g. "and 58 keys unsure: commands without an
    /// answer"): the rule fails even when the figure meets it (issue 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsure: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct BusStats {
    /// The topic read, as written in `[bus]`.
    pub topic: String,
    /// Events the probe read.
    pub messages: u64,
    /// Distinct refs of this run seen on the bus.
    pub seen: u64,
    /// Acknowledged commands whose event never reached the bus.
    pub missed: u64,
    /// Extra copies of events already seen.
    pub duplicates: u64,
    /// Refs of this run on the bus that were never acknowledged.
    pub unexpected: u64,
    /// Events without a ref of this run.
    pub foreign: u64,
    /// Which broker timestamp the end-to-end times use: `CreateTime` or `LogAppendTime`.
    pub timestamp_type: String,
    /// Acknowledgement → broker timestamp, over every 8th command (clamped at 0: an event
    /// can be appended before the acknowledgement reaches the harness).
    pub e2e_ms: Percentiles,
    /// Commands whose event was timed on the bus.
    pub e2e_samples: u64,
    /// HdrHistogram V2 + deflate, base64, microseconds.
    pub e2e_histogram: String,
    /// Per consumer group: lag in messages and seconds, sampled every second.
    pub consumer_lag: BTreeMap<String, crate::probe::bus::GroupLag>,
}

/// Which shard a result is, and how well it kept the common start.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ShardInfo {
    /// This shard's index I of `--shard I/N`.
    pub index: u32,
    /// The number of shards N.
    pub count: u32,
    /// `--start-at`, RFC 3339; `None`: the shard started after its own setup.
    pub start_at: Option<String>,
    /// How far after `start_at` this shard's load began, on its own clock (its setup ran
    /// past the start): 0 when it was on time.
    pub start_late_ms: f64,
    /// The target's clock minus this host's (its `Date` header's second boundary), and
    /// how well it is known (±): how far this shard's schedule sits from its siblings'.
    #[serde(default)]
    pub clock_offset_ms: Option<f64>,
    /// How well `clock_offset_ms` is known (±, ms).
    #[serde(default)]
    pub clock_offset_error_ms: Option<f64>,
    /// Why the offset is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_unknown: Option<String>,
    /// Merged results: the shards' results folders, in index order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<String>,
    /// Merged results: the largest difference between the shards' clock offsets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_spread_ms: Option<f64>,
}

/// `[staleness]`: the t-visibility curve, P(a read t ms after the acknowledgement is fresh).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StalenessStats {
    /// Commands whose reads were made (after the warmup).
    pub sampled: u64,
    /// Commands sampled while every probe slot was busy: not read.
    pub skipped: u64,
    /// Reads made, over every delay (probe load, kept out of the query figures).
    pub reads: u64,
    /// Reads that got no answer (not counted as stale or fresh).
    pub errors: u64,
    /// One point per `[staleness]` delay: P(fresh) at that time after the acknowledgement.
    pub points: Vec<StalenessPoint>,
    /// Smallest delay from which on every point has P(fresh) ≥ 99 %; `None`: none has.
    pub fresh_p99_at_ms: Option<f64>,
    /// The same for 99.9 %.
    pub fresh_p999_at_ms: Option<f64>,
    /// Stale reads in the normal traffic, per judged query (`[staleness] traffic`).
    #[serde(default)]
    pub traffic: Vec<TrafficStaleness>,
    /// Commands on keys beyond what the traffic judge tracks (their reads not judged).
    #[serde(default)]
    pub traffic_untracked: u64,
}

impl StalenessStats {
    /// Stale share over every judged read of the traffic; `None` without judged reads.
    pub fn traffic_stale_rate(&self) -> Option<f64> {
        let reads: u64 = self.traffic.iter().map(|t| t.reads).sum();
        let stale: u64 = self.traffic.iter().map(|t| t.stale).sum();
        (reads > 0).then(|| stale as f64 / reads as f64)
    }
}

/// One query of the traffic, judged against the commands acknowledged on its key
/// before it was sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TrafficStaleness {
    /// The judged `[[query]]`.
    pub query: String,
    /// Reads after the warmup of a key with a command acknowledged before they were sent.
    pub reads: u64,
    /// Reads whose answer did not show every such command.
    pub stale: u64,
    /// Reads of keys with too many unseen commands to judge.
    pub unjudged: u64,
    /// stale / reads; `None` without reads.
    pub stale_rate: Option<f64>,
    /// 95 % Wilson score interval of `stale_rate`.
    pub stale_rate_low: Option<f64>,
    /// Upper end of that interval.
    pub stale_rate_high: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StalenessPoint {
    /// The delay after the acknowledgement at which the reads were sent.
    pub delay_ms: f64,
    /// Reads made at this delay.
    pub reads: u64,
    /// Reads whose answer showed the command.
    pub fresh: u64,
    /// Reads that got no answer (neither fresh nor stale).
    pub errors: u64,
    /// fresh / reads; `None` without reads.
    pub p_fresh: Option<f64>,
    /// 95 % Wilson score interval of `p_fresh`.
    pub p_fresh_low: Option<f64>,
    /// Upper end of that interval.
    pub p_fresh_high: Option<f64>,
    /// Mean delay actually waited before the read was sent (timers are not exact).
    pub mean_actual_delay_ms: f64,
}
