//! The `memory` reference target: a bank-account CQRS system in one process.
//!
//! Write model (sharded map of accounts) → event bus (one bounded channel per
//! projector, events partitioned by account so each account stays in order) →
//! projector tasks → read model (sharded map of account views, with the refs applied).
//! Faults are injected on the way (see `Faults`), deterministically from the seed,
//! and every one is written in the target's own books (`GroundTruth`).

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::seq::SliceRandom as _;
use rand::{RngExt as _, SeedableRng as _};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::bank::{Bank, Changed, GroundTruth, RefSlice, Refusal, View};
use super::config::{MemoryConfig, Window};
use super::work::{SharedSection, WorkClock};

const SHARDS: usize = 64;
/// Events a projector's queue holds; a full queue refuses commands with 503.
const BUS_CAPACITY: usize = 200_000;
/// How long a crashed projector takes to come back.
pub const RESTART_DELAY: Duration = Duration::from_millis(300);

#[derive(Debug, Clone)]
pub(crate) struct Event {
    seq: u64,
    /// When the projector took it off its queue (ms since the epoch; set by the projector).
    received_at: f64,
    account: Arc<str>,
    /// The account's version after this event (write model).
    version: u64,
    /// Balance change (0 for an opening).
    delta: i64,
    op_ref: Option<Arc<str>>,
    accepted_at: Instant,
}

#[derive(Debug, Default)]
struct Account {
    balance: i64,
    version: u64,
    /// The highest version whose command's answer was written (stale-read truth).
    acked_version: u64,
    /// The projector whose queue carries this account's events.
    projector: usize,
}

/// One account as the read model shows it.
#[derive(Debug, Default, Clone)]
pub(crate) struct AccountView {
    pub id: String,
    pub balance: i64,
    pub version: u64,
    /// Refs in the order they were applied.
    pub refs: Vec<Arc<str>>,
    /// Event sequence numbers applied (what an idempotent projector checks).
    applied: HashSet<u64>,
    /// Every version up to this one is applied (stale-read truth)...
    applied_through: u64,
    /// ... and these above it are (applied out of order, or past a dropped event).
    applied_ahead: std::collections::BTreeSet<u64>,
    last_event: Option<super::bank::EventTimes>,
}

pub(crate) struct Inner {
    pub config: MemoryConfig,
    write: Vec<Mutex<HashMap<Arc<str>, Account>>>,
    read: Vec<RwLock<HashMap<Arc<str>, AccountView>>>,
    bus: Vec<mpsc::Sender<Event>>,
    next_seq: AtomicU64,
    /// Accounts opened: assigns each its projector, round robin.
    opened: AtomicU64,
    /// The section every projector's work shares (`MemoryConfig::work`).
    shared_section: Arc<SharedSection>,
    /// Deposits and withdrawals seen (for every-n-th command faults).
    commands: AtomicU64,
    /// Ref-carrying events emitted (for every-k-th event faults).
    ref_events: AtomicU64,
    truth: Mutex<GroundTruth>,
    traffic_reads: AtomicU64,
    stale_reads: AtomicU64,
    origin: Mutex<Instant>,
    stall_until: Mutex<Option<Instant>>,
    pause_until: Mutex<Option<Instant>>,
    crash_requested: AtomicBool,
    timed_crash_done: AtomicBool,
    shutdown: CancellationToken,
}

/// The running system; cheap to clone.
#[derive(Clone)]
pub struct MemoryApp {
    pub(crate) inner: Arc<Inner>,
}

fn shard_of(account: &str) -> usize {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    account.hash(&mut hasher);
    (hasher.finish() % SHARDS as u64) as usize
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MemoryApp {
    /// Starts the system (projector tasks on the current tokio runtime).
    pub fn start(config: MemoryConfig) -> MemoryApp {
        let projectors = config.projectors.max(1);
        let mut bus = Vec::new();
        let mut queues = Vec::new();
        for _ in 0..projectors {
            let (tx, rx) = mpsc::channel(BUS_CAPACITY);
            bus.push(tx);
            queues.push(rx);
        }
        let inner = Arc::new(Inner {
            config,
            write: (0..SHARDS).map(|_| Mutex::default()).collect(),
            read: (0..SHARDS).map(|_| RwLock::default()).collect(),
            bus,
            next_seq: AtomicU64::new(1),
            opened: AtomicU64::new(0),
            shared_section: Arc::default(),
            commands: AtomicU64::new(0),
            ref_events: AtomicU64::new(0),
            truth: Mutex::default(),
            traffic_reads: AtomicU64::new(0),
            stale_reads: AtomicU64::new(0),
            origin: Mutex::new(Instant::now()),
            stall_until: Mutex::default(),
            pause_until: Mutex::default(),
            crash_requested: AtomicBool::new(false),
            timed_crash_done: AtomicBool::new(false),
            shutdown: CancellationToken::new(),
        });
        for (index, queue) in queues.into_iter().enumerate() {
            tokio::spawn(Projector::new(inner.clone(), index).run(queue));
        }
        MemoryApp { inner }
    }

    pub fn ground_truth(&self) -> GroundTruth {
        let mut truth = lock(&self.inner.truth).clone();
        truth.traffic_reads = self.inner.traffic_reads.load(Ordering::Relaxed);
        truth.stale_reads = self.inner.stale_reads.load(Ordering::Relaxed);
        truth
    }

    /// Fault times (`at`) count from now on.
    pub fn restart_fault_clock(&self) {
        *lock(&self.inner.origin) = Instant::now();
        self.inner.timed_crash_done.store(false, Ordering::Relaxed);
    }

    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
    }

    /// Stops the world for `duration` from now.
    pub fn stall_for(&self, duration: Duration) {
        *lock(&self.inner.stall_until) = Some(Instant::now() + duration);
    }

    /// Pauses projector 0 for `duration` from now.
    pub fn pause_for(&self, duration: Duration) {
        *lock(&self.inner.pause_until) = Some(Instant::now() + duration);
    }

    /// Crashes projector 0 at its next event; it restarts from its last checkpoint.
    pub fn crash(&self) {
        self.inner.crash_requested.store(true, Ordering::Relaxed);
    }
}

impl Inner {
    fn window_end(&self, window: Option<Window>, dynamic: &Mutex<Option<Instant>>) -> Option<Instant> {
        let now = Instant::now();
        let origin = *lock(&self.origin);
        let scheduled = window
            .map(|w| (origin + w.at, origin + w.at + w.duration))
            .filter(|(from, to)| (*from..*to).contains(&now))
            .map(|(_, to)| to);
        let dynamic = lock(dynamic).filter(|until| *until > now);
        scheduled.max(dynamic)
    }

    /// A stop-the-world stall: every request waits until it is over.
    pub async fn wait_out_stall(&self) {
        while let Some(end) = self.window_end(self.config.faults.stall, &self.stall_until) {
            tokio::time::sleep_until(tokio::time::Instant::from_std(end)).await;
        }
    }

    pub fn open(&self, account: &str) -> Result<u64, Refusal> {
        let mut shard = lock(&self.write[shard_of(account)]);
        if shard.contains_key(account) {
            return Err(Refusal::Exists);
        }
        let account: Arc<str> = account.into();
        // Round robin, not by hash: every projector carries an equal share of the accounts,
        // so the target's capacity at N projectors is N times one's (issue 10).
        let projector = (self.opened.fetch_add(1, Ordering::Relaxed) % self.bus.len() as u64) as usize;
        self.emit(&account, projector, 0, 0, None)?;
        shard.insert(account, Account { projector, ..Account::default() });
        Ok(0)
    }

    /// A deposit (`delta > 0`) or withdrawal (`delta < 0`). Returns (version, balance, slow delay).
    pub fn change(&self, account: &str, delta: i64, op_ref: &str) -> Result<(u64, i64, Option<Duration>), Refusal> {
        let n = self.commands.fetch_add(1, Ordering::Relaxed) + 1;
        let faults = &self.config.faults;
        if faults.fail_every.is_some_and(|k| n.is_multiple_of(k)) {
            lock(&self.truth).failed_commands += 1;
            return Err(Refusal::Injected);
        }
        let mut shard = lock(&self.write[shard_of(account)]);
        let (key, state) = shard.get_key_value(account).ok_or(Refusal::NotFound)?;
        if state.balance + delta < 0 {
            return Err(Refusal::InsufficientFunds);
        }
        let (key, version) = (key.clone(), state.version + 1);
        self.emit(&key, state.projector, version, delta, Some(op_ref.into()))?;
        let state = shard.get_mut(account).expect("present: checked under the same lock");
        state.version = version;
        state.balance += delta;
        let balance = state.balance;
        drop(shard);
        let slow = faults.slow_commands.filter(|s| n.is_multiple_of(s.every)).map(|s| {
            lock(&self.truth).slow_refs.push(op_ref.to_owned());
            s.delay
        });
        if delta != 0 {
            lock(&self.truth).accepted += 1;
        }
        Ok((version, balance, slow))
    }

    /// Puts an event on its projector's queue, applying the bus faults. Called under the
    /// account's write lock, so each account's events enter the queue in version order.
    fn emit(
        &self,
        account: &Arc<str>,
        projector: usize,
        version: u64,
        delta: i64,
        op_ref: Option<Arc<str>>,
    ) -> Result<(), Refusal> {
        let queue = &self.bus[projector];
        let faults = &self.config.faults;
        let (mut dropped, mut copies) = (false, 1);
        if let Some(op_ref) = &op_ref {
            let k = self.ref_events.fetch_add(1, Ordering::Relaxed) + 1;
            // Dropping wins over duplicating when both fall on one event.
            dropped = faults.drop_every.is_some_and(|every| k.is_multiple_of(every));
            if !dropped && faults.duplicate_every.is_some_and(|every| k.is_multiple_of(every)) {
                copies = 2;
            }
            if dropped {
                lock(&self.truth).dropped_refs.push(op_ref.to_string());
            }
        }
        let permits = if dropped { None } else { Some(queue.try_reserve_many(copies).map_err(|_| Refusal::BusFull)?) };
        let event = Event {
            seq: self.next_seq.fetch_add(1, Ordering::Relaxed),
            received_at: 0.0,
            account: account.clone(),
            version,
            delta,
            op_ref,
            accepted_at: Instant::now(),
        };
        for permit in permits.into_iter().flatten() {
            permit.send(event.clone());
        }
        Ok(())
    }

    /// One account's view with `refs` of its refs: copies only that slice (issue 18:
    /// cloning every ref on each read made reads cost more as the run went on).
    pub fn view(&self, account: &str, refs: RefSlice) -> Option<View> {
        let shard = self.read[shard_of(account)].read().unwrap_or_else(|e| e.into_inner());
        shard.get(account).map(|v| View {
            id: v.id.clone(),
            balance: v.balance,
            version: v.version,
            refs: v.refs[refs.bounds(v.refs.len())].to_vec(),
            refs_total: v.refs.len() as u64,
            applied_through: v.applied_through,
            last_event: v.last_event.clone(),
        })
    }

    /// The answer of a command on `account` at `version` is about to be written.
    pub fn acknowledged(&self, account: &str, version: u64) {
        if let Some(state) = lock(&self.write[shard_of(account)]).get_mut(account) {
            state.acked_version = state.acked_version.max(version);
        }
    }

    pub fn acknowledged_version(&self, account: &str) -> Option<u64> {
        lock(&self.write[shard_of(account)]).get(account).map(|a| a.acked_version)
    }

    /// A traffic read answered `view` with version `acked` acknowledged before it.
    pub fn count_traffic_read(&self, acked: u64, view: Option<&View>) {
        self.traffic_reads.fetch_add(1, Ordering::Relaxed);
        if view.is_none_or(|v| v.applied_through < acked) {
            self.stale_reads.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The `limit` accounts with the highest balance in the read model.
    pub fn top(&self, limit: usize) -> Vec<(String, i64, u64)> {
        let mut all: Vec<(String, i64, u64)> = Vec::new();
        for shard in &self.read {
            let shard = shard.read().unwrap_or_else(|e| e.into_inner());
            all.extend(shard.values().map(|v| (v.id.clone(), v.balance, v.version)));
        }
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(limit);
        all
    }

    /// Applies one event to the read model; `false` when an idempotent projector skipped it.
    fn apply(&self, event: &Event, idempotent: bool) -> bool {
        let mut shard = self.read[shard_of(&event.account)].write().unwrap_or_else(|e| e.into_inner());
        let view = shard
            .entry(event.account.clone())
            .or_insert_with(|| AccountView { id: event.account.to_string(), ..AccountView::default() });
        let first = view.applied.insert(event.seq);
        if !first && idempotent {
            return false;
        }
        view.balance += event.delta;
        view.version = view.version.max(event.version);
        if first && event.version > view.applied_through {
            view.applied_ahead.insert(event.version);
            while view.applied_ahead.remove(&(view.applied_through + 1)) {
                view.applied_through += 1;
            }
        }
        view.last_event = Some(super::bank::EventTimes {
            op_ref: event.op_ref.clone(),
            received_at: event.received_at,
            applied_at: super::bank::now_ms(),
        });
        if let Some(op_ref) = &event.op_ref {
            view.refs.push(op_ref.clone());
            if !first {
                drop(shard);
                lock(&self.truth).duplicated_refs.push(op_ref.to_string());
            }
        }
        true
    }
}

/// One projector task: applies its queue's events to the read model.
struct Projector {
    inner: Arc<Inner>,
    index: usize,
    rng: SmallRng,
    /// Events applied since the last checkpoint: what a crash redelivers.
    since_checkpoint: Vec<Event>,
    work: WorkClock,
}

impl Projector {
    fn new(inner: Arc<Inner>, index: usize) -> Projector {
        let rng = SmallRng::seed_from_u64(inner.config.seed ^ (index as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407));
        let work = WorkClock::new(inner.config.work, inner.shared_section.clone());
        Projector { inner, index, rng, since_checkpoint: Vec::new(), work }
    }

    async fn run(mut self, mut queue: mpsc::Receiver<Event>) {
        let shutdown = self.inner.shutdown.clone();
        let window = self.inner.config.faults.reorder_window.unwrap_or(1).max(1);
        let mut batch = Vec::with_capacity(window);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                received = queue.recv_many(&mut batch, window) => if received == 0 { return },
            }
            if window > 1 {
                batch.shuffle(&mut self.rng);
            }
            for event in batch.drain(..) {
                self.handle(event).await;
            }
        }
    }

    async fn handle(&mut self, event: Event) {
        let inner = self.inner.clone();
        let faults = &inner.config.faults;
        if self.index == 0 {
            while let Some(end) = inner.window_end(faults.pause_projector, &inner.pause_until) {
                tokio::time::sleep_until(tokio::time::Instant::from_std(end)).await;
            }
            if self.crash_due() {
                self.crash_and_restart().await;
            }
        }
        // Taken off the bus now: after a pause, before the injected delay and the work.
        let mut event = event;
        event.received_at = super::bank::now_ms();
        let jitter = if faults.projection_jitter.is_zero() {
            Duration::ZERO
        } else {
            let mut rng = SmallRng::seed_from_u64(inner.config.seed ^ event.seq);
            faults.projection_jitter.mul_f64(rng.random_range(0.0..1.0))
        };
        let visible_at = tokio::time::Instant::from_std(event.accepted_at + faults.projection_delay + jitter);
        if inner.config.work.is_zero() {
            if visible_at > tokio::time::Instant::now() {
                tokio::time::sleep_until(visible_at).await;
            }
        } else {
            // The work starts once the event is there (after the injected delay).
            let received = tokio::time::Instant::now().max(visible_at);
            self.work.work_on(visible_at, received).await;
        }
        inner.apply(&event, faults.idempotent);
        self.since_checkpoint.push(event);
        if self.since_checkpoint.len() as u64 >= faults.checkpoint_every.max(1) {
            self.since_checkpoint.clear();
        }
    }

    fn crash_due(&self) -> bool {
        let inner = &self.inner;
        if inner.crash_requested.swap(false, Ordering::Relaxed) {
            return true;
        }
        match inner.config.faults.crash_projector_at {
            Some(at) if !inner.timed_crash_done.load(Ordering::Relaxed) => {
                let due = lock(&inner.origin).elapsed() >= at;
                due && !inner.timed_crash_done.swap(true, Ordering::Relaxed)
            }
            _ => false,
        }
    }

    /// The process dies and comes back after `RESTART_DELAY`, resuming from its last
    /// checkpoint: everything applied since then is delivered again (at-least-once).
    async fn crash_and_restart(&mut self) {
        lock(&self.inner.truth).crashes += 1;
        tokio::time::sleep(RESTART_DELAY).await;
        let redelivered = std::mem::take(&mut self.since_checkpoint);
        for event in &redelivered {
            self.inner.apply(event, self.inner.config.faults.idempotent);
        }
        self.since_checkpoint = redelivered;
    }
}

impl Bank for MemoryApp {
    async fn before_request(&self) {
        self.inner.wait_out_stall().await;
    }

    async fn open(&self, account: &str) -> Result<u64, Refusal> {
        self.inner.open(account)
    }

    async fn change(&self, account: &str, delta: i64, op_ref: &str) -> Result<Changed, Refusal> {
        let (version, balance, answer_after) = self.inner.change(account, delta, op_ref)?;
        Ok(Changed { version, balance, answer_after })
    }

    async fn view(&self, account: &str, refs: RefSlice) -> Result<Option<View>, Refusal> {
        Ok(self.inner.view(account, refs))
    }

    async fn top(&self, limit: usize) -> Result<Vec<(String, i64, u64)>, Refusal> {
        Ok(self.inner.top(limit))
    }

    fn ground_truth(&self) -> GroundTruth {
        MemoryApp::ground_truth(self)
    }

    fn acknowledged(&self, account: &str, version: u64) {
        self.inner.acknowledged(account, version);
    }

    fn acknowledged_version(&self, account: &str) -> Option<u64> {
        self.inner.acknowledged_version(account)
    }

    fn count_traffic_read(&self, acked: u64, view: Option<&View>) {
        self.inner.count_traffic_read(acked, view);
    }
}
