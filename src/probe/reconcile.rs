//! Reconciliation: after the load, every acknowledged ref must appear in the read
//! model exactly once. This module classifies what the read model shows against the
//! ledger (PRODUCT §5); reading the read model is the caller's job.

use roaring::RoaringTreemap;

use super::ledger::Ledger;
use crate::refs::OpRef;

/// Event accounting: result.json's `events`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EventCounts {
    /// Commands acknowledged by the target (an event must follow).
    pub acked: u64,
    /// Acknowledged, never applied.
    pub missed: u64,
    /// Extra applications of refs applied more than once.
    pub duplicates: u64,
    /// Refs of this run applied although the command was never acknowledged (refused,
    /// failed with an error status, or never sent).
    pub unexpected: u64,
    /// Commands with no answer that do not show up either: unknown outcome.
    pub indeterminate: u64,
    /// Commands with no answer that did show up (applied): not an error.
    pub recovered: u64,
    /// Refs applied before a ref of the same key acknowledged before they were sent.
    pub reordered: u64,
    /// Refs not written by this run (other runs, other writers): reported, not judged.
    pub foreign: u64,
    /// Keys read back.
    pub keys_checked: u64,
    /// Keys whose read failed (their refs count as missed).
    pub read_errors: u64,
}

/// Classifies the applied refs of the written keys, one key at a time, so a sweep
/// never holds more than the keys being read.
pub struct Reconciler<'l> {
    ledger: &'l Ledger,
    run_id: u32,
    shard: u32,
    counts: EventCounts,
    seen: RoaringTreemap,
}

impl<'l> Reconciler<'l> {
    pub fn new(ledger: &'l Ledger, run_id: u32, shard: u32) -> Reconciler<'l> {
        let counts = EventCounts { acked: ledger.acked.len(), ..EventCounts::default() };
        Reconciler { ledger, run_id, shard, counts, seen: RoaringTreemap::new() }
    }

    /// One key's refs in the order the read model applied them; `None` when the read failed.
    pub fn add_key<S: AsRef<str>>(&mut self, refs: Option<&[S]>) {
        let counts = &mut self.counts;
        counts.keys_checked += 1;
        let Some(refs) = refs else {
            counts.read_errors += 1;
            return;
        };
        // Highest well-ordered sequence number applied so far on this key.
        let mut highest_ordered = 0u64;
        for text in refs {
            let ours = OpRef::parse(text.as_ref()).filter(|r| r.run_id == self.run_id && r.shard == self.shard);
            let Some(op_ref) = ours else {
                counts.foreign += 1;
                continue;
            };
            let seq = op_ref.seq;
            if !self.seen.insert(seq) {
                counts.duplicates += 1;
                continue;
            }
            let (acked, unsure) = (self.ledger.acked.contains(seq), self.ledger.indeterminate.contains(seq));
            if !acked && !unsure {
                counts.unexpected += 1;
                continue;
            }
            if acked && !self.ledger.ambiguous_order.contains(seq) {
                if seq < highest_ordered {
                    counts.reordered += 1;
                }
                highest_ordered = highest_ordered.max(seq);
            }
        }
    }

    pub fn finish(mut self) -> EventCounts {
        self.counts.missed = (&self.ledger.acked - &self.seen).len();
        self.counts.recovered = (&self.ledger.indeterminate & &self.seen).len();
        self.counts.indeterminate = self.ledger.indeterminate.len() - self.counts.recovered;
        self.counts
    }
}

/// Classifies every key at once (tests and small inputs).
pub fn classify<'a>(
    ledger: &Ledger,
    run_id: u32,
    shard: u32,
    applied: impl IntoIterator<Item = Option<Vec<&'a str>>>,
) -> EventCounts {
    let mut reconciler = Reconciler::new(ledger, run_id, shard);
    for refs in applied {
        reconciler.add_key(refs.as_deref());
    }
    reconciler.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RUN: u32 = 0xabcd_0001;

    fn text(seq: u64) -> String {
        OpRef { run_id: RUN, shard: 0, seq }.to_string()
    }

    #[test]
    fn counts_each_class() {
        let mut ledger = Ledger::default();
        for seq in 1..=6 {
            ledger.acked.insert(seq);
        }
        ledger.indeterminate.insert(7);
        ledger.indeterminate.insert(8);
        // key A: 1, 3, 2 (2 reordered), 3 again (duplicate); key B: 5, 7 (recovered), 9 (unexpected), foreign
        let a = [text(1), text(3), text(2), text(3)];
        let b =
            [text(5), text(7), text(9), "someone-else".to_owned(), OpRef { run_id: 1, shard: 0, seq: 5 }.to_string()];
        let counts = classify(
            &ledger,
            RUN,
            0,
            [Some(a.iter().map(String::as_str).collect()), Some(b.iter().map(String::as_str).collect()), None],
        );
        assert_eq!(
            counts,
            EventCounts {
                acked: 6,
                missed: 2, // 4 and 6
                duplicates: 1,
                unexpected: 1,
                indeterminate: 1, // 8
                recovered: 1,     // 7
                reordered: 1,
                foreign: 2,
                keys_checked: 3,
                read_errors: 1,
            }
        );
    }

    proptest! {
        /// Every acknowledged ref is exactly one of applied or missed; every indeterminate
        /// one exactly one of recovered or indeterminate; every extra copy a duplicate.
        #[test]
        fn every_ref_classified_once(
            acked in prop::collection::btree_set(1u64..500, 0..100),
            unsure in prop::collection::btree_set(500u64..600, 0..20),
            applied in prop::collection::vec((1u64..700, 1usize..4), 0..200),
        ) {
            let mut ledger = Ledger::default();
            acked.iter().for_each(|s| { ledger.acked.insert(*s); });
            unsure.iter().for_each(|s| { ledger.indeterminate.insert(*s); });
            let texts: Vec<String> = applied.iter().flat_map(|(s, n)| std::iter::repeat_n(text(*s), *n)).collect();
            let counts = classify(&ledger, RUN, 0, [Some(texts.iter().map(String::as_str).collect())]);
            let distinct: std::collections::BTreeSet<u64> = applied.iter().map(|(s, _)| *s).collect();
            let applied_acked = distinct.iter().filter(|s| acked.contains(s)).count() as u64;
            prop_assert_eq!(counts.missed + applied_acked, acked.len() as u64);
            prop_assert_eq!(counts.recovered + counts.indeterminate, unsure.len() as u64);
            prop_assert_eq!(counts.duplicates, texts.len() as u64 - distinct.len() as u64);
            prop_assert_eq!(counts.unexpected, distinct.iter().filter(|s| !acked.contains(s) && !unsure.contains(s)).count() as u64);
        }
    }
}
