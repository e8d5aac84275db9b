//! What the outbox's relay and projectors agree on whatever carries the events: the
//! event record, and the choice of bus (`--bus`).
//!
//! Decision (issue 33): two buses, Kafka and a Redis stream, behind one small enum on
//! each side (`relay::Outlet` publishes, `projector::Inbox` consumes), so the relay's
//! outbox transaction, the projector's fault injection, work and read model are written
//! once. What differs is only how an event is sent, taken, marked applied and committed.

use serde::{Deserialize, Serialize};

pub use cqrs_bench::reference::BusKind;

/// One outbox row on the topic (JSON). The harness's `[bus]` probe finds the command's
/// ref at `/ref`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutboxEvent {
    pub account: String,
    /// The account's version after this event (0: the opening).
    pub version: i64,
    pub delta: i64,
    #[serde(rename = "ref")]
    pub op_ref: Option<String>,
    /// When the command committed, ms since the Unix epoch.
    pub at_ms: i64,
}
