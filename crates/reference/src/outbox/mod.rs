//! `outbox`: the bank with a transactional outbox (PRODUCT §7).
//!
//! - Write side, Postgres: a command locks its account row, updates it and inserts an
//!   outbox row in the same transaction (`accounts`, `outbox` in the run's schema).
//! - Relay: publishes unsent outbox rows to the bus in `seq` order, waits for the bus's
//!   acknowledgements, then marks the rows sent. A relay that dies between publishing and
//!   marking publishes again: the bus sees at-least-once delivery. The bus (`--bus`) is
//!   Kafka (key = account id, so one account's events stay in one partition, in order) or
//!   a Redis stream (one stream, one consumer group; see `redis_stream`).
//! - Projectors: N consumers in one consumer group apply events to a Redis read model.
//!   Idempotent projectors skip an event whose version the account already has; with
//!   idempotency off a redelivered event is applied again, and the projector counts it in
//!   the target's ground truth.
//!
//! Runs keep apart by schema: the Redis keys are prefixed `{schema}:`, the topic (or
//! stream) and the consumer group are named after it.

mod bus;
mod kafka;
mod projector;
mod read_model;
mod redis_stream;
mod relay;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use deadpool_postgres::Pool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use bus::BusKind;
pub use kafka::MockBroker;

use super::postgres::{self, Accounts, unavailable};
use cqrs_bench::reference::ProjectorWork;
use cqrs_bench::reference::Window;
use cqrs_bench::reference::bank::{Bank, Changed, GroundTruth, RefSlice, Refusal, View};
use cqrs_bench::reference::http::For;
use projector::Control;
use read_model::ReadModel;

/// How the outbox variant is deployed and which faults it injects.
#[derive(Debug, Clone)]
pub struct OutboxConfig {
    pub pg_url: String,
    pub schema: String,
    pub pool: usize,
    pub redis_url: String,
    /// What carries the events from the relay to the projectors.
    pub bus: BusKind,
    /// Kafka bootstrap servers (a real broker, or the mock cluster's address).
    pub brokers: String,
    /// Kafka: partitions of the topic when it is created.
    pub partitions: i32,
    /// Projector instances in the consumer group.
    pub projectors: usize,
    /// Projectors skip events whose version the account already has.
    pub idempotent: bool,
    /// Events between offset commits of a projector (what a crash redelivers).
    pub checkpoint_every: u64,
    /// ... or this long after the last commit, whichever comes first (as a consumer's
    /// auto-commit interval would).
    pub commit_interval: Duration,
    /// An event becomes visible no earlier than this long after it was accepted.
    pub projection_delay: Duration,
    /// Work per event in a projector (awaited, as an I/O-bound projector's call would be)
    /// and in a section all instances share: the capacity knob (`reference::work`).
    pub work: ProjectorWork,
    /// Projector 0 dies at this time (from start) and a new instance joins after `RESTART_DELAY`.
    pub crash_at: Option<Duration>,
    /// Projector 0 stops consuming during this window.
    pub pause: Option<Window>,
    /// How often the relay looks for unsent rows when it found none.
    pub relay_poll: Duration,
    /// The relay publishes a row no earlier than this after its commit.
    pub relay_delay: Duration,
}

impl OutboxConfig {
    /// The Kafka topic, or the Redis stream's key.
    pub fn topic(&self) -> String {
        format!("{}.events", self.schema)
    }

    /// The Redis stream's key (`--bus redis-streams`), under the run's key prefix.
    pub fn stream(&self) -> String {
        format!("{}:events", self.schema)
    }

    pub fn group(&self) -> String {
        format!("{}.projectors", self.schema)
    }
}

/// The write side and read side the HTTP endpoints use; the relay and projectors run
/// as tasks beside it.
#[derive(Clone)]
pub struct OutboxApp {
    pool: Pool,
    sql: Arc<Sql>,
    read_model: ReadModel,
    truth: Arc<Mutex<GroundTruth>>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    group: Arc<projector::Group>,
}

struct Sql {
    accounts: Accounts,
    insert_outbox: String,
}

impl OutboxApp {
    /// Migrates the schema, creates the topic (or the stream and its group) if needed,
    /// then starts the relay and the projectors; with Kafka, returns once the projectors'
    /// group owns every partition, so a run does not start into the first rebalance.
    pub async fn start(config: OutboxConfig) -> anyhow::Result<OutboxApp> {
        let schema = &config.schema;
        let pool = postgres::pool(&config.pg_url, schema, config.pool).await?;
        postgres::migrate(&pool, schema, postgres::migrations::outbox::migrations::runner()).await?;
        let read_model = ReadModel::connect(&config.redis_url, schema).await?;
        match config.bus {
            BusKind::Kafka => kafka::ensure_topic(&config.brokers, &config.topic(), config.partitions).await?,
            BusKind::RedisStreams => redis_stream::ensure_group(&config).await?,
        }

        let sql = Sql {
            accounts: Accounts::new(schema),
            insert_outbox: format!(
                "INSERT INTO {schema}.outbox (account, version, delta, ref) VALUES ($1, $2, $3, $4)"
            ),
        };
        let (truth, tasks, shutdown) = (Arc::default(), TaskTracker::new(), CancellationToken::new());
        tasks.spawn(relay::Relay::new(pool.clone(), &config).await?.run(shutdown.clone()));
        let group = projector::Group::start(&config, read_model.clone(), Arc::clone(&truth), &tasks, &shutdown).await?;
        group.wait_until_assigned(config.bus, config.partitions, Duration::from_secs(30)).await?;
        let app = OutboxApp { pool, sql: Arc::new(sql), read_model, truth, tasks, shutdown, group: Arc::new(group) };
        // Faults on the clock start now, with the group in place.
        if let Some(at) = config.crash_at {
            app.after(at, Control::Crash);
        }
        if let Some(window) = config.pause {
            app.after(window.at, Control::Pause(window.duration));
        }
        Ok(app)
    }

    /// The bank endpoints, and `POST /admin/crash` and `POST /admin/pause?for=D`
    /// (projector 0) for `[[action]]`s.
    pub fn router(&self) -> axum::Router {
        let admin = axum::Router::new()
            .route("/admin/crash", post(crash))
            .route("/admin/pause", post(pause))
            .with_state(self.clone());
        cqrs_bench::reference::http::router(self.clone()).merge(admin)
    }

    /// Sends `order` to projector 0.
    pub fn control(&self, order: Control) {
        self.group.control(order);
    }

    /// Sends `order` to projector 0 once `at` has passed.
    fn after(&self, at: Duration, order: Control) {
        let (app, shutdown) = (self.clone(), self.shutdown.clone());
        self.tasks.spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(at) => app.control(order),
            }
        });
    }

    /// Stops the relay and the projectors and waits for them.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

async fn crash(State(app): State<OutboxApp>) -> StatusCode {
    app.control(Control::Crash);
    StatusCode::NO_CONTENT
}

async fn pause(State(app): State<OutboxApp>, Query(q): Query<For>) -> Response {
    q.then(|duration| app.control(Control::Pause(duration)))
}

impl Bank for OutboxApp {
    async fn open(&self, account: &str) -> Result<u64, Refusal> {
        let mut client = self.pool.get().await.map_err(unavailable)?;
        let tx = client.transaction().await.map_err(unavailable)?;
        self.sql.accounts.open(&tx, account).await?;
        // The opening travels the bus too, so the read model learns of the account.
        tx.execute(&self.sql.insert_outbox, &[&account, &0i64, &0i64, &None::<&str>]).await.map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(0)
    }

    async fn change(&self, account: &str, delta: i64, op_ref: &str) -> Result<Changed, Refusal> {
        let mut client = self.pool.get().await.map_err(unavailable)?;
        let tx = client.transaction().await.map_err(unavailable)?;
        let (balance, version) = self.sql.accounts.change(&tx, account, delta).await?;
        // The outbox row is inserted under the account's row lock: an account's rows get
        // increasing `seq` in version order, which the relay keeps.
        tx.execute(&self.sql.insert_outbox, &[&account, &version, &delta, &Some(op_ref)]).await.map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        self.truth.lock().unwrap_or_else(|e| e.into_inner()).accepted += 1;
        Ok(Changed { version: version as u64, balance, answer_after: None })
    }

    async fn view(&self, account: &str, refs: RefSlice) -> Result<Option<View>, Refusal> {
        self.read_model.view(account, refs).await
    }

    async fn top(&self, limit: usize) -> Result<Vec<(String, i64, u64)>, Refusal> {
        self.read_model.top(limit).await
    }

    fn ground_truth(&self) -> GroundTruth {
        self.truth.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
