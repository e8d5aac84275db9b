//! One operation, start to finish, below both the generator and the probes: render the
//! request from its compiled templates, send it through the `Target`, classify the
//! answer, keep its captures and the ids it created.
//!
//! The generator decides *when* operations run; the probes decide *what to read back*;
//! both go through `Executor` to talk to the target.

pub mod captures;
pub mod created;
pub mod executor;
pub mod flights;

use std::time::Instant;

use crate::scenario::{Delta, DeltaMode};

pub use executor::{Executed, Executor, Outcome, Outcomes, PreparedOp};

/// The header every probe request carries (`lag`, `staleness`, `verify`, `resolve`), so a target can
/// keep the harness's own reads out of its figures (the memory target does, for its
/// stale-read truth). The mix's operations never carry it.
pub const PROBE_HEADER: &str = "x-cqrs-bench-probe";

/// Which probe sends a request (the value of `PROBE_HEADER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Lag,
    Staleness,
    Verify,
    /// Reads that find the id of a create that answered none (`resolve`, issue 31).
    Resolve,
}

impl Probe {
    pub fn name(self) -> &'static str {
        match self {
            Probe::Lag => "lag",
            Probe::Staleness => "staleness",
            Probe::Verify => "verify",
            Probe::Resolve => "resolve",
        }
    }
}

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
    /// The command's `[verify] deltas` change, per value.
    pub change: ValueChanges,
}

/// What a command does to `[verify] value`'s number, from the body it sent.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum ValueChange {
    /// Not a command of `deltas`.
    #[default]
    None,
    /// Adds this (negative: subtracts).
    Add(f64),
    /// Sets the number to this (`"=/qty"`).
    Set(f64),
    /// Its body had no number at the delta's pointer: the number after it is not known.
    Unknown,
}

// Here rather than beside `Delta` in the scenario: the change is what an operation carries.
impl Delta {
    /// The change a request body, parsed, carries; `Unknown` when it has no number there.
    pub fn of_json(&self, json: &serde_json::Value) -> ValueChange {
        if self.mode == DeltaMode::Unchanged {
            return ValueChange::None;
        }
        let number = json.pointer(&self.pointer).and_then(crate::scenario::selector::number);
        match (number, self.mode) {
            (Some(n), DeltaMode::Add) if n.is_finite() => ValueChange::Add(n),
            (Some(n), DeltaMode::Subtract) if n.is_finite() => ValueChange::Add(-n),
            (Some(n), DeltaMode::Set) if n.is_finite() => ValueChange::Set(n),
            _ => ValueChange::Unknown,
        }
    }
}

/// A command's change to each of `[verify] value`'s numbers, in the scenario's order: a
/// fixed array, so a command carries it without an allocation (issue 31).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ValueChanges(pub [ValueChange; crate::scenario::MAX_VALUES]);

impl ValueChanges {
    /// No change to any number (not a command of `deltas`).
    pub const NONE: ValueChanges = ValueChanges([ValueChange::None; crate::scenario::MAX_VALUES]);

    /// True when it changes no number.
    pub fn is_none(&self) -> bool {
        self.0.iter().all(|c| *c == ValueChange::None)
    }

    /// Value `index`'s change.
    pub fn of(&self, index: usize) -> ValueChange {
        self.0.get(index).copied().unwrap_or_default()
    }
}
