//! Performance metrics of a NAV series with the paper's exact conventions (DESIGN §3.4),
//! verified against all 17 published series (tests/fixtures): SR = mean / population std of
//! daily returns × √252 (risk-free 0); MDD = largest peak-to-trough fall as a fraction;
//! ARR = (NAV_end / NAV_start)^(252 / return days) − 1; Calmar = ARR / MDD.
//!
//! A metric that has no value is `None` and its reason is recorded in `null_reasons` under the
//! metric's short name, never NaN and never a silent null (docs/methodology.md §3).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Trading days per year.
pub const ANNUALIZATION: f64 = 252.0;

/// A dispersion (population std) at or below this fraction of the mean's magnitude is floating-
/// point residue, not risk: returns computed as NAV ratios carry a relative rounding error of a
/// few ε ≈ 2.2e-16, so a series compounding at a constant rate shows a std of ~1e-16 where the
/// exact value is 0. Below this ratio the annualized SR would exceed √252 / 1e-9 ≈ 1.6e10, which
/// no real series has; such a series is refused as riskless rather than scored.
pub const DISPERSION_RTOL: f64 = 1e-9;

/// Absolute floor of the same test for a mean near 0: a dispersion within 64 ε of the gross
/// return (1 + |mean|) is below the resolution of returns computed from NAV ratios.
pub const DISPERSION_ATOL: f64 = 64.0 * f64::EPSILON;

/// Whether `sd` is indistinguishable from 0 next to `mean` (see [`DISPERSION_RTOL`]). Every
/// statistic that divides by a dispersion uses this test.
pub fn is_rounding_residue(sd: f64, mean: f64) -> bool {
    sd <= DISPERSION_RTOL * mean.abs() || sd <= DISPERSION_ATOL * (1.0 + mean.abs())
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsError {
    #[error("a NAV series needs at least 2 points (1 return day); got {0}")]
    TooShort(usize),
    #[error("NAV point {index} is {value}: every NAV must be a finite number > 0")]
    BadNav { index: usize, value: f64 },
    #[error(
        "NAV point {index} is {value} (≤ 0: ruin) but the series goes on after it; a ruined \
         book has no later NAV, so the series must end at its first NAV ≤ 0"
    )]
    PointsAfterRuin { index: usize, value: f64 },
}

/// Why a metric has no value. Written (as text) into `null_reasons` beside the metrics.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Undefined {
    #[error("no returns")]
    NoReturns,
    #[error(
        "no dispersion: population std {sd:e} of the daily returns is rounding residue next to \
         their mean {mean:e} (≤ {DISPERSION_RTOL:e} × |mean|); a riskless series has no Sharpe ratio"
    )]
    NoDispersion { mean: f64, sd: f64 },
    #[error("ruin: NAV fell to {nav} (≤ 0) on return day {day}; the series ends there")]
    Ruin { day: usize, nav: f64 },
    #[error("overflow: {0}")]
    Overflow(String),
    #[error("no drawdown: MDD is 0, so ARR / MDD has no value")]
    NoDrawdown,
    #[error("the {0} has none: {1}")]
    Side(&'static str, Box<Undefined>),
    #[error(
        "series not paired day by day: candidate {candidate} and baseline {baseline} return days"
    )]
    Unpaired { candidate: usize, baseline: usize },
    #[error("no labelled events with a call to score")]
    NothingScored,
    #[error("no labelled events of a known type with a call to score")]
    NoKnownType,
    #[error(
        "no call states an event type: the model does not classify events (the type-sign \
         baseline is given the type from upstream), so there is no type accuracy to measure"
    )]
    NoTypeCalls,
    #[error("no trades")]
    NoTrades,
    #[error("one observation: a single {0} has no dispersion, so nothing to divide by")]
    OneObservation(&'static str),
    #[error(
        "no_folds: the evaluated window has {days} return days; a walk-forward fold needs \
         train_days + test_days = {needed}"
    )]
    NoFolds { days: usize, needed: usize },
    #[error("no bootstrap interval: {0}")]
    Bootstrap(crate::evaluation::bootstrap::SettingError),
}

/// Where a NAV series reached 0 or below.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ruin {
    /// Return day (1-based position in the NAV series) of the first NAV ≤ 0.
    pub day: usize,
    /// That NAV, as a multiple of the starting NAV (≤ 0: losses beyond capital stay visible).
    pub nav: f64,
}

/// Metrics of one NAV series. A metric without a value is `None` and `null_reasons` says why
/// (key: the metric's short name); never NaN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NavMetrics {
    /// Sharpe ratio (annualized, risk-free 0).
    pub sr: Option<f64>,
    /// Maximum drawdown, a fraction of the running peak: in [0, 1) for a solvent book, ≥ 1 when
    /// the NAV fell to 0 or below (ruin; 2.25 = lost 2.25× the peak).
    pub mdd: f64,
    /// Annualized return.
    pub arr: Option<f64>,
    /// ARR / MDD.
    pub calmar: Option<f64>,
    /// NAV_end / NAV_start − 1 (≤ −1 on ruin: the losses beyond capital are kept).
    pub total_return: f64,
    /// Return days (NAV points − 1).
    pub days: usize,
    /// The first NAV ≤ 0, when the book was ruined.
    #[serde(default)]
    pub ruin: Option<Ruin>,
    /// Why each `None` metric has no value, by short name.
    #[serde(default)]
    pub null_reasons: BTreeMap<String, String>,
}

/// Checks a NAV series: ≥ 2 points, all finite, the first > 0, and a point ≤ 0 (ruin) only as
/// the last one. Returns the ruin, if any.
fn check_nav(nav: &[f64]) -> Result<Option<Ruin>, MetricsError> {
    if nav.len() < 2 {
        return Err(MetricsError::TooShort(nav.len()));
    }
    if let Some((index, &value)) = nav
        .iter()
        .enumerate()
        .find(|(i, v)| !v.is_finite() || (*i == 0 && **v <= 0.0))
    {
        return Err(MetricsError::BadNav { index, value });
    }
    match nav.iter().position(|v| *v <= 0.0) {
        None => Ok(None),
        Some(index) if index == nav.len() - 1 => Ok(Some(Ruin {
            day: index,
            nav: nav[index] / nav[0],
        })),
        Some(index) => Err(MetricsError::PointsAfterRuin {
            index,
            value: nav[index],
        }),
    }
}

/// Daily simple returns of a validated NAV series (the last may be ≤ −1 on ruin).
pub fn daily_returns(nav: &[f64]) -> Result<Vec<f64>, MetricsError> {
    check_nav(nav)?;
    Ok(nav.windows(2).map(|w| w[1] / w[0] - 1.0).collect())
}

/// Annualized Sharpe ratio of daily returns, or why it has none: mean / population std × √252;
/// 0 for returns that are all zero; refused when a return is −100 % or worse (ruin: the NAV
/// fell to 0 or below, so the series has no Sharpe ratio, and neither has anything derived from
/// it — bootstrap intervals, deltas, regime slices, folds), when the std is rounding residue next
/// to a non-zero mean ([`is_rounding_residue`]), when there is a single non-zero return, or when
/// the moments overflow.
pub fn sharpe_ratio(returns: &[f64]) -> Result<f64, Undefined> {
    if returns.is_empty() {
        return Err(Undefined::NoReturns);
    }
    // A return ≤ −1 takes a positive NAV to 0 or below: the series is ruined there. Every SR —
    // of a whole series, a bootstrap's point estimate, a slice — is refused on the same test.
    if let Some(k) = returns.iter().position(|r| *r <= -1.0) {
        let nav = returns[..=k].iter().fold(1.0, |n, r| n * (1.0 + r));
        return Err(Undefined::Ruin { day: k + 1, nav });
    }
    let n = returns.len() as f64;
    let mean = returns.iter().sum::<f64>() / n;
    if returns.iter().all(|r| *r == 0.0) {
        return Ok(0.0);
    }
    if returns.len() == 1 {
        return Err(Undefined::OneObservation("daily return"));
    }
    let var = returns.iter().map(|r| (r - mean) * (r - mean)).sum::<f64>() / n;
    let sd = var.sqrt();
    if !(mean.is_finite() && sd.is_finite()) {
        return Err(Undefined::Overflow(format!(
            "the mean or std of the daily returns is not finite (mean {mean}, std {sd})"
        )));
    }
    if is_rounding_residue(sd, mean) {
        if mean.abs() <= DISPERSION_ATOL {
            // A flat series up to rounding: no return and no risk.
            return Ok(0.0);
        }
        return Err(Undefined::NoDispersion { mean, sd });
    }
    Ok(mean / sd * ANNUALIZATION.sqrt())
}

/// [`sharpe_ratio`] without the reason.
pub fn sharpe(returns: &[f64]) -> Option<f64> {
    sharpe_ratio(returns).ok()
}

/// Largest peak-to-trough fall of a NAV series, as a fraction of the running peak.
pub fn max_drawdown(nav: &[f64]) -> f64 {
    let mut peak = f64::MIN;
    let mut mdd = 0.0f64;
    for &v in nav {
        peak = peak.max(v);
        mdd = mdd.max((peak - v) / peak);
    }
    mdd
}

impl NavMetrics {
    pub fn from_nav(nav: &[f64]) -> Result<Self, MetricsError> {
        let ruin = check_nav(nav)?;
        let returns = daily_returns(nav)?;
        let days = returns.len();
        let growth = nav[nav.len() - 1] / nav[0];
        let mdd = max_drawdown(nav);
        let mut null_reasons = BTreeMap::new();
        let mut note = |name: &str, why: Undefined| {
            null_reasons.insert(name.to_string(), why.to_string());
        };
        let ruined = |r: &Ruin| Undefined::Ruin {
            day: r.day,
            nav: r.nav,
        };
        let sr = match &ruin {
            Some(r) => {
                note("sr", ruined(r));
                None
            }
            None => sharpe_ratio(&returns).map_err(|why| note("sr", why)).ok(),
        };
        let arr = match &ruin {
            Some(r) => {
                note("arr", ruined(r));
                None
            }
            None => {
                let exponent = ANNUALIZATION / days as f64;
                let arr = growth.powf(exponent) - 1.0;
                if arr.is_finite() {
                    Some(arr)
                } else {
                    note(
                        "arr",
                        Undefined::Overflow(format!(
                            "growth {growth:e} over {days} return day(s) raised to 252/{days} \
                             exceeds the largest double"
                        )),
                    );
                    None
                }
            }
        };
        let calmar = match (&ruin, arr) {
            (Some(r), _) => {
                note("calmar", ruined(r));
                None
            }
            (None, None) => {
                note("calmar", Undefined::Overflow("ARR has no value".into()));
                None
            }
            (None, Some(_)) if mdd <= 0.0 => {
                note("calmar", Undefined::NoDrawdown);
                None
            }
            (None, Some(a)) => Some(a / mdd),
        };
        Ok(Self {
            sr,
            mdd,
            arr,
            calmar,
            total_return: growth - 1.0,
            days,
            ruin,
            null_reasons,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_cases_are_defined_or_refused() {
        let flat = NavMetrics::from_nav(&[1.0, 1.0, 1.0]).unwrap();
        assert_eq!(flat.sr, Some(0.0));
        assert_eq!(flat.mdd, 0.0);
        assert_eq!(flat.calmar, None);
        assert_eq!(flat.arr, Some(0.0));
        assert!(flat.null_reasons["calmar"].starts_with("no drawdown"));

        let one_day = NavMetrics::from_nav(&[1.0, 1.01]).unwrap();
        assert_eq!(one_day.days, 1);
        assert_eq!(one_day.sr, None, "one return: no variance, non-zero mean");
        assert!(one_day.null_reasons["sr"].starts_with("one observation"));
        assert!((one_day.total_return - 0.01).abs() < 1e-15);

        assert_eq!(NavMetrics::from_nav(&[1.0]), Err(MetricsError::TooShort(1)));
        assert!(matches!(
            NavMetrics::from_nav(&[1.0, f64::NAN, 1.1]),
            Err(MetricsError::BadNav { index: 1, .. })
        ));
        assert!(
            NavMetrics::from_nav(&[0.0, 1.0]).is_err(),
            "a series starts solvent"
        );
        assert!(matches!(
            NavMetrics::from_nav(&[1.0, -0.5, 1.0]),
            Err(MetricsError::PointsAfterRuin { index: 1, .. })
        ));
        // Ruin ends a series: its losses stay visible and SR/ARR/Calmar say why they are null.
        let ruined = NavMetrics::from_nav(&[1.0, 1.1, -0.1]).unwrap();
        assert_eq!(ruined.ruin, Some(Ruin { day: 2, nav: -0.1 }));
        assert!((ruined.total_return + 1.1).abs() < 1e-15);
        assert!((ruined.mdd - 1.2 / 1.1).abs() < 1e-15);
        assert_eq!((ruined.sr, ruined.arr, ruined.calmar), (None, None, None));
        for k in ["sr", "arr", "calmar"] {
            assert!(ruined.null_reasons[k].starts_with("ruin"), "{k}");
        }
        // Ruin is refused wherever an SR is taken (a whole series, a slice, a bootstrap's point
        // estimate): NAV 1 → 0.5 → −0.3 has returns −0.5 and −1.6.
        match sharpe_ratio(&[-0.5, -1.6]) {
            Err(Undefined::Ruin { day: 2, nav }) => assert!((nav + 0.3).abs() < 1e-15),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            sharpe_ratio(&[0.01, -1.0, 0.02]),
            Err(Undefined::Ruin { day: 2, .. })
        ));
        // An ARR that overflows (1 to 20 in one day) is null with its reason, not `null` alone.
        let steep = NavMetrics::from_nav(&[1.0, 20.0]).unwrap();
        assert_eq!(steep.arr, None);
        assert!(steep.null_reasons["arr"].starts_with("overflow"));
    }
}
