//! The result of a run: the model written as result.json, how it is built from what
//! the generator collected, SLO verdicts, and atomic writing.

mod build;
mod input;
pub mod model;
pub mod outcome;
pub mod schema;
pub mod send_lag;
pub mod slo;
mod write;

// Their old paths, which the report, `merge` and the library's users name.
pub use crate::measure::{histogram, intervals};

pub use build::{BuildInput, build, judge_rules, probe_load};
pub use input::{MAX_RESULT_BYTES, open_regular, read_regular, read_result};
pub use model::{RunResult, Verdict};
pub use write::{write_atomic, write_json};
