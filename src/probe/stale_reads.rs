//! Stale reads in the normal traffic (`[staleness] traffic`, issue 14): is an answer of
//! the mix's queries older than what the client had already been told?
//!
//! Every acknowledged command of `[staleness] commands` leaves, on its key, its ack time
//! and its `until` value (rendered with its ref and captures, as the probes render it).
//! A query of `traffic` sent at `s` on a key with a command acknowledged before `s` is a
//! *judged* read; it is **stale** when `until` fails on its answer for any command on
//! that key acknowledged before `s`. Reads sent in the warmup are not judged.
//!
//! Once an answer sent at `v` has shown a command, an answer sent at or after `v` is
//! taken to show it too (read models are assumed monotonic: `[verify]` catches one that
//! loses what it showed); the command is forgotten once no read sent before `v` can
//! still come back (`v` + the request timeout), which keeps memory bounded by what is
//! recent or still unseen. A key with more unseen commands than `MAX_PENDING_PER_KEY`
//! stops being judged (counted as `unjudged`), rather than judged on part of its
//! history.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::SeedableRng as _;
use rand::rngs::SmallRng;

use crate::operation::created::NO_KEY;
use crate::operation::{Executed, Executor, Outcome, Sample};
use crate::scenario::StalenessSpec;
use crate::scenario::selector::Predicate;
use crate::scenario::template::RenderContext;
use crate::target::Target;

const SHARDS: usize = 64;
/// Unseen commands kept per key; beyond, the key is no longer judged.
pub const MAX_PENDING_PER_KEY: usize = 1024;
/// Keys tracked; commands on further keys are not remembered (their reads not judged).
pub const MAX_KEYS: usize = 2_000_000;

/// One acknowledged command on a key.
struct Pending {
    acked: Instant,
    expected: Box<str>,
    /// Send time of the earliest answer that showed it.
    shown_by: Option<Instant>,
}

#[derive(Default)]
struct KeyState {
    /// The first command acknowledged on the key: reads sent after it are judged.
    first_acked: Option<Instant>,
    pending: Vec<Pending>,
    overflowed: bool,
}

/// Figures of one judged query operation.
#[derive(Debug, Default)]
struct Counts {
    reads: AtomicU64,
    stale: AtomicU64,
    unjudged: AtomicU64,
}

/// The traffic figures of one query operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficFigures {
    pub op: usize,
    /// Reads judged (after the warmup, on a key with an earlier acknowledged command).
    pub reads: u64,
    pub stale: u64,
    /// Reads on a key with too many unseen commands to judge.
    pub unjudged: u64,
}

/// What one read was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No command was acknowledged on the key before the read was sent.
    NotJudged,
    /// The key has too many unseen commands to judge.
    Unjudged,
    Fresh,
    Stale,
}

/// Per key, the acknowledged commands a later read must show: the bookkeeping, apart
/// from rendering and counting.
pub struct AckHistory {
    keys: Vec<Mutex<HashMap<u64, KeyState>>>,
    tracked_keys: AtomicU64,
    /// How long after it was shown a command can still matter: a read sent before then
    /// may still be in flight.
    forget_after: Duration,
    /// Commands on keys beyond `MAX_KEYS`.
    pub untracked: AtomicU64,
}

fn shard(key: u64) -> usize {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize % SHARDS
}

impl AckHistory {
    pub fn new(forget_after: Duration) -> AckHistory {
        AckHistory {
            keys: (0..SHARDS).map(|_| Mutex::default()).collect(),
            tracked_keys: AtomicU64::new(0),
            forget_after,
            untracked: AtomicU64::new(0),
        }
    }

    fn lock(&self, key: u64) -> std::sync::MutexGuard<'_, HashMap<u64, KeyState>> {
        self.keys[shard(key)].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A command on `key` acknowledged at `acked`, shown when `until` holds with `expected`.
    pub fn acknowledged(&self, key: u64, acked: Instant, expected: Box<str>) {
        let mut keys = self.lock(key);
        let state = match keys.get_mut(&key) {
            Some(state) => state,
            None => {
                if self.tracked_keys.fetch_add(1, Ordering::Relaxed) >= MAX_KEYS as u64 {
                    self.untracked.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                keys.entry(key).or_default()
            }
        };
        state.first_acked = Some(state.first_acked.map_or(acked, |first| first.min(acked)));
        if state.pending.len() >= MAX_PENDING_PER_KEY {
            state.overflowed = true;
            return;
        }
        state.pending.push(Pending { acked, expected, shown_by: None });
    }

    /// Judges a read of `key` sent at `sent`; `shows(expected)` tells whether its answer
    /// shows a command (called only when the answer's age matters, so a caller can parse
    /// the answer lazily).
    pub fn judge(&self, key: u64, sent: Instant, mut shows: impl FnMut(&str) -> bool) -> Verdict {
        let mut keys = self.lock(key);
        let Some(state) = keys.get_mut(&key) else { return Verdict::NotJudged };
        if state.first_acked.is_none_or(|first| first >= sent) {
            return Verdict::NotJudged;
        }
        if state.overflowed {
            return Verdict::Unjudged;
        }
        let mut stale = false;
        for pending in state.pending.iter_mut().filter(|p| p.acked < sent) {
            if pending.shown_by.is_some_and(|v| v <= sent) {
                continue; // an earlier-sent answer showed it (monotonic read model)
            }
            if shows(&pending.expected) {
                // The earliest send time that showed it (answers come back out of order).
                pending.shown_by = Some(pending.shown_by.map_or(sent, |v| v.min(sent)));
            } else {
                stale = true;
            }
        }
        let now = Instant::now();
        state.pending.retain(|p| p.shown_by.is_none_or(|v| v + self.forget_after > now));
        if stale { Verdict::Stale } else { Verdict::Fresh }
    }
}

/// Remembers the acknowledged commands and judges the traffic's reads; shared by every
/// generator worker (its state is sharded by key).
pub struct TrafficJudge<T> {
    executor: std::sync::Arc<Executor<T>>,
    until: Predicate,
    /// Per operation: are its acknowledgements remembered?
    writes: Vec<bool>,
    /// Per operation: index into `counts` when its answers are judged.
    judged: Vec<Option<usize>>,
    counts: Vec<(usize, Counts)>,
    measured_from: Instant,
    pub history: AckHistory,
}

impl<T: Target> TrafficJudge<T> {
    /// `None` when the spec judges no query.
    pub fn new(
        executor: std::sync::Arc<Executor<T>>,
        spec: &StalenessSpec,
        operations: usize,
        measured_from: Instant,
    ) -> Option<TrafficJudge<T>> {
        if spec.traffic.is_empty() {
            return None;
        }
        let mut writes = vec![false; operations];
        for &op in &spec.commands {
            writes[op] = true;
        }
        let mut judged = vec![None; operations];
        let counts = spec
            .traffic
            .iter()
            .enumerate()
            .map(|(i, &op)| {
                judged[op] = Some(i);
                (op, Counts::default())
            })
            .collect();
        let history = AckHistory::new(executor.timeout + Duration::from_secs(1));
        Some(TrafficJudge { executor, until: spec.until.clone(), writes, judged, counts, measured_from, history })
    }

    /// Called after every operation, on the worker thread that finished it.
    pub fn after(&self, sample: &Sample, executed: &Executed) {
        if executed.outcome != Outcome::Ok || executed.key == NO_KEY {
            return;
        }
        if self.writes[sample.op] {
            let key_text = self.executor.key_text(executed.key);
            let op_ref = self.executor.ref_text(sample.seq);
            let ctx = RenderContext { key: &key_text, op_ref: &op_ref, captures: &executed.captured };
            let expected = self.until.value.render(&ctx, &mut SmallRng::seed_from_u64(sample.seq));
            self.history.acknowledged(executed.key, executed.done, expected.into_boxed_str());
        } else if let Some(i) = self.judged[sample.op]
            && sample.sent >= self.measured_from
        {
            // Parsed once, and only when some command's visibility is in question.
            let mut answer: Option<Option<serde_json::Value>> = None;
            let verdict = self.history.judge(executed.key, executed.sent, |expected| {
                let json = answer.get_or_insert_with(|| serde_json::from_slice(&executed.body).ok());
                json.as_ref().is_some_and(|json| self.until.holds_on(json, expected))
            });
            let counts = &self.counts[i].1;
            match verdict {
                Verdict::NotJudged => {}
                Verdict::Unjudged => {
                    counts.unjudged.fetch_add(1, Ordering::Relaxed);
                }
                Verdict::Fresh | Verdict::Stale => {
                    counts.reads.fetch_add(1, Ordering::Relaxed);
                    if verdict == Verdict::Stale {
                        counts.stale.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// The figures per judged query, in the order of `traffic`.
    pub fn figures(&self) -> Vec<TrafficFigures> {
        self.counts
            .iter()
            .map(|(op, c)| TrafficFigures {
                op: *op,
                reads: c.reads.load(Ordering::Relaxed),
                stale: c.stale.load(Ordering::Relaxed),
                unjudged: c.unjudged.load(Ordering::Relaxed),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(base: Instant, n: u64) -> Instant {
        base + Duration::from_millis(n)
    }

    #[test]
    fn a_read_is_stale_until_it_shows_every_earlier_acknowledgement() {
        let (history, t) = (AckHistory::new(Duration::from_secs(60)), Instant::now());
        assert_eq!(history.judge(1, ms(t, 5), |_| true), Verdict::NotJudged, "nothing written yet");
        history.acknowledged(1, ms(t, 10), "a".into());
        history.acknowledged(1, ms(t, 20), "b".into());
        assert_eq!(history.judge(1, ms(t, 5), |_| false), Verdict::NotJudged, "sent before any ack");
        // Sent between the two acks: only `a` counts.
        assert_eq!(history.judge(1, ms(t, 15), |e| e == "a"), Verdict::Fresh);
        assert_eq!(history.judge(1, ms(t, 25), |e| e == "a"), Verdict::Stale, "b missing");
        assert_eq!(history.judge(1, ms(t, 30), |_| true), Verdict::Fresh);
        // Shown by a read sent at 30: a later read is not asked again (monotonic).
        assert_eq!(history.judge(1, ms(t, 40), |_| panic!("no need to look")), Verdict::Fresh);
        // A read sent earlier that comes back late is still judged on its own answer.
        assert_eq!(history.judge(1, ms(t, 26), |e| e == "a"), Verdict::Stale);
        assert_eq!(history.judge(2, ms(t, 40), |_| true), Verdict::NotJudged, "another key");
    }

    #[test]
    fn a_key_with_too_much_unseen_history_is_not_judged() {
        let (history, t) = (AckHistory::new(Duration::from_secs(60)), Instant::now());
        for i in 0..=MAX_PENDING_PER_KEY as u64 {
            history.acknowledged(7, ms(t, i), i.to_string().into());
        }
        assert_eq!(history.judge(7, ms(t, 5_000), |_| true), Verdict::Unjudged);
    }

    #[test]
    fn shown_commands_are_forgotten_once_no_earlier_read_can_come_back() {
        let (history, t) = (AckHistory::new(Duration::ZERO), Instant::now() - Duration::from_secs(1));
        history.acknowledged(3, ms(t, 1), "x".into());
        assert_eq!(history.judge(3, ms(t, 2), |_| true), Verdict::Fresh);
        let keys = history.lock(3);
        assert!(keys[&3].pending.is_empty());
        assert!(keys[&3].first_acked.is_some(), "the key stays written");
    }
}
