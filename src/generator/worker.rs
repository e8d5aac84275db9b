//! A generator worker: one OS thread with its own event loop, in the style of wrk2. It
//! owns its share of the schedule, its lanes, its backlog and its figures; the target
//! adapter keeps its connections per thread, so nothing crosses threads per operation.
//!
//! Open model: every `count`-th slot of the schedule is this worker's. When a slot is
//! due the worker renders and sends it on a free lane (an operation future polled by
//! the worker's own loop, no task spawned); with every lane busy the slot waits in the
//! backlog, its latency still counting from its intended start (that is what makes the
//! figures coordinated-omission-correct); with the backlog full too it is dropped and
//! never sent. Closed model: the worker runs its users, each sending its next operation
//! when the last one answered.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc::Sender;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::pacer::Pacer;
use super::recorder::{Recorder, Report, Totals};
use super::schedule;
use super::{Dispatched, Observer, Picker};
use crate::live::Gauges;
use crate::operation::{Executed, Executor};
use crate::scenario::Stage;
use crate::target::Target;

/// Connections an open-model worker opens before the load (more open on demand, up to
/// its lanes): enough for tens of thousands of operations per second at millisecond
/// latencies, without holding a thousand idle connections on a server at a low rate.
const WARM_CONNECTIONS: usize = 64;

/// On a dense schedule (this worker's slots under `DENSE_GAP` apart), a due slot waits
/// until the oldest due one is `BURST` late, and they go out together: the server then
/// wakes once per burst instead of once per request, as with wrk2 (which sends what fell
/// due each millisecond). The wait is part of their send lag, as any lateness is.
const DENSE_GAP: Duration = Duration::from_micros(20);
const BURST: Duration = Duration::from_micros(50);

/// A scheduled operation waiting for a lane.
#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    intended: Instant,
    op: usize,
    key: u64,
    seq: u64,
}

/// What every worker of a run shares.
pub(super) struct Shared<T> {
    pub executor: Arc<Executor<T>>,
    pub gauges: Arc<Gauges>,
    pub observer: Option<Arc<dyn Observer>>,
    pub start: Instant,
    pub warmup: Duration,
    pub operations: usize,
    /// Stop scheduling (the user asked to stop); what is under way finishes.
    pub stop: CancellationToken,
    /// Give up what is under way (the drain grace is over).
    pub abort: CancellationToken,
}

/// This worker's part of the load.
pub(super) enum Share {
    /// `schedule`: offsets from the start, the whole run's (this worker takes its share).
    Open {
        schedule: Box<dyn Iterator<Item = Duration> + Send>,
        lanes: usize,
        max_backlog: usize,
    },
    Closed {
        stages: Arc<Vec<Stage>>,
        users: Vec<usize>,
        think_time: Duration,
    },
}

pub(super) struct Worker<T, P> {
    pub index: usize,
    pub count: usize,
    pub shared: Arc<Shared<T>>,
    pub share: Share,
    pub picker: P,
    pub reports: Sender<Report>,
    /// Dropped when this worker's schedule has ended (the load phase is over for it).
    pub scheduling: Sender<()>,
}

/// What a worker hands back when it is done.
pub(super) struct WorkerOutcome {
    pub totals: Totals,
    pub dispatched: Dispatched,
}

impl<T: Target, P: Picker> Worker<T, P> {
    /// Runs the worker on its own thread; its outcome arrives on the receiver.
    pub fn spawn(self) -> std::io::Result<oneshot::Receiver<WorkerOutcome>> {
        let (done, outcome) = oneshot::channel();
        std::thread::Builder::new().name(format!("cqrs-bench-gen-{}", self.index)).spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            match runtime {
                Ok(runtime) => {
                    let _ = done.send(runtime.block_on(self.run()));
                }
                Err(error) => tracing::error!("generator worker: no event loop: {error}"),
            }
        })?;
        Ok(outcome)
    }

    async fn run(self) -> WorkerOutcome {
        let Worker { index, count, shared, share, picker, reports, scheduling } = self;
        // Connections first, within the lead time before the first operation.
        let connections = match &share {
            Share::Open { lanes, .. } => (*lanes).min(WARM_CONNECTIONS),
            Share::Closed { users, .. } => users.len(),
        };
        let warm = shared.executor.target.warm_up(connections);
        let _ = tokio::time::timeout_at(tokio::time::Instant::from_std(shared.start), warm).await;
        let recorder = Recorder::new(index, shared.start, shared.warmup, shared.operations);
        let recorder = match share {
            Share::Open { schedule, lanes, max_backlog } => {
                let slots = schedule.skip(index).step_by(count);
                let mut open =
                    OpenLoop { shared: &shared, index, count, recorder, picker, lanes: lanes.max(1), max_backlog };
                open.run(slots, &reports, scheduling).await;
                open.recorder
            }
            Share::Closed { stages, users, think_time } => {
                let recorder = RefCell::new(recorder);
                let picker = RefCell::new(picker);
                run_users(&shared, &recorder, &picker, &stages, &users, think_time, &reports).await;
                drop(scheduling);
                recorder.into_inner()
            }
        };
        let mut recorder = recorder;
        let last = recorder.take_second(); // the partial last second
        send_reports(&reports, vec![last, Report::Done { worker: index }]).await;
        WorkerOutcome { totals: recorder.totals, dispatched: recorder.dispatched }
    }
}

/// Hands reports to the collector, waiting for it if it is behind.
async fn send_reports(reports: &Sender<Report>, due: Vec<Report>) {
    for report in due {
        // The collector outlives the workers; a send error means the run is being torn down.
        let _ = reports.send(report).await;
    }
}

/// When the slot at `offset` may go, as an offset, if the schedule is dense (it follows
/// the last slot sent, at `last_sent`, by under `DENSE_GAP`): `BURST` after its own
/// intended start. `None`: it goes when due.
fn burst_release(offset: Duration, last_sent: Option<Duration>) -> Option<Duration> {
    let dense = last_sent.is_some_and(|last| offset.saturating_sub(last) < DENSE_GAP);
    dense.then_some(offset + BURST)
}

/// Records a finished operation and tells the observer.
fn finish<T>(shared: &Shared<T>, recorder: &mut Recorder, slot: Slot, executed: &Executed) {
    shared.gauges.leave_flight();
    let sample = executed.sample(slot.op, slot.seq, slot.intended);
    recorder.record(&sample, &shared.gauges);
    if let Some(observer) = &shared.observer {
        observer.finished(&sample, executed);
    }
}

struct OpenLoop<'a, T, P> {
    shared: &'a Shared<T>,
    /// This worker's place among `count`: it takes slots `index`, `index + count`, ….
    index: usize,
    count: usize,
    recorder: Recorder,
    picker: P,
    lanes: usize,
    max_backlog: usize,
}

impl<T: Target, P: Picker> OpenLoop<'_, T, P> {
    async fn run(&mut self, slots: impl Iterator<Item = Duration>, reports: &Sender<Report>, scheduling: Sender<()>) {
        let shared = self.shared;
        let send = |slot: Slot| async move { (slot, shared.executor.execute(slot.op, slot.key, slot.seq).await) };
        let mut in_flight = FuturesUnordered::new();
        let mut backlog: VecDeque<Slot> = VecDeque::new();
        let mut slots = slots.peekable();
        let mut scheduling = Some(scheduling);
        let mut pacer = Pacer::new();
        let stop = shared.stop.cancelled();
        let abort = shared.abort.cancelled();
        tokio::pin!(stop, abort);
        let mut last_offset: Option<Duration> = None;
        loop {
            let now = Instant::now();
            // A slot held for a burst, until when (only while that is still ahead).
            let held = |offset: Duration, last_sent: Option<Duration>| {
                burst_release(offset, last_sent).map(|at| shared.start + at).filter(|release| *release > now)
            };
            let holding = slots.peek().and_then(|&offset| held(offset, last_offset));
            if scheduling.is_some() && holding.is_none() {
                while let Some(&offset) = slots.peek() {
                    let intended = shared.start + offset;
                    if intended > now {
                        break;
                    }
                    slots.next();
                    last_offset = Some(offset);
                    let slot = self.offer(intended, offset);
                    if in_flight.len() < self.lanes {
                        shared.gauges.enter_flight();
                        in_flight.push(send(slot));
                    } else if backlog.len() < self.max_backlog {
                        backlog.push_back(slot);
                        shared.gauges.enter_backlog();
                    } else {
                        self.drop_slot(offset);
                    }
                }
                if slots.peek().is_none() || shared.stop.is_cancelled() {
                    scheduling = None; // this worker's load phase is over
                }
            }
            let due = self.recorder.take_due(now);
            if !due.is_empty() {
                send_reports(reports, due).await;
            }
            if scheduling.is_none() && in_flight.is_empty() {
                // The backlog only fills while every lane is busy, so it is empty too.
                return;
            }
            let next_due = slots
                .peek()
                .filter(|_| scheduling.is_some())
                .map(|&offset| held(offset, last_offset).unwrap_or(shared.start + offset));
            let boundary = self.recorder.next_boundary();
            let wake = next_due.map_or(boundary, |due| due.min(boundary));
            tokio::select! {
                biased;
                _ = &mut abort => return,
                _ = &mut stop, if scheduling.is_some() => {}
                Some((slot, executed)) = in_flight.next(), if !in_flight.is_empty() => {
                    finish(shared, &mut self.recorder, slot, &executed);
                    if let Some(next) = backlog.pop_front() {
                        shared.gauges.leave_backlog();
                        shared.gauges.enter_flight();
                        in_flight.push(send(next));
                    }
                }
                _ = pacer.sleep_until(wake) => {}
            }
        }
    }

    /// Counts a due slot as offered and chooses its operation and key.
    fn offer(&mut self, intended: Instant, offset: Duration) -> Slot {
        let measured = offset >= self.shared.warmup;
        let d = &mut self.recorder.dispatched;
        d.offered += 1;
        d.offered_measured += u64::from(measured);
        Dispatched::count(&mut d.offered_per_s, offset.as_secs() as usize);
        self.shared.gauges.offered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // The slot's index in the whole schedule.
        let slot_index = self.index as u64 + (d.offered - 1) * self.count as u64;
        let (op, key) = self.picker.pick(slot_index);
        Slot { intended, op, key, seq: self.shared.executor.next_seq() }
    }

    fn drop_slot(&mut self, offset: Duration) {
        let d = &mut self.recorder.dispatched;
        d.dropped += 1;
        d.dropped_measured += u64::from(offset >= self.shared.warmup);
        Dispatched::count(&mut d.dropped_per_s, offset.as_secs() as usize);
        self.shared.gauges.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Closed model: this worker's users, until the end of the stages or a stop.
async fn run_users<T: Target, P: Picker>(
    shared: &Shared<T>,
    recorder: &RefCell<Recorder>,
    picker: &RefCell<P>,
    stages: &[Stage],
    users: &[usize],
    think_time: Duration,
    reports: &Sender<Report>,
) {
    let total: Duration = stages.iter().map(|s| s.duration).sum();
    let end = tokio::time::Instant::from_std(shared.start + total);
    tokio::time::sleep_until(tokio::time::Instant::from_std(shared.start)).await;
    let user = |user: usize| async move {
        loop {
            let offset = shared.start.elapsed();
            if shared.stop.is_cancelled() || offset >= total {
                return;
            }
            if schedule::users_at(stages, offset) <= user {
                // Not this user's turn yet (ramp): look again shortly.
                tokio::select! {
                    biased;
                    _ = shared.stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(10)) => continue,
                }
            }
            let (op, key) = picker.borrow_mut().pick(0);
            let slot = Slot { intended: Instant::now(), op, key, seq: shared.executor.next_seq() };
            shared.gauges.offered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            {
                // For the live metrics only: the run counts a closed model's offered
                // operations itself when the users are done (started = finished + unfinished);
                // the window by intended start, as the recorder tells it.
                let d = &mut recorder.borrow_mut().dispatched;
                d.offered += 1;
                d.offered_measured += u64::from(slot.intended.saturating_duration_since(shared.start) >= shared.warmup);
            }
            shared.gauges.enter_flight();
            let executed = shared.executor.execute(op, key, slot.seq).await;
            finish(shared, &mut recorder.borrow_mut(), slot, &executed);
            if !think_time.is_zero() {
                // Cut at the end of the stages or on shutdown (issue 16: a 20 s think
                // time kept a 2 s run going for 22 s).
                tokio::select! {
                    biased;
                    _ = shared.stop.cancelled() => return,
                    _ = tokio::time::sleep_until(end) => return,
                    _ = tokio::time::sleep(think_time) => {}
                }
            }
        }
    };
    let mut running: FuturesUnordered<_> = users.iter().map(|&u| user(u)).collect();
    let mut pacer = Pacer::new();
    let abort = shared.abort.cancelled();
    tokio::pin!(abort);
    loop {
        // Borrowed only between polls: a user's borrow never spans an await.
        let due = recorder.borrow_mut().take_due(Instant::now());
        send_reports(reports, due).await;
        if running.is_empty() {
            return;
        }
        let boundary = recorder.borrow().next_boundary();
        tokio::select! {
            biased;
            _ = &mut abort => return,
            _ = running.next() => {}
            _ = pacer.sleep_until(boundary) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a dense schedule is held, and only until its first waiting slot is `BURST` late.
    #[test]
    fn a_dense_schedule_is_sent_in_bursts() {
        let us = Duration::from_micros;
        assert_eq!(burst_release(us(1_000), None), None, "the first slot goes when due");
        assert_eq!(burst_release(us(1_100), Some(us(1_000))), None, "100 µs apart: each when due");
        assert_eq!(burst_release(us(1_010), Some(us(1_000))), Some(us(1_010) + BURST));
    }
}
