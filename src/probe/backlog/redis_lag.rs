//! Lag in seconds of a Redis Streams consumer group. An entry id made by `XADD *` is the
//! millisecond the server appended it (`<ms>-<seq>`), so the age of the oldest entry the
//! group has not acknowledged is the server's `TIME` less that millisecond: the smallest
//! pending id (XPENDING's summary) when some are delivered and not acknowledged, else the
//! first entry after the group's last-delivered-id (XRANGE). Both clocks are the server's.

use anyhow::{Context as _, bail};

/// Seconds behind, given the group's backlog and last-delivered-id from XINFO GROUPS; 0
/// when nothing is behind. `None` when the stream cannot tell: the entry is gone
/// (trimmed) or its id is not a time (ids set by the producer, ahead of the clock).
pub async fn lag_s(
    connection: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    group: &str,
    backlog: u64,
    last_delivered: &str,
) -> anyhow::Result<Option<f64>> {
    if backlog == 0 {
        return Ok(Some(0.0));
    }
    let (pending, time): (redis::Value, (String, String)) = redis::pipe()
        .atomic()
        .cmd("XPENDING")
        .arg(stream)
        .arg(group)
        .cmd("TIME")
        .query_async(connection)
        .await
        .with_context(|| format!("XPENDING {stream} {group}"))?;
    let now_ms = server_ms(&time)?;
    let oldest = match smallest_pending(pending) {
        Some(id) => Some(id),
        // Nothing pending: the oldest unacknowledged entry is the first not delivered.
        None => {
            let after: redis::Value = redis::cmd("XRANGE")
                .arg(stream)
                .arg(format!("({last_delivered}"))
                .arg("+")
                .arg("COUNT")
                .arg(1)
                .query_async(connection)
                .await
                .with_context(|| format!("XRANGE {stream} ({last_delivered} + COUNT 1"))?;
            first_entry_id(after)
        }
    };
    Ok(oldest.and_then(|id| id_ms(&id)).and_then(|appended_ms| seconds_since(now_ms, appended_ms)))
}

/// The server's clock from `TIME` (seconds, microseconds), in ms.
fn server_ms((seconds, micros): &(String, String)) -> anyhow::Result<f64> {
    match (seconds.parse::<f64>(), micros.parse::<f64>()) {
        (Ok(s), Ok(us)) => Ok(s * 1000.0 + us / 1000.0),
        _ => bail!("TIME answered `{seconds} {micros}`"),
    }
}

/// XPENDING's summary: `[count, smallest id, greatest id, consumers]` (nil ids when none).
fn smallest_pending(summary: redis::Value) -> Option<String> {
    let redis::Value::Array(items) = summary else { return None };
    let count = items.first().and_then(|c| match c {
        redis::Value::Int(n) => Some(*n),
        other => super::sources::text(other)?.parse().ok(),
    })?;
    if count <= 0 {
        return None;
    }
    items.get(1).and_then(super::sources::text)
}

/// The id of the first entry of an XRANGE answer.
fn first_entry_id(range: redis::Value) -> Option<String> {
    let redis::Value::Array(entries) = range else { return None };
    let redis::Value::Array(entry) = entries.into_iter().next()? else { return None };
    entry.first().and_then(super::sources::text)
}

/// The millisecond part of an entry id.
fn id_ms(id: &str) -> Option<f64> {
    id.split_once('-').map_or(id, |(ms, _)| ms).parse::<u64>().ok().map(|ms| ms as f64)
}

/// An id more than a second ahead of the server's clock was not made by `XADD *`: unknown.
/// Within that second (the clock stepped back; ids never do), 0.
fn seconds_since(now_ms: f64, appended_ms: f64) -> Option<f64> {
    (appended_ms <= now_ms + 1000.0).then(|| ((now_ms - appended_ms) / 1000.0).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue33_lag_from_entry_ids() {
        assert_eq!(id_ms("1700000000123-4"), Some(1_700_000_000_123.0));
        assert_eq!(id_ms("bad"), None);
        assert_eq!(seconds_since(10_000.0, 7_500.0), Some(2.5));
        assert_eq!(seconds_since(10_000.0, 10_400.0), Some(0.0));
        assert_eq!(seconds_since(10_000.0, 99_000.0), None, "an id that is not a time is unknown, never 0");
        let none = redis::Value::Array(vec![redis::Value::Int(0), redis::Value::Nil]);
        assert_eq!(smallest_pending(none), None);
        let some = redis::Value::Array(vec![
            redis::Value::Int(2),
            redis::Value::BulkString(b"5-0".to_vec()),
            redis::Value::BulkString(b"9-0".to_vec()),
        ]);
        assert_eq!(smallest_pending(some).as_deref(), Some("5-0"));
    }
}
