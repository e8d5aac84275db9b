//! The Universal Scalability Law, X(N) = λN / (1 + σ(N−1) + κN(N−1)), fitted to measured
//! maxima by least squares on relative errors (issue 10, PRODUCT §8).
//!
//! Written here rather than taken from the `usl` crate (archived since 2023, and it fits
//! throughput against concurrency from latency samples, not a few maxima). For given σ
//! and κ the best λ has a closed form, so only σ and κ are searched: a log-spaced grid,
//! then a pattern search around the best cell, both within σ, κ ≥ 0.

use serde::{Deserialize, Serialize};

/// Fitted coefficients and how well they fit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Usl {
    /// Rate of one instance (the ideal slope).
    pub lambda: f64,
    /// Contention: the serial fraction.
    pub sigma: f64,
    /// Coherency: the cost of instances keeping each other in step.
    pub kappa: f64,
    /// Root mean square of the relative errors at the measured points, in percent.
    pub rms_error_pct: f64,
    /// Largest relative error at a measured point, in percent.
    pub max_error_pct: f64,
}

impl Usl {
    pub fn rate(&self, n: f64) -> f64 {
        self.lambda * shape(n, self.sigma, self.kappa)
    }

    /// The count with the highest rate, √((1−σ)/κ); `None` when the curve never turns
    /// down (κ = 0: it approaches λ/σ, or grows without bound when σ = 0 too).
    pub fn peak(&self) -> Option<f64> {
        (self.kappa > 0.0).then(|| ((1.0 - self.sigma).max(0.0) / self.kappa).sqrt().max(1.0))
    }

    /// The smallest whole count at which the predicted rate reaches `rate`, searching up
    /// to the peak (or `limit` when there is none). `None`: no count gets there.
    pub fn smallest_count_for(&self, rate: f64, limit: usize) -> Option<usize> {
        let last = self.peak().map_or(limit, |peak| (peak.ceil() as usize).min(limit));
        // A relative tolerance: a fit is no more exact than that.
        (1..=last).find(|&n| self.rate(n as f64) >= rate * (1.0 - 1e-6))
    }
}

fn shape(n: f64, sigma: f64, kappa: f64) -> f64 {
    n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))
}

/// Fits (count, rate) points; `None` without a point with a positive rate. With one
/// count only λ is known (σ = κ = 0); with two, κ is held at 0 (two points determine λ
/// and one more coefficient).
pub fn fit(points: &[(f64, f64)]) -> Option<Usl> {
    let points: Vec<(f64, f64)> = points.iter().copied().filter(|(n, x)| *n >= 1.0 && *x > 0.0).collect();
    if points.is_empty() {
        return None;
    }
    let counts = {
        let mut c: Vec<u64> = points.iter().map(|p| p.0 as u64).collect();
        c.sort_unstable();
        c.dedup();
        c.len()
    };
    let with_kappa = counts >= 3;
    let with_sigma = counts >= 2;
    let (mut sigma, mut kappa) = (0.0, 0.0);
    let mut best = error(&points, sigma, kappa).1;
    if with_sigma {
        let grid = |on: bool, lowest: f64| -> Vec<f64> {
            if !on {
                return vec![0.0];
            }
            std::iter::once(0.0).chain((0..=80).map(|i| lowest * (1.0 / lowest).powf(i as f64 / 80.0))).collect()
        };
        for &s in &grid(true, 1e-6) {
            for &k in &grid(with_kappa, 1e-8) {
                let e = error(&points, s, k).1;
                if e < best {
                    (sigma, kappa, best) = (s, k, e);
                }
            }
        }
        // Pattern search: steps in each coordinate, halved when none improves.
        let (mut step_s, mut step_k) =
            ((sigma * 0.5).max(1e-4), if with_kappa { (kappa * 0.5).max(1e-6) } else { 0.0 });
        for _ in 0..400 {
            let mut improved = false;
            for (ds, dk) in [(step_s, 0.0), (-step_s, 0.0), (0.0, step_k), (0.0, -step_k)] {
                let (s, k) = ((sigma + ds).max(0.0), (kappa + dk).max(0.0));
                let e = error(&points, s, k).1;
                if e < best {
                    (sigma, kappa, best, improved) = (s, k, e, true);
                }
            }
            if !improved {
                step_s *= 0.5;
                step_k *= 0.5;
                if step_s < 1e-12 && step_k < 1e-14 {
                    break;
                }
            }
        }
    }
    let (lambda, _) = error(&points, sigma, kappa);
    let relative: Vec<f64> = points.iter().map(|(n, x)| (lambda * shape(*n, sigma, kappa) - x) / x * 100.0).collect();
    let rms_error_pct = (relative.iter().map(|r| r * r).sum::<f64>() / relative.len() as f64).sqrt();
    let max_error_pct = relative.iter().map(|r| r.abs()).fold(0.0, f64::max);
    Some(Usl { lambda, sigma, kappa, rms_error_pct, max_error_pct })
}

/// The best λ for σ, κ (closed form) and the sum of squared relative errors.
fn error(points: &[(f64, f64)], sigma: f64, kappa: f64) -> (f64, f64) {
    // Minimise Σ (λ·g/x − 1)²: λ = Σ(g/x) / Σ(g/x)².
    let ratios: Vec<f64> = points.iter().map(|(n, x)| shape(*n, sigma, kappa) / x).collect();
    let lambda = ratios.iter().sum::<f64>() / ratios.iter().map(|r| r * r).sum::<f64>();
    let sse = ratios.iter().map(|r| (lambda * r - 1.0).powi(2)).sum();
    (lambda, sse)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(lambda: f64, sigma: f64, kappa: f64, counts: &[f64]) -> Vec<(f64, f64)> {
        let usl = Usl { lambda, sigma, kappa, rms_error_pct: 0.0, max_error_pct: 0.0 };
        counts.iter().map(|&n| (n, usl.rate(n))).collect()
    }

    #[test]
    fn recovers_known_coefficients() {
        let points = curve(1000.0, 0.05, 0.002, &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0]);
        let usl = fit(&points).unwrap();
        assert!((usl.lambda / 1000.0 - 1.0).abs() < 1e-3, "{usl:?}");
        assert!((usl.sigma - 0.05).abs() < 1e-3, "{usl:?}");
        assert!((usl.kappa - 0.002).abs() < 1e-4, "{usl:?}");
        assert!(usl.rms_error_pct < 0.1);
        let peak = usl.peak().unwrap();
        assert!((peak - (0.95f64 / 0.002).sqrt()).abs() < 0.5, "{peak}");
    }

    #[test]
    fn linear_points_fit_with_no_contention() {
        let usl = fit(&[(1.0, 90.9), (2.0, 181.8), (4.0, 363.6)]).unwrap();
        assert!(usl.sigma < 1e-3 && usl.kappa < 1e-4, "{usl:?}");
        assert!((usl.rate(8.0) / 727.3 - 1.0).abs() < 0.01);
        assert_eq!(usl.peak(), None);
    }

    #[test]
    fn noisy_points_are_fitted_with_an_error() {
        let mut points = curve(500.0, 0.1, 0.01, &[1.0, 2.0, 4.0, 8.0]);
        points[1].1 *= 1.05;
        points[3].1 *= 0.95;
        let usl = fit(&points).unwrap();
        assert!(usl.rms_error_pct > 0.5 && usl.max_error_pct < 6.0, "{usl:?}");
    }

    #[test]
    fn one_or_two_counts_fit_fewer_coefficients() {
        let one = fit(&[(2.0, 200.0)]).unwrap();
        assert_eq!((one.lambda, one.sigma, one.kappa), (100.0, 0.0, 0.0));
        let two = fit(&curve(100.0, 0.2, 0.0, &[1.0, 4.0])).unwrap();
        assert!((two.sigma - 0.2).abs() < 1e-3 && two.kappa == 0.0, "{two:?}");
        assert_eq!(fit(&[]), None);
        assert_eq!(fit(&[(1.0, 0.0)]), None);
    }

    #[test]
    fn the_smallest_count_for_a_rate_stops_at_the_peak() {
        let usl = Usl { lambda: 100.0, sigma: 0.1, kappa: 0.01, rms_error_pct: 0.0, max_error_pct: 0.0 };
        let peak = usl.peak().unwrap();
        assert_eq!(usl.smallest_count_for(150.0, 1000), Some(2));
        assert_eq!(usl.smallest_count_for(usl.rate(peak) * 1.01, 1000), None);
        let linear = Usl { lambda: 100.0, sigma: 0.0, kappa: 0.0, rms_error_pct: 0.0, max_error_pct: 0.0 };
        assert_eq!(linear.smallest_count_for(950.0, 1000), Some(10));
        assert_eq!(linear.smallest_count_for(1e9, 1000), None);
    }
}
