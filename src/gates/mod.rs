//! The promotion gates (DESIGN §5) as plain functions: inputs and a policy in, a decision value
//! out — every gate's status with reasons and measured values, what is missing, and the hash of
//! the policy it was made under. Every gate fails closed: absent or malformed input is a
//! failure with a named reason, never a pass.

pub mod policy;

use crate::contracts::evidence::EvidenceArtifact;
use crate::contracts::{Sha256Hex, canonical_hash};
use chrono::{DateTime, Utc};
use policy::GatePolicy;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The stage a promotion asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Paper,
    Canary,
}

impl Target {
    /// The name as the CRD spells it (`paper`, `canary`).
    pub fn name(self) -> &'static str {
        match self {
            Target::Paper => "paper",
            Target::Canary => "canary",
        }
    }
}

/// Statistics of a shadow or paper run of the decision service (written by `janus paper`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeStats {
    /// `shadow` or `paper`.
    pub stage: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    /// The stability window ran to its planned end.
    pub completed: bool,
    pub decisions: u64,
    pub feature_schema_version: Option<String>,
    pub null_rate: Option<f64>,
    pub staleness_p95_ms: Option<f64>,
    pub symbol_coverage: Option<f64>,
    pub error_ratio: Option<f64>,
    pub fallback_ratio: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub timeout_ratio: Option<f64>,
}

/// A number in runtime statistics that cannot be true, naming the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("runtime statistics field `{field}`: {problem}")]
pub struct InvalidRuntimeField {
    /// The field as the file spells it (`error_ratio`, `window_end`).
    pub field: &'static str,
    /// What is wrong with it, with the value.
    pub problem: String,
}

impl RuntimeStats {
    /// Every number checked before a gate reads it: ratios (`null_rate`, `error_ratio`,
    /// `fallback_ratio`, `timeout_ratio`) and `symbol_coverage` finite and in [0, 1]; latencies
    /// and staleness finite and non-negative (counts are unsigned by type); a stage of `shadow`
    /// or `paper`; a window that ends after it starts; at least one decision in it. Empty:
    /// every number can be true.
    pub fn invalid_fields(&self) -> Vec<InvalidRuntimeField> {
        let mut out = Vec::new();
        let mut bad =
            |field: &'static str, problem: String| out.push(InvalidRuntimeField { field, problem });
        if !matches!(self.stage.as_str(), "shadow" | "paper") {
            bad(
                "stage",
                format!("`{}` is neither shadow nor paper", self.stage),
            );
        }
        if self.window_end <= self.window_start {
            bad(
                "window_end",
                format!(
                    "{} is not after window_start {}",
                    self.window_end, self.window_start
                ),
            );
        }
        if self.decisions == 0 {
            bad("decisions", "0: the window holds no decisions".into());
        }
        for (field, value) in [
            ("null_rate", self.null_rate),
            ("error_ratio", self.error_ratio),
            ("fallback_ratio", self.fallback_ratio),
            ("timeout_ratio", self.timeout_ratio),
            ("symbol_coverage", self.symbol_coverage),
        ] {
            if let Some(v) = value.filter(|v| !(0.0..=1.0).contains(v)) {
                bad(field, format!("{v} is not a ratio in [0, 1]"));
            }
        }
        for (field, value) in [
            ("staleness_p95_ms", self.staleness_p95_ms),
            ("latency_p95_ms", self.latency_p95_ms),
        ] {
            if let Some(v) = value.filter(|v| !(v.is_finite() && *v >= 0.0)) {
                bad(field, format!("{v} is not a finite non-negative duration"));
            }
        }
        out
    }
}

/// Operational readiness on record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Operations {
    pub runbook_validated: bool,
    pub kill_switch_drill_at: Option<DateTime<Utc>>,
    pub rollback_drill_at: Option<DateTime<Utc>>,
}

/// A human approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    pub approved_by: String,
    pub token: String,
}

/// Everything the gates read. `evidence` is the verified artifact, or why it could not be read.
pub struct GateInputs<'a> {
    pub evidence: Result<&'a EvidenceArtifact, String>,
    /// The shadow or paper statistics that count, or why there are none (named in the
    /// blocker: no files, or each file refused and why).
    pub runtime: Result<&'a RuntimeStats, &'a str>,
    pub operations: Option<&'a Operations>,
    pub approval: Option<&'a Approval>,
    /// Reference to a recalibration plan, required when gate7 degrades or abstains.
    pub recalibration_ref: Option<&'a str>,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GateStatus {
    Pass,
    Fail,
    /// The policy switched this evidence family off: neither required nor checked.
    Skipped,
    /// gate7 only: allowed with a recalibration reference.
    Degrade,
    /// gate7 only: allowed with a recalibration reference.
    Abstain,
    /// Not required for this target.
    NotRequired,
}

/// Why a gate did not pass, with the numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Reason {
    pub code: String,
    pub message: String,
    pub measured: Option<f64>,
    pub threshold: Option<f64>,
}

/// Which side of its threshold a measured value must lie on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// At most the threshold.
    AtMost,
    /// At least the threshold.
    AtLeast,
    /// Strictly above the threshold.
    Above,
}

/// One number a gate compared with its threshold, whether it passed or not (a pass is a
/// measured value too: the record says by how much).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Measurement {
    /// The reason code a failure of this comparison carries (`null_rate`, `window_hours`).
    pub code: String,
    pub measured: f64,
    pub threshold: f64,
    pub bound: Bound,
    pub passed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GateResult {
    pub id: String,
    pub name: String,
    pub status: GateStatus,
    pub reasons: Vec<Reason>,
    /// Every number the gate compared with a threshold, passed or not.
    #[serde(default)]
    pub measured: Vec<Measurement>,
}

impl GateResult {
    pub fn blocks(&self) -> bool {
        self.status == GateStatus::Fail
    }
}

/// A gate decision: deterministic for the same inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Decision {
    pub target: Target,
    pub allowed: bool,
    pub gates: Vec<GateResult>,
    /// Inputs the policy requires that were not supplied.
    pub missing: Vec<String>,
    pub policy_hash: Sha256Hex,
}

impl Decision {
    pub fn failed(&self) -> impl Iterator<Item = &GateResult> {
        self.gates.iter().filter(|g| g.blocks())
    }
}

/// Collects a gate's failures and every number it compared.
struct Check {
    reasons: Vec<Reason>,
    measured: Vec<Measurement>,
}

impl Check {
    fn new() -> Self {
        Self {
            reasons: Vec::new(),
            measured: Vec::new(),
        }
    }
    /// Records a comparison (a failure's reason is added by the caller).
    fn measure(&mut self, code: &str, measured: f64, threshold: f64, bound: Bound, passed: bool) {
        self.measured.push(Measurement {
            code: code.into(),
            measured,
            threshold,
            bound,
            passed,
        });
    }
    fn fail(&mut self, code: &str, message: impl Into<String>) {
        self.reasons.push(Reason {
            code: code.into(),
            message: message.into(),
            measured: None,
            threshold: None,
        });
    }
    /// `measured` must be at most `max`; a missing value fails.
    fn at_most(&mut self, code: &str, what: &str, measured: Option<f64>, max: f64) {
        self.at_most_or(code, what, measured, max, None);
    }
    /// As [`Check::at_most`], for a value that may be null with a reason (the evidence's
    /// `null_reasons`): a null fails with that reason in the message, never passes.
    fn at_most_or(
        &mut self,
        code: &str,
        what: &str,
        measured: Option<f64>,
        max: f64,
        null_reason: Option<&String>,
    ) {
        if let Some(v) = measured {
            self.measure(code, v, max, Bound::AtMost, v.is_finite() && v <= max);
        }
        match measured {
            Some(v) if v.is_finite() && v <= max => {}
            Some(v) => self.reasons.push(Reason {
                code: code.into(),
                message: format!("{what} {v} exceeds {max}"),
                measured: Some(v),
                threshold: Some(max),
            }),
            None => self.missing(code, what, null_reason),
        }
    }
    /// A value the gate needs is absent: `missing_<code>`, with the evidence's reason if any.
    fn missing(&mut self, code: &str, what: &str, null_reason: Option<&String>) {
        let message = match null_reason {
            Some(why) => format!("{what} has no value: {why}"),
            None => format!("{what} is missing"),
        };
        self.fail(&format!("missing_{code}"), message);
    }
    /// `measured` must be at least `min`; a missing value fails.
    fn at_least(&mut self, code: &str, what: &str, measured: Option<f64>, min: f64) {
        if let Some(v) = measured {
            self.measure(code, v, min, Bound::AtLeast, v.is_finite() && v >= min);
        }
        match measured {
            Some(v) if v.is_finite() && v >= min => {}
            Some(v) => self.reasons.push(Reason {
                code: code.into(),
                message: format!("{what} {v} is below {min}"),
                measured: Some(v),
                threshold: Some(min),
            }),
            None => self.fail(&format!("missing_{code}"), format!("{what} is missing")),
        }
    }
    fn result(self, id: &str, name: &str) -> GateResult {
        GateResult {
            id: id.into(),
            name: name.into(),
            status: if self.reasons.is_empty() {
                GateStatus::Pass
            } else {
                GateStatus::Fail
            },
            reasons: self.reasons,
            measured: self.measured,
        }
    }
}

/// The status of a gate that need not be checked: not required for the target, or switched off
/// by the policy. `None`: check it.
fn precheck(target: Target, gate: usize, enabled: bool) -> Option<GateStatus> {
    if !required(target, gate) {
        Some(GateStatus::NotRequired)
    } else if !enabled {
        Some(GateStatus::Skipped)
    } else {
        None
    }
}

fn skipped(id: &str, name: &str, status: GateStatus) -> GateResult {
    GateResult {
        id: id.into(),
        name: name.into(),
        status,
        reasons: Vec::new(),
        measured: Vec::new(),
    }
}

/// Gates each target needs (shadow → paper, paper → canary).
pub fn required(target: Target, gate: usize) -> bool {
    match target {
        Target::Paper => matches!(gate, 0 | 1 | 2 | 6 | 7),
        Target::Canary => gate <= 7,
    }
}

/// Evaluates every gate for `target`.
pub fn evaluate(target: Target, inputs: &GateInputs<'_>, policy: &GatePolicy) -> Decision {
    let mut missing = Vec::new();
    let mut need = |what: &str| {
        if !missing.iter().any(|m: &String| m == what) {
            missing.push(what.to_string());
        }
    };
    let evidence = inputs.evidence.as_ref().ok().copied();
    let evidence_error = inputs.evidence.as_ref().err();
    let metric = |name: &str| evidence.and_then(|e| e.metrics.get(name).copied());
    // Ruin (NAV ≤ 0, losses beyond capital) is never a pass, whichever figure a gate reads:
    // the `ruin` metric, a total return at or below −100 %, a drawdown of the whole peak, or a
    // null metric whose reason is ruin.
    let ruin = evidence.and_then(|e| {
        let reason = e
            .null_reasons
            .iter()
            .find(|(k, v)| !k.starts_with("baseline.") && v.starts_with("ruin"))
            .map(|(k, v)| format!("{k}: {v}"));
        let flagged = metric("ruin").is_some_and(|v| v != 0.0)
            || metric("total_return").is_some_and(|v| v <= -1.0)
            || metric("mdd").is_some_and(|v| v >= 1.0);
        match (flagged, reason) {
            (_, Some(r)) => Some(r),
            (true, None) => Some(format!(
                "total return {:?}, max drawdown {:?}",
                metric("total_return"),
                metric("mdd")
            )),
            (false, None) => None,
        }
    });
    let fail_on_ruin = |c: &mut Check| {
        if let Some(why) = &ruin {
            c.fail(
                "ruin",
                format!("the candidate's NAV fell to 0 or below (ruin): {why}"),
            );
        }
    };
    let no_evidence = |c: &mut Check| {
        c.fail(
            "missing_evidence",
            evidence_error.map_or("no evidence artifact".into(), |e| {
                format!("evidence unusable: {e}")
            }),
        );
    };

    let mut gates = Vec::new();
    // gate0: data integrity (runtime statistics of shadow or paper).
    let (id, name) = ("gate0", "data integrity");
    let p = &policy.gate0_data_integrity;
    gates.push(match precheck(target, 0, p.enabled) {
        Some(status) => skipped(id, name, status),
        None => {
            let mut c = Check::new();
            match inputs.runtime {
                Err(why) => {
                    need("runtime_stats");
                    c.fail(
                        "missing_runtime_stats",
                        format!("no shadow or paper runtime statistics: {why}"),
                    );
                }
                Ok(r) => {
                    refuse_impossible(&mut c, r, inputs.now);
                    if !r.completed {
                        c.fail(
                            "window_incomplete",
                            format!("the {} window has not completed", r.stage),
                        );
                    }
                    match &r.feature_schema_version {
                        Some(v) if *v == p.feature_schema_version => {}
                        Some(v) => c.fail(
                            "feature_schema_version",
                            format!(
                                "feature schema {v}, policy requires {}",
                                p.feature_schema_version
                            ),
                        ),
                        None => c.fail(
                            "missing_feature_schema_version",
                            "feature schema version is missing",
                        ),
                    }
                    c.at_most("null_rate", "null rate", r.null_rate, p.max_null_rate);
                    c.at_most(
                        "staleness_p95_ms",
                        "staleness p95 (ms)",
                        r.staleness_p95_ms,
                        p.max_staleness_p95_ms,
                    );
                    c.at_least(
                        "symbol_coverage",
                        "symbol coverage",
                        r.symbol_coverage,
                        p.min_symbol_coverage,
                    );
                }
            }
            c.result(id, name)
        }
    });

    // gate1: statistical robustness.
    let (id, name) = ("gate1", "statistical robustness");
    let p = &policy.gate1_statistics;
    gates.push(match precheck(target, 1, p.enabled) {
        Some(status) => skipped(id, name, status),
        None => {
            let mut c = Check::new();
            match evidence {
                None => {
                    need("evidence");
                    no_evidence(&mut c);
                }
                Some(e) => {
                    c.at_least(
                        "decisions",
                        "decisions",
                        Some(e.counts.predictions as f64),
                        p.min_decisions as f64,
                    );
                    c.at_least(
                        "trades",
                        "trades",
                        Some(e.counts.trades as f64),
                        p.min_trades as f64,
                    );
                    c.at_least(
                        "net_pnl",
                        "net PnL (total return)",
                        metric("total_return"),
                        p.min_net_pnl,
                    );
                    // Null statistics (no fold, one fold, ruin) fail with their reason.
                    let wf = e.walk_forward.as_ref();
                    c.at_most_or(
                        "negative_fold_ratio",
                        "negative-fold ratio",
                        wf.and_then(|w| w.negative_fold_ratio),
                        p.max_negative_fold_ratio,
                        e.null_reasons.get("walk_forward.negative_fold_ratio"),
                    );
                    c.at_most_or(
                        "fold_pnl_cv",
                        "fold PnL coefficient of variation",
                        wf.and_then(|w| w.fold_pnl_cv),
                        p.max_fold_pnl_cv,
                        e.null_reasons.get("walk_forward.fold_pnl_cv"),
                    );
                    if wf.is_some_and(|w| w.folds == 0) {
                        c.fail("no_folds", "walk-forward produced no folds");
                    }
                    let sr = e.deltas.get("sr");
                    if let Some(d) = sr {
                        c.measure(
                            "sr_delta_ci_lower",
                            d.ci_lower,
                            p.min_sr_delta_ci_lower,
                            Bound::Above,
                            d.ci_lower > p.min_sr_delta_ci_lower,
                        );
                    }
                    match sr {
                        Some(d) if d.ci_lower > p.min_sr_delta_ci_lower => {}
                        Some(d) => c.reasons.push(Reason {
                            code: "sr_delta_ci_lower".into(),
                            message: format!(
                                "lower bound {} of the SR-delta interval is not above {}",
                                d.ci_lower, p.min_sr_delta_ci_lower
                            ),
                            measured: Some(d.ci_lower),
                            threshold: Some(p.min_sr_delta_ci_lower),
                        }),
                        None => c.fail(
                            "missing_sr_delta",
                            match e.null_reasons.get("delta.sr") {
                                Some(why) => {
                                    format!("SR delta against the baseline is undefined: {why}")
                                }
                                None => "SR delta against the baseline is missing".into(),
                            },
                        ),
                    }
                    c.at_most(
                        "da_delta_p_value",
                        "DA-delta p-value",
                        e.deltas.get("da").map(|d| d.p_value),
                        p.max_da_delta_p_value,
                    );
                    if e.significance.is_none() {
                        c.fail("missing_significance", "bootstrap metadata is missing");
                    }
                    fail_on_ruin(&mut c);
                }
            }
            c.result(id, name)
        }
    });

    // gate2: risk capacity.
    let (id, name) = ("gate2", "risk capacity");
    let p = &policy.gate2_risk;
    gates.push(match precheck(target, 2, p.enabled) {
        Some(status) => skipped(id, name, status),
        None => {
            let mut c = Check::new();
            if evidence.is_none() {
                need("evidence");
                no_evidence(&mut c);
            } else {
                fail_on_ruin(&mut c);
                // A null metric fails with the reason the evidence gives (e.g. turnover on ruin).
                let why = |name: &str| evidence.and_then(|e| e.null_reasons.get(name));
                c.at_most_or(
                    "max_drawdown",
                    "max drawdown",
                    metric("mdd"),
                    p.max_drawdown,
                    why("mdd"),
                );
                c.at_most_or(
                    "turnover",
                    "daily turnover",
                    metric("turnover"),
                    p.max_turnover,
                    why("turnover"),
                );
                c.at_most_or(
                    "cost_bps",
                    "cost (bps)",
                    metric("cost_bps"),
                    p.max_cost_bps,
                    why("cost_bps"),
                );
                c.at_most_or(
                    "gross_exposure",
                    "max gross exposure",
                    metric("gross_exposure_max"),
                    p.max_gross_exposure,
                    why("gross_exposure_max"),
                );
            }
            c.result(id, name)
        }
    });

    // gate3: paper-trading quality.
    let (id, name) = ("gate3", "paper-trading quality");
    let p = &policy.gate3_paper_trading;
    gates.push(match precheck(target, 3, p.enabled) {
        Some(status) => skipped(id, name, status),
        None => {
            let mut c = Check::new();
            let paper = inputs.runtime.and_then(|r| match r.stage.as_str() {
                "paper" => Ok(r),
                _ => Err("the statistics are of another stage"),
            });
            match paper {
                Err(why) => {
                    need("paper_runtime_stats");
                    c.fail(
                        "missing_paper_window",
                        format!("no paper-trading stability window on record: {why}"),
                    );
                }
                Ok(r) => {
                    refuse_impossible(&mut c, r, inputs.now);
                    if !r.completed {
                        c.fail(
                            "window_incomplete",
                            "the paper stability window has not completed",
                        );
                    }
                    let hours = (r.window_end - r.window_start).num_seconds() as f64 / 3600.0;
                    c.at_least(
                        "window_hours",
                        "stability window (hours)",
                        Some(hours),
                        p.min_window_hours,
                    );
                    c.at_most(
                        "error_ratio",
                        "inference error ratio",
                        r.error_ratio,
                        p.max_error_ratio,
                    );
                    c.at_most(
                        "fallback_ratio",
                        "fallback ratio",
                        r.fallback_ratio,
                        p.max_fallback_ratio,
                    );
                    c.at_most(
                        "latency_p95_ms",
                        "latency p95 (ms)",
                        r.latency_p95_ms,
                        p.max_latency_p95_ms,
                    );
                    c.at_most(
                        "timeout_ratio",
                        "timeout ratio",
                        r.timeout_ratio,
                        p.max_timeout_ratio,
                    );
                }
            }
            c.result(id, name)
        }
    });

    // gate4: operational readiness.
    let (id, name) = ("gate4", "operational readiness");
    let p = &policy.gate4_operations;
    gates.push(match precheck(target, 4, p.enabled) {
        Some(status) => skipped(id, name, status),
        None => {
            let mut c = Check::new();
            match inputs.operations {
                None => {
                    need("operations");
                    c.fail("missing_operations", "no runbook or drill record");
                }
                Some(o) => {
                    if !o.runbook_validated {
                        c.fail(
                            "runbook_not_validated",
                            "the runbook has not been validated",
                        );
                    }
                    for (code, what, at) in [
                        (
                            "kill_switch_drill",
                            "kill-switch drill",
                            o.kill_switch_drill_at,
                        ),
                        ("rollback_drill", "rollback drill", o.rollback_drill_at),
                    ] {
                        match at {
                            None => {
                                c.fail(&format!("missing_{code}"), format!("no {what} on record"))
                            }
                            Some(t) if t > inputs.now => c.fail(
                                &format!("{code}_in_future"),
                                format!("{what} time {t} is in the future"),
                            ),
                            Some(t) => {
                                let age = (inputs.now - t).num_seconds() as f64 / 3600.0;
                                c.at_most(
                                    &format!("{code}_age_hours"),
                                    &format!("{what} age (hours)"),
                                    Some(age),
                                    p.max_drill_age_hours,
                                );
                            }
                        }
                    }
                }
            }
            c.result(id, name)
        }
    });

    // gate5: live readiness (always checked for canary).
    let (id, name) = ("gate5", "live readiness");
    gates.push(if !required(target, 5) {
        skipped(id, name, GateStatus::NotRequired)
    } else {
        let mut c = Check::new();
        if !policy.gate5_live.live_enabled {
            c.fail("live_disabled", "live trading is disabled by policy");
        }
        match inputs.approval {
            Some(a) if !a.approved_by.trim().is_empty() && !a.token.trim().is_empty() => {}
            Some(_) => c.fail(
                "incomplete_approval",
                "the approval lacks an approver or a token",
            ),
            None => {
                need("approval");
                c.fail("missing_approval", "no human approval on record");
            }
        }
        c.result(id, name)
    });

    // gate6: profitability and Janus evidence.
    let (id, name) = ("gate6", "Janus evidence");
    let p = &policy.gate6_janus_evidence;
    gates.push(match precheck(target, 6, p.enabled) {
        Some(status) => skipped(id, name, status),
        None => {
            let mut c = Check::new();
            match evidence {
                None => {
                    need("evidence");
                    no_evidence(&mut c);
                }
                Some(e) => {
                    fail_on_ruin(&mut c);
                    if !e.summary.complete {
                        c.fail(
                            "evidence_incomplete",
                            format!(
                                "evidence incomplete: missing {}",
                                e.summary.missing.join(", ")
                            ),
                        );
                    }
                    c.at_least(
                        "events",
                        "labelled events",
                        Some(e.counts.labelled_events as f64),
                        p.min_events as f64,
                    );
                    c.at_least(
                        "rewards",
                        "scored rewards",
                        Some(e.counts.rewards as f64),
                        p.min_rewards as f64,
                    );
                    c.at_least(
                        "reproducibility_hashes",
                        "reproducibility hashes",
                        Some(e.reproducibility_hashes.len() as f64),
                        p.min_reproducibility_hashes as f64,
                    );
                    let parents: Vec<&Sha256Hex> =
                        e.lineage.parents.iter().map(|r| &r.manifest_hash).collect();
                    for h in &e.reproducibility_hashes {
                        if !parents.contains(&h) {
                            c.fail(
                                "hash_not_in_lineage",
                                format!(
                                    "reproducibility hash {h} is not among the lineage's parents"
                                ),
                            );
                        }
                    }
                    if e.artifacts != e.lineage.parents {
                        c.fail(
                            "artifacts_differ_from_lineage",
                            "the evidence's artifact references differ from its lineage parents",
                        );
                    }
                }
            }
            c.result(id, name)
        }
    });

    // gate7: uncertainty calibration.
    let (id, name) = ("gate7", "uncertainty calibration");
    let p = &policy.gate7_calibration;
    gates.push(match precheck(target, 7, p.enabled) {
        Some(status) => skipped(id, name, status),
        None => calibration_gate(
            evidence,
            evidence_error,
            p,
            inputs.recalibration_ref,
            &mut need,
        ),
    });

    let allowed = inputs.evidence.is_ok() && !gates.iter().any(GateResult::blocks);
    Decision {
        target,
        allowed,
        gates,
        missing,
        policy_hash: canonical_hash(policy).expect("policies are canonicalizable"),
    }
}

/// Fails a gate on runtime statistics that cannot be true (one reason per field), and on a
/// window that ends after the decision is made (it cannot have completed yet).
fn refuse_impossible(c: &mut Check, r: &RuntimeStats, now: DateTime<Utc>) {
    for bad in r.invalid_fields() {
        c.fail("invalid_runtime_stats", bad.to_string());
    }
    if r.window_end > now {
        c.fail(
            "window_in_future",
            format!(
                "runtime statistics field `window_end`: {} is after now ({now})",
                r.window_end
            ),
        );
    }
}

fn calibration_gate(
    evidence: Option<&EvidenceArtifact>,
    evidence_error: Option<&String>,
    p: &policy::CalibrationPolicy,
    recalibration_ref: Option<&str>,
    need: &mut impl FnMut(&str),
) -> GateResult {
    let (id, name) = ("gate7", "uncertainty calibration");
    let mut c = Check::new();
    let Some(e) = evidence else {
        need("evidence");
        c.fail(
            "missing_evidence",
            evidence_error.map_or("no evidence artifact".into(), |e| {
                format!("evidence unusable: {e}")
            }),
        );
        return c.result(id, name);
    };
    let Some(cal) = &e.calibration else {
        c.fail(
            "missing_calibration",
            "no calibration measurement in the evidence",
        );
        return c.result(id, name);
    };
    // 0 pass, 1 degrade, 2 abstain, 3 fail.
    let level = |v: f64, t: &[f64]| -> usize {
        if !v.is_finite() {
            return 3;
        }
        t.iter().position(|x| v <= *x).unwrap_or(t.len())
    };
    let error = (cal.observed_coverage - p.target_coverage).abs();
    let levels = [
        (
            "coverage_error",
            error,
            level(error, &p.coverage_error),
            p.coverage_error[0],
        ),
        (
            "shift",
            cal.shift_score,
            level(cal.shift_score, &p.shift),
            p.shift[0],
        ),
        // Width has two thresholds: beyond the second it abstains.
        (
            "interval_width",
            cal.interval_width_ratio,
            level(cal.interval_width_ratio, &p.width).min(2),
            p.width[0],
        ),
    ];
    let worst = levels.iter().map(|l| l.2).max().unwrap_or(3);
    for (code, v, lv, pass_at) in levels {
        c.measure(code, v, pass_at, Bound::AtMost, lv == 0);
        if lv > 0 {
            c.reasons.push(Reason {
                code: code.into(),
                message: format!(
                    "{code} {v} is beyond the pass threshold {pass_at} ({})",
                    ["pass", "degrade", "abstain", "fail"][lv]
                ),
                measured: Some(v),
                threshold: Some(pass_at),
            });
        }
    }
    let status = match worst {
        0 => GateStatus::Pass,
        1 | 2 if recalibration_ref.is_some_and(|r| !r.trim().is_empty()) => {
            if worst == 1 {
                GateStatus::Degrade
            } else {
                GateStatus::Abstain
            }
        }
        1 | 2 => {
            c.fail(
                "missing_recalibration_ref",
                "calibration is not a pass: a recalibration reference is required",
            );
            GateStatus::Fail
        }
        _ => GateStatus::Fail,
    };
    GateResult {
        id: id.into(),
        name: name.into(),
        status,
        reasons: c.reasons,
        measured: c.measured,
    }
}
