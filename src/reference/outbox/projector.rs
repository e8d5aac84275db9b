//! Projector instances: one consumer group on the outbox topic, applying events to the
//! Redis read model. Offsets are stored after each applied event and committed every
//! `checkpoint_every` events or `commit_interval`, whichever comes first (and when the
//! topic goes quiet), so a crashed instance's successor is redelivered what was applied
//! after the last commit.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::OutboxConfig;
use super::bus::OutboxEvent;
use super::read_model::{Applied, ReadModel};
use crate::reference::memory::{GroundTruth, RESTART_DELAY};
use crate::reference::work::{SharedSection, WorkClock};

/// After this long without an event, commit what was applied.
const IDLE_COMMIT: Duration = Duration::from_secs(1);
/// Wait between attempts when Redis refuses an event.
const APPLY_RETRY: Duration = Duration::from_millis(100);

/// Counts the partitions the group's instances own, from their rebalance callbacks.
struct Assignments {
    instance: usize,
    owned: Arc<AtomicI64>,
}

impl ClientContext for Assignments {}

impl ConsumerContext for Assignments {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        tracing::info!("projector {}: {rebalance:?}", self.instance);
        match rebalance {
            Rebalance::Assign(partitions) => self.owned.fetch_add(partitions.count() as i64, Ordering::SeqCst),
            Rebalance::Revoke(partitions) => self.owned.fetch_sub(partitions.count() as i64, Ordering::SeqCst),
            Rebalance::Error(_) => 0,
        };
    }
}

type Consumer_ = StreamConsumer<Assignments>;

/// The running group.
pub struct Group {
    owned: Arc<AtomicI64>,
    /// Orders to instance 0, the one faults are injected into.
    first: mpsc::Sender<Control>,
}

/// What one instance needs, shared by all.
#[derive(Clone)]
struct Shared {
    config: Arc<OutboxConfig>,
    read_model: ReadModel,
    truth: Arc<Mutex<GroundTruth>>,
    owned: Arc<AtomicI64>,
    /// The section every instance's work shares.
    section: Arc<SharedSection>,
}

impl Group {
    /// Starts `config.projectors` instances on `tasks`.
    pub fn start(
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
            let consumer = shared.consumer(index)?;
            // Instances after the first get a channel nobody sends on.
            let control = first_control.take().unwrap_or_else(|| mpsc::channel(1).1);
            let work = WorkClock::new(config.work, shared.section.clone());
            tasks.spawn(Instance { index, shared: shared.clone(), consumer, work }.run(control, shutdown.clone()));
        }
        Ok(Group { owned: shared.owned, first })
    }

    /// Sends `order` to instance 0.
    pub fn control(&self, order: Control) {
        if self.first.try_send(order).is_err() {
            tracing::warn!("projector 0 is busy with earlier orders; {order:?} dropped");
        }
    }

    /// Waits until the instances own all `partitions` (librdkafka's mock cluster delays
    /// a group's first rebalance by about 3 s).
    pub async fn wait_until_assigned(&self, partitions: i32, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while self.owned.load(Ordering::SeqCst) < i64::from(partitions) {
            anyhow::ensure!(Instant::now() < deadline, "the projectors were not assigned the topic within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

impl Shared {
    fn consumer(&self, instance: usize) -> anyhow::Result<Consumer_> {
        let consumer: Consumer_ = ClientConfig::new()
            .set("bootstrap.servers", &self.config.brokers)
            .set("group.id", self.config.group())
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // librdkafka waits up to 500 ms for a fetch by default: that would be the lag.
            .set("fetch.wait.max.ms", "5")
            // The broker minimum (group.min.session.timeout.ms); with a short heartbeat a
            // rebalance after a crash ends within seconds, as it would in production.
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "500")
            .create_with_context(Assignments { instance, owned: self.owned.clone() })
            .context("creating a projector's Kafka consumer")?;
        consumer.subscribe(&[&self.config.topic()]).context("subscribing to the outbox topic")?;
        Ok(consumer)
    }

    fn truth(&self) -> std::sync::MutexGuard<'_, GroundTruth> {
        self.truth.lock().unwrap_or_else(|e| e.into_inner())
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
    consumer: Consumer_,
    work: WorkClock,
}

impl Instance {
    async fn run(mut self, mut control: mpsc::Receiver<Control>, shutdown: CancellationToken) {
        let (checkpoint_every, commit_interval) =
            (self.shared.config.checkpoint_every, self.shared.config.commit_interval);
        let mut uncommitted = 0u64;
        let mut last_commit = Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(order) = control.recv() => match order {
                    Control::Crash => {
                        tracing::info!("projector {} crashes: its uncommitted offsets are redelivered", self.index);
                        self = self.crash_and_restart().await;
                        (uncommitted, last_commit) = (0, Instant::now());
                        continue;
                    }
                    Control::Pause(duration) => {
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep(duration) => {}
                        }
                    }
                },
                // Quiet for an interval: commit what was applied, so the group's lag reads 0.
                _ = tokio::time::sleep(IDLE_COMMIT) => {
                    if uncommitted > 0 {
                        self.commit();
                        (uncommitted, last_commit) = (0, Instant::now());
                    }
                }
                message = self.consumer.recv() => match message {
                    Ok(message) => {
                        self.handle(&message, &shutdown).await;
                        uncommitted += 1;
                    }
                    Err(e) => tracing::warn!("projector {}: {e}", self.index),
                },
            }
            if uncommitted >= checkpoint_every || (uncommitted > 0 && last_commit.elapsed() >= commit_interval) {
                self.commit();
                (uncommitted, last_commit) = (0, Instant::now());
            }
        }
        // A clean stop keeps what it applied.
        if uncommitted > 0 {
            self.commit();
        }
    }

    fn commit(&self) {
        if let Err(e) = self.consumer.commit_consumer_state(CommitMode::Async) {
            tracing::warn!("projector {}: committing offsets: {e}", self.index);
        }
    }

    /// Applies one event (after the injected delay and cost) and stores its offset.
    async fn handle(&self, message: &BorrowedMessage<'_>, shutdown: &CancellationToken) {
        let config = &self.shared.config;
        // Taken off the bus now, before the injected delay and the work.
        let received_at = crate::reference::bank::now_ms();
        match message.payload().map(serde_json::from_slice::<OutboxEvent>) {
            Some(Ok(event)) => {
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
            Some(Err(e)) => tracing::warn!("projector {}: skipping an event that is not JSON: {e}", self.index),
            None => tracing::warn!("projector {}: skipping an event without payload", self.index),
        }
        if let Err(e) = self.consumer.store_offset_from_message(message) {
            tracing::warn!("projector {}: storing an offset: {e}", self.index);
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
    /// `RESTART_DELAY`: the rebalance hands its partitions on from the last commit.
    async fn crash_and_restart(self) -> Instance {
        let Instance { index, shared, consumer, work } = self;
        shared.truth().crashes += 1;
        // Closing a consumer blocks while it leaves the group.
        let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
        tokio::time::sleep(RESTART_DELAY).await;
        loop {
            match shared.consumer(index) {
                Ok(consumer) => return Instance { index, shared, consumer, work },
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
