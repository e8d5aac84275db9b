//! The outbox variant's Kafka: librdkafka's in-process mock cluster (`--kafka mock`)
//! when there is no broker, the topic, and the event record both ends agree on.

use std::time::Duration;

use anyhow::Context as _;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use serde::{Deserialize, Serialize};

/// One outbox row on the topic (JSON). The harness's `[bus]` probe finds the command's
/// ref at `/ref`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutboxEvent {
    pub account: String,
    /// The account's version after this event (0: the opening).
    pub version: i64,
    pub delta: i64,
    #[serde(rename = "ref")]
    pub op_ref: Option<String>,
    /// When the command committed, ms since the Unix epoch.
    pub at_ms: i64,
}

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
