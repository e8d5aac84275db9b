//! Which operation comes next: `read_write_ratio` splits queries from commands,
//! then each operation's weight picks within its kind.

use rand::distr::Distribution as _;
use rand::distr::weighted::WeightedIndex;
use rand::rngs::SmallRng;

use crate::scenario::{OpKind, Scenario};

pub struct OpChooser {
    index: WeightedIndex<f64>,
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
        let weights = scenario.operations.iter().map(|o| {
            let (share, total) = match o.kind {
                OpKind::Command => (writes, commands),
                OpKind::Query => (reads, queries),
            };
            if total == 0.0 { 0.0 } else { share * f64::from(o.weight) / total }
        });
        WeightedIndex::new(weights).ok().map(|index| OpChooser { index })
    }

    /// Index into `Scenario::operations`.
    pub fn choose(&self, rng: &mut SmallRng) -> usize {
        self.index.sample(rng)
    }
}
