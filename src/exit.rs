//! Exit codes (PRODUCT §3), decided in one place.

/// All SLOs met.
pub const PASS: i32 = 0;
/// An SLO was violated: the CI gate.
pub const SLO_VIOLATED: i32 = 1;
/// Usage or scenario error.
pub const USAGE: i32 = 2;
/// The run could not be carried out (target unreachable, aborted), or its results could
/// not all be written (a full disk: issue 32).
pub const RUN_FAILED: i32 = 3;

/// Marks an error as the user's input being wrong (exit 2).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Usage(pub anyhow::Error);

/// Marks an error as the run being impossible (exit 3).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct RunFailure(pub anyhow::Error);

/// Marks an error as output that could not be written (a full disk, a folder in the way):
/// exit 3, like a run that could not be carried out, whatever wraps it; what was written
/// stays (issue 32: a full disk ended in exit 0 without report.html and junit.xml).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct OutputFailure(pub anyhow::Error);

/// An error of a command that reads the user's files (`report`, `compare`, `merge`): the
/// input's fault (exit 2), unless it is output that could not be written (exit 3).
pub fn input_error(error: anyhow::Error) -> anyhow::Error {
    if error.downcast_ref::<OutputFailure>().is_some() || error.downcast_ref::<RunFailure>().is_some() {
        error
    } else {
        Usage(error).into()
    }
}

/// The exit code for an error that ended a command.
pub fn code_for(error: &anyhow::Error) -> i32 {
    if error.downcast_ref::<OutputFailure>().is_some() {
        RUN_FAILED
    } else if error.downcast_ref::<crate::scenario::ScenarioError>().is_some()
        || error.downcast_ref::<Usage>().is_some()
        || error.downcast_ref::<crate::reference::BadFlag>().is_some()
        || error.downcast_ref::<clap::Error>().is_some()
    {
        USAGE
    } else {
        RUN_FAILED
    }
}
