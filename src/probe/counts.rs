//! Count accounting (`[verify] count`, issue 31): read models that are lists of facts
//! without a command ref (a wallet's history of CREDIT and DEBIT rows). Per key, the rows
//! a selector selects per command kind must equal that kind's acknowledged commands:
//! fewer are `missed`, more are `duplicates`, by count. A kind with an unanswered command
//! has no known count (it may or may not have been applied): `unsure`, not judged.

use super::ledger::KindCount;

/// Wrong kinds shown, at most (by key index, then command).
const EXAMPLES: usize = 20;

/// result.json's `counts`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct RowCounts {
    /// Keys whose rows were counted (or whose read failed).
    pub keys_checked: u64,
    /// Keys where every kind's rows equal its acknowledged commands.
    pub matched: u64,
    /// Rows missing, summed over the judged kinds of every key.
    pub missed: u64,
    /// Rows too many, summed likewise.
    pub duplicates: u64,
    /// Keys with no kind wrong but one whose count is unknown (an unanswered command).
    pub unsure: u64,
    /// Keys whose count query failed.
    pub unreadable: u64,
    /// Keys with a kind's count definitely wrong (what `count_mismatches` judges).
    pub mismatched_keys: u64,
    /// The first wrong kinds, by key index.
    pub keys: Vec<CountMismatch>,
    /// (key index, op) of `keys`, to keep the first by key (not in result.json).
    #[serde(skip)]
    order: Vec<(u64, u32)>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct CountMismatch {
    /// The key whose rows differ.
    pub key: String,
    /// The `[[command]]` whose rows these are.
    pub operation: String,
    /// Acknowledged commands of this kind: the rows it must show.
    pub expected: u64,
    /// Rows the read model shows.
    pub observed: u64,
}

/// One kind's rows on one key: what the ledger says and what the read model shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KindRows {
    pub op: u32,
    pub expected: KindCount,
    pub observed: u64,
}

impl RowCounts {
    /// Keys definitely wrong (what `count_mismatches` judges).
    pub fn wrong(&self) -> u64 {
        self.mismatched_keys
    }

    /// True when every key was read.
    pub fn complete(&self) -> bool {
        self.unreadable == 0
    }

    /// One key (`index` orders the examples): per counted kind its rows, `None` when the
    /// read failed; `name(op)` names a command for the examples.
    pub fn add(&mut self, index: u64, key: &str, rows: Option<&[KindRows]>, name: impl Fn(u32) -> String) {
        self.keys_checked += 1;
        let Some(rows) = rows else {
            self.unreadable += 1;
            return;
        };
        let (mut wrong, mut unsure) = (false, false);
        for kind in rows {
            if kind.expected.unanswered > 0 {
                unsure = true;
                continue;
            }
            let expected = u64::from(kind.expected.acked);
            if kind.observed == expected {
                continue;
            }
            wrong = true;
            self.missed += expected.saturating_sub(kind.observed);
            self.duplicates += kind.observed.saturating_sub(expected);
            let example =
                CountMismatch { key: key.to_owned(), operation: name(kind.op), expected, observed: kind.observed };
            self.keep_example((index, kind.op), example);
        }
        match (wrong, unsure) {
            (true, _) => self.mismatched_keys += 1,
            (false, true) => self.unsure += 1,
            (false, false) => self.matched += 1,
        }
    }

    /// Keeps the `EXAMPLES` lowest (key, op), whatever order the keys were read in.
    fn keep_example(&mut self, at: (u64, u32), example: CountMismatch) {
        super::values::keep_lowest(&mut self.order, &mut self.keys, at, example);
    }

    /// Adds another shard's counts (merge): sums, examples by key text.
    pub fn absorb(&mut self, other: &RowCounts) {
        self.keys_checked += other.keys_checked;
        self.matched += other.matched;
        self.missed += other.missed;
        self.duplicates += other.duplicates;
        self.unsure += other.unsure;
        self.unreadable += other.unreadable;
        self.mismatched_keys += other.mismatched_keys;
        self.keys.extend(other.keys.iter().cloned());
        self.keys.sort_by(|a, b| a.key.cmp(&b.key).then_with(|| a.operation.cmp(&b.operation)));
        self.keys.truncate(EXAMPLES);
    }
}

/// Each counted kind's rows on one key: the ledger's counts (none: no command of that
/// kind, 0 rows expected) against the number of values `rows` selected for it.
pub fn kinds_of(counted: &[u32], ledger: Option<&Vec<KindCount>>, observed: impl Fn(usize) -> u64) -> Vec<KindRows> {
    counted
        .iter()
        .enumerate()
        .map(|(at, &op)| KindRows {
            op,
            expected: ledger
                .and_then(|k| k.iter().find(|k| k.op == op))
                .copied()
                .unwrap_or(KindCount { op, ..KindCount::default() }),
            observed: observed(at),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(op: u32, acked: u32, unanswered: u32, observed: u64) -> KindRows {
        KindRows { op, expected: KindCount { op, acked, unanswered }, observed }
    }

    fn name(op: u32) -> String {
        ["deposit", "withdraw"][op as usize].to_owned()
    }

    #[test]
    fn classifies_missed_duplicates_unsure_and_unreadable() {
        let mut counts = RowCounts::default();
        counts.add(1, "w-1", Some(&[kind(0, 3, 0, 3), kind(1, 2, 0, 2)]), name); // right
        counts.add(2, "w-2", Some(&[kind(0, 3, 0, 1), kind(1, 1, 0, 2)]), name); // 2 missed, 1 extra
        counts.add(3, "w-3", Some(&[kind(0, 4, 1, 0), kind(1, 0, 0, 0)]), name); // unsure deposit
        counts.add(4, "w-4", Some(&[kind(0, 4, 1, 0), kind(1, 2, 0, 0)]), name); // unsure, withdraw wrong
        counts.add(5, "w-5", None, name);
        assert_eq!(
            (counts.keys_checked, counts.matched, counts.mismatched_keys, counts.unsure, counts.unreadable),
            (5, 1, 2, 1, 1)
        );
        assert_eq!((counts.missed, counts.duplicates), (4, 1));
        assert_eq!(counts.wrong(), 2);
        let listed: Vec<(&str, &str, u64, u64)> =
            counts.keys.iter().map(|m| (m.key.as_str(), m.operation.as_str(), m.expected, m.observed)).collect();
        assert_eq!(listed, [("w-2", "deposit", 3, 1), ("w-2", "withdraw", 1, 2), ("w-4", "withdraw", 2, 0)]);
    }

    #[test]
    fn a_key_without_commands_of_a_kind_expects_no_rows() {
        let ledger = vec![KindCount { op: 4, acked: 2, unanswered: 0 }];
        let kinds = kinds_of(&[4, 7], Some(&ledger), |at| [2, 1][at]);
        assert_eq!(kinds, [kind(4, 2, 0, 2), kind(7, 0, 0, 1)]);
        let mut counts = RowCounts::default();
        counts.add(0, "w-0", Some(&kinds), |op| op.to_string());
        assert_eq!((counts.duplicates, counts.mismatched_keys), (1, 1));
    }

    #[test]
    fn keeps_the_lowest_keys() {
        let mut counts = RowCounts::default();
        for index in (0..100u64).rev() {
            counts.add(index, &format!("w-{index}"), Some(&[kind(0, 1, 0, 0)]), name);
        }
        assert_eq!(counts.missed, 100);
        let keys: Vec<&str> = counts.keys.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, (0..EXAMPLES).map(|i| format!("w-{i}")).collect::<Vec<_>>());
    }
}
