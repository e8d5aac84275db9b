//! `event-sourced`: the bank as a Postgres event store. A command loads its account from
//! the latest snapshot plus the events after it, then appends the next version; the
//! unique (stream, version) key rejects a second writer of the same version, and the
//! command is retried on fresh state (conflicts are counted in the ground truth). Every `snapshot_every` events a
//! snapshot is written. A projector task reads events after its checkpoint and applies
//! them to the read model, moving the checkpoint in the same transaction (exactly once).
//! `replay` rebuilds the read model from the store and reports the time it took.
//!
//! Load and append run in one transaction under a transaction-scoped advisory lock, so
//! event positions commit in order (the projector never passes over an event that commits
//! late) and writers of this process never conflict; the unique key still guards
//! writers that do not take the lock.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use tokio_postgres::error::SqlState;
use tokio_util::sync::CancellationToken;

use super::postgres::{self, unavailable};
use cqrs_bench::reference::bank::{Bank, Changed, GroundTruth, RefSlice, Refusal, View};

/// Events applied per projector transaction.
const BATCH: i64 = 1000;
/// Events applied per transaction by a replay: each batch rewrites every account row it
/// touches (the refs array grows), so a rebuild takes fewer, larger batches.
const REPLAY_BATCH: i64 = 50_000;
/// Attempts of a command that keeps meeting concurrent writers.
const MAX_ATTEMPTS: usize = 8;
/// The advisory lock key that orders appends.
const APPEND_LOCK: i64 = 0x0c0b_e5e5;

#[derive(Clone)]
pub struct EventSourcedApp {
    pool: Pool,
    schema: Arc<str>,
    snapshot_every: i64,
    truth: Arc<Mutex<GroundTruth>>,
}

/// What a replay did.
#[derive(Debug, Clone, Copy)]
pub struct Replay {
    pub events: u64,
    pub elapsed: Duration,
}

impl Replay {
    pub fn events_per_s(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl EventSourcedApp {
    /// Connects and migrates the schema.
    pub async fn connect(
        url: &str,
        schema: &str,
        pool_size: usize,
        snapshot_every: u64,
    ) -> anyhow::Result<EventSourcedApp> {
        let pool = postgres::pool(url, schema, pool_size).await?;
        postgres::migrate(&pool, schema, postgres::migrations::event_sourced::migrations::runner()).await?;
        Ok(EventSourcedApp {
            pool,
            schema: schema.into(),
            snapshot_every: snapshot_every.max(1) as i64,
            truth: Arc::default(),
        })
    }

    /// Runs the projector until `shutdown`, polling for new events every `poll`.
    pub fn spawn_projector(&self, poll: Duration, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let app = self.clone();
        tokio::spawn(async move {
            loop {
                let applied = app.project_batch(BATCH).await.map_or(0, |(applied, _)| applied);
                if applied < BATCH as u64 {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(poll) => {}
                    }
                }
            }
        })
    }

    /// Applies the next batch of events after the checkpoint, in one statement (events
    /// grouped per account, refs in store order), and moves the checkpoint in the same
    /// transaction; returns how many events it applied and the checkpoint after it.
    async fn project_batch(&self, limit: i64) -> anyhow::Result<(u64, i64)> {
        let s = &self.schema;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let checkpoint: i64 = tx
            .query_one(&format!("SELECT seq FROM {s}.checkpoints WHERE projector = 'views' FOR UPDATE"), &[])
            .await?
            .get(0);
        let bounds = tx
            .query_one(
                &format!(
                    "SELECT count(*), max(seq) FROM (SELECT seq FROM {s}.events WHERE seq > $1 ORDER BY seq LIMIT $2) b"
                ),
                &[&checkpoint, &limit],
            )
            .await?;
        let (count, last): (i64, Option<i64>) = (bounds.get(0), bounds.get(1));
        let Some(last) = last else { return Ok((0, checkpoint)) };
        tx.execute(
            &format!(
                "INSERT INTO {s}.account_views AS v (id, balance, version, refs)
                 SELECT stream, sum(delta), max(version),
                        coalesce(array_agg(ref ORDER BY seq) FILTER (WHERE ref IS NOT NULL), '{{}}')
                 FROM {s}.events WHERE seq > $1 AND seq <= $2 GROUP BY stream
                 ON CONFLICT (id) DO UPDATE SET balance = v.balance + EXCLUDED.balance,
                     version = greatest(v.version, EXCLUDED.version), refs = v.refs || EXCLUDED.refs"
            ),
            &[&checkpoint, &last],
        )
        .await?;
        tx.execute(&format!("UPDATE {s}.checkpoints SET seq = $1 WHERE projector = 'views'"), &[&last]).await?;
        tx.commit().await?;
        Ok((count as u64, last))
    }

    /// Rebuilds the read model from the event store: empties it, rewinds the checkpoint,
    /// and projects until it has caught up with the store as it was when the replay began.
    /// On a live target the running projector shares the work (batches serialize on the
    /// checkpoint row), so the figures count every event up to that point, whoever applied it.
    pub async fn replay(&self) -> anyhow::Result<Replay> {
        let s = &self.schema;
        let client = self.pool.get().await?;
        let row = client.query_one(&format!("SELECT coalesce(max(seq), 0), count(*) FROM {s}.events"), &[]).await?;
        let (target, events): (i64, i64) = (row.get(0), row.get(1));
        let began = Instant::now();
        client
            .batch_execute(&format!(
                "TRUNCATE {s}.account_views; UPDATE {s}.checkpoints SET seq = 0 WHERE projector = 'views';"
            ))
            .await?;
        drop(client);
        loop {
            let (applied, at) = self.project_batch(REPLAY_BATCH).await?;
            if at >= target {
                break;
            }
            if applied == 0 {
                // The live projector holds the next batch: wait for it.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        Ok(Replay { events: events as u64, elapsed: began.elapsed() })
    }

    /// The bank endpoints, and `POST /admin/replay` (rebuild the read model now; answers
    /// `{"events": N, "seconds": S, "events_per_s": R}`), for a scenario `[[action]]`.
    pub fn router(&self) -> axum::Router {
        let admin = axum::Router::new().route("/admin/replay", axum::routing::post(replay)).with_state(self.clone());
        cqrs_bench::reference::http::router(self.clone()).merge(admin)
    }

    /// Current (version, balance) of a stream: its snapshot plus the events after it.
    async fn load(
        &self,
        client: &impl deadpool_postgres::GenericClient,
        account: &str,
    ) -> Result<Option<(i64, i64)>, Refusal> {
        let s = &self.schema;
        let snapshot = client
            .query_opt(&format!("SELECT version, balance FROM {s}.snapshots WHERE stream = $1"), &[&account])
            .await
            .map_err(unavailable)?
            .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1)));
        let (from, base) = snapshot.unwrap_or((-1, 0));
        let row = client
            .query_one(
                &format!("SELECT max(version), coalesce(sum(delta), 0)::bigint FROM {s}.events WHERE stream = $1 AND version > $2"),
                &[&account, &from],
            )
            .await
            .map_err(unavailable)?;
        let (last, sum): (Option<i64>, i64) = (row.get(0), row.get(1));
        Ok(match (snapshot, last) {
            (None, None) => None,
            (_, Some(version)) => Some((version, base + sum)),
            (Some((version, balance)), None) => Some((version, balance)),
        })
    }

    /// Loads the stream and, if `decide` accepts its (version, balance), appends the next
    /// event, in one transaction under the append lock. `Ok(None)`: another writer took the
    /// version first (the unique key caught it); the caller retries on fresh state.
    async fn decide_and_append(
        &self,
        account: &str,
        decide: impl FnOnce(Option<(i64, i64)>) -> Result<(i64, i64), Refusal>,
        op_ref: Option<&str>,
    ) -> Result<Option<(i64, i64)>, Refusal> {
        let s = &self.schema;
        let mut client = self.pool.get().await.map_err(unavailable)?;
        let tx = client.transaction().await.map_err(unavailable)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&APPEND_LOCK]).await.map_err(unavailable)?;
        let current = self.load(&tx, account).await?;
        let (version, delta) = decide(current)?;
        let balance = current.map_or(0, |(_, b)| b) + delta;
        let inserted = tx
            .execute(
                &format!("INSERT INTO {s}.events (stream, version, delta, ref) VALUES ($1, $2, $3, $4)"),
                &[&account, &version, &delta, &op_ref],
            )
            .await;
        match inserted {
            Ok(_) => {}
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => return Ok(None),
            Err(e) => return Err(unavailable(e)),
        }
        if version > 0 && version % self.snapshot_every == 0 {
            tx.execute(
                &format!(
                    "INSERT INTO {s}.snapshots (stream, version, balance) VALUES ($1, $2, $3)
                     ON CONFLICT (stream) DO UPDATE SET version = $2, balance = $3 WHERE {s}.snapshots.version < $2"
                ),
                &[&account, &version, &balance],
            )
            .await
            .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(Some((version, balance)))
    }
}

async fn replay(axum::extract::State(app): axum::extract::State<EventSourcedApp>) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match app.replay().await {
        Ok(replay) => axum::Json(serde_json::json!({
            "events": replay.events,
            "seconds": replay.elapsed.as_secs_f64(),
            "events_per_s": replay.events_per_s(),
        }))
        .into_response(),
        Err(e) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, format!("replay failed: {e:#}")).into_response(),
    }
}

impl Bank for EventSourcedApp {
    async fn open(&self, account: &str) -> Result<u64, Refusal> {
        let opened = self
            .decide_and_append(
                account,
                |current| if current.is_some() { Err(Refusal::Exists) } else { Ok((0, 0)) },
                None,
            )
            .await?;
        opened.map(|_| 0).ok_or(Refusal::Exists)
    }

    async fn change(&self, account: &str, delta: i64, op_ref: &str) -> Result<Changed, Refusal> {
        let decide = |current: Option<(i64, i64)>| {
            let (version, balance) = current.ok_or(Refusal::NotFound)?;
            if balance + delta < 0 {
                return Err(Refusal::InsufficientFunds);
            }
            Ok((version + 1, delta))
        };
        for _ in 0..MAX_ATTEMPTS {
            if let Some((version, balance)) = self.decide_and_append(account, decide, Some(op_ref)).await? {
                self.truth.lock().unwrap_or_else(|e| e.into_inner()).accepted += 1;
                return Ok(Changed { version: version as u64, balance, answer_after: None });
            }
            // Another writer appended this version first: reload and try again.
            self.truth.lock().unwrap_or_else(|e| e.into_inner()).conflicts += 1;
        }
        Err(Refusal::Unavailable(format!("{account}: still conflicting after {MAX_ATTEMPTS} attempts")))
    }

    async fn view(&self, account: &str, refs: RefSlice) -> Result<Option<View>, Refusal> {
        postgres::read_view(&self.pool, &self.schema, account, refs).await
    }

    async fn top(&self, limit: usize) -> Result<Vec<(String, i64, u64)>, Refusal> {
        postgres::read_top(&self.pool, &self.schema, limit).await
    }

    fn ground_truth(&self) -> GroundTruth {
        self.truth.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
