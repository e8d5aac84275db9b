//! `[[setup]]`: before the load, each setup request once per key, at its own rate, on the
//! same generator as the load (its figures are kept apart and only counted).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{START_LEAD, SetupOutcome};
use crate::generator::{self, Limits, LoadPlan, OpenSchedule};
use crate::live::Gauges;
use crate::operation::Executor;
use crate::scenario::Scenario;
use crate::target::Target;

/// Longest wait for the last setup requests after their schedule ended.
const SETUP_GRACE: Duration = Duration::from_secs(300);
/// Setup requests under way at once.
pub(super) const SETUP_IN_FLIGHT: usize = 256;

pub async fn run<T: Target>(
    scenario: &Scenario,
    executor: &Arc<Executor<T>>,
    threads: usize,
    shutdown: &CancellationToken,
) -> anyhow::Result<SetupOutcome> {
    let began = Instant::now();
    let mut outcome = SetupOutcome::default();
    let keys = scenario.mix.keys.count;
    let names: Vec<String> = (0..scenario.setup.len()).map(|i| executor.op_name(i).to_owned()).collect();
    for (index, setup) in scenario.setup.iter().enumerate() {
        let rate = setup.rate.max(f64::MIN_POSITIVE);
        let schedule =
            OpenSchedule::constant(rate, Duration::from_secs_f64(keys as f64 / rate + 1.0)).take(keys as usize);
        let plan = LoadPlan {
            executor: executor.clone(),
            gauges: Arc::new(Gauges::default()),
            observer: None,
            threads,
            start: Instant::now() + START_LEAD,
            warmup: Duration::ZERO,
            names: names.clone(),
            stop: shutdown.clone(),
            intervals: None,
            timeline_step: 1,
        };
        let limits = Limits { max_in_flight: SETUP_IN_FLIGHT, max_backlog: usize::MAX };
        // Slot i of the schedule opens key i.
        let mut running = generator::start_open(plan, schedule, limits, |_| move |i: u64| (index, i))?;
        running.schedule_ended().await;
        // Setup must complete, however slowly the target opens accounts: wait for every
        // request (a stuck one still ends at the target timeout), up to SETUP_GRACE; when
        // interrupted, only a short grace, as for the load.
        let interrupted = shutdown.is_cancelled();
        let grace = if interrupted { scenario.target.timeout.min(Duration::from_secs(2)) } else { SETUP_GRACE };
        let generated = running.finish(grace, None).await?;
        let figures = &generated.totals.measured[index];
        if interrupted {
            // Only what was sent: the rest of the keys were never attempted.
            outcome.requests += figures.count;
            outcome.add(figures, 0);
            break;
        }
        // Requests never answered (aborted at the grace) count as errors.
        let unanswered = keys.saturating_sub(figures.count);
        outcome.requests += keys;
        outcome.add(figures, unanswered);
    }
    outcome.duration = began.elapsed();
    Ok(outcome)
}
