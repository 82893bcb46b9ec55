// SPDX-License-Identifier: GPL-2.0

//! Verdicts that survive a re-run: a target's effect is a statistic of paired repetitions (the
//! two sides of a comparison measured next to each other, so a change of host speed between
//! pairs cancels out), given with a bootstrap 95 % interval, and judged by where the whole
//! interval lies against the bound.

use serde::{Deserialize, Serialize};

/// How many bootstrap resamples an interval is estimated from: enough that the interval's ends
/// move by well under 1 % between seeds for 5 to 50 pairs.
pub const RESAMPLES: usize = 10_000;

/// The resampling is seeded: the same samples always give the same interval.
const SEED: u64 = 0x726d_632d_6265_6e63;

/// Three answers, not two: an interval that straddles the bound says that this run cannot tell.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The whole interval is on the right side of the bound.
    Met,
    /// The whole interval is on the wrong side.
    NotMet,
    /// The interval contains the bound (or there is no data).
    WithinNoise,
}

impl Verdict {
    pub fn text(self) -> &'static str {
        match self {
            Self::Met => "met",
            Self::NotMet => "not met",
            Self::WithinNoise => "within noise",
        }
    }
}

/// NaN for `null` (serde_json writes NaN as `null`).
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// The median of some samples with its bootstrap 95 % interval.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    #[serde(deserialize_with = "nan_if_null")]
    pub median: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub lo: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub hi: f64,
    /// How many samples (pairs) it rests on.
    pub n: usize,
}

impl Interval {
    /// The median of `samples` and the 2.5 and 97.5 percentiles of the medians of
    /// [`RESAMPLES`] resamples drawn with replacement (the percentile bootstrap). NaN samples
    /// (a figure that was not measured) are left out; with none left every field is NaN.
    pub fn of(samples: &[f64]) -> Self {
        let v: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return Self {
                median: f64::NAN,
                lo: f64::NAN,
                hi: f64::NAN,
                n: 0,
            };
        }
        let mut rng = rmc::Rng(SEED);
        let mut resample = vec![0.0; v.len()];
        let mut medians: Vec<f64> = (0..RESAMPLES)
            .map(|_| {
                for x in resample.iter_mut() {
                    *x = v[rng.below(v.len() as u64) as usize];
                }
                rmc::median(&mut resample)
            })
            .collect();
        medians.sort_unstable_by(f64::total_cmp);
        Self {
            median: rmc::median(&mut v.clone()),
            lo: rmc::quantile(&medians, 0.025),
            hi: rmc::quantile(&medians, 0.975),
            n: v.len(),
        }
    }

    /// Judged against an upper bound: met when the whole interval is at or below `bound`.
    pub fn at_most(&self, bound: f64) -> Verdict {
        if self.n == 0 || self.lo.is_nan() || self.hi.is_nan() {
            Verdict::WithinNoise
        } else if self.hi <= bound {
            Verdict::Met
        } else if self.lo > bound {
            Verdict::NotMet
        } else {
            Verdict::WithinNoise
        }
    }

    /// Judged against a lower bound: met when the whole interval is at or above `bound`.
    pub fn at_least(&self, bound: f64) -> Verdict {
        if self.n == 0 || self.lo.is_nan() || self.hi.is_nan() {
            Verdict::WithinNoise
        } else if self.lo >= bound {
            Verdict::Met
        } else if self.hi < bound {
            Verdict::NotMet
        } else {
            Verdict::WithinNoise
        }
    }

    /// `median [lo, hi]` with `digits` decimals.
    pub fn text(&self, digits: usize) -> String {
        format!(
            "{:.d$} [{:.d$}, {:.d$}]",
            self.median,
            self.lo,
            self.hi,
            d = digits
        )
    }
}

/// Pairs `a[i]`, `b[i]` into `f(a[i], b[i])` (as many as the shorter side has).
pub fn paired(a: &[f64], b: &[f64], f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_holds_the_median_and_is_reproducible() {
        let s = [1.0, 1.1, 0.9, 1.05, 0.95, 1.2, 0.8, 1.0, 1.02, 0.98, 1.01];
        let i = Interval::of(&s);
        assert_eq!(i.n, s.len());
        assert!(i.lo <= i.median && i.median <= i.hi, "{i:?}");
        assert!(i.lo >= 0.8 && i.hi <= 1.2, "{i:?}");
        assert_eq!(i, Interval::of(&s));
    }

    #[test]
    fn three_verdicts() {
        let low = Interval::of(&[0.5, 0.55, 0.6, 0.52, 0.58, 0.51, 0.57]);
        let high = Interval::of(&[1.5, 1.55, 1.6, 1.52, 1.58, 1.51, 1.57]);
        let wide = Interval::of(&[0.2, 1.8, 0.5, 1.5, 0.9, 1.1, 1.0]);
        assert_eq!(low.at_most(1.0), Verdict::Met);
        assert_eq!(high.at_most(1.0), Verdict::NotMet);
        assert_eq!(wide.at_most(1.0), Verdict::WithinNoise);
        assert_eq!(high.at_least(1.0), Verdict::Met);
        assert_eq!(low.at_least(1.0), Verdict::NotMet);
        assert_eq!(wide.at_least(1.0), Verdict::WithinNoise);
    }

    #[test]
    fn no_data_is_within_noise_never_met() {
        let none = Interval::of(&[f64::NAN, f64::NAN]);
        assert_eq!(none.n, 0);
        assert_eq!(none.at_most(1.0), Verdict::WithinNoise);
        assert_eq!(none.at_least(1.0), Verdict::WithinNoise);
    }

    #[test]
    fn infinite_samples_are_judged_not_met_never_by_sort_order() {
        // A repetition whose reference cost nothing gives an infinite ratio: eight of fifteen.
        let mut s = vec![f64::INFINITY; 8];
        s.extend([0.9; 7]);
        let i = Interval::of(&s);
        assert_eq!((i.median, i.hi), (f64::INFINITY, f64::INFINITY), "{i:?}");
        assert!(!i.lo.is_nan(), "{i:?}");
        assert_ne!(i.at_most(1.0), Verdict::Met);
        // NaN anywhere in the interval is no verdict.
        let nan = Interval {
            median: 1.0,
            lo: f64::NAN,
            hi: 0.5,
            n: 3,
        };
        assert_eq!(nan.at_most(1.0), Verdict::WithinNoise);
        assert_eq!(nan.at_least(0.1), Verdict::WithinNoise);
    }

    #[test]
    fn more_pairs_narrow_the_interval() {
        let few: Vec<f64> = (0..5)
            .map(|i| 1.0 + 0.1 * ((i * 7 % 5) as f64 - 2.0))
            .collect();
        let many: Vec<f64> = (0..45)
            .map(|i| 1.0 + 0.1 * ((i * 7 % 5) as f64 - 2.0))
            .collect();
        let (f, m) = (Interval::of(&few), Interval::of(&many));
        assert!(m.hi - m.lo < f.hi - f.lo, "{f:?} {m:?}");
    }
}
