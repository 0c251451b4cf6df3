//! Supervised fine-tuning on the labels {c, d, s, e}: cross-entropy for direction, type and
//! strength, squared error for the scaled CAR, AdamW over shuffled mini-batches. The most recent
//! share of the training events is held back to choose when to stop: news signals are weak and
//! a title's rare tokens (symbol codes) are easy to memorize, so the epoch with the lowest
//! validation loss is the model kept — not the last one.

use super::Example;
use super::policy::{Adam, Forward, HeadGrads, PolicyModel, TYPES, argmax};
use crate::contracts::label::{Sign, Strength};
use crate::rng::Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SftConfig {
    pub seed: u64,
    /// The most epochs trained; early stopping usually ends sooner.
    pub epochs: u32,
    pub batch_size: usize,
    pub learning_rate: f32,
    /// Decoupled (AdamW) weight decay on the weight matrices.
    pub weight_decay: f32,
    /// Share of the training events, the most recent by the day their label became known,
    /// held back to choose the epoch. 0 trains on everything for `epochs` epochs.
    pub validation_fraction: f64,
    /// Stop after this many epochs without a lower validation loss.
    pub patience: u32,
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
            epochs: 20,
            batch_size: 64,
            learning_rate: 0.005,
            weight_decay: 0.1,
            validation_fraction: 0.15,
            patience: 3,
            hidden: 32,
            buckets: 512,
            car_scale: 0.03,
            car_weight: 0.5,
            max_grad_norm: 5.0,
        }
    }
}

/// One epoch's mean losses, on the events trained on and on the validation events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SftEpoch {
    pub epoch: u32,
    pub loss: f64,
    pub direction_accuracy: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_loss: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_direction_accuracy: Option<f64>,
    /// This epoch's model is the one kept (the lowest validation loss so far, or the last).
    pub kept: bool,
}

fn direction_target(s: Sign) -> usize {
    match s {
        Sign::Positive => 0,
        Sign::Negative => 1,
        Sign::Neutral => 2,
    }
}

/// The supervised loss of one example and its derivatives with respect to the heads; the
/// third value says whether the greedy direction is the label's.
fn example_loss(f: &Forward, e: &Example, config: &SftConfig) -> (f64, HeadGrads, bool) {
    let d = direction_target(e.label.direction);
    let mut d_dir = f.direction;
    d_dir[d] -= 1.0;
    let mut loss = -(f.direction[d].max(1e-12) as f64).ln();
    let mut d_type = [0.0f32; TYPES];
    if let Some(t) = e.label.event_type.index() {
        d_type = f.event_type;
        d_type[t] -= 1.0;
        loss -= (f.event_type[t].max(1e-12) as f64).ln();
    }
    let s = if e.label.strength == Strength::Strong {
        0
    } else {
        1
    };
    let mut d_str = f.strength;
    d_str[s] -= 1.0;
    loss -= (f.strength[s].max(1e-12) as f64).ln();
    let err = f.car / config.car_scale - e.label.car as f32 / config.car_scale;
    loss += (config.car_weight * err * err) as f64;
    let grads = HeadGrads {
        direction: d_dir,
        event_type: d_type,
        strength: d_str,
        car_raw: 2.0 * config.car_weight * err,
    };
    (loss, grads, argmax(&f.direction) == d)
}

/// Mean loss and direction accuracy over `indices`.
fn mean_loss(
    model: &PolicyModel,
    examples: &[Example],
    indices: &[usize],
    config: &SftConfig,
) -> (f64, f64) {
    let (mut loss, mut hits) = (0.0, 0usize);
    for &i in indices {
        let (l, _, hit) = example_loss(&model.forward(&examples[i].x), &examples[i], config);
        loss += l;
        hits += hit as usize;
    }
    let n = indices.len().max(1) as f64;
    (loss / n, hits as f64 / n)
}

/// Splits example indices into (train, validation): validation is the most recent
/// `fraction` by the day the label became known (ties by position, so it is deterministic).
fn split_in_time(examples: &[Example], fraction: f64) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..examples.len()).collect();
    order.sort_by_key(|&i| (examples[i].known_on, i));
    let validation = ((examples.len() as f64) * fraction.clamp(0.0, 0.5)) as usize;
    let validation = order.split_off(order.len() - validation);
    (order, validation)
}

/// One line on which epoch was kept and why, for people.
pub fn describe_kept(trace: &[SftEpoch]) -> String {
    let Some(kept) = trace.iter().find(|e| e.kept) else {
        return "no epoch trained".into();
    };
    let validation = match (kept.validation_loss, kept.validation_direction_accuracy) {
        (Some(loss), Some(accuracy)) => {
            format!("; validation loss {loss:.4}, direction accuracy {accuracy:.3}")
        }
        _ => String::new(),
    };
    format!(
        "kept epoch {} of {}: loss {:.4}, direction accuracy {:.3}{validation}",
        kept.epoch + 1,
        trace.len(),
        kept.loss,
        kept.direction_accuracy
    )
}

/// Fits a fresh policy; returns the kept model with the per-epoch trace.
pub fn train(examples: &[Example], config: &SftConfig) -> (PolicyModel, Vec<SftEpoch>) {
    let mut model = PolicyModel::init(config.buckets, config.hidden, config.car_scale, config.seed);
    let mut adam = Adam::new(model.params.len(), config.learning_rate)
        .with_weight_decay(config.weight_decay, model.layout().weight_ranges());
    let mut rng = Rng::derive(config.seed, 1);
    let (mut order, validation) = split_in_time(examples, config.validation_fraction);
    // Shuffling starts from event order, as before a validation split existed.
    order.sort_unstable();
    let mut trace: Vec<SftEpoch> = Vec::new();
    let mut grad = vec![0.0f32; model.params.len()];
    let mut best: Option<(f64, usize, PolicyModel)> = None;
    for epoch in 0..config.epochs.max(1) {
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
                let (loss, d, hit) = example_loss(&f, e, config);
                loss_sum += loss;
                hits += hit as usize;
                model.backward(&e.x, &f, &d, &mut grad);
            }
            let n = batch.len() as f32;
            for g in grad.iter_mut() {
                *g /= n;
            }
            adam.step(&mut model.params, &grad, config.max_grad_norm);
        }
        let n = order.len().max(1) as f64;
        let mut record = SftEpoch {
            epoch,
            loss: loss_sum / n,
            direction_accuracy: hits as f64 / n,
            validation_loss: None,
            validation_direction_accuracy: None,
            kept: false,
        };
        if !validation.is_empty() {
            let (loss, accuracy) = mean_loss(&model, examples, &validation, config);
            record.validation_loss = Some(loss);
            record.validation_direction_accuracy = Some(accuracy);
            if best.as_ref().is_none_or(|b| loss < b.0) {
                best = Some((loss, trace.len(), model.clone()));
            }
        }
        trace.push(record);
        if let Some((_, at, _)) = &best
            && trace.len() - 1 - at >= config.patience.max(1) as usize
        {
            break;
        }
    }
    match best {
        Some((_, at, kept)) => {
            trace[at].kept = true;
            (kept, trace)
        }
        None => {
            if let Some(last) = trace.last_mut() {
                last.kept = true;
            }
            (model, trace)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contracts::label::Label;
    use crate::taxonomy::EventType;
    use crate::training::features::encode;
    use chrono::{Days, NaiveDate};

    /// Events whose titles carry a weak direction word and a unique, memorizable token.
    fn noisy_examples(n: usize) -> Vec<Example> {
        let mut rng = Rng::new(5);
        let day0 = NaiveDate::from_ymd_opt(2023, 1, 2).unwrap();
        (0..n)
            .map(|i| {
                let up = rng.bernoulli(0.5);
                // The word is right 60 % of the time.
                let says_up = up == rng.bernoulli(0.6);
                let title = format!("{} memo{i}", if says_up { "增持" } else { "减持" });
                let car = if up { 0.01 } else { -0.01 };
                Example {
                    event_id: format!("e{i}"),
                    x: encode("600000.SH", &title, 4096),
                    label: Label {
                        car,
                        direction: if up { Sign::Positive } else { Sign::Negative },
                        strength: Strength::Weak,
                        event_type: EventType::Dividend,
                    },
                    known_on: day0 + Days::new((i / 10) as u64),
                }
            })
            .collect()
    }

    #[test]
    fn validation_is_the_most_recent_share() {
        let mut data = noisy_examples(100);
        data.reverse();
        let (train, validation) = split_in_time(&data, 0.2);
        assert_eq!((train.len(), validation.len()), (80, 20));
        let latest_train = train.iter().map(|&i| data[i].known_on).max().unwrap();
        assert!(validation.iter().all(|&i| data[i].known_on >= latest_train));
    }

    #[test]
    fn early_stopping_keeps_the_epoch_with_the_lowest_validation_loss() {
        let data = noisy_examples(3000);
        let config = SftConfig {
            epochs: 30,
            buckets: 4096,
            learning_rate: 0.02,
            weight_decay: 0.0,
            ..SftConfig::default()
        };
        let (model, trace) = train(&data, &config);
        let kept: Vec<&SftEpoch> = trace.iter().filter(|e| e.kept).collect();
        assert_eq!(kept.len(), 1);
        let best = kept[0];
        let losses: Vec<f64> = trace.iter().map(|e| e.validation_loss.unwrap()).collect();
        assert!(losses.iter().all(|l| *l >= best.validation_loss.unwrap()));
        // Memorizing the unique tokens overfits, so training stops long before 30 epochs,
        // `patience` epochs after the best one.
        assert!(trace.len() < 30, "{trace:?}");
        assert_eq!(
            trace.len() as u32,
            best.epoch + 1 + config.patience,
            "{trace:?}"
        );
        // The kept model is that epoch's: its validation loss is reproduced.
        let (_, validation) = split_in_time(&data, config.validation_fraction);
        let (loss, _) = mean_loss(&model, &data, &validation, &config);
        assert!((loss - best.validation_loss.unwrap()).abs() < 1e-9);

        // Without a validation share every epoch runs and the last is kept.
        let all = SftConfig {
            epochs: 3,
            validation_fraction: 0.0,
            ..config
        };
        let (_, trace) = train(&data, &all);
        assert_eq!(trace.len(), 3);
        assert!(trace[2].kept && !trace[0].kept && !trace[1].kept);
        assert!(trace.iter().all(|e| e.validation_loss.is_none()));
    }
}
