//! When operations are due: the open model's intended start times and the closed
//! model's user count, both from the scenario's stages.

use std::time::Duration;

use crate::scenario::Stage;

/// Intended start offsets (from the start of the load) of an open-model run.
///
/// Over a stage that goes linearly from rate `a` to rate `b` in `D` seconds, the
/// number of arrivals by time `t` is `N(t) = a·t + (b−a)·t²/(2D)`; operation `n`
/// is due when the count reaches `n`. Fractions carry across stages, so a run emits
/// `Σ (a+b)/2 · D` operations (rounded up), at exact times, whatever the rate.
#[derive(Debug, Clone)]
pub struct OpenSchedule {
    stages: Vec<Stage>,
    stage: usize,
    /// Offset at which the current stage starts, in seconds.
    stage_start_s: f64,
    /// Arrivals counted before the current stage (fractional).
    count_before_stage: f64,
    /// Index of the next operation.
    next: u64,
}

impl OpenSchedule {
    pub fn new(stages: &[Stage]) -> OpenSchedule {
        OpenSchedule { stages: stages.to_vec(), stage: 0, stage_start_s: 0.0, count_before_stage: 0.0, next: 0 }
    }

    /// A constant rate for a duration (setup phases).
    pub fn constant(rate: f64, duration: Duration) -> OpenSchedule {
        OpenSchedule::new(&[Stage { duration, from: rate, to: rate }])
    }

    /// Arrivals the whole schedule emits.
    pub fn expected_total(stages: &[Stage]) -> f64 {
        stages.iter().map(|s| (s.from + s.to) / 2.0 * s.duration.as_secs_f64()).sum()
    }
}

impl Iterator for OpenSchedule {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        loop {
            let stage = self.stages.get(self.stage)?;
            let (a, b) = (stage.from.max(0.0), stage.to.max(0.0));
            let d = stage.duration.as_secs_f64();
            let k = self.next as f64 - self.count_before_stage;
            // Solve N(t) = k for t in this stage; the form 2k / (a + √(a² + 2(b−a)k/D))
            // is stable for rising, falling and constant rates alike.
            let t = if k <= 0.0 {
                Some(0.0)
            } else {
                let disc = a * a + 2.0 * (b - a) * k / d.max(f64::MIN_POSITIVE);
                let denom = a + disc.max(0.0).sqrt();
                (disc >= 0.0 && denom > 0.0).then(|| 2.0 * k / denom)
            };
            match t {
                Some(t) if t < d => {
                    self.next += 1;
                    return Some(Duration::from_secs_f64(self.stage_start_s + t));
                }
                _ => {
                    self.count_before_stage += (a + b) / 2.0 * d;
                    self.stage_start_s += d;
                    self.stage += 1;
                }
            }
        }
    }
}

/// Users active at `offset` in a closed-model run (the stage's `from → to`, linear).
pub fn users_at(stages: &[Stage], offset: Duration) -> usize {
    let mut start = Duration::ZERO;
    for stage in stages {
        let end = start + stage.duration;
        if offset < end {
            let progress = (offset - start).as_secs_f64() / stage.duration.as_secs_f64().max(f64::MIN_POSITIVE);
            return (stage.from + (stage.to - stage.from) * progress).round().max(0.0) as usize;
        }
        start = end;
    }
    0
}

// With the stages it reads: the loader bounds a closed model's requests in flight by it.
pub use crate::scenario::max_users;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stage(secs: f64, from: f64, to: f64) -> Stage {
        Stage { duration: Duration::from_secs_f64(secs), from, to }
    }

    #[test]
    fn constant_rate_is_evenly_spaced() {
        let times: Vec<_> = OpenSchedule::new(&[stage(1.0, 4.0, 4.0)]).collect();
        assert_eq!(times, [0.0, 0.25, 0.5, 0.75].map(Duration::from_secs_f64));
    }

    #[test]
    fn ramp_accelerates() {
        let times: Vec<_> = OpenSchedule::new(&[stage(10.0, 0.0, 100.0)]).collect();
        assert_eq!(times.len(), 500);
        let first_half = times.iter().filter(|t| t.as_secs_f64() < 5.0).count();
        assert_eq!(first_half, 125); // N(5) = 100·25/20
    }

    #[test]
    fn closed_users_follow_stages() {
        let stages = [stage(10.0, 2.0, 2.0), stage(10.0, 0.0, 10.0)];
        assert_eq!(users_at(&stages, Duration::from_secs(3)), 2);
        assert_eq!(users_at(&stages, Duration::from_secs(15)), 5);
        assert_eq!(users_at(&stages, Duration::from_secs(25)), 0);
        assert_eq!(max_users(&stages), 10);
    }

    proptest! {
        /// A schedule emits rate × duration operations (rounded up), in order, inside the stages.
        #[test]
        fn emits_rate_times_duration(stages in prop::collection::vec((0.1f64..20.0, 0.0f64..500.0, 0.0f64..500.0), 1..4)) {
            let stages: Vec<Stage> = stages.into_iter().map(|(d, a, b)| stage(d, a, b)).collect();
            let total: f64 = stages.iter().map(|s| s.duration.as_secs_f64()).sum();
            let times: Vec<_> = OpenSchedule::new(&stages).collect();
            let expected = OpenSchedule::expected_total(&stages);
            prop_assert!((times.len() as f64 - expected).abs() <= 1.0 + expected * 1e-9, "{} vs {}", times.len(), expected);
            prop_assert!(times.windows(2).all(|w| w[0] <= w[1]));
            prop_assert!(times.iter().all(|t| t.as_secs_f64() < total + 1e-9));
        }
    }
}
