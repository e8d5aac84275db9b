//! An event feed and its projector, on a real Redis stream or a real Postgres table
//! (issue 33): `POST /events` appends one entry; the projector consumes them on a plan
//! the test sets (fast, then slowed, then stopped, then maybe resumed), timed from the
//! first command. It keeps its own truth: entries appended and applied, the backlog
//! (appended − applied) at every change, and when it drained after resuming.
//!
//! - Redis Streams: XADD; the projector XREADGROUP … `>` then XACK (group created at `$`).
//! - Postgres: INSERT into `{schema}.events` (one at a time, so ids commit in order); the
//!   projector reads past `{schema}.checkpoint.position` and moves it.
//! - NATS JetStream (`feed_nats.rs`): publish, wait for the PubAck; the projector pulls
//!   from a durable consumer and acknowledges.
//!
//! With `Plan::fast_projection_from_ms`, a second projection `fast` (Postgres only) gets its
//! checkpoint row then and applies everything as it comes from there on.
//!
//! - `POST /events` → 202
//! - `GET /truth` → `{"appended", "applied", "series": [[ms, behind], …], "drained_ms",
//!   "now_ms", "appended_at_ms": [ms of each entry], "applied_series": [[ms, applied], …],
//!   "fast": {"appeared_ms", "series": [[ms, behind], …]} | null}`: the entries are applied
//!   in order, so the lag at `ms` is `ms` less the append time of entry `applied(ms)`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::App;

/// Where the feed lives.
#[derive(Clone)]
pub enum Store {
    Redis { url: String, stream: String, group: String },
    Postgres { url: String, schema: String },
    Nats { url: String, stream: String, consumer: String },
}

/// The projector's plan, in ms after the first command.
#[derive(Clone, Copy)]
pub struct Plan {
    /// Until then, it applies everything as it comes.
    pub fast_until_ms: u64,
    /// Then one entry per 100 ms until `stop_at_ms`.
    pub stop_at_ms: u64,
    /// Then nothing until this (never when `None`); then everything, as fast as it can.
    pub resume_at_ms: Option<u64>,
    /// A second projection, `fast`, whose checkpoint row appears then (Postgres only).
    pub fast_projection_from_ms: Option<u64>,
}

#[derive(Default)]
struct Truth {
    first: Option<Instant>,
    appended: u64,
    applied: u64,
    series: Vec<(u64, u64)>,
    drained_ms: Option<u64>,
    appended_at_ms: Vec<u64>,
    applied_series: Vec<(u64, u64)>,
    fast: Option<FastTruth>,
}

/// The `fast` projection's truth, from the moment its checkpoint row exists.
#[derive(Default)]
struct FastTruth {
    appeared_ms: u64,
    applied: u64,
    series: Vec<(u64, u64)>,
}

impl Truth {
    fn ms(&self) -> u64 {
        self.first.map_or(0, |f| f.elapsed().as_millis() as u64)
    }
    fn mark(&mut self) {
        let point = (self.ms(), self.appended - self.applied);
        self.series.push(point);
        let applied = (point.0, self.applied);
        if self.applied_series.last().is_none_or(|(_, a)| *a != applied.1) {
            self.applied_series.push(applied);
        }
        if let Some(fast) = &mut self.fast {
            fast.series.push((point.0, self.appended - fast.applied));
        }
    }
}

struct Feed {
    store: Store,
    truth: Mutex<Truth>,
    /// One append at a time (Postgres ids then commit in order).
    appending: tokio::sync::Mutex<Connection>,
}

enum Connection {
    Redis(redis::aio::MultiplexedConnection),
    Postgres(tokio_postgres::Client),
    Nats(cqrs_bench::probe::backlog::nats::protocol::Connection),
}

type Shared = Arc<Feed>;

/// Creates the stream's group (or the tables) and serves the feed.
pub fn start(store: Store, plan: Plan) -> App {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(prepare(&store));
    drop(runtime);
    // The connections are made on the app's runtime (in `project` and on first append).
    let (tx, rx) = std::sync::mpsc::channel::<Shared>();
    let store_for_app = store.clone();
    let background = async move {
        let feed = Arc::new(Feed {
            appending: tokio::sync::Mutex::new(connect(&store_for_app).await),
            store: store_for_app,
            truth: Mutex::default(),
        });
        tx.send(feed.clone()).unwrap();
        project(feed, plan).await;
    };
    // The router needs the feed, made inside the runtime: route through a slot.
    let slot: Arc<std::sync::OnceLock<Shared>> = Arc::default();
    let router =
        axum::Router::new().route("/events", post(append)).route("/truth", get(truth)).with_state(slot.clone());
    let app = App::serve(router, background);
    let _ = slot.set(rx.recv().expect("the feed connects"));
    app
}

async fn prepare(store: &Store) {
    match store {
        Store::Redis { url, stream, group } => {
            let mut c = connect_redis(url).await;
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(stream).query_async(&mut c).await;
            let _: () = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(stream)
                .arg(group)
                .arg("$")
                .arg("MKSTREAM")
                .query_async(&mut c)
                .await
                .unwrap();
        }
        Store::Postgres { url, schema } => {
            let client = connect_pg(url).await;
            client
                .batch_execute(&format!(
                    "drop schema if exists {schema} cascade; create schema {schema};
                     create table {schema}.events (id bigserial primary key, body text not null,
                         created_at timestamptz not null default clock_timestamp());
                     create table {schema}.checkpoint (name text primary key, position bigint not null);
                     insert into {schema}.checkpoint values ('view', 0);"
                ))
                .await
                .unwrap();
        }
        Store::Nats { url, stream, consumer } => super::feed_nats::prepare(url, stream, consumer).await,
    }
}

async fn connect(store: &Store) -> Connection {
    match store {
        Store::Redis { url, .. } => Connection::Redis(connect_redis(url).await),
        Store::Postgres { url, .. } => Connection::Postgres(connect_pg(url).await),
        Store::Nats { url, .. } => Connection::Nats(super::feed_nats::connect(url).await),
    }
}

async fn connect_redis(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap()
}

async fn connect_pg(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

async fn append(State(slot): State<Arc<std::sync::OnceLock<Shared>>>, body: String) -> StatusCode {
    let Some(feed) = slot.get() else { return StatusCode::SERVICE_UNAVAILABLE };
    let mut connection = feed.appending.lock().await;
    let appended = match (&mut *connection, &feed.store) {
        (Connection::Redis(c), Store::Redis { stream, .. }) => {
            let added: redis::RedisResult<String> =
                redis::cmd("XADD").arg(stream).arg("*").arg("body").arg(&body).query_async(c).await;
            added.is_ok()
        }
        (Connection::Postgres(c), Store::Postgres { schema, .. }) => {
            c.execute(&format!("insert into {schema}.events (body) values ($1)"), &[&body]).await.is_ok()
        }
        (Connection::Nats(c), Store::Nats { stream, .. }) => super::feed_nats::append(c, stream, &body).await,
        _ => false,
    };
    if !appended {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let mut truth = feed.truth.lock().unwrap();
    truth.first.get_or_insert_with(Instant::now);
    truth.appended += 1;
    let now = truth.ms();
    truth.appended_at_ms.push(now);
    truth.mark();
    StatusCode::ACCEPTED
}

async fn truth(State(slot): State<Arc<std::sync::OnceLock<Shared>>>) -> axum::Json<Value> {
    let feed = slot.get().expect("serving");
    let truth = feed.truth.lock().unwrap();
    axum::Json(json!({
        "appended": truth.appended,
        "applied": truth.applied,
        "series": truth.series,
        "drained_ms": truth.drained_ms,
        "now_ms": truth.ms(),
        "appended_at_ms": truth.appended_at_ms,
        "applied_series": truth.applied_series,
        "fast": truth.fast.as_ref().map(|f| json!({ "appeared_ms": f.appeared_ms, "series": f.series })),
    }))
}

/// The projector: every 20 ms, applies as many entries as the plan allows now.
async fn project(feed: Shared, plan: Plan) {
    if let Some(from_ms) = plan.fast_projection_from_ms {
        tokio::spawn(project_fast(feed.clone(), from_ms));
    }
    let mut connection = connect(&feed.store).await;
    let mut last_slow = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (ms, started, behind) = {
            let t = feed.truth.lock().unwrap();
            (t.ms(), t.first.is_some(), t.appended - t.applied)
        };
        let allowed = if !started || ms < plan.fast_until_ms {
            1_000
        } else if ms < plan.stop_at_ms {
            if last_slow.elapsed() < Duration::from_millis(100) {
                continue;
            }
            last_slow = Instant::now();
            1
        } else if plan.resume_at_ms.is_some_and(|resume| ms >= resume) {
            1_000
        } else {
            continue;
        };
        if behind == 0 {
            continue;
        }
        // Never past what the truth has counted as appended (an entry committed but not yet
        // counted would make applied > appended).
        let applied = consume(&mut connection, &feed.store, "view", allowed.min(behind)).await;
        if applied > 0 {
            let mut t = feed.truth.lock().unwrap();
            t.applied += applied;
            t.mark();
            if t.appended == t.applied && plan.resume_at_ms.is_some_and(|resume| t.ms() >= resume) {
                let now = t.ms();
                t.drained_ms.get_or_insert(now);
            }
        }
    }
}

/// The `fast` projection (Postgres): its checkpoint row appears at `from_ms` after the
/// first command; from then on, every 20 ms, it applies whatever is behind.
async fn project_fast(feed: Shared, from_ms: u64) {
    let mut connection = connect(&feed.store).await;
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (ms, started, fast) = {
            let t = feed.truth.lock().unwrap();
            (t.ms(), t.first.is_some(), t.fast.as_ref().map(|f| t.appended - f.applied))
        };
        if !started || ms < from_ms {
            continue;
        }
        let Some(behind) = fast else {
            let (Connection::Postgres(c), Store::Postgres { schema, .. }) = (&mut connection, &feed.store) else {
                return;
            };
            c.execute(&format!("insert into {schema}.checkpoint values ('fast', 0)"), &[]).await.unwrap();
            let mut t = feed.truth.lock().unwrap();
            let behind = t.appended;
            let appeared_ms = t.ms();
            t.fast = Some(FastTruth { appeared_ms, applied: 0, series: vec![(appeared_ms, behind)] });
            continue;
        };
        if behind == 0 {
            continue;
        }
        let applied = consume(&mut connection, &feed.store, "fast", behind).await;
        let mut t = feed.truth.lock().unwrap();
        let ms = t.ms();
        let appended = t.appended;
        let fast = t.fast.as_mut().expect("appeared");
        fast.applied += applied;
        fast.series.push((ms, appended - fast.applied));
    }
}

/// Reads and acknowledges (Redis) or applies and checkpoints projection `name`'s row
/// (Postgres) up to `max` entries.
async fn consume(connection: &mut Connection, store: &Store, name: &str, max: u64) -> u64 {
    match (connection, store) {
        (Connection::Redis(c), Store::Redis { stream, group, .. }) => {
            let read: redis::Value = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(group)
                .arg("projector")
                .arg("COUNT")
                .arg(max)
                .arg("STREAMS")
                .arg(stream)
                .arg(">")
                .query_async(c)
                .await
                .unwrap();
            let ids = entry_ids(read);
            if ids.is_empty() {
                return 0;
            }
            let acked: u64 = redis::cmd("XACK").arg(stream).arg(group).arg(&ids).query_async(c).await.unwrap();
            acked
        }
        (Connection::Postgres(c), Store::Postgres { schema, .. }) => {
            let rows = c
                .query(
                    &format!(
                        "select id from {schema}.events where id > (select position from {schema}.checkpoint \
                         where name = $2) order by id limit $1"
                    ),
                    &[&(max as i64), &name],
                )
                .await
                .unwrap();
            let Some(last) = rows.last().map(|r| r.get::<_, i64>(0)) else { return 0 };
            c.execute(&format!("update {schema}.checkpoint set position = $1 where name = $2"), &[&last, &name])
                .await
                .unwrap();
            rows.len() as u64
        }
        (Connection::Nats(c), Store::Nats { stream, consumer, .. }) => {
            super::feed_nats::consume(c, stream, consumer, max).await
        }
        _ => 0,
    }
}

/// The entry ids of an XREADGROUP answer (RESP2 arrays or RESP3 maps).
fn entry_ids(read: redis::Value) -> Vec<String> {
    use redis::Value as V;
    let streams = match read {
        V::Array(streams) => {
            streams.into_iter().filter_map(|s| if let V::Array(mut kv) = s { kv.pop() } else { None }).collect()
        }
        V::Map(pairs) => pairs.into_iter().map(|(_, v)| v).collect(),
        _ => Vec::new(),
    };
    let mut ids = Vec::new();
    for entries in streams {
        let V::Array(entries) = entries else { continue };
        for entry in entries {
            if let V::Array(parts) = entry
                && let Some(V::BulkString(id)) = parts.first()
            {
                ids.push(String::from_utf8_lossy(id).into_owned());
            }
        }
    }
    ids
}
