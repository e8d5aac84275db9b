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
pub mod stale_reads;
pub mod staleness;
pub mod values;
pub mod verify;

/// Is command `seq` in the sample? A fixed hash of (seed, seq) under `threshold` (a
/// fraction of `u64::MAX`): the same commands are sampled in every run with this seed.
pub(crate) fn sampled(seq: u64, seed: u64, threshold: u64) -> bool {
    let mut x = seq ^ seed.rotate_left(17) ^ 0x9E37_79B9_7F4A_7C15;
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    x < threshold || threshold == u64::MAX
}
