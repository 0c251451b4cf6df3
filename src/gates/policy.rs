//! The gate policy (DESIGN §5): one versioned file, `config/gate-policy.json`, with a generated
//! JSON Schema. Each evidence family has exactly one switch, `enabled`, inside its own section:
//! it decides both whether the family's evidence is required and whether it is checked, so a
//! policy where the two disagree cannot be written.

use crate::config::{Validate, check};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PolicyVersion {
    #[serde(rename = "janus-gate-policy-v1")]
    V1,
}

/// The whole policy. Unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GatePolicy {
    /// Always `janus-gate-policy-v1`.
    pub schema_version: PolicyVersion,
    /// gate0: data integrity of the live event feed, from shadow or paper runtime statistics.
    pub gate0_data_integrity: DataIntegrityPolicy,
    /// gate1: statistical robustness of the evaluation.
    pub gate1_statistics: StatisticsPolicy,
    /// gate2: risk capacity.
    pub gate2_risk: RiskPolicy,
    /// gate3: paper-trading quality over a completed stability window (paper → canary).
    pub gate3_paper_trading: PaperTradingPolicy,
    /// gate4: operational readiness (paper → canary).
    pub gate4_operations: OperationsPolicy,
    /// gate5: live readiness (paper → canary). Not an evidence family: it cannot be disabled.
    pub gate5_live: LivePolicy,
    /// gate6: profitability and Janus evidence.
    pub gate6_janus_evidence: JanusEvidencePolicy,
    /// gate7: uncertainty calibration.
    pub gate7_calibration: CalibrationPolicy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataIntegrityPolicy {
    /// Requires and checks runtime data-integrity statistics.
    pub enabled: bool,
    /// The feature (event record) schema version the feed must carry.
    pub feature_schema_version: String,
    pub max_null_rate: f64,
    /// p95 of event age at decision time, in milliseconds; missing is a failure.
    pub max_staleness_p95_ms: f64,
    /// Share of the universe's symbols seen in the feed.
    pub min_symbol_coverage: f64,
    /// Whether statistics with `source: simulation` (a replay) may stand in for a decision
    /// service's in shadow → paper. Default `true`.
    #[serde(default = "yes")]
    pub allow_simulation: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatisticsPolicy {
    /// Requires and checks the evaluation's statistics.
    pub enabled: bool,
    pub min_decisions: u64,
    pub min_trades: u64,
    /// Least total return of the candidate over the evaluated window.
    pub min_net_pnl: f64,
    pub max_negative_fold_ratio: f64,
    pub max_fold_pnl_cv: f64,
    /// The lower bound of the SR-delta interval must exceed this (0: significantly better).
    pub min_sr_delta_ci_lower: f64,
    /// The DA delta's one-sided p-value must not exceed this.
    pub max_da_delta_p_value: f64,
    /// Evidence older than this many days (from its `generated_at` to the gate's now) cannot
    /// promote. Default 30.
    #[serde(default = "thirty")]
    pub max_evidence_age_days: f64,
}

fn thirty() -> f64 {
    30.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RiskPolicy {
    pub enabled: bool,
    pub max_drawdown: f64,
    /// Daily turnover, as a multiple of NAV.
    pub max_turnover: f64,
    /// Costs in basis points of traded notional.
    pub max_cost_bps: f64,
    /// Largest gross exposure as a multiple of NAV.
    pub max_gross_exposure: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaperTradingPolicy {
    pub enabled: bool,
    pub max_error_ratio: f64,
    pub max_fallback_ratio: f64,
    pub max_latency_p95_ms: f64,
    pub max_timeout_ratio: f64,
    /// The paper stability window must have run at least this long, in hours, and be complete.
    pub min_window_hours: f64,
    /// Whether statistics with `source: simulation` may stand for the paper window. Default
    /// `false`: a replay's minutes say nothing about 72 hours in the market.
    #[serde(default)]
    pub allow_simulation: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OperationsPolicy {
    pub enabled: bool,
    /// Largest age of the kill-switch and rollback drills, in hours.
    pub max_drill_age_hours: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LivePolicy {
    /// Whether any candidate may go live (canary) at all. Shipped `false` (the plan's "no
    /// unbounded live rollout"): turning it on is a deliberate, reviewed change in Git.
    pub live_enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JanusEvidencePolicy {
    pub enabled: bool,
    pub min_events: u64,
    pub min_rewards: u64,
    pub min_reproducibility_hashes: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CalibrationPolicy {
    pub enabled: bool,
    pub target_coverage: f64,
    /// |observed − target| thresholds: pass ≤ [0], degrade ≤ [1], abstain ≤ [2], else fail.
    pub coverage_error: [f64; 3],
    /// Shift score thresholds, same reading.
    pub shift: [f64; 3],
    /// Interval width ratio: pass ≤ [0], degrade ≤ [1], else abstain.
    pub width: [f64; 2],
}

impl Default for GatePolicy {
    fn default() -> Self {
        Self {
            schema_version: PolicyVersion::V1,
            gate0_data_integrity: DataIntegrityPolicy {
                enabled: true,
                feature_schema_version: "janus-event-car-v1".into(),
                max_null_rate: 0.01,
                max_staleness_p95_ms: 120_000.0,
                min_symbol_coverage: 1.0,
                allow_simulation: true,
            },
            gate1_statistics: StatisticsPolicy {
                enabled: true,
                min_decisions: 1,
                min_trades: 1,
                min_net_pnl: 0.0,
                max_negative_fold_ratio: 0.5,
                max_fold_pnl_cv: 2.0,
                min_sr_delta_ci_lower: 0.0,
                max_da_delta_p_value: 0.05,
                max_evidence_age_days: 30.0,
            },
            gate2_risk: RiskPolicy {
                enabled: true,
                max_drawdown: 0.20,
                max_turnover: 8.0,
                max_cost_bps: 35.0,
                max_gross_exposure: 3.0,
            },
            gate3_paper_trading: PaperTradingPolicy {
                enabled: true,
                max_error_ratio: 0.10,
                max_fallback_ratio: 0.05,
                max_latency_p95_ms: 200.0,
                max_timeout_ratio: 0.005,
                min_window_hours: 72.0,
                allow_simulation: false,
            },
            gate4_operations: OperationsPolicy {
                enabled: true,
                max_drill_age_hours: 72.0,
            },
            gate5_live: LivePolicy {
                live_enabled: false,
            },
            gate6_janus_evidence: JanusEvidencePolicy {
                enabled: true,
                min_events: 1000,
                min_rewards: 1000,
                min_reproducibility_hashes: 2,
            },
            gate7_calibration: CalibrationPolicy {
                enabled: true,
                target_coverage: 0.90,
                coverage_error: [0.03, 0.05, 0.08],
                shift: [0.60, 0.80, 0.95],
                width: [1.25, 1.75],
            },
        }
    }
}

fn ratio(key: &str, v: f64) -> Result<(), (String, String)> {
    check(
        v.is_finite() && (0.0..=1.0).contains(&v),
        key,
        "must lie in [0, 1]",
    )
}

fn non_negative(key: &str, v: f64) -> Result<(), (String, String)> {
    check(
        v.is_finite() && v >= 0.0,
        key,
        "must be a finite number ≥ 0",
    )
}

fn ascending(key: &str, v: &[f64]) -> Result<(), (String, String)> {
    check(
        v.iter().all(|x| x.is_finite() && *x >= 0.0) && v.windows(2).all(|w| w[0] <= w[1]),
        key,
        "thresholds must be finite, ≥ 0 and ascending",
    )
}

impl Validate for GatePolicy {
    fn validate(&self) -> Result<(), (String, String)> {
        let g0 = &self.gate0_data_integrity;
        ratio("gate0_data_integrity.max_null_rate", g0.max_null_rate)?;
        non_negative(
            "gate0_data_integrity.max_staleness_p95_ms",
            g0.max_staleness_p95_ms,
        )?;
        ratio(
            "gate0_data_integrity.min_symbol_coverage",
            g0.min_symbol_coverage,
        )?;
        let g1 = &self.gate1_statistics;
        check(
            g1.min_net_pnl.is_finite(),
            "gate1_statistics.min_net_pnl",
            "must be finite",
        )?;
        ratio(
            "gate1_statistics.max_negative_fold_ratio",
            g1.max_negative_fold_ratio,
        )?;
        non_negative("gate1_statistics.max_fold_pnl_cv", g1.max_fold_pnl_cv)?;
        check(
            g1.min_sr_delta_ci_lower.is_finite(),
            "gate1_statistics.min_sr_delta_ci_lower",
            "must be finite",
        )?;
        ratio(
            "gate1_statistics.max_da_delta_p_value",
            g1.max_da_delta_p_value,
        )?;
        non_negative(
            "gate1_statistics.max_evidence_age_days",
            g1.max_evidence_age_days,
        )?;
        let g2 = &self.gate2_risk;
        ratio("gate2_risk.max_drawdown", g2.max_drawdown)?;
        non_negative("gate2_risk.max_turnover", g2.max_turnover)?;
        non_negative("gate2_risk.max_cost_bps", g2.max_cost_bps)?;
        non_negative("gate2_risk.max_gross_exposure", g2.max_gross_exposure)?;
        let g3 = &self.gate3_paper_trading;
        ratio("gate3_paper_trading.max_error_ratio", g3.max_error_ratio)?;
        ratio(
            "gate3_paper_trading.max_fallback_ratio",
            g3.max_fallback_ratio,
        )?;
        non_negative(
            "gate3_paper_trading.max_latency_p95_ms",
            g3.max_latency_p95_ms,
        )?;
        ratio(
            "gate3_paper_trading.max_timeout_ratio",
            g3.max_timeout_ratio,
        )?;
        non_negative("gate3_paper_trading.min_window_hours", g3.min_window_hours)?;
        non_negative(
            "gate4_operations.max_drill_age_hours",
            self.gate4_operations.max_drill_age_hours,
        )?;
        let g7 = &self.gate7_calibration;
        check(
            g7.target_coverage > 0.0 && g7.target_coverage < 1.0,
            "gate7_calibration.target_coverage",
            "must lie in (0, 1)",
        )?;
        ascending("gate7_calibration.coverage_error", &g7.coverage_error)?;
        ascending("gate7_calibration.shift", &g7.shift)?;
        ascending("gate7_calibration.width", &g7.width)
    }
}
