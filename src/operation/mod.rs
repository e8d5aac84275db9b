//! One operation, start to finish, below both the generator and the probes: render the
//! request from its compiled templates, send it through the `Target`, classify the
//! answer, keep its captures and the ids it created.
//!
//! The generator decides *when* operations run; the probes decide *what to read back*;
//! both go through `Executor` to talk to the target.

pub mod captures;
pub mod created;
pub mod executor;

use std::time::Instant;

pub use executor::{Executed, Executor, Outcome, PreparedOp};

/// One finished operation, as the figures and the ledger see it.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Index into the scenario's operations.
    pub op: usize,
    pub seq: u64,
    pub key: u64,
    /// Its slot in the schedule (closed model: when the user started it).
    pub intended: Instant,
    pub sent: Instant,
    pub done: Instant,
    pub outcome: Outcome,
    /// The command's `[verify] deltas` change (0 when none, NaN when unknown).
    pub delta: f64,
}
