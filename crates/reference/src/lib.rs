//! The reference targets that need services (PRODUCT §7): `pg-sync` (read model in the
//! command's transaction), `outbox` (relay to Kafka or a Redis stream, projectors into
//! Redis) and `event-sourced` (Postgres event store, checkpointed projector).
//!
//! A crate apart from the harness so that installing the harness does not build their
//! databases' crates; the bank domain, the `memory` target and the HTTP API they all share
//! are the harness's `cqrs_bench::reference`, and nothing else of the harness is named here.
//! Served by the binary `cqrs-bench-reference`, which `cqrs-bench target serve` hands
//! these variants to.

mod event_sourced;
mod outbox;
mod pg_sync;
mod postgres;
mod serve;

pub use serve::{run_replay, run_serve};
