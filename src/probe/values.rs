//! Value accounting (`[verify] value`): a number per key in the read model (a quantity,
//! a balance) must equal what the run did to it, the sum of the acknowledged commands'
//! deltas from `initial`, or the same number read from the write side (issue 12).

use super::ledger::Ledger;

/// Mismatches shown by key, at most.
const EXAMPLES: usize = 20;

/// result.json's `values`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ValueCounts {
    /// Keys whose number was checked.
    pub keys_checked: u64,
    /// Keys whose number equals the expected one.
    pub matched: u64,
    /// Keys whose number differs from the expected one.
    pub mismatched: u64,
    /// Keys with acknowledged commands that have no row in the read model (a 404, or
    /// `value` selects nothing): definitely wrong, unless `absent = "zero"` (issue 30).
    #[serde(default)]
    pub absent: u64,
    /// Keys whose expected number is not known: a command with a change got no answer.
    pub unsure: u64,
    /// Keys that could not be read (or whose answer had no number at `value`).
    pub unreadable: u64,
    /// Largest |observed − expected| among mismatched keys.
    pub largest_difference: f64,
    /// Sum of |observed − expected| over mismatched keys.
    pub total_difference: f64,
    /// The first mismatched and absent keys, by key.
    pub mismatches: Vec<ValueMismatch>,
    /// With several values (issue 31): each value's own figures, in the scenario's order;
    /// the figures above are then their sums (a key counts once per value). Empty with one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_value: Vec<ValueCounts>,
    /// Its name, in `by_value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// (key index, value index) of `mismatches`, to keep the first by key (not in result.json).
    #[serde(skip)]
    order: Vec<(u64, usize)>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ValueMismatch {
    /// The key whose number differs.
    pub key: String,
    /// `None`: not known (the key is absent and one of its commands got no answer).
    pub expected: Option<f64>,
    /// `None`: the key has no row (absent).
    pub observed: Option<f64>,
    /// The value's name, with several values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// What the read model shows for one key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Observed {
    Number(f64),
    /// No row: a 404, or `value` selects nothing in the answer.
    Absent,
    /// The read failed, or the value is not a number.
    Unreadable,
}

impl ValueCounts {
    /// True when every written key was read and judged.
    pub fn complete(&self) -> bool {
        self.unreadable == 0
    }

    /// Keys definitely wrong: mismatched or absent (what `value_mismatches` judges).
    pub fn wrong(&self) -> u64 {
        self.mismatched + self.absent
    }

    /// True when every key was judged: none unreadable, none unsure.
    pub fn judged(&self) -> bool {
        self.complete() && self.unsure == 0
    }

    /// One key (`index` orders the examples): what the read model shows, what it must
    /// show (`None`: not known), and whether the key has acknowledged commands (a row).
    pub fn add(&mut self, index: u64, key: String, observed: Observed, expected: Option<f64>, has_acked: bool) {
        self.keys_checked += 1;
        let observed = match observed {
            Observed::Unreadable => {
                self.unreadable += 1;
                return;
            }
            Observed::Absent if has_acked => {
                self.absent += 1;
                self.keep_example(index, ValueMismatch { key, expected, observed: None, value: None });
                return;
            }
            // Only commands without an answer: it may rightly have no row.
            Observed::Absent => {
                self.unsure += 1;
                return;
            }
            Observed::Number(n) => n,
        };
        let Some(expected) = expected else {
            self.unsure += 1;
            return;
        };
        let difference = (observed - expected).abs();
        // Sums of decimal amounts carry float rounding: equal within a relative 1e-9.
        if difference <= 1e-9 * expected.abs().max(1.0) {
            self.matched += 1;
            return;
        }
        self.mismatched += 1;
        self.largest_difference = self.largest_difference.max(difference);
        self.total_difference += difference;
        self.keep_example(
            index,
            ValueMismatch { key, expected: Some(expected), observed: Some(observed), value: None },
        );
    }

    /// Keeps the `EXAMPLES` lowest keys, whatever order they were read in.
    fn keep_example(&mut self, index: u64, example: ValueMismatch) {
        keep_lowest(&mut self.order, &mut self.mismatches, (index, 0), example);
    }

    /// The figures of several values (named, in the scenario's order): their sums, the
    /// first mismatches by key over all of them (each naming its value), and each value's
    /// own in `by_value`. One value is returned as it is (the one-value shape).
    pub fn of_values(mut values: Vec<(String, ValueCounts)>) -> ValueCounts {
        if values.len() == 1 {
            return values.pop().map(|(_, v)| v).unwrap_or_default();
        }
        let mut total = ValueCounts::default();
        for (index, (name, mut counts)) in values.into_iter().enumerate() {
            total.keys_checked += counts.keys_checked;
            total.matched += counts.matched;
            total.mismatched += counts.mismatched;
            total.absent += counts.absent;
            total.unsure += counts.unsure;
            total.unreadable += counts.unreadable;
            total.largest_difference = total.largest_difference.max(counts.largest_difference);
            total.total_difference += counts.total_difference;
            for (&(key, _), example) in counts.order.iter().zip(&mut counts.mismatches) {
                example.value = Some(name.clone());
                keep_lowest(&mut total.order, &mut total.mismatches, (key, index), example.clone());
            }
            counts.name = Some(name);
            total.by_value.push(counts);
        }
        total
    }
}

/// Keeps in `items` the `EXAMPLES` with the lowest `order`, whatever order they come in
/// (`order` holds their sort keys, parallel to `items`).
pub(crate) fn keep_lowest<K: Ord + Copy, T>(order: &mut Vec<K>, items: &mut Vec<T>, at: K, item: T) {
    let position = order.partition_point(|&o| o < at);
    if position >= EXAMPLES {
        return;
    }
    order.insert(position, at);
    items.insert(position, item);
    order.truncate(EXAMPLES);
    items.truncate(EXAMPLES);
}

/// The number `value` (its index) of key `key` must show after the run, from the
/// deltas; `None` when unsure.
pub fn expected_from_deltas(ledger: &Ledger, value: usize, key: u64, initial: f64) -> Option<f64> {
    match ledger.values.get(value).and_then(|changes| changes.get(&key)) {
        Some(change) if change.unsure => None,
        Some(change) if change.set => Some(change.sum),
        Some(change) => Some(initial + change.sum),
        None => Some(initial),
    }
}

/// True when key `key` had an acknowledged command: the read model must have its row.
pub fn has_acked(ledger: &Ledger, key: u64) -> bool {
    ledger.values.iter().any(|changes| changes.get(&key).is_some_and(|c| c.acked > 0))
        || ledger.acked_per_key.get(&key).is_some_and(|a| a.count > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_matches_mismatches_absent_and_unknowns() {
        let mut counts = ValueCounts::default();
        counts.add(1, "a".into(), Observed::Number(130.0), Some(130.0), true);
        counts.add(2, "b".into(), Observed::Number(1.0), None, true);
        counts.add(9, "c".into(), Observed::Number(97.0), Some(100.0), true);
        counts.add(4, "d".into(), Observed::Unreadable, Some(100.0), true);
        counts.add(5, "e".into(), Observed::Number(0.1 + 0.2), Some(0.3), true);
        counts.add(3, "f".into(), Observed::Absent, Some(0.0), true); // a row missing, though its sum is 0
        counts.add(6, "g".into(), Observed::Absent, None, false); // only unanswered commands: unsure
        assert_eq!(
            (counts.matched, counts.mismatched, counts.absent, counts.unsure, counts.unreadable),
            (2, 1, 1, 2, 1)
        );
        assert_eq!(counts.wrong(), 2);
        assert_eq!(counts.largest_difference, 3.0);
        // By key index, not in the order read.
        assert_eq!(
            counts.mismatches,
            vec![
                ValueMismatch { key: "f".into(), expected: Some(0.0), observed: None, value: None },
                ValueMismatch { key: "c".into(), expected: Some(100.0), observed: Some(97.0), value: None },
            ]
        );
    }

    #[test]
    fn keeps_the_lowest_keys() {
        let mut counts = ValueCounts::default();
        for index in (0..100u64).rev() {
            counts.add(index, format!("k{index}"), Observed::Number(1.0), Some(2.0), true);
        }
        assert_eq!(counts.mismatched, 100);
        let keys: Vec<&str> = counts.mismatches.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, (0..EXAMPLES).map(|i| format!("k{i}")).collect::<Vec<_>>());
    }

    #[test]
    fn several_values_sum_and_keep_their_own_figures() {
        let mut on_hand = ValueCounts::default();
        on_hand.add(3, "k3".into(), Observed::Number(5.0), Some(7.0), true);
        on_hand.add(1, "k1".into(), Observed::Number(1.0), Some(1.0), true);
        let mut reserved = ValueCounts::default();
        reserved.add(1, "k1".into(), Observed::Number(0.0), Some(4.0), true);
        reserved.add(3, "k3".into(), Observed::Absent, Some(2.0), true);
        let total = ValueCounts::of_values(vec![("on_hand".into(), on_hand), ("reserved".into(), reserved)]);
        assert_eq!((total.keys_checked, total.matched, total.mismatched, total.absent), (4, 1, 2, 1));
        assert_eq!((total.largest_difference, total.total_difference), (4.0, 6.0));
        let names: Vec<_> = total.by_value.iter().map(|v| (v.name.as_deref(), v.mismatched, v.absent)).collect();
        assert_eq!(names, [(Some("on_hand"), 1, 0), (Some("reserved"), 1, 1)]);
        // By key, then by value; each names its value.
        let order: Vec<_> = total.mismatches.iter().map(|m| (m.key.as_str(), m.value.as_deref())).collect();
        assert_eq!(order, [("k1", Some("reserved")), ("k3", Some("on_hand")), ("k3", Some("reserved"))]);
        // One value keeps the one-value shape.
        let one = ValueCounts::of_values(vec![("value".into(), ValueCounts::default())]);
        assert!(one.by_value.is_empty() && one.name.is_none());
    }
}
