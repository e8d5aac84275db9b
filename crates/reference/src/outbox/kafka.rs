//! The outbox variant's Kafka bus: librdkafka's in-process mock cluster (`--kafka mock`)
//! when there is no broker, the topic, and a projector instance's consumer in the group.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message as _;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use super::projector::Shared;

/// How long `KafkaInbox::next` waits for a message before saying the topic is quiet.
const POLL: Duration = Duration::from_millis(100);

/// librdkafka's mock cluster, one broker, owned by the serving task (it is not `Send`).
pub struct MockBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl MockBroker {
    /// Starts a one-broker cluster with `topic` of `partitions` (the mock does not
    /// support the admin API, so the topic is made here).
    pub fn start(topic: &str, partitions: i32) -> anyhow::Result<MockBroker> {
        let cluster = MockCluster::new(1).context("starting librdkafka's mock cluster")?;
        cluster.create_topic(topic, partitions, 1).with_context(|| format!("creating topic {topic} on the mock"))?;
        Ok(MockBroker { cluster })
    }

    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }
}

/// Makes sure `topic` exists with at least one partition; creates it with `partitions`
/// (replication 1) when the brokers do not have it.
pub async fn ensure_topic(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let (brokers_owned, topic_owned) = (brokers.to_owned(), topic.to_owned());
    let exists = tokio::task::spawn_blocking(move || -> anyhow::Result<bool> {
        let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &brokers_owned).create()?;
        let metadata = consumer
            .fetch_metadata(Some(&topic_owned), Duration::from_secs(10))
            .with_context(|| format!("Kafka at {brokers_owned} did not answer within 10 s"))?;
        Ok(metadata
            .topics()
            .iter()
            .any(|t| t.name() == topic_owned && t.error().is_none() && !t.partitions().is_empty()))
    })
    .await??;
    if exists {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().context("creating a Kafka admin client")?;
    let created = admin
        .create_topics(&[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))], &AdminOptions::new())
        .await
        .with_context(|| format!("creating topic {topic} on {brokers}"))?;
    for result in created {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => anyhow::bail!("creating topic {name} on {brokers}: {code}"),
        }
    }
    Ok(())
}

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

/// A projector instance's consumer in the group; offsets are stored per applied event and
/// committed by `commit`.
pub struct KafkaInbox {
    consumer: StreamConsumer<Assignments>,
    topic: String,
    /// The partition and offset of the message `next` gave last.
    last: Option<(i32, i64)>,
}

impl KafkaInbox {
    pub fn join(shared: &Shared, instance: usize) -> anyhow::Result<KafkaInbox> {
        let config = &shared.config;
        let consumer: StreamConsumer<Assignments> = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("group.id", config.group())
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // librdkafka waits up to 500 ms for a fetch by default: that would be the lag.
            .set("fetch.wait.max.ms", "5")
            // The broker minimum (group.min.session.timeout.ms); with a short heartbeat a
            // rebalance after a crash ends within seconds, as it would in production.
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "500")
            .create_with_context(Assignments { instance, owned: shared.owned.clone() })
            .context("creating a projector's Kafka consumer")?;
        consumer.subscribe(&[&config.topic()]).context("subscribing to the outbox topic")?;
        Ok(KafkaInbox { consumer, topic: config.topic(), last: None })
    }

    pub async fn next(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        // `recv` is cancel-safe: a timeout loses no message.
        let Ok(message) = tokio::time::timeout(POLL, self.consumer.recv()).await else { return Ok(None) };
        let message = message?;
        self.last = Some((message.partition(), message.offset()));
        // A message without payload is handed on empty (the projector skips what is not JSON).
        Ok(Some(message.payload().map(<[u8]>::to_vec).unwrap_or_default()))
    }

    pub fn applied(&mut self) -> anyhow::Result<()> {
        if let Some((partition, offset)) = self.last.take() {
            // Stores offset + 1, the next to read, as `store_offset_from_message` does.
            self.consumer.store_offset(&self.topic, partition, offset).context("storing an offset")?;
        }
        Ok(())
    }

    pub fn commit(&mut self) -> anyhow::Result<()> {
        self.consumer.commit_consumer_state(CommitMode::Async).context("committing offsets")
    }

    pub async fn crash(self) {
        // Closing a consumer blocks while it leaves the group.
        let _ = tokio::task::spawn_blocking(move || drop(self)).await;
    }
}
