//! The feed (tests/it/apps/feed.rs) on a real RabbitMQ queue (issue 33): `POST /events`
//! publishes one message to the queue through the default exchange and answers only once
//! the broker has confirmed it (publisher confirms); the projector is a consumer with
//! manual acks and a prefetch of `PREFETCH`, acking what the plan allows. What it holds
//! delivered and not acked is part of its backlog, as it is of the queue's depth.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicPublishArguments, BasicQosArguments, Channel,
    ConfirmSelectArguments, ConsumerMessage, QueueDeclareArguments, QueueDeleteArguments,
};
use amqprs::connection::{Connection as AmqpConnection, OpenConnectionArguments};
use amqprs::{Ack, BasicProperties, Cancel, CloseChannel, Nack, Return};

/// Deliveries the projector's consumer may hold unacknowledged.
pub const PREFETCH: u16 = 5;

/// A queue on the broker at `url` (amqp://user:pass@host:port/%2f).
#[derive(Clone)]
pub struct Queue {
    pub url: String,
    pub queue: String,
}

async fn open(url: &str) -> AmqpConnection {
    let parsed = reqwest::Url::parse(url).unwrap();
    let args = OpenConnectionArguments::new(
        parsed.host_str().unwrap(),
        parsed.port().unwrap_or(5672),
        parsed.username(),
        parsed.password().unwrap_or("guest"),
    );
    AmqpConnection::open(&args).await.unwrap()
}

/// Declares the queue afresh (deleting one left by an earlier run).
pub async fn prepare(queue: &Queue) {
    let connection = open(&queue.url).await;
    let channel = connection.open_channel(None).await.unwrap();
    let _ = channel.queue_delete(QueueDeleteArguments::new(&queue.queue)).await;
    channel.queue_declare(QueueDeclareArguments::durable_client_named(&queue.queue)).await.unwrap();
    let _ = connection.close().await;
    // As an app's queue would be when a run starts: known to the management API, which
    // has no figures for a new queue until its first statistics (up to ~5 s).
    let parsed = reqwest::Url::parse(&queue.url).unwrap();
    let stats = format!("http://{}:15672/api/queues/%2F/{}", parsed.host_str().unwrap(), queue.queue);
    let http = reqwest::Client::new();
    for _ in 0..150 {
        let answer = http.get(&stats).basic_auth(parsed.username(), parsed.password()).send().await;
        if let Ok(answer) = answer
            && let Ok(body) = answer.bytes().await
            && serde_json::from_slice::<serde_json::Value>(&body)
                .is_ok_and(|json| json["messages_unacknowledged"].is_u64())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the management API shows no statistics for queue {} after 15 s", queue.queue);
}

/// Deletes the queue.
pub async fn remove(url: &str, queue: &str) {
    let connection = open(url).await;
    if let Ok(channel) = connection.open_channel(None).await {
        let _ = channel.queue_delete(QueueDeleteArguments::new(queue)).await;
    }
    let _ = connection.close().await;
}

/// The broker's confirms of one publishing channel: the highest tag acked, tags nacked.
#[derive(Default)]
struct Confirms {
    acked: Mutex<(u64, bool)>,
    changed: tokio::sync::Notify,
}

struct ConfirmCallback(Arc<Confirms>);

#[async_trait::async_trait]
impl amqprs::callbacks::ChannelCallback for ConfirmCallback {
    async fn close(&mut self, _: &Channel, _: CloseChannel) -> Result<(), amqprs::error::Error> {
        Ok(())
    }
    async fn cancel(&mut self, _: &Channel, _: Cancel) -> Result<(), amqprs::error::Error> {
        Ok(())
    }
    async fn flow(&mut self, _: &Channel, _: bool) -> Result<bool, amqprs::error::Error> {
        Ok(true)
    }
    async fn publish_ack(&mut self, _: &Channel, ack: Ack) {
        // One publish in flight at a time: an ack (multiple or not) covers up to its tag.
        let mut acked = self.0.acked.lock().unwrap();
        acked.0 = acked.0.max(ack.delivery_tag());
        drop(acked);
        self.0.changed.notify_waiters();
    }
    async fn publish_nack(&mut self, _: &Channel, _: Nack) {
        self.0.acked.lock().unwrap().1 = true;
        self.0.changed.notify_waiters();
    }
    async fn publish_return(&mut self, _: &Channel, _: Return, _: BasicProperties, _: Vec<u8>) {}
}

/// The appender's channel (confirm mode) or the projector's consumer.
pub struct Connection {
    _connection: AmqpConnection,
    channel: Channel,
    queue: String,
    confirms: Arc<Confirms>,
    next_tag: u64,
    deliveries: Option<tokio::sync::mpsc::UnboundedReceiver<ConsumerMessage>>,
}

pub async fn connect(queue: &Queue) -> Connection {
    let connection = open(&queue.url).await;
    let channel = connection.open_channel(None).await.unwrap();
    let confirms = Arc::new(Confirms::default());
    channel.register_callback(ConfirmCallback(confirms.clone())).await.unwrap();
    channel.confirm_select(ConfirmSelectArguments::default()).await.unwrap();
    Connection { _connection: connection, channel, queue: queue.queue.clone(), confirms, next_tag: 1, deliveries: None }
}

impl Connection {
    /// Publishes `body` and waits for the broker's confirm; false if nacked or unconfirmed.
    pub async fn publish(&mut self, body: &str) -> bool {
        let tag = self.next_tag;
        self.next_tag += 1;
        let args = BasicPublishArguments::new("", &self.queue);
        if self.channel.basic_publish(BasicProperties::default(), body.as_bytes().to_vec(), args).await.is_err() {
            return false;
        }
        let confirmed = async {
            loop {
                let changed = self.confirms.changed.notified();
                let (acked, nacked) = *self.confirms.acked.lock().unwrap();
                if nacked {
                    return false;
                }
                if acked >= tag {
                    return true;
                }
                changed.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), confirmed).await.unwrap_or(false)
    }

    /// Acks up to `max` of the deliveries the consumer holds (starting the consumer on the
    /// first call); returns how many.
    pub async fn consume(&mut self, max: u64) -> u64 {
        if self.deliveries.is_none() {
            self.channel.basic_qos(BasicQosArguments::new(0, PREFETCH, false)).await.unwrap();
            let args = BasicConsumeArguments::new(&self.queue, "projector").manual_ack(true).finish();
            let (_, rx) = self.channel.basic_consume_rx(args).await.unwrap();
            self.deliveries = Some(rx);
        }
        let deliveries = self.deliveries.as_mut().expect("started above");
        let mut last = None;
        let mut taken = 0;
        while taken < max {
            let Ok(message) = deliveries.try_recv() else { break };
            last = message.deliver.map(|d| d.delivery_tag());
            taken += 1;
        }
        if let Some(tag) = last {
            self.channel.basic_ack(BasicAckArguments::new(tag, true)).await.unwrap();
        }
        taken
    }
}
