//! What the Postgres variants share: the connection pool, schema names, migrations, and
//! reading the read model (`account_views`: id, balance, version, refs), which pg-sync and
//! event-sourced keep alike.

use std::sync::Arc;

use anyhow::Context as _;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use super::bank::{Refusal, View};

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

/// A store failure, as the HTTP layer reports it (503).
pub fn unavailable(e: impl std::fmt::Display) -> Refusal {
    Refusal::Unavailable(format!("postgres: {e}"))
}

/// One account of `{schema}.account_views`.
pub async fn read_view(pool: &Pool, schema: &str, account: &str) -> Result<Option<View>, Refusal> {
    let client = pool.get().await.map_err(unavailable)?;
    let row = client
        .query_opt(&format!("SELECT id, balance, version, refs FROM {schema}.account_views WHERE id = $1"), &[&account])
        .await
        .map_err(unavailable)?;
    Ok(row.map(|row| {
        let refs: Vec<String> = row.get(3);
        View {
            id: row.get(0),
            balance: row.get(1),
            version: row.get::<_, i64>(2) as u64,
            refs: refs.into_iter().map(Arc::from).collect(),
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
