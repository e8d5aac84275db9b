//! The projection-lag probe (`[projection]`): for a sampled fraction of acknowledged
//! commands, poll the named query with the command's key until the `until` predicate
//! holds. Lag = send time of the first matching poll − the command's acknowledgement,
//! so its resolution is the poll interval. Probes still unanswered at `timeout` are
//! `late`. Probe polls are not part of the query figures; they are counted as probe load.
//!
//! Probes do not poll on their own: probes whose reads are the same share one poller
//! (`shared_poll`), so a keyless list is read once per poll interval however many probes
//! wait on it, and a keyed query once per key and interval.
//!
//! Once the youngest probe of a poller has waited `RELATIVE_RESOLUTION` poll intervals,
//! the poller polls every 1/`RELATIVE_RESOLUTION` of that wait instead (5 %): a read
//! model seconds behind is not hammered every few milliseconds (which would slow the
//! very projectors being measured), and a lag of L is still known to within
//! max(poll interval, L/20).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::SeedableRng as _;
use rand::rngs::SmallRng;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::key_facts::{CommandFacts, FactsUsed, KeyFacts, LaterStates, MAX_LATER_STATES};
use super::lag_figures::Outstanding;
use super::shared_poll::{self, Board, Waiting};
use crate::live::Gauges;
use crate::operation::{Executed, Executor, Outcome, Probe};
use crate::scenario::ProjectionSpec;
use crate::scenario::template::RenderContext;
use crate::target::{Reply, Target};

/// Probes running at once; a command sampled while all are busy is counted as skipped.
const MAX_CONCURRENT_PROBES: usize = 512;
/// A probe that has waited longer than this many poll intervals polls every 1/this of
/// the time waited: the lag's resolution becomes relative (5 %).
pub const RELATIVE_RESOLUTION: u32 = 20;

/// One probe's outcome.
#[derive(Debug, Clone, Copy)]
pub struct LagRecord {
    pub seq: u64,
    /// The command's acknowledgement.
    pub acked: Instant,
    /// `None` when the read model did not show it within the timeout.
    pub lag: Option<Duration>,
    /// What the first answer showing it told of its event (`[projection.stages]`).
    pub told: ToldTimes,
}

/// The read model's own times of a command's event, from the first answer that showed
/// it: µs since the Unix epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ToldTimes {
    pub received_us: Option<i64>,
    pub applied_us: Option<i64>,
    /// The answer's times were of another event (`event_ref` named another ref): unused.
    pub other_event: bool,
}

/// A time as a read model may tell it: a number of ms since the Unix epoch (µs or ns
/// told apart by size), the same as text, or RFC 3339 text. In µs since the epoch.
pub fn wall_time_us(value: &serde_json::Value) -> Option<i64> {
    let number = match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(text) => match text.trim().parse::<f64>() {
            Ok(n) => Some(n),
            Err(_) => {
                let at = humantime::parse_rfc3339_weak(text.trim()).ok()?;
                return at.duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_micros() as i64);
            }
        },
        _ => None,
    }?;
    // 1e14 ms is the year 5138; 1e17 µs the same: so a value's size tells its unit.
    let us = match number {
        n if !n.is_finite() || n <= 0.0 => return None,
        n if n < 1e14 => n * 1e3,
        n if n < 1e17 => n,
        n => n / 1e3,
    };
    Some(us.round() as i64)
}

/// The commands the lag probe of `spec` samples in a run seeded `seed`.
pub fn sampling(spec: &ProjectionSpec, seed: u64) -> super::Sampling {
    super::Sampling::new(spec.sample, seed)
}

/// Starts probes for sampled commands; shared by every operation task.
pub struct LagProbe<T> {
    executor: Arc<Executor<T>>,
    spec: ProjectionSpec,
    /// Per operation index: is it a probed command?
    probed: Vec<bool>,
    /// Per operation index: a probed create whose id `resolve` finds: that search is its
    /// probe (`adopt`), this probe sends nothing for it (issue 31).
    adopted: Vec<bool>,
    sampling: super::Sampling,
    slots: Arc<Semaphore>,
    records: mpsc::Sender<LagRecord>,
    /// The probes still running, by acknowledgement: the collector closes a second once
    /// none of its probes can still report.
    pub outstanding: Arc<Outstanding>,
    /// `probes_running` is kept here, for the progress display.
    gauges: Arc<Gauges>,
    pub tracker: TaskTracker,
    pub abort: CancellationToken,
    /// The run's runtime: probes outlive the generator threads whose operations start them.
    runtime: tokio::runtime::Handle,
    pub polls: AtomicU64,
    pub poll_errors: AtomicU64,
    pub skipped: AtomicU64,
    /// Sampled commands not probed because their `{{key.acked}}`/`{{key.expected}}` is not
    /// known: another command on the key overlapped them (issue 31, `key_facts`).
    pub ambiguous: AtomicU64,
    /// What `until` reads of the probed command, and per key what was acknowledged.
    facts_used: FactsUsed,
    facts: Option<KeyFacts>,
    /// Why the predicate may never hold, from the first late probe's last answer.
    pub misfit: std::sync::OnceLock<String>,
    /// The pollers running, by the identity of their read: where a probe joins one.
    /// (A channel, so a generator thread starting a probe never waits on a poller.)
    pollers: shared_poll::Pollers<Waiter>,
}

/// What a poller reads: the query rendered for its first probe's command (the other
/// probes' reads have the same identity, see `Executor::probe_read_identity`).
struct Read {
    identity: String,
    key: u64,
    seq: u64,
    captured: Vec<(String, String)>,
}

/// A probe as its poller sees it.
struct Waiter {
    seq: u64,
    /// `until`'s value, rendered for this probe's command.
    expected: String,
    /// `until`'s value rendered for commands acknowledged later on the key (a read model
    /// showing their state has applied this one: `key_facts`).
    later: Option<Arc<LaterStates>>,
    verdict: oneshot::Sender<(Option<Duration>, ToldTimes)>,
}

impl<T: Target> LagProbe<T> {
    /// Must be called on the run's runtime (its probes run there).
    pub fn new(
        executor: Arc<Executor<T>>,
        spec: ProjectionSpec,
        operations: usize,
        seed: u64,
        records: mpsc::Sender<LagRecord>,
        gauges: Arc<Gauges>,
        verify: Option<&crate::scenario::VerifySpec>,
    ) -> LagProbe<T> {
        let facts_used = FactsUsed::of(&spec);
        let mut probed = vec![false; operations];
        for &op in &spec.commands {
            probed[op] = true;
        }
        LagProbe {
            executor,
            sampling: sampling(&spec, seed),
            spec,
            adopted: vec![false; probed.len()],
            probed,
            slots: Arc::new(Semaphore::new(MAX_CONCURRENT_PROBES)),
            records,
            outstanding: Arc::default(),
            gauges,
            tracker: TaskTracker::new(),
            abort: CancellationToken::new(),
            runtime: tokio::runtime::Handle::current(),
            polls: AtomicU64::new(0),
            poll_errors: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            ambiguous: AtomicU64::new(0),
            facts: facts_used.per_key().then(|| KeyFacts::new(facts_used, verify)),
            facts_used,
            misfit: std::sync::OnceLock::new(),
            pollers: Mutex::default(),
        }
    }

    /// Called after every operation: starts a probe when it is a sampled, acknowledged command.
    pub fn after(self: &Arc<Self>, op: usize, seq: u64, executed: &Executed) {
        // The key the command ended up on (a create's new id, for `creates_key`).
        let key = executed.key;
        // Every acknowledged command that changes what `until` reads adds to its key's
        // facts, sampled or not; probes waiting on the key take its state as a later one.
        let facts = self.facts.as_ref().and_then(|f| f.record(self.probed[op], executed));
        if let Some((snapshot, waiting)) = &facts
            && !waiting.is_empty()
        {
            let state = self.render_until(seq, executed, Some(*snapshot));
            for later in waiting {
                let mut states = later.lock().unwrap_or_else(|e| e.into_inner());
                if states.len() < MAX_LATER_STATES {
                    states.push(state.clone());
                }
            }
        }
        // A refusal or conflict has no event: it is never probed (issue 31).
        if !self.probed[op] || executed.outcome != Outcome::Ok || !self.sampled(seq) {
            return;
        }
        let snapshot = facts.map(|(snapshot, _)| snapshot);
        // A number not known (a delta that was not a number) of any value: conservative
        // with several values, where `until` may read only one of them.
        let values = self.facts.as_ref().map_or(1, |f| f.names.len().max(1));
        let unknown = |s: super::key_facts::Snapshot| s.expected.iter().take(values).any(Option::is_none);
        if self.facts_used.per_key()
            && (executed.overlapped || (self.facts_used.expected && snapshot.is_none_or(unknown)))
        {
            self.ambiguous.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        // The predicate's value is rendered once, with the command's key, ref, captures
        // and facts.
        let expected = self.render_until(seq, executed, snapshot);
        let later = self.facts.as_ref().and_then(|f| f.watch(key));
        let (probe, acked, captured) = (self.clone(), executed.done, executed.captured.clone());
        let abort = self.abort.clone();
        let running = Running::enter(self.gauges.clone(), self.outstanding.clone(), acked);
        self.tracker.spawn_on(
            async move {
                let (_permit, _running) = (permit, running);
                tokio::select! {
                    biased;
                    _ = abort.cancelled() => {}
                    (lag, told) = probe.wait_until_visible(key, seq, acked, (expected, later), &captured) => {
                        let _ = probe.records.send(LagRecord { seq, acked, lag, told }).await;
                    }
                }
            },
            &self.runtime,
        );
    }

    /// Hands the probes of create `op` over to its id search (`resolve`): the poll that
    /// finds its id is the one that shows it, so its lag is the search's time.
    pub fn hand_over(&mut self, op: usize) {
        if self.probed[op] {
            self.probed[op] = false;
            self.adopted[op] = true;
        }
    }

    /// For a sampled create of a handed-over operation, acknowledged at `acked`: a probe
    /// whose verdict the id search gives (`Adopted::finish`).
    pub fn adopt(&self, op: usize, seq: u64, acked: Instant) -> Option<Adopted> {
        if !self.adopted[op] || !self.sampled(seq) {
            return None;
        }
        let running = Running::enter(self.gauges.clone(), self.outstanding.clone(), acked);
        Some(Adopted { records: self.records.clone(), seq, acked, _running: running })
    }

    fn sampled(&self, seq: u64) -> bool {
        self.sampling.picks(seq)
    }

    /// `until`'s value for command `seq`: its key, ref, captures and facts.
    fn render_until(&self, seq: u64, executed: &Executed, snapshot: Option<super::key_facts::Snapshot>) -> String {
        let key_text = self.executor.key_text(executed.key);
        let op_ref = self.executor.ref_text(seq);
        let body = match (&executed.request_body, self.facts_used.body) {
            (Some(body), true) => serde_json::from_str(body).ok(),
            _ => None,
        };
        let value_names = self.facts.as_ref().map_or(&[][..], |f| &f.names[..]);
        let lookup = CommandFacts { captures: &executed.captured, value_names, snapshot, body };
        let ctx = RenderContext { key: &key_text, op_ref: &op_ref, captures: &lookup };
        self.spec.until.value.render(&ctx, &mut SmallRng::seed_from_u64(seq))
    }

    /// On the first late probe: why might `until` never hold on such answers? (issue 12:
    /// a predicate for plain lists on a list of objects silently made every probe late.)
    fn explain_late(&self, last: Option<&crate::target::Reply>) {
        if self.misfit.get().is_some() {
            return;
        }
        let query = self.executor.op_name(self.spec.query);
        let why = match last {
            None => return,
            Some(reply) => match serde_json::from_slice::<serde_json::Value>(&reply.body) {
                Err(_) if (200..300).contains(&reply.status) => {
                    format!("its answer (status {}) is not JSON", reply.status)
                }
                Err(_) => return, // a 404 while the read model catches up: just late
                Ok(json) => match super::shape::predicate_misfit(&self.spec.until, &json) {
                    Some(why) if (200..300).contains(&reply.status) => why,
                    _ => return,
                },
            },
        };
        let why = format!("a lag probe was late and `[projection] until` may never hold on `{query}`: {why}");
        // Shown live too, so a long run can be stopped early.
        let _ = self.gauges.warning.set(why.clone());
        let _ = self.misfit.set(why);
    }

    /// Waits on the poller of this probe's read (started if none runs) for the first
    /// poll that shows the command.
    async fn wait_until_visible(
        self: &Arc<Self>,
        key: u64,
        seq: u64,
        acked: Instant,
        (expected, later): (String, Option<Arc<LaterStates>>),
        captured: &[(String, String)],
    ) -> (Option<Duration>, ToldTimes) {
        let (verdict, decided) = oneshot::channel();
        let deadline = acked + self.spec.timeout;
        self.join_poller(key, captured, Waiting { acked, deadline, probe: Waiter { seq, expected, later, verdict } });
        decided.await.unwrap_or_default() // no verdict: the run is aborting
    }

    fn join_poller(self: &Arc<Self>, key: u64, captured: &[(String, String)], waiting: Waiting<Waiter>) {
        let seq = waiting.probe.seq;
        let identity = self.executor.probe_read_identity(self.spec.query, key, seq, captured);
        // The map stays locked until the probe is sent to its poller: a poller leaves the
        // map only with nothing left to read for, under the same lock (`settle_board`).
        let mut pollers = self.pollers.lock().unwrap();
        let joins = pollers.entry(identity.clone()).or_insert_with(|| {
            // Never full: no more probes than that run at once.
            let (joins, joined) = mpsc::channel(MAX_CONCURRENT_PROBES);
            let read = Read { identity, key, seq, captured: captured.to_vec() };
            self.tracker.spawn_on(self.clone().run_poller(read, joined), &self.runtime);
            joins
        });
        // Fails only when the run aborts: the probe then gets no verdict.
        let _ = joins.try_send(waiting);
    }

    /// One poller's life: poll until no probe waits on its read.
    async fn run_poller(self: Arc<Self>, read: Read, mut joined: mpsc::Receiver<Waiting<Waiter>>) {
        let mut board = Board::default();
        let mut last_sent = None;
        let mut last_answer = None;
        loop {
            let next = board.next_poll(last_sent, self.spec.poll_interval);
            tokio::select! {
                biased;
                _ = self.abort.cancelled() => return,
                // A new probe may bring the next poll closer (`Board::next_poll`).
                Some(waiting) = joined.recv() => {
                    board.join(waiting);
                    continue;
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(next)) => {}
            }
            let sent = Instant::now();
            if !self.settle_board(&read.identity, &mut board, &mut joined, sent, last_answer.as_ref()) {
                return;
            }
            last_sent = Some(sent);
            self.polls.fetch_add(1, Ordering::Relaxed);
            let fetch = self.executor.fetch(Probe::Lag, self.spec.query, read.key, read.seq, Some(&read.captured));
            match fetch.await {
                Ok(reply) => {
                    self.decide_shown(&mut board, sent, &reply);
                    last_answer = Some(reply);
                }
                Err(_) => {
                    self.poll_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Before a poll sent at `now`: probes past their deadline are late, aborted ones
    /// forgotten. False when none is left: the poller is then gone from the map.
    fn settle_board(
        &self,
        identity: &str,
        board: &mut Board<Waiter>,
        joined: &mut mpsc::Receiver<Waiting<Waiter>>,
        now: Instant,
        last_answer: Option<&Reply>,
    ) -> bool {
        board.forget(|waiter| waiter.verdict.is_closed());
        let late = board.expire(now);
        if !late.is_empty() {
            self.explain_late(last_answer);
        }
        for waiter in late {
            let _ = waiter.verdict.send((None, ToldTimes::default()));
        }
        shared_poll::keeps_polling(&self.pollers, identity, board, joined)
    }

    /// Each waiting probe judges its own `until` on the answer of the poll sent at `sent`.
    fn decide_shown(&self, board: &mut Board<Waiter>, sent: Instant, reply: &Reply) {
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(&reply.body) else {
            return;
        };
        let until = &self.spec.until;
        let shown = board.answered(sent, |waiter| {
            until.holds_on(&json, &waiter.expected)
                || waiter.later.as_ref().is_some_and(|later| {
                    later.lock().unwrap_or_else(|e| e.into_inner()).iter().any(|state| until.holds_on(&json, state))
                })
        });
        for (waiter, lag) in shown {
            let _ = waiter.verdict.send((Some(lag), self.told_times(&json, waiter.seq)));
        }
    }
}

impl<T: Target> LagProbe<T> {
    /// The read model's times of the command's event, where `[projection.stages]` says
    /// to find them.
    fn told_times(&self, json: &serde_json::Value, seq: u64) -> ToldTimes {
        let stages = &self.spec.stages;
        let first = |selector: &Option<crate::scenario::Selector>| {
            selector.as_ref().and_then(|s| s.select(json).first().and_then(|v| wall_time_us(v)))
        };
        if let Some(event_ref) = &stages.event_ref {
            let own = self.executor.ref_text(seq);
            let told = event_ref.select(json).first().and_then(|v| v.as_str().map(str::to_owned));
            if told.as_deref() != Some(own.as_str()) {
                return ToldTimes { other_event: true, ..ToldTimes::default() };
            }
        }
        ToldTimes { received_us: first(&stages.received_at), applied_us: first(&stages.applied_at), other_event: false }
    }
}

/// A lag probe whose verdict comes from elsewhere (a create's id search); dropped
/// without `finish` (the run aborted), it records nothing, like an aborted probe.
pub struct Adopted {
    records: mpsc::Sender<LagRecord>,
    seq: u64,
    acked: Instant,
    _running: Running,
}

impl Adopted {
    /// Records the lag (`None`: not shown within the timeout, late).
    pub async fn finish(self, lag: Option<Duration>) {
        let record = LagRecord { seq: self.seq, acked: self.acked, lag, told: ToldTimes::default() };
        let _ = self.records.send(record).await;
    }
}

/// Counts a probe in `Gauges::probes_running` and [`Outstanding`] while it lives
/// (finished, after its record is sent, or aborted).
struct Running {
    gauges: Arc<Gauges>,
    outstanding: Arc<Outstanding>,
    acked: Instant,
}

impl Running {
    fn enter(gauges: Arc<Gauges>, outstanding: Arc<Outstanding>, acked: Instant) -> Running {
        gauges.probes_running.fetch_add(1, Ordering::Relaxed);
        outstanding.enter(acked);
        Running { gauges, outstanding, acked }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.gauges.probes_running.fetch_sub(1, Ordering::Relaxed);
        self.outstanding.leave(self.acked);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_model_times_in_any_usual_unit() {
        use serde_json::json;
        let us = 1_763_942_400_123_456_i64; // 2025-11-24T00:00:00.123456Z
        assert_eq!(wall_time_us(&json!(1_763_942_400_123.456)), Some(us));
        assert_eq!(wall_time_us(&json!(us)), Some(us));
        assert_eq!(wall_time_us(&json!(us * 1000)), Some(us));
        assert_eq!(wall_time_us(&json!("1763942400123.456")), Some(us));
        assert_eq!(wall_time_us(&json!("2025-11-24T00:00:00.123456Z")), Some(us));
        assert_eq!(wall_time_us(&json!("yesterday")), None);
        assert_eq!(wall_time_us(&json!(null)), None);
    }
}
