//! Ordinary least squares of a stock's returns on its market index's returns (paper Eq. 1-2).

/// r_t = α + β·r_m,t fitted by OLS.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    pub alpha: f64,
    pub beta: f64,
    /// 1 − SSR/SST; 0 when the stock's returns have no variance.
    pub r_squared: f64,
    pub observations: usize,
    /// √(SSR / (n − 2)).
    pub residual_std: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FitError {
    /// Fewer pairs than required (or than the 3 a residual variance needs).
    Insufficient { observations: usize },
    /// The market returns have no variance: β is undefined.
    Degenerate,
}

impl Fit {
    /// AR = r − (α̂ + β̂·r_m).
    pub fn abnormal(&self, stock_return: f64, market_return: f64) -> f64 {
        stock_return - (self.alpha + self.beta * market_return)
    }
}

/// Fits `y = α + β·x` over the pairs, two-pass (means first, then centred sums) for accuracy.
pub fn fit(x: &[f64], y: &[f64], min_observations: usize) -> Result<Fit, FitError> {
    debug_assert_eq!(x.len(), y.len());
    let n = x.len();
    if n < min_observations.max(3) {
        return Err(FitError::Insufficient { observations: n });
    }
    let nf = n as f64;
    let mean_x = x.iter().sum::<f64>() / nf;
    let mean_y = y.iter().sum::<f64>() / nf;
    let (mut sxx, mut sxy, mut syy, mut sum_x2) = (0.0, 0.0, 0.0, 0.0);
    for (&xi, &yi) in x.iter().zip(y) {
        let (dx, dy) = (xi - mean_x, yi - mean_y);
        sxx += dx * dx;
        sxy += dx * dy;
        syy += dy * dy;
        sum_x2 += xi * xi;
    }
    // A variance lost in rounding noise is no variance.
    if sxx <= f64::EPSILON * sum_x2.max(f64::MIN_POSITIVE) * 16.0 {
        return Err(FitError::Degenerate);
    }
    let beta = sxy / sxx;
    let alpha = mean_y - beta * mean_x;
    let ssr = (syy - beta * sxy).max(0.0);
    Ok(Fit {
        alpha,
        beta,
        r_squared: if syy > 0.0 { 1.0 - ssr / syy } else { 0.0 },
        observations: n,
        residual_std: (ssr / (nf - 2.0)).sqrt(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_an_exact_line() {
        let x = [0.01, -0.02, 0.005, 0.03, -0.01];
        let y: Vec<f64> = x.iter().map(|v| 0.001 + 1.3 * v).collect();
        let f = fit(&x, &y, 3).unwrap();
        assert!((f.alpha - 0.001).abs() < 1e-15);
        assert!((f.beta - 1.3).abs() < 1e-13);
        assert!((f.r_squared - 1.0).abs() < 1e-12);
        assert!(f.residual_std < 1e-12);
    }

    #[test]
    fn matches_textbook_formulas_on_noisy_data() {
        let x = [0.012, -0.004, 0.021, -0.017, 0.003, 0.009, -0.011];
        let y = [0.02, -0.01, 0.025, -0.03, 0.001, 0.015, -0.009];
        let f = fit(&x, &y, 3).unwrap();
        // Naive single-pass formulas agree to rounding on data this small.
        let n = x.len() as f64;
        let (sx, sy): (f64, f64) = (x.iter().sum(), y.iter().sum());
        let sxy: f64 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
        let sxx: f64 = x.iter().map(|a| a * a).sum();
        let beta = (n * sxy - sx * sy) / (n * sxx - sx * sx);
        assert!((f.beta - beta).abs() < 1e-10);
        assert!((f.alpha - (sy - beta * sx) / n).abs() < 1e-12);
    }

    #[test]
    fn degenerate_and_short_samples_are_named() {
        assert_eq!(fit(&[0.01; 10], &[0.02; 10], 3), Err(FitError::Degenerate));
        assert_eq!(fit(&[0.0; 10], &[0.02; 10], 3), Err(FitError::Degenerate));
        assert_eq!(
            fit(&[0.01, 0.02], &[0.0, 0.1], 2),
            Err(FitError::Insufficient { observations: 2 })
        );
    }
}
