//! The outbox variant's Redis Streams bus (`--bus redis-streams`): the relay appends each
//! event to one stream (XADD, in `seq` order), and the projector instances are the
//! consumers of one consumer group on it (XREADGROUP), acknowledging what they applied in
//! batches (XACK) as a Kafka consumer commits offsets.
//!
//! - A consumer that comes back after a crash has its old name and reads its own
//!   unacknowledged entries first: what it applied since its last XACK is redelivered.
//! - An entry left pending by a consumer that never comes back (the variant restarted
//!   with fewer instances) is claimed by a live one once idle for `claim_idle` (XAUTOCLAIM).
//! - The group hands entries to whichever consumer asks: two events of one account can be
//!   applied by two instances out of order. The read model tolerates that (see
//!   `read_model`'s version set), as a projector on a Redis stream group must.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use redis::AsyncCommands as _;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply};

use super::OutboxConfig;
use super::bus::OutboxEvent;

/// The entry field that holds the event's JSON.
const FIELD: &str = "event";
/// Entries one read takes at most.
const READ_COUNT: usize = 32;
/// How long a read waits for new entries before saying the stream is quiet.
const BLOCK: Duration = Duration::from_millis(100);
/// How often a consumer looks for entries a vanished consumer left pending.
const CLAIM_EVERY: Duration = Duration::from_secs(1);
/// An entry pending this long is taken as abandoned: far longer than an instance holds an
/// entry it works on (a read's batch of work plus the commit interval).
const CLAIM_IDLE_MIN: Duration = Duration::from_secs(10);

async fn connect(url: &str) -> anyhow::Result<MultiplexedConnection> {
    let client = redis::Client::open(url).with_context(|| format!("Redis URL `{url}`"))?;
    client.get_multiplexed_async_connection().await.context("connecting to the Redis of the bus")
}

/// Creates the stream and its consumer group when missing. The group starts at the
/// stream's first entry: nothing the relay published before it existed is skipped.
pub async fn ensure_group(config: &OutboxConfig) -> anyhow::Result<()> {
    let mut redis = connect(&config.redis_url).await?;
    let created: redis::RedisResult<()> = redis.xgroup_create_mkstream(config.stream(), config.group(), "0").await;
    match created {
        Ok(()) => Ok(()),
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating group {} on stream {}", config.group(), config.stream())),
    }
}

/// The relay's side: appends events to the stream.
pub struct StreamOutlet {
    redis: MultiplexedConnection,
    stream: String,
}

impl StreamOutlet {
    pub async fn connect(config: &OutboxConfig) -> anyhow::Result<StreamOutlet> {
        Ok(StreamOutlet { redis: connect(&config.redis_url).await?, stream: config.stream() })
    }

    /// Appends `events` in order, in one pipeline; returns once Redis has them all.
    pub async fn publish(&self, events: &[OutboxEvent]) -> anyhow::Result<()> {
        let mut pipe = redis::pipe();
        for event in events {
            pipe.xadd(&self.stream, "*", &[(FIELD, serde_json::to_vec(event)?)]).ignore();
        }
        pipe.query_async::<()>(&mut self.redis.clone()).await.context("XADD to the outbox stream")
    }
}

/// A projector instance's consumer in the group.
pub struct StreamInbox {
    redis: MultiplexedConnection,
    stream: String,
    group: String,
    consumer: String,
    /// Entries read and not yet handed on.
    buffered: VecDeque<(String, Vec<u8>)>,
    /// The entry `next` gave last.
    last: Option<String>,
    /// Applied since the last XACK.
    unacked: Vec<String>,
    /// Reading this consumer's own pending entries (after a restart) goes on after this
    /// id; `None` once they are all read.
    history: Option<String>,
    next_claim: Instant,
    claim_idle: Duration,
}

impl StreamInbox {
    /// Joins as consumer `projector-{index}`; its own pending entries come first.
    pub async fn join(config: &OutboxConfig, index: usize) -> anyhow::Result<StreamInbox> {
        Ok(StreamInbox {
            redis: connect(&config.redis_url).await?,
            stream: config.stream(),
            group: config.group(),
            consumer: format!("projector-{index}"),
            buffered: VecDeque::new(),
            last: None,
            unacked: Vec::new(),
            history: Some("0".into()),
            next_claim: Instant::now(),
            claim_idle: CLAIM_IDLE_MIN.max(config.commit_interval * 4),
        })
    }

    pub async fn next(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        if self.buffered.is_empty() {
            self.fill().await?;
        }
        Ok(self.buffered.pop_front().map(|(id, payload)| {
            self.last = Some(id);
            payload
        }))
    }

    /// One read: this consumer's own pending entries while there are any, else entries
    /// abandoned by another consumer (every `CLAIM_EVERY`), else new entries.
    async fn fill(&mut self) -> anyhow::Result<()> {
        let options = StreamReadOptions::default().group(&self.group, &self.consumer).count(READ_COUNT);
        if let Some(after) = self.history.take() {
            let reply: Option<StreamReadReply> = self
                .redis
                .xread_options(&[&self.stream], &[&after], &options)
                .await
                .context("XREADGROUP of own pending entries")?;
            let entries = entries(reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids));
            self.history = entries.last().map(|(id, _)| id.clone());
            self.buffered.extend(entries);
            return Ok(());
        }
        if Instant::now() >= self.next_claim {
            self.next_claim = Instant::now() + CLAIM_EVERY;
            let reply: StreamAutoClaimReply = self
                .redis
                .xautoclaim_options(
                    &self.stream,
                    &self.group,
                    &self.consumer,
                    self.claim_idle.as_millis() as u64,
                    "0-0",
                    StreamAutoClaimOptions::default().count(READ_COUNT),
                )
                .await
                .context("XAUTOCLAIM")?;
            if !reply.claimed.is_empty() {
                tracing::info!("{}: claimed {} abandoned entries", self.consumer, reply.claimed.len());
                self.buffered.extend(entries(reply.claimed));
                return Ok(());
            }
        }
        let options = options.block(BLOCK.as_millis() as usize);
        let reply: Option<StreamReadReply> =
            self.redis.xread_options(&[&self.stream], &[">"], &options).await.context("XREADGROUP")?;
        self.buffered.extend(entries(reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids)));
        Ok(())
    }

    pub fn applied(&mut self) {
        self.unacked.extend(self.last.take());
    }

    pub async fn commit(&mut self) -> anyhow::Result<()> {
        if self.unacked.is_empty() {
            return Ok(());
        }
        let _: usize = self.redis.xack(&self.stream, &self.group, self.unacked.as_slice()).await.context("XACK")?;
        self.unacked.clear();
        Ok(())
    }

    /// Nothing to close: the entries it did not acknowledge stay pending under its name.
    pub fn crash(self) {}
}

/// (id, the event's JSON) of each entry; an entry without the field is handed on empty
/// (the projector skips what is not JSON, and acknowledges it).
fn entries(ids: impl IntoIterator<Item = StreamId>) -> Vec<(String, Vec<u8>)> {
    ids.into_iter()
        .map(|entry| {
            let payload = match entry.map.get(FIELD) {
                Some(redis::Value::BulkString(bytes)) => bytes.clone(),
                _ => Vec::new(),
            };
            (entry.id, payload)
        })
        .collect()
}
