//! The generator paces and sends operations, and records their figures. It knows
//! nothing of the probes: what the run attaches to each finished operation comes in as
//! an `Observer`.
//!
//! A load is spread over `threads` workers (`worker`), each an OS thread with its own
//! event loop, connections, share of the schedule and figures (`recorder`); once a
//! second each hands its second's histograms to the `collector`, which adds them into
//! the timeline. Shutdown order: stop scheduling → let in-flight and backlogged
//! operations finish within a grace → abort the rest → add up the workers' figures.

mod collector;
pub mod mix;
mod pacer;
mod recorder;
pub mod schedule;
mod worker;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub use collector::{IntervalSink, Timeline};
pub use recorder::{OpFigures, Recorder, Report, Totals};
use worker::{Share, Shared, Worker, WorkerOutcome};

use crate::live::Gauges;
use crate::operation::{Executed, Executor, Sample};
use crate::scenario::Stage;
use crate::target::Target;
pub use schedule::OpenSchedule;

/// Reports waiting for the collector.
const REPORTS_CHANNEL: usize = 1024;

/// Memory one backlogged operation holds: its slot in its worker's queue.
pub const BACKLOG_SLOT_BYTES: usize = std::mem::size_of::<worker::Slot>();

/// Told of every finished operation, on the worker thread that finished it: keep it quick.
pub trait Observer: Send + Sync {
    fn finished(&self, sample: &Sample, executed: &Executed);
}

/// Chooses (operation, key) for the schedule's slot `index` (the closed model passes 0).
pub trait Picker: Send + 'static {
    fn pick(&mut self, index: u64) -> (usize, u64);
}

impl<F: FnMut(u64) -> (usize, u64) + Send + 'static> Picker for F {
    fn pick(&mut self, index: u64) -> (usize, u64) {
        self(index)
    }
}

/// How the open model bounds what is under way.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Operations sent and not answered yet, across all workers.
    pub max_in_flight: usize,
    /// Operations waiting for a lane, across all workers.
    pub max_backlog: usize,
}

/// What the open model scheduled, per second of the load.
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

    fn add(&mut self, other: &Dispatched) {
        for (mine, theirs) in
            [(&mut self.offered_per_s, &other.offered_per_s), (&mut self.dropped_per_s, &other.dropped_per_s)]
        {
            if mine.len() < theirs.len() {
                mine.resize(theirs.len(), 0);
            }
            for (m, t) in mine.iter_mut().zip(theirs) {
                *m += t;
            }
        }
        self.offered_measured += other.offered_measured;
        self.dropped_measured += other.dropped_measured;
        self.offered += other.offered;
        self.dropped += other.dropped;
    }
}

/// What the generator hands back.
pub struct Generated {
    /// Worker threads the load ran on.
    pub threads: usize,
    pub totals: Totals,
    pub timeline: Timeline,
    pub dispatched: Dispatched,
}

/// Everything a load needs, whatever its model.
pub struct LoadPlan<T> {
    pub executor: Arc<Executor<T>>,
    pub gauges: Arc<Gauges>,
    pub observer: Option<Arc<dyn Observer>>,
    /// Generator threads.
    pub threads: usize,
    /// Instant of the schedule's offset 0.
    pub start: Instant,
    pub warmup: Duration,
    /// The operations' names, for the timeline.
    pub names: Vec<String>,
    /// Stops scheduling (a signal); what is under way still finishes.
    pub stop: CancellationToken,
    /// Where closed seconds' histograms are written as the load goes (the .hlog files).
    pub intervals: Option<Box<dyn IntervalSink>>,
    /// Seconds per timeline row (`results::intervals::timeline_step`).
    pub timeline_step: u64,
}

/// A load under way.
pub struct Running {
    workers: Vec<oneshot::Receiver<WorkerOutcome>>,
    collecting: tokio::task::JoinHandle<Timeline>,
    scheduling: mpsc::Receiver<()>,
    abort: CancellationToken,
}

/// Starts an open-model load: `schedule` spread over the workers, `pickers(worker)`
/// choosing their operations.
pub fn start_open<T: Target, P: Picker>(
    plan: LoadPlan<T>,
    schedule: impl Iterator<Item = Duration> + Clone + Send + 'static,
    limits: Limits,
    pickers: impl Fn(usize) -> P,
) -> anyhow::Result<Running> {
    // No worker without a lane: more threads than `max_in_flight` would leave some idle.
    let threads = plan.threads.clamp(1, limits.max_in_flight.max(1));
    start(plan, threads, pickers, |w| Share::Open {
        schedule: Box::new(schedule.clone()),
        lanes: split(limits.max_in_flight.max(1), threads, w),
        max_backlog: split(limits.max_backlog, threads, w),
    })
}

/// Starts a closed-model load: user `u` runs on worker `u % threads`.
pub fn start_closed<T: Target, P: Picker>(
    plan: LoadPlan<T>,
    stages: &[Stage],
    think_time: Duration,
    pickers: impl Fn(usize) -> P,
) -> anyhow::Result<Running> {
    let users = schedule::max_users(stages);
    let threads = plan.threads.clamp(1, users.max(1));
    let stages = Arc::new(stages.to_vec());
    start(plan, threads, pickers, |w| Share::Closed {
        stages: stages.clone(),
        users: (w..users).step_by(threads).collect(),
        think_time,
    })
}

/// Worker `w`'s part of `total` over `threads` (the remainder to the first ones).
fn split(total: usize, threads: usize, w: usize) -> usize {
    if total == usize::MAX {
        return usize::MAX;
    }
    total / threads + usize::from(w < total % threads)
}

fn start<T: Target, P: Picker>(
    plan: LoadPlan<T>,
    threads: usize,
    pickers: impl Fn(usize) -> P,
    share: impl Fn(usize) -> Share,
) -> anyhow::Result<Running> {
    let abort = CancellationToken::new();
    let shared = Arc::new(Shared {
        operations: plan.names.len(),
        executor: plan.executor,
        gauges: plan.gauges.clone(),
        observer: plan.observer,
        start: plan.start,
        warmup: plan.warmup,
        stop: plan.stop,
        abort: abort.clone(),
    });
    // One report per worker per second: the capacity covers minutes of a stalled
    // collector before the workers wait for it.
    let (reports, received) = mpsc::channel(REPORTS_CHANNEL);
    let collecting = tokio::spawn(
        collector::Collector::new(plan.names, plan.gauges, threads, plan.timeline_step, plan.intervals).run(received),
    );
    let (scheduling, scheduled) = mpsc::channel(1);
    let mut workers = Vec::with_capacity(threads);
    for index in 0..threads {
        let worker = Worker {
            index,
            count: threads,
            shared: shared.clone(),
            share: share(index),
            picker: pickers(index),
            reports: reports.clone(),
            scheduling: scheduling.clone(),
        };
        workers.push(worker.spawn().context("starting a generator thread")?);
    }
    Ok(Running { workers, collecting, scheduling: scheduled, abort })
}

impl Running {
    /// Returns when every worker's schedule has ended (its last operation was due) or
    /// it stopped scheduling.
    pub async fn schedule_ended(&mut self) {
        while self.scheduling.recv().await.is_some() {}
    }

    /// Waits for what is under way, up to `grace` or until `cut` fires (a signal during
    /// the drain, issue 18), then aborts the rest; adds up the workers' figures.
    pub async fn finish(self, grace: Duration, cut: Option<&CancellationToken>) -> anyhow::Result<Generated> {
        let Running { workers, collecting, abort, .. } = self;
        let threads = workers.len();
        let all = futures_util::future::join_all(workers);
        tokio::pin!(all);
        let outcomes = tokio::select! {
            biased;
            outcomes = &mut all => outcomes,
            _ = tokio::time::sleep(grace) => { abort.cancel(); all.await }
            _ = async { match cut { Some(cut) => cut.cancelled().await, None => std::future::pending().await } } => {
                abort.cancel();
                all.await
            }
        };
        let mut totals: Option<Totals> = None;
        let mut dispatched = Dispatched::default();
        for outcome in outcomes {
            let outcome = outcome.context("a generator thread ended without its figures")?;
            match &mut totals {
                Some(totals) => totals.add(&outcome.totals),
                None => totals = Some(outcome.totals),
            }
            dispatched.add(&outcome.dispatched);
        }
        let timeline = collecting.await.context("collector")?;
        Ok(Generated { threads, totals: totals.context("no generator thread")?, timeline, dispatched })
    }
}
