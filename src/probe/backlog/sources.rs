//! Reading one `[[backlog]]` source once: how many entries its projector is behind, and
//! how far it has got (a position that grows as it applies entries).

use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::scenario::{BacklogSource, BacklogSpec};

/// One reading of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// Entries (positions) the projector is behind.
    pub backlog: u64,
    /// How far the projector has got: entries acknowledged (Redis Streams), the
    /// checkpoint (SQL). Its growth per second is the consumers' throughput.
    pub progress: Option<i64>,
    /// Delivered, not yet acknowledged (Redis Streams' `pending`): part of `backlog`.
    pub pending: Option<u64>,
}

/// A connection to one source.
pub enum Reader {
    Redis { connection: redis::aio::MultiplexedConnection, stream: String, group: String },
    Sql { client: tokio_postgres::Client, head: String, checkpoint: String },
    Mysql(super::mysql::MysqlReader),
    RabbitMq(super::rabbitmq::RabbitReader),
}

impl Reader {
    /// Connects within `timeout`. The error names no password (the URL is redacted).
    pub async fn connect(spec: &BacklogSpec, timeout: Duration) -> anyhow::Result<Reader> {
        let connecting = async {
            match &spec.source {
                BacklogSource::RedisStreams { stream, group } => {
                    let client = redis::Client::open(spec.url.as_str()).context("not a Redis URL")?;
                    let connection = client.get_multiplexed_async_connection().await?;
                    Ok(Reader::Redis { connection, stream: stream.clone(), group: group.clone() })
                }
                BacklogSource::Sql { head, checkpoint } if is_mysql(&spec.url) => {
                    Ok(Reader::Mysql(super::mysql::MysqlReader::connect(&spec.url, head, checkpoint).await?))
                }
                BacklogSource::RabbitMq { queue, management_url } => Ok(Reader::RabbitMq(
                    super::rabbitmq::RabbitReader::connect(&spec.url, queue, management_url.as_deref()).await?,
                )),
                BacklogSource::Sql { head, checkpoint } => {
                    let (client, connection) = tokio_postgres::connect(&spec.url, tokio_postgres::NoTls).await?;
                    // The connection task ends when the client is dropped.
                    tokio::spawn(connection);
                    Ok(Reader::Sql { client, head: head.clone(), checkpoint: checkpoint.clone() })
                }
            }
        };
        match tokio::time::timeout(timeout, connecting).await {
            Ok(result) => result.map_err(|e: anyhow::Error| redacted(e, spec)),
            Err(_) => bail!("{} did not answer within {timeout:?}", spec.redacted_url()),
        }
    }

    pub async fn read(&mut self) -> anyhow::Result<Reading> {
        match self {
            Reader::Redis { connection, stream, group } => read_redis(connection, stream, group).await,
            Reader::Sql { client, head, checkpoint } => read_sql(client, head, checkpoint).await,
            Reader::Mysql(reader) => reader.read().await,
            Reader::RabbitMq(reader) => reader.read().await,
        }
    }
}

/// A `sql` source on MySQL/MariaDB rather than Postgres.
fn is_mysql(url: &str) -> bool {
    url.starts_with("mysql://") || url.starts_with("mariadb://")
}

/// An error's text with the source's URL (and any password in it) masked.
pub fn redacted(error: anyhow::Error, spec: &BacklogSpec) -> anyhow::Error {
    let mut text = format!("{error:#}").replace(&spec.url, &spec.redacted_url());
    // A client may quote the password alone (not inside the URL): mask it too.
    let urls = std::iter::once(spec.url.as_str()).chain(match &spec.source {
        BacklogSource::RabbitMq { management_url, .. } => management_url.as_deref(),
        _ => None,
    });
    for url in urls {
        if let Some(password) = reqwest::Url::parse(url).ok().and_then(|u| u.password().map(str::to_owned)) {
            text = crate::scenario::redact::mask_value(&text, &password);
        }
    }
    anyhow::anyhow!(crate::scenario::redact::redact_urls(&text))
}

async fn read_redis(
    connection: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    group: &str,
) -> anyhow::Result<Reading> {
    let groups: redis::Value = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query_async(connection)
        .await
        .with_context(|| format!("XINFO GROUPS {stream}"))?;
    let redis::Value::Array(groups) = groups else { bail!("XINFO GROUPS {stream}: not a list of groups") };
    for entry in groups {
        let fields = fields(entry);
        let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        if field("name").and_then(text).as_deref() != Some(group) {
            continue;
        }
        let pending = field("pending").and_then(integer).context("XINFO GROUPS gave no `pending`")?;
        // `lag` is nil when Redis cannot tell it (entries deleted from the middle of the
        // stream, or Redis before 7.0): unknown, never 0.
        let Some(lag) = field("lag").and_then(integer) else {
            bail!("Redis cannot tell group `{group}`'s lag on `{stream}` (nil: Redis < 7, or entries deleted)");
        };
        let entries_read = field("entries-read").and_then(integer);
        return Ok(Reading {
            backlog: (lag.max(0) + pending.max(0)) as u64,
            progress: entries_read.map(|read| read - pending),
            pending: Some(pending.max(0) as u64),
        });
    }
    bail!("stream `{stream}` has no consumer group `{group}`")
}

/// A RESP2 flat array of field, value or a RESP3 map, as pairs.
fn fields(value: redis::Value) -> Vec<(String, redis::Value)> {
    match value {
        redis::Value::Map(pairs) => pairs.into_iter().filter_map(|(k, v)| Some((text(&k)?, v))).collect(),
        redis::Value::Array(items) => {
            let mut pairs = Vec::new();
            let mut items = items.into_iter();
            while let (Some(k), Some(v)) = (items.next(), items.next()) {
                if let Some(k) = text(&k) {
                    pairs.push((k, v));
                }
            }
            pairs
        }
        _ => Vec::new(),
    }
}

fn text(value: &redis::Value) -> Option<String> {
    match value {
        redis::Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        redis::Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn integer(value: &redis::Value) -> Option<i64> {
    match value {
        redis::Value::Int(n) => Some(*n),
        other => text(other)?.parse().ok(),
    }
}

async fn read_sql(client: &tokio_postgres::Client, head: &str, checkpoint: &str) -> anyhow::Result<Reading> {
    // A NULL head is an empty event store; a NULL checkpoint a projection that applied
    // nothing yet (it is behind by the whole head).
    let head_at = position(client, head).await.context("the `head` query")?.unwrap_or(0);
    let checkpoint_at = position(client, checkpoint).await.context("the `checkpoint` query")?.unwrap_or(0);
    Ok(Reading { backlog: (head_at - checkpoint_at).max(0) as u64, progress: Some(checkpoint_at), pending: None })
}

/// The single number a query answers (integer or numeric column; NULL or no row: `None`).
async fn position(client: &tokio_postgres::Client, query: &str) -> anyhow::Result<Option<i64>> {
    let rows = client.simple_query(query).await?;
    let mut values = rows.iter().filter_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(row) => Some(row),
        _ => None,
    });
    let Some(row) = values.next() else { return Ok(None) };
    if row.len() != 1 {
        bail!("answers {} columns; it must answer one number", row.len());
    }
    match row.get(0) {
        None => Ok(None),
        Some(text) => {
            let text = text.trim();
            if let Ok(n) = text.parse::<i64>() {
                return Ok(Some(n));
            }
            // numeric / float columns: the whole part.
            match text.parse::<f64>() {
                Ok(n) if n.is_finite() => Ok(Some(n.floor() as i64)),
                _ => bail!("answers `{text}`, not a number"),
            }
        }
    }
}
