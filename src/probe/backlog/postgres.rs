//! Reading a `sql` source on PostgreSQL: the event store's head, the projection's
//! checkpoint (or one per projection, from a query answering rows), and, where the
//! scenario names a timestamp, the lag in seconds. One sample is read in one read-only
//! repeatable-read transaction, so the head, the checkpoints and the lag are of one
//! snapshot.

use anyhow::{Context as _, bail};
use tokio_postgres::types::{ToSql, Type};

use super::sources::Reading;
use crate::scenario::BacklogSource;

/// The queries of one `sql` source.
#[derive(Debug, Clone)]
pub struct SqlQueries {
    head: String,
    checkpoint: String,
    /// `checkpoint` answers (projection, position) rows (the `checkpoints` key).
    per_projection: bool,
    oldest_unapplied: Option<String>,
}

impl SqlQueries {
    pub fn of(source: &BacklogSource) -> Option<SqlQueries> {
        match source {
            BacklogSource::Sql { head, checkpoint, per_projection, oldest_unapplied } => Some(SqlQueries {
                head: head.clone(),
                checkpoint: checkpoint.clone(),
                per_projection: *per_projection,
                oldest_unapplied: oldest_unapplied.clone(),
            }),
            _ => None,
        }
    }
}

/// One sample: a reading per projection (one unnamed reading with `checkpoint`).
pub async fn read(
    client: &tokio_postgres::Client,
    queries: &SqlQueries,
) -> anyhow::Result<Vec<(Option<String>, Reading)>> {
    client.batch_execute("begin isolation level repeatable read read only").await.context("begin")?;
    let read = read_in_snapshot(client, queries).await;
    // A failed query aborted the transaction: end it either way (the connection is reused).
    let end = client.batch_execute(if read.is_ok() { "commit" } else { "rollback" }).await;
    let readings = read?;
    end.context("commit")?;
    Ok(readings)
}

async fn read_in_snapshot(
    client: &tokio_postgres::Client,
    queries: &SqlQueries,
) -> anyhow::Result<Vec<(Option<String>, Reading)>> {
    // A NULL head is an empty event store; a NULL checkpoint a projection that applied
    // nothing yet (it is behind by the whole head).
    let head_at = position(client, &queries.head).await.context("the `head` query")?.unwrap_or(0);
    let checkpoints: Vec<(Option<String>, i64)> = if queries.per_projection {
        let rows = projections(client, &queries.checkpoint).await.context("the `checkpoints` query")?;
        rows.into_iter().map(|(name, at)| (Some(name), at)).collect()
    } else {
        let at = position(client, &queries.checkpoint).await.context("the `checkpoint` query")?;
        vec![(None, at.unwrap_or(0))]
    };
    let lag = match &queries.oldest_unapplied {
        Some(query) => Some(LagQuery::prepare(client, query).await.context("the `oldest_unapplied` query")?),
        None => None,
    };
    let mut readings = Vec::with_capacity(checkpoints.len());
    for (projection, checkpoint_at) in checkpoints {
        let backlog = (head_at - checkpoint_at).max(0) as u64;
        let lag_s = match &lag {
            Some(lag) => lag.seconds(client, checkpoint_at, backlog).await.context("the `oldest_unapplied` query")?,
            None => None,
        };
        readings.push((projection, Reading { backlog, progress: Some(checkpoint_at), pending: None, lag_s }));
    }
    Ok(readings)
}

/// The `oldest_unapplied` query, wrapped so that the database subtracts the timestamp it
/// answers from its own clock (`now()`): the harness's clock never meets the database's,
/// so a skew between the two machines cannot enter the figure.
struct LagQuery {
    statement: tokio_postgres::Statement,
}

impl LagQuery {
    async fn prepare(client: &tokio_postgres::Client, query: &str) -> anyhow::Result<LagQuery> {
        let query = query.trim().trim_end_matches(';');
        let wrapped = format!("select extract(epoch from (now() - ({query})))::float8");
        let statement = client.prepare(&wrapped).await.context(
            "run as `now() - (<query>)`: it must answer a timestamp, when the oldest entry not applied was appended",
        )?;
        match statement.params() {
            [] => {}
            [Type::INT8 | Type::INT4] => {}
            [other] => bail!("`$1` (the checkpoint) is compared as {other}; write `$1::bigint`"),
            more => bail!("takes {} parameters; at most one, `$1`: the projection's checkpoint", more.len()),
        }
        Ok(LagQuery { statement })
    }

    /// Seconds behind for a projection at `checkpoint`. NULL (no entry unapplied) is 0
    /// when the projection is not behind, and unknown when head and checkpoint say it is
    /// (the two queries disagree: never a 0 that the backlog contradicts).
    async fn seconds(
        &self,
        client: &tokio_postgres::Client,
        checkpoint: i64,
        backlog: u64,
    ) -> anyhow::Result<Option<f64>> {
        let small;
        let param: Option<&(dyn ToSql + Sync)> = match self.statement.params().first() {
            None => None,
            Some(&Type::INT4) => {
                small = i32::try_from(checkpoint).context("the checkpoint does not fit `$1` (integer)")?;
                Some(&small)
            }
            Some(_) => Some(&checkpoint),
        };
        let row = match param {
            Some(param) => client.query_opt(&self.statement, &[param]).await?,
            None => client.query_opt(&self.statement, &[]).await?,
        };
        let seconds = row.map(|row| row.try_get::<_, Option<f64>>(0)).transpose()?.flatten();
        Ok(match seconds {
            Some(s) if s.is_finite() => Some(s.max(0.0)),
            Some(_) => None,
            None if backlog == 0 => Some(0.0),
            None => None,
        })
    }
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
    number(row.get(0))
}

/// The (projection, checkpoint) rows of a `checkpoints` query. A NULL checkpoint is a
/// projection that applied nothing yet (0); a NULL name is an error.
async fn projections(client: &tokio_postgres::Client, query: &str) -> anyhow::Result<Vec<(String, i64)>> {
    let messages = client.simple_query(query).await?;
    let mut rows = Vec::new();
    for message in &messages {
        let tokio_postgres::SimpleQueryMessage::Row(row) = message else { continue };
        if row.len() != 2 {
            bail!("answers {} columns; it must answer two: the projection's name and its checkpoint", row.len());
        }
        let name = row.get(0).context("answers a NULL projection name")?.trim().to_owned();
        let at = number(row.get(1)).with_context(|| format!("projection `{name}`"))?.unwrap_or(0);
        if rows.iter().any(|(seen, _)| *seen == name) {
            bail!("answers projection `{name}` twice");
        }
        rows.push((name, at));
    }
    Ok(rows)
}

fn number(value: Option<&str>) -> anyhow::Result<Option<i64>> {
    let Some(text) = value else { return Ok(None) };
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
