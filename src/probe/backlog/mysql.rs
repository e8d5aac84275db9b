//! `kind = "sql"` on a `mysql://` or `mariadb://` URL (issue 33): the same two queries as
//! on Postgres, `head` and `checkpoint`, each answering one number; the backlog is
//! head − checkpoint and the checkpoint is the progress. One sample reads both in one
//! read-only consistent snapshot (as Postgres' one repeatable-read transaction), so the
//! projector advancing between the two reads cannot mix two moments in one sample.
//!
//! The queries run as plain text (COM_QUERY, like Postgres' simple query): no statement is
//! prepared or cached on the server, and every answer comes as text, parsed the same way
//! for integer, DECIMAL and floating columns.

use anyhow::{Context as _, bail};
use mysql_async::prelude::Queryable as _;

use super::sources::Reading;

/// One connection, reused for every sample (the sampler reconnects after a failure).
pub struct MysqlReader {
    connection: mysql_async::Conn,
    head: String,
    checkpoint: String,
}

impl MysqlReader {
    pub async fn connect(url: &str, head: &str, checkpoint: &str) -> anyhow::Result<MysqlReader> {
        // The client knows mysql:// only; MariaDB speaks the same protocol.
        let url = match url.strip_prefix("mariadb://") {
            Some(rest) => format!("mysql://{rest}"),
            None => url.to_owned(),
        };
        let opts = mysql_async::Opts::from_url(&url).context("not a mysql:// URL")?;
        let mut connection = mysql_async::Conn::new(opts).await?;
        // A consistent snapshot holds only under REPEATABLE READ (under READ COMMITTED each
        // query reads afresh), and a server's default may have been changed.
        connection
            .query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .await
            .context("setting the isolation level")?;
        Ok(MysqlReader { connection, head: head.to_owned(), checkpoint: checkpoint.to_owned() })
    }

    /// One sample: the head and the checkpoint of one snapshot.
    pub async fn read(&mut self) -> anyhow::Result<Reading> {
        let connection = &mut self.connection;
        connection.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY").await.context("begin")?;
        let read = read_in_snapshot(connection, &self.head, &self.checkpoint).await;
        // End it either way: the connection is reused for the next sample.
        let end = connection.query_drop(if read.is_ok() { "COMMIT" } else { "ROLLBACK" }).await;
        let reading = read?;
        end.context("commit")?;
        Ok(reading)
    }
}

async fn read_in_snapshot(connection: &mut mysql_async::Conn, head: &str, checkpoint: &str) -> anyhow::Result<Reading> {
    // A NULL head is an empty event store; a NULL checkpoint a projection that applied
    // nothing yet (it is behind by the whole head).
    let head_at = position(connection, head).await.context("the `head` query")?.unwrap_or(0);
    let checkpoint_at = position(connection, checkpoint).await.context("the `checkpoint` query")?.unwrap_or(0);
    Ok(Reading {
        backlog: (head_at - checkpoint_at).max(0) as u64,
        progress: Some(checkpoint_at),
        pending: None,
        lag_s: None,
    })
}

/// The single number a query answers (NULL or no row: `None`).
async fn position(connection: &mut mysql_async::Conn, query: &str) -> anyhow::Result<Option<i64>> {
    let Some(row) = connection.query_first::<mysql_async::Row, _>(query).await? else { return Ok(None) };
    if row.len() != 1 {
        bail!("answers {} columns; it must answer one number", row.len());
    }
    number(row.as_ref(0).expect("one column"))
}

fn number(value: &mysql_async::Value) -> anyhow::Result<Option<i64>> {
    use mysql_async::Value as V;
    let whole = |n: f64| if n.is_finite() { Ok(Some(n.floor() as i64)) } else { bail!("answers {n}, not a number") };
    match value {
        V::NULL => Ok(None),
        V::Int(n) => Ok(Some(*n)),
        V::UInt(n) => Ok(Some(i64::try_from(*n).context("answers a number beyond i64")?)),
        V::Float(n) => whole(f64::from(*n)),
        V::Double(n) => whole(*n),
        V::Bytes(bytes) => {
            let text = String::from_utf8_lossy(bytes);
            let text = text.trim();
            if let Ok(n) = text.parse::<i64>() {
                return Ok(Some(n));
            }
            // DECIMAL / floating columns: the whole part.
            match text.parse::<f64>() {
                Ok(n) => whole(n),
                Err(_) => bail!("answers `{text}`, not a number"),
            }
        }
        V::Date(..) | V::Time(..) => bail!("answers a date or time, not a number"),
    }
}

#[cfg(test)]
mod tests {
    use mysql_async::Value as V;

    use super::number;

    #[test]
    fn issue33_mysql_positions_from_text_and_binary_values() {
        assert_eq!(number(&V::Bytes(b"42".to_vec())).unwrap(), Some(42));
        assert_eq!(number(&V::Bytes(b"41.9".to_vec())).unwrap(), Some(41));
        assert_eq!(number(&V::NULL).unwrap(), None);
        assert_eq!(number(&V::UInt(7)).unwrap(), Some(7));
        assert!(number(&V::Bytes(b"abc".to_vec())).unwrap_err().to_string().contains("not a number"));
        assert!(number(&V::UInt(u64::MAX)).is_err());
    }
}
