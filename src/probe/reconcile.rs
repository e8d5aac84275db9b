//! Reconciliation: after the load, every acknowledged ref must appear in the read
//! model exactly once. This module classifies what the read model shows against the
//! ledger (PRODUCT §5); reading the read model is the caller's job.

use std::collections::HashSet;

use roaring::RoaringTreemap;

use super::ledger::Ledger;

/// Event accounting: result.json's `events`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
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
    /// Refs applied before a ref of the same key acknowledged before they were sent: a
    /// true reorder by the target. Not judged (issue 32): same-key commands that overlapped
    /// in time (the target may order them either way), and a command numbered before
    /// another but sent after that one was answered (its worker drew the number, then
    /// waited for a lane or a core): see `Ledger::ambiguous_order`.
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
    /// Acknowledged refs not visible when verification stopped that the projector had not
    /// passed (nothing acknowledged after them on their key is visible), while no rule
    /// says it never will apply them: not yet applied, or never; not judged missed.
    #[serde(default)]
    pub pending: u64,
    /// The first missed, pending, duplicated and unexpected refs (up to 20 of each), by ref.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<RefExample>,
    /// Why keys could not be verified beyond a read error (issue 32: paging stopped at a
    /// repeated page, at `settle` or at the page cap): their refs are `unknown`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown_because: Vec<String>,
}

impl EventCounts {
    /// True when every acknowledged ref could be looked for.
    pub fn complete(&self) -> bool {
        self.read_errors == 0 && self.unknown == 0
    }

    /// The classes in the order the summary and the report show them, with their counts.
    pub fn classes(&self) -> [(&'static str, u64); 8] {
        [
            ("acked", self.acked),
            ("missed", self.missed),
            ("pending", self.pending),
            ("duplicates", self.duplicates),
            ("unexpected", self.unexpected),
            ("indeterminate", self.indeterminate),
            ("recovered", self.recovered),
            ("reordered", self.reordered),
        ]
    }

    /// True when every acknowledged ref not visible is judged (missed), none pending.
    pub fn judged(&self) -> bool {
        self.complete() && self.pending == 0
    }
}

/// Examples kept per class.
pub const EXAMPLES: usize = 20;

/// One ref a user can look up in their own logs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct RefExample {
    /// `missed`, `pending`, `duplicate` or `unexpected`.
    pub class: String,
    /// The command's ref.
    #[serde(rename = "ref")]
    pub op_ref: String,
    /// The key it was written on, its operation and when it was answered (ms from the
    /// start of the run), when the ledger kept them (the first and latest 32,768 refs).
    pub key: Option<String>,
    /// The command that sent it.
    pub operation: Option<String>,
    /// When it was acknowledged, ms from the start of the run.
    pub acked_at_ms: Option<u64>,
    /// What the read model showed of it.
    pub shown: String,
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
    unreadable_keys: HashSet<u64>,
    /// Keys whose last acknowledged ref is not visible, and their refs not visible: the
    /// projector has not passed them (issue 30).
    unpassed_keys: HashSet<u64>,
    unpassed_acked: u64,
    /// Read from a global list (keyless query): the run's refs are one ordered stream.
    global_list: bool,
    /// `verify`'s time rule held: every ref not visible is judged missed.
    all_passed: bool,
    /// Refs applied more than once (their applications), and unexpected ones, by ref.
    duplicated: std::collections::BTreeMap<u64, u32>,
    unexpected: std::collections::BTreeSet<u64>,
}

impl<'l> Reconciler<'l> {
    pub fn new(ledger: &'l Ledger) -> Reconciler<'l> {
        let counts = EventCounts { acked: ledger.acked.len(), ..EventCounts::default() };
        Reconciler {
            ledger,
            counts,
            seen: RoaringTreemap::new(),
            foreign: HashSet::new(),
            unreadable_acked: 0,
            unreadable_keys: HashSet::new(),
            unpassed_keys: HashSet::new(),
            unpassed_acked: 0,
            global_list: false,
            all_passed: false,
            duplicated: Default::default(),
            unexpected: Default::default(),
        }
    }

    /// True when ref `seq` of this run was visible.
    pub fn saw(&self, seq: u64) -> bool {
        self.seen.contains(seq)
    }

    /// One key's applications in the order the read model applied them (`key: Some`), or
    /// a page of a global list (`key: None`: order across entities is not judged);
    /// `applied: None` when the read failed.
    pub fn add(&mut self, key: Option<u64>, applied: Option<&[Applied]>) {
        let counts = &mut self.counts;
        counts.keys_checked += 1;
        self.global_list |= key.is_none();
        let key_acks = key.and_then(|key| self.ledger.acked_per_key.get(&key)).copied().unwrap_or_default();
        let Some(applied) = applied else {
            counts.read_errors += 1;
            self.unreadable_acked += match key {
                Some(key) => {
                    self.unreadable_keys.insert(key);
                    key_acks.count
                }
                // A global list that could not be read: nothing is known.
                None => self.ledger.acked.len(),
            };
            return;
        };
        // Highest well-ordered sequence number applied so far on this key.
        let mut highest_ordered = 0u64;
        let (mut visible_acked, mut last_visible) = (0u64, false);
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
                // The lowest refs are kept: a higher one dropped here is dropped again if seen.
                *self.duplicated.entry(seq).or_insert(1) += 1;
                if self.duplicated.len() > EXAMPLES {
                    self.duplicated.pop_last();
                }
                continue;
            }
            let (acked, unsure) = (self.ledger.acked.contains(seq), self.ledger.indeterminate.contains(seq));
            if !acked && !unsure {
                counts.unexpected += 1;
                self.unexpected.insert(seq);
                if self.unexpected.len() > EXAMPLES {
                    self.unexpected.pop_last();
                }
                continue;
            }
            visible_acked += u64::from(acked);
            last_visible |= seq == key_acks.last_seq;
            if key.is_some() && acked && !self.ledger.ambiguous_order.contains(seq) {
                if seq < highest_ordered {
                    counts.reordered += 1;
                }
                highest_ordered = highest_ordered.max(seq);
            }
        }
        if let Some(key) = key
            && key_acks.count > 0
            && !last_visible
        {
            self.unpassed_keys.insert(key);
            self.unpassed_acked += key_acks.count.saturating_sub(visible_acked);
        }
    }

    /// Acknowledged refs that no read can find: a create whose answer had no id to
    /// capture, checked by a per-key query. Unknown, like those of unreadable keys.
    pub fn add_unfindable(&mut self, acked: u64) {
        self.unreadable_acked += acked;
    }

    /// The counts, with the examples' refs (their texts are the caller's: `describe`).
    /// `all_passed`: `verify`'s time rule holds, so every ref not visible is judged missed.
    pub fn finish(mut self, all_passed: bool) -> (EventCounts, Vec<ExampleRef>) {
        self.all_passed = all_passed;
        let not_seen = &self.ledger.acked - &self.seen;
        // Refs of unreadable keys are among those not seen: unknown, not missed.
        self.counts.unknown = self.unreadable_acked.min(not_seen.len());
        let judgeable = not_seen.len() - self.counts.unknown;
        // A global list passed its last acknowledged ref: every earlier one was passed.
        if self.global_list && self.ledger.all.count > 0 && !self.seen.contains(self.ledger.all.last_seq) {
            self.unpassed_acked = judgeable;
        }
        self.counts.pending = if self.all_passed { 0 } else { self.unpassed_acked.min(judgeable) };
        self.counts.missed = judgeable - self.counts.pending;
        self.counts.recovered = (&self.ledger.indeterminate & &self.seen).len();
        self.counts.indeterminate = self.ledger.indeterminate.len() - self.counts.recovered;
        let examples = self.examples(&not_seen);
        (self.counts, examples)
    }

    /// The first refs of each class, by ref.
    fn examples(&self, not_seen: &RoaringTreemap) -> Vec<ExampleRef> {
        let mut examples = Vec::new();
        let (mut missed, mut pending) = (0, 0);
        for seq in not_seen.iter() {
            if missed >= EXAMPLES && pending >= EXAMPLES {
                break;
            }
            let key = self.ledger.details.get(seq).map(|d| d.key);
            let class = match key {
                Some(key) if self.unreadable_keys.contains(&key) => continue,
                _ if self.counts.pending == 0 => RefClass::Missed,
                _ if self.counts.missed == 0 => RefClass::Pending,
                Some(key) if self.unpassed_keys.contains(&key) => RefClass::Pending,
                Some(_) => RefClass::Missed,
                None => continue, // its key is not known: neither can be told
            };
            let taken = if class == RefClass::Missed { &mut missed } else { &mut pending };
            if *taken < EXAMPLES {
                *taken += 1;
                examples.push(ExampleRef { class, seq, applications: 0, by_time: self.all_passed });
            }
        }
        examples.extend(self.duplicated.iter().map(|(&seq, &n)| ExampleRef {
            class: RefClass::Duplicate,
            seq,
            applications: n,
            by_time: false,
        }));
        examples.extend(self.unexpected.iter().map(|&seq| ExampleRef {
            class: RefClass::Unexpected,
            seq,
            applications: 1,
            by_time: false,
        }));
        examples
    }
}

/// An example's class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefClass {
    Missed,
    Pending,
    Duplicate,
    Unexpected,
}

/// An example before its texts: the ref's sequence number and how often it was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExampleRef {
    pub class: RefClass,
    pub seq: u64,
    pub applications: u32,
    /// Judged missed by the time rule rather than by a later ref being visible.
    pub by_time: bool,
}

impl ExampleRef {
    /// The example as result.json shows it.
    pub fn describe(
        &self,
        ledger: &Ledger,
        op_ref: String,
        key_text: impl Fn(u64) -> String,
        op_name: impl Fn(usize) -> String,
    ) -> RefExample {
        let detail = ledger.details.get(self.seq);
        let (class, shown) = match self.class {
            RefClass::Missed if self.by_time => {
                ("missed", "not visible, for longer than twice the longest lag probed".to_owned())
            }
            RefClass::Missed => ("missed", "not visible, though a ref acknowledged after it on its key is".to_owned()),
            RefClass::Pending => ("pending", "not visible, nor anything acknowledged after it on its key".to_owned()),
            RefClass::Duplicate => ("duplicate", format!("applied {} times", self.applications)),
            RefClass::Unexpected => ("unexpected", "applied, but its command was not acknowledged".to_owned()),
        };
        RefExample {
            class: class.into(),
            op_ref,
            key: detail.filter(|d| d.key != crate::operation::created::NO_KEY).map(|d| key_text(d.key)),
            operation: detail.map(|d| op_name(d.op as usize)),
            acked_at_ms: detail.filter(|_| self.class != RefClass::Unexpected).map(|d| u64::from(d.acked_ms)),
            shown,
        }
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
    reconciler.finish(false).0
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
        // key 3 holds ref 6: unreadable, so 6 is unknown
        ledger.acked_per_key.insert(3, crate::probe::ledger::KeyAcks { count: 1, last_seq: 6, ..Default::default() });
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
                pending: 0,
                examples: Vec::new(),
                unknown_because: Vec::new(),
            }
        );
    }

    /// Issue 30: a ref not visible is missed only on a key whose last acknowledged ref is
    /// visible (the projector passed it); on a key whose last one is not, it is pending.
    #[test]
    fn refs_not_passed_by_the_projector_are_pending_not_missed() {
        use crate::probe::ledger::KeyAcks;
        let mut ledger = Ledger::default();
        for seq in 1..=6 {
            ledger.acked.insert(seq);
            let key = if seq <= 3 { 1 } else { 2 };
            ledger.details.push(crate::probe::ledger::RefDetail { seq, key, op: 0, acked_ms: seq as u32 });
        }
        // Key 1: refs 1, 2, 3 (3 last); key 2: refs 4, 5, 6 (6 last).
        ledger.acked_per_key.insert(1, KeyAcks { count: 3, last_seq: 3, ..Default::default() });
        ledger.acked_per_key.insert(2, KeyAcks { count: 3, last_seq: 6, ..Default::default() });
        let (key1, key2) = ([text(1), text(3)], [text(4)]);
        let read = |all_passed| {
            let mut reconciler = Reconciler::new(&ledger);
            let mut applied = |key, texts: &[String]| {
                let mut items = Vec::new();
                for t in texts {
                    applied_in(&serde_json::Value::String(t.clone()), RUN, 0, &mut items);
                }
                reconciler.add(Some(key), Some(&items));
            };
            applied(1, &key1);
            applied(2, &key2);
            reconciler.finish(all_passed)
        };
        // Ref 2 was passed (3 after it is visible): missed; 5 and 6 are pending.
        let (counts, examples) = read(false);
        assert_eq!((counts.missed, counts.pending), (1, 2));
        let classes: Vec<(RefClass, u64)> = examples.iter().map(|x| (x.class, x.seq)).collect();
        assert_eq!(classes, [(RefClass::Missed, 2), (RefClass::Pending, 5), (RefClass::Pending, 6)]);
        // The time rule judges every ref not visible.
        let (counts, _) = read(true);
        assert_eq!((counts.missed, counts.pending), (3, 0));
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
