//! Supervised fine-tuning on the labels {c, d, s, e}: cross-entropy for direction, type and
//! strength, squared error for the scaled CAR, Adam over shuffled mini-batches.

use super::Example;
use super::policy::{Adam, HeadGrads, PolicyModel, TYPES, argmax};
use crate::contracts::label::{Sign, Strength};
use crate::rng::Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SftConfig {
    pub seed: u64,
    pub epochs: u32,
    pub batch_size: usize,
    pub learning_rate: f32,
    pub hidden: usize,
    pub buckets: usize,
    /// CAR targets are divided by this before the squared error.
    pub car_scale: f32,
    /// Weight of the CAR term.
    pub car_weight: f32,
    pub max_grad_norm: f32,
}

impl Default for SftConfig {
    fn default() -> Self {
        Self {
            seed: 7,
            epochs: 6,
            batch_size: 64,
            learning_rate: 0.005,
            hidden: 32,
            buckets: 512,
            car_scale: 0.03,
            car_weight: 0.5,
            max_grad_norm: 5.0,
        }
    }
}

/// One epoch's mean losses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SftEpoch {
    pub epoch: u32,
    pub loss: f64,
    pub direction_accuracy: f64,
}

fn direction_target(s: Sign) -> usize {
    match s {
        Sign::Positive => 0,
        Sign::Negative => 1,
        Sign::Neutral => 2,
    }
}

/// Fits a fresh policy; returns it with the per-epoch trace.
pub fn train(examples: &[Example], config: &SftConfig) -> (PolicyModel, Vec<SftEpoch>) {
    let mut model = PolicyModel::init(config.buckets, config.hidden, config.car_scale, config.seed);
    let mut adam = Adam::new(model.params.len(), config.learning_rate);
    let mut rng = Rng::derive(config.seed, 1);
    let mut order: Vec<usize> = (0..examples.len()).collect();
    let mut trace = Vec::new();
    let mut grad = vec![0.0f32; model.params.len()];
    for epoch in 0..config.epochs {
        // Fisher–Yates with the project's generator.
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let (mut loss_sum, mut hits) = (0.0f64, 0usize);
        for batch in order.chunks(config.batch_size.max(1)) {
            grad.fill(0.0);
            for &i in batch {
                let e = &examples[i];
                let f = model.forward(&e.x);
                let d = direction_target(e.label.direction);
                let mut d_dir = f.direction;
                d_dir[d] -= 1.0;
                let mut d_type = [0.0f32; TYPES];
                if let Some(t) = e.label.event_type.index() {
                    d_type = f.event_type;
                    d_type[t] -= 1.0;
                    loss_sum -= (f.event_type[t].max(1e-12) as f64).ln();
                }
                let s = if e.label.strength == Strength::Strong {
                    0
                } else {
                    1
                };
                let mut d_str = f.strength;
                d_str[s] -= 1.0;
                let err = f.car / config.car_scale - e.label.car as f32 / config.car_scale;
                let d_car = 2.0 * config.car_weight * err;
                loss_sum -= (f.direction[d].max(1e-12) as f64).ln()
                    + (f.strength[s].max(1e-12) as f64).ln();
                loss_sum += (config.car_weight * err * err) as f64;
                hits += (argmax(&f.direction) == d) as usize;
                let d = HeadGrads {
                    direction: d_dir,
                    event_type: d_type,
                    strength: d_str,
                    car_raw: d_car,
                };
                model.backward(&e.x, &f, &d, &mut grad);
            }
            let n = batch.len() as f32;
            for g in grad.iter_mut() {
                *g /= n;
            }
            adam.step(&mut model.params, &grad, config.max_grad_norm);
        }
        trace.push(SftEpoch {
            epoch,
            loss: loss_sum / examples.len().max(1) as f64,
            direction_accuracy: hits as f64 / examples.len().max(1) as f64,
        });
    }
    (model, trace)
}
