//! What a PromotionRequest's reconcile decides, as a plain function: from the request (spec,
//! annotations, last status), the candidate's evidence, the policy and the clock, it computes
//! the new status, the runtime ConfigMap's data and the events to emit. The Kubernetes glue
//! only reads these inputs and applies the outputs, so every transition is tested without a
//! cluster.

use crate::contracts::Sha256Hex;
use crate::contracts::evidence::EvidenceArtifact;
use crate::crd::{
    ApprovalRecord, BoundSpec, ConditionStatus, ConditionType, HaltReason,
    MAX_PROMOTION_REQUEST_NAME, ModelRef, PromotionRequestSpec, PromotionRequestStatus,
    ROLLBACK_REASON, Reason, StatusEvent,
};
use crate::gates::policy::GatePolicy;
use crate::gates::{Approval, GateInputs, Operations, RuntimeStats, Target, evaluate};
use crate::identity::Verified;
use crate::promotion::{Phase, PromotionState, Stage, halt, rollback, step};
use crate::runtime::config::RuntimeConfig;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// Plain annotations of earlier versions for operational readiness (gate4); they count for
/// nothing now (`crate::identity::UNSIGNED_ANNOTATIONS`).
pub const KILL_SWITCH_DRILL_AT: &str = "janus.torghut.io/kill-switch-drill-at";
pub const RUNBOOK_VALIDATED: &str = "janus.torghut.io/runbook-validated";

/// The actor of transitions the operator detected itself (a request's backing lost, its status
/// not sealed): nobody asked for them.
pub const OPERATOR_ACTOR: &str = "janus-operator";

/// Everything one reconcile reads.
pub struct PromotionInputs<'a> {
    pub name: &'a str,
    pub generation: Option<i64>,
    pub spec: &'a PromotionRequestSpec,
    pub annotations: &'a BTreeMap<String, String>,
    pub status: Option<&'a PromotionRequestStatus>,
    /// The records the admission webhook stamped on the request, as `crate::identity::verify_all`
    /// verified them with the signing key (signature, request UID, candidate, target, model,
    /// expiry): the only source of approvals, drills and runbook validation.
    pub stamped: &'a Verified,
    /// The stage the candidate holds now (recorded on the JanusCandidate by an earlier
    /// promotion); a new request starts from it.
    pub candidate_stage: Option<Stage>,
    /// The candidate's model, when the candidate exists.
    pub model: Option<&'a ModelRef>,
    /// The candidate is being deleted (it has a deletion timestamp): it backs nothing any more.
    pub candidate_deleting: bool,
    /// The labelled events of the candidate's run (the fallback's history), for the runtime.
    pub history_uri: Option<&'a str>,
    /// The candidate's verified evidence, or why it could not be had.
    pub evidence: Result<&'a EvidenceArtifact, String>,
    /// The runtime statistics that count for this target, or why there are none.
    pub runtime: Result<&'a RuntimeStats, &'a str>,
    /// Statistics files refused for what they claim (`runtime::stats::refusal_notes`): said
    /// in the blockers, without blocking by themselves.
    pub runtime_refused: &'a [String],
    /// The gate policy, or why it could not be read.
    pub policy: Result<&'a GatePolicy, String>,
    /// Who a promotion or block is credited to: the verified approver, else the verified
    /// creator, else `unverified:<field manager>`.
    pub actor: &'a str,
    /// Who asked for a rollback: the webhook's verified `rollback-by` record, else
    /// `unverified:<field manager of the rollback-reason annotation>`.
    pub rollback_actor: &'a str,
    /// `spec.killSwitch` was seen `true` by the operator at some point (a watch event), even if
    /// the object now says `false`: the switch latches.
    pub kill_switch_seen: bool,
    /// Who set the kill switch (the webhook's verified `kill-switch-by` record, else
    /// `unverified:<field manager of spec.killSwitch>`), for the history.
    pub kill_switch_actor: &'a str,
    /// Another request already holds this candidate at the target stage (its name): at most one
    /// promoted request per candidate and stage.
    pub stage_held_by: Option<&'a str>,
    /// The operator's lease epoch, written into the runtime ConfigMap.
    pub lease_epoch: Option<u64>,
    /// The status carries the operator's valid seal (`crate::identity::status_seal`), or no
    /// key is configured to check it. A promoted status without one was not written by the
    /// operator (a hand edit, a restored backup) and halts.
    pub status_sealed: bool,
    pub now: DateTime<Utc>,
}

/// What one reconcile decides.
#[derive(Debug, Clone, PartialEq)]
pub struct PromotionPlan {
    pub status: PromotionRequestStatus,
    /// Data of the runtime ConfigMap: a promoted or halted stage to serve, or the shadow stage
    /// (trading off) while the request waits there.
    pub runtime_config: Option<BTreeMap<String, String>>,
    /// Kubernetes Events for the transitions of this reconcile (Warning when blocked or halted).
    pub events: Vec<StatusEvent>,
}

fn bool_status(b: bool) -> ConditionStatus {
    if b {
        ConditionStatus::True
    } else {
        ConditionStatus::False
    }
}

/// Why a served request must stop at once, other than its kill switch: its identity changed or
/// what backs it is gone. `None` while everything still holds.
/// A halt for `why`, its history reason `<why>: <text>`.
fn halted(why: HaltReason, text: String) -> Option<(HaltReason, String)> {
    Some((why, format!("{}: {text}", why.as_str())))
}

fn lost_backing(
    input: &PromotionInputs<'_>,
    previous: &PromotionRequestStatus,
) -> Option<(HaltReason, String)> {
    if let Some(bound) = &previous.bound {
        if bound.candidate != input.spec.candidate || bound.target != input.spec.target {
            return halted(
                HaltReason::SpecChanged,
                format!(
                    "spec changed from candidate `{}` target {} to candidate `{}` target {}; \
                 a request's candidate and target are fixed at creation",
                    bound.candidate,
                    bound.target.name(),
                    input.spec.candidate,
                    input.spec.target.name()
                ),
            );
        }
    }
    // More than one spec change since the last generation the operator decided on (a request
    // is created at generation 1): the operator was down, or a handover; what happened in
    // between is unknown, and a kill switch set and cleared meanwhile cannot be ruled out, so
    // neither a served request nor one still waiting may go on. Each spec write bumps the
    // generation once.
    if !matches!(previous.phase, Some(Phase::Halted | Phase::RolledBack)) {
        let seen = previous.observed_generation.unwrap_or(1);
        if let Some(now) = input.generation.filter(|g| *g > seen + 1) {
            return halted(
                HaltReason::SpecChanged,
                format!(
                    "the spec changed {} times since generation {seen} without the operator \
                 seeing each change (a kill switch set and cleared meanwhile cannot be ruled out)",
                    now - seen
                ),
            );
        }
    }
    // The rest guards what is being served.
    if previous.phase != Some(Phase::Promoted) {
        return None;
    }
    if !input.status_sealed {
        return halted(
            HaltReason::StatusNotSealed,
            format!(
                "the status says promoted at {:?}, but its seal verifies with neither the \
             current signing key nor a previous one: it was not written by the operator (a hand \
             edit, a restored backup), or the signing key was replaced without keeping the old \
             one as a previous key (docs/gitops.md: rotating the signing key)",
                previous.stage.unwrap_or(Stage::Shadow)
            ),
        );
    }
    let lost = |why: String| halted(HaltReason::BackingLost, why);
    match input.model {
        None => {
            return lost(format!(
                "candidate `{}` no longer exists",
                input.spec.candidate
            ));
        }
        Some(_) if input.candidate_deleting => {
            return lost(format!(
                "candidate `{}` is being deleted",
                input.spec.candidate
            ));
        }
        Some(m) => {
            // The canary limits it was promoted (and approved) with are fixed too: wider limits
            // after the approval were never approved.
            if previous.served_model.is_some() && previous.served_limits != input.spec.canary {
                return halted(
                    HaltReason::SpecChanged,
                    "spec.canary changed after the request was promoted with it; limits nobody \
                     approved are never served (create a new request)"
                        .to_string(),
                );
            }
            if let Some(served) = &previous.served_model {
                if served.sha256 != m.sha256 || served.uri != m.uri {
                    return halted(
                        HaltReason::SpecChanged,
                        format!(
                            "candidate `{}` now names model {} ({}), not the model {} ({}) that was promoted",
                            input.spec.candidate, m.sha256, m.uri, served.sha256, served.uri
                        ),
                    );
                }
            }
        }
    }
    if let Err(e) = &input.evidence {
        return lost(format!("evidence: {e}"));
    }
    if let Err(e) = &input.policy {
        return lost(format!("gate policy: {e}"));
    }
    None
}

/// One reconcile of a PromotionRequest.
pub fn reconcile(input: &PromotionInputs<'_>) -> PromotionPlan {
    let previous = input.status.cloned().unwrap_or_default();
    let mut state = PromotionState {
        stage: previous
            .stage
            .or(input.candidate_stage)
            .unwrap_or(Stage::Shadow),
        phase: previous.phase.unwrap_or(Phase::Pending),
        reasons: previous.blockers.clone(),
        history: previous.history.clone(),
    };
    let mut blockers: Vec<String> = Vec::new();
    let kill_switch = input.spec.kill_switch || input.kill_switch_seen;
    // Identity or backing lost: halt before anything else is looked at (after the kill switch,
    // which halts too and names its own actor).
    let lost = if kill_switch {
        None
    } else {
        lost_backing(input, &previous)
    };
    let default_policy = GatePolicy::default();
    let policy = match &input.policy {
        Ok(p) => *p,
        Err(e) => {
            blockers.push(format!("gate policy unavailable: {e}"));
            &default_policy
        }
    };
    if input.name.len() > MAX_PROMOTION_REQUEST_NAME {
        blockers.push(format!(
            "the request's name has {} characters; at most {MAX_PROMOTION_REQUEST_NAME} are served \
             (its runtime ConfigMap `<name>-runtime` must fit 63)",
            input.name.len()
        ));
    }

    // Approval, drills and runbook validation only from records the webhook stamped and the
    // key verified; hand-typed annotations count for nothing (named in `stamped.ignored`).
    let stamped = input.stamped;
    let (believed_approval, approvals_void_through) = unwithdrawn_approval(stamped, &previous);
    if let (Some(r), None) = (&stamped.approval, believed_approval) {
        blockers.push(format!(
            "{} ignored: the approval by {} was stamped at {}, and an approval of this request \
             stamped then or earlier was seen withdrawn (status.approvalsVoidThrough {}): a \
             withdrawn approval never counts again; ask an approver again",
            crate::crd::STAMP_APPROVAL,
            r.by,
            r.recorded_at.to_rfc3339(),
            approvals_void_through.as_deref().unwrap_or_default()
        ));
    }
    let approval = believed_approval.map(|r| Approval {
        approved_by: r.by.clone(),
        token: r.sig.clone(),
    });
    let rollback_drill_at = stamped.rollback_drill.as_ref().map(|r| r.at);
    let operations = Operations {
        runbook_validated: stamped.runbook_validation.is_some(),
        kill_switch_drill_at: stamped.kill_switch_drill.as_ref().map(|r| r.at),
        rollback_drill_at,
    };
    if input.spec.target == Target::Canary && input.spec.canary.is_none() {
        blockers.push("a canary needs spec.canary limits".into());
    }
    if input.model.is_none() {
        blockers.push(format!("candidate `{}` not found", input.spec.candidate));
    } else if input.candidate_deleting {
        blockers.push(format!(
            "candidate `{}` is being deleted",
            input.spec.candidate
        ));
    }

    let decision = evaluate(
        input.spec.target,
        &GateInputs {
            evidence: input.evidence.clone(),
            runtime: input.runtime,
            operations: Some(&operations),
            approval: approval.as_ref(),
            recalibration_ref: None,
            now: input.now,
        },
        policy,
    );
    let usable = blockers.is_empty().then_some(&decision);
    let before = (state.stage, state.phase);
    // A rollback asked for on a promoted request (the kill switch still comes first).
    let rollback_reason = input
        .annotations
        .get(ROLLBACK_REASON)
        .map(|r| r.trim())
        .filter(|r| !r.is_empty());
    if let (Some(reason), false, None, Phase::Promoted) =
        (rollback_reason, kill_switch, &lost, state.phase)
    {
        match rollback(&state, reason, input.rollback_actor, input.now) {
            Ok(next) => state = next,
            Err(e) => blockers.push(format!("rollback refused: {e}")),
        }
    }
    state = match &lost {
        // Detected by the operator itself (backing lost, status not sealed): its own act.
        Some((_, reason)) => halt(&state, reason, OPERATOR_ACTOR, input.now),
        None => {
            let claimed = match (input.stage_held_by, usable) {
                // Another request serves this candidate at the stage: not a second one.
                (Some(holder), Some(_)) if state.phase != Phase::Promoted => {
                    blockers.push(format!(
                        "candidate `{}` is already promoted to {} by request `{holder}`; \
                         one promoted request per candidate and stage",
                        input.spec.candidate,
                        input.spec.target.name()
                    ));
                    None
                }
                _ => usable,
            };
            let actor = if kill_switch {
                input.kill_switch_actor
            } else {
                input.actor
            };
            step(
                &state,
                input.spec.target,
                kill_switch,
                claimed,
                actor,
                input.now,
            )
        }
    };
    if state.phase == Phase::Blocked {
        blockers.extend(state.reasons.iter().cloned());
    }
    // What was not believed is said, without blocking by itself.
    blockers.extend(stamped.ignored.iter().cloned());
    blockers.extend(input.runtime_refused.iter().cloned());
    blockers.dedup();

    let mut events = Vec::new();
    if (state.stage, state.phase) != before {
        let last = state
            .history
            .last()
            .map(|t| t.reason.clone())
            .unwrap_or_default();
        let reason = match state.phase {
            Phase::Promoted => Reason::Promoted,
            Phase::Halted if kill_switch => Reason::KillSwitchEngaged,
            Phase::Halted => lost
                .as_ref()
                .map_or(Reason::Halted, |(why, _)| why.reason()),
            Phase::Blocked => Reason::Blocked,
            Phase::RolledBack => Reason::RolledBack,
            Phase::Pending => Reason::Pending,
        };
        let message = if state.phase == Phase::Blocked {
            blockers.join("; ")
        } else {
            last
        };
        events.push(StatusEvent {
            reason,
            message,
            warning: matches!(state.phase, Phase::Blocked | Phase::Halted),
        });
    }

    let mut conditions = previous.conditions.clone();
    let (g, now) = (input.generation, input.now);
    conditions.set(
        ConditionType::GatesPassed,
        bool_status(decision.allowed),
        if decision.allowed {
            Reason::AllGatesPassed
        } else {
            Reason::GateFailed
        },
        decision
            .failed()
            .map(|g| g.id.clone())
            .collect::<Vec<_>>()
            .join(", "),
        now,
        g,
    );
    let approved = approval
        .as_ref()
        .is_some_and(|a| !a.approved_by.trim().is_empty() && !a.token.trim().is_empty());
    conditions.set(
        ConditionType::Approved,
        bool_status(approved),
        if approved {
            Reason::ApprovalOnRecord
        } else {
            Reason::NoApproval
        },
        approval
            .as_ref()
            .map(|a| format!("approved by {}", a.approved_by))
            .unwrap_or_default(),
        now,
        g,
    );
    let drill_fresh = rollback_drill_at.is_some_and(|t| {
        t <= now
            && (now - t).num_seconds() as f64 / 3600.0
                <= policy.gate4_operations.max_drill_age_hours
    });
    conditions.set(
        ConditionType::RollbackDrillFresh,
        bool_status(drill_fresh),
        if drill_fresh {
            Reason::DrillFresh
        } else {
            Reason::DrillMissingOrStale
        },
        rollback_drill_at
            .map(|t| format!("last rollback drill {t}"))
            .unwrap_or_else(|| "no rollback drill on record".into()),
        now,
        g,
    );
    let promoted = state.phase == Phase::Promoted;
    conditions.set(
        ConditionType::Promoted,
        bool_status(promoted),
        if promoted {
            Reason::Promoted
        } else {
            Reason::NotPromoted
        },
        format!("stage {:?}, phase {:?}", state.stage, state.phase).to_lowercase(),
        now,
        g,
    );
    conditions.set(
        ConditionType::KillSwitchEngaged,
        bool_status(kill_switch),
        match (input.spec.kill_switch, kill_switch) {
            (true, _) => Reason::KillSwitchOn,
            (false, true) => Reason::KillSwitchLatched,
            (false, false) => Reason::KillSwitchOff,
        },
        if kill_switch && !input.spec.kill_switch {
            "the kill switch was seen on and latched; it was cleared since, which resumes nothing"
                .to_string()
        } else {
            String::new()
        },
        now,
        g,
    );

    let flags = state.runtime_flags();
    // The model a halted or rolled-back request names in its ConfigMap: the one it served (so a
    // halt never loads another model), else the candidate's.
    let model = previous.served_model.as_ref().or(input.model);
    // Written while a stage is being served and whenever trading must stop (halt, rollback);
    // and for a request still waiting at shadow, so that a decision service can serve the
    // candidate in shadow (trading off, nothing placed) and record the statistics that gate0
    // reads for shadow → paper. Not for a candidate being deleted or without verified
    // evidence, without a readable policy, under a name the ConfigMap cannot carry, nor while
    // another request serves the candidate.
    let shadow = state.stage == Stage::Shadow
        && matches!(state.phase, Phase::Pending | Phase::Blocked)
        && !input.candidate_deleting
        && input.evidence.is_ok()
        && input.policy.is_ok()
        && input.stage_held_by.is_none()
        && input.name.len() <= MAX_PROMOTION_REQUEST_NAME;
    let runtime_config = match (state.phase, model) {
        (Phase::Promoted | Phase::Halted | Phase::RolledBack, Some(model))
            if state.stage != Stage::Shadow || state.phase != Phase::Promoted =>
        {
            Some(model)
        }
        (Phase::Pending | Phase::Blocked, Some(model)) if shadow => Some(model),
        _ => None,
    };
    let runtime_config = match runtime_config {
        Some(model) => {
            Some(
                RuntimeConfig {
                    stage: format!("{:?}", state.stage).to_lowercase(),
                    // The candidate the request was bound to: an edited spec names another.
                    candidate: previous
                        .bound
                        .as_ref()
                        .map(|b| b.candidate.clone())
                        .unwrap_or_else(|| input.spec.candidate.clone()),
                    promotion_request: input.name.to_string(),
                    model_uri: model.uri.clone(),
                    model_sha256: model.sha256.clone(),
                    history_uri: input.history_uri.map(str::to_string),
                    trading_enabled: flags.trading_enabled,
                    force_fallback: flags.force_fallback,
                    policy_hash: Some(decision.policy_hash.clone()),
                    // Once served, the pinned limits (an edited spec never widens them).
                    canary_limits: if previous.served_model.is_some() {
                        previous.served_limits.clone()
                    } else {
                        input.spec.canary.clone()
                    },
                    lease_epoch: input.lease_epoch,
                }
                .to_data(),
            )
        }
        None => None,
    };
    // Pinned once: the request's identity, and the model it serves once promoted.
    let bound = previous.bound.clone().or_else(|| {
        Some(BoundSpec {
            candidate: input.spec.candidate.clone(),
            target: input.spec.target,
        })
    });
    let served_model = previous.served_model.clone().or_else(|| {
        (state.phase == Phase::Promoted)
            .then(|| input.model.cloned())
            .flatten()
    });
    // The limits pinned with the model, when it was first served.
    let served_limits = if previous.served_model.is_some() {
        previous.served_limits.clone()
    } else if served_model.is_some() {
        input.spec.canary.clone()
    } else {
        None
    };

    PromotionPlan {
        status: PromotionRequestStatus {
            stage: Some(state.stage),
            phase: Some(state.phase),
            gate_report: Some(decision),
            blockers,
            approval: approval.filter(|_| approved).map(|a| {
                let record = ApprovalRecord {
                    approved_by: a.approved_by,
                    token_sha256: Sha256Hex::of_bytes(a.token.as_bytes()),
                    rollback_drill_at: rollback_drill_at.map(|t| t.to_rfc3339()),
                    recorded_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    stamped_at: believed_approval.map(|r| {
                        r.recorded_at
                            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
                    }),
                };
                // The same approval keeps the time it was first recorded (no status churn).
                match &previous.approval {
                    Some(p)
                        if p.approved_by == record.approved_by
                            && p.token_sha256 == record.token_sha256
                            && p.rollback_drill_at == record.rollback_drill_at
                            && p.stamped_at == record.stamped_at =>
                    {
                        p.clone()
                    }
                    _ => record,
                }
            }),
            history: state.history,
            conditions,
            observed_generation: input.generation,
            runtime_config_map: runtime_config
                .as_ref()
                .map(|_| runtime_config_map_name(input.name))
                .or(previous.runtime_config_map),
            bound,
            served_model,
            served_limits,
            approvals_void_through,
            // Sealed by the glue, which holds the key.
            seal: None,
        },
        runtime_config,
        events,
    }
}

/// The verified approval unless it was stamped at or before an approval the operator saw
/// withdrawn, and the time through which approvals are void (`status.approvalsVoidThrough`).
///
/// An approval is withdrawn by removing its record. With the webhook down (updates fail open)
/// anyone who may update the request could put the saved record back, and it would verify: it
/// is signed, bound and unexpired. So once the operator has recorded an approval in the status
/// (`status.approval`, with the time it first saw it) and then sees the request without that
/// approval, every approval stamped at or before that time is void for good: the time goes into
/// the status, which only the operator writes (and seals). A fresh approval, stamped after it,
/// counts. The residual case: an approval withdrawn and put back before the operator reconciled
/// the request in between (the operator down, or both within one reconcile) is never seen
/// withdrawn (docs/gates.md).
fn unwithdrawn_approval<'a>(
    stamped: &'a Verified,
    previous: &PromotionRequestStatus,
) -> (Option<&'a crate::identity::Record>, Option<String>) {
    let parse = |t: &str| DateTime::parse_from_rfc3339(t).ok().map(|t| t.to_utc());
    let mut through = previous.approvals_void_through.as_deref().and_then(parse);
    if let Some(seen) = &previous.approval {
        let still_there = stamped
            .approval
            .as_ref()
            .is_some_and(|r| Sha256Hex::of_bytes(r.sig.as_bytes()) == seen.token_sha256);
        if !still_there {
            // The later of the record's own stamp and the operator's first sight of it: the
            // withdrawn record itself is void whatever the clocks of webhook and operator say.
            let stamped = seen.stamped_at.as_deref().and_then(parse);
            through = through.max(parse(&seen.recorded_at)).max(stamped);
        }
    }
    let believed = stamped
        .approval
        .as_ref()
        .filter(|r| through.is_none_or(|t| r.recorded_at > t));
    (
        believed,
        through.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
    )
}

/// The runtime ConfigMap a PromotionRequest writes for the decision service.
pub fn runtime_config_map_name(promotion_request: &str) -> String {
    super::jobs::bounded_name(promotion_request, "runtime")
}
