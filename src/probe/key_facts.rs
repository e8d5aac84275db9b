//! What the harness itself knows of each key while the load runs (issue 31), for lag
//! probes on read models that carry nothing of the command: a balance, a history list
//! without refs. `[projection] until` may read, for the probed command:
//!
//! - `{{key.acked}}`: the acknowledged commands of the probe's set (`[projection]
//!   commands`) on its key, this one included: `count($[*]) >= {{key.acked}}` holds once
//!   every one of them has its row (the semantics of `/version >= {{capture.version}}`);
//! - `{{key.expected}}`: `[verify] value`'s number after it, `initial` + the deltas of
//!   the commands acknowledged on the key so far (a set, `"=/qty"`, restarts the sum);
//! - `{{body./pointer}}`: a value of the request body it sent.
//!
//! Decisions:
//! - Only an acknowledged command has an event, so only one is probed: a refusal, a
//!   conflict, an error status or no answer starts no probe and adds nothing here.
//! - A probe reading `{{key.acked}}` or `{{key.expected}}` is **ambiguous** (counted,
//!   not probed) when another command on its key that changes what `until` reads (a
//!   probed one or one with a delta) overlapped it in time, or one before it got no
//!   answer (`operation::flights`): the app may have ordered them either way, or applied
//!   the unanswered one, so the count or number after this command is not known.
//! - The read model may show a later state before a poll sees this command's own: a
//!   command acknowledged after this one on the key was sent after it, so the app
//!   applied this one first. A probe reading `{{key.expected}}` is therefore also
//!   satisfied by `until` rendered for each command acknowledged later on its key while
//!   it waits (at most `MAX_LATER_STATES`); `{{key.acked}}` needs nothing of the kind
//!   (`>=` holds for later counts).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use crate::operation::created::NO_KEY;
use crate::operation::{Executed, Outcome, ValueChange};
use crate::scenario::template::{CaptureLookup, FactName};
use crate::scenario::{ExpectedValue, MAX_VALUES, ProjectionSpec, VerifySpec};

/// Later states a waiting probe accepts at most (a key written very often while the
/// read model is far behind).
pub const MAX_LATER_STATES: usize = 1024;

/// Which facts `[projection] until` reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FactsUsed {
    pub acked: bool,
    pub expected: bool,
    pub body: bool,
}

impl FactsUsed {
    pub fn of(spec: &ProjectionSpec) -> FactsUsed {
        let mut used = FactsUsed::default();
        for fact in spec.until.value.facts() {
            match fact {
                FactName::KeyAcked => used.acked = true,
                FactName::KeyExpected(_) => used.expected = true,
                FactName::Body(_) => used.body = true,
            }
        }
        used
    }

    /// Facts kept per key: overlapping commands make a probe ambiguous.
    pub fn per_key(self) -> bool {
        self.acked || self.expected
    }
}

/// Until-values rendered for the commands acknowledged on a key after a probed one.
pub type LaterStates = Mutex<Vec<String>>;

/// Per key: what was acknowledged so far.
pub struct KeyFacts {
    used: FactsUsed,
    /// Per value: `[verify] initial` (value accounting by deltas).
    initial: [f64; MAX_VALUES],
    /// The values' names, in the scenario's order (`{{key.expected.NAME}}`).
    pub names: Vec<String>,
    keys: Mutex<HashMap<u64, KeyState>>,
}

#[derive(Default)]
struct KeyState {
    /// Acknowledged commands of the probe's set.
    acked: u64,
    /// Per value: sum of acknowledged deltas (from `initial`, or the number itself after a set).
    sum: [f64; MAX_VALUES],
    set: [bool; MAX_VALUES],
    /// Per value: a delta was not a number in its body: the number is not known any more.
    unknown: [bool; MAX_VALUES],
    /// Probes waiting on this key that take later states.
    watchers: Vec<Weak<LaterStates>>,
}

/// One command's facts, right after its acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapshot {
    pub acked: u64,
    /// Per value, `None`: not known (a delta that was not a number).
    pub expected: [Option<f64>; MAX_VALUES],
}

impl KeyFacts {
    pub fn new(used: FactsUsed, verify: Option<&VerifySpec>) -> KeyFacts {
        let values = verify.map_or(&[][..], |v| &v.values[..]);
        let mut initial = [0.0; MAX_VALUES];
        for (slot, value) in initial.iter_mut().zip(values) {
            if let ExpectedValue::Deltas { initial, .. } = &value.expected {
                *slot = *initial;
            }
        }
        let names = values.iter().map(|v| v.name.clone()).collect();
        KeyFacts { used, initial, names, keys: Mutex::default() }
    }

    /// Adds a finished command (`in_set`: one of the probed commands): its key's facts
    /// after it, when it was acknowledged on a key, with the probes that wait for later
    /// states on that key.
    pub fn record(&self, in_set: bool, executed: &Executed) -> Option<(Snapshot, Vec<Arc<LaterStates>>)> {
        if executed.outcome != Outcome::Ok || executed.key == NO_KEY {
            return None;
        }
        if !in_set && executed.change.is_none() {
            return None;
        }
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let state = keys.entry(executed.key).or_default();
        state.acked += u64::from(in_set);
        let mut expected = [None; MAX_VALUES];
        for (i, change) in executed.change.0.iter().enumerate().take(self.names.len().max(1)) {
            match *change {
                ValueChange::None => {}
                ValueChange::Add(n) => state.sum[i] += n,
                ValueChange::Set(n) => (state.sum[i], state.set[i]) = (n, true),
                ValueChange::Unknown => state.unknown[i] = true,
            }
            expected[i] = match (state.unknown[i], state.set[i]) {
                (true, _) => None,
                (false, true) => Some(state.sum[i]),
                (false, false) => Some(self.initial[i] + state.sum[i]),
            };
        }
        let mut waiting = Vec::new();
        state.watchers.retain(|w| match w.upgrade() {
            Some(states) => {
                waiting.push(states);
                true
            }
            None => false,
        });
        Some((Snapshot { acked: state.acked, expected }, waiting))
    }

    /// A probe on `key` takes the states acknowledged after its command from now on.
    pub fn watch(&self, key: u64) -> Option<Arc<LaterStates>> {
        if !self.used.expected {
            return None;
        }
        let states = Arc::new(LaterStates::default());
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.entry(key).or_default().watchers.push(Arc::downgrade(&states));
        Some(states)
    }
}

/// What `until` renders for one command: its captures and its facts.
pub struct CommandFacts<'a> {
    pub captures: &'a Vec<(String, String)>,
    /// `[verify] value`'s names, in the order of `Snapshot::expected`.
    pub value_names: &'a [String],
    pub snapshot: Option<Snapshot>,
    /// The request body, as JSON (`None`: not kept, or not JSON).
    pub body: Option<serde_json::Value>,
}

impl CaptureLookup for CommandFacts<'_> {
    fn capture(&self, name: &str) -> Option<&str> {
        self.captures.capture(name)
    }

    fn fact(&self, name: &FactName) -> Option<String> {
        match name {
            FactName::KeyAcked => self.snapshot.map(|s| s.acked.to_string()),
            // The shortest text that reads back as the same f64.
            FactName::KeyExpected(name) => {
                // Plain `{{key.expected}}` is the one value (load checks there is one).
                let index = match name {
                    None => 0,
                    Some(name) => self.value_names.iter().position(|n| n == name)?,
                };
                self.snapshot.and_then(|s| s.expected.get(index).copied().flatten()).map(|n| n.to_string())
            }
            FactName::Body(pointer) => self.body.as_ref()?.pointer(pointer).map(crate::scenario::selector::text_of),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn executed(key: u64, outcome: Outcome, change: ValueChange) -> Executed {
        let mut changes = crate::operation::ValueChanges::NONE;
        changes.0[0] = change;
        let change = changes;
        let now = Instant::now();
        Executed {
            sent: now,
            done: now,
            outcome,
            body: bytes::Bytes::new(),
            captured: Vec::new(),
            key,
            change,
            overlapped: false,
            request_body: None,
        }
    }

    /// The expected numbers of one value.
    fn one(n: Option<f64>) -> [Option<f64>; MAX_VALUES] {
        let mut all = [None; MAX_VALUES];
        all[0] = n;
        all
    }

    #[test]
    fn counts_and_sums_acknowledged_commands_per_key() {
        let facts = KeyFacts {
            used: FactsUsed { expected: true, ..FactsUsed::default() },
            initial: [10.0; MAX_VALUES],
            names: vec!["value".into()],
            keys: Mutex::default(),
        };
        let snap = |in_set, key, outcome, change| facts.record(in_set, &executed(key, outcome, change)).map(|(s, _)| s);
        assert_eq!(
            snap(true, 1, Outcome::Ok, ValueChange::Add(0.1)),
            Some(Snapshot { acked: 1, expected: one(Some(10.1)) })
        );
        assert_eq!(snap(true, 1, Outcome::Rejected, ValueChange::Add(-99.0)), None, "a refusal adds nothing");
        assert_eq!(snap(true, 1, Outcome::Conflict, ValueChange::Add(-99.0)), None, "nor a conflict");
        let later = facts.watch(1).unwrap();
        // A command outside the set changes the number, not the count.
        assert_eq!(
            snap(false, 1, Outcome::Ok, ValueChange::Add(-0.1)),
            Some(Snapshot { acked: 1, expected: one(Some(10.0)) })
        );
        assert_eq!(
            snap(true, 1, Outcome::Ok, ValueChange::Set(3.0)),
            Some(Snapshot { acked: 2, expected: one(Some(3.0)) })
        );
        assert_eq!(snap(true, 2, Outcome::Ok, ValueChange::Unknown), Some(Snapshot { acked: 1, expected: one(None) }));
        assert_eq!(snap(true, NO_KEY, Outcome::Ok, ValueChange::Add(1.0)), None);
        // The watcher was handed to both later commands on key 1.
        let (_, waiting) = facts.record(false, &executed(1, Outcome::Ok, ValueChange::Add(1.0))).unwrap();
        assert!(Arc::ptr_eq(&waiting[0], &later));
        drop((waiting, later));
        let (_, waiting) = facts.record(false, &executed(1, Outcome::Ok, ValueChange::Add(1.0))).unwrap();
        assert!(waiting.is_empty(), "a finished probe is forgotten");
    }

    #[test]
    fn renders_the_facts_of_one_command() {
        let captures = vec![("v".to_owned(), "7".to_owned())];
        let body = serde_json::from_str(r#"{"amount": 12.5, "note": {"text": "hi"}}"#).ok();
        let names = vec!["value".to_owned()];
        let facts = CommandFacts {
            captures: &captures,
            value_names: &names,
            snapshot: Some(Snapshot { acked: 3, expected: one(Some(0.1 + 0.2)) }),
            body,
        };
        assert_eq!(facts.fact(&FactName::KeyAcked).as_deref(), Some("3"));
        assert_eq!(facts.fact(&FactName::KeyExpected(None)).as_deref(), Some("0.30000000000000004"));
        assert_eq!(facts.fact(&FactName::Body("/amount".into())).as_deref(), Some("12.5"));
        assert_eq!(facts.fact(&FactName::Body("/note/text".into())).as_deref(), Some("hi"));
        assert_eq!(facts.fact(&FactName::Body("/nothing".into())), None);
        assert_eq!(facts.capture("v"), Some("7"));
    }

    #[test]
    fn renders_the_named_value() {
        let (captures, names) = (Vec::new(), vec!["on_hand".to_owned(), "reserved".to_owned()]);
        let mut expected = [None; MAX_VALUES];
        (expected[0], expected[1]) = (Some(7.0), Some(2.0));
        let facts = CommandFacts {
            captures: &captures,
            value_names: &names,
            snapshot: Some(Snapshot { acked: 1, expected }),
            body: None,
        };
        let named = |name: &str| facts.fact(&FactName::KeyExpected(Some(name.into())));
        assert_eq!((named("on_hand").as_deref(), named("reserved").as_deref()), (Some("7"), Some("2")));
        assert_eq!(named("nothing"), None);
    }

    #[test]
    fn sums_each_value_apart() {
        let facts = KeyFacts {
            used: FactsUsed { expected: true, ..FactsUsed::default() },
            initial: [10.0, 0.0, 0.0, 0.0],
            names: vec!["on_hand".into(), "reserved".into()],
            keys: Mutex::default(),
        };
        let mut both = executed(1, Outcome::Ok, ValueChange::Add(-3.0));
        both.change.0[1] = ValueChange::Add(3.0);
        let (snapshot, _) = facts.record(true, &both).unwrap();
        assert_eq!(&snapshot.expected[..2], [Some(7.0), Some(3.0)]);
        let mut reserved_only = executed(1, Outcome::Ok, ValueChange::None);
        reserved_only.change.0[1] = ValueChange::Unknown;
        let (snapshot, _) = facts.record(false, &reserved_only).unwrap();
        assert_eq!(&snapshot.expected[..2], [Some(7.0), None]);
    }
}
