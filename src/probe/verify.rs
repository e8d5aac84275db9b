//! Reading the read model back after the load (`[verify]`): every written key is read
//! with the verify query, its applied refs taken from the `applied_refs` pointer, and
//! the lot classified against the ledger.
//!
//! When to read: the backlog may still be draining. Sweeps repeat until every
//! acknowledged ref is visible and a second sweep changes nothing, or until nothing has
//! changed for `max(1 s, settle/10)`, or until `settle` has passed; the last sweep counts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::ledger::Ledger;
use super::reconcile::{EventCounts, Reconciler};
use crate::generator::executor::Executor;
use crate::scenario::VerifySpec;
use crate::target::Target;

/// Reads at once during a sweep.
const SWEEP_CONCURRENCY: usize = 32;
/// Pause between sweeps.
const SWEEP_PAUSE: Duration = Duration::from_millis(200);

pub struct VerifyOutcome {
    pub counts: EventCounts,
    pub sweeps: u32,
    /// From the end of the load to the last sweep.
    pub settled_after: Duration,
}

pub async fn reconcile<T: Target>(executor: Arc<Executor<T>>, spec: &VerifySpec, ledger: Arc<Ledger>) -> VerifyOutcome {
    let began = Instant::now();
    let deadline = began + spec.settle;
    let quiet_needed = (spec.settle / 10).max(Duration::from_secs(1));
    let mut last: Option<(EventCounts, Instant)> = None;
    let mut sweeps = 0;
    loop {
        let counts = sweep(&executor, spec, &ledger).await;
        sweeps += 1;
        let now = Instant::now();
        let (unchanged_since, unchanged) = match &last {
            Some((previous, since)) if same_applications(previous, &counts) => (*since, true),
            _ => (now, false),
        };
        let complete = counts.missed == 0 && counts.read_errors == 0;
        if (complete && unchanged) || now - unchanged_since >= quiet_needed || now >= deadline {
            return VerifyOutcome { counts, sweeps, settled_after: began.elapsed() };
        }
        last = Some((counts, unchanged_since));
        tokio::time::sleep(SWEEP_PAUSE.min(deadline.saturating_duration_since(now))).await;
    }
}

/// Same refs applied as often: nothing moved between two sweeps.
fn same_applications(a: &EventCounts, b: &EventCounts) -> bool {
    (a.missed, a.duplicates, a.unexpected, a.recovered, a.foreign)
        == (b.missed, b.duplicates, b.unexpected, b.recovered, b.foreign)
}

async fn sweep<T: Target>(executor: &Arc<Executor<T>>, spec: &VerifySpec, ledger: &Arc<Ledger>) -> EventCounts {
    let slots = Arc::new(Semaphore::new(SWEEP_CONCURRENCY));
    let mut reads = JoinSet::new();
    let mut reconciler = Reconciler::new(ledger, executor.run_id, executor.shard);
    for key in ledger.keys.iter() {
        let permit = slots.clone().acquire_owned().await.expect("the semaphore is never closed");
        let (executor, query, pointer) = (executor.clone(), spec.query, spec.applied_refs.clone());
        reads.spawn(async move {
            let _permit = permit;
            let reply = executor.fetch(query, key, 0, None).await.ok()?;
            match reply.status {
                200..=299 => applied_refs(&reply.body, &pointer),
                // The read model has never seen the key: nothing applied.
                404 => Some(Vec::new()),
                _ => None,
            }
        });
        // Classify what has arrived so far, so answers do not pile up.
        while let Some(done) = reads.try_join_next() {
            reconciler.add_key(done.ok().flatten().as_deref());
        }
    }
    while let Some(done) = reads.join_next().await {
        reconciler.add_key(done.ok().flatten().as_deref());
    }
    reconciler.finish()
}

/// The refs at `pointer` (strings, or numbers as text); `None` when the answer has no such list.
/// A 404 body or an empty list means nothing applied for the key.
fn applied_refs(body: &[u8], pointer: &str) -> Option<Vec<String>> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    match json.pointer(pointer) {
        Some(serde_json::Value::Array(items)) => Some(
            items
                .iter()
                .map(|item| match item {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
        ),
        _ => None,
    }
}
