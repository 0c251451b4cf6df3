//! What a JanusCandidate's reconcile decides, as a plain function: its evidence brief, the gate
//! decisions for paper and canary (from the evidence and the shadow run's statistics;
//! approvals and drills belong to the PromotionRequest), and the conditions EvidenceComplete,
//! Reproducible and GatesPassed.
//!
//! A candidate counts only when the operator produced it from a run it executed: the run named
//! by `spec.runRef` must exist, name this candidate in its status, and have recorded the very
//! evidence (by manifest hash) that is being read. Anything else — a hand-written candidate, a
//! swapped evidence file — can never have complete evidence.

use crate::contracts::evidence::EvidenceArtifact;
use crate::crd::{
    ConditionStatus, ConditionType, EvidenceBrief, GateReport, JanusCandidateSpec,
    JanusCandidateStatus, JanusRunStatus, Reason, StatusEvent,
};
use crate::gates::policy::GatePolicy;
use crate::gates::{GateInputs, Target, evaluate};
use chrono::{DateTime, Utc};

pub struct CandidateInputs<'a> {
    pub name: &'a str,
    pub generation: Option<i64>,
    pub spec: &'a JanusCandidateSpec,
    pub status: Option<&'a JanusCandidateStatus>,
    /// Status of the JanusRun named by `spec.runRef`, when it exists.
    pub run: Option<&'a JanusRunStatus>,
    /// The evidence artifact the run recorded, verified, or why it could not be read.
    pub evidence: Result<&'a EvidenceArtifact, String>,
    /// Runtime statistics of the candidate's shadow run (gate0), or why there are none.
    pub runtime: Result<&'a crate::gates::RuntimeStats, &'a str>,
    pub policy: &'a GatePolicy,
    pub now: DateTime<Utc>,
}

/// Why the candidate's provenance does not hold, if it does not.
fn provenance_problem(input: &CandidateInputs<'_>) -> Option<String> {
    let Some(run) = input.run else {
        return Some(format!("run `{}` not found", input.spec.run_ref));
    };
    if run.candidate.as_deref() != Some(input.name) {
        return Some(format!(
            "run `{}` did not produce this candidate ({})",
            input.spec.run_ref,
            match &run.candidate {
                Some(c) => format!("it produced `{c}`"),
                None => "it has produced no candidate".to_string(),
            }
        ));
    }
    let recorded = run
        .lineage
        .as_ref()
        .and_then(|l| l.evidence_manifest_hash.as_ref());
    match (&input.evidence, recorded) {
        (Ok(e), Some(h)) if &e.manifest_hash == h => None,
        (Ok(e), Some(h)) => Some(format!(
            "evidence manifest {} is not the one run `{}` recorded ({h})",
            e.manifest_hash, input.spec.run_ref
        )),
        (Ok(_), None) => Some(format!("run `{}` recorded no evidence", input.spec.run_ref)),
        (Err(e), _) => Some(format!("evidence unusable: {e}")),
    }
}

pub fn reconcile(input: &CandidateInputs<'_>) -> JanusCandidateStatus {
    let mut status = input.status.cloned().unwrap_or_default();
    let (g, now) = (input.generation, input.now);
    let problem = provenance_problem(input);
    // Evidence that fails provenance is treated as no evidence at all by the gates.
    let evidence: Result<&EvidenceArtifact, String> = match (&problem, &input.evidence) {
        (None, Ok(e)) => Ok(*e),
        (Some(p), _) => Err(p.clone()),
        (None, Err(e)) => Err(e.clone()),
    };
    let model_matches = evidence.as_ref().ok().is_none_or(|e| {
        e.model_sha256
            .as_ref()
            .is_none_or(|m| *m == input.spec.model.sha256)
    });

    let complete = evidence.as_ref().is_ok_and(|e| e.summary.complete) && model_matches;
    let message = match (&evidence, model_matches) {
        (Err(p), _) => p.clone(),
        (Ok(_), false) => "the evidence was computed for another model digest".to_string(),
        (Ok(e), true) if !e.summary.complete => {
            format!("missing: {}", e.summary.missing.join(", "))
        }
        _ => "all evidence present".to_string(),
    };
    status.conditions.set(
        ConditionType::EvidenceComplete,
        if complete {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        },
        if complete {
            Reason::EvidenceComplete
        } else {
            Reason::EvidenceIncomplete
        },
        message,
        now,
        g,
    );

    let reproducible = evidence.as_ref().is_ok_and(|e| {
        !e.reproducibility_hashes.is_empty()
            && e.lineage.inconsistencies().is_empty()
            && e.reproducibility_hashes
                .iter()
                .all(|h| e.lineage.parents.iter().any(|p| &p.manifest_hash == h))
    });
    status.conditions.set(
        ConditionType::Reproducible,
        if reproducible {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        },
        if reproducible {
            Reason::HashesConsistent
        } else {
            Reason::HashesMissingOrInconsistent
        },
        String::new(),
        now,
        g,
    );

    let evidence_for_gates = if model_matches {
        evidence.clone()
    } else {
        Err("the evidence was computed for another model digest".into())
    };
    let reports: Vec<GateReport> = [Target::Paper, Target::Canary]
        .into_iter()
        .map(|target| GateReport {
            target,
            decision: evaluate(
                target,
                &GateInputs {
                    evidence: evidence_for_gates.clone(),
                    runtime: input.runtime,
                    operations: None,
                    approval: None,
                    recalibration_ref: None,
                    now,
                },
                input.policy,
            ),
        })
        .collect();
    // GatesPassed speaks of shadow → paper (canary adds the paper window, drills and approval,
    // which belong to the PromotionRequest).
    let paper = &reports[0].decision;
    status.conditions.set(
        ConditionType::GatesPassed,
        if paper.allowed {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        },
        if paper.allowed {
            Reason::PaperGatesPassed
        } else {
            Reason::GateFailed
        },
        paper
            .failed()
            .map(|g| g.id.clone())
            .chain(paper.missing.iter().map(|m| format!("missing {m}")))
            .collect::<Vec<_>>()
            .join(", "),
        now,
        g,
    );

    status.policy_hash = Some(paper.policy_hash.clone());
    status.gate_reports = reports;
    status.evidence_manifest_hash = evidence.as_ref().ok().map(|e| e.manifest_hash.clone());
    status.evidence_summary = evidence.as_ref().ok().map(|e| EvidenceBrief {
        complete: e.summary.complete,
        missing: e.summary.missing.clone(),
        metrics: e.metrics.clone(),
        deltas: e.deltas.clone(),
    });
    status.observed_generation = g;
    status
}

/// The Events of a candidate's reconcile: one per condition among `EvidenceComplete`,
/// `Reproducible` and `GatesPassed` whose truth changed from `before` (all three on the first
/// status), with the condition's reason; a Warning when it is not True.
pub fn events(
    before: Option<&JanusCandidateStatus>,
    after: &JanusCandidateStatus,
) -> Vec<StatusEvent> {
    [
        ConditionType::EvidenceComplete,
        ConditionType::Reproducible,
        ConditionType::GatesPassed,
    ]
    .into_iter()
    .filter(|&t| before.is_none_or(|b| b.conditions.is_true(t) != after.conditions.is_true(t)))
    .filter_map(|t| {
        let c = after.conditions.get(t)?;
        Some(StatusEvent {
            // Set with typed reasons just before: always one of ours.
            reason: Reason::from_word(&c.reason)?,
            message: format!("{t}={:?}: {}", c.status, c.message),
            warning: c.status != ConditionStatus::True,
        })
    })
    .collect()
}
