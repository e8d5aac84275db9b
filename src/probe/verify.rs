//! Reading the read model back after the load (`[verify]`).
//!
//! - A verify query with `{{key}}` is read once per written key; one without (a global
//!   list, issue 12) once per sweep. With `page = { param = "page" }` either is read page
//!   by page until a page selects nothing (a key's pages: issue 18).
//! - From each answer: the applications at `applied_refs` (refs found in lists of values
//!   or of objects, inside strings too), classified against the ledger; and with `value`,
//!   the key's number, checked against the deltas or the write side (`probe::values`).
//! - A key that cannot be read is *unknown*, never missed (issue 16).
//!
//! When to read: the backlog may still be draining. Sweeps repeat until everything is
//! accounted for and a second sweep changes nothing, or until nothing has changed for
//! `max(1 s, settle/10)`, or until `settle` has passed; the last sweep counts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::ledger::Ledger;
use super::reconcile::{Applied, EventCounts, Reconciler, applied_in};
use super::values::{ValueCounts, expected_from_deltas};
use crate::operation::{Executor, Probe};
use crate::scenario::{ExpectedValue, Selector, VerifySpec};
use crate::target::{Reply, Target};

/// Reads at once during a sweep.
const SWEEP_CONCURRENCY: usize = 32;
/// Pause between sweeps.
const SWEEP_PAUSE: Duration = Duration::from_millis(200);
/// Pages of a global list read at most per sweep.
const MAX_PAGES: u64 = 100_000;

pub struct VerifyOutcome {
    /// Ref accounting (`applied_refs`).
    pub counts: Option<EventCounts>,
    /// Value accounting (`value`).
    pub values: Option<ValueCounts>,
    pub sweeps: u32,
    /// From the end of the load to the last sweep.
    pub settled_after: Duration,
    /// Stopped by a signal before the read model settled (issue 18).
    pub cut_short: bool,
}

/// One sweep's findings.
#[derive(Clone, PartialEq)]
struct Sweep {
    counts: Option<EventCounts>,
    values: Option<ValueCounts>,
}

impl Sweep {
    /// Everything acknowledged is visible, every number right, every key read.
    fn complete(&self) -> bool {
        self.counts.as_ref().is_none_or(|c| c.missed == 0 && c.complete())
            && self.values.as_ref().is_none_or(|v| v.mismatched == 0 && v.complete())
    }
}

/// Sweeps until the read model settles (see the module docs). `stop` (Ctrl-C, SIGTERM
/// after the load; issue 18) cuts it short: between sweeps, and during one, whose partial
/// reads are dropped; the last whole sweep counts (none: nothing was verified).
pub async fn reconcile<T: Target>(
    executor: Arc<Executor<T>>,
    spec: &VerifySpec,
    ledger: Arc<Ledger>,
    stop: &CancellationToken,
) -> VerifyOutcome {
    let began = Instant::now();
    let deadline = began + spec.settle;
    let quiet_needed = (spec.settle / 10).max(Duration::from_secs(1));
    let mut last: Option<(Sweep, Instant)> = None;
    let mut sweeps = 0;
    let cut_short = |last: Option<(Sweep, Instant)>, sweeps| {
        let found = last.map(|(found, _)| found);
        VerifyOutcome {
            counts: found.as_ref().and_then(|f| f.counts.clone()),
            values: found.and_then(|f| f.values),
            sweeps,
            settled_after: began.elapsed(),
            cut_short: true,
        }
    };
    loop {
        let found = tokio::select! {
            biased;
            _ = stop.cancelled() => return cut_short(last, sweeps),
            found = sweep(&executor, spec, &ledger) => found,
        };
        sweeps += 1;
        let now = Instant::now();
        let (unchanged_since, unchanged) = match &last {
            Some((previous, since)) if *previous == found => (*since, true),
            _ => (now, false),
        };
        if (found.complete() && unchanged) || now - unchanged_since >= quiet_needed || now >= deadline {
            return VerifyOutcome {
                counts: found.counts,
                values: found.values,
                sweeps,
                settled_after: began.elapsed(),
                cut_short: false,
            };
        }
        last = Some((found, unchanged_since));
        tokio::select! {
            biased;
            _ = stop.cancelled() => return cut_short(last, sweeps),
            _ = tokio::time::sleep(SWEEP_PAUSE.min(deadline.saturating_duration_since(now))) => {}
        }
    }
}

async fn sweep<T: Target>(executor: &Arc<Executor<T>>, spec: &VerifySpec, ledger: &Arc<Ledger>) -> Sweep {
    let mut reconciler = spec.applied_refs.as_ref().map(|_| Reconciler::new(ledger));
    if executor.is_keyless(spec.query) {
        if let Some(reconciler) = &mut reconciler {
            read_global_list(executor, spec, reconciler).await;
        }
        return Sweep { counts: reconciler.map(Reconciler::finish), values: None };
    }
    if let Some(reconciler) = &mut reconciler {
        // Keyless commands (a create whose id could not be captured) have no key to read.
        reconciler.add_unfindable(ledger.keyless);
    }
    let mut values = spec.values.as_ref().map(|_| ValueCounts::default());
    let slots = Arc::new(Semaphore::new(SWEEP_CONCURRENCY));
    let mut reads = JoinSet::new();
    let spec = Arc::new(spec.clone());
    let mut keys = ledger.keys.iter();
    loop {
        let next = keys.next();
        if let Some(key) = next {
            let permit = slots.clone().acquire_owned().await.expect("the semaphore is never closed");
            let (executor, spec, ledger) = (executor.clone(), spec.clone(), ledger.clone());
            reads.spawn(async move {
                let _permit = permit;
                read_key(&executor, &spec, &ledger, key).await
            });
        }
        // Classify what has arrived so far, so answers do not pile up.
        let done = if next.is_some() { reads.try_join_next() } else { reads.join_next().await };
        let Some(done) = done else {
            if next.is_none() {
                break;
            }
            continue;
        };
        let Ok(read) = done else { continue };
        if let Some(reconciler) = &mut reconciler {
            reconciler.add(Some(read.key), read.applied.as_deref());
        }
        if let (Some(values), Some((observed, expected))) = (&mut values, read.value) {
            values.add(executor.key_text(read.key), observed, expected);
        }
    }
    Sweep { counts: reconciler.map(Reconciler::finish), values }
}

/// What one key's read found.
struct KeyRead {
    key: u64,
    /// `None`: the read failed.
    applied: Option<Vec<Applied>>,
    /// (observed, expected) numbers, when value accounting is on.
    value: Option<(Option<f64>, Option<f64>)>,
}

async fn read_key<T: Target>(executor: &Executor<T>, spec: &VerifySpec, ledger: &Ledger, key: u64) -> KeyRead {
    let reply = match &spec.page {
        Some(paging) => executor.fetch_page(spec.query, key, &paging.param, paging.start).await,
        None => executor.fetch(Probe::Verify, spec.query, key, 0, None).await,
    };
    let answer = reply.ok().and_then(|reply| answer_of(&reply));
    let mut applied = spec.applied_refs.as_ref().and_then(|selector| {
        let json = answer.as_ref()?;
        let mut items = Vec::new();
        let selected = json.as_ref().is_some_and(|json| applied_on_page(executor, selector, json, &mut items));
        Some((items, selected))
    });
    // A paged key (issue 18: bounded answers): the next pages, until one selects nothing.
    // A page that cannot be read makes the whole key unreadable.
    if let (Some(paging), Some(selector), Some((items, true))) = (&spec.page, &spec.applied_refs, &mut applied) {
        for page in paging.start.saturating_add(1)..paging.start.saturating_add(MAX_PAGES) {
            let reply = executor.fetch_page(spec.query, key, &paging.param, page).await;
            let Some(json) = reply.ok().and_then(|r| answer_of(&r)) else {
                applied = None;
                break;
            };
            if !json.as_ref().is_some_and(|json| applied_on_page(executor, selector, json, items)) {
                break;
            }
        }
    }
    let applied = applied.map(|(items, _)| items);
    let value = match &spec.values {
        None => None,
        Some(values) => {
            let observed = answer.as_ref().and_then(|json| number_at(json.as_ref(), &values.read));
            let expected = match &values.expected {
                ExpectedValue::Deltas { initial, .. } => expected_from_deltas(ledger, key, *initial),
                ExpectedValue::WriteSide { query, read } => {
                    let write =
                        executor.fetch(Probe::Verify, *query, key, 0, None).await.ok().and_then(|r| answer_of(&r));
                    write.and_then(|json| number_at(json.as_ref(), read))
                }
            };
            Some((observed, expected))
        }
    };
    KeyRead { key, applied, value }
}

/// Adds the applications `selector` finds in one page of an answer; `false` when it
/// selects nothing (the last page).
fn applied_on_page<T>(executor: &Executor<T>, selector: &Selector, json: &Value, items: &mut Vec<Applied>) -> bool {
    let nodes = selector.select(json);
    for node in &nodes {
        applied_in(node, executor.run_id, executor.shard, items);
    }
    !nodes.is_empty()
}

/// A readable answer: `Some(json)` for a 2xx JSON body, `Some(None)` for a 404 (the
/// read model has never seen the key: nothing applied); `None` for anything else.
fn answer_of(reply: &Reply) -> Option<Option<Value>> {
    match reply.status {
        200..=299 => serde_json::from_slice(&reply.body).ok().map(Some),
        404 => Some(None),
        _ => None,
    }
}

/// The number at `selector` (a 404 reads as 0: the read model has nothing for the key).
fn number_at(json: Option<&Value>, selector: &Selector) -> Option<f64> {
    match json {
        None => Some(0.0),
        Some(json) => selector.select(json).first().and_then(|v| crate::scenario::selector::number(v)),
    }
}

/// A keyless verify query: one read, or every page until one selects nothing.
async fn read_global_list<T: Target>(executor: &Executor<T>, spec: &VerifySpec, reconciler: &mut Reconciler<'_>) {
    let selector = spec.applied_refs.as_ref().expect("only called with applied_refs");
    let pages = spec.page.as_ref().map_or(0..1, |p| p.start..p.start.saturating_add(MAX_PAGES));
    for page in pages {
        let reply = match &spec.page {
            Some(paging) => {
                executor.fetch_page(spec.query, crate::operation::created::NO_KEY, &paging.param, page).await
            }
            None => executor.fetch(Probe::Verify, spec.query, crate::operation::created::NO_KEY, 0, None).await,
        };
        let Some(json) = reply.ok().and_then(|r| answer_of(&r)) else {
            reconciler.add(None, None);
            return;
        };
        let mut items = Vec::new();
        let nodes = json.as_ref().map(|j| selector.select(j)).unwrap_or_default();
        let empty = nodes.is_empty();
        for node in nodes {
            applied_in(node, executor.run_id, executor.shard, &mut items);
        }
        reconciler.add(None, Some(&items));
        if empty || spec.page.is_none() {
            return;
        }
    }
}
