//! The `[[action]]` timeline: at each action's time (from the start of the load) run
//! a shell command or send an HTTP request to the target, and record when and how it
//! went. Actions are markers on every time plot and the start points of recovery times.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::scenario::{ActionKind, ActionSpec, ShellCommand};
use crate::target::{Request, Target};

/// How long an `exec` action may run before it is killed.
const EXEC_TIMEOUT: Duration = Duration::from_secs(60);

/// What happened to one action.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ActionRun {
    /// The action's name (`name`, else its command or request as written).
    pub name: String,
    /// When it started, seconds since the start of the load.
    pub at_s: f64,
    /// Whether it succeeded (exit status 0, or a 2xx answer).
    pub ok: bool,
    /// Exit status or HTTP status, and the first line of any error output.
    pub detail: String,
    /// How long it ran, in milliseconds.
    pub duration_ms: f64,
}

/// Runs the actions on their schedule until done or `stop` (no action starts after it);
/// `abort` (a signal, the run's time bound) also ends the one running, its child killed,
/// so an `exec` action cannot hold a run past its printed bound (issue 32).
pub async fn run<T: Target>(
    actions: Vec<ActionSpec>,
    target: Arc<T>,
    start: Instant,
    stop: CancellationToken,
    abort: CancellationToken,
) -> Vec<ActionRun> {
    let mut runs = Vec::new();
    let mut actions = actions;
    actions.sort_by_key(|a| a.at);
    for action in actions {
        let due = tokio::time::Instant::from_std(start + action.at);
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(due) => {}
        }
        let began = Instant::now();
        let running = async {
            match &action.what {
                ActionKind::Exec(command) => exec(command).await,
                ActionKind::Http { method, path } => {
                    let request = Request {
                        method: method.clone(),
                        path: path.clone(),
                        body: None,
                        headers: Vec::new(),
                        kafka: None,
                    };
                    match target.send(request).await {
                        Ok(reply) => ((200..300).contains(&reply.status), http_detail(reply.status, &reply.body)),
                        Err(failure) => (false, format!("no answer: {}", failure.as_str())),
                    }
                }
            }
        };
        let (ok, detail) = tokio::select! {
            done = running => done,
            _ = abort.cancelled() => (false, "stopped unfinished: the run was interrupted".to_owned()),
        };
        runs.push(ActionRun {
            name: action.name.clone(),
            at_s: began.saturating_duration_since(start).as_secs_f64(),
            ok,
            detail,
            duration_ms: began.elapsed().as_secs_f64() * 1000.0,
        });
    }
    runs
}

/// `HTTP 200`, then the start of the answer when there is one (a replay's figures, an error).
fn http_detail(status: u16, body: &[u8]) -> String {
    let body = String::from_utf8_lossy(body);
    let first = body.lines().next().unwrap_or("").trim();
    if first.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {}", first.chars().take(200).collect::<String>())
    }
}

/// Runs an `exec` action: `sh -c` with its `${ENV}` as variables (issue 32); the first
/// line of its error output is kept, the values of those variables masked.
async fn exec(command: &ShellCommand) -> (bool, String) {
    let child = command.command(&[]).output();
    match tokio::time::timeout(EXEC_TIMEOUT, child).await {
        Err(_) => (false, format!("killed after {EXEC_TIMEOUT:?}")),
        Ok(Err(e)) => (false, format!("could not start: {e}")),
        Ok(Ok(output)) => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let first = command.mask(stderr.lines().next().unwrap_or("").trim());
            let status = output.status.code().map_or("killed by a signal".to_owned(), |c| format!("exit {c}"));
            (output.status.success(), if first.is_empty() { status } else { format!("{status}: {first}") })
        }
    }
}

/// Recovery after an action (PRODUCT §5): from the action until projection lag is back
/// under `threshold` and stays there. Uses the probes in acknowledgement order: the lag
/// first breaks the threshold at or after the action (a late probe breaks it too); it has
/// recovered at the first probe under the threshold after which none breaks it for `hold`
/// (or until the run ends). `Some(0)` when the lag never broke the threshold after the
/// action; `None` when it had not recovered by the end of the run.
pub fn recovery_after(
    at: Duration,
    threshold: Duration,
    hold: Duration,
    probes: &[(Duration, Option<Duration>)],
) -> Option<Duration> {
    let mut after: Vec<_> = probes.iter().filter(|(acked, _)| *acked >= at).copied().collect();
    after.sort_by_key(|(acked, _)| *acked);
    let breaks = |lag: &Option<Duration>| lag.is_none_or(|l| l > threshold);
    let Some(first_break) = after.iter().position(|(_, lag)| breaks(lag)) else {
        return Some(Duration::ZERO);
    };
    let mut good_since: Option<Duration> = None;
    for (acked, lag) in &after[first_break..] {
        if breaks(lag) {
            good_since = None;
        } else {
            let since = *good_since.get_or_insert(*acked);
            if *acked >= since + hold {
                break;
            }
        }
    }
    good_since.map(|since| since.saturating_sub(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// Lag breaks a 100 ms threshold for probes acknowledged in [3 s, 5.5 s).
    fn probes() -> Vec<(Duration, Option<Duration>)> {
        (0..10_000)
            .step_by(50)
            .map(|t| (ms(t), Some(if (3_000..5_500).contains(&t) { ms(900) } else { ms(10) })))
            .collect()
    }

    #[test]
    fn recovery_runs_from_the_action_to_lasting_good_lag() {
        assert_eq!(recovery_after(ms(3_000), ms(100), ms(1_000), &probes()), Some(ms(2_500)));
        assert_eq!(recovery_after(ms(2_000), ms(100), ms(1_000), &probes()), Some(ms(3_500)));
    }

    #[test]
    fn no_break_is_zero_and_no_recovery_is_none() {
        assert_eq!(recovery_after(ms(6_000), ms(100), ms(1_000), &probes()), Some(Duration::ZERO));
        let mut late = probes();
        late.push((ms(9_999), None));
        assert_eq!(recovery_after(ms(9_000), ms(100), ms(1_000), &late), None);
    }
}
