//! Bootstrap confidence intervals and one-sided p-values (DESIGN §3.5):
//! - the stationary bootstrap of Politis & Romano (1994) over daily returns, for the Sharpe
//!   ratio and the candidate − baseline Sharpe delta (both series resampled with the same
//!   indices, so their dependence is kept);
//! - a paired bootstrap over events for direction- and event-type-accuracy deltas.
//!
//! Intervals are percentile intervals; the p-value of H0 "delta ≤ 0" is
//! (1 + #{δ* ≤ 0}) / (B + 1). Results depend only on the seed: resamples are drawn in fixed
//! blocks, each from its own stream, whatever the number of threads.

use super::metrics::{Undefined, sharpe, sharpe_ratio};
use crate::contracts::evidence::{Delta, Significance};
use crate::rng::Rng;

/// Resamples drawn from one stream.
const BLOCK: usize = 256;

/// The fewest resamples an interval is computed from, in `janus evaluate`'s configuration
/// (`bootstrap.resamples`) and `janus metrics --bootstrap` alike (0 there: no interval): with
/// fewer, the 2.5 % and 97.5 % quantiles are an extreme draw or two, and one resample gives an
/// "interval" of zero width with p = 0.5.
pub const MIN_RESAMPLES: u32 = 100;

/// A bootstrap setting out of range. Each names what was given; the caller names where (a
/// configuration key, a command-line flag).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingError {
    #[error("{0} resamples: an interval needs at least {MIN_RESAMPLES}")]
    TooFewResamples(u32),
    #[error(
        "block length {0} is not a finite number ≥ 1 (the expected block length of the \
         stationary bootstrap, in days; 1 is the i.i.d. bootstrap)"
    )]
    BlockLength(f64),
    #[error("confidence {0} does not lie in (0, 1)")]
    Confidence(f64),
    #[error(
        "block length {block_length} is not below the {days} return days of the series: every \
         stationary-bootstrap resample would be (close to) a rotation of the series, whose SR is \
         the original's, so the interval would collapse onto the point estimate and the p-value \
         onto its minimum (false significance); use a block length below {days}"
    )]
    BlockNotBelowSeries { block_length: f64, days: usize },
}

/// Which setting a [`SettingError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    Resamples,
    BlockLength,
    Confidence,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BootstrapConfig {
    pub resamples: u32,
    /// Expected block length of the stationary bootstrap, in days (≥ 1).
    pub block_length: f64,
    pub seed: u64,
    /// Two-sided confidence level, e.g. 0.95.
    pub confidence: f64,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        Self {
            resamples: 10_000,
            block_length: 5.0,
            seed: 42,
            confidence: 0.95,
        }
    }
}

impl BootstrapConfig {
    /// Checks the settings on their own: at least [`MIN_RESAMPLES`] resamples, a finite block
    /// length ≥ 1 (NaN and ∞ are refused, not read as "no blocks"), a confidence in (0, 1).
    pub fn validate(&self) -> Result<(), (Setting, SettingError)> {
        if self.resamples < MIN_RESAMPLES {
            return Err((
                Setting::Resamples,
                SettingError::TooFewResamples(self.resamples),
            ));
        }
        if !(self.block_length.is_finite() && self.block_length >= 1.0) {
            return Err((
                Setting::BlockLength,
                SettingError::BlockLength(self.block_length),
            ));
        }
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return Err((
                Setting::Confidence,
                SettingError::Confidence(self.confidence),
            ));
        }
        Ok(())
    }

    /// Checks the block length against a series of `days` return days: it must be below
    /// `days`. At L ≥ n a resample has on average at most one block, i.e. it is a rotation of
    /// the series (at L = 10⁹, all of them are): the SR of a rotation is the SR of the series,
    /// so the interval has zero width and p = 1 / (B + 1) whatever the data.
    pub fn fits(&self, days: usize) -> Result<(), SettingError> {
        if self.block_length >= days as f64 {
            return Err(SettingError::BlockNotBelowSeries {
                block_length: self.block_length,
                days,
            });
        }
        Ok(())
    }

    pub fn significance(&self, method: &str) -> Significance {
        Significance {
            method: method.to_string(),
            resamples: self.resamples,
            block_length: self.block_length,
            seed: self.seed,
            confidence: self.confidence,
        }
    }
}

/// Fills `out` with one stationary-bootstrap resample of positions 0..n: blocks start at a
/// uniform position and continue (circularly) with probability 1 − 1/L per step.
pub fn stationary_indices(n: usize, block_length: f64, rng: &mut Rng, out: &mut Vec<usize>) {
    out.clear();
    let p_new = 1.0 / block_length.max(1.0);
    let mut i = rng.below(n as u64) as usize;
    for _ in 0..n {
        out.push(i);
        i = if rng.uniform() < p_new {
            rng.below(n as u64) as usize
        } else {
            (i + 1) % n
        };
    }
}

/// Runs `resample(rng) -> statistic` `count` times in fixed blocks on all cores; the result
/// order (and so every derived number) depends only on `seed`.
fn parallel_resamples<T: Copy + Default + Send>(
    count: usize,
    seed: u64,
    resample: impl Fn(&mut Rng) -> T + Sync,
) -> Vec<T> {
    let blocks = count.div_ceil(BLOCK);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(blocks.max(1));
    let per_thread = blocks.div_ceil(threads.max(1)).max(1);
    let mut out = vec![T::default(); count];
    std::thread::scope(|scope| {
        for (t, chunk) in out.chunks_mut(per_thread * BLOCK).enumerate() {
            let resample = &resample;
            scope.spawn(move || {
                for (b, block) in chunk.chunks_mut(BLOCK).enumerate() {
                    let mut rng = Rng::derive(seed, (t * per_thread + b) as u64);
                    for v in block.iter_mut() {
                        *v = resample(&mut rng);
                    }
                }
            });
        }
    });
    out
}

/// Linear-interpolated quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The interval and p-value of `value` from its resampled `draws` (sorted in place).
fn summarize(value: f64, draws: &mut [f64], confidence: f64) -> Delta {
    draws.sort_by(f64::total_cmp);
    let alpha = 1.0 - confidence;
    let at_or_below_zero = draws.partition_point(|d| *d <= 0.0);
    Delta {
        value,
        ci_lower: quantile(draws, alpha / 2.0),
        ci_upper: quantile(draws, 1.0 - alpha / 2.0),
        p_value: (1 + at_or_below_zero) as f64 / (draws.len() + 1) as f64,
    }
}

/// Sharpe ratio with a stationary-bootstrap interval (p-value of H0: SR ≤ 0), or why there is
/// none: a series without a Sharpe ratio (ruined or riskless, see [`sharpe_ratio`]) has no
/// interval either, nor has one whose block length is not below its length
/// ([`BootstrapConfig::fits`]; the commands refuse that setting before they get here). A resample that happens to have no defined SR counts as 0.
pub fn sharpe_interval(returns: &[f64], config: &BootstrapConfig) -> Result<Delta, Undefined> {
    let value = sharpe_ratio(returns)?;
    let n = returns.len();
    config.fits(n).map_err(Undefined::Bootstrap)?;
    let mut draws = parallel_resamples(config.resamples as usize, config.seed, |rng| {
        let mut idx = Vec::with_capacity(n);
        stationary_indices(n, config.block_length, rng, &mut idx);
        let sample: Vec<f64> = idx.iter().map(|&i| returns[i]).collect();
        sharpe(&sample).unwrap_or(0.0)
    });
    Ok(summarize(value, &mut draws, config.confidence))
}

/// Candidate − baseline Sharpe delta over the same days, resampled with shared indices; refused
/// (with the reason) when either side has no Sharpe ratio (ruin included, see [`sharpe_ratio`])
/// or the series are not paired day by day. A resample in which one side has no defined SR counts that side as 0.
pub fn sharpe_delta(
    candidate: &[f64],
    baseline: &[f64],
    config: &BootstrapConfig,
) -> Result<Delta, Undefined> {
    sharpe_delta_draws(candidate, baseline, config).map(|(delta, _)| delta)
}

/// [`sharpe_delta`] with its resampled deltas (sorted), for a chart of their distribution.
/// They are kept in memory only: no artifact carries them.
pub fn sharpe_delta_draws(
    candidate: &[f64],
    baseline: &[f64],
    config: &BootstrapConfig,
) -> Result<(Delta, Vec<f64>), Undefined> {
    let side = |who: &'static str, r: &[f64]| {
        sharpe_ratio(r).map_err(|e| Undefined::Side(who, Box::new(e)))
    };
    // Each side's own reason first: a ruined series ends early, and "ruin" is the reason its
    // delta has no value, not the unequal lengths that follow from it.
    let value = side("candidate", candidate)? - side("baseline", baseline)?;
    if candidate.len() != baseline.len() {
        return Err(Undefined::Unpaired {
            candidate: candidate.len(),
            baseline: baseline.len(),
        });
    }
    let n = candidate.len();
    config.fits(n).map_err(Undefined::Bootstrap)?;
    let mut draws = parallel_resamples(config.resamples as usize, config.seed, |rng| {
        let mut idx = Vec::with_capacity(n);
        stationary_indices(n, config.block_length, rng, &mut idx);
        let c: Vec<f64> = idx.iter().map(|&i| candidate[i]).collect();
        let b: Vec<f64> = idx.iter().map(|&i| baseline[i]).collect();
        sharpe(&c).unwrap_or(0.0) - sharpe(&b).unwrap_or(0.0)
    });
    let delta = summarize(value, &mut draws, config.confidence);
    Ok((delta, draws))
}

/// Per-event correctness of a candidate and a baseline on the same events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairedHit {
    pub candidate_direction: bool,
    pub baseline_direction: bool,
    /// Whether the label's type is one of the ten (only those events score event types).
    pub type_known: bool,
    pub candidate_type: bool,
    pub baseline_type: bool,
}

/// Direction-accuracy and event-type-accuracy deltas (candidate − baseline) with a paired
/// bootstrap over events: each resample draws events with replacement and scores both models
/// on the same draw. The DA delta is over all events; the ETA delta over the events of a known
/// type among them (in a resample without one it counts as 0). Either is refused with its
/// reason when it has no event to score.
pub fn accuracy_deltas(
    hits: &[PairedHit],
    config: &BootstrapConfig,
) -> (Result<Delta, Undefined>, Result<Delta, Undefined>) {
    let n = hits.len();
    if n == 0 {
        return (Err(Undefined::NothingScored), Err(Undefined::NothingScored));
    }
    // Each event's contribution to the two deltas, as one of 12 categories: the DA difference
    // (−1, 0, +1) × the ETA difference (−1, 0, +1, or not scored).
    let diff = |c: bool, b: bool| (c as i8 - b as i8 + 1) as u8;
    let category: Vec<u8> = hits
        .iter()
        .map(|h| {
            let da = diff(h.candidate_direction, h.baseline_direction);
            let eta = if h.type_known {
                diff(h.candidate_type, h.baseline_type)
            } else {
                3
            };
            da * 4 + eta
        })
        .collect();
    let sums = |counts: &[u32; 12]| -> (f64, f64) {
        let (mut da, mut eta, mut known) = (0i64, 0i64, 0i64);
        for (c, &k) in counts.iter().enumerate() {
            da += (c as i64 / 4 - 1) * k as i64;
            if c % 4 != 3 {
                eta += (c as i64 % 4 - 1) * k as i64;
                known += k as i64;
            }
        }
        let eta = if known == 0 {
            0.0
        } else {
            eta as f64 / known as f64
        };
        (da as f64 / n as f64, eta)
    };
    let mut full = [0u32; 12];
    for &c in &category {
        full[c as usize] += 1;
    }
    let (da_value, eta_value) = sums(&full);
    // One pass over a resample yields both deltas.
    let draws = parallel_resamples(config.resamples as usize, config.seed, |rng| {
        let mut counts = [0u32; 12];
        for _ in 0..n {
            counts[category[rng.below(n as u64) as usize] as usize] += 1;
        }
        sums(&counts)
    });
    let (mut da_draws, mut eta_draws): (Vec<f64>, Vec<f64>) = draws.into_iter().unzip();
    let eta = if hits.iter().any(|h| h.type_known) {
        Ok(summarize(eta_value, &mut eta_draws, config.confidence))
    } else {
        Err(Undefined::NoKnownType)
    };
    (
        Ok(summarize(da_value, &mut da_draws, config.confidence)),
        eta,
    )
}
