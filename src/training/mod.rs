//! The reference trainer (docs/trainer-contract.md): a small policy over event features, fitted
//! with SFT on the labels and then GRPO under the HGRM reward (the reward module itself).
//! Deterministic for a seed; runs on a CPU in seconds.

pub mod features;
pub mod grpo;
pub mod onnx;
pub mod policy;
pub mod sft;

use crate::contracts::event_car::EventCarArtifact;
use crate::contracts::label::Label;
use chrono::NaiveDate;
use features::{Sparse, encode};

/// One labelled event, encoded.
#[derive(Debug, Clone)]
pub struct Example {
    pub event_id: String,
    pub x: Sparse,
    pub label: Label,
    /// The last day of the label window: when the label became known (orders a validation
    /// split in time, so validation never precedes what it validates).
    pub known_on: NaiveDate,
}

/// Labelled events whose whole label window ends before `until` (so nothing of a held-out
/// window leaks into training), encoded with `buckets` hash buckets.
pub fn examples(
    artifact: &EventCarArtifact,
    buckets: usize,
    until: Option<NaiveDate>,
) -> Vec<Example> {
    artifact
        .records
        .iter()
        .filter_map(|r| {
            let label = r.label.clone()?;
            let last_day = r.window.last()?.date;
            if until.is_some_and(|u| last_day >= u) {
                return None;
            }
            Some(Example {
                event_id: r.event_id.clone(),
                x: encode(&r.symbol, &r.title, buckets),
                label,
                known_on: last_day,
            })
        })
        .collect()
}

/// Features of every record of an artifact (for prediction), labelled or not.
pub fn encode_all(artifact: &EventCarArtifact, buckets: usize) -> Vec<(String, Sparse)> {
    artifact
        .records
        .iter()
        .map(|r| (r.event_id.clone(), encode(&r.symbol, &r.title, buckets)))
        .collect()
}
