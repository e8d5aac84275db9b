//! Scenario files (PRODUCT §4): TOML text → `RawScenario` (serde mirror) →
//! `Scenario` (checked, units resolved, templates compiled).

mod error;
mod init;
mod keys;
pub mod limits;
mod lint;
mod literal;
mod load;
mod model;
pub mod mutants;
mod raw;
pub mod redact;
pub mod schema;
pub mod selector;
pub mod shell;
pub mod template;
#[cfg(test)]
mod tests;

pub use error::{Located, ScenarioError};
pub use init::starter_scenario;
pub use keys::KeyPicker;
pub use lint::lint;
pub use load::{MAX_PROJECTORS, load, load_bytes, load_str, parse_projector_counts, slo_metric};
pub use model::*;
pub use shell::ShellCommand;
