//! Reference CQRS systems of one bank-account domain (PRODUCT §7).
//!
//! A separate world: the harness reaches these only through a `Target`, exactly as
//! it reaches an external system, so every probe is tested against faults the
//! target injects and therefore knows.

mod bank;
mod config;
mod event_sourced;
mod http;
mod memory;
mod outbox;
mod pg_sync;
mod postgres;
mod serve;
mod work;

pub use bank::GroundTruth;
pub use config::{Faults, MemoryConfig, SlowCommands, Window};
pub use memory::{MemoryApp, RESTART_DELAY};
pub use serve::{BadFlag, ReplayArgs, ServeArgs, run_replay, run_serve, serve};
pub use work::ProjectorWork;
