//! `janus-hgrm-reward-v1`: per-sample decompositions of the hierarchical gated reward
//! (DESIGN §3.3), so every reward a trainer saw can be audited term by term.

use super::hash::Sha256Hex;
use super::label::Prediction;
use super::lineage::Lineage;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum HgrmRewardVersion {
    #[serde(rename = "janus-hgrm-reward-v1")]
    V1,
}

/// The rewards of one batch of completions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HgrmRewardArtifact {
    /// The reward configuration the batch was scored with, as canonical JSON.
    pub config: serde_json::Value,
    pub generated_at: DateTime<Utc>,
    pub lineage: Lineage,
    /// SHA-256 of the RFC 8785 encoding of this object without `manifest_hash`.
    pub manifest_hash: Sha256Hex,
    /// One decomposition per scored completion, in input order.
    pub records: Vec<RewardDecomposition>,
    /// Always `janus-hgrm-reward-v1`.
    pub schema_version: HgrmRewardVersion,
    pub summary: RewardSummary,
}

/// Batch statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RewardSummary {
    /// Samples whose final reward was clipped.
    pub clipped: u64,
    /// Share of samples whose direction gate passed.
    pub direction_gate_pass_ratio: f64,
    /// Completions without a valid structured output.
    pub format_failures: u64,
    /// Samples stopped by the hard direction gate.
    pub hard_gate_failures: u64,
    pub mean_final_reward: f64,
    pub mean_pnl_reward: f64,
    pub samples: u64,
    /// Share of samples whose event type matched the label.
    pub type_match_ratio: f64,
    /// Completions that could not be scored (unknown event id, unlabelled event, bad line), by
    /// reason; not counted in `samples`.
    pub unscored_by_reason: BTreeMap<String, u64>,
}

impl RewardSummary {
    /// The summary of `records` (ratios and means over all samples; 0 for an empty batch) with
    /// the unscored lines counted by reason. The one computation `janus reward` writes and every
    /// reader recounts (`contracts::consistency`), so the two cannot drift apart.
    pub fn of(records: &[RewardDecomposition], unscored: &BTreeMap<String, u64>) -> Self {
        let n = records.len();
        let ratio = |k: usize| if n == 0 { 0.0 } else { k as f64 / n as f64 };
        let mean = |f: &dyn Fn(&RewardDecomposition) -> f64| {
            if n == 0 {
                0.0
            } else {
                records.iter().map(f).sum::<f64>() / n as f64
            }
        };
        let count =
            |f: &dyn Fn(&RewardDecomposition) -> bool| records.iter().filter(|r| f(r)).count();
        RewardSummary {
            samples: n as u64,
            format_failures: count(&|r| r.format_failure.is_some()) as u64,
            direction_gate_pass_ratio: ratio(count(&|r| r.direction_gate_passed)),
            // Stopped by the gate: an opposite call while the gate is on.
            hard_gate_failures: count(&|r| {
                r.prediction.is_some()
                    && !r.direction_gate_passed
                    && !r.gated_out.iter().any(|g| g == "direction")
            }) as u64,
            type_match_ratio: ratio(count(&|r| r.event_type_gate == TypeGate::Match)),
            clipped: count(&|r| r.clipped) as u64,
            mean_final_reward: mean(&|r| r.final_reward),
            mean_pnl_reward: mean(&|r| r.components.pnl),
            unscored_by_reason: unscored.clone(),
        }
    }
}

/// One sample's reward, term by term.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RewardDecomposition {
    /// True exactly when clipping changed the value.
    pub clipped: bool,
    /// Each term before weighting; a term the gates or switches exclude is 0 and listed in `gated_out`.
    pub components: RewardComponents,
    /// Hard direction gate: false when the direction opposes the label.
    pub direction_gate_passed: bool,
    pub event_id: String,
    /// Soft event-type gate outcome.
    pub event_type_gate: TypeGate,
    pub final_reward: f64,
    /// Why the completion could not be parsed.
    pub format_failure: Option<FormatFailure>,
    /// Terms excluded by the gates or by configuration switches.
    pub gated_out: Vec<String>,
    /// m_evt applied to the PnL term (1 when the type matched).
    pub pnl_discount: f64,
    /// The parsed prediction; absent on a format failure.
    pub prediction: Option<Prediction>,
    /// Weighted sum before clipping to the configured bounds.
    pub unclipped_reward: f64,
}

/// Outcome of the soft event-type gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TypeGate {
    Match,
    Wrong,
    Missing,
    /// Not evaluated (format failure, hard gate, or gate switched off).
    NotApplied,
}

/// The reward's terms (DESIGN §3.3), unweighted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RewardComponents {
    /// −λ_dir when the hard gate fails, else 0.
    pub direction: f64,
    /// 0 on a match, −λ_evt when wrong, −λ_miss when missing.
    pub event_type: f64,
    /// exp(−(ĉ − c)² / 2σ²).
    pub magnitude: f64,
    /// clip(position × CAR − κ, −ρ, ρ) × m_evt, strong calls only.
    pub pnl: f64,
    /// Structured-reasoning reward or format penalty.
    pub process: f64,
    /// Asymmetric strength regularizer.
    pub strength: f64,
}

/// A named reason a completion has no valid structured output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FormatFailure {
    /// What exactly was wrong.
    pub detail: String,
    /// Machine-readable kind, e.g. `no_json_object`, `missing_field`, `invalid_value`.
    pub kind: String,
}
