//! `validate --target --write-one` (issue 31, item 6): one create, sent as the run
//! would send it, so the queries on created keys can be read with an id the target
//! made. Its id comes from the create's answer (`creates_key`), or is found by reading
//! (`resolve`) through the run's own resolver. Opt-in: it writes to the target.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use crate::operation::created::{CREATED_BASE, CreatedKeys, NO_KEY};
use crate::operation::{Executor, Outcome, PreparedOp, captures};
use crate::scenario::Scenario;
use crate::target::Target;

use super::resolve::IdResolver;

/// The one create and the id it made.
#[derive(Debug)]
pub struct WrittenOne {
    /// What was done, in one line (`sent create_task (201); its id 65a… resolved by reading list_tasks in 35 ms`).
    pub note: String,
    /// The id, or why there is none.
    pub id: Result<String, String>,
}

/// Sends the scenario's first create (`creates_key`) once and finds the id it made;
/// `None` when no operation creates keys.
pub async fn write_one<T: Target>(scenario: &Scenario, target: Arc<T>) -> anyhow::Result<Option<WrittenOne>> {
    let Some(op) = scenario.operations.iter().position(|o| o.creates_key.is_some()) else {
        return Ok(None);
    };
    let spec = &scenario.operations[op];
    let ops = scenario
        .operations
        .iter()
        .map(|o| PreparedOp::for_operation(o, &scenario.target.headers))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let executor = Arc::new(Executor {
        target,
        ops,
        key_prefix: scenario.mix.keys.prefix.clone(),
        run_id: rand::random(),
        shard: 0,
        seed: scenario.seed,
        timeout: scenario.target.timeout,
        captures: Some(Arc::new(captures::CaptureStore::new())),
        created: Arc::new(CreatedKeys::default()),
        next_seq: AtomicU64::new(1),
        flights: None,
    });
    // A keyless create (the server makes the id) has no key; one under a `[mix]` key gets the first.
    let key = if spec.is_keyless() { NO_KEY } else { 0 };
    let seq = executor.next_seq();
    let executed = executor.execute(op, key, seq).await;
    let sent = format!("sent one `{}` (ref {})", spec.name, executor.ref_text(seq));
    let answer = match executed.outcome {
        Outcome::Ok => "answered as expected".to_owned(),
        Outcome::Status(status) => format!("answered {status}, not an expected status"),
        Outcome::Rejected | Outcome::Conflict => "was refused".to_owned(),
        Outcome::Failed(failure) => format!("got no answer ({})", failure.as_str()),
    };
    if executed.outcome != Outcome::Ok {
        let why = format!("the one `{}` sent by --write-one {answer}", spec.name);
        return Ok(Some(WrittenOne { note: format!("{sent}: it {answer}"), id: Err(why) }));
    }
    if let Some(id) = executor.created.get(CREATED_BASE) {
        return Ok(Some(WrittenOne { note: format!("{sent}; its id `{id}` came in its answer"), id: Ok(id) }));
    }
    let Some(resolve) = &spec.resolve else {
        let why =
            format!("the one `{}` sent by --write-one answered no id (no `resolve` to find it by reading)", spec.name);
        return Ok(Some(WrittenOne { note: format!("{sent}: its answer had no id"), id: Err(why) }));
    };
    let resolver = Arc::new(IdResolver::new(executor.clone(), &scenario.operations).expect("the create resolves"));
    resolver.after(op, seq, &executed);
    resolver.tracker.close();
    // The resolver gives up at its timeout; the extra second is for its last poll.
    let _ = tokio::time::timeout(resolve.timeout + Duration::from_secs(1), resolver.tracker.wait()).await;
    resolver.abort.cancel();
    resolver.tracker.wait().await;
    let query = executor.op_name(resolve.query).to_owned();
    let stats = resolver.stats();
    let lag = stats.values().next().and_then(|s| s.lag_ms.as_ref()).map(|p| p.max);
    Ok(Some(match (executor.created.get(CREATED_BASE), lag) {
        (Some(id), Some(ms)) => WrittenOne {
            note: format!("{sent}; its id `{id}` was found by reading `{query}` {ms:.0} ms after the answer"),
            id: Ok(id),
        },
        (Some(id), None) => {
            WrittenOne { note: format!("{sent}; its id `{id}` was found by reading `{query}`"), id: Ok(id) }
        }
        (None, _) => {
            let why = format!(
                "the id of the one `{}` sent by --write-one was not found by reading `{query}` within {} ms",
                spec.name,
                resolve.timeout.as_millis()
            );
            WrittenOne { note: format!("{sent}: {why}"), id: Err(why) }
        }
    }))
}
