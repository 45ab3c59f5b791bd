//! A distribution known only by a few of its percentiles, sampled by inverse transform.

use rand::{Rng, RngExt};
use serde::Serialize;

/// A positive quantity (a duration, a memory size) described by some of its percentiles, as the
/// Azure trace publishes them (`p0, p1, p25, p50, p75, p99, p100`).
///
/// Sampling draws a uniform probability and interpolates between the two neighbouring points,
/// geometrically when both are positive (durations and memory sizes spread over orders of
/// magnitude, so a straight line in log space fits their tails better than one in linear space),
/// linearly otherwise. Below the first point and above the last, the end points hold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quantiles {
    /// `(probability in [0, 1], value)`, sorted by probability, values non-decreasing.
    points: Vec<(f64, f64)>,
}

impl Quantiles {
    /// Builds the distribution from `(probability, value)` points in any order. Values are made
    /// non-decreasing (a published row whose p75 is below its p50, as a few trace rows are, is
    /// read as a flat step rather than rejected); non-finite or negative values are dropped.
    /// Returns `None` when no usable point is left.
    pub fn from_points(points: impl IntoIterator<Item = (f64, f64)>) -> Option<Quantiles> {
        let mut points: Vec<(f64, f64)> = points
            .into_iter()
            .filter(|&(p, v)| p.is_finite() && v.is_finite() && v >= 0.0)
            .map(|(p, v)| (p.clamp(0.0, 1.0), v))
            .collect();
        if points.is_empty() {
            return None;
        }
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut floor = 0.0_f64;
        for point in &mut points {
            floor = floor.max(point.1);
            point.1 = floor;
        }
        Some(Quantiles { points })
    }

    /// A distribution that always yields `value`.
    pub fn constant(value: f64) -> Quantiles {
        Quantiles { points: vec![(0.0, value), (1.0, value)] }
    }

    /// A log-normal distribution with this median and log-space standard deviation, stored as
    /// its percentiles 0.1 .. 99.9 (the synthetic workload describes functions the way the trace
    /// does, so both go through the same sampler).
    pub fn log_normal(median: f64, sigma: f64) -> Quantiles {
        // Standard normal quantiles of p = 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999.
        const Z: [(f64, f64); 9] = [
            (0.001, -3.090),
            (0.01, -2.326),
            (0.1, -1.282),
            (0.25, -0.674),
            (0.5, 0.0),
            (0.75, 0.674),
            (0.9, 1.282),
            (0.99, 2.326),
            (0.999, 3.090),
        ];
        let mut points: Vec<(f64, f64)> = Z.iter().map(|&(p, z)| (p, median * (sigma * z).exp())).collect();
        // The ends of the support: the extreme points, so a draw never leaves them.
        points.insert(0, (0.0, points[0].1));
        points.push((1.0, points[points.len() - 1].1));
        Quantiles { points }
    }

    /// The value at probability `p` (clamped to `[0, 1]`).
    pub fn at(&self, p: f64) -> f64 {
        let p = p.clamp(0.0, 1.0);
        let upper = self.points.partition_point(|&(q, _)| q < p);
        if upper == 0 {
            return self.points[0].1;
        }
        if upper == self.points.len() {
            return self.points[upper - 1].1;
        }
        let (p0, v0) = self.points[upper - 1];
        let (p1, v1) = self.points[upper];
        if p1 <= p0 {
            return v1;
        }
        let t = (p - p0) / (p1 - p0);
        if v0 > 0.0 && v1 > 0.0 {
            v0 * (v1 / v0).powf(t)
        } else {
            v0 + (v1 - v0) * t
        }
    }

    /// One draw.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        self.at(rng.random::<f64>())
    }

    /// The largest value the distribution can yield.
    pub fn max(&self) -> f64 {
        self.points[self.points.len() - 1].1
    }

    /// The median.
    pub fn median(&self) -> f64 {
        self.at(0.5)
    }

    /// Every value multiplied by `factor` (used to re-express a profile in other units).
    pub fn scaled(&self, factor: f64) -> Quantiles {
        Quantiles { points: self.points.iter().map(|&(p, v)| (p, v * factor)).collect() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_geometrically_between_published_points() {
        let q = Quantiles::from_points([(0.0, 10.0), (0.5, 100.0), (1.0, 1000.0)]).unwrap();
        assert_eq!(q.at(0.0), 10.0);
        assert_eq!(q.at(0.5), 100.0);
        assert_eq!(q.at(1.0), 1000.0);
        // Halfway between 10 and 100 in log space.
        assert!((q.at(0.25) - 31.622_776).abs() < 1e-3);
    }

    #[test]
    fn decreasing_published_points_become_a_flat_step() {
        let q = Quantiles::from_points([(0.5, 50.0), (0.75, 40.0), (1.0, 60.0)]).unwrap();
        assert_eq!(q.at(0.75), 50.0);
        assert_eq!(q.max(), 60.0);
    }

    #[test]
    fn zero_values_interpolate_linearly() {
        let q = Quantiles::from_points([(0.0, 0.0), (1.0, 10.0)]).unwrap();
        assert_eq!(q.at(0.5), 5.0);
    }

    #[test]
    fn no_usable_point_is_no_distribution() {
        assert!(Quantiles::from_points([(0.5, f64::NAN), (0.9, -1.0)]).is_none());
    }

    #[test]
    fn log_normal_has_its_median() {
        let q = Quantiles::log_normal(200.0, 0.5);
        assert!((q.median() - 200.0).abs() < 1e-9);
        assert!(q.at(0.99) > q.at(0.9));
    }
}
