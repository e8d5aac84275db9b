//! Value accounting (`[verify] value`): a number per key in the read model (a quantity,
//! a balance) must equal what the run did to it, the sum of the acknowledged commands'
//! deltas from `initial`, or the same number read from the write side (issue 12).

use super::ledger::Ledger;

/// Mismatches shown by key, at most.
const EXAMPLES: usize = 20;

/// result.json's `values`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ValueCounts {
    /// Keys whose number was checked.
    pub keys_checked: u64,
    /// Keys whose number equals the expected one.
    pub matched: u64,
    /// Keys whose number differs from the expected one.
    pub mismatched: u64,
    /// Keys whose expected number is not known: a command with a change got no answer.
    pub unsure: u64,
    /// Keys that could not be read (or whose answer had no number at `value`).
    pub unreadable: u64,
    /// Largest |observed − expected| among mismatched keys.
    pub largest_difference: f64,
    /// Sum of |observed − expected| over mismatched keys.
    pub total_difference: f64,
    /// The first mismatches, by key.
    pub mismatches: Vec<ValueMismatch>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ValueMismatch {
    pub key: String,
    pub expected: f64,
    pub observed: f64,
}

impl ValueCounts {
    /// True when every written key was read and judged.
    pub fn complete(&self) -> bool {
        self.unreadable == 0
    }

    /// One key: `observed` is the read model's number (`None`: unreadable), `expected`
    /// what it must be (`None`: not known).
    pub fn add(&mut self, key: String, observed: Option<f64>, expected: Option<f64>) {
        self.keys_checked += 1;
        let (Some(observed), Some(expected)) = (observed, expected) else {
            if observed.is_none() {
                self.unreadable += 1;
            } else {
                self.unsure += 1;
            }
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
        if self.mismatches.len() < EXAMPLES {
            self.mismatches.push(ValueMismatch { key, expected, observed });
        }
    }
}

/// The number key `key` must show after the run, from the deltas; `None` when unsure.
pub fn expected_from_deltas(ledger: &Ledger, key: u64, initial: f64) -> Option<f64> {
    match ledger.values.get(&key) {
        Some(change) if change.unsure => None,
        Some(change) => Some(initial + change.sum),
        None => Some(initial),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::ledger::KeyChange;

    #[test]
    fn counts_matches_mismatches_and_unknowns() {
        let mut ledger = Ledger::default();
        ledger.values.insert(1, KeyChange { sum: 30.0, unsure: false });
        ledger.values.insert(2, KeyChange { sum: 5.0, unsure: true });
        let mut counts = ValueCounts::default();
        counts.add("a".into(), Some(130.0), expected_from_deltas(&ledger, 1, 100.0));
        counts.add("b".into(), Some(1.0), expected_from_deltas(&ledger, 2, 100.0));
        counts.add("c".into(), Some(97.0), expected_from_deltas(&ledger, 3, 100.0));
        counts.add("d".into(), None, Some(100.0));
        counts.add("e".into(), Some(0.1 + 0.2), Some(0.3));
        assert_eq!((counts.matched, counts.mismatched, counts.unsure, counts.unreadable), (2, 1, 1, 1));
        assert_eq!(counts.largest_difference, 3.0);
        assert_eq!(counts.mismatches, vec![ValueMismatch { key: "c".into(), expected: 100.0, observed: 97.0 }]);
    }
}
