//! Reading one `[[backlog]]` source once: how many entries its projector is behind, and
//! how far it has got (a position that grows as it applies entries).

use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::scenario::{BacklogSource, BacklogSpec};

/// One reading of a source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// Entries (positions) the projector is behind.
    pub backlog: u64,
    /// How far the projector has got: entries acknowledged (Redis Streams), the
    /// checkpoint (SQL). Its growth per second is the consumers' throughput.
    pub progress: Option<i64>,
    /// Delivered, not yet acknowledged (Redis Streams' `pending`): part of `backlog`.
    pub pending: Option<u64>,
    /// Seconds since the oldest entry the projector has not applied was appended, on the
    /// source's own clock; 0 when nothing is behind. `None`: the source cannot tell.
    pub lag_s: Option<f64>,
}

/// A connection to one source.
pub enum Reader {
    Redis { connection: redis::aio::MultiplexedConnection, stream: String, group: String },
    Sql { client: tokio_postgres::Client, queries: super::postgres::SqlQueries },
    Nats(super::nats::NatsReader),
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
                BacklogSource::Sql { .. } => {
                    let (client, connection) = tokio_postgres::connect(&spec.url, tokio_postgres::NoTls).await?;
                    // The connection task ends when the client is dropped.
                    tokio::spawn(connection);
                    let queries = super::postgres::SqlQueries::of(&spec.source).expect("a sql source");
                    Ok(Reader::Sql { client, queries })
                }
                BacklogSource::Nats { stream, consumer } => {
                    Ok(Reader::Nats(super::nats::NatsReader::connect(&spec.url, stream, consumer).await?))
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
            Reader::Sql { client, queries } => {
                let mut each = super::postgres::read(client, queries).await?;
                each.pop().map(|(_, reading)| reading).context("the `checkpoints` query answered no projection")
            }
            Reader::Nats(reader) => reader.read().await,
        }
    }

    /// Every reading one sample gives, by projection: one unnamed reading, or one per row
    /// of a SQL `checkpoints` query (a source reading several projections at once).
    pub async fn read_each(&mut self) -> anyhow::Result<Vec<(Option<String>, Reading)>> {
        match self {
            Reader::Sql { client, queries } => super::postgres::read(client, queries).await,
            other => Ok(vec![(None, other.read().await?)]),
        }
    }
}

/// An error's text with the source's URL (and any password in it) masked.
pub fn redacted(error: anyhow::Error, spec: &BacklogSpec) -> anyhow::Error {
    let text = format!("{error:#}").replace(&spec.url, &spec.redacted_url());
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
        let backlog = (lag.max(0) + pending.max(0)) as u64;
        let last_delivered = field("last-delivered-id").and_then(text).unwrap_or_default();
        let lag_s = super::redis_lag::lag_s(connection, stream, group, backlog, &last_delivered).await?;
        return Ok(Reading {
            backlog,
            progress: entries_read.map(|read| read - pending),
            pending: Some(pending.max(0) as u64),
            lag_s,
        });
    }
    bail!("stream `{stream}` has no consumer group `{group}`")
}

/// A RESP2 flat array of field, value or a RESP3 map, as pairs.
pub(super) fn fields(value: redis::Value) -> Vec<(String, redis::Value)> {
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

pub(super) fn text(value: &redis::Value) -> Option<String> {
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
