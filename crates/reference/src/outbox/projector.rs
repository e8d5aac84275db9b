//! Projector instances: one consumer group on the bus (a Kafka topic or a Redis stream),
//! applying events to the Redis read model. What an instance applied is marked after each
//! event and committed every `checkpoint_every` events or `commit_interval`, whichever
//! comes first (and when the bus goes quiet), so a crashed instance's successor is
//! redelivered what was applied after the last commit: Kafka offsets, or Redis stream
//! entries acknowledged (XACK) in batches.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::OutboxConfig;
use super::bus::{BusKind, OutboxEvent};
use super::kafka::KafkaInbox;
use super::read_model::{Applied, ReadModel};
use super::redis_stream::StreamInbox;
use cqrs_bench::reference::bank::GroundTruth;
use cqrs_bench::reference::memory::RESTART_DELAY;
use cqrs_bench::reference::work::{SharedSection, WorkClock};

/// After this long without an event, commit what was applied.
const IDLE_COMMIT: Duration = Duration::from_secs(1);
/// Wait between attempts when Redis refuses an event.
const APPLY_RETRY: Duration = Duration::from_millis(100);

/// The running group.
pub struct Group {
    owned: Arc<AtomicI64>,
    /// Orders to instance 0, the one faults are injected into.
    first: mpsc::Sender<Control>,
}

/// What one instance needs, shared by all.
#[derive(Clone)]
pub struct Shared {
    pub config: Arc<OutboxConfig>,
    read_model: ReadModel,
    truth: Arc<Mutex<GroundTruth>>,
    /// Kafka partitions the instances own (their rebalance callbacks count them).
    pub owned: Arc<AtomicI64>,
    /// The section every instance's work shares.
    section: Arc<SharedSection>,
}

impl Group {
    /// Joins `config.projectors` instances to the group and starts them on `tasks`.
    pub async fn start(
        config: &OutboxConfig,
        read_model: ReadModel,
        truth: Arc<Mutex<GroundTruth>>,
        tasks: &TaskTracker,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Group> {
        let shared = Shared {
            config: Arc::new(config.clone()),
            read_model,
            truth,
            owned: Arc::default(),
            section: Arc::default(),
        };
        let (first, first_control) = mpsc::channel(8);
        let mut first_control = Some(first_control);
        for index in 0..config.projectors.max(1) {
            let inbox = Inbox::join(&shared, index).await?;
            // Instances after the first get a channel nobody sends on.
            let control = first_control.take().unwrap_or_else(|| mpsc::channel(1).1);
            let work = WorkClock::new(config.work, shared.section.clone());
            tasks.spawn(Instance { index, shared: shared.clone(), inbox, work }.run(control, shutdown.clone()));
        }
        Ok(Group { owned: shared.owned, first })
    }

    /// Sends `order` to instance 0.
    pub fn control(&self, order: Control) {
        if self.first.try_send(order).is_err() {
            tracing::warn!("projector 0 is busy with earlier orders; {order:?} dropped");
        }
    }

    /// Kafka: waits until the instances own all `partitions` (librdkafka's mock cluster
    /// delays a group's first rebalance by about 3 s). A Redis stream's group has no
    /// assignment: every consumer reads from the group as soon as it has joined.
    pub async fn wait_until_assigned(&self, bus: BusKind, partitions: i32, timeout: Duration) -> anyhow::Result<()> {
        if bus == BusKind::RedisStreams {
            return Ok(());
        }
        let deadline = Instant::now() + timeout;
        while self.owned.load(Ordering::SeqCst) < i64::from(partitions) {
            anyhow::ensure!(Instant::now() < deadline, "the projectors were not assigned the topic within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

impl Shared {
    pub fn truth(&self) -> std::sync::MutexGuard<'_, GroundTruth> {
        self.truth.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Where an instance takes its events from: a consumer of the group on the bus.
pub enum Inbox {
    Kafka(KafkaInbox),
    Redis(StreamInbox),
}

impl Inbox {
    /// Joins the group as instance `index`.
    async fn join(shared: &Shared, index: usize) -> anyhow::Result<Inbox> {
        Ok(match shared.config.bus {
            BusKind::Kafka => Inbox::Kafka(KafkaInbox::join(shared, index)?),
            BusKind::RedisStreams => Inbox::Redis(StreamInbox::join(&shared.config, index).await?),
        })
    }

    /// The next event's payload; `None` when nothing came within a short poll (the bus
    /// is quiet, or an order may be waiting).
    async fn next(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        match self {
            Inbox::Kafka(inbox) => inbox.next().await,
            Inbox::Redis(inbox) => inbox.next().await,
        }
    }

    /// Marks the event `next` gave last as applied, for the next commit.
    fn applied(&mut self) -> anyhow::Result<()> {
        match self {
            Inbox::Kafka(inbox) => inbox.applied(),
            Inbox::Redis(inbox) => {
                inbox.applied();
                Ok(())
            }
        }
    }

    /// Commits what was marked applied.
    async fn commit(&mut self) -> anyhow::Result<()> {
        match self {
            Inbox::Kafka(inbox) => inbox.commit(),
            Inbox::Redis(inbox) => inbox.commit().await,
        }
    }

    /// Leaves without committing: what was applied since the last commit is delivered
    /// again to whoever takes over.
    async fn crash(self) {
        match self {
            Inbox::Kafka(inbox) => inbox.crash().await,
            Inbox::Redis(inbox) => inbox.crash(),
        }
    }
}

/// What an operator (or the harness, through `/admin/...`) can do to instance 0.
#[derive(Debug, Clone, Copy)]
pub enum Control {
    /// Die without committing; a new instance joins after `RESTART_DELAY`.
    Crash,
    /// Stop consuming for this long.
    Pause(Duration),
}

struct Instance {
    index: usize,
    shared: Shared,
    inbox: Inbox,
    work: WorkClock,
}

impl Instance {
    async fn run(mut self, mut control: mpsc::Receiver<Control>, shutdown: CancellationToken) {
        let (checkpoint_every, commit_interval) =
            (self.shared.config.checkpoint_every, self.shared.config.commit_interval);
        let mut uncommitted = 0u64;
        let mut last_commit = Instant::now();
        while !shutdown.is_cancelled() {
            // Orders are taken between events: `next` polls briefly, so one waits at most
            // that poll (and an event taken off the bus is never dropped by an order).
            match control.try_recv() {
                Ok(Control::Crash) => {
                    tracing::info!(
                        "projector {} crashes: what it applied since its last commit is redelivered",
                        self.index
                    );
                    self = self.crash_and_restart().await;
                    (uncommitted, last_commit) = (0, Instant::now());
                    continue;
                }
                Ok(Control::Pause(duration)) => {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(duration) => {}
                    }
                }
                Err(_) => {}
            }
            let next = tokio::select! {
                _ = shutdown.cancelled() => break,
                next = self.inbox.next() => next,
            };
            match next {
                Ok(Some(payload)) => {
                    self.handle(&payload, &shutdown).await;
                    if let Err(e) = self.inbox.applied() {
                        tracing::warn!("projector {}: marking an event applied: {e:#}", self.index);
                    }
                    uncommitted += 1;
                }
                // Quiet for an interval: commit what was applied, so the group's lag reads 0.
                Ok(None) if uncommitted > 0 && last_commit.elapsed() >= IDLE_COMMIT => {
                    self.commit().await;
                    (uncommitted, last_commit) = (0, Instant::now());
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!("projector {}: {e:#}", self.index);
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(APPLY_RETRY) => {}
                    }
                }
            }
            if uncommitted >= checkpoint_every || (uncommitted > 0 && last_commit.elapsed() >= commit_interval) {
                self.commit().await;
                (uncommitted, last_commit) = (0, Instant::now());
            }
        }
        // A clean stop keeps what it applied.
        if uncommitted > 0 {
            self.commit().await;
        }
    }

    async fn commit(&mut self) {
        if let Err(e) = self.inbox.commit().await {
            tracing::warn!("projector {}: committing: {e:#}", self.index);
        }
    }

    /// Applies one event (after the injected delay and cost).
    async fn handle(&self, payload: &[u8], shutdown: &CancellationToken) {
        let config = &self.shared.config;
        // Taken off the bus now, before the injected delay and the work.
        let received_at = cqrs_bench::reference::bank::now_ms();
        match serde_json::from_slice::<OutboxEvent>(payload) {
            Ok(event) => {
                if !config.projection_delay.is_zero() {
                    let visible_at = event.at_ms + config.projection_delay.as_millis() as i64;
                    let wait = visible_at - now_ms();
                    if wait > 0 {
                        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
                    }
                }
                if !config.work.is_zero() {
                    // The event was there from its acceptance (plus the injected delay) on,
                    // so a late wake-up does not lower the drain rate.
                    let there_ms = event.at_ms + config.projection_delay.as_millis() as i64;
                    let waited = Duration::from_millis((now_ms() - there_ms).max(0) as u64);
                    let now = tokio::time::Instant::now();
                    self.work.work_on(now.checked_sub(waited).unwrap_or(now), now).await;
                }
                self.apply(&event, received_at, shutdown).await;
            }
            Err(e) => tracing::warn!("projector {}: skipping an event that is not JSON: {e}", self.index),
        }
    }

    async fn apply(&self, event: &OutboxEvent, received_at: f64, shutdown: &CancellationToken) {
        loop {
            match self.shared.read_model.apply(event, self.shared.config.idempotent, received_at).await {
                Ok(Applied::Again) => {
                    if let Some(op_ref) = &event.op_ref {
                        self.shared.truth().duplicated_refs.push(op_ref.clone());
                    }
                    return;
                }
                Ok(Applied::Once | Applied::SkippedAsSeen) => return,
                Err(e) => {
                    tracing::warn!("projector {}: applying an event to Redis: {e}; retrying", self.index);
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(APPLY_RETRY) => {}
                    }
                }
            }
        }
    }

    /// The instance dies without committing and a new one joins the group after
    /// `RESTART_DELAY`: Kafka's rebalance hands its partitions on from the last commit; on
    /// a Redis stream the new consumer (same name) reads its unacknowledged entries again.
    async fn crash_and_restart(self) -> Instance {
        let Instance { index, shared, inbox, work } = self;
        shared.truth().crashes += 1;
        inbox.crash().await;
        tokio::time::sleep(RESTART_DELAY).await;
        loop {
            match Inbox::join(&shared, index).await {
                Ok(inbox) => return Instance { index, shared, inbox, work },
                Err(e) => {
                    tracing::warn!("projector {index}: restarting: {e:#}");
                    tokio::time::sleep(RESTART_DELAY).await;
                }
            }
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
