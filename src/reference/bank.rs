//! The bank-account domain every reference variant serves: the operations the HTTP
//! layer needs, so one set of endpoints fronts the in-memory system and the Postgres ones,
//! and the books (`GroundTruth`) each keeps of what it did. Below the stores and the server.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Why a command was not accepted (or a read failed).
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    NotFound,
    Exists,
    InsufficientFunds,
    /// `fail_every`: an injected server error.
    Injected,
    /// The event bus is full: back-pressure.
    BusFull,
    /// The store failed (database down, pool exhausted…).
    Unavailable(String),
}

/// An accepted deposit or withdrawal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Changed {
    pub version: u64,
    pub balance: i64,
    /// Answer this much later (the `slow_commands` fault).
    pub answer_after: Option<Duration>,
}

/// One account as the read model shows it.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub id: String,
    pub balance: i64,
    pub version: u64,
    /// The requested slice (`RefSlice`) of the refs of the applied commands, in the order
    /// they were applied.
    pub refs: Vec<Arc<str>>,
    /// How many refs the account has applied in all.
    pub refs_total: u64,
    /// The highest version v such that every version up to v is applied (a dropped or
    /// not yet applied event holds it back): what the memory target's stale-read truth
    /// compares with the acknowledged version. Variants that apply in order: `version`.
    pub applied_through: u64,
    /// When the projector took the account's last applied event and applied it, where
    /// the variant knows (`GET /accounts/{id}` `last_event`, for lag attribution).
    pub last_event: Option<EventTimes>,
}

/// The projector's own times of one event, ms since the Unix epoch (µs precision).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventTimes {
    pub op_ref: Option<Arc<str>>,
    /// Taken off the bus (after a projector pause; before the injected delay and work).
    pub received_at: f64,
    /// Written to the read model.
    pub applied_at: f64,
}

/// Now, in ms since the Unix epoch with µs precision (`EventTimes`).
pub fn now_ms() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_micros() as f64 / 1e3)
}

/// Which of an account's applied refs a read returns. Every answer is bounded (issue 18:
/// `GET /accounts/{id}` with every ref ever applied grew to 485 KB and the target collapsed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefSlice {
    /// The last `n` applied.
    Last(usize),
    /// `len` refs from position `start` (0-based, in the order applied).
    Range { start: usize, len: usize },
}

impl RefSlice {
    /// The positions this slice covers among `total` refs.
    pub fn bounds(self, total: usize) -> std::ops::Range<usize> {
        match self {
            RefSlice::Last(n) => total.saturating_sub(n)..total,
            RefSlice::Range { start, len } => start.min(total)..start.saturating_add(len).min(total),
        }
    }
}

/// A reference CQRS system of the bank domain.
pub trait Bank: Clone + Send + Sync + 'static {
    /// Waits out a stop-the-world stall, when one is injected.
    fn before_request(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
    fn open(&self, account: &str) -> impl Future<Output = Result<u64, Refusal>> + Send;
    /// `delta > 0` deposits, `delta < 0` withdraws.
    fn change(&self, account: &str, delta: i64, op_ref: &str) -> impl Future<Output = Result<Changed, Refusal>> + Send;
    /// The read model's view of one account with `refs` of its applied refs (`Ok(None)`:
    /// not there).
    fn view(&self, account: &str, refs: RefSlice) -> impl Future<Output = Result<Option<View>, Refusal>> + Send;
    /// The `limit` accounts with the highest balance in the read model: (id, balance, version).
    fn top(&self, limit: usize) -> impl Future<Output = Result<Vec<(String, i64, u64)>, Refusal>> + Send;
    /// What the system did, from its own books.
    fn ground_truth(&self) -> GroundTruth;
    /// A command's 200 is about to be written: `version` of `account` is acknowledged.
    /// (Only the memory target keeps this, for its stale-read truth.)
    fn acknowledged(&self, _account: &str, _version: u64) {}
    /// The highest acknowledged version of `account`; `None` when not kept.
    fn acknowledged_version(&self, _account: &str) -> Option<u64> {
        None
    }
    /// A read of the normal traffic (no probe header) of an account with `acked` ≥ 1
    /// acknowledged before it arrived, which answered `view`: counts it, stale or fresh.
    fn count_traffic_read(&self, _acked: u64, _view: Option<&View>) {}
}

/// What the target did, from its own books: the truth the harness is checked against.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GroundTruth {
    /// Deposits and withdrawals accepted (each emits one event).
    pub accepted: u64,
    /// Refs of events lost on the bus (never applied).
    pub dropped_refs: Vec<String>,
    /// One entry per extra application to the read model (a ref applied 3 times appears twice).
    pub duplicated_refs: Vec<String>,
    /// Commands refused with 500 by `fail_every` (not applied).
    pub failed_commands: u64,
    /// Refs of commands applied, then answered late by `slow_commands`.
    pub slow_refs: Vec<String>,
    /// Projector crashes and restarts.
    pub crashes: u64,
    /// Optimistic-concurrency conflicts retried (event-sourced variant).
    #[serde(default)]
    pub conflicts: u64,
    /// Reads of `GET /accounts/{id}` without the harness's probe header, of an account
    /// with a deposit or withdrawal acknowledged (its 200 about to be written) before the
    /// read arrived (memory target).
    #[serde(default)]
    pub traffic_reads: u64,
    /// Those whose answer did not yet reflect every such command: the account's
    /// contiguously applied version was below the acknowledged one.
    #[serde(default)]
    pub stale_reads: u64,
}
