//! `pg-sync`: the bank on Postgres, with the read model updated in the same transaction
//! as the command's event. Projection lag is zero by construction; the harness's lag
//! probe must show it.
//!
//! Tables live in a schema of their own (`--schema`), migrated at start, so runs and tests
//! do not see each other's data: `accounts` (write model), `events` (one row per change,
//! unique per account and version), `account_views` (read model, with the applied refs).

use std::sync::{Arc, Mutex};

use deadpool_postgres::Pool;

use super::postgres::{self, Accounts, unavailable};
use cqrs_bench::reference::bank::{Bank, Changed, GroundTruth, RefSlice, Refusal, View};

#[derive(Clone)]
pub struct PgSyncApp {
    pool: Pool,
    schema: Arc<str>,
    sql: Arc<Sql>,
    truth: Arc<Mutex<GroundTruth>>,
}

/// Statements with the schema filled in.
struct Sql {
    accounts: Accounts,
    open_view: String,
    open_event: String,
    insert_event: String,
    update_view: String,
}

impl PgSyncApp {
    /// Connects a pool of `pool_size` to `url` and migrates the schema.
    pub async fn connect(url: &str, schema: &str, pool_size: usize) -> anyhow::Result<PgSyncApp> {
        let pool = postgres::pool(url, schema, pool_size).await?;
        postgres::migrate(&pool, schema, postgres::migrations::pg_sync::migrations::runner()).await?;
        let sql = Sql {
            accounts: Accounts::new(schema),
            open_view: format!("INSERT INTO {schema}.account_views (id, balance, version) VALUES ($1, 0, 0)"),
            open_event: format!("INSERT INTO {schema}.events (account, version, delta) VALUES ($1, 0, 0)"),
            insert_event: format!("INSERT INTO {schema}.events (account, version, delta, ref) VALUES ($1, $2, $3, $4)"),
            update_view: format!(
                "UPDATE {schema}.account_views SET balance = $2, version = $3, refs = array_append(refs, $4) WHERE id = $1"
            ),
        };
        Ok(PgSyncApp { pool, schema: schema.into(), sql: Arc::new(sql), truth: Arc::default() })
    }

    /// The HTTP endpoints.
    pub fn router(&self) -> axum::Router {
        cqrs_bench::reference::http::router(self.clone())
    }
}

impl Bank for PgSyncApp {
    async fn open(&self, account: &str) -> Result<u64, Refusal> {
        let mut client = self.pool.get().await.map_err(unavailable)?;
        let tx = client.transaction().await.map_err(unavailable)?;
        self.sql.accounts.open(&tx, account).await?;
        tx.execute(&self.sql.open_event, &[&account]).await.map_err(unavailable)?;
        tx.execute(&self.sql.open_view, &[&account]).await.map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(0)
    }

    async fn change(&self, account: &str, delta: i64, op_ref: &str) -> Result<Changed, Refusal> {
        let mut client = self.pool.get().await.map_err(unavailable)?;
        let tx = client.transaction().await.map_err(unavailable)?;
        let (balance, version) = self.sql.accounts.change(&tx, account, delta).await?;
        // The event and the read model commit together: visible the moment the command is acknowledged.
        tx.execute(&self.sql.insert_event, &[&account, &version, &delta, &op_ref]).await.map_err(unavailable)?;
        tx.execute(&self.sql.update_view, &[&account, &balance, &version, &op_ref]).await.map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        self.truth.lock().unwrap_or_else(|e| e.into_inner()).accepted += 1;
        Ok(Changed { version: version as u64, balance, answer_after: None })
    }

    async fn view(&self, account: &str, refs: RefSlice) -> Result<Option<View>, Refusal> {
        postgres::read_view(&self.pool, &self.schema, account, refs).await
    }

    async fn top(&self, limit: usize) -> Result<Vec<(String, i64, u64)>, Refusal> {
        postgres::read_top(&self.pool, &self.schema, limit).await
    }

    fn ground_truth(&self) -> GroundTruth {
        self.truth.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
