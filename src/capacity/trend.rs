//! "Is the backlog growing?": the slope of a series over a step, judged against its own
//! scatter (issue 10: judge the trend, not one sample).

/// A least-squares line through (t, y) points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trend {
    /// Units of y per unit of t.
    pub slope: f64,
    /// Standard error of the slope.
    pub slope_error: f64,
    pub points: usize,
}

impl Trend {
    /// `None` with fewer than three points or no spread in t.
    pub fn fit(points: &[(f64, f64)]) -> Option<Trend> {
        let n = points.len();
        if n < 3 {
            return None;
        }
        let mean_t = points.iter().map(|p| p.0).sum::<f64>() / n as f64;
        let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n as f64;
        let stt: f64 = points.iter().map(|p| (p.0 - mean_t).powi(2)).sum();
        if stt <= f64::EPSILON {
            return None;
        }
        let sty: f64 = points.iter().map(|p| (p.0 - mean_t) * (p.1 - mean_y)).sum();
        let slope = sty / stt;
        let intercept = mean_y - slope * mean_t;
        let residual: f64 = points.iter().map(|p| (p.1 - intercept - slope * p.0).powi(2)).sum();
        let slope_error = (residual / (n as f64 - 2.0) / stt).sqrt();
        Some(Trend { slope, slope_error, points: n })
    }

    /// Growing: the slope is at least `min_slope` and its lower ~95 % bound is above zero,
    /// so neither a flat series' noise nor a tiny real drift fails a step.
    pub fn growing(&self, min_slope: f64) -> bool {
        self.slope >= min_slope && self.slope - 2.0 * self.slope_error > 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_has_its_slope_and_no_error() {
        let points: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 3.0 * i as f64 + 7.0)).collect();
        let trend = Trend::fit(&points).unwrap();
        assert!((trend.slope - 3.0).abs() < 1e-9 && trend.slope_error < 1e-9);
        assert!(trend.growing(1.0));
        assert!(!trend.growing(5.0));
    }

    #[test]
    fn flat_noise_is_not_growth() {
        // Deterministic "noise" around 100 with no trend.
        let points: Vec<(f64, f64)> =
            (0..200).map(|i| (i as f64 * 0.05, 100.0 + 40.0 * ((i * 7919 % 97) as f64 / 97.0 - 0.5))).collect();
        let trend = Trend::fit(&points).unwrap();
        assert!(!trend.growing(10.0), "{trend:?}");
    }

    #[test]
    fn too_few_points_give_no_trend() {
        assert_eq!(Trend::fit(&[(0.0, 1.0), (1.0, 2.0)]), None);
        assert_eq!(Trend::fit(&[(1.0, 1.0), (1.0, 2.0), (1.0, 3.0)]), None);
    }
}
