//! The ledger of what this run sent: which command refs were acknowledged, which
//! ended indeterminate (timeout, broken connection), which keys were written, and
//! which same-key commands overlapped in time (their relative order is undefined).
//!
//! Refs are `RUNID.SHARD.SEQ`, so the ledger is a handful of compressed bitmaps of
//! sequence numbers (roaring), not a string per operation: a few MB for 10 million
//! commands. Fed by the collector, one sample at a time, off the hot path.

use std::collections::HashMap;
use std::time::Instant;

use roaring::RoaringTreemap;

use crate::operation::created::NO_KEY;
use crate::operation::{Outcome, Sample};

#[derive(Debug, Default)]
pub struct Ledger {
    /// Commands answered with an expected status: an event must follow, exactly once.
    pub acked: RoaringTreemap,
    /// Commands with no answer (timeout, connect or body failure): the harness cannot
    /// know if they were applied.
    pub indeterminate: RoaringTreemap,
    /// Key indices with at least one acked or indeterminate command.
    pub keys: RoaringTreemap,
    /// Commands whose order against another command on the same key is not their
    /// numbers' order or not known: overlapping in time, or numbered before a command
    /// answered before they were sent (not judged as reordered).
    pub ambiguous_order: RoaringTreemap,
    /// Per key: the latest completion seen, its sequence number, and the highest sequence
    /// number seen (for overlap and inversion detection).
    last_done: HashMap<u64, (Instant, u64, u64)>,
    /// Acknowledgement times of every `E2E_SAMPLE_EVERY`-th command, for bus end-to-end
    /// times; kept only when `time_acks` (a `[bus]` probe runs).
    pub sampled_acks: HashMap<u64, Instant>,
    pub time_acks: bool,
    /// Per operation: are its refs accounted (`[verify] commands`)? Empty: every recorded one.
    pub refs_of: Vec<bool>,
    /// Per key: how many of its commands were acknowledged (so the refs of a key that
    /// could not be read are reported unknown, not missed) and which was last.
    pub acked_per_key: HashMap<u64, KeyAcks>,
    /// Acknowledged refs of keyless commands (no `{{key}}`): a global list must show them.
    pub keyless: KeyAcks,
    /// Value accounting (`[verify] deltas`): per value (in the scenario's order), per key,
    /// what the run changed. One map per value: a key costs nothing in a value no command
    /// of it changed, and one value is one map as before.
    pub values: Vec<HashMap<u64, KeyChange>>,
    /// Per operation: are its commands counted (`[verify] count`)? Empty: none.
    pub counted: Vec<bool>,
    /// Count accounting: per key, per counted command, acknowledged and unanswered ones.
    pub kinds: HashMap<u64, Vec<KindCount>>,
    /// Every acknowledged ref: the last one, for a global list read back (issue 30).
    pub all: KeyAcks,
    /// Key, operation and acknowledgement time of the first and the latest
    /// `DETAILS_KEPT` refs, so the examples of missed refs can name them (issue 30).
    pub details: RefDetails,
    /// What acknowledgement times are measured from (the load's start).
    pub origin: Option<Instant>,
}

/// Refs whose details are kept at each end of the run (24 bytes each).
pub const DETAILS_KEPT: usize = 32_768;

/// One ref's key, operation and acknowledgement time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefDetail {
    pub seq: u64,
    pub key: u64,
    pub op: u32,
    /// Milliseconds from the ledger's origin to its answer.
    pub acked_ms: u32,
}

/// The first `DETAILS_KEPT` refs recorded and a ring of the latest `DETAILS_KEPT`:
/// bounded, whatever the run's length.
#[derive(Debug, Default)]
pub struct RefDetails {
    first: Vec<RefDetail>,
    latest: std::collections::VecDeque<RefDetail>,
}

impl RefDetails {
    pub(crate) fn push(&mut self, detail: RefDetail) {
        if self.first.len() < DETAILS_KEPT {
            self.first.push(detail);
            return;
        }
        if self.latest.len() == DETAILS_KEPT {
            self.latest.pop_front();
        }
        self.latest.push_back(detail);
    }

    /// The details of ref `seq`, when kept.
    pub fn get(&self, seq: u64) -> Option<RefDetail> {
        self.first.iter().chain(&self.latest).find(|d| d.seq == seq).copied()
    }

    fn bytes(&self) -> usize {
        (self.first.capacity() + self.latest.capacity()) * std::mem::size_of::<RefDetail>()
    }
}

/// The acknowledged commands of one key (or of the keyless ones, a global list).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct KeyAcks {
    pub count: u64,
    /// The ref acknowledged last (by its answer's time): once the read model shows it, a
    /// projector that keeps the key's order has passed every earlier one (issue 30).
    pub last_seq: u64,
    pub last_done: Option<Instant>,
}

impl KeyAcks {
    fn record(&mut self, seq: u64, done: Instant) {
        self.count += 1;
        if self.last_done.is_none_or(|last| done >= last) {
            (self.last_seq, self.last_done) = (seq, Some(done));
        }
    }
}

/// What this run did to one key's number.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct KeyChange {
    /// Sum of the acknowledged commands' deltas: from `initial`, or from the last set.
    pub sum: f64,
    /// A command set the number (`"=/qty"`): `sum` is the number itself.
    pub set: bool,
    /// A command with a delta got no answer, its delta was not a number, or a set raced
    /// another command on the key: the expected value is not known.
    pub unsure: bool,
    /// Acknowledged commands with a change: a key with any has a row in the read model.
    pub acked: u64,
    /// The latest completion of a command with a change, and of a set (for races).
    last_done: Option<Instant>,
    last_set_done: Option<Instant>,
}

impl KeyChange {
    /// Adds one finished command's change. Samples arrive about in completion order, so
    /// a set sent before an earlier-finished command ended, or a command sent before the
    /// latest set ended, overlapped it: the target may have ordered them either way.
    fn record(&mut self, sample: &Sample, change: crate::operation::ValueChange) {
        use crate::operation::ValueChange;
        let overlaps_set = self.last_set_done.is_some_and(|done| sample.sent < done);
        match (sample.outcome, change) {
            (Outcome::Ok, ValueChange::Add(n)) => {
                self.sum += n;
                self.unsure |= overlaps_set;
            }
            (Outcome::Ok, ValueChange::Set(n)) => {
                self.unsure |= overlaps_set || self.last_done.is_some_and(|done| sample.sent < done);
                (self.sum, self.set) = (n, true);
                self.last_set_done = Some(sample.done);
            }
            (Outcome::Ok | Outcome::Failed(_), _) => self.unsure = true,
            (Outcome::Rejected | Outcome::Conflict | Outcome::Status(_), _) => return,
        }
        self.acked += u64::from(sample.outcome == Outcome::Ok);
        self.last_done = Some(self.last_done.map_or(sample.done, |done| done.max(sample.done)));
    }
}

/// One key's commands of one counted kind (`[verify] count`): the rows it must show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindCount {
    pub op: u32,
    /// Answered with an expected status: one row each.
    pub acked: u32,
    /// No answer (timeout, broken connection): a row or none, nobody knows.
    pub unanswered: u32,
}

/// Adds one finished counted command to its key's kinds. A refusal, conflict or error
/// status expects no row, like a kind with no command: it adds no entry.
fn count_kind(kinds: &mut Vec<KindCount>, op: usize, outcome: Outcome) {
    let op = op as u32;
    let kind = match kinds.iter().position(|k| k.op == op) {
        Some(at) => &mut kinds[at],
        None if matches!(outcome, Outcome::Ok | Outcome::Failed(_)) => {
            kinds.push(KindCount { op, ..KindCount::default() });
            kinds.last_mut().expect("just pushed")
        }
        None => return,
    };
    match outcome {
        Outcome::Ok => kind.acked += 1,
        Outcome::Failed(_) => kind.unanswered += 1,
        Outcome::Rejected | Outcome::Conflict | Outcome::Status(_) => {}
    }
}

impl Ledger {
    /// A ledger that also keeps sampled acknowledgement times (for the bus probe).
    pub fn timing_acks() -> Ledger {
        Ledger { time_acks: true, ..Ledger::default() }
    }

    /// Records one finished command the verification covers.
    pub fn record(&mut self, sample: &Sample) {
        if !sample.change.is_none() && sample.key != NO_KEY {
            for (index, &change) in sample.change.0.iter().enumerate() {
                if change == crate::operation::ValueChange::None {
                    continue;
                }
                if self.values.len() <= index {
                    self.values.resize_with(index + 1, HashMap::new);
                }
                self.values[index].entry(sample.key).or_default().record(sample, change);
            }
            if matches!(sample.outcome, Outcome::Ok | Outcome::Failed(_)) {
                self.keys.insert(sample.key);
            }
        }
        if self.counted.get(sample.op).copied().unwrap_or(false)
            && sample.key != NO_KEY
            && matches!(sample.outcome, Outcome::Ok | Outcome::Failed(_))
        {
            count_kind(self.kinds.entry(sample.key).or_default(), sample.op, sample.outcome);
            self.keys.insert(sample.key);
        }
        if !self.refs_of.is_empty() && !self.refs_of.get(sample.op).copied().unwrap_or(false) {
            return;
        }
        if matches!(sample.outcome, Outcome::Ok | Outcome::Failed(_)) {
            let acked_ms = self.origin.map_or(0, |origin| sample.done.saturating_duration_since(origin).as_millis());
            self.details.push(RefDetail {
                seq: sample.seq,
                key: sample.key,
                op: sample.op as u32,
                acked_ms: u32::try_from(acked_ms).unwrap_or(u32::MAX),
            });
        }
        match sample.outcome {
            Outcome::Ok => {
                self.acked.insert(sample.seq);
                self.all.record(sample.seq, sample.done);
                if self.time_acks
                    && sample.seq.is_multiple_of(crate::probe::bus::E2E_SAMPLE_EVERY)
                    && self.sampled_acks.len() < crate::probe::bus::E2E_MAX_SAMPLES
                {
                    self.sampled_acks.insert(sample.seq, sample.done);
                }
            }
            Outcome::Failed(_) => {
                self.indeterminate.insert(sample.seq);
            }
            // A refusal, a conflict or an error status: no event expected (so never
            // `missed`); if one shows up it is `unexpected`.
            Outcome::Rejected | Outcome::Conflict | Outcome::Status(_) => return,
        }
        if sample.key == NO_KEY {
            // Keyless: read back from a global list, where order across entities means nothing.
            if sample.outcome == Outcome::Ok {
                self.keyless.record(sample.seq, sample.done);
            }
            return;
        }
        if sample.outcome == Outcome::Ok {
            self.acked_per_key.entry(sample.key).or_default().record(sample.seq, sample.done);
        }
        self.keys.insert(sample.key);
        // Samples arrive roughly in completion order. A command sent before the latest
        // completion on its key overlapped with that command: the target may order them
        // either way, so neither counts as reordered. A command numbered below one that
        // finished before it was sent (its worker drew the number, then waited for a lane or
        // a core while another worker's command on the key went and was acknowledged) was
        // truly applied after it: order by number says nothing about the two (issue 32:
        // `reordered: 3` in a clean bank-http run at 5,000/s), so neither counts either.
        // Any two commands left unmarked are ordered by number as the target saw them.
        match self.last_done.get_mut(&sample.key) {
            Some((done, seq, highest)) => {
                if sample.sent < *done || sample.seq < *highest {
                    self.ambiguous_order.insert(sample.seq);
                    self.ambiguous_order.insert(if sample.sent < *done { *seq } else { *highest });
                }
                if sample.done > *done {
                    (*done, *seq) = (sample.done, sample.seq);
                }
                *highest = (*highest).max(sample.seq);
            }
            None => {
                self.last_done.insert(sample.key, (sample.done, sample.seq, sample.seq));
            }
        }
    }

    /// Bytes held by the bitmaps and the overlap table (for the memory figure).
    pub fn approximate_bytes(&self) -> usize {
        self.acked.serialized_size()
            + self.indeterminate.serialized_size()
            + self.keys.serialized_size()
            + self.ambiguous_order.serialized_size()
            + self.last_done.capacity() * (8 + 16 + 8 + 8)
            + self.sampled_acks.capacity() * (8 + 16)
            + self.acked_per_key.capacity() * (8 + std::mem::size_of::<KeyAcks>())
            + self.values.capacity() * (8 + std::mem::size_of::<KeyChange>())
            + self.kinds.capacity() * (8 + std::mem::size_of::<Vec<KindCount>>())
            + self.kinds.values().map(|k| k.capacity() * std::mem::size_of::<KindCount>()).sum::<usize>()
            + self.details.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::Failure;
    use std::time::Duration;

    fn sample(seq: u64, key: u64, sent_ms: u64, done_ms: u64, outcome: Outcome, t0: Instant) -> Sample {
        Sample {
            op: 0,
            seq,
            key,
            intended: t0 + Duration::from_millis(sent_ms),
            sent: t0 + Duration::from_millis(sent_ms),
            done: t0 + Duration::from_millis(done_ms),
            outcome,
            change: Default::default(),
        }
    }

    #[test]
    fn classifies_outcomes_and_overlaps() {
        let t0 = Instant::now();
        let mut ledger = Ledger::default();
        ledger.record(&sample(1, 7, 0, 10, Outcome::Ok, t0));
        ledger.record(&sample(2, 7, 20, 30, Outcome::Ok, t0)); // after 1: ordered
        ledger.record(&sample(3, 7, 25, 40, Outcome::Ok, t0)); // sent before 2 answered: overlap
        ledger.record(&sample(4, 8, 0, 5, Outcome::Failed(Failure::Timeout), t0));
        ledger.record(&sample(5, 9, 0, 5, Outcome::Rejected, t0));
        assert_eq!(ledger.acked.iter().collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(ledger.indeterminate.iter().collect::<Vec<_>>(), [4]);
        assert_eq!(ledger.keys.iter().collect::<Vec<_>>(), [7, 8]);
        assert_eq!(ledger.ambiguous_order.iter().collect::<Vec<_>>(), [2, 3]);
    }

    /// Issue 32: a command numbered before another but sent after that one was answered
    /// (its worker waited for a lane or a core) is applied after it, rightly: not ordered by
    /// number, so not judged; a command sent after an earlier-numbered one was answered is.
    #[test]
    fn a_number_drawn_early_and_sent_late_is_not_judged_by_its_number() {
        let t0 = Instant::now();
        let mut ledger = Ledger::default();
        ledger.record(&sample(12, 7, 0, 5, Outcome::Ok, t0)); // drawn after 10, answered first
        ledger.record(&sample(10, 7, 8, 12, Outcome::Ok, t0)); // sent after 12 was answered
        ledger.record(&sample(20, 7, 30, 35, Outcome::Ok, t0)); // after both: ordered
        ledger.record(&sample(21, 7, 40, 45, Outcome::Ok, t0));
        assert_eq!(ledger.ambiguous_order.iter().collect::<Vec<_>>(), [10, 12]);
        // The read model applied 12, 10 (as sent), then 21 before 20: one true reorder.
        let mut reconciler = crate::probe::reconcile::Reconciler::new(&ledger);
        let applied = [12, 10, 21, 20].map(crate::probe::reconcile::Applied::Ours);
        reconciler.add(Some(7), Some(&applied));
        assert_eq!(reconciler.finish(true).0.reordered, 1);
    }

    /// Issue 31: per key, only the counted commands' acknowledged and unanswered ones.
    #[test]
    fn counts_kinds_per_key_only_for_counted_commands() {
        let t0 = Instant::now();
        let mut ledger = Ledger { counted: vec![true, false], ..Ledger::default() };
        let of = |op, seq, key, outcome| Sample { op, ..sample(seq, key, seq * 10, seq * 10 + 1, outcome, t0) };
        ledger.record(&of(0, 1, 7, Outcome::Ok));
        ledger.record(&of(0, 2, 7, Outcome::Ok));
        ledger.record(&of(0, 3, 7, Outcome::Failed(Failure::Timeout)));
        ledger.record(&of(0, 4, 8, Outcome::Rejected)); // a refusal: no row expected
        ledger.record(&of(1, 5, 9, Outcome::Ok)); // not counted
        assert_eq!(ledger.kinds.len(), 1);
        assert_eq!(ledger.kinds[&7], [KindCount { op: 0, acked: 2, unanswered: 1 }]);
    }

    /// The memory figure of issue 4: 10 million acknowledged commands on 10,000 keys.
    #[test]
    fn ten_million_commands_fit_in_a_few_megabytes() {
        let t0 = Instant::now();
        let mut ledger = Ledger::default();
        for seq in 1..=10_000_000u64 {
            let ms = seq / 10;
            ledger.record(&sample(seq, seq % 10_000, ms, ms + 1, Outcome::Ok, t0));
        }
        let bytes = ledger.approximate_bytes();
        println!("ledger for 10M commands on 10k keys: {bytes} bytes");
        assert_eq!(ledger.acked.len(), 10_000_000);
        assert!(bytes < 8 * 1024 * 1024, "{bytes} bytes");
    }
}
