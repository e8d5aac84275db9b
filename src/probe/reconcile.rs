//! Reconciliation: after the load, every acknowledged ref must appear in the read
//! model exactly once. This module classifies what the read model shows against the
//! ledger (PRODUCT §5); reading the read model is the caller's job.

use std::collections::HashSet;

use roaring::RoaringTreemap;

use super::ledger::Ledger;

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
    /// Keys whose read failed in the last sweep (with a global list: its pages).
    pub read_errors: u64,
    /// Acknowledged refs of keys that could not be read: neither applied nor missed, unknown.
    #[serde(default)]
    pub unknown: u64,
}

impl EventCounts {
    /// True when every acknowledged ref could be looked for.
    pub fn complete(&self) -> bool {
        self.read_errors == 0 && self.unknown == 0
    }
}

/// One application found in the read model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A ref of this run (its sequence number).
    Ours(u64),
    /// Something else: a ref of another run, or a row with no ref (by a hash of its text).
    Foreign(u64),
}

/// The applications in one selected value of an answer (a row, a string).
pub fn applied_in(value: &serde_json::Value, run_id: u32, shard: u32, out: &mut Vec<Applied>) {
    let mut refs = Vec::new();
    crate::scenario::selector::refs_in(value, &mut refs);
    if refs.is_empty() {
        out.push(Applied::Foreign(hash_of(&crate::scenario::selector::text_of(value))));
    }
    for r in refs {
        out.push(match (r.run_id == run_id, r.shard == shard) {
            (true, true) => Applied::Ours(r.seq),
            // A sibling shard's ref (`--shard`): that shard judges it; not foreign here.
            (true, false) => continue,
            _ => Applied::Foreign(hash_of(&r.to_string())),
        });
    }
}

fn hash_of(text: &str) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

/// Classifies the applications read back, one key (or one page of a global list) at a
/// time, so a sweep never holds more than the answers being read.
pub struct Reconciler<'l> {
    ledger: &'l Ledger,
    counts: EventCounts,
    seen: RoaringTreemap,
    /// Distinct foreign applications (hashes): counted once however often they are read.
    foreign: HashSet<u64>,
    /// Acknowledged refs on keys that could not be read.
    unreadable_acked: u64,
}

impl<'l> Reconciler<'l> {
    pub fn new(ledger: &'l Ledger) -> Reconciler<'l> {
        let counts = EventCounts { acked: ledger.acked.len(), ..EventCounts::default() };
        Reconciler { ledger, counts, seen: RoaringTreemap::new(), foreign: HashSet::new(), unreadable_acked: 0 }
    }

    /// One key's applications in the order the read model applied them (`key: Some`), or
    /// a page of a global list (`key: None`: order across entities is not judged);
    /// `applied: None` when the read failed.
    pub fn add(&mut self, key: Option<u64>, applied: Option<&[Applied]>) {
        let counts = &mut self.counts;
        counts.keys_checked += 1;
        let Some(applied) = applied else {
            counts.read_errors += 1;
            self.unreadable_acked += match key {
                Some(key) => self.ledger.acked_per_key.get(&key).copied().unwrap_or(0),
                // A global list that could not be read: nothing is known.
                None => self.ledger.acked.len(),
            };
            return;
        };
        // Highest well-ordered sequence number applied so far on this key.
        let mut highest_ordered = 0u64;
        for item in applied {
            let seq = match *item {
                Applied::Foreign(hash) => {
                    if self.foreign.insert(hash) {
                        counts.foreign += 1;
                    }
                    continue;
                }
                Applied::Ours(seq) => seq,
            };
            if !self.seen.insert(seq) {
                counts.duplicates += 1;
                continue;
            }
            let (acked, unsure) = (self.ledger.acked.contains(seq), self.ledger.indeterminate.contains(seq));
            if !acked && !unsure {
                counts.unexpected += 1;
                continue;
            }
            if key.is_some() && acked && !self.ledger.ambiguous_order.contains(seq) {
                if seq < highest_ordered {
                    counts.reordered += 1;
                }
                highest_ordered = highest_ordered.max(seq);
            }
        }
    }

    /// Acknowledged refs that no read can find: a create whose answer had no id to
    /// capture, checked by a per-key query. Unknown, like those of unreadable keys.
    pub fn add_unfindable(&mut self, acked: u64) {
        self.unreadable_acked += acked;
    }

    pub fn finish(mut self) -> EventCounts {
        let not_seen = (&self.ledger.acked - &self.seen).len();
        // Refs of unreadable keys are among those not seen: unknown, not missed.
        self.counts.unknown = self.unreadable_acked.min(not_seen);
        self.counts.missed = not_seen - self.counts.unknown;
        self.counts.recovered = (&self.ledger.indeterminate & &self.seen).len();
        self.counts.indeterminate = self.ledger.indeterminate.len() - self.counts.recovered;
        self.counts
    }
}

/// Classifies keys given as lists of texts (tests and small inputs): each text is one row.
pub fn classify<'a>(
    ledger: &Ledger,
    run_id: u32,
    shard: u32,
    applied: impl IntoIterator<Item = (u64, Option<Vec<&'a str>>)>,
) -> EventCounts {
    let mut reconciler = Reconciler::new(ledger);
    for (key, texts) in applied {
        let items = texts.map(|texts| {
            let mut items = Vec::new();
            for text in texts {
                applied_in(&serde_json::Value::String(text.to_owned()), run_id, shard, &mut items);
            }
            items
        });
        reconciler.add(Some(key), items.as_deref());
    }
    reconciler.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refs::OpRef;
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
        ledger.acked_per_key.insert(3, 1); // key 3 holds ref 6: unreadable, so 6 is unknown
        let a = [text(1), text(3), text(2), text(3)];
        let b = [
            text(5),
            text(7),
            text(9),
            "someone-else".to_owned(),
            OpRef { run_id: 1, shard: 0, seq: 5 }.to_string(),
            "someone-else".to_owned(), // the same foreign row again: counted once
        ];
        let counts = classify(
            &ledger,
            RUN,
            0,
            [
                (1, Some(a.iter().map(String::as_str).collect())),
                (2, Some(b.iter().map(String::as_str).collect())),
                (3, None),
            ],
        );
        assert_eq!(
            counts,
            EventCounts {
                acked: 6,
                missed: 1, // 4 (6 is on the unreadable key)
                duplicates: 1,
                unexpected: 1,
                indeterminate: 1, // 8
                recovered: 1,     // 7
                reordered: 1,
                foreign: 2,
                keys_checked: 3,
                read_errors: 1,
                unknown: 1,
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
            let counts = classify(&ledger, RUN, 0, [(1, Some(texts.iter().map(String::as_str).collect()))]);
            let distinct: std::collections::BTreeSet<u64> = applied.iter().map(|(s, _)| *s).collect();
            let applied_acked = distinct.iter().filter(|s| acked.contains(s)).count() as u64;
            prop_assert_eq!(counts.missed + applied_acked, acked.len() as u64);
            prop_assert_eq!(counts.recovered + counts.indeterminate, unsure.len() as u64);
            prop_assert_eq!(counts.duplicates, texts.len() as u64 - distinct.len() as u64);
            prop_assert_eq!(counts.unexpected, distinct.iter().filter(|s| !acked.contains(s) && !unsure.contains(s)).count() as u64);
        }
    }
}
