//! The reference policy: one hidden tanh layer over sparse event features and four heads —
//! direction (long/short/hold), event type (ten), strength (strong/weak) and the CAR estimate.
//! Float32 throughout, so an exported ONNX graph computes the same numbers. Parameters live in
//! one flat vector with a fixed layout, which keeps the optimizer and the file format simple.

use super::features::{Sparse, dimension};
use crate::contracts::label::{Direction, Prediction, Strength};
use crate::rng::Rng;
use crate::taxonomy::EventType;
use serde::{Deserialize, Serialize};

pub const DIRECTIONS: [Direction; 3] = [Direction::Long, Direction::Short, Direction::Hold];
pub const STRENGTHS: [Strength; 2] = [Strength::Strong, Strength::Weak];
pub const TYPES: usize = 10;

/// The model file (`model.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyModel {
    /// Always `janus-reference-policy-v3` (v3: trained on `features::FEATURES_VERSION` v3,
    /// headline only, without the event type label; v2 took the type label as an input and
    /// v1 the event's symbol. An older model would be served different features than it
    /// learned, so it is refused).
    pub format: String,
    pub buckets: usize,
    pub hidden: usize,
    /// ĉ = car head output × car_scale.
    pub car_scale: f32,
    /// Layout: w1 (dim × hidden, row per input), b1, then per head (direction 3, type 10,
    /// strength 2, car 1): weights (hidden × outputs, row per hidden unit) and biases.
    pub params: Vec<f32>,
}

pub const FORMAT: &str = "janus-reference-policy-v3";

/// Offsets of each block in `params`.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub dim: usize,
    pub hidden: usize,
    pub w1: usize,
    pub b1: usize,
    /// (weights offset, bias offset, outputs) per head.
    pub heads: [(usize, usize, usize); 4],
    pub len: usize,
}

impl Layout {
    pub fn new(buckets: usize, hidden: usize) -> Self {
        let dim = dimension(buckets);
        let mut at = 0;
        let w1 = at;
        at += dim * hidden;
        let b1 = at;
        at += hidden;
        let mut heads = [(0, 0, 0); 4];
        for (i, outputs) in [3, TYPES, 2, 1].into_iter().enumerate() {
            heads[i] = (at, at + hidden * outputs, outputs);
            at += hidden * outputs + outputs;
        }
        Self {
            dim,
            hidden,
            w1,
            b1,
            heads,
            len: at,
        }
    }

    /// The weight matrices (not the biases): what weight decay shrinks.
    pub fn weight_ranges(&self) -> Vec<std::ops::Range<usize>> {
        std::iter::once(self.w1..self.b1)
            .chain(self.heads.iter().map(|&(w, b, _)| w..b))
            .collect()
    }
}

/// Derivatives of a loss with respect to each head's logits (and the raw, unscaled car output).
#[derive(Debug, Clone, PartialEq)]
pub struct HeadGrads {
    pub direction: [f32; 3],
    pub event_type: [f32; TYPES],
    pub strength: [f32; 2],
    pub car_raw: f32,
}

/// Everything the forward pass computed, for prediction and backpropagation.
#[derive(Debug, Clone, PartialEq)]
pub struct Forward {
    pub hidden: Vec<f32>,
    /// Softmax probabilities of the direction, type and strength heads.
    pub direction: [f32; 3],
    pub event_type: [f32; TYPES],
    pub strength: [f32; 2],
    /// ĉ (already scaled).
    pub car: f32,
}

impl Forward {
    /// The greedy prediction: the most probable class of each head and the mean ĉ.
    pub fn prediction(&self) -> Prediction {
        Prediction {
            direction: DIRECTIONS[argmax(&self.direction)],
            event_type: Some(EventType::KNOWN[argmax(&self.event_type)]),
            strength: STRENGTHS[argmax(&self.strength)],
            car_estimate: self.car as f64,
        }
    }

    /// The probability the direction head gives the direction [`Self::prediction`] calls
    /// (single precision, as the model computes it).
    pub fn direction_probability(&self) -> f32 {
        self.direction[argmax(&self.direction)]
    }
}

pub fn softmax<const N: usize>(z: [f32; N]) -> [f32; N] {
    let m = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let mut e = z.map(|v| (v - m).exp());
    let s: f32 = e.iter().sum();
    for v in e.iter_mut() {
        *v /= s;
    }
    e
}

pub fn argmax(p: &[f32]) -> usize {
    p.iter()
        .enumerate()
        .fold(0, |best, (i, v)| if *v > p[best] { i } else { best })
}

impl PolicyModel {
    /// Small random weights, deterministic for the seed.
    pub fn init(buckets: usize, hidden: usize, car_scale: f32, seed: u64) -> Self {
        let layout = Layout::new(buckets, hidden);
        let mut rng = Rng::new(seed);
        let mut params = vec![0.0f32; layout.len];
        let s1 = (1.0 / 8.0f64).sqrt();
        for p in &mut params[layout.w1..layout.b1] {
            *p = (rng.normal() * s1) as f32;
        }
        let s2 = (1.0 / hidden as f64).sqrt();
        for (w, b, _) in layout.heads {
            for p in &mut params[w..b] {
                *p = (rng.normal() * s2) as f32;
            }
        }
        Self {
            format: FORMAT.into(),
            buckets,
            hidden,
            car_scale,
            params,
        }
    }

    pub fn layout(&self) -> Layout {
        Layout::new(self.buckets, self.hidden)
    }

    /// Checks that the file describes a well-formed model.
    pub fn validate(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!(
                "format is `{}`, expected `{FORMAT}` (retrain the model with this version)",
                self.format
            ));
        }
        let layout = self.layout();
        if self.params.len() != layout.len {
            return Err(format!(
                "{} parameters, but buckets {} and hidden {} need {}",
                self.params.len(),
                self.buckets,
                self.hidden,
                layout.len
            ));
        }
        let finite = self.params.iter().all(|p| p.is_finite());
        if !(finite && self.car_scale.is_finite() && self.car_scale > 0.0) {
            return Err("parameters must be finite and car_scale positive".into());
        }
        Ok(())
    }

    fn head<const N: usize>(&self, l: &Layout, k: usize, h: &[f32]) -> [f32; N] {
        let (w, b, n) = l.heads[k];
        debug_assert_eq!(n, N);
        let mut z = [0.0f32; N];
        for (o, zo) in z.iter_mut().enumerate() {
            *zo = self.params[b + o];
        }
        for (j, hj) in h.iter().enumerate() {
            let row = &self.params[w + j * N..w + (j + 1) * N];
            for (zo, wo) in z.iter_mut().zip(row) {
                *zo += hj * wo;
            }
        }
        z
    }

    pub fn forward(&self, x: &Sparse) -> Forward {
        let l = self.layout();
        let mut hidden: Vec<f32> = self.params[l.b1..l.b1 + l.hidden].to_vec();
        for &(i, v) in x {
            let row =
                &self.params[l.w1 + i as usize * l.hidden..l.w1 + (i as usize + 1) * l.hidden];
            for (h, w) in hidden.iter_mut().zip(row) {
                *h += v * w;
            }
        }
        for h in hidden.iter_mut() {
            *h = h.tanh();
        }
        let car: [f32; 1] = self.head(&l, 3, &hidden);
        Forward {
            direction: softmax(self.head(&l, 0, &hidden)),
            event_type: softmax(self.head(&l, 1, &hidden)),
            strength: softmax(self.head(&l, 2, &hidden)),
            car: car[0] * self.car_scale,
            hidden,
        }
    }

    /// The greedy prediction: the most probable class of each head and the mean ĉ.
    pub fn predict(&self, x: &Sparse) -> Prediction {
        self.forward(x).prediction()
    }

    /// Accumulates into `grad` the gradient of a loss whose derivatives with respect to the
    /// heads' pre-softmax logits (and the raw car output) are `d`.
    pub fn backward(&self, x: &Sparse, f: &Forward, d: &HeadGrads, grad: &mut [f32]) {
        let l = self.layout();
        let mut d_hidden = vec![0.0f32; l.hidden];
        let heads: [&[f32]; 4] = [
            &d.direction,
            &d.event_type,
            &d.strength,
            std::slice::from_ref(&d.car_raw),
        ];
        for (k, dz) in heads.iter().enumerate() {
            let (w, b, n) = l.heads[k];
            for (o, d) in dz.iter().enumerate() {
                grad[b + o] += d;
            }
            for (j, dh) in d_hidden.iter_mut().enumerate() {
                let row = w + j * n;
                for (o, d) in dz.iter().enumerate() {
                    grad[row + o] += f.hidden[j] * d;
                    *dh += self.params[row + o] * d;
                }
            }
        }
        for (j, dh) in d_hidden.iter_mut().enumerate() {
            *dh *= 1.0 - f.hidden[j] * f.hidden[j];
            grad[l.b1 + j] += *dh;
        }
        for &(i, v) in x {
            let row = l.w1 + i as usize * l.hidden;
            for (j, dh) in d_hidden.iter().enumerate() {
                grad[row + j] += v * dh;
            }
        }
    }
}

/// Adam with global-norm gradient clipping and optional decoupled weight decay (AdamW).
#[derive(Debug, Clone)]
pub struct Adam {
    pub lr: f32,
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
    /// (λ, parameter ranges it applies to): each step shrinks those parameters by lr·λ.
    decay: Option<(f32, Vec<std::ops::Range<usize>>)>,
}

impl Adam {
    pub fn new(len: usize, lr: f32) -> Self {
        Self {
            lr,
            m: vec![0.0; len],
            v: vec![0.0; len],
            t: 0,
            decay: None,
        }
    }

    /// AdamW: decoupled weight decay λ on `ranges` (the weights; biases are left alone).
    pub fn with_weight_decay(mut self, lambda: f32, ranges: Vec<std::ops::Range<usize>>) -> Self {
        self.decay = (lambda > 0.0).then_some((lambda, ranges));
        self
    }

    /// One descent step on `params` along `grad` (scaled to `max_norm` when longer). Returns
    /// the gradient's norm before clipping.
    pub fn step(&mut self, params: &mut [f32], grad: &[f32], max_norm: f32) -> f32 {
        let norm = grad.iter().map(|g| g * g).sum::<f32>().sqrt();
        let scale = if norm > max_norm && norm > 0.0 {
            max_norm / norm
        } else {
            1.0
        };
        self.t += 1;
        let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        let c1 = 1.0 - b1.powi(self.t);
        let c2 = 1.0 - b2.powi(self.t);
        for i in 0..params.len() {
            let g = grad[i] * scale;
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * g;
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * g * g;
            params[i] -= self.lr * (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + eps);
        }
        if let Some((lambda, ranges)) = &self.decay {
            let shrink = 1.0 - self.lr * lambda;
            for r in ranges {
                for p in &mut params[r.clone()] {
                    *p *= shrink;
                }
            }
        }
        norm
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::features::encode;

    /// The analytic gradient matches finite differences (checks `backward`).
    #[test]
    fn gradients_match_finite_differences() {
        let model = PolicyModel::init(32, 6, 0.03, 1);
        let x = encode("600000.SH", "分红 增长 profit", 32);
        // Loss: CE(direction = 1) + CE(type = 4) + CE(strength = 0) + (raw car − 0.5)².
        let loss = |m: &PolicyModel| -> f64 {
            let f = m.forward(&x);
            -(f.direction[1] as f64).ln()
                - (f.event_type[4] as f64).ln()
                - (f.strength[0] as f64).ln()
                + ((f.car / m.car_scale) as f64 - 0.5).powi(2)
        };
        let f = model.forward(&x);
        let mut d_dir = f.direction;
        d_dir[1] -= 1.0;
        let mut d_type = f.event_type;
        d_type[4] -= 1.0;
        let mut d_str = f.strength;
        d_str[0] -= 1.0;
        let d_car = 2.0 * (f.car / model.car_scale - 0.5);
        let mut grad = vec![0.0f32; model.params.len()];
        let d = HeadGrads {
            direction: d_dir,
            event_type: d_type,
            strength: d_str,
            car_raw: d_car,
        };
        model.backward(&x, &f, &d, &mut grad);
        let mut checked = 0;
        for i in (0..model.params.len()).step_by(7) {
            let h = 1e-2f32;
            let mut plus = model.clone();
            plus.params[i] += h;
            let mut minus = model.clone();
            minus.params[i] -= h;
            let numeric = (loss(&plus) - loss(&minus)) / (2.0 * h as f64);
            if numeric.abs() > 1e-4 || grad[i].abs() > 1e-4 {
                assert!(
                    (numeric - grad[i] as f64).abs() < 2e-3 * (1.0 + numeric.abs()),
                    "param {i}: {numeric} vs {}",
                    grad[i]
                );
                checked += 1;
            }
        }
        assert!(checked > 20);
    }
}
