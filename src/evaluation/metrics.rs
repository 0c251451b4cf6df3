//! Performance metrics of a NAV series with the paper's exact conventions (DESIGN §3.4),
//! verified against all 17 published series (tests/fixtures): SR = mean / population std of
//! daily returns × √252 (risk-free 0); MDD = largest peak-to-trough fall as a fraction;
//! ARR = (NAV_end / NAV_start)^(252 / return days) − 1; Calmar = ARR / MDD.

use serde::{Deserialize, Serialize};

/// Trading days per year.
pub const ANNUALIZATION: f64 = 252.0;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsError {
    #[error("a NAV series needs at least 2 points (1 return day); got {0}")]
    TooShort(usize),
    #[error("NAV point {index} is {value}: every NAV must be a finite number > 0")]
    BadNav { index: usize, value: f64 },
}

/// Metrics of one NAV series. `sr` is `None` when returns have no variance but a non-zero
/// mean (undefined), `calmar` when there was no drawdown; never NaN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NavMetrics {
    /// Sharpe ratio.
    pub sr: Option<f64>,
    /// Maximum drawdown, a fraction in [0, 1).
    pub mdd: f64,
    /// Annualized return.
    pub arr: f64,
    /// ARR / MDD.
    pub calmar: Option<f64>,
    /// NAV_end / NAV_start − 1.
    pub total_return: f64,
    /// Return days (NAV points − 1).
    pub days: usize,
}

/// Daily simple returns of a validated NAV series.
pub fn daily_returns(nav: &[f64]) -> Result<Vec<f64>, MetricsError> {
    if nav.len() < 2 {
        return Err(MetricsError::TooShort(nav.len()));
    }
    if let Some((index, &value)) = nav
        .iter()
        .enumerate()
        .find(|(_, v)| !(v.is_finite() && **v > 0.0))
    {
        return Err(MetricsError::BadNav { index, value });
    }
    Ok(nav.windows(2).map(|w| w[1] / w[0] - 1.0).collect())
}

/// Annualized Sharpe ratio of daily returns: mean / population std × √252. Zero for returns
/// that are all zero; `None` for constant non-zero returns (no risk, undefined ratio).
pub fn sharpe(returns: &[f64]) -> Option<f64> {
    let n = returns.len() as f64;
    if returns.is_empty() {
        return None;
    }
    let mean = returns.iter().sum::<f64>() / n;
    let var = returns.iter().map(|r| (r - mean) * (r - mean)).sum::<f64>() / n;
    let sd = var.sqrt();
    if sd > 0.0 && sd.is_finite() {
        Some(mean / sd * ANNUALIZATION.sqrt())
    } else if mean == 0.0 {
        Some(0.0)
    } else {
        None
    }
}

/// Largest peak-to-trough fall of a NAV series, as a fraction.
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
        let returns = daily_returns(nav)?;
        let days = returns.len();
        let growth = nav[nav.len() - 1] / nav[0];
        let arr = growth.powf(ANNUALIZATION / days as f64) - 1.0;
        let mdd = max_drawdown(nav);
        Ok(Self {
            sr: sharpe(&returns),
            mdd,
            arr,
            calmar: (mdd > 0.0).then(|| arr / mdd),
            total_return: growth - 1.0,
            days,
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
        assert_eq!(flat.arr, 0.0);

        let one_day = NavMetrics::from_nav(&[1.0, 1.01]).unwrap();
        assert_eq!(one_day.days, 1);
        assert_eq!(one_day.sr, None, "one return: no variance, non-zero mean");
        assert!((one_day.total_return - 0.01).abs() < 1e-15);

        assert_eq!(NavMetrics::from_nav(&[1.0]), Err(MetricsError::TooShort(1)));
        assert!(matches!(
            NavMetrics::from_nav(&[1.0, f64::NAN, 1.1]),
            Err(MetricsError::BadNav { index: 1, .. })
        ));
        assert!(NavMetrics::from_nav(&[1.0, 0.0]).is_err());
    }
}
