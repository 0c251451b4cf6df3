//! Daily factor returns from cross-sectional regressions (DESIGN §3.2 step 3).
//!
//! Each day, the universe's market-model residuals y_i = r_i − α_i − β_i·r_m(i) (α, β fitted over
//! each stock's whole history) are regressed on style exposures x_i and industry dummies. The
//! industry dummies are partialled out by demeaning y and x within each industry
//! (Frisch–Waugh–Lovell), which leaves a K×K system however many industries there are:
//!   f_t = (Σ x̃ x̃ᵀ)⁻¹ Σ x̃ ỹ,   g_j,t = ȳ_j − x̄_jᵀ f_t.
//! An event's neutral abnormal return is AR_t − x_i,tᵀ f_t − g_ind(i),t.

use super::input::Exposures;
use super::market_model;

/// Factor returns per day; NaN on a day whose regression could not be made.
#[derive(Debug, Clone)]
pub struct FactorReturns {
    /// `style[t * k + j]`: return of style factor j on day t.
    pub style: Vec<f64>,
    /// `industry[t * industries + j]`.
    pub industry: Vec<f64>,
    pub factors: usize,
    pub industries: usize,
}

impl FactorReturns {
    pub fn style_at(&self, day: usize) -> &[f64] {
        &self.style[day * self.factors..(day + 1) * self.factors]
    }
    pub fn industry_at(&self, day: usize, industry: usize) -> f64 {
        self.industry[day * self.industries + industry]
    }
}

/// Estimates daily factor returns. `returns` and `market` are symbol-major (symbols × days) stock
/// returns; `index_returns[index_of[s]]` are the returns of symbol s's index; NaN marks a
/// missing return.
#[allow(clippy::too_many_arguments)]
pub fn factor_returns(
    returns: &[f64],
    index_returns: &[Vec<f64>],
    index_of: &[u32],
    days: usize,
    industry_of: &[u32],
    industries: usize,
    exposures: &Exposures,
    min_observations: usize,
) -> FactorReturns {
    let n = industry_of.len();
    let k = exposures.factors.len();

    // Whole-history market model per stock; a stock without a fit stays out of the cross-section.
    // Day-major, because the regressions below walk the cross-section of one day at a time.
    let mut residual = vec![f64::NAN; days * n];
    let (mut xs, mut ys) = (Vec::with_capacity(days), Vec::with_capacity(days));
    for s in 0..n {
        let (r, m) = (
            &returns[s * days..(s + 1) * days],
            &index_returns[index_of[s] as usize][..],
        );
        xs.clear();
        ys.clear();
        for t in 0..days {
            if r[t].is_finite() && m[t].is_finite() {
                xs.push(m[t]);
                ys.push(r[t]);
            }
        }
        if let Ok(fit) = market_model::fit(&xs, &ys, min_observations) {
            for t in 0..days {
                residual[t * n + s] = fit.abnormal(r[t], m[t]);
            }
        }
    }

    // Days are independent: regress them in parallel, each thread over a run of days.
    let mut style = vec![f64::NAN; days * k];
    let mut industry = vec![f64::NAN; days * industries];
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = days.div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for (chunk, (style, industry)) in style
            .chunks_mut(per_thread * k.max(1))
            .zip(industry.chunks_mut(per_thread * industries.max(1)))
            .enumerate()
        {
            let residual = &residual;
            scope.spawn(move || {
                let first = chunk * per_thread;
                let mut day = DayRegression::new(k, industries);
                let mut cursor = exposures.cursor();
                for t in first..(first + per_thread).min(days) {
                    cursor.advance(t);
                    let y = &residual[t * n..(t + 1) * n];
                    if let Some(f) = day.solve(y, |s| cursor.get(s), industry_of) {
                        let o = t - first;
                        style[o * k..(o + 1) * k].copy_from_slice(&f);
                        for j in 0..industries {
                            industry[o * industries + j] = day.industry_return(j, &f);
                        }
                    }
                }
            });
        }
    });
    FactorReturns {
        style,
        industry,
        factors: k,
        industries,
    }
}

/// One day's cross-sectional regression, with buffers reused across days.
struct DayRegression {
    k: usize,
    /// The day's usable stocks: (residual, industry, exposures offset into `xs`).
    usable: Vec<(f64, usize)>,
    xs: Vec<f64>,
    count: Vec<usize>,
    sum_y: Vec<f64>,
    sum_x: Vec<f64>,
    a: Vec<f64>,
    b: Vec<f64>,
    dx: Vec<f64>,
}

impl DayRegression {
    fn new(k: usize, industries: usize) -> Self {
        Self {
            k,
            usable: Vec::new(),
            xs: Vec::new(),
            count: vec![0; industries],
            sum_y: vec![0.0; industries],
            sum_x: vec![0.0; industries * k],
            a: vec![0.0; k * k],
            b: vec![0.0; k],
            dx: vec![0.0; k],
        }
    }

    /// Style-factor returns of the day, or `None` when the regression is not identified.
    /// `y[s]` is each stock's residual (NaN when missing), `exposure(s)` its exposures.
    fn solve<'x>(
        &mut self,
        y: &[f64],
        exposure: impl Fn(usize) -> Option<&'x [f64]>,
        industry_of: &[u32],
    ) -> Option<Vec<f64>> {
        let k = self.k;
        self.count.fill(0);
        self.sum_y.fill(0.0);
        self.sum_x.fill(0.0);
        self.usable.clear();
        self.xs.clear();
        for (s, &j) in industry_of.iter().enumerate() {
            if let Some(x) = exposure(s).filter(|_| y[s].is_finite()) {
                let j = j as usize;
                self.count[j] += 1;
                self.sum_y[j] += y[s];
                for (acc, v) in self.sum_x[j * k..(j + 1) * k].iter_mut().zip(x) {
                    *acc += v;
                }
                self.usable.push((y[s], j));
                self.xs.extend_from_slice(x);
            }
        }
        let stocks: usize = self.count.iter().sum();
        let groups = self.count.iter().filter(|c| **c > 0).count();
        if stocks <= k + groups {
            return None;
        }
        self.a.fill(0.0);
        self.b.fill(0.0);
        for (&(ys, j), x) in self.usable.iter().zip(self.xs.chunks_exact(k)) {
            let c = self.count[j] as f64;
            let dy = ys - self.sum_y[j] / c;
            for ((d, v), sum) in self
                .dx
                .iter_mut()
                .zip(x)
                .zip(&self.sum_x[j * k..(j + 1) * k])
            {
                *d = v - sum / c;
            }
            for p in 0..k {
                self.b[p] += self.dx[p] * dy;
                for q in 0..=p {
                    self.a[p * k + q] += self.dx[p] * self.dx[q];
                }
            }
        }
        solve_spd(&mut self.a, &self.b, k)
    }

    /// g_j = ȳ_j − x̄_jᵀ f for industry j of the last solved day; NaN when it had no stocks.
    fn industry_return(&self, j: usize, f: &[f64]) -> f64 {
        if self.count[j] == 0 {
            return f64::NAN;
        }
        let c = self.count[j] as f64;
        let explained: f64 = (0..self.k)
            .map(|q| self.sum_x[j * self.k + q] / c * f[q])
            .sum();
        self.sum_y[j] / c - explained
    }
}

/// Solves A f = b for symmetric positive definite A (lower triangle filled) by Cholesky;
/// `None` when A is not numerically positive definite (collinear exposures).
pub fn solve_spd(a: &mut [f64], b: &[f64], k: usize) -> Option<Vec<f64>> {
    let scale = (0..k).map(|i| a[i * k + i]).fold(0.0, f64::max);
    for j in 0..k {
        let mut d = a[j * k + j];
        for p in 0..j {
            d -= a[j * k + p] * a[j * k + p];
        }
        // Not positive definite (or NaN): the exposures are collinear.
        if d.is_nan() || d <= scale * 1e-12 {
            return None;
        }
        let d = d.sqrt();
        a[j * k + j] = d;
        for i in j + 1..k {
            let mut v = a[i * k + j];
            for p in 0..j {
                v -= a[i * k + p] * a[j * k + p];
            }
            a[i * k + j] = v / d;
        }
    }
    let mut z = b.to_vec();
    for i in 0..k {
        for p in 0..i {
            z[i] -= a[i * k + p] * z[p];
        }
        z[i] /= a[i * k + i];
    }
    for i in (0..k).rev() {
        for p in i + 1..k {
            z[i] -= a[p * k + i] * z[p];
        }
        z[i] /= a[i * k + i];
    }
    Some(z)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_solves_and_refuses_singular_systems() {
        // A = [[4, 2], [2, 3]], b = [2, 1] → f = [0.5, 0].
        let mut a = vec![4.0, 0.0, 2.0, 3.0];
        let f = solve_spd(&mut a, &[2.0, 1.0], 2).unwrap();
        assert!((f[0] - 0.5).abs() < 1e-15 && f[1].abs() < 1e-15);
        let mut singular = vec![1.0, 0.0, 1.0, 1.0];
        assert!(solve_spd(&mut singular, &[1.0, 1.0], 2).is_none());
    }
}
