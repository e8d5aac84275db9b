//! Is a change real? The bootstrap of Criterion's change detection, over the seconds a
//! run records instead of over benchmark iterations.
//!
//! Each side of a comparison is a set of runs (one run, or the runs of `run --repeat`).
//! A resample draws the side's runs with replacement, then each drawn run's seconds with
//! replacement, and computes the figures over the drawn seconds (latency percentiles from
//! the added histograms, goodput from the summed counts). Drawing runs as well as seconds
//! puts the run-to-run spread of a baseline set into the interval, which on a shared CI
//! machine is larger than the spread within a run. The change is new / baseline − 1; its
//! 95 % interval is the 2.5th–97.5th percentile of the resampled changes.

use rand::rngs::SmallRng;
use rand::{RngExt as _, SeedableRng as _};

use super::seconds::{Counts, RunSeconds, Second};

/// p50/p95/p99 (ms) of command latency, query latency and projection lag, then goodput (ops/s).
pub const FIGURES: usize = KINDS * QUANTILES.len() + 1;
pub const QUANTILES: [f64; 3] = [0.50, 0.95, 0.99];
pub const GOODPUT: usize = FIGURES - 1;
/// Commands, queries, projection lag: the histograms of a second.
const KINDS: usize = 3;

/// The index of a time figure: `kind` 0 command latency, 1 query latency, 2 projection
/// lag; `quantile` into QUANTILES.
pub const fn latency(kind: usize, quantile: usize) -> usize {
    kind * QUANTILES.len() + quantile
}

/// Resamples per comparison: enough for stable 2.5/97.5 percentiles, fast enough
/// (a few hundred ms for minute-long runs).
pub const RESAMPLES: usize = 2000;
/// Fixed, so the same folders always give the same verdict.
const SEED: u64 = 0x00c9_b5e4_c11a_55e5;

/// Samples beyond a percentile that each side needs before its change is judged: a
/// p99 of 30 probes is their maximum, and resampling a maximum gives an interval far
/// narrower than the figure's real run-to-run spread (identical 3-second runs moved a
/// lag p99 by +382 %). Ten samples in the tail is the usual floor for a percentile
/// bootstrap: 20 for p50, 200 for p95, 1,000 for p99.
pub const TAIL_SAMPLES: f64 = 10.0;

/// The samples a figure needs on each side before its change is judged (1 second for goodput).
pub fn min_samples(figure: usize) -> u64 {
    if figure == GOODPUT {
        return 1;
    }
    let q = QUANTILES[figure % QUANTILES.len()];
    (TAIL_SAMPLES / (1.0 - q)).round() as u64
}

/// A relative change, new / baseline − 1 (0.2 is 20 % higher), between the figures of
/// the pooled seconds of each side (`base`, `new`), with the samples behind each
/// (operations or probes; seconds for goodput).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change {
    pub point: f64,
    pub low: f64,
    pub high: f64,
    pub base: f64,
    pub new: f64,
    pub base_samples: u64,
    pub new_samples: u64,
}

impl Change {
    /// Whether both sides hold enough samples for the figure's interval to mean something.
    pub fn enough_samples(&self, figure: usize) -> bool {
        self.base_samples.min(self.new_samples) >= min_samples(figure)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Improved,
    WithinNoise,
    /// Worse beyond the noise, but by no more than the allowed regression.
    Worse,
    Regressed,
    /// Would be regressed, but the run's generator fell behind its schedule (issue 30):
    /// its latencies include the generator's own lateness, so it cannot prove a regression.
    Suspect,
    /// Not judged: a side holds too few samples for this percentile (`min_samples`).
    TooFewSamples,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Improved => "improved",
            Verdict::WithinNoise => "within noise",
            Verdict::Worse => "worse, allowed",
            Verdict::Regressed => "regressed",
            Verdict::Suspect => "suspect",
            Verdict::TooFewSamples => "too few samples",
        }
    }
}

/// Criterion's rule: a change is real when its whole interval lies outside the noise band
/// (±`noise`); a real change for the worse regresses when it is also larger than
/// `max_regression` (fractions, e.g. 0.05 and 0.10).
pub fn judge(change: &Change, lower_is_better: bool, noise: f64, max_regression: f64) -> Verdict {
    // In the "worse" direction: positive is worse whichever way the figure goes.
    let (point, low, high) = if lower_is_better {
        (change.point, change.low, change.high)
    } else {
        (-change.point, -change.high, -change.low)
    };
    if low > noise {
        if point > max_regression { Verdict::Regressed } else { Verdict::Worse }
    } else if high < -noise {
        Verdict::Improved
    } else {
        Verdict::WithinNoise
    }
}

/// The figures of a set of seconds; NaN where there is nothing to compute them from.
pub type Figures = [f64; FIGURES];

/// The change of every figure from `base` to `new`; `None` where either side lacks it.
pub fn changes(base: &[RunSeconds], new: &[RunSeconds]) -> [Option<Change>; FIGURES] {
    let support = Support::of(base.iter().chain(new));
    let base = Side::index(base, &support);
    let new = Side::index(new, &support);
    let mut pool = Pool::new(&support);
    let (base_point, base_samples) = base.pooled(&mut pool);
    let (new_point, new_samples) = new.pooled(&mut pool);
    let mut rng = SmallRng::seed_from_u64(SEED);
    let mut resampled: Vec<Vec<f64>> = (0..FIGURES).map(|_| Vec::with_capacity(RESAMPLES)).collect();
    for _ in 0..RESAMPLES {
        let b = base.resample(&mut pool, &mut rng);
        let n = new.resample(&mut pool, &mut rng);
        for (i, samples) in resampled.iter_mut().enumerate() {
            if let Some(change) = relative(b[i], n[i]) {
                samples.push(change);
            }
        }
    }
    std::array::from_fn(|i| {
        let point = relative(base_point[i], new_point[i])?;
        let samples = &mut resampled[i];
        // A resample can lack a figure (no query drawn); the interval needs most of them.
        if samples.len() < RESAMPLES / 2 {
            return None;
        }
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Some(Change {
            point,
            low: at(0.025),
            high: at(0.975),
            base: base_point[i],
            new: new_point[i],
            base_samples: base_samples[i],
            new_samples: new_samples[i],
        })
    })
}

/// How far each run of a baseline set is from the set's pooled figures, the largest
/// relative deviation per figure (0 for a set of one): the noise the set has shown.
pub fn spread(base: &[RunSeconds]) -> Figures {
    let support = Support::of(base.iter());
    let set = Side::index(base, &support);
    let mut pool = Pool::new(&support);
    let (pooled, _) = set.pooled(&mut pool);
    let mut widest = [0.0; FIGURES];
    for run in &set.runs {
        pool.clear();
        run.iter().for_each(|s| pool.add(s));
        let figures = pool.figures();
        for i in 0..FIGURES {
            if let Some(change) = relative(pooled[i], figures[i]) {
                widest[i] = f64::max(widest[i], change.abs());
            }
        }
    }
    widest
}

fn relative(base: f64, new: f64) -> Option<f64> {
    (base.is_finite() && new.is_finite() && base > 0.0).then(|| new / base - 1.0)
}

/// Every latency value of both sides, ascending: histograms become count arrays over it.
struct Support {
    values: Vec<u64>,
}

impl Support {
    fn of<'a>(runs: impl Iterator<Item = &'a RunSeconds>) -> Support {
        let mut values: Vec<u64> = runs
            .flat_map(|r| &r.seconds)
            .flat_map(|s| s.commands.iter().chain(&s.queries).chain(&s.lag).map(|&(value, _)| value))
            .collect();
        values.sort_unstable();
        values.dedup();
        Support { values }
    }

    fn index(&self, counts: &Counts) -> Vec<(u32, u64)> {
        counts.iter().map(|&(value, count)| (self.values.binary_search(&value).unwrap_or(0) as u32, count)).collect()
    }
}

struct IndexedSecond {
    kinds: [Vec<(u32, u64)>; KINDS],
    achieved: u64,
}

/// One side's runs, their seconds indexed into the support.
struct Side {
    runs: Vec<Vec<IndexedSecond>>,
}

impl Side {
    fn index(runs: &[RunSeconds], support: &Support) -> Side {
        let second = |s: &Second| IndexedSecond {
            kinds: [support.index(&s.commands), support.index(&s.queries), support.index(&s.lag)],
            achieved: s.achieved,
        };
        Side { runs: runs.iter().map(|r| r.seconds.iter().map(second).collect()).collect() }
    }

    /// The figures of all the side's seconds together, and the samples behind each.
    fn pooled(&self, pool: &mut Pool) -> (Figures, [u64; FIGURES]) {
        pool.clear();
        self.runs.iter().flatten().for_each(|s| pool.add(s));
        (pool.figures(), pool.samples())
    }

    fn resample(&self, pool: &mut Pool, rng: &mut SmallRng) -> Figures {
        pool.clear();
        for _ in 0..self.runs.len() {
            let run = &self.runs[rng.random_range(0..self.runs.len())];
            for _ in 0..run.len() {
                pool.add(&run[rng.random_range(0..run.len())]);
            }
        }
        pool.figures()
    }
}

/// Drawn seconds added up: a count per support value and kind, and the goodput.
struct Pool {
    counts: [Vec<u64>; KINDS],
    values: Vec<u64>,
    achieved: u64,
    seconds: u64,
}

impl Pool {
    fn new(support: &Support) -> Pool {
        let n = support.values.len();
        Pool { counts: std::array::from_fn(|_| vec![0; n]), values: support.values.clone(), achieved: 0, seconds: 0 }
    }

    fn clear(&mut self) {
        self.counts.iter_mut().for_each(|c| c.fill(0));
        self.achieved = 0;
        self.seconds = 0;
    }

    fn add(&mut self, second: &IndexedSecond) {
        for (kind, entries) in second.kinds.iter().enumerate() {
            for &(at, count) in entries {
                self.counts[kind][at as usize] += count;
            }
        }
        self.achieved += second.achieved;
        self.seconds += 1;
    }

    /// The samples behind each figure: a kind's count for its percentiles, seconds for goodput.
    fn samples(&self) -> [u64; FIGURES] {
        let mut samples = [self.seconds; FIGURES];
        for kind in 0..KINDS {
            let total = self.counts[kind].iter().sum();
            samples[latency(kind, 0)..latency(kind + 1, 0)].fill(total);
        }
        samples
    }

    fn figures(&self) -> Figures {
        let mut figures = [f64::NAN; FIGURES];
        for kind in 0..KINDS {
            let quantiles = quantiles(&self.counts[kind], &self.values);
            for (q, value) in quantiles.into_iter().enumerate() {
                figures[latency(kind, q)] = value.map_or(f64::NAN, |us| us as f64 / 1000.0);
            }
        }
        if self.seconds > 0 {
            figures[GOODPUT] = self.achieved as f64 / self.seconds as f64;
        }
        figures
    }
}

/// HdrHistogram's `value_at_quantile` over a count array: the first value whose
/// cumulative count reaches ⌈q·total⌉ (at least 1).
fn quantiles(counts: &[u64], values: &[u64]) -> [Option<u64>; 3] {
    let total: u64 = counts.iter().sum();
    let mut found = [None; 3];
    if total == 0 {
        return found;
    }
    let targets = QUANTILES.map(|q| ((q * total as f64).ceil() as u64).max(1));
    let mut cumulative = 0;
    let mut next = 0;
    for (count, value) in counts.iter().zip(values) {
        cumulative += count;
        while next < targets.len() && cumulative >= targets[next] {
            found[next] = Some(*value);
            next += 1;
        }
        if next == targets.len() {
            break;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_distr::{Distribution as _, Normal};

    /// A run of `n` seconds, each with 200 commands near `mean_us` (±10 %) and 100 queries
    /// near 300 µs, 300 answered per second.
    fn run(n: usize, mean_us: f64, seed: u64) -> RunSeconds {
        let mut rng = SmallRng::seed_from_u64(seed);
        let command = Normal::new(mean_us, mean_us * 0.1).unwrap();
        let query = Normal::new(300.0, 30.0).unwrap();
        let mut counts = |d: &Normal<f64>, k: usize| {
            let mut c: Counts = Vec::new();
            let mut values: Vec<u64> = (0..k).map(|_| d.sample(&mut rng).max(1.0) as u64).collect();
            values.sort_unstable();
            for v in values {
                match c.last_mut() {
                    Some((last, count)) if *last == v => *count += 1,
                    _ => c.push((v, 1)),
                }
            }
            c
        };
        let seconds = (0..n)
            .map(|_| Second {
                commands: counts(&command, 200),
                queries: counts(&query, 100),
                lag: Vec::new(),
                achieved: 300,
            })
            .collect();
        RunSeconds { seconds }
    }

    #[test]
    fn quantiles_follow_hdrhistogram() {
        let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        let values: Vec<u64> = (1..=1000).map(|i| i * 37 % 5003 + 1).collect();
        values.iter().for_each(|v| h.record(*v).unwrap());
        let counts: Counts = h.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect();
        let (values, counts): (Vec<u64>, Vec<u64>) = counts.into_iter().unzip();
        let found = quantiles(&counts, &values);
        for (q, value) in QUANTILES.iter().zip(found) {
            assert_eq!(value, Some(h.value_at_quantile(*q)), "q {q}");
        }
    }

    #[test]
    fn the_same_process_twice_is_within_noise_and_20_percent_slower_regresses() {
        let base = [run(30, 5000.0, 1)];
        let same = changes(&base, &[run(30, 5000.0, 2)]);
        let slower = changes(&base, &[run(30, 6000.0, 3)]);
        for (i, c) in same.iter().enumerate() {
            let lower_is_better = i != GOODPUT;
            let Some(c) = c else {
                assert!((latency(2, 0)..GOODPUT).contains(&i), "{i}: only the lag is missing (no probes)");
                continue;
            };
            assert!(c.low <= c.point && c.point <= c.high, "{i}: {c:?}");
            assert_eq!(judge(c, lower_is_better, 0.05, 0.10), Verdict::WithinNoise, "{i}: {c:?}");
        }
        for q in 0..3 {
            let c = slower[latency(0, q)].unwrap();
            assert!((c.point - 0.2).abs() < 0.03, "{c:?}");
            assert_eq!(judge(&c, true, 0.05, 0.10), Verdict::Regressed, "{c:?}");
            let query = slower[latency(1, q)].unwrap();
            assert_eq!(judge(&query, true, 0.05, 0.10), Verdict::WithinNoise, "{query:?}");
        }
    }

    #[test]
    fn a_baseline_set_carries_its_run_to_run_spread_into_the_interval() {
        // Three baseline runs 8 % apart: a new run 6 % off the pooled figure is noise.
        let set = [run(20, 5000.0, 1), run(20, 5400.0, 2), run(20, 5200.0, 3)];
        let one = [run(20, 5000.0, 1)];
        let new = [run(20, 5500.0, 4)];
        let wide = changes(&set, &new)[latency(0, 0)].unwrap();
        let narrow = changes(&one, &new)[latency(0, 0)].unwrap();
        assert!(wide.high - wide.low > 2.0 * (narrow.high - narrow.low), "{wide:?} vs {narrow:?}");
        let spread = spread(&set)[latency(0, 0)];
        assert!((0.02..0.06).contains(&spread), "{spread}");
        assert_eq!(spread_of_one(), 0.0);
    }

    fn spread_of_one() -> f64 {
        spread(&[run(5, 5000.0, 9)])[latency(0, 1)]
    }

    #[test]
    fn judging_follows_the_direction_of_better() {
        let up = Change { point: 0.2, low: 0.15, high: 0.25, base: 1.0, new: 1.2, base_samples: 1, new_samples: 1 };
        assert_eq!(judge(&up, true, 0.05, 0.10), Verdict::Regressed);
        assert_eq!(judge(&up, false, 0.05, 0.10), Verdict::Improved);
        assert_eq!(judge(&up, true, 0.05, 0.30), Verdict::Worse);
        let vague = Change { point: 0.2, low: -0.01, high: 0.4, base: 1.0, new: 1.2, base_samples: 1, new_samples: 1 };
        assert_eq!(judge(&vague, true, 0.05, 0.10), Verdict::WithinNoise, "the interval reaches into the noise");
        assert_eq!(
            judge(
                &Change { point: -0.3, low: -0.35, high: -0.25, base: 1.0, new: 0.7, base_samples: 1, new_samples: 1 },
                true,
                0.05,
                0.1
            ),
            Verdict::Improved
        );
    }

    #[test]
    fn a_percentile_needs_ten_samples_beyond_it_on_each_side() {
        assert_eq!([0, 1, 2].map(|q| min_samples(latency(2, q))), [20, 200, 1000]);
        assert_eq!(min_samples(GOODPUT), 1);
        // 30 s of 200 commands: 6,000 per side, enough for every percentile; 100 queries
        // a second for 5 s are 500: enough for p95, not for p99.
        let c = changes(&[run(30, 5000.0, 1)], &[run(5, 5000.0, 2)]);
        let commands = c[latency(0, 2)].unwrap();
        assert_eq!((commands.base_samples, commands.new_samples), (6000, 1000));
        assert!(commands.enough_samples(latency(0, 2)));
        let queries = [1, 2].map(|q| c[latency(1, q)].unwrap());
        assert_eq!(queries.map(|c| c.new_samples), [500, 500]);
        assert!(queries[0].enough_samples(latency(1, 1)) && !queries[1].enough_samples(latency(1, 2)));
        assert_eq!(c[GOODPUT].unwrap().new_samples, 5, "seconds");
    }

    #[test]
    fn a_missing_figure_has_no_change() {
        let mut no_queries = run(10, 5000.0, 1);
        no_queries.seconds.iter_mut().for_each(|s| s.queries.clear());
        let c = changes(&[run(10, 5000.0, 2)], &[no_queries]);
        assert!(c[latency(1, 0)].is_none());
        assert!(c[latency(0, 0)].is_some());
    }
}
