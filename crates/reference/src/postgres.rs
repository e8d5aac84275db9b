//! What the Postgres variants share: the connection pool, schema names, migrations, and
//! reading the read model (`account_views`: id, balance, version, refs), which pg-sync and
//! event-sourced keep alike.

use std::sync::Arc;

use anyhow::Context as _;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Transaction};
use tokio_postgres::NoTls;

use cqrs_bench::reference::bank::{RefSlice, Refusal, View};

/// A schema name safe to put into SQL as it is.
pub fn valid_schema(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// A pool of `size` connections to `url`, checked by taking one.
pub async fn pool(url: &str, schema: &str, size: usize) -> anyhow::Result<Pool> {
    anyhow::ensure!(valid_schema(schema), "schema `{schema}`: use lowercase letters, digits and _");
    let config: tokio_postgres::Config = url.parse().with_context(|| format!("Postgres URL `{url}`"))?;
    let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    let pool = Pool::builder(manager).max_size(size.max(2)).build().context("building the Postgres pool")?;
    drop(pool.get().await.with_context(|| format!("connecting to Postgres at {url}"))?);
    Ok(pool)
}

/// The migrations of each variant, from migrations/<variant>/ (compiled in).
pub mod migrations {
    pub mod pg_sync {
        refinery::embed_migrations!("migrations/pg-sync");
    }
    pub mod outbox {
        refinery::embed_migrations!("migrations/outbox");
    }
    pub mod event_sourced {
        refinery::embed_migrations!("migrations/event-sourced");
    }
}

/// Creates `schema` if needed and brings it up to date with `runner`'s migrations. They
/// run with `search_path` set to the schema, so their statements and refinery's history
/// table land in it.
pub async fn migrate(pool: &Pool, schema: &str, runner: refinery::Runner) -> anyhow::Result<()> {
    anyhow::ensure!(valid_schema(schema), "schema `{schema}`: use lowercase letters, digits and _");
    let mut client = pool.get().await.context("a Postgres connection")?;
    client
        .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}; SET search_path TO {schema}"))
        .await
        .with_context(|| format!("creating schema {schema}"))?;
    let report = runner.run_async(&mut **client).await;
    // The connection goes back to the pool: every statement elsewhere names its schema anyway.
    client.batch_execute("RESET search_path").await.context("resetting search_path")?;
    let report = report.with_context(|| format!("migrating schema {schema}"))?;
    for migration in report.applied_migrations() {
        tracing::info!("schema {schema}: applied migration {migration}");
    }
    Ok(())
}

/// The `accounts` table pg-sync and outbox keep as their write model: what a command
/// reads and changes inside its transaction, beside what each variant writes with it.
pub struct Accounts {
    open: String,
    lock: String,
    update: String,
}

impl Accounts {
    pub fn new(schema: &str) -> Accounts {
        Accounts {
            open: format!(
                "INSERT INTO {schema}.accounts (id, balance, version) VALUES ($1, 0, 0) ON CONFLICT DO NOTHING"
            ),
            lock: format!("SELECT balance, version FROM {schema}.accounts WHERE id = $1 FOR UPDATE"),
            update: format!("UPDATE {schema}.accounts SET balance = $2, version = $3 WHERE id = $1"),
        }
    }

    /// A new account at version 0 (`Exists` if there is one).
    pub async fn open(&self, tx: &Transaction<'_>, account: &str) -> Result<(), Refusal> {
        match tx.execute(&self.open, &[&account]).await.map_err(unavailable)? {
            0 => Err(Refusal::Exists),
            _ => Ok(()),
        }
    }

    /// Locks the account's row, refuses an overdraft, and writes the new balance and
    /// version, which it returns. The lock holds until `tx` ends, so one account's
    /// commands (and what they write beside it) commit in version order.
    pub async fn change(&self, tx: &Transaction<'_>, account: &str, delta: i64) -> Result<(i64, i64), Refusal> {
        let row = tx.query_opt(&self.lock, &[&account]).await.map_err(unavailable)?.ok_or(Refusal::NotFound)?;
        let (balance, version): (i64, i64) = (row.get(0), row.get(1));
        if balance + delta < 0 {
            return Err(Refusal::InsufficientFunds);
        }
        let (balance, version) = (balance + delta, version + 1);
        tx.execute(&self.update, &[&account, &balance, &version]).await.map_err(unavailable)?;
        Ok((balance, version))
    }
}

/// A store failure, as the HTTP layer reports it (503).
pub fn unavailable(e: impl std::fmt::Display) -> Refusal {
    Refusal::Unavailable(format!("postgres: {e}"))
}

/// One account of `{schema}.account_views`.
pub async fn read_view(pool: &Pool, schema: &str, account: &str, slice: RefSlice) -> Result<Option<View>, Refusal> {
    let client = pool.get().await.map_err(unavailable)?;
    // Only the slice leaves the database (issue 18); `refs[lo:hi]` is 1-based, inclusive.
    let (last, start, len) = match slice {
        RefSlice::Last(n) => (true, 0, n),
        RefSlice::Range { start, len } => (false, start, len),
    };
    let int = |n: usize| n.min(i32::MAX as usize / 2) as i32;
    let offset = "(CASE WHEN $4 THEN greatest(coalesce(cardinality(refs), 0) - $3, 0) ELSE $2 END)";
    let sql = format!(
        "SELECT id, balance, version, coalesce(refs[{offset} + 1:{offset} + $3], '{{}}'), cardinality(refs) \
         FROM {schema}.account_views WHERE id = $1"
    );
    let row = client.query_opt(&sql, &[&account, &int(start), &int(len), &last]).await.map_err(unavailable)?;
    Ok(row.map(|row| {
        let refs: Vec<String> = row.get(3);
        let version = row.get::<_, i64>(2) as u64;
        View {
            id: row.get(0),
            balance: row.get(1),
            version,
            refs: refs.into_iter().map(Arc::from).collect(),
            refs_total: row.get::<_, Option<i32>>(4).unwrap_or(0).max(0) as u64,
            applied_through: version,
            last_event: None,
        }
    }))
}

/// The `limit` richest accounts of `{schema}.account_views`.
pub async fn read_top(pool: &Pool, schema: &str, limit: usize) -> Result<Vec<(String, i64, u64)>, Refusal> {
    let client = pool.get().await.map_err(unavailable)?;
    let rows = client
        .query(
            &format!("SELECT id, balance, version FROM {schema}.account_views ORDER BY balance DESC, id LIMIT $1"),
            &[&(limit as i64)],
        )
        .await
        .map_err(unavailable)?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get::<_, i64>(2) as u64)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names() {
        assert!(valid_schema("cqrs_bench_1"));
        assert!(!valid_schema("drop table; --"));
        assert!(!valid_schema("1abc"));
        assert!(!valid_schema(""));
    }
}
