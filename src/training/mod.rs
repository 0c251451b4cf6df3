//! The reference trainer (docs/trainer-contract.md): a small policy over event features, fitted
//! with SFT on the labels and then GRPO under the HGRM reward (the reward module itself).
//! Deterministic for a seed; runs on a CPU in seconds.

pub mod features;
pub mod grpo;
pub mod onnx;
pub mod policy;
pub mod sft;

use crate::contracts::event_car::{EventCarArtifact, EventCarRecord};
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

/// Whether the trainer learns from record `r` under `until`: its label and the last day of its
/// label window, when it has a label and that window ends before `until`. The one rule both
/// [`examples`] and [`training_window`] apply.
fn trained_on(r: &EventCarRecord, until: Option<NaiveDate>) -> Option<(&Label, NaiveDate)> {
    let label = r.label.as_ref()?;
    let last_day = r.window.last()?.date;
    if until.is_some_and(|u| last_day >= u) {
        return None;
    }
    Some((label, last_day))
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
            let (label, last_day) = trained_on(r, until)?;
            Some(Example {
                event_id: r.event_id.clone(),
                x: encode(&r.symbol, &r.title, buckets),
                label: label.clone(),
                known_on: last_day,
            })
        })
        .collect()
}

/// What a model trained on `artifact` with `until` saw, in days: the latest first trading day
/// (d0) of its training events and the latest last day of their label windows (the evidence's
/// `windows.training_cutoff` and `windows.training_label_end`). `None` when no event trains.
pub fn training_window(
    artifact: &EventCarArtifact,
    until: Option<NaiveDate>,
) -> Option<(NaiveDate, NaiveDate)> {
    artifact
        .records
        .iter()
        .filter_map(|r| {
            let (_, last_day) = trained_on(r, until)?;
            let d0 = r.d0.or(r.window.first().map(|w| w.date))?;
            Some((d0, last_day))
        })
        .reduce(|(a, b), (c, d)| (a.max(c), b.max(d)))
}

/// Features of every record of an artifact (for prediction), labelled or not.
pub fn encode_all(artifact: &EventCarArtifact, buckets: usize) -> Vec<(String, Sparse)> {
    artifact
        .records
        .iter()
        .map(|r| (r.event_id.clone(), encode(&r.symbol, &r.title, buckets)))
        .collect()
}
