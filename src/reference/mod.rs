//! Reference CQRS systems of one bank-account domain (PRODUCT §7): here the domain, the
//! `memory` target (embedded or served) and the HTTP API every variant shares; the
//! Postgres, outbox and event-sourced variants live in the workspace crate
//! `crates/reference`, built on these modules.
//!
//! A separate world: the harness reaches these only through a `Target`, exactly as
//! it reaches an external system, so every probe is tested against faults the
//! target injects and therefore knows.

pub mod bank;
mod config;
pub mod http;
pub mod memory;
mod serve;
pub mod work;

pub use bank::GroundTruth;
pub use config::{BusKind, Faults, MemoryConfig, SlowCommands, Window};
pub use memory::{MemoryApp, RESTART_DELAY};
pub use serve::{
    BadFlag, REFERENCE_BIN, ReplayArgs, SERVED_APART, ServeArgs, bind, default_schema, run_replay, run_serve, serve,
    usage,
};
pub use work::ProjectorWork;
