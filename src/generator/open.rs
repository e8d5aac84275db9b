//! The open-model dispatcher: sends each operation at its intended start time,
//! whatever happened to the ones before it.
//!
//! It runs on a dedicated OS thread and paces with `nanosleep` (tens of microseconds
//! of overshoot, against tokio's 1 ms timer wheel). An operation takes one of
//! `max_in_flight` lanes: a task on the runtime that sends it. When every lane is busy it
//! waits in the backlog, its latency still counting from its intended start (that is
//! what makes the figures coordinated-omission-correct); when the backlog is full too,
//! it is counted as dropped and never sent.
//!
//! The backlog is a queue of schedule slots (intended start, operation, key, sequence:
//! `BACKLOG_SLOT_BYTES` each), not of tasks: a lane that finishes takes the oldest slot
//! and renders it only then (issue 17: a task per waiting operation cost ~6 KB, and a
//! saturated target inflated the harness to 608 MB).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::collector::{Gauges, Sample};
use super::executor::Executor;
use crate::probe::lag::LagProbe;
use crate::target::Target;

/// Longest single sleep, so a stop request is seen promptly at low rates.
const MAX_NAP: Duration = Duration::from_millis(5);

/// Memory one backlogged operation holds: its slot in the queue.
pub const BACKLOG_SLOT_BYTES: usize = std::mem::size_of::<Slot>();

/// A scheduled operation waiting for a lane.
#[derive(Debug, Clone, Copy)]
struct Slot {
    intended: Instant,
    op: usize,
    key: u64,
    seq: u64,
}

/// Lanes in use and the slots waiting for one, under one lock so a slot is never left
/// behind by a lane that just finished.
#[derive(Default)]
struct Lanes {
    busy: usize,
    backlog: VecDeque<Slot>,
}

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

/// A lane: sends `first`, then every backlogged slot it finds, until the backlog is empty.
fn spawn_lane<T: Target>(ctx: &OpTaskContext<T>, lanes: Arc<Mutex<Lanes>>, first: Slot) {
    let (executor, samples, gauges, abort, lag) =
        (ctx.executor.clone(), ctx.samples.clone(), ctx.gauges.clone(), ctx.abort.clone(), ctx.lag.clone());
    let lane = async move {
        let mut slot = first;
        loop {
            gauges.enter_flight();
            let executed = executor.execute(slot.op, slot.key, slot.seq).await;
            gauges.leave_flight();
            if let Some(lag) = &lag {
                lag.after(slot.op, slot.seq, &executed);
            }
            // The collector outlives every operation; a send error means the run is over.
            let _ = samples.send(executed.sample(slot.op, slot.seq, slot.intended)).await;
            let mut state = lanes.lock().unwrap_or_else(|e| e.into_inner());
            match state.backlog.pop_front() {
                Some(next) => {
                    // Under the lock, as `enter_backlog`: the gauge is the queue's length.
                    gauges.leave_backlog();
                    drop(state);
                    slot = next;
                }
                None => {
                    state.busy -= 1;
                    return;
                }
            }
        }
    };
    ctx.runtime.spawn(ctx.tracker.track_future(async move {
        tokio::select! {
            biased;
            _ = abort.cancelled() => {}
            _ = lane => {}
        }
    }));
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
    let lanes = Arc::new(Mutex::new(Lanes::default()));
    let max_in_flight = limits.max_in_flight.max(1);
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

        let slot = Slot { intended, op, key, seq: ctx.executor.next_seq() };
        {
            let mut state = lanes.lock().unwrap_or_else(|e| e.into_inner());
            if state.busy >= max_in_flight {
                if state.backlog.len() < limits.max_backlog {
                    state.backlog.push_back(slot);
                    ctx.gauges.enter_backlog();
                } else {
                    drop(state);
                    dispatched.dropped += 1;
                    dispatched.dropped_measured += u64::from(measured);
                    Dispatched::count(&mut dispatched.dropped_per_s, second);
                    ctx.gauges.dropped.fetch_add(1, Ordering::Relaxed);
                }
                continue;
            }
            state.busy += 1;
        }
        spawn_lane(ctx, lanes.clone(), slot);
    }
    dispatched
}
