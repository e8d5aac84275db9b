//! Reading the read model back after the load (`[verify]`).
//!
//! - A verify query with `{{key}}` is read once per written key; one without (a global
//!   list, issue 12) once per sweep. With `page = { param = "page" }` either is read page
//!   by page until a page selects nothing (a key's pages: issue 18), or until paging must
//!   stop (`probe::paging`: a repeated page, `settle`, the page cap), which leaves the key
//!   unknown with the reason (issue 32).
//! - From each answer: the applications at `applied_refs` (refs found in lists of values
//!   or of objects, inside strings too), classified against the ledger; and with `value`,
//!   the key's number, checked against the deltas or the write side (`probe::values`).
//! - With `count`, each key's count query (read once, never paged): per counted command,
//!   the rows it selects against the acknowledged commands (`probe::counts`).
//! - A key that cannot be read is *unknown*, never missed (issue 16).
//!
//! When to read (issue 30): the backlog may still be draining, and a projector may run
//! every few seconds. A ref not visible is called **missed** only when a rule says it
//! will not come: the read model shows a ref acknowledged after it on its key (a global
//! list: the run's last acknowledged ref), so a projector that keeps order has passed it;
//! or it has stayed invisible for longer than the projector ever took (twice the longest
//! lag `[projection]` measured, at least that + 1 s, when no probe was late). Else it is
//! **pending**. Sweeps repeat until everything is accounted for and a second sweep
//! changes nothing, or nothing has changed for `max(1 s, settle/10)` and nothing is
//! pending (no wrong number unless the time rule holds), or until `settle` has passed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::counts::{RowCounts, kinds_of};
use super::ledger::Ledger;
use super::paging::{MAX_PAGES, PageGuard, PageStop, PageStops};
use super::reconcile::{Applied, EventCounts, ExampleRef, Reconciler, applied_in};
use super::values::{Observed, ValueCounts, expected_from_deltas, has_acked};
use crate::operation::{Executor, Probe};
use crate::scenario::{AbsentRows, CountSpec, ExpectedValue, Selector, VerifySpec};
use crate::target::{Reply, Target};

/// Reads at once during a sweep.
const SWEEP_CONCURRENCY: usize = 32;
/// Pause between sweeps.
const SWEEP_PAUSE: Duration = Duration::from_millis(200);
/// Matched lag probes needed before their longest lag bounds the projector's.
const MIN_PROBES_FOR_BOUND: u64 = 20;

pub struct VerifyOutcome {
    /// Ref accounting (`applied_refs`).
    pub counts: Option<EventCounts>,
    /// Value accounting (`value`).
    pub values: Option<ValueCounts>,
    /// Count accounting (`count`): rows per command kind.
    pub rows: Option<RowCounts>,
    pub sweeps: u32,
    /// From the end of the load to the last sweep.
    pub settled_after: Duration,
    /// Stopped by a signal before the read model settled (issue 18).
    pub cut_short: bool,
    /// Why the sweeps stopped.
    pub stopped: Stopped,
    /// The time rule's bound, when the lag probes gave one.
    pub lag_bound: Option<Duration>,
    /// The refs not visible were judged by the time rule.
    pub judged_by_time: bool,
}

/// Why verification stopped (result.json `verify.stopped`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stopped {
    /// Everything visible, every number and count right, and a second sweep changed nothing.
    Complete,
    /// Nothing changed for the quiet time and everything not visible is judged.
    Judged,
    /// `settle` passed: what is still pending stays pending.
    Settle,
    /// Ctrl-C or SIGTERM.
    Signal,
}

impl VerifyOutcome {
    /// Why and when the sweeps stopped, with what was left (the summary's line).
    pub fn stopped_because(&self) -> String {
        let after = format!("after {:.1} s, {} sweeps", self.settled_after.as_secs_f64(), self.sweeps);
        let left = self.left();
        let (what, left) = match self.stopped {
            Stopped::Complete => {
                ("complete", "every acknowledged ref visible, every number and count right".to_owned())
            }
            Stopped::Judged => ("judged", format!("nothing changed, nothing pending{}", with(&left, "; "))),
            Stopped::Settle => ("settle passed", left),
            Stopped::Signal => ("interrupted by a signal", left),
        };
        format!("{what} {after}{}", with(&left, ": "))
    }

    /// What was not right when the sweeps stopped, and by which rule refs were missed.
    fn left(&self) -> String {
        let mut left = Vec::new();
        if let Some(c) = &self.counts {
            let why_missed = match self.lag_bound {
                Some(bound) if self.judged_by_time => {
                    format!(" (not visible after {:.0} ms, twice the longest lag probed)", bound.as_secs_f64() * 1e3)
                }
                _ => " (a ref acknowledged after each on its key is visible)".to_owned(),
            };
            let refs = [(c.missed, "refs missed", why_missed), (c.pending, "refs pending", String::new())];
            left.extend(refs.into_iter().filter(|(n, ..)| *n > 0).map(|(n, what, why)| format!("{n} {what}{why}")));
            if c.unknown > 0 {
                let why = if c.unknown_because.is_empty() {
                    String::new()
                } else {
                    format!(" (could not verify: {})", c.unknown_because.join("; "))
                };
                left.push(format!("{} refs unknown{why}", c.unknown));
            }
        }
        if let Some(v) = &self.values {
            let keys = [
                (v.mismatched, "numbers wrong"),
                (v.absent, "keys absent"),
                (v.unsure, "keys unsure"),
                (v.unreadable, "keys unreadable"),
            ];
            left.extend(keys.into_iter().filter(|(n, _)| *n > 0).map(|(n, what)| format!("{n} {what}")));
        }
        if let Some(r) = &self.rows {
            let keys = [
                (r.mismatched_keys, "keys with wrong row counts"),
                (r.unsure, "keys with unsure row counts"),
                (r.unreadable, "keys' rows unreadable"),
            ];
            left.extend(keys.into_iter().filter(|(n, _)| *n > 0).map(|(n, what)| format!("{n} {what}")));
        }
        left.join(", ")
    }
}

/// `text` after `separator`, or nothing when it is empty.
fn with(text: &str, separator: &str) -> String {
    if text.is_empty() { String::new() } else { format!("{separator}{text}") }
}

/// What the lag probes tell of the projector (the time rule; see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct LagEvidence {
    /// The longest lag a probe saw, raised by the late probes whose refs showed up since.
    longest: Duration,
    /// Late probes whose refs have not shown up: (ref, acknowledged). Never applied, as far
    /// as anyone can tell, which the time rule allows (a lost event).
    late: Vec<(u64, Instant)>,
}

impl LagEvidence {
    /// From the lag probes' figures: none when too few probes saw their command, or when
    /// more probes were late than their refs kept.
    pub fn of(figures: &crate::probe::lag_figures::LagFigures) -> Option<LagEvidence> {
        let saw = figures.probes - figures.late;
        (saw >= MIN_PROBES_FOR_BOUND && figures.late_probes.len() as u64 == figures.late)
            .then(|| LagEvidence { longest: figures.longest_seen, late: figures.late_probes.clone() })
    }

    /// Twice the longest lag known, at least that + 1 s.
    pub fn bound(&self) -> Duration {
        (self.longest * 2).max(self.longest + Duration::from_secs(1))
    }

    /// Late probes whose refs a sweep ending `now` found: each took at most `now − ack`,
    /// which the projector's longest lag must then cover.
    fn saw_late(&mut self, saw: impl Fn(u64) -> bool, now: Instant) {
        let mut longest = self.longest;
        self.late.retain(|&(seq, acked)| {
            let shown = saw(seq);
            if shown {
                longest = longest.max(now.saturating_duration_since(acked));
            }
            !shown
        });
        self.longest = longest;
    }
}

/// One sweep's findings.
#[derive(Clone)]
struct Sweep {
    counts: Option<EventCounts>,
    examples: Vec<ExampleRef>,
    values: Option<ValueCounts>,
    rows: Option<RowCounts>,
    /// The time rule held: what is not visible or not right will not change.
    time_rule: bool,
    /// Its bound at this sweep.
    lag_bound: Option<Duration>,
}

/// The paging param, for the reasons a key could not be verified.
fn page_param(spec: &VerifySpec) -> &str {
    spec.page.as_ref().map_or("page", |p| p.param.as_str())
}

impl Sweep {
    fn same_as(&self, other: &Sweep) -> bool {
        self.counts == other.counts && self.values == other.values && self.rows == other.rows
    }

    /// Everything acknowledged is visible, every number and row count right, every key read.
    fn complete(&self) -> bool {
        self.counts.as_ref().is_none_or(|c| c.missed == 0 && c.pending == 0 && c.complete())
            && self.values.as_ref().is_none_or(|v| v.wrong() == 0 && v.complete())
            && self.rows.as_ref().is_none_or(|r| r.wrong() == 0 && r.complete())
    }

    /// Nothing is left that more time could change: no ref pending, and no wrong number
    /// or count unless the projector has had longer than it ever took (the time rule).
    fn judged(&self) -> bool {
        self.counts.as_ref().is_none_or(|c| c.pending == 0)
            && (self.time_rule
                || (self.values.as_ref().is_none_or(|v| v.wrong() == 0)
                    && self.rows.as_ref().is_none_or(|r| r.wrong() == 0)))
    }
}

/// Sweeps until the read model settles (see the module docs). `stop` (Ctrl-C, SIGTERM
/// after the load; issue 18) cuts it short: between sweeps, and during one, whose partial
/// reads are dropped; the last whole sweep counts (none: nothing was verified).
pub async fn reconcile<T: Target>(
    executor: Arc<Executor<T>>,
    spec: &VerifySpec,
    ledger: Arc<Ledger>,
    mut evidence: Option<LagEvidence>,
    stop: &CancellationToken,
) -> VerifyOutcome {
    let began = Instant::now();
    let deadline = began + spec.settle;
    // Paging stops at `settle` (issue 32), though never before 1 s: a `settle` of 0 still
    // reads a short list whole.
    let paging_deadline = began + spec.settle.max(Duration::from_secs(1));
    let quiet_needed = (spec.settle / 10).max(Duration::from_secs(1));
    let mut last: Option<(Sweep, Instant)> = None;
    let mut sweeps = 0;
    let outcome = |found: Option<Sweep>, sweeps, stopped| {
        let judged_by_time = found.as_ref().is_some_and(|f| f.time_rule);
        let lag_bound = found.as_ref().and_then(|f| f.lag_bound);
        let (counts, values, rows) = match found {
            Some(found) => (
                found.counts.map(|counts| with_examples(counts, &found.examples, &executor, &ledger)),
                found.values,
                found.rows,
            ),
            None => (None, None, None),
        };
        VerifyOutcome {
            counts,
            values,
            rows,
            sweeps,
            settled_after: began.elapsed(),
            cut_short: stopped == Stopped::Signal,
            stopped,
            lag_bound,
            judged_by_time,
        }
    };
    loop {
        let found = tokio::select! {
            biased;
            _ = stop.cancelled() => return outcome(last.map(|(found, _)| found), sweeps, Stopped::Signal),
            found = sweep(&executor, spec, &ledger, evidence.as_mut(), began, paging_deadline) => found,
        };
        sweeps += 1;
        let now = Instant::now();
        let (unchanged_since, unchanged) = match &last {
            Some((previous, since)) if previous.same_as(&found) => (*since, true),
            _ => (now, false),
        };
        let stopped = if found.complete() && unchanged {
            Some(Stopped::Complete)
        } else if now - unchanged_since >= quiet_needed && found.judged() {
            Some(Stopped::Judged)
        } else if now >= deadline {
            Some(Stopped::Settle)
        } else {
            None
        };
        if let Some(stopped) = stopped {
            return outcome(Some(found), sweeps, stopped);
        }
        last = Some((found, unchanged_since));
        tokio::select! {
            biased;
            _ = stop.cancelled() => return outcome(last.map(|(found, _)| found), sweeps, Stopped::Signal),
            _ = tokio::time::sleep(SWEEP_PAUSE.min(deadline.saturating_duration_since(now))) => {}
        }
    }
}

/// The counts with their examples named: ref, key, operation, when it was answered.
fn with_examples<T: Target>(
    mut counts: EventCounts,
    examples: &[ExampleRef],
    executor: &Executor<T>,
    ledger: &Ledger,
) -> EventCounts {
    counts.examples = examples
        .iter()
        .map(|example| {
            let op_ref = crate::refs::OpRef { run_id: executor.run_id, shard: executor.shard, seq: example.seq };
            example.describe(
                ledger,
                op_ref.to_string(),
                |key| executor.key_text(key),
                |op| executor.op_name(op).to_owned(),
            )
        })
        .collect();
    counts
}

/// One sweep over the read model. `evidence`: the lag probes' (the time rule, see the
/// module docs), which the late probes' refs found by this sweep update; every command
/// was answered before `began`.
async fn sweep<T: Target>(
    executor: &Arc<Executor<T>>,
    spec: &VerifySpec,
    ledger: &Arc<Ledger>,
    mut evidence: Option<&mut LagEvidence>,
    began: Instant,
    deadline: Instant,
) -> Sweep {
    let mut reconciler = spec.applied_refs.as_ref().map(|_| Reconciler::new(ledger));
    let mut page_stops = PageStops::default();
    let mut finish = |reconciler: Option<Reconciler>, values, rows, page_stops: PageStops| {
        if let (Some(evidence), Some(reconciler)) = (evidence.as_deref_mut(), &reconciler) {
            evidence.saw_late(|seq| reconciler.saw(seq), Instant::now());
        }
        let lag_bound = evidence.as_deref().map(LagEvidence::bound);
        // Numbers alone: no ref tells a late event from a lost one, so none may be late.
        let time_rule = evidence
            .as_deref()
            .is_some_and(|e| began.elapsed() >= e.bound() && (reconciler.is_some() || e.late.is_empty()));
        let (mut counts, examples) = reconciler.map(|r| r.finish(time_rule)).unzip();
        if let Some(counts) = &mut counts {
            counts.unknown_because = page_stops.reasons(page_param(spec));
        }
        Sweep { counts, examples: examples.unwrap_or_default(), values, rows, time_rule, lag_bound }
    };
    let keyless = executor.is_keyless(spec.query);
    if keyless {
        if let Some(reconciler) = &mut reconciler
            && let Some(stop) = read_global_list(executor, spec, reconciler, deadline).await
        {
            page_stops.add(stop);
        }
        // Rows are counted per key even when the refs are in a global list.
        if spec.count.is_none() {
            return finish(reconciler, None, None, page_stops);
        }
    } else if let Some(reconciler) = &mut reconciler {
        // Keyless commands (a create whose id could not be captured) have no key to read.
        reconciler.add_unfindable(ledger.keyless.count);
    }
    // One tally per value; combined (sums, plus `by_value`) when the sweep is done.
    let mut values: Vec<ValueCounts> = spec.values.iter().map(|_| ValueCounts::default()).collect();
    let mut rows = spec.count.as_ref().map(|_| RowCounts::default());
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
                read_key(&executor, &spec, &ledger, key, keyless, deadline).await
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
        if let Some(stop) = read.page_stop {
            page_stops.add(stop);
        }
        if let Some(reconciler) = &mut reconciler
            && !keyless
        {
            reconciler.add(Some(read.key), read.applied.as_deref());
        }
        if !read.values.is_empty() {
            let acked = has_acked(ledger, read.key);
            for (counts, (observed, expected)) in values.iter_mut().zip(read.values) {
                counts.add(read.key, executor.key_text(read.key), observed, expected, acked);
            }
        }
        if let (Some(rows), Some(read_rows)) = (&mut rows, &read.rows) {
            let name = |op: u32| executor.op_name(op as usize).to_owned();
            rows.add(read.key, &executor.key_text(read.key), read_rows.as_deref(), name);
        }
    }
    let values = (!spec.values.is_empty()).then(|| {
        let names = spec.values.iter().map(|v| v.name.clone());
        ValueCounts::of_values(names.zip(values).collect())
    });
    finish(reconciler, values, rows, page_stops)
}

/// What one key's read found.
struct KeyRead {
    key: u64,
    /// `None`: the read failed.
    applied: Option<Vec<Applied>>,
    /// (observed, expected) numbers per value, when value accounting is on (else empty).
    values: Vec<(Observed, Option<f64>)>,
    /// Rows per counted kind, when count accounting is on (inner `None`: the read failed).
    rows: Option<Option<Vec<super::counts::KindRows>>>,
    /// Paging stopped before the last page: `applied` is `None` (could not verify).
    page_stop: Option<PageStop>,
}

async fn read_key<T: Target>(
    executor: &Executor<T>,
    spec: &VerifySpec,
    ledger: &Ledger,
    key: u64,
    keyless: bool,
    deadline: Instant,
) -> KeyRead {
    let rows = match &spec.count {
        Some(count) => Some(count_rows(executor, count, ledger, key).await),
        None => None,
    };
    // The verify query: only when it reads this key and something needs it.
    if keyless || (spec.applied_refs.is_none() && spec.values.is_empty()) {
        return KeyRead { key, applied: None, values: Vec::new(), rows, page_stop: None };
    }
    let reply = match &spec.page {
        Some(paging) => executor.fetch_page(spec.query, key, &paging.param, paging.start).await,
        None => executor.fetch(Probe::Verify, spec.query, key, 0, None).await,
    };
    let reply = reply.ok();
    let answer = reply.as_ref().and_then(answer_of);
    let mut page_stop = None;
    let mut applied = spec.applied_refs.as_ref().and_then(|selector| {
        let json = answer.as_ref()?;
        let mut items = Vec::new();
        let selected = json.as_ref().is_some_and(|json| applied_on_page(executor, selector, json, &mut items));
        Some((items, selected))
    });
    // A paged key (issue 18: bounded answers): the next pages, until one selects nothing.
    // A page that cannot be read makes the whole key unreadable; paging that must stop
    // (issue 32) makes it unknown with the reason.
    if let (Some(paging), Some(selector), Some((items, true))) = (&spec.page, &spec.applied_refs, &mut applied) {
        let mut guard = PageGuard::new(deadline);
        let mut stop = reply.as_ref().and_then(|first| guard.read(&first.body));
        let mut page = paging.start;
        while stop.is_none() {
            page = page.saturating_add(1);
            let reply = executor.fetch_page(spec.query, key, &paging.param, page).await;
            let Some((reply, json)) = reply.ok().and_then(|r| answer_of(&r).map(|json| (r, json))) else {
                applied = None;
                break;
            };
            stop = guard.read(&reply.body);
            if stop == Some(PageStop::SamePage) {
                break;
            }
            if !json.as_ref().is_some_and(|json| applied_on_page(executor, selector, json, items)) {
                stop = None; // the last page
                break;
            }
        }
        if stop.is_some() {
            applied = None;
            page_stop = stop;
        }
    }
    let applied = applied.map(|(items, _)| items);
    let mut values = Vec::with_capacity(spec.values.len());
    // The write side, read once for every value that compares with it.
    let mut write: Option<Option<Option<Value>>> = None;
    for (index, value) in spec.values.iter().enumerate() {
        let observed = match &answer {
            None => Observed::Unreadable,
            Some(json) => observed_at(json.as_ref(), &value.read, value.absent),
        };
        let expected = match &value.expected {
            ExpectedValue::Deltas { initial, .. } => expected_from_deltas(ledger, index, key, *initial),
            ExpectedValue::WriteSide { query, read } => {
                if write.is_none() {
                    let reply = executor.fetch(Probe::Verify, *query, key, 0, None).await.ok();
                    write = Some(reply.and_then(|r| answer_of(&r)));
                }
                // The write side has no row: nothing was written, so its number is 0.
                let json = write.as_ref().and_then(|w| w.as_ref());
                json.and_then(|json| match observed_at(json.as_ref(), read, AbsentRows::Zero) {
                    Observed::Number(n) => Some(n),
                    Observed::Absent | Observed::Unreadable => None,
                })
            }
        };
        values.push((observed, expected));
    }
    KeyRead { key, applied, values, rows, page_stop }
}

/// Key `key`'s rows per counted kind (`None`: the read failed). Read once, never paged;
/// a 404 is a key with no rows yet.
async fn count_rows<T: Target>(
    executor: &Executor<T>,
    count: &CountSpec,
    ledger: &Ledger,
    key: u64,
) -> Option<Vec<super::counts::KindRows>> {
    let reply = executor.fetch(Probe::Verify, count.query, key, 0, None).await.ok()?;
    let json = answer_of(&reply)?;
    let counted: Vec<u32> = count.rows.iter().map(|(op, _)| *op as u32).collect();
    let observed = |at: usize| json.as_ref().map_or(0, |json| count.rows[at].1.select(json).len() as u64);
    Some(kinds_of(&counted, ledger.kinds.get(&key), observed))
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

/// The number at `selector` in an answer (`None`: a 404). A row that is not there (a 404,
/// or the selector selects nothing) is `Absent`, or 0 with `absent = "zero"` (issue 30).
fn observed_at(json: Option<&Value>, selector: &Selector, absent: AbsentRows) -> Observed {
    let selected = json.map(|json| selector.select(json));
    match (selected.as_ref().and_then(|nodes| nodes.first()), absent) {
        (Some(value), _) => crate::scenario::selector::number(value).map_or(Observed::Unreadable, Observed::Number),
        (None, AbsentRows::Zero) => Observed::Number(0.0),
        (None, AbsentRows::Absent) => Observed::Absent,
    }
}

/// A keyless verify query: one read, or every page until one selects nothing; `Some`
/// when paging had to stop first (the list is then unknown, issue 32).
async fn read_global_list<T: Target>(
    executor: &Executor<T>,
    spec: &VerifySpec,
    reconciler: &mut Reconciler<'_>,
    deadline: Instant,
) -> Option<PageStop> {
    let selector = spec.applied_refs.as_ref().expect("only called with applied_refs");
    let pages = spec.page.as_ref().map_or(0..1, |p| p.start..p.start.saturating_add(MAX_PAGES));
    let mut guard = PageGuard::new(deadline);
    for page in pages {
        let reply = match &spec.page {
            Some(paging) => {
                executor.fetch_page(spec.query, crate::operation::created::NO_KEY, &paging.param, page).await
            }
            None => executor.fetch(Probe::Verify, spec.query, crate::operation::created::NO_KEY, 0, None).await,
        };
        let Some((reply, json)) = reply.ok().and_then(|r| answer_of(&r).map(|json| (r, json))) else {
            reconciler.add(None, None);
            return None;
        };
        let stop = spec.page.as_ref().and_then(|_| guard.read(&reply.body));
        if stop == Some(PageStop::SamePage) {
            reconciler.add(None, None);
            return stop;
        }
        let mut items = Vec::new();
        let nodes = json.as_ref().map(|j| selector.select(j)).unwrap_or_default();
        let empty = nodes.is_empty();
        for node in nodes {
            applied_in(node, executor.run_id, executor.shard, &mut items);
        }
        reconciler.add(None, Some(&items));
        if empty || spec.page.is_none() {
            return None;
        }
        if stop.is_some() {
            reconciler.add(None, None);
            return stop;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Issue 30: a row that is not there is absent, not 0, unless the scenario says so.
    #[test]
    fn a_missing_row_is_absent_unless_it_means_zero() {
        let value = Selector::parse("/balance", crate::scenario::selector::Scope::Body).expect("parses");
        let row = json!({"id": "w-1", "balance": 12});
        assert_eq!(observed_at(Some(&row), &value, AbsentRows::Absent), Observed::Number(12.0));
        assert_eq!(observed_at(None, &value, AbsentRows::Absent), Observed::Absent, "a 404");
        assert_eq!(observed_at(Some(&json!({"id": "w-1"})), &value, AbsentRows::Absent), Observed::Absent);
        assert_eq!(observed_at(None, &value, AbsentRows::Zero), Observed::Number(0.0));
        assert_eq!(observed_at(Some(&json!({"balance": "n/a"})), &value, AbsentRows::Absent), Observed::Unreadable);
    }

    /// Issue 31: a wrong row count keeps a sweep from `complete`, and is judged only by the
    /// time rule, like a wrong number; an unreadable key is never complete.
    #[test]
    fn wrong_counts_are_judged_only_by_the_time_rule() {
        let mut rows = RowCounts::default();
        let kind = |acked, observed| super::super::counts::KindRows {
            op: 0,
            expected: super::super::ledger::KindCount { op: 0, acked, unanswered: 0 },
            observed,
        };
        rows.add(0, "w-0", Some(&[kind(2, 2)]), |_| "deposit".into());
        let sweep = |rows: &RowCounts, time_rule| Sweep {
            counts: None,
            examples: Vec::new(),
            values: None,
            rows: Some(rows.clone()),
            time_rule,
            lag_bound: None,
        };
        assert!(sweep(&rows, false).complete() && sweep(&rows, false).judged());
        rows.add(1, "w-1", Some(&[kind(2, 1)]), |_| "deposit".into());
        assert!(!sweep(&rows, false).complete() && !sweep(&rows, false).judged());
        assert!(!sweep(&rows, true).complete() && sweep(&rows, true).judged());
        let mut unread = RowCounts::default();
        unread.add(0, "w-0", None, |_| "deposit".into());
        assert!(!sweep(&unread, false).complete());
    }

    /// The time rule's bound: twice the longest lag seen, at least that + 1 s; a late
    /// probe whose ref shows up raises it to its time so far.
    #[test]
    fn late_probes_that_show_up_raise_the_bound() {
        let acked = Instant::now();
        let mut evidence = LagEvidence { longest: Duration::from_millis(100), late: vec![(7, acked), (8, acked)] };
        assert_eq!(evidence.bound(), Duration::from_millis(1_100));
        evidence.saw_late(|seq| seq == 7, acked + Duration::from_secs(3));
        assert_eq!(evidence.bound(), Duration::from_secs(6));
        assert_eq!(evidence.late, [(8, acked)], "8 never showed up: a lost event");
    }
}
