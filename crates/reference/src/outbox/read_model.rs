//! The outbox variant's read model in Redis, under the key prefix `{schema}:`:
//! `acct:{id}` a hash (balance, version, and the last applied event's `last_ref`,
//! `received_at`, `applied_at`), `refs:{id}` the applied refs in order, `top` a sorted set
//! of balances, `ahead:{id}` the versions applied ahead of `version` (out of order).

use std::sync::Arc;

use anyhow::Context as _;
use redis::AsyncCommands as _;
use redis::aio::ConnectionManager;

use super::bus::OutboxEvent;
use cqrs_bench::reference::bank::{EventTimes, RefSlice, Refusal, View};

/// Applies one event atomically. Returns 1 when applied, 0 when skipped as already
/// applied (idempotent), 2 when applied although the account already had its version
/// (a duplicate application by a non-idempotent projector).
///
/// Events may come out of order (a Redis stream's group hands one account's events to
/// any consumer): `version` is the highest version applied with every earlier one, and
/// `ahead:{id}` (a set) holds the versions applied beyond it. In order (Kafka, one
/// partition per account) the set stays empty. The balance adds every applied delta.
const APPLY: &str = r"
local stored = tonumber(redis.call('HGET', KEYS[1], 'version') or '-1')
local version = tonumber(ARGV[2])
local seen = version <= stored or redis.call('SISMEMBER', KEYS[4], ARGV[2]) == 1
if seen and ARGV[5] == '1' then return 0 end
local balance = redis.call('HINCRBY', KEYS[1], 'balance', ARGV[3])
if not seen then
  if version == stored + 1 then
    while redis.call('SREM', KEYS[4], tostring(version + 1)) == 1 do version = version + 1 end
    redis.call('HSET', KEYS[1], 'version', version)
  else
    redis.call('SADD', KEYS[4], ARGV[2])
  end
end
redis.call('HSET', KEYS[1], 'last_ref', ARGV[4], 'received_at', ARGV[6], 'applied_at', ARGV[7])
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

    /// Applies `event`, taken off the bus at `received_at` (ms since the epoch); the
    /// application time is taken here.
    pub async fn apply(&self, event: &OutboxEvent, idempotent: bool, received_at: f64) -> redis::RedisResult<Applied> {
        let outcome: i64 = self
            .apply
            .key(self.key("acct", &event.account))
            .key(self.key("refs", &event.account))
            .key(format!("{}top", self.prefix))
            .key(self.key("ahead", &event.account))
            .arg(&event.account)
            .arg(event.version)
            .arg(event.delta)
            .arg(event.op_ref.as_deref().unwrap_or(""))
            .arg(if idempotent { "1" } else { "0" })
            .arg(received_at)
            .arg(cqrs_bench::reference::bank::now_ms())
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
        type Fields = (Option<i64>, Option<u64>, Option<String>, Option<f64>, Option<f64>);
        let ((balance, version, last_ref, received_at, applied_at), refs, total): (Fields, Vec<String>, u64) =
            redis::pipe()
                .hmget(self.key("acct", account), &["balance", "version", "last_ref", "received_at", "applied_at"])
                .lrange(self.key("refs", account), first, last)
                .llen(self.key("refs", account))
                .query_async(&mut redis)
                .await
                .map_err(unavailable)?;
        let last_event = received_at.zip(applied_at).map(|(received_at, applied_at)| EventTimes {
            op_ref: last_ref.filter(|r| !r.is_empty()).map(Arc::from),
            received_at,
            applied_at,
        });
        Ok(balance.zip(version).map(|(balance, version)| View {
            id: account.to_owned(),
            balance,
            version,
            refs: refs.into_iter().map(Arc::from).collect(),
            refs_total: total,
            // Every version up to `version` is applied (the rest wait in `ahead:{id}`).
            applied_through: version,
            last_event,
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
