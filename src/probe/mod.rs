//! Probes: what makes this more than an HTTP load tool.
//!
//! Words, used with one meaning each across the crate:
//! - **command**: an operation that changes state (`[[command]]`); the target
//!   *acknowledges* it with an expected status, and then an **event** must follow.
//! - **event**: the fact a command produced, carried on the bus to projectors.
//! - **projection**: a projector applying events to a **read model**, which
//!   **queries** (`[[query]]`) read.
//! - **projection lag**: from a command's acknowledgement to the first poll at which
//!   the read model shows it.
//! - **ref**: the unique id `{{ref}}` a command carries into its event and the read
//!   model (`RUNID.SHARD.SEQ`, see `refs`).
//!
//! `ledger` keeps what was sent; `reconcile` compares it with the read model after
//! the load.

pub mod actions;
pub mod bus;
pub mod lag;
pub mod ledger;
pub mod reconcile;
pub mod shape;
pub mod values;
pub mod verify;
