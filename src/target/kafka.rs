//! Commands produced to Kafka (`kafka = { topic, key }` on a `[[command]]`): the rendered
//! body is the record's value, the acknowledgement is the broker's. The answer looks like
//! an HTTP one so statuses and captures work alike: 200 with `{"partition": P, "offset": O}`.

use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::{Failure, Reply};
use crate::scenario::BusSpec;

pub struct KafkaTarget {
    producer: FutureProducer,
    timeout: Duration,
}

impl KafkaTarget {
    /// A producer on `[bus]`'s brokers and client settings.
    pub fn new(bus: &BusSpec) -> anyhow::Result<KafkaTarget> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &bus.brokers)
            // Acknowledged = written to every in-sync replica.
            .set("acks", "all")
            .set("linger.ms", "0")
            .set("message.timeout.ms", bus.timeout.as_millis().max(1).to_string());
        for (key, value) in &bus.client {
            config.set(key, value);
        }
        let producer = config.create().context("creating the Kafka producer")?;
        Ok(KafkaTarget { producer, timeout: bus.timeout })
    }

    pub async fn produce(&self, topic: &str, key: &str, value: Option<&str>) -> Result<Reply, Failure> {
        let mut record = FutureRecord::to(topic).key(key);
        if let Some(value) = value {
            record = record.payload(value);
        }
        match self.producer.send(record, self.timeout).await {
            Ok(delivery) => {
                let body = format!(r#"{{"partition": {}, "offset": {}}}"#, delivery.partition, delivery.offset);
                Ok(Reply { status: 200, headers: ::http::HeaderMap::new(), body: Bytes::from(body), received: None })
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut), _)) => Err(Failure::Timeout),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::AllBrokersDown), _)) => Err(Failure::Connect),
            Err(_) => Err(Failure::Transport),
        }
    }
}
