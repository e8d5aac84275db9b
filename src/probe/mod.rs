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
pub mod attribution;
pub mod backlog;
pub mod bus;
pub mod counts;
pub mod key_facts;
pub mod lag;
pub mod lag_figures;
pub mod ledger;
pub mod paging;
pub mod reconcile;
pub mod resolve;
pub mod shape;
pub mod shared_poll;
pub mod stale_reads;
pub mod staleness;
pub mod values;
pub mod verify;
pub mod write_one;

/// Which commands a probe samples: a fixed hash of (seed, seq) under a threshold, so the
/// same commands are sampled in every run with this seed, and another part of the run
/// (the bus probe, for lag attribution) can tell which ones a probe picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sampling {
    seed: u64,
    /// A fraction of `u64::MAX`.
    threshold: u64,
}

impl Sampling {
    pub fn new(fraction: f64, seed: u64) -> Sampling {
        Sampling { seed, threshold: (fraction.clamp(0.0, 1.0) * u64::MAX as f64) as u64 }
    }

    /// Is command `seq` in the sample?
    pub fn picks(&self, seq: u64) -> bool {
        let mut x = seq ^ self.seed.rotate_left(17) ^ 0x9E37_79B9_7F4A_7C15;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        x < self.threshold || self.threshold == u64::MAX
    }
}
