//! Group relative policy optimization (Shao et al., 2024) from the SFT policy, rewarded by the
//! HGRM reward module itself. For each event G actions are sampled (direction, type and
//! strength from the heads' softmax, ĉ from a Gaussian around the CAR head); advantages are the
//! rewards standardized within the group; the clipped surrogate is maximized with a KL penalty
//! to the frozen SFT reference, for a few inner iterations per sampled batch.

use super::Example;
use super::policy::{Adam, DIRECTIONS, Forward, HeadGrads, PolicyModel, STRENGTHS, TYPES};
use crate::contracts::label::Prediction;
use crate::reward::output::ParsedOutput;
use crate::reward::{HgrmConfig, score};
use crate::rng::Rng;
use crate::taxonomy::EventType;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpoConfig {
    pub seed: u64,
    pub steps: u32,
    /// Events per step.
    pub batch_size: usize,
    /// G: sampled outputs per event (the paper's grid: 2, 4, 8).
    pub group_size: usize,
    pub learning_rate: f32,
    /// β of the KL penalty to the SFT reference.
    pub kl_coef: f32,
    /// ε of the clipped ratio.
    pub clip_range: f32,
    pub max_grad_norm: f32,
    /// Policy-gradient iterations per sampled batch.
    pub inner_iterations: u32,
    /// Standard deviation of the sampled ĉ around the CAR head.
    pub car_sigma: f32,
}

impl Default for GrpoConfig {
    fn default() -> Self {
        Self {
            seed: 11,
            steps: 1000,
            batch_size: 256,
            group_size: 8,
            learning_rate: 0.0005,
            kl_coef: 0.1,
            clip_range: 0.2,
            max_grad_norm: 1.0,
            inner_iterations: 2,
            car_sigma: 0.01,
        }
    }
}

/// Per-step record of the training trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrpoStep {
    pub step: u32,
    pub mean_reward: f64,
    pub mean_direction_term: f64,
    pub mean_event_type_term: f64,
    pub mean_pnl_term: f64,
    pub mean_magnitude_term: f64,
    pub hard_gate_failures: usize,
    pub kl: f64,
    pub clip_fraction: f64,
    pub grad_norm: f64,
}

struct Sample {
    example: usize,
    direction: usize,
    event_type: usize,
    strength: usize,
    car: f32,
    old_log_prob: f32,
    advantage: f32,
}

fn categorical(rng: &mut Rng, p: &[f32]) -> usize {
    let weights: Vec<f64> = p.iter().map(|v| *v as f64).collect();
    rng.weighted_index(&weights)
}

fn log_prob(f: &Forward, s: &Sample, sigma: f32) -> f32 {
    let z = (s.car - f.car) / sigma;
    f.direction[s.direction].max(1e-12).ln()
        + f.event_type[s.event_type].max(1e-12).ln()
        + f.strength[s.strength].max(1e-12).ln()
        - 0.5 * z * z
}

fn kl<const N: usize>(p: &[f32; N], q: &[f32; N]) -> f32 {
    p.iter()
        .zip(q)
        .map(|(a, b)| a * (a.max(1e-12).ln() - b.max(1e-12).ln()))
        .sum()
}

/// d KL(p‖q) / d logits of p.
fn kl_grad<const N: usize>(p: &[f32; N], q: &[f32; N]) -> [f32; N] {
    let k = kl(p, q);
    let mut g = [0.0f32; N];
    for ((gi, a), b) in g.iter_mut().zip(p).zip(q) {
        *gi = a * (a.max(1e-12).ln() - b.max(1e-12).ln() - k);
    }
    g
}

/// Adds the gradient with respect to a categorical head's logits of `coef · log p(action)`:
/// coef · (onehot − p).
fn add_policy_grad<const N: usize>(d: &mut [f32; N], p: &[f32; N], action: usize, coef: f32) {
    for (k, dk) in d.iter_mut().enumerate() {
        *dk += coef * ((k == action) as u8 as f32 - p[k]);
    }
}

/// Adds `weight · ∂KL(p‖q)/∂logits`.
fn add_kl_grad<const N: usize>(d: &mut [f32; N], p: &[f32; N], q: &[f32; N], weight: f32) {
    for (dk, gk) in d.iter_mut().zip(kl_grad(p, q)) {
        *dk += weight * gk;
    }
}

/// Adds to `grad` the gradient of the clipped surrogate (to be minimized: −ratio · A) plus
/// β · KL to the reference, summed over `samples` (G consecutive samples per event, with the
/// reference's forward pass of each event in `references`). Returns the summed KL and how many
/// samples the clip stopped.
///
/// One forward and one backward pass per event: the G samples of an event share the forward
/// pass, and the backward pass is linear in the heads' derivatives, so their (and the KL
/// term's) derivatives are summed first.
fn accumulate_gradient(
    model: &PolicyModel,
    examples: &[Example],
    samples: &[Sample],
    references: &[Forward],
    config: &GrpoConfig,
    grad: &mut [f32],
) -> (f64, usize) {
    let sigma = config.car_sigma;
    let (beta, eps) = (config.kl_coef, config.clip_range);
    let car_grad = model.car_scale / (sigma * sigma);
    let g = samples.len() / references.len().max(1);
    let (mut kl_sum, mut clipped) = (0.0f64, 0usize);
    for (group, r) in samples.chunks(g.max(1)).zip(references) {
        let e = &examples[group[0].example];
        let f = model.forward(&e.x);
        let mut d = HeadGrads {
            direction: [0.0; 3],
            event_type: [0.0; TYPES],
            strength: [0.0; 2],
            car_raw: 0.0,
        };
        for s in group {
            let ratio = (log_prob(&f, s, sigma) - s.old_log_prob).exp();
            let a = s.advantage;
            // The clipped surrogate's gradient vanishes where the clip is active.
            let active = !((a > 0.0 && ratio > 1.0 + eps) || (a < 0.0 && ratio < 1.0 - eps));
            clipped += (!active) as usize;
            let coef = if active { -a * ratio } else { 0.0 };
            add_policy_grad(&mut d.direction, &f.direction, s.direction, coef);
            add_policy_grad(&mut d.event_type, &f.event_type, s.event_type, coef);
            add_policy_grad(&mut d.strength, &f.strength, s.strength, coef);
            d.car_raw += coef * (s.car - f.car) * car_grad;
        }
        // KL to the frozen reference, once per sample.
        let weight = beta * group.len() as f32;
        add_kl_grad(&mut d.direction, &f.direction, &r.direction, weight);
        add_kl_grad(&mut d.event_type, &f.event_type, &r.event_type, weight);
        add_kl_grad(&mut d.strength, &f.strength, &r.strength, weight);
        d.car_raw += weight * (f.car - r.car) * car_grad;
        kl_sum += group.len() as f64
            * ((kl(&f.direction, &r.direction)
                + kl(&f.event_type, &r.event_type)
                + kl(&f.strength, &r.strength)) as f64
                + ((f.car - r.car) / sigma).powi(2) as f64 / 2.0);
        model.backward(&e.x, &f, &d, grad);
    }
    (kl_sum, clipped)
}

/// Improves `sft` (also the frozen reference) with GRPO; returns the policy and the trace.
pub fn train(
    sft: &PolicyModel,
    examples: &[Example],
    reward: &HgrmConfig,
    config: &GrpoConfig,
) -> (PolicyModel, Vec<GrpoStep>) {
    let reference = sft.clone();
    let mut model = sft.clone();
    let mut adam = Adam::new(model.params.len(), config.learning_rate);
    let mut rng = Rng::derive(config.seed, 2);
    let mut trace = Vec::new();
    let mut grad = vec![0.0f32; model.params.len()];
    let sigma = config.car_sigma;
    let g = config.group_size.max(2);
    if examples.is_empty() {
        return (model, trace);
    }
    for step in 0..config.steps {
        // Sample a batch and G outputs per event from the current policy.
        let batch: Vec<usize> = (0..config.batch_size)
            .map(|_| rng.below(examples.len() as u64) as usize)
            .collect();
        let mut samples = Vec::with_capacity(batch.len() * g);
        let (mut sum_r, mut sum_dir, mut sum_type, mut sum_pnl, mut sum_mag, mut hard) =
            (0.0, 0.0, 0.0, 0.0, 0.0, 0);
        let mut references = Vec::with_capacity(batch.len());
        for &i in &batch {
            let e = &examples[i];
            let f = model.forward(&e.x);
            references.push(reference.forward(&e.x));
            let mut group = Vec::with_capacity(g);
            for _ in 0..g {
                let mut s = Sample {
                    example: i,
                    direction: categorical(&mut rng, &f.direction),
                    event_type: categorical(&mut rng, &f.event_type),
                    strength: categorical(&mut rng, &f.strength),
                    car: f.car + sigma * rng.normal() as f32,
                    old_log_prob: 0.0,
                    advantage: 0.0,
                };
                s.old_log_prob = log_prob(&f, &s, sigma);
                let output = ParsedOutput {
                    prediction: Prediction {
                        direction: DIRECTIONS[s.direction],
                        event_type: Some(EventType::KNOWN[s.event_type]),
                        strength: STRENGTHS[s.strength],
                        car_estimate: s.car as f64,
                    },
                    reasoning_chars: reward.reasoning_min_chars,
                    extra_chars: 0,
                };
                let r = score(&e.event_id, Ok(&output), &e.label, reward);
                sum_r += r.final_reward;
                sum_dir += r.components.direction;
                sum_type += r.components.event_type;
                sum_pnl += r.components.pnl;
                sum_mag += r.components.magnitude;
                hard += (!r.direction_gate_passed) as usize;
                group.push((s, r.final_reward));
            }
            // Group-relative advantages.
            let mean = group.iter().map(|x| x.1).sum::<f64>() / g as f64;
            let sd = (group.iter().map(|x| (x.1 - mean).powi(2)).sum::<f64>() / g as f64).sqrt();
            for (mut s, r) in group {
                s.advantage = if sd > 1e-9 {
                    ((r - mean) / sd) as f32
                } else {
                    0.0
                };
                samples.push(s);
            }
        }
        let (mut kl_sum, mut clipped, mut norm) = (0.0f64, 0usize, 0.0f32);
        for _ in 0..config.inner_iterations.max(1) {
            grad.fill(0.0);
            (kl_sum, clipped) =
                accumulate_gradient(&model, examples, &samples, &references, config, &mut grad);
            let n = samples.len() as f32;
            for v in grad.iter_mut() {
                *v /= n;
            }
            norm = adam.step(&mut model.params, &grad, config.max_grad_norm);
        }
        let n = samples.len() as f64;
        trace.push(GrpoStep {
            step,
            mean_reward: sum_r / n,
            mean_direction_term: sum_dir / n,
            mean_event_type_term: sum_type / n,
            mean_pnl_term: sum_pnl / n,
            mean_magnitude_term: sum_mag / n,
            hard_gate_failures: hard,
            kl: kl_sum / n,
            clip_fraction: clipped as f64 / n,
            grad_norm: norm as f64,
        });
    }
    (model, trace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contracts::label::{Label, Sign, Strength};
    use crate::training::features::encode;

    /// The per-event accumulation computes the gradient of the per-sample objective
    /// Σ_s −A_s · exp(log π(s) − log π_old(s)) + β · Σ_s KL(π ‖ π_ref) (checked by finite
    /// differences, away from the clip).
    #[test]
    fn the_gradient_matches_finite_differences() {
        let reference = PolicyModel::init(16, 5, 0.03, 1);
        let mut model = reference.clone();
        let mut rng = Rng::new(3);
        for p in model.params.iter_mut() {
            *p += 0.2 * rng.normal() as f32;
        }
        let titles = ["增持 公告", "减持 处罚", "回购", "诉讼 下调"];
        let examples: Vec<Example> = (0..4)
            .map(|i| Example {
                event_id: format!("e{i}"),
                x: encode("600000.SH", titles[i], 16),
                label: Label {
                    car: 0.01,
                    direction: Sign::Positive,
                    strength: Strength::Weak,
                    event_type: EventType::KNOWN[i],
                },
                known_on: chrono::NaiveDate::from_ymd_opt(2024, 1, 2).unwrap(),
            })
            .collect();
        let config = GrpoConfig {
            kl_coef: 0.3,
            clip_range: 10.0,
            ..GrpoConfig::default()
        };
        let sigma = config.car_sigma;
        // Three samples per event, with old log-probabilities of a slightly different policy.
        let mut samples = Vec::new();
        for (i, e) in examples.iter().enumerate() {
            let f = model.forward(&e.x);
            for k in 0..3 {
                let mut s = Sample {
                    example: i,
                    direction: (i + k) % 3,
                    event_type: (3 * i + k) % TYPES,
                    strength: k % 2,
                    car: f.car + 0.004 * (k as f32 - 1.0),
                    old_log_prob: 0.0,
                    advantage: rng.normal() as f32,
                };
                s.old_log_prob = log_prob(&f, &s, sigma) + 0.05 * rng.normal() as f32;
                samples.push(s);
            }
        }
        let references: Vec<Forward> = examples.iter().map(|e| reference.forward(&e.x)).collect();
        let objective = |m: &PolicyModel| -> f64 {
            let mut total = 0.0f64;
            for s in &samples {
                let f = m.forward(&examples[s.example].x);
                let r = &references[s.example];
                let ratio = ((log_prob(&f, s, sigma) - s.old_log_prob) as f64).exp();
                total += -(s.advantage as f64) * ratio;
                total += config.kl_coef as f64
                    * ((kl(&f.direction, &r.direction)
                        + kl(&f.event_type, &r.event_type)
                        + kl(&f.strength, &r.strength)) as f64
                        + ((f.car - r.car) / sigma).powi(2) as f64 / 2.0);
            }
            total
        };
        let mut grad = vec![0.0f32; model.params.len()];
        let (_, clipped) =
            accumulate_gradient(&model, &examples, &samples, &references, &config, &mut grad);
        assert_eq!(clipped, 0);
        let mut checked = 0;
        for (i, analytic) in grad.iter().map(|g| *g as f64).enumerate() {
            let h = 1e-3f32;
            let mut plus = model.clone();
            plus.params[i] += h;
            let mut minus = model.clone();
            minus.params[i] -= h;
            let numeric = (objective(&plus) - objective(&minus)) / (2.0 * h as f64);
            if numeric.abs() > 1e-3 || analytic.abs() > 1e-3 {
                assert!(
                    (numeric - analytic).abs() < 2e-2 * (1.0 + numeric.abs()),
                    "param {i}: numeric {numeric} vs analytic {analytic}"
                );
                checked += 1;
            }
        }
        assert!(checked > 50, "{checked}");
    }
}
