//! The saturation search as a pure state machine: which rate to try next, given what
//! passed and failed so far (issue 10).
//!
//! Grow geometrically from the start rate until a step fails (or, when the start already
//! fails, shrink until one passes); then bisect between the highest passing and the
//! lowest failing rate until they are within the precision. The answer is that bracket.

use crate::scenario::SaturateSpec;

#[derive(Debug, Clone)]
pub struct Search {
    spec: SaturateSpec,
    highest_pass: Option<f64>,
    lowest_fail: Option<f64>,
}

/// Where a finished search stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bracket {
    /// The answer lies in (pass, fail]: `pass` held, `fail` did not.
    Between { pass: f64, fail: f64 },
    /// Even `max_rate` held: the target is faster than the search may go.
    AtLeast(f64),
    /// Even `min_rate` failed.
    Below(f64),
}

impl Search {
    /// A search starting at `start` (the scenario's `start_rate`, or a hint such as the
    /// previous projector count's answer), within the spec's bounds.
    pub fn new(spec: SaturateSpec, start: Option<f64>) -> Search {
        let mut spec = spec;
        if let Some(start) = start {
            spec.start_rate = start.clamp(spec.min_rate, spec.max_rate);
        }
        Search { spec, highest_pass: None, lowest_fail: None }
    }

    /// Records a step's outcome at `rate`.
    pub fn record(&mut self, rate: f64, passed: bool) {
        if passed {
            self.highest_pass = Some(self.highest_pass.map_or(rate, |p| p.max(rate)));
        } else {
            self.lowest_fail = Some(self.lowest_fail.map_or(rate, |f| f.min(rate)));
        }
    }

    /// The next rate to try, or `None` when the bracket is tight enough (or a bound is hit).
    pub fn next_rate(&self) -> Option<f64> {
        let spec = &self.spec;
        let next = match (self.highest_pass, self.lowest_fail) {
            (None, None) => spec.start_rate,
            (Some(pass), None) if pass >= spec.max_rate => return None,
            (Some(pass), None) => (pass * spec.growth).min(spec.max_rate),
            (None, Some(fail)) if fail <= spec.min_rate => return None,
            (None, Some(fail)) => (fail / spec.growth).max(spec.min_rate),
            // A pass above a failure (a noisy target): the higher failure bounds nothing
            // new; judge by the lowest failure above the highest pass.
            (Some(pass), Some(fail)) if fail <= pass => return None,
            (Some(pass), Some(fail)) if fail - pass <= spec.precision * pass => return None,
            (Some(pass), Some(fail)) => {
                let middle = round_rate((pass + fail) / 2.0);
                // Finer than the rounding: the bracket is as tight as rates are written.
                return (middle > pass && middle < fail).then_some(middle);
            }
        };
        Some(round_rate(next))
    }

    pub fn bracket(&self) -> Bracket {
        match (self.highest_pass, self.lowest_fail) {
            (Some(pass), Some(fail)) if fail > pass => Bracket::Between { pass, fail },
            (Some(pass), _) => Bracket::AtLeast(pass),
            (None, Some(fail)) => Bracket::Below(fail),
            (None, None) => Bracket::Below(self.spec.start_rate),
        }
    }
}

/// Three significant digits: rates a person can read and pass to `--rate` again.
fn round_rate(rate: f64) -> f64 {
    if rate <= 0.0 || !rate.is_finite() {
        return rate;
    }
    let scale = 10f64.powi(2 - rate.log10().floor() as i32);
    (rate * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SaturateSpec {
        SaturateSpec {
            start_rate: 100.0,
            max_rate: 10_000.0,
            min_rate: 1.0,
            precision: 0.05,
            ..SaturateSpec::default()
        }
    }

    /// Runs a search against a target that holds every rate up to `capacity`.
    fn search(capacity: f64, start: Option<f64>) -> (Bracket, Vec<f64>) {
        let mut search = Search::new(spec(), start);
        let mut tried = Vec::new();
        while let Some(rate) = search.next_rate() {
            assert!(tried.len() < 40, "the search does not end: {tried:?}");
            tried.push(rate);
            search.record(rate, rate <= capacity);
        }
        (search.bracket(), tried)
    }

    #[test]
    fn grows_then_bisects_to_the_precision() {
        let (bracket, tried) = search(730.0, None);
        assert_eq!(&tried[..4], [100.0, 200.0, 400.0, 800.0]);
        let Bracket::Between { pass, fail } = bracket else { panic!("{bracket:?}") };
        assert!(pass <= 730.0 && fail > 730.0 && (fail - pass) / pass <= 0.05, "{pass} {fail}");
        assert!(tried.len() <= 9, "{tried:?}");
    }

    #[test]
    fn shrinks_from_a_failing_start() {
        let (bracket, tried) = search(30.0, None);
        assert_eq!(&tried[..3], [100.0, 50.0, 25.0]);
        let Bracket::Between { pass, fail } = bracket else { panic!("{bracket:?}") };
        assert!(pass <= 30.0 && fail > 30.0 && (fail - pass) / pass <= 0.05);
    }

    #[test]
    fn a_hint_starts_the_search_there() {
        let (_, tried) = search(1500.0, Some(700.0));
        assert_eq!(&tried[..2], [700.0, 1400.0]);
    }

    #[test]
    fn bounds_end_the_search() {
        assert_eq!(search(1e9, None).0, Bracket::AtLeast(10_000.0));
        assert_eq!(search(0.1, None).0, Bracket::Below(1.0));
    }

    #[test]
    fn a_precision_finer_than_the_rounding_still_ends() {
        let mut search = Search::new(SaturateSpec { precision: 0.001, ..spec() }, None);
        search.record(100.0, true);
        search.record(100.9, false);
        assert_eq!(search.next_rate(), None);
    }

    #[test]
    fn rates_are_rounded_to_three_digits() {
        assert_eq!(round_rate(123.456), 123.0);
        assert_eq!(round_rate(0.012345), 0.0123);
        assert_eq!(round_rate(98765.0), 98800.0);
    }
}
