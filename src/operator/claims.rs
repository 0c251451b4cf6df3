//! What a promotion holds in the API server beyond its own status:
//! - a **stage claim**, so that at most one request is promoted per candidate and stage, decided
//!   atomically by the API server (creating a Lease fails for the second of two racing
//!   requests; taking over a stale claim carries the resourceVersion it read), whichever replica
//!   or reconcile makes the attempt;
//! - a **finalizer** on the candidate, so that a candidate a promoted or halted request
//!   references cannot be deleted from under it (garbage collection of its run included).

use super::Context;
use super::reconcile::ReconcileError;
use crate::controller::jobs::bounded_name;
use crate::crd::{JanusCandidate, PromotionRequest};
use crate::promotion::{Phase, Stage};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};

/// The finalizer a served candidate carries.
pub const IN_USE_FINALIZER: &str = "janus.torghut.io/in-use";

/// The Lease that records which request holds a candidate at a stage.
pub fn claim_name(candidate: &str, stage: Stage) -> String {
    let stage = match stage {
        Stage::Shadow => "shadow",
        Stage::Paper => "paper",
        Stage::Canary => "canary",
    };
    bounded_name(&format!("janus-{candidate}"), &format!("{stage}-claim"))
}

/// `<request name>/<request uid>`, the claim's holder identity.
fn holder_of(pr: &PromotionRequest) -> String {
    format!("{}/{}", pr.name_any(), pr.uid().unwrap_or_default())
}

/// How long a claim stays with a holder that is not (yet) promoted: a claim is taken just before
/// the holder's status says Promoted, so a reader must not mistake a holder in the middle of
/// promoting for one that gave up.
pub const CLAIM_GRACE: chrono::Duration = chrono::Duration::seconds(30);

/// Whether the claim's holder still holds the stage, so another request may not take it: the
/// named request exists with that UID and is promoted at that stage, or is still pending or
/// blocked within [`CLAIM_GRACE`] of claiming (it may be about to promote). A holder that is
/// gone, re-created under its name, halted or rolled back holds nothing. A pure rule over what
/// the caller read.
pub fn holder_still_holds(
    holder: &str,
    current: Option<&PromotionRequest>,
    stage: Stage,
    claimed_at: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    let Some(pr) = current else { return false };
    if holder != holder_of(pr) {
        return false;
    }
    let status = pr.status.clone().unwrap_or_default();
    match status.phase {
        Some(Phase::Promoted) => status.stage == Some(stage),
        Some(Phase::Halted | Phase::RolledBack) => false,
        Some(Phase::Pending | Phase::Blocked) | None => {
            claimed_at.is_none_or(|t| now - t < CLAIM_GRACE)
        }
    }
}

/// Claims `stage` of the request's candidate for it. `Ok(None)`: the request holds it (now or
/// already). `Ok(Some(name))`: another request, still promoted there, holds it. A lost race
/// surfaces as a 409 error (decided again at once).
pub async fn claim_stage(
    ctx: &Context,
    ns: &str,
    pr: &PromotionRequest,
    stage: Stage,
) -> Result<Option<String>, ReconcileError> {
    let api: Api<Lease> = Api::namespaced(ctx.client.clone(), ns);
    let name = claim_name(&pr.spec.candidate, stage);
    let me = holder_of(pr);
    // Owned by the request (not as controller): deleting the request releases its claims.
    let owner = OwnerReference {
        controller: None,
        block_owner_deletion: None,
        ..pr.controller_owner_ref(&()).ok_or_else(|| {
            ReconcileError::Invalid(format!("request {} has no uid", pr.name_any()))
        })?
    };
    let lease = |rv: Option<String>| Lease {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.to_string()),
            owner_references: Some(vec![owner.clone()]),
            resource_version: rv,
            labels: Some([("app.kubernetes.io/name".to_string(), "janus".to_string())].into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(me.clone()),
            acquire_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
            ..Default::default()
        }),
    };
    match api.create(&PostParams::default(), &lease(None)).await {
        Ok(_) => return Ok(None),
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    let Some(existing) = api.get_opt(&name).await? else {
        // Released between our create and get: decide again.
        return Err(ReconcileError::Invalid(format!(
            "stage claim {name} vanished while being read"
        )));
    };
    let holder = existing
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .unwrap_or_default();
    if holder == me {
        return Ok(None);
    }
    let holder_name = holder.split('/').next().unwrap_or_default().to_string();
    let current = Api::<PromotionRequest>::namespaced(ctx.client.clone(), ns)
        .get_opt(&holder_name)
        .await?;
    let claimed_at = existing
        .spec
        .as_ref()
        .and_then(|s| s.acquire_time.as_ref())
        .and_then(|t| chrono::DateTime::from_timestamp(t.0.as_second(), 0));
    if holder_still_holds(
        &holder,
        current.as_ref(),
        stage,
        claimed_at,
        chrono::Utc::now(),
    ) {
        return Ok(Some(holder_name));
    }
    // The holder is gone, or halted or rolled back: take the claim over, conditional on the
    // version read (a concurrent taker makes this 409).
    api.replace(
        &name,
        &PostParams::default(),
        &lease(existing.metadata.resource_version.clone()),
    )
    .await?;
    Ok(None)
}

/// Adds [`IN_USE_FINALIZER`] to the candidate when it lacks it (conditional on the version read).
pub async fn hold_candidate(
    ctx: &Context,
    ns: &str,
    candidate: &JanusCandidate,
) -> Result<(), ReconcileError> {
    let mut finalizers = candidate.finalizers().to_vec();
    if finalizers.iter().any(|f| f == IN_USE_FINALIZER) {
        return Ok(());
    }
    finalizers.push(IN_USE_FINALIZER.to_string());
    set_finalizers(ctx, ns, candidate, finalizers).await
}

/// Removes [`IN_USE_FINALIZER`] from the candidate when no request needs it any more.
pub async fn release_candidate(
    ctx: &Context,
    ns: &str,
    candidate: &JanusCandidate,
) -> Result<(), ReconcileError> {
    let finalizers: Vec<String> = candidate
        .finalizers()
        .iter()
        .filter(|f| *f != IN_USE_FINALIZER)
        .cloned()
        .collect();
    if finalizers.len() == candidate.finalizers().len() {
        return Ok(());
    }
    set_finalizers(ctx, ns, candidate, finalizers).await
}

async fn set_finalizers(
    ctx: &Context,
    ns: &str,
    candidate: &JanusCandidate,
    finalizers: Vec<String>,
) -> Result<(), ReconcileError> {
    let patch = serde_json::json!({
        "metadata": {
            "finalizers": finalizers,
            "resourceVersion": candidate.resource_version(),
        }
    });
    Api::<JanusCandidate>::namespaced(ctx.client.clone(), ns)
        .patch(
            &candidate.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    Ok(())
}

/// Whether a request keeps its candidate: promoted or halted (a halted request's record and the
/// model it served stay inspectable).
pub fn needs_candidate(pr: &PromotionRequest) -> bool {
    matches!(
        pr.status.as_ref().and_then(|s| s.phase),
        Some(Phase::Promoted | Phase::Halted)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{PromotionRequestSpec, PromotionRequestStatus};
    use crate::gates::Target;

    fn request(name: &str, uid: &str, phase: Phase, stage: Stage) -> PromotionRequest {
        let mut pr = PromotionRequest::new(
            name,
            PromotionRequestSpec {
                candidate: "c1".into(),
                target: Target::Paper,
                canary: None,
                kill_switch: false,
            },
        );
        pr.metadata.uid = Some(uid.into());
        pr.status = Some(PromotionRequestStatus {
            phase: Some(phase),
            stage: Some(stage),
            ..Default::default()
        });
        pr
    }

    #[test]
    fn a_claim_holds_while_its_holder_is_the_same_object_promoted_there_or_about_to_be() {
        let now = chrono::Utc::now();
        let just = Some(now - chrono::Duration::seconds(1));
        let long_ago = Some(now - chrono::Duration::seconds(31));
        let live = request("a", "u1", Phase::Promoted, Stage::Paper);
        assert!(holder_still_holds(
            "a/u1",
            Some(&live),
            Stage::Paper,
            long_ago,
            now
        ));
        // Same name, another object (deleted and re-created): the claim is stale.
        assert!(!holder_still_holds(
            "a/u0",
            Some(&live),
            Stage::Paper,
            just,
            now
        ));
        assert!(!holder_still_holds("a/u1", None, Stage::Paper, just, now));
        assert!(!holder_still_holds(
            "a/u1",
            Some(&live),
            Stage::Canary,
            just,
            now
        ));
        for phase in [Phase::Halted, Phase::RolledBack] {
            let done = request("a", "u1", phase, Stage::Paper);
            assert!(!holder_still_holds(
                "a/u1",
                Some(&done),
                Stage::Paper,
                just,
                now
            ));
        }
        // A holder whose status does not say Promoted yet keeps the claim for the grace period:
        // two requests racing must not both see the other as "not promoted".
        for phase in [Phase::Pending, Phase::Blocked] {
            let racing = request("a", "u1", phase, Stage::Shadow);
            assert!(holder_still_holds(
                "a/u1",
                Some(&racing),
                Stage::Paper,
                just,
                now
            ));
            assert!(!holder_still_holds(
                "a/u1",
                Some(&racing),
                Stage::Paper,
                long_ago,
                now
            ));
        }
    }

    #[test]
    fn claim_names_are_valid_and_distinct_per_stage() {
        let long = "c".repeat(240);
        for candidate in ["c1", long.as_str()] {
            let paper = claim_name(candidate, Stage::Paper);
            let canary = claim_name(candidate, Stage::Canary);
            assert!(paper.len() <= 63 && canary.len() <= 63, "{paper} {canary}");
            assert_ne!(paper, canary);
        }
        assert_eq!(claim_name("c1", Stage::Paper), "janus-c1-paper-claim");
    }
}
