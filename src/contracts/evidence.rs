//! `janus-q-evidence-v1`: what the promotion gates read about a candidate (DESIGN §4-5):
//! completeness, counts, metrics with confidence intervals and significance, and the digests of
//! the artifacts the numbers came from.

use super::hash::Sha256Hex;
use super::lineage::{ArtifactRef, Lineage};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum EvidenceVersion {
    #[serde(rename = "janus-q-evidence-v1")]
    V1,
}

/// The evidence for one candidate model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvidenceArtifact {
    /// The artifacts the evidence was computed from.
    pub artifacts: Vec<ArtifactRef>,
    /// Baseline metrics by the same names.
    pub baseline_metrics: BTreeMap<String, f64>,
    /// Uncertainty calibration inputs of gate7; absent when not measured.
    pub calibration: Option<Calibration>,
    pub counts: EvidenceCounts,
    /// Candidate − baseline deltas with confidence intervals, by metric name.
    pub deltas: BTreeMap<String, Delta>,
    pub generated_at: DateTime<Utc>,
    pub lineage: Lineage,
    /// SHA-256 of the RFC 8785 encoding of this object without `manifest_hash`.
    pub manifest_hash: Sha256Hex,
    /// Candidate metrics by short name (`sr`, `mdd`, `arr`, `calmar`, `total_return`, `da`,
    /// `eta`, `mae`, `rmse`, ...).
    pub metrics: BTreeMap<String, f64>,
    /// SHA-256 of the candidate's model artifact, when a model was evaluated.
    pub model_sha256: Option<Sha256Hex>,
    /// Why a metric or delta has no value, so that a missing entry is never silent: keys are a
    /// candidate metric's short name (`sr`, `arr`, ...), `baseline.<name>` for the baseline, and
    /// `delta.<name>` for a delta, `walk_forward.<name>` for a walk-forward statistic (e.g.
    /// `{"sr": "ruin: NAV fell to -1.25 ..."}`). Absent when every value is defined.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub null_reasons: BTreeMap<String, String>,
    /// Manifest hashes of the reproducibility checks: each a replayed artifact that matched.
    pub reproducibility_hashes: Vec<Sha256Hex>,
    /// Always `janus-q-evidence-v1`.
    pub schema_version: EvidenceVersion,
    /// How the intervals and p-values were computed; absent when no bootstrap ran.
    pub significance: Option<Significance>,
    pub summary: EvidenceSummary,
    /// Walk-forward stability; absent when not run.
    pub walk_forward: Option<WalkForwardSummary>,
}

/// Whether everything the policy asks for is present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvidenceSummary {
    pub complete: bool,
    /// Names of the evidence items that are missing (empty when complete).
    pub missing: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvidenceCounts {
    pub events: u64,
    pub labelled_events: u64,
    pub predictions: u64,
    pub rewards: u64,
    pub trades: u64,
    pub trading_days: u64,
    /// Records the evaluation could not use, by reason (`labelled_event_without_prices`,
    /// `unlabelled_event_without_prices`, `event_without_d0`, `prediction_malformed`,
    /// `prediction_unknown_event`, `prediction_duplicate`, `prediction_for_dropped_event`,
    /// `price_row_bad`, `labelled_event_without_call`); absent when none was dropped. Those that
    /// lost something scorable also appear in `summary.missing` as `dropped.<reason>`
    /// (docs/methodology.md).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dropped: BTreeMap<String, u64>,
}

/// A candidate − baseline difference with its bootstrap interval and one-sided p-value
/// (H0: delta ≤ 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Delta {
    pub ci_lower: f64,
    pub ci_upper: f64,
    pub p_value: f64,
    pub value: f64,
}

/// Bootstrap metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Significance {
    /// Expected block length of the stationary bootstrap, in days.
    pub block_length: f64,
    /// Two-sided confidence level of the intervals, e.g. 0.95.
    pub confidence: f64,
    /// e.g. `stationary_bootstrap` (daily returns) or `paired_bootstrap` (events).
    pub method: String,
    pub resamples: u32,
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WalkForwardSummary {
    /// Coefficient of variation of fold PnL; null (reason under `null_reasons`
    /// `walk_forward.fold_pnl_cv`) with no fold (`no_folds`), a single fold, or on ruin.
    pub fold_pnl_cv: Option<f64>,
    pub folds: u32,
    /// Share of folds with negative PnL; null (reason under `null_reasons`
    /// `walk_forward.negative_fold_ratio`) with no fold (`no_folds`) or on ruin.
    pub negative_fold_ratio: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// Mean interval width relative to the reference width.
    pub interval_width_ratio: f64,
    /// Observed coverage on the held-out window.
    pub observed_coverage: f64,
    /// Distribution-shift score in [0, 1] between training and held-out inputs.
    pub shift_score: f64,
    /// Target coverage of the prediction intervals, e.g. 0.90.
    pub target_coverage: f64,
}
