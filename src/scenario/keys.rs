//! Key distributions (PRODUCT §4 `[mix] keys`): which key the next operation touches.
//! Deterministic from the caller's random generator.

use rand::RngExt as _;
use rand::distr::Distribution as _;
use rand::rngs::SmallRng;
use rand_distr::Zipf;

use super::{KeyDistribution, KeySpec, OpKind};

/// Recently written keys remembered for `latest`.
const RECENT: usize = 1024;

/// Picks key indices in `0..count`.
#[derive(Debug, Clone)]
pub struct KeyPicker {
    count: u64,
    kind: Picker,
}

#[derive(Debug, Clone)]
enum Picker {
    Uniform,
    Zipf(Zipf<f64>),
    Hotspot { hot_keys: u64, hot_traffic: f64 },
    Sequential { next: u64 },
    Latest { next: u64, recent: Vec<u64>, recency: Zipf<f64> },
}

impl KeyPicker {
    pub fn new(spec: &KeySpec) -> KeyPicker {
        let count = spec.count.max(1);
        let kind = match spec.distribution {
            KeyDistribution::Uniform => Picker::Uniform,
            KeyDistribution::Zipf { exponent } => Picker::Zipf(
                Zipf::new(count as f64, exponent).unwrap_or_else(|_| Zipf::new(count as f64, 1.0).expect("valid")),
            ),
            KeyDistribution::Hotspot { hot_fraction, hot_traffic } => Picker::Hotspot {
                hot_keys: ((count as f64 * hot_fraction).round() as u64).clamp(1, count),
                hot_traffic,
            },
            KeyDistribution::Sequential => Picker::Sequential { next: 0 },
            KeyDistribution::Latest => Picker::Latest {
                next: 0,
                recent: Vec::with_capacity(RECENT),
                recency: Zipf::new(RECENT as f64, 1.0).expect("valid"),
            },
        };
        KeyPicker { count, kind }
    }

    /// The key of the next operation of `kind`.
    pub fn pick(&mut self, kind: OpKind, rng: &mut SmallRng) -> u64 {
        let count = self.count;
        match &mut self.kind {
            Picker::Uniform => rng.random_range(0..count),
            // Rank 1 is the most popular key: index 0.
            Picker::Zipf(zipf) => (zipf.sample(rng) as u64).saturating_sub(1).min(count - 1),
            Picker::Hotspot { hot_keys, hot_traffic } => {
                if *hot_keys >= count || rng.random_bool(hot_traffic.clamp(0.0, 1.0)) {
                    rng.random_range(0..*hot_keys)
                } else {
                    rng.random_range(*hot_keys..count)
                }
            }
            Picker::Sequential { next } => {
                let key = *next % count;
                *next += 1;
                key
            }
            Picker::Latest { next, recent, recency } => match kind {
                OpKind::Command => {
                    let key = *next % count;
                    *next += 1;
                    if recent.len() == RECENT {
                        recent.remove(0);
                    }
                    recent.push(key);
                    key
                }
                OpKind::Query if recent.is_empty() => rng.random_range(0..count),
                OpKind::Query => {
                    // Zipf over recency: the newest write is the most likely read.
                    let back = (recency.sample(rng) as usize).saturating_sub(1).min(recent.len() - 1);
                    recent[recent.len() - 1 - back]
                }
            },
        }
    }
}
