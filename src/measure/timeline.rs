//! The timeline's rows as the generator and the probes fill them in, second by second
//! (result.json's `timeline`): below both, and below the result model that keeps them.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct TimelineRow {
    /// Seconds since the start of the load, of the row's first second.
    pub t_s: u64,
    /// Operations scheduled in this second.
    pub offered: u64,
    /// Goodput: operations completed `ok` or `rejected` in this second.
    pub achieved: u64,
    /// Operations that failed (unexpected status, transport error, timeout) in this second.
    pub errors: u64,
    /// Optimistic-concurrency conflicts completed in this second (not in `achieved`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub conflicts: u64,
    /// Operations dropped in this second (`max_in_flight` and `max_backlog` full).
    pub dropped: u64,
    /// Requests outstanding at the end of the second.
    pub in_flight: u64,
    /// Operations waiting for a slot at the end of the second.
    pub backlog: u64,
    /// `[[backlog]]` (issue 33): per source, the largest backlog sampled in this row
    /// (the row's worst); `null` when every sample in it was unknown; a source with no
    /// sample in the row (sampling had stopped) is absent. Per source, not the worst of
    /// all: sources count different things (entries, positions) and one hides another.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub backlog_sources: BTreeMap<String, Option<u64>>,
    /// Per operation: latency p50 / p99 of the operations completed in this second.
    pub latency_ms: BTreeMap<String, IntervalLatency>,
    /// Projection lag p99 of the probes whose command was acknowledged in this second;
    /// late probes count at the probe timeout, as in `projection.lag_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projection_lag_p99_ms: Option<f64>,
    /// Probes acknowledged in this second that were late.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub projection_late: u64,
    /// The generator's send lag p99 (actual send − intended start) of the operations
    /// finished in this row, warmup included: when the generator fell behind its schedule.
    /// Absent without finished operations (and in results written before issue 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_lag_p99_ms: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct IntervalLatency {
    /// Operations completed in the second.
    pub count: u64,
    /// Median latency, ms.
    pub p50: f64,
    /// 99th percentile latency, ms.
    pub p99: f64,
    /// Largest latency, ms.
    pub max: f64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
