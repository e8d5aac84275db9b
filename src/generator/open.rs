//! The open-model dispatcher: sends each operation at its intended start time,
//! whatever happened to the ones before it.
//!
//! It runs on a dedicated OS thread and paces with `nanosleep` (tens of microseconds
//! of overshoot, against tokio's 1 ms timer wheel), and spawns every operation onto
//! the runtime. An operation takes one of `max_in_flight` slots; when none is free it
//! waits in the backlog, its latency still counting from its intended start (that is
//! what makes the figures coordinated-omission-correct); when the backlog is full too,
//! it is counted as dropped and never sent.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::collector::{Gauges, Sample};
use super::executor::Executor;
use crate::probe::lag::LagProbe;
use crate::target::Target;

/// Longest single sleep, so a stop request is seen promptly at low rates.
const MAX_NAP: Duration = Duration::from_millis(5);

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_in_flight: usize,
    pub max_backlog: usize,
}

/// What the dispatcher scheduled, per second of the load.
#[derive(Debug, Default, Clone)]
pub struct Dispatched {
    pub offered_per_s: Vec<u64>,
    pub dropped_per_s: Vec<u64>,
    /// Scheduled at or after `warmup`.
    pub offered_measured: u64,
    pub dropped_measured: u64,
    pub offered: u64,
    pub dropped: u64,
}

impl Dispatched {
    fn count(per_second: &mut Vec<u64>, second: usize) {
        if per_second.len() <= second {
            per_second.resize(second + 1, 0);
        }
        per_second[second] += 1;
    }
}

/// Everything an operation task needs, cloned into each.
pub struct OpTaskContext<T> {
    pub executor: Arc<Executor<T>>,
    pub samples: mpsc::Sender<Sample>,
    pub gauges: Arc<Gauges>,
    pub tracker: TaskTracker,
    /// Cancels operations still running when the drain grace is over.
    pub abort: CancellationToken,
    pub runtime: tokio::runtime::Handle,
    /// Starts projection-lag probes after sampled commands.
    pub lag: Option<Arc<LagProbe<T>>>,
}

/// Paces `schedule` (offsets from `start`) until it ends or `stop` fires.
/// `pick` chooses (operation, key) for the next operation. Blocks: run it on its own thread.
#[allow(clippy::disallowed_methods)] // std::thread::sleep: this is the pacing thread, off the runtime.
pub fn dispatch<T: Target>(
    ctx: &OpTaskContext<T>,
    schedule: impl Iterator<Item = Duration>,
    mut pick: impl FnMut() -> (usize, u64),
    start: Instant,
    warmup: Duration,
    limits: Limits,
    stop: &CancellationToken,
) -> Dispatched {
    let slots = Arc::new(Semaphore::new(limits.max_in_flight.max(1)));
    let mut dispatched = Dispatched::default();
    'schedule: for offset in schedule {
        let intended = start + offset;
        loop {
            if stop.is_cancelled() {
                break 'schedule;
            }
            let now = Instant::now();
            if now >= intended {
                break;
            }
            std::thread::sleep((intended - now).min(MAX_NAP));
        }
        let (op, key) = pick();
        let second = offset.as_secs() as usize;
        let measured = offset >= warmup;
        dispatched.offered += 1;
        dispatched.offered_measured += u64::from(measured);
        Dispatched::count(&mut dispatched.offered_per_s, second);
        ctx.gauges.offered.fetch_add(1, Ordering::Relaxed);

        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) if ctx.gauges.backlog.load(Ordering::Relaxed) < limits.max_backlog as u64 => {
                ctx.gauges.enter_backlog();
                None
            }
            Err(_) => {
                dispatched.dropped += 1;
                dispatched.dropped_measured += u64::from(measured);
                Dispatched::count(&mut dispatched.dropped_per_s, second);
                ctx.gauges.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        let seq = ctx.executor.next_seq();
        let slots = slots.clone();
        let (executor, samples, gauges, abort, lag) =
            (ctx.executor.clone(), ctx.samples.clone(), ctx.gauges.clone(), ctx.abort.clone(), ctx.lag.clone());
        let operation = async move {
            let permit = match permit {
                Some(permit) => permit,
                None => {
                    let permit = slots.acquire_owned().await.expect("the semaphore is never closed");
                    gauges.leave_backlog();
                    permit
                }
            };
            gauges.enter_flight();
            let executed = executor.execute(op, key, seq).await;
            gauges.leave_flight();
            drop(permit);
            if let Some(lag) = &lag {
                lag.after(op, seq, &executed);
            }
            let sample = executed.sample(op, seq, intended);
            // The collector outlives every operation; a send error means the run is over.
            let _ = samples.send(sample).await;
        };
        ctx.runtime.spawn(ctx.tracker.track_future(async move {
            tokio::select! {
                biased;
                _ = abort.cancelled() => {}
                _ = operation => {}
            }
        }));
    }
    dispatched
}
