//! The result of a run: the model written as result.json, how it is built from what
//! the generator collected, SLO verdicts, and atomic writing.

mod build;
pub mod histogram;
mod input;
pub mod intervals;
pub mod model;
pub mod schema;
pub mod send_lag;
pub mod slo;
mod write;

pub use build::{BuildInput, build, judge_rules, probe_load};
pub use input::{MAX_RESULT_BYTES, open_regular, read_regular, read_result};
pub use model::{RunResult, Verdict};
pub use write::{write_atomic, write_json};
