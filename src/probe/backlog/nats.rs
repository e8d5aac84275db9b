//! `kind = "nats"` (issue 33): a NATS JetStream durable consumer's backlog, read from
//! `$JS.API.CONSUMER.INFO.<stream>.<consumer>`:
//!
//! - backlog = `num_pending` (matching messages not yet delivered) + `num_ack_pending`
//!   (delivered, not yet acknowledged, waiting for redelivery included);
//! - pending = `num_ack_pending`;
//! - progress = the ack floor's stream sequence (every message up to it is acknowledged):
//!   its growth per second is the consumers' throughput;
//! - lag seconds = the age of the oldest unacknowledged message: the stored message after
//!   the ack floor that the consumer's filter takes (`$JS.API.STREAM.MSG.GET.<stream>` with
//!   `next_by_subj`), its publish `time` against the consumer info's `ts` (NATS ≥ 2.10: one
//!   clock, the server's) or else this machine's clock when the info came. 0 when the
//!   backlog is 0; unknown (`None`) when no such message can be read (deleted by a limit)
//!   or its time is not RFC 3339 — never a made-up 0.

pub mod protocol;

use std::time::SystemTime;

use anyhow::{Context as _, bail};
use serde::Deserialize;

use super::sources::Reading;
use protocol::Connection;

/// A connection to the server and the consumer it reads.
pub struct NatsReader {
    connection: Connection,
    stream: String,
    consumer: String,
}

/// A JetStream API error (`{"error": {"code": 404, "err_code": 10014, "description": …}}`).
#[derive(Debug, Deserialize)]
struct ApiError {
    err_code: Option<u32>,
    description: String,
}

/// JetStream's error codes this reader names (nats-server `server/errors.json`).
const STREAM_NOT_FOUND: u32 = 10059;
const CONSUMER_NOT_FOUND: u32 = 10014;
const NO_MESSAGE_FOUND: u32 = 10037;

#[derive(Debug, Deserialize)]
struct ConsumerInfo {
    error: Option<ApiError>,
    #[serde(default)]
    num_pending: u64,
    #[serde(default)]
    num_ack_pending: u64,
    ack_floor: Option<Floor>,
    #[serde(default)]
    config: ConsumerConfig,
    /// When the server answered (NATS 2.10 and later).
    ts: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Floor {
    stream_seq: u64,
}

#[derive(Debug, Default, Deserialize)]
struct ConsumerConfig {
    filter_subject: Option<String>,
    /// NATS 2.10: several filters.
    #[serde(default)]
    filter_subjects: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct MessageAnswer {
    error: Option<ApiError>,
    message: Option<StoredMessage>,
}

#[derive(Debug, Deserialize)]
struct StoredMessage {
    seq: u64,
    time: String,
}

impl NatsReader {
    /// Connects (the caller bounds the time); the stream and consumer are checked by the
    /// first `read`.
    pub async fn connect(url: &str, stream: &str, consumer: &str) -> anyhow::Result<NatsReader> {
        let connection = Connection::connect(url).await?;
        Ok(NatsReader { connection, stream: stream.to_owned(), consumer: consumer.to_owned() })
    }

    pub async fn read(&mut self) -> anyhow::Result<Reading> {
        let subject = format!("$JS.API.CONSUMER.INFO.{}.{}", self.stream, self.consumer);
        let answer = self.connection.request(&subject, b"").await.with_context(|| {
            format!("asking for consumer `{}` of stream `{}` (is JetStream enabled?)", self.consumer, self.stream)
        })?;
        let received = SystemTime::now();
        let info: ConsumerInfo = serde_json::from_slice(&answer.payload).context("the consumer info is not JSON")?;
        if let Some(error) = info.error {
            bail!(self.api_error(&error));
        }
        let floor = info.ack_floor.context("the consumer info has no `ack_floor`")?.stream_seq;
        let backlog = info.num_pending + info.num_ack_pending;
        let lag_s = if backlog == 0 {
            Some(0.0)
        } else {
            let now = info.ts.as_deref().and_then(parse_time).unwrap_or(received);
            let oldest = self.oldest_unacknowledged(floor, &info.config).await?;
            // A publish time after `now` is the two clocks' difference: the message is new.
            oldest.map(|published| now.duration_since(published).map_or(0.0, |age| age.as_secs_f64()))
        };
        Ok(Reading {
            backlog,
            progress: Some(i64::try_from(floor).unwrap_or(i64::MAX)),
            pending: Some(info.num_ack_pending),
            lag_s,
        })
    }

    /// The publish time of the first stored message after the ack floor that the consumer's
    /// filters take (the oldest one it has not had acknowledged); `None` when there is none
    /// to read or its time cannot be read.
    async fn oldest_unacknowledged(
        &mut self,
        floor: u64,
        config: &ConsumerConfig,
    ) -> anyhow::Result<Option<SystemTime>> {
        let filters: Vec<&str> = match (&config.filter_subjects[..], config.filter_subject.as_deref()) {
            ([], Some(one)) if !one.is_empty() => vec![one],
            ([], _) => vec![">"],
            (many, _) => many.iter().map(String::as_str).collect(),
        };
        let subject = format!("$JS.API.STREAM.MSG.GET.{}", self.stream);
        let mut oldest: Option<StoredMessage> = None;
        for filter in filters {
            let request = serde_json::json!({ "seq": floor + 1, "next_by_subj": filter });
            let answer = self
                .connection
                .request(&subject, request.to_string().as_bytes())
                .await
                .with_context(|| format!("reading message {} of stream `{}`", floor + 1, self.stream))?;
            let answer: MessageAnswer = serde_json::from_slice(&answer.payload).context("the message is not JSON")?;
            match (answer.error, answer.message) {
                (None, Some(message)) if oldest.as_ref().is_none_or(|o| message.seq < o.seq) => oldest = Some(message),
                (Some(error), _) if error.err_code != Some(NO_MESSAGE_FOUND) => return Ok(None),
                _ => {}
            }
        }
        Ok(oldest.and_then(|message| parse_time(&message.time)))
    }

    fn api_error(&self, error: &ApiError) -> String {
        let (stream, consumer) = (&self.stream, &self.consumer);
        match error.err_code {
            Some(STREAM_NOT_FOUND) => format!("JetStream has no stream `{stream}`"),
            Some(CONSUMER_NOT_FOUND) => format!("stream `{stream}` has no consumer `{consumer}`"),
            code => format!(
                "JetStream refused the consumer info of `{stream}`/`{consumer}`: {} (error {})",
                error.description,
                code.map_or("?".to_owned(), |c| c.to_string())
            ),
        }
    }
}

/// NATS writes times as RFC 3339 in UTC with up to nine fractional digits.
fn parse_time(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(text).ok()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn issue33_nats_times_keep_their_nanoseconds() {
        let t = parse_time("2026-12-07T18:35:01.099390256Z").unwrap();
        let since = t.duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(since.subsec_nanos(), 99_390_256);
        assert_eq!(parse_time("2026-12-07T18:35:01Z").unwrap() + Duration::from_nanos(99_390_256), t);
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn issue33_consumer_info_of_nats_2_9_parses() {
        let text = r#"{"type":"io.nats.jetstream.api.v1.consumer_info_response","stream_name":"PROBE","name":"v",
            "config":{"durable_name":"v","ack_policy":"explicit"},"delivered":{"consumer_seq":3,"stream_seq":3},
            "ack_floor":{"consumer_seq":1,"stream_seq":1},"num_ack_pending":2,"num_redelivered":0,"num_waiting":0,
            "num_pending":5}"#;
        let info: ConsumerInfo = serde_json::from_str(text).unwrap();
        assert_eq!((info.num_pending, info.num_ack_pending, info.ack_floor.unwrap().stream_seq), (5, 2, 1));
        assert!(info.error.is_none() && info.ts.is_none() && info.config.filter_subject.is_none());
        let error: ConsumerInfo =
            serde_json::from_str(r#"{"error":{"code":404,"err_code":10014,"description":"consumer not found"}}"#)
                .unwrap();
        assert_eq!(error.error.unwrap().err_code, Some(CONSUMER_NOT_FOUND));
    }
}
