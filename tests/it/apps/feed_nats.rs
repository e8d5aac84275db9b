//! The feed app's NATS JetStream store (issue 33), on the harness's own minimal NATS
//! client: `POST /events` publishes to `<stream>.events` and waits for JetStream's PubAck;
//! the projector pulls from a durable consumer with explicit acks (`no_wait` batches) and
//! acknowledges each message with a reply, so `applied` counts only acks the server
//! confirmed.

use cqrs_bench::probe::backlog::nats::protocol::Connection;
use serde_json::{Value, json};

/// The one subject of the stream.
fn subject(stream: &str) -> String {
    format!("{stream}.events")
}

pub async fn connect(url: &str) -> Connection {
    Connection::connect(url).await.unwrap()
}

async fn api(c: &mut Connection, subject: &str, body: Value) -> Value {
    let answer = c.request(subject, body.to_string().as_bytes()).await.unwrap();
    serde_json::from_slice(&answer.payload).unwrap()
}

/// A fresh stream (in memory) and its durable consumer, delivering from the start.
pub async fn prepare(url: &str, stream: &str, consumer: &str) {
    let mut c = connect(url).await;
    delete_stream(&mut c, stream).await;
    let created = api(
        &mut c,
        &format!("$JS.API.STREAM.CREATE.{stream}"),
        json!({ "name": stream, "subjects": [subject(stream)], "storage": "memory" }),
    )
    .await;
    assert!(created["error"].is_null(), "{created}");
    let config = json!({ "durable_name": consumer, "ack_policy": "explicit", "deliver_policy": "all" });
    let created = api(
        &mut c,
        &format!("$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{consumer}"),
        json!({ "stream_name": stream, "config": config }),
    )
    .await;
    assert!(created["error"].is_null(), "{created}");
}

pub async fn delete_stream(c: &mut Connection, stream: &str) {
    let _ = c.request(&format!("$JS.API.STREAM.DELETE.{stream}"), b"").await;
}

/// Publishes one entry; true once JetStream acknowledged storing it.
pub async fn append(c: &mut Connection, stream: &str, body: &str) -> bool {
    let Ok(answer) = c.request(&subject(stream), body.as_bytes()).await else { return false };
    let ack: Value = serde_json::from_slice(&answer.payload).unwrap_or_default();
    ack["error"].is_null() && ack["seq"].is_u64()
}

/// Pulls up to `max` messages and acknowledges them; the number the server confirmed.
pub async fn consume(c: &mut Connection, stream: &str, consumer: &str, max: u64) -> u64 {
    let inbox = c.new_inbox();
    let pull = json!({ "batch": max, "no_wait": true }).to_string();
    c.publish(&format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"), Some(&inbox), pull.as_bytes()).await.unwrap();
    // A full batch ends by itself; a shorter one with a 404 (none) or 408 status.
    let mut acks = Vec::new();
    while (acks.len() as u64) < max {
        // Deliveries keep their own subject (`<stream>.events`) and carry the ack subject
        // as their reply; the end-of-batch status comes to the inbox.
        let message = c.next_message().await.unwrap();
        match (message.status, message.reply) {
            (Some(_), _) if message.subject == inbox => break,
            (None, Some(ack)) if ack.starts_with("$JS.ACK.") => acks.push(ack),
            _ => {}
        }
    }
    let mut confirmed = 0;
    for ack in acks {
        if c.request(&ack, b"+ACK").await.is_ok() {
            confirmed += 1;
        }
    }
    confirmed
}
