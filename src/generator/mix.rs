//! Which operation comes next: `read_write_ratio` splits queries from commands,
//! then each operation's weight picks within its kind.

use rand::distr::Distribution as _;
use rand::distr::weighted::WeightedIndex;
use rand::rngs::SmallRng;

use std::sync::Arc;

use crate::operation::created::{CreatedKeys, NO_KEY};
use crate::scenario::{KeyPicker, KeySource, OpKind, Scenario};

pub struct OpChooser {
    index: WeightedIndex<f64>,
    /// Per operation: does it act on created keys (`keys = "created"`)?
    needs_created: Vec<bool>,
    /// The same weights without those, for while no key has been created yet.
    before_creation: Option<WeightedIndex<f64>>,
}

impl OpChooser {
    /// `None` when no operation can ever be chosen (no weights, or a ratio with no matching operations).
    pub fn new(scenario: &Scenario) -> Option<OpChooser> {
        let kind_total = |kind: OpKind| -> f64 {
            scenario.operations.iter().filter(|o| o.kind == kind).map(|o| f64::from(o.weight)).sum()
        };
        let (commands, queries) = (kind_total(OpKind::Command), kind_total(OpKind::Query));
        let (mut writes, mut reads) = (f64::from(scenario.mix.writes), f64::from(scenario.mix.reads));
        // A kind with no operations gives its share to the other.
        if commands == 0.0 {
            writes = 0.0;
        }
        if queries == 0.0 {
            reads = 0.0;
        }
        let weights: Vec<f64> = scenario
            .operations
            .iter()
            .map(|o| {
                let (share, total) = match o.kind {
                    OpKind::Command => (writes, commands),
                    OpKind::Query => (reads, queries),
                };
                if total == 0.0 { 0.0 } else { share * f64::from(o.weight) / total }
            })
            .collect();
        let needs_created: Vec<bool> = scenario.operations.iter().map(|o| o.keys == KeySource::Created).collect();
        let before_creation = needs_created.iter().any(|n| *n).then(|| {
            WeightedIndex::new(weights.iter().zip(&needs_created).map(|(w, n)| if *n { 0.0 } else { *w })).ok()
        });
        WeightedIndex::new(weights).ok().map(|index| OpChooser {
            index,
            needs_created,
            before_creation: before_creation.flatten(),
        })
    }

    /// Index into `Scenario::operations`. While no key has been created, operations on
    /// created keys give their turn to the others (in their proportions).
    pub fn choose(&self, rng: &mut SmallRng, created_any: bool) -> usize {
        let op = self.index.sample(rng);
        match &self.before_creation {
            Some(others) if !created_any && self.needs_created[op] => others.sample(rng),
            _ => op,
        }
    }
}

/// The key of the next operation: none for a keyless one, the `[mix] keys` distribution,
/// or one of the ids created so far.
pub struct OpKeys {
    picker: KeyPicker,
    ops: Vec<(OpKind, Source)>,
    created: Arc<CreatedKeys>,
}

#[derive(Clone, Copy)]
enum Source {
    Keyless,
    Mix,
    Created,
}

impl OpKeys {
    pub fn new(scenario: &Scenario, created: Arc<CreatedKeys>) -> OpKeys {
        let ops = scenario
            .operations
            .iter()
            .map(|o| {
                let source = match o.keys {
                    KeySource::Created => Source::Created,
                    KeySource::Mix if o.is_keyless() => Source::Keyless,
                    KeySource::Mix => Source::Mix,
                };
                (o.kind, source)
            })
            .collect();
        OpKeys { picker: KeyPicker::new(&scenario.mix.keys), ops, created }
    }

    pub fn pick(&mut self, op: usize, rng: &mut SmallRng) -> u64 {
        let (kind, source) = self.ops[op];
        match source {
            // Keyless operations draw nothing: the other operations' keys stay as they were.
            Source::Keyless => NO_KEY,
            Source::Mix => self.picker.pick(kind, rng),
            Source::Created => self.created.pick(rng).unwrap_or(NO_KEY),
        }
    }

    pub fn created_any(&self) -> bool {
        !self.created.is_empty()
    }
}
