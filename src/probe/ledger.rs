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
    /// Commands that overlapped in time with another command on the same key.
    pub ambiguous_order: RoaringTreemap,
    /// Per key: the latest completion seen and its sequence number (for overlap detection).
    last_done: HashMap<u64, (Instant, u64)>,
    /// Acknowledgement times of every `E2E_SAMPLE_EVERY`-th command, for bus end-to-end
    /// times; kept only when `time_acks` (a `[bus]` probe runs).
    pub sampled_acks: HashMap<u64, Instant>,
    pub time_acks: bool,
    /// Per operation: are its refs accounted (`[verify] commands`)? Empty: every recorded one.
    pub refs_of: Vec<bool>,
    /// Per key: how many of its commands were acknowledged, so the refs of a key that
    /// could not be read are reported unknown, not missed.
    pub acked_per_key: HashMap<u64, u64>,
    /// Acknowledged refs of keyless commands (no `{{key}}`): a global list must show them.
    pub keyless: u64,
    /// Value accounting (`[verify] deltas`): per key, what the run changed.
    pub values: HashMap<u64, KeyChange>,
}

/// What this run did to one key's number.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct KeyChange {
    /// Sum of the acknowledged commands' deltas.
    pub sum: f64,
    /// A command with a delta got no answer (or its delta was not a number): the
    /// expected value is not known.
    pub unsure: bool,
}

impl Ledger {
    /// A ledger that also keeps sampled acknowledgement times (for the bus probe).
    pub fn timing_acks() -> Ledger {
        Ledger { time_acks: true, ..Ledger::default() }
    }

    /// Records one finished command the verification covers.
    pub fn record(&mut self, sample: &Sample) {
        if sample.delta != 0.0 && sample.key != NO_KEY {
            let change = self.values.entry(sample.key).or_default();
            match sample.outcome {
                Outcome::Ok if sample.delta.is_finite() => change.sum += sample.delta,
                Outcome::Ok | Outcome::Failed(_) => change.unsure = true,
                Outcome::Rejected | Outcome::Status(_) => {}
            }
            if matches!(sample.outcome, Outcome::Ok | Outcome::Failed(_)) {
                self.keys.insert(sample.key);
            }
        }
        if !self.refs_of.is_empty() && !self.refs_of.get(sample.op).copied().unwrap_or(false) {
            return;
        }
        match sample.outcome {
            Outcome::Ok => {
                self.acked.insert(sample.seq);
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
            // A refusal or an error status: no event expected; if one shows up it is `unexpected`.
            Outcome::Rejected | Outcome::Status(_) => return,
        }
        if sample.key == NO_KEY {
            // Keyless: read back from a global list, where order across entities means nothing.
            self.keyless += u64::from(sample.outcome == Outcome::Ok);
            return;
        }
        if sample.outcome == Outcome::Ok {
            *self.acked_per_key.entry(sample.key).or_default() += 1;
        }
        self.keys.insert(sample.key);
        // Samples arrive roughly in completion order. A command sent before the latest
        // completion on its key overlapped with that command: the target may order them
        // either way, so neither counts as reordered.
        match self.last_done.get_mut(&sample.key) {
            Some((done, seq)) => {
                if sample.sent < *done {
                    self.ambiguous_order.insert(sample.seq);
                    self.ambiguous_order.insert(*seq);
                }
                if sample.done > *done {
                    (*done, *seq) = (sample.done, sample.seq);
                }
            }
            None => {
                self.last_done.insert(sample.key, (sample.done, sample.seq));
            }
        }
    }

    /// Bytes held by the bitmaps and the overlap table (for the memory figure).
    pub fn approximate_bytes(&self) -> usize {
        self.acked.serialized_size()
            + self.indeterminate.serialized_size()
            + self.keys.serialized_size()
            + self.ambiguous_order.serialized_size()
            + self.last_done.capacity() * (8 + 16 + 8)
            + self.sampled_acks.capacity() * (8 + 16)
            + self.acked_per_key.capacity() * (8 + 8)
            + self.values.capacity() * (8 + 16)
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
            delta: 0.0,
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
