//! The relay: outbox rows to the bus (Kafka or a Redis stream), in `seq` order, marked
//! sent once the bus has them.

use std::time::Duration;

use anyhow::Context as _;
use deadpool_postgres::Pool;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

use super::OutboxConfig;
use super::bus::{BusKind, OutboxEvent};
use super::redis_stream::StreamOutlet;

/// Rows published per transaction.
const BATCH: i64 = 500;
/// Wait after a failed batch (broker or database away) before the next attempt.
const RETRY_AFTER: Duration = Duration::from_millis(500);
/// How long the broker may take to acknowledge a record before the batch is retried.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Relay {
    pool: Pool,
    outlet: Outlet,
    poll: Duration,
    /// Rows are published no earlier than this after their commit (`--relay-delay`).
    delay: Duration,
    select_unsent: String,
    mark_sent: String,
}

/// Where the relay publishes.
enum Outlet {
    Kafka { producer: FutureProducer, topic: String },
    Redis(StreamOutlet),
}

impl Outlet {
    async fn connect(config: &OutboxConfig) -> anyhow::Result<Outlet> {
        Ok(match config.bus {
            BusKind::Kafka => Outlet::Kafka {
                producer: ClientConfig::new()
                    .set("bootstrap.servers", &config.brokers)
                    // Retries keep the order of an account's events and write no duplicates.
                    .set("enable.idempotence", "true")
                    .set("acks", "all")
                    .set("linger.ms", "1")
                    .set("message.timeout.ms", DELIVERY_TIMEOUT.as_millis().to_string())
                    .create()
                    .context("creating the relay's Kafka producer")?,
                topic: config.topic(),
            },
            BusKind::RedisStreams => Outlet::Redis(StreamOutlet::connect(config).await?),
        })
    }

    /// Publishes `events` in order; returns once the bus has acknowledged every one.
    async fn publish(&self, events: &[OutboxEvent]) -> anyhow::Result<()> {
        let (producer, topic) = match self {
            Outlet::Redis(stream) => return stream.publish(events).await,
            Outlet::Kafka { producer, topic } => (producer, topic),
        };
        let mut deliveries = Vec::with_capacity(events.len());
        for event in events {
            let payload = serde_json::to_vec(event)?;
            // Queued in order; the idempotent producer keeps that order per partition.
            let delivery = producer
                .send_result(FutureRecord::to(topic).key(&event.account).payload(&payload))
                .map_err(|(e, _)| anyhow::anyhow!("queueing an outbox record: {e}"))?;
            deliveries.push(delivery);
        }
        for delivery in deliveries {
            delivery.await.context("the producer went away")?.map_err(|(e, _)| anyhow::anyhow!("publishing: {e}"))?;
        }
        Ok(())
    }
}

impl Relay {
    pub async fn new(pool: Pool, config: &OutboxConfig) -> anyhow::Result<Relay> {
        let schema = &config.schema;
        Ok(Relay {
            pool,
            outlet: Outlet::connect(config).await?,
            poll: config.relay_poll,
            delay: config.relay_delay,
            select_unsent: format!(
                "SELECT seq, account, version, delta, ref, (extract(epoch FROM at) * 1000)::bigint,
                        at <= clock_timestamp() - make_interval(secs => $2)
                 FROM {schema}.outbox WHERE sent_at IS NULL ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED"
            ),
            mark_sent: format!("UPDATE {schema}.outbox SET sent_at = clock_timestamp() WHERE seq = ANY($1)"),
        })
    }

    /// Publishes until `shutdown`; a failed batch is logged and retried (at-least-once).
    pub async fn run(self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let pause = match self.publish_batch().await {
                Ok(sent) if sent == BATCH as usize => continue,
                Ok(_) => self.poll,
                Err(e) => {
                    tracing::warn!("outbox relay: {e:#}; retrying in {RETRY_AFTER:?}");
                    RETRY_AFTER
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// One batch: read unsent rows, publish them all, wait for every acknowledgement,
    /// mark them sent. Returns how many were sent.
    async fn publish_batch(&self) -> anyhow::Result<usize> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let rows = tx.query(&self.select_unsent, &[&BATCH, &self.delay.as_secs_f64()]).await?;
        // With `--relay-delay`: the rows due, in `seq` order, up to the first one that is not
        // (a later row must not overtake an earlier one of its account).
        let due = rows.iter().take_while(|row| row.get::<_, bool>(6)).count();
        let rows = &rows[..due];
        if rows.is_empty() {
            return Ok(0);
        }
        let events: Vec<OutboxEvent> = rows
            .iter()
            .map(|row| OutboxEvent {
                account: row.get(1),
                version: row.get(2),
                delta: row.get(3),
                op_ref: row.get(4),
                at_ms: row.get(5),
            })
            .collect();
        let seqs: Vec<i64> = rows.iter().map(|row| row.get(0)).collect();
        self.outlet.publish(&events).await?;
        tx.execute(&self.mark_sent, &[&seqs]).await?;
        tx.commit().await?;
        Ok(seqs.len())
    }
}
