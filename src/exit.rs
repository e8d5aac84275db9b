//! Exit codes (PRODUCT §3), decided in one place.

/// All SLOs met.
pub const PASS: i32 = 0;
/// An SLO was violated: the CI gate.
pub const SLO_VIOLATED: i32 = 1;
/// Usage or scenario error.
pub const USAGE: i32 = 2;
/// The run could not be carried out (target unreachable, aborted).
pub const RUN_FAILED: i32 = 3;

/// Marks an error as the user's input being wrong (exit 2).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Usage(pub anyhow::Error);

/// Marks an error as the run being impossible (exit 3).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct RunFailure(pub anyhow::Error);

/// The exit code for an error that ended a command.
pub fn code_for(error: &anyhow::Error) -> i32 {
    if error.downcast_ref::<crate::scenario::ScenarioError>().is_some()
        || error.downcast_ref::<Usage>().is_some()
        || error.downcast_ref::<clap::Error>().is_some()
    {
        USAGE
    } else {
        RUN_FAILED
    }
}
