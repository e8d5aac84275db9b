//! `kind = "rabbitmq"`: a queue's depth, ready + unacknowledged (issue 33).
//!
//! The two halves come from two places, because no one place has both live:
//! - *ready* (messages not yet delivered) from an AMQP passive `queue.declare`: the broker
//!   answers it from the queue itself, so it is exact at the moment of the sample;
//! - *unacknowledged* (delivered to a consumer, not yet acked) only the management HTTP API
//!   gives, and it gives the queue's last emitted statistics: up to
//!   `collect_statistics_interval` old (5 s by default; ~6 s measured here with the
//!   collector's own tick). The sample's `pending` is that figure.
//!
//! So a sample's backlog is exact up to the change of the unacknowledged count since the
//! broker's last statistics, which is at most the consumers' prefetch (a consumer never
//! holds more). A management API that does not answer makes the sample unknown (never the
//! ready count alone, which would under-read by what the consumers hold).
//!
//! The consumers' throughput is not given (`progress` is `None`, so `applied_per_s` is
//! unknown): the only progress RabbitMQ counts, `message_stats.ack`, refreshes with the
//! same statistics, so a per-sample rate from it would put 5 s of acks in one sample and
//! a false 0 in the others.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use amqprs::channel::{Channel, QueueDeclareArguments};
use amqprs::connection::{Connection, OpenConnectionArguments};
use anyhow::{Context as _, bail};
use reqwest::Url;

use super::sources::Reading;

/// What the figures say of a RabbitMQ source (result.json `stale`, the summary line).
pub const STALE: &str = "unacknowledged (`pending`) as of RabbitMQ's last statistics \
     (collect_statistics_interval, 5 s by default): a sample may be off by what the consumers hold, \
     the drain seen that much later; throughput unknown";

/// The management plugin's port when `management_url` is not given.
const MANAGEMENT_PORT: u16 = 15672;

/// A connection to one queue: an AMQP channel for the ready count, an HTTP client for the
/// management API.
pub struct RabbitReader {
    // Kept open: dropping it closes the channel.
    _connection: Connection,
    channel: Channel,
    /// Why the broker closed the channel, when it did.
    closed: Arc<Mutex<Option<String>>>,
    queue: String,
    http: reqwest::Client,
    /// `…/api/queues/{vhost}/{queue}` with the credentials apart (never in the URL shown).
    management: Url,
    credentials: (String, String),
}

/// What the AMQP URL says: host, port, user, password, vhost (percent-decoded).
struct AmqpAddress {
    host: String,
    port: u16,
    user: String,
    password: String,
    vhost: String,
}

fn parse_amqp(url: &str) -> anyhow::Result<AmqpAddress> {
    let parsed = Url::parse(url).context("not an amqp:// URL")?;
    let decode = |s: &str| percent_decode(s);
    let host = parsed.host_str().context("the URL names no host")?.to_owned();
    let user = if parsed.username().is_empty() { "guest".to_owned() } else { decode(parsed.username()) };
    let password = parsed.password().map_or_else(|| "guest".to_owned(), decode);
    // amqp://host/ is the vhost "" in the AMQP URI spec, but every broker's default is "/",
    // which is written %2f; no path at all means "/" too.
    let vhost = match parsed.path() {
        "" | "/" => "/".to_owned(),
        path => decode(&path[1..]),
    };
    Ok(AmqpAddress { host, port: parsed.port().unwrap_or(5672), user, password, vhost })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text.get(i + 1..i + 3).and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `…/api/queues/{vhost}/{queue}` on `management_url`, or on the AMQP host at port 15672;
/// the credentials those of `management_url` when it has any, else the AMQP URL's.
fn management_address(
    amqp: &AmqpAddress,
    management_url: Option<&str>,
    queue: &str,
) -> anyhow::Result<(Url, (String, String))> {
    let mut credentials = (amqp.user.clone(), amqp.password.clone());
    let mut base = match management_url {
        Some(url) => {
            let mut base = Url::parse(url).context("`management_url` is not a URL")?;
            if !base.username().is_empty() {
                credentials =
                    (percent_decode(base.username()), base.password().map(percent_decode).unwrap_or_default());
                let _ = base.set_username("");
                let _ = base.set_password(None);
            }
            base
        }
        None => Url::parse(&format!("http://{}:{MANAGEMENT_PORT}/", amqp.host)).context("the management URL")?,
    };
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    // Each segment percent-encoded whole: the default vhost "/" is `%2F`.
    let mut url = base.join("api/queues/").context("the management URL")?;
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("the management URL cannot have a path"))?
        .pop_if_empty()
        .extend([amqp.vhost.as_str(), queue]);
    Ok((url, credentials))
}

impl RabbitReader {
    pub async fn connect(url: &str, queue: &str, management_url: Option<&str>) -> anyhow::Result<RabbitReader> {
        let amqp = parse_amqp(url)?;
        let (management, credentials) = management_address(&amqp, management_url, queue)?;
        let mut args = OpenConnectionArguments::new(&amqp.host, amqp.port, &amqp.user, &amqp.password);
        args.virtual_host(&amqp.vhost).connection_name("cqrs-bench backlog");
        let connection = Connection::open(&args).await.context("AMQP connection")?;
        let channel = connection.open_channel(None).await.context("AMQP channel")?;
        let closed = Arc::new(Mutex::new(None));
        channel.register_callback(CloseReason(closed.clone())).await.context("AMQP channel")?;
        // The broker answers each read within the sampler's `every`; a hung HTTP call is
        // cut by the sampler's timeout as well.
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().context("an HTTP client")?;
        Ok(RabbitReader {
            _connection: connection,
            channel,
            closed,
            queue: queue.to_owned(),
            http,
            management,
            credentials,
        })
    }

    pub async fn read(&mut self) -> anyhow::Result<Reading> {
        // Passive: the queue must exist (a 404 closes the channel; the sampler reconnects).
        let declared =
            match self.channel.queue_declare(QueueDeclareArguments::new(&self.queue).passive(true).finish()).await {
                Ok(declared) => declared,
                Err(e) => {
                    // The broker's reason (404 NOT_FOUND …) reaches the channel's callback,
                    // maybe a moment after the call learns that the channel closed.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let reason = self.closed.lock().unwrap_or_else(|p| p.into_inner()).take();
                    let reason = reason.unwrap_or_else(|| e.to_string());
                    bail!("queue `{}` (passive queue.declare): {reason}", self.queue);
                }
            };
        let Some((_, ready, _consumers)) = declared else { bail!("queue `{}`: no declare-ok", self.queue) };
        let unacked = self.unacknowledged().await?;
        Ok(Reading { backlog: u64::from(ready) + unacked, progress: None, pending: Some(unacked), lag_s: None })
    }

    /// `messages_unacknowledged` from the management API (its last statistics).
    async fn unacknowledged(&self) -> anyhow::Result<u64> {
        let mut url = self.management.clone();
        url.set_query(Some("columns=messages_unacknowledged"));
        let shown = self.management.as_str();
        let answer =
            self.http.get(url).basic_auth(&self.credentials.0, Some(&self.credentials.1)).send().await.with_context(
                || {
                    format!(
                        "the management API at {shown} (enable it: rabbitmq-plugins enable rabbitmq_management, \
                     or set `management_url`)"
                    )
                },
            )?;
        let status = answer.status();
        let body = answer.bytes().await.with_context(|| format!("the management API at {shown}"))?;
        if !status.is_success() {
            bail!("the management API at {shown} answered {status}: {}", String::from_utf8_lossy(&body).trim());
        }
        let json: serde_json::Value =
            serde_json::from_slice(&body).with_context(|| format!("the management API at {shown}: not JSON"))?;
        // A queue the broker has not emitted statistics for yet (just declared) has none:
        // unknown, not 0.
        json.get("messages_unacknowledged").and_then(serde_json::Value::as_u64).with_context(|| {
            format!("the management API at {shown} has no `messages_unacknowledged` for the queue yet")
        })
    }
}

/// Keeps the reason the broker gives when it closes the channel.
struct CloseReason(Arc<Mutex<Option<String>>>);

#[async_trait::async_trait]
impl amqprs::callbacks::ChannelCallback for CloseReason {
    async fn close(&mut self, _: &Channel, close: amqprs::CloseChannel) -> Result<(), amqprs::error::Error> {
        let reason = format!("the broker closed the channel: {} {}", close.reply_code(), close.reply_text());
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
        Ok(())
    }
    async fn cancel(&mut self, _: &Channel, _: amqprs::Cancel) -> Result<(), amqprs::error::Error> {
        Ok(())
    }
    async fn flow(&mut self, _: &Channel, _: bool) -> Result<bool, amqprs::error::Error> {
        Ok(true)
    }
    async fn publish_ack(&mut self, _: &Channel, _: amqprs::Ack) {}
    async fn publish_nack(&mut self, _: &Channel, _: amqprs::Nack) {}
    async fn publish_return(&mut self, _: &Channel, _: amqprs::Return, _: amqprs::BasicProperties, _: Vec<u8>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue33_the_management_address_comes_from_the_amqp_url() {
        let amqp = parse_amqp("amqp://app:p%40ss@rabbit.local:5673/%2f").unwrap();
        assert_eq!((amqp.user.as_str(), amqp.password.as_str(), amqp.vhost.as_str()), ("app", "p@ss", "/"));
        assert_eq!(amqp.port, 5673);
        let (url, credentials) = management_address(&amqp, None, "order view").unwrap();
        assert_eq!(url.as_str(), "http://rabbit.local:15672/api/queues/%2F/order%20view");
        assert_eq!(credentials, ("app".to_owned(), "p@ss".to_owned()));
        let (url, credentials) =
            management_address(&amqp, Some("http://admin:secret@mgmt.local:8080/rabbit"), "q").unwrap();
        assert_eq!(url.as_str(), "http://mgmt.local:8080/rabbit/api/queues/%2F/q");
        assert_eq!(credentials, ("admin".to_owned(), "secret".to_owned()));
        let plain = parse_amqp("amqp://127.0.0.1").unwrap();
        assert_eq!((plain.user.as_str(), plain.vhost.as_str(), plain.port), ("guest", "/", 5672));
        let vhost = parse_amqp("amqp://u:p@h/shop").unwrap();
        assert_eq!(management_address(&vhost, None, "q").unwrap().0.path(), "/api/queues/shop/q");
    }
}
