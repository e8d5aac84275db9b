//! The outbox variant's read model in Redis, under the key prefix `{schema}:`:
//! `acct:{id}` a hash (balance, version), `refs:{id}` the applied refs in order,
//! `top` a sorted set of balances.

use std::sync::Arc;

use anyhow::Context as _;
use redis::AsyncCommands as _;
use redis::aio::ConnectionManager;

use super::bus::OutboxEvent;
use crate::reference::bank::{RefSlice, Refusal, View};

/// Applies one event atomically. Returns 1 when applied, 0 when skipped as already
/// applied (idempotent), 2 when applied although the account already had its version
/// (a duplicate application by a non-idempotent projector).
const APPLY: &str = r"
local stored = tonumber(redis.call('HGET', KEYS[1], 'version') or '-1')
local seen = tonumber(ARGV[2]) <= stored
if seen and ARGV[5] == '1' then return 0 end
local balance = redis.call('HINCRBY', KEYS[1], 'balance', ARGV[3])
if not seen then redis.call('HSET', KEYS[1], 'version', ARGV[2]) end
if ARGV[4] ~= '' then redis.call('RPUSH', KEYS[2], ARGV[4]) end
redis.call('ZADD', KEYS[3], balance, ARGV[1])
if seen then return 2 end
return 1
";

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Once,
    SkippedAsSeen,
    Again,
}

#[derive(Clone)]
pub struct ReadModel {
    redis: ConnectionManager,
    prefix: Arc<str>,
    apply: Arc<redis::Script>,
}

fn unavailable(e: redis::RedisError) -> Refusal {
    Refusal::Unavailable(format!("redis: {e}"))
}

impl ReadModel {
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<ReadModel> {
        let client = redis::Client::open(url).with_context(|| format!("Redis URL `{url}`"))?;
        let redis = ConnectionManager::new(client).await.with_context(|| format!("connecting to Redis at {url}"))?;
        Ok(ReadModel { redis, prefix: format!("{prefix}:").into(), apply: Arc::new(redis::Script::new(APPLY)) })
    }

    fn key(&self, kind: &str, account: &str) -> String {
        format!("{}{kind}:{account}", self.prefix)
    }

    pub async fn apply(&self, event: &OutboxEvent, idempotent: bool) -> redis::RedisResult<Applied> {
        let outcome: i64 = self
            .apply
            .key(self.key("acct", &event.account))
            .key(self.key("refs", &event.account))
            .key(format!("{}top", self.prefix))
            .arg(&event.account)
            .arg(event.version)
            .arg(event.delta)
            .arg(event.op_ref.as_deref().unwrap_or(""))
            .arg(if idempotent { "1" } else { "0" })
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(match outcome {
            0 => Applied::SkippedAsSeen,
            2 => Applied::Again,
            _ => Applied::Once,
        })
    }

    /// One account with `slice` of its refs: only that slice leaves Redis (issue 18).
    pub async fn view(&self, account: &str, slice: RefSlice) -> Result<Option<View>, Refusal> {
        let mut redis = self.redis.clone();
        // LRANGE takes inclusive indices; negative ones count from the end.
        let (first, last) = match slice {
            RefSlice::Last(0) | RefSlice::Range { len: 0, .. } => (1, 0),
            RefSlice::Last(n) => (-(n.min(isize::MAX as usize) as isize), -1),
            RefSlice::Range { start, len } => {
                let start = start.min(isize::MAX as usize / 2) as isize;
                (start, start + len.min(isize::MAX as usize / 2) as isize - 1)
            }
        };
        let (balance, version, refs, total): (Option<i64>, Option<u64>, Vec<String>, u64) = redis::pipe()
            .hget(self.key("acct", account), "balance")
            .hget(self.key("acct", account), "version")
            .lrange(self.key("refs", account), first, last)
            .llen(self.key("refs", account))
            .query_async(&mut redis)
            .await
            .map_err(unavailable)?;
        Ok(balance.zip(version).map(|(balance, version)| View {
            id: account.to_owned(),
            balance,
            version,
            refs: refs.into_iter().map(Arc::from).collect(),
            refs_total: total,
        }))
    }

    pub async fn top(&self, limit: usize) -> Result<Vec<(String, i64, u64)>, Refusal> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut redis = self.redis.clone();
        let top: Vec<(String, i64)> = redis
            .zrevrange_withscores(format!("{}top", self.prefix), 0, limit as isize - 1)
            .await
            .map_err(unavailable)?;
        let mut versions = redis::pipe();
        for (id, _) in &top {
            versions.hget(self.key("acct", id), "version");
        }
        let versions: Vec<Option<u64>> = versions.query_async(&mut redis).await.map_err(unavailable)?;
        Ok(top.into_iter().zip(versions).map(|((id, balance), version)| (id, balance, version.unwrap_or(0))).collect())
    }
}
