//! Ids found by reading (issue 31, item 5): a create that answers 201 with an empty body
//! and no `Location` (a NestJS task service) leaves nothing to capture. With
//! `resolve = { query, select }` on its `creates_key` command, every acknowledged create
//! whose answer carried no id is looked for: `select`, rendered with the create's
//! `{{ref}}`, is run on polls of `query` until it selects a value (the id) or the timeout.
//!
//! Polled like a lag probe, through the same shared polls (`shared_poll`): one read of a
//! keyless list per poll interval serves every create being looked for. A found id joins
//! the created keys (`CreatedKeys`), so later commands on created keys act only on ids
//! the target made and the read model showed; an id not found in time is counted as
//! `unresolved` and never used. The time from the create's acknowledgement to the poll
//! that found it is that create's projection lag, reported as `created.<op>.lag_ms` for
//! every create; when the create is a `[projection]` command, its sampled creates' lag
//! probes are these searches (`LagProbe::adopt`: no second poll for them), so the
//! projection figures include them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::SeedableRng as _;
use rand::rngs::SmallRng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::lag::LagProbe;
use super::shared_poll::{self, Board, Waiting};
use crate::measure::histogram::{self, Percentiles};
use crate::operation::{Executed, Executor, Outcome, Probe};
use crate::scenario::selector::{Scope, Selector};
use crate::scenario::template::RenderContext;
use crate::scenario::{OperationSpec, ResolveSpec};
use crate::target::{Reply, Target};

/// Ids looked for at once (their selectors and waits are the memory this takes); an
/// acknowledged create beyond that is counted as `skipped`, its id never used.
const MAX_CONCURRENT_RESOLVES: usize = 4096;

/// What became of the ids of one create operation (result.json `created.<op>`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResolveStats {
    /// The `[[query]]` read to find them.
    pub query: String,
    /// Acknowledged creates (warmup included) whose answer carried no id: the ids looked
    /// for. Equals `resolved + unresolved + abandoned + skipped`.
    pub to_resolve: u64,
    /// Found by reading; usable as created keys (unless `not_kept`).
    pub resolved: u64,
    /// Not found within `timeout_ms` of the create's acknowledgement: never used.
    pub unresolved: u64,
    /// Still looked for when the run stopped (interrupted, or past the probes' grace):
    /// never used.
    #[serde(default)]
    pub abandoned: u64,
    /// Not looked for: `MAX_CONCURRENT_RESOLVES` were already running. Never used.
    #[serde(default)]
    pub skipped: u64,
    /// Found, but the pool of created ids was full (1,000,000): not used.
    #[serde(default)]
    pub not_kept: u64,
    /// Reads of `query` sent to find them (shared by the creates waiting on one read).
    pub polls: u64,
    /// Reads that got no usable answer.
    pub poll_errors: u64,
    /// Acknowledgement → the first poll that showed the id, over the resolved ids: the
    /// creates' projection lag. `null` when none was resolved (unresolved ones are
    /// counted, not timed).
    pub lag_ms: Option<Percentiles>,
    /// The poll interval (the lag's resolution; 5 % of the wait for long waits).
    pub resolution_ms: f64,
    /// How long an id is looked for after the create's acknowledgement, ms.
    pub timeout_ms: f64,
}

/// The counters of one create operation.
#[derive(Default)]
struct Figures {
    to_resolve: AtomicU64,
    resolved: AtomicU64,
    unresolved: AtomicU64,
    abandoned: AtomicU64,
    skipped: AtomicU64,
    not_kept: AtomicU64,
    polls: AtomicU64,
    poll_errors: AtomicU64,
    lags: Mutex<Option<Histogram<u64>>>,
}

/// Looks for the ids of acknowledged creates; shared by every operation task.
pub struct IdResolver<T> {
    executor: Arc<Executor<T>>,
    /// Per operation: how its ids are found, and the name they are kept under.
    specs: Vec<Option<(ResolveSpec, String)>>,
    figures: Vec<Figures>,
    slots: Arc<Semaphore>,
    pub tracker: TaskTracker,
    pub abort: CancellationToken,
    /// The run's runtime: resolutions outlive the generator threads that start them.
    runtime: tokio::runtime::Handle,
    /// The pollers running, by the identity of their read (see `LagProbe::pollers`).
    pollers: shared_poll::Pollers<Waiter>,
    /// The lag probe, when the creates are `[projection]` commands: a sampled create's
    /// lag is its search's time (`LagProbe::adopt`).
    pub lag: Option<Arc<LagProbe<T>>>,
}

/// A create as its poller sees it.
struct Waiter {
    select: Selector,
    verdict: oneshot::Sender<(String, Duration)>,
}

/// What a poller reads: the query rendered for its first create.
struct Read {
    op: usize,
    identity: String,
    key: u64,
    seq: u64,
    captured: Vec<(String, String)>,
}

impl<T: Target> IdResolver<T> {
    /// `None` when no operation resolves ids. Must be called on the run's runtime.
    pub fn new(executor: Arc<Executor<T>>, operations: &[OperationSpec]) -> Option<IdResolver<T>> {
        let specs: Vec<_> = operations
            .iter()
            .map(|o| Some((o.resolve.clone()?, o.creates_key.clone().expect("resolve needs creates_key"))))
            .collect();
        specs.iter().any(Option::is_some).then(|| IdResolver {
            executor,
            figures: operations.iter().map(|_| Figures::default()).collect(),
            specs,
            slots: Arc::new(Semaphore::new(MAX_CONCURRENT_RESOLVES)),
            tracker: TaskTracker::new(),
            abort: CancellationToken::new(),
            runtime: tokio::runtime::Handle::current(),
            pollers: Mutex::default(),
            lag: None,
        })
    }

    /// Called after every operation: starts looking for the id of an acknowledged create
    /// whose answer carried none.
    pub fn after(self: &Arc<Self>, op: usize, seq: u64, executed: &Executed) {
        let Some((spec, name)) = &self.specs[op] else { return };
        if executed.outcome != Outcome::Ok || executed.captured.iter().any(|(n, _)| n == name) {
            return;
        }
        let figures = &self.figures[op];
        figures.to_resolve.fetch_add(1, Ordering::Relaxed);
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            figures.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let key_text = self.executor.key_text(executed.key);
        let op_ref = self.executor.ref_text(seq);
        let ctx = RenderContext { key: &key_text, op_ref: &op_ref, captures: &executed.captured };
        let rendered = spec.select.render(&ctx, &mut SmallRng::seed_from_u64(seq));
        let Ok(select) = Selector::parse(&rendered, Scope::Body) else {
            // A value put in by a capture broke the selector: this id cannot be looked for.
            figures.unresolved.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let (verdict, decided) = oneshot::channel();
        let acked = executed.done;
        let adopted = self.lag.as_ref().and_then(|lag| lag.adopt(op, seq, acked));
        let waiting = Waiting { acked, deadline: acked + spec.timeout, probe: Waiter { select, verdict } };
        let read = Read {
            op,
            identity: self.executor.probe_read_identity(spec.query, executed.key, seq, &executed.captured),
            key: executed.key,
            seq,
            captured: executed.captured.clone(),
        };
        self.join_poller(read, waiting);
        let (resolver, abort, name) = (self.clone(), self.abort.clone(), name.clone());
        self.tracker.spawn_on(
            async move {
                let _permit = permit;
                let figures = &resolver.figures[op];
                tokio::select! {
                    biased;
                    _ = abort.cancelled() => {
                        figures.abandoned.fetch_add(1, Ordering::Relaxed);
                    }
                    found = decided => {
                        let lag = match found {
                            Ok((id, lag)) => {
                                resolver.keep(op, &name, id, lag);
                                Some(lag)
                            }
                            // The poller dropped it at its deadline.
                            Err(_) => {
                                figures.unresolved.fetch_add(1, Ordering::Relaxed);
                                None
                            }
                        };
                        if let Some(adopted) = adopted {
                            adopted.finish(lag).await;
                        }
                    }
                }
            },
            &self.runtime,
        );
    }

    /// A found id joins the created keys, with its name as a capture on the new key.
    fn keep(&self, op: usize, name: &str, id: String, lag: Duration) {
        let figures = &self.figures[op];
        figures.resolved.fetch_add(1, Ordering::Relaxed);
        {
            let mut lags = figures.lags.lock().unwrap_or_else(|e| e.into_inner());
            histogram::record(lags.get_or_insert_with(histogram::new_latency_histogram), lag);
        }
        match self.executor.created.add(id.clone()) {
            Some(key) => {
                if let Some(store) = &self.executor.captures {
                    store.put(key, vec![(name.to_owned(), id)]);
                }
            }
            None => {
                figures.not_kept.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn join_poller(self: &Arc<Self>, read: Read, waiting: Waiting<Waiter>) {
        // Locked until the create is sent to its poller: a poller leaves the map only
        // with nothing left to read for, under the same lock (`settle_board`).
        let mut pollers = self.pollers.lock().unwrap_or_else(|e| e.into_inner());
        let joins = pollers.entry(read.identity.clone()).or_insert_with(|| {
            // Never full: no more creates than that are looked for at once.
            let (joins, joined) = mpsc::channel(MAX_CONCURRENT_RESOLVES);
            self.tracker.spawn_on(self.clone().run_poller(read, joined), &self.runtime);
            joins
        });
        // Fails only when the run aborts: the create is then counted as abandoned.
        let _ = joins.try_send(waiting);
    }

    /// One poller's life: poll until no create waits on its read.
    async fn run_poller(self: Arc<Self>, read: Read, mut joined: mpsc::Receiver<Waiting<Waiter>>) {
        let (spec, _) = self.specs[read.op].as_ref().expect("a resolving operation");
        let figures = &self.figures[read.op];
        let mut board = Board::default();
        let mut last_sent = None;
        loop {
            let next = board.next_poll(last_sent, spec.poll_interval);
            tokio::select! {
                biased;
                _ = self.abort.cancelled() => return,
                Some(waiting) = joined.recv() => {
                    board.join(waiting);
                    continue;
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(next)) => {}
            }
            let sent = Instant::now();
            if !self.settle_board(&read.identity, &mut board, &mut joined, sent) {
                return;
            }
            last_sent = Some(sent);
            figures.polls.fetch_add(1, Ordering::Relaxed);
            match self.executor.fetch(Probe::Resolve, spec.query, read.key, read.seq, Some(&read.captured)).await {
                Ok(reply) => decide_found(&mut board, sent, &reply),
                Err(_) => {
                    figures.poll_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Before a poll sent at `now`: creates past their deadline are dropped (their
    /// verdict channel closes: unresolved), aborted ones forgotten. False when none is
    /// left: the poller is then gone from the map.
    fn settle_board(
        &self,
        identity: &str,
        board: &mut Board<Waiter>,
        joined: &mut mpsc::Receiver<Waiting<Waiter>>,
        now: Instant,
    ) -> bool {
        board.forget(|waiter| waiter.verdict.is_closed());
        drop(board.expire(now));
        shared_poll::keeps_polling(&self.pollers, identity, board, joined)
    }

    /// The figures of every resolving operation, by name, once the resolutions ended.
    pub fn stats(&self) -> std::collections::BTreeMap<String, ResolveStats> {
        self.specs
            .iter()
            .enumerate()
            .filter_map(|(op, spec)| {
                let (spec, _) = spec.as_ref()?;
                let f = &self.figures[op];
                let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
                let lags = f.lags.lock().unwrap_or_else(|e| e.into_inner());
                let stats = ResolveStats {
                    query: self.executor.op_name(spec.query).to_owned(),
                    to_resolve: n(&f.to_resolve),
                    resolved: n(&f.resolved),
                    unresolved: n(&f.unresolved),
                    abandoned: n(&f.abandoned),
                    skipped: n(&f.skipped),
                    not_kept: n(&f.not_kept),
                    polls: n(&f.polls),
                    poll_errors: n(&f.poll_errors),
                    lag_ms: lags.as_ref().and_then(histogram::sampled_percentiles),
                    resolution_ms: spec.poll_interval.as_secs_f64() * 1000.0,
                    timeout_ms: spec.timeout.as_secs_f64() * 1000.0,
                };
                Some((self.executor.op_name(op).to_owned(), stats))
            })
            .collect()
    }

    /// Probe requests sent (polls), for `probe_load`.
    pub fn polls(&self) -> u64 {
        self.figures.iter().map(|f| f.polls.load(Ordering::Relaxed)).sum()
    }
}

/// Each waiting create runs its own selector on the answer of the poll sent at `sent`;
/// the first value it selects is its id (strings as they are, other JSON in JSON form).
fn decide_found(board: &mut Board<Waiter>, sent: Instant, reply: &Reply) {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&reply.body) else {
        return;
    };
    let found =
        board.answered(sent, |waiter| waiter.select.select(&json).first().is_some_and(|v| id_text(v).is_some()));
    for (waiter, lag) in found {
        if let Some(id) = waiter.select.select(&json).first().and_then(|v| id_text(v)) {
            let _ = waiter.verdict.send((id, lag));
        }
    }
}

/// A selected value as an id: a non-empty string or a number; `null`, `""` and
/// objects are no id.
pub fn id_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_selected_string_or_number_is_an_id() {
        assert_eq!(id_text(&json!("65a1f0c2e4b0a1b2c3d4e5f6")).as_deref(), Some("65a1f0c2e4b0a1b2c3d4e5f6"));
        assert_eq!(id_text(&json!(42)).as_deref(), Some("42"));
        assert_eq!(id_text(&json!("")), None);
        assert_eq!(id_text(&json!(null)), None);
        assert_eq!(id_text(&json!({"_id": "x"})), None);
    }

    #[test]
    fn each_create_finds_its_own_row() {
        let t0 = Instant::now();
        let mut board = Board::default();
        let mut decided = Vec::new();
        for r in ["0000abcd.0.1", "0000abcd.0.2"] {
            let (verdict, rx) = oneshot::channel();
            let select =
                Selector::parse(&format!("$.data[?@.describe == '{r} buy milk']._id"), Scope::Body).expect("valid");
            board.join(Waiting { acked: t0, deadline: t0 + Duration::from_secs(1), probe: Waiter { select, verdict } });
            decided.push(rx);
        }
        let body = json!({"data": [{"_id": "b2", "describe": "0000abcd.0.2 buy milk"}]});
        let reply = Reply {
            status: 200,
            headers: http::HeaderMap::new(),
            body: bytes::Bytes::from(body.to_string()),
            received: None,
        };
        decide_found(&mut board, t0 + Duration::from_millis(7), &reply);
        let mut second = decided.pop().expect("two");
        assert_eq!(second.try_recv().expect("found"), ("b2".to_owned(), Duration::from_millis(7)));
        assert!(decided[0].try_recv().is_err(), "the first is not shown yet");
        assert!(!board.is_empty());
    }
}
