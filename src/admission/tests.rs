use super::*;
use crate::identity::{Verified, verify_all};

fn key() -> SigningKey {
    SigningKey::new(b"admission-test-key-0123456789").unwrap()
}

fn cfg() -> Config {
    Config {
        approver_group: "janus-approvers".into(),
        oncall_group: "janus-oncall".into(),
        operator_username: "system:serviceaccount:janus:janus-operator".into(),
        approval_ttl: Duration::hours(24),
        key: key(),
    }
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .unwrap()
        .to_utc()
}

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo {
        username: name.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn alice() -> UserInfo {
    user("alice", &["janus-approvers", "system:authenticated"])
}
fn bob() -> UserInfo {
    user("bob", &["janus-researchers", "janus-approvers"])
}
fn carol() -> UserInfo {
    user("carol", &["janus-oncall"])
}

fn object(annotations: Value, kill: bool) -> Value {
    json!({
        "apiVersion": "janus.torghut.io/v1alpha1",
        "kind": "PromotionRequest",
        "metadata": {"name": "r1", "namespace": "janus", "uid": "uid-1",
                     "creationTimestamp": "2026-03-01T10:00:00Z", "annotations": annotations},
        "spec": {"candidate": "c1", "target": "canary", "killSwitch": kill}
    })
}

fn review_of(op: &str, who: UserInfo, object: Value, old: Option<Value>) -> AdmissionRequest {
    AdmissionRequest {
        uid: "review-1".into(),
        kind: GroupVersionKind {
            group: "janus.torghut.io".into(),
            version: "v1alpha1".into(),
            kind: "PromotionRequest".into(),
        },
        name: "r1".into(),
        namespace: "janus".into(),
        operation: op.into(),
        user_info: who,
        object: Some(object),
        old_object: old,
        dry_run: None,
    }
}

/// Applies a JSONPatch of `add`/`remove` annotation operations (all the webhook emits).
fn apply(mut object: Value, patch: &[Value]) -> Value {
    for op in patch {
        let path = op["path"].as_str().unwrap();
        if path == "/metadata/annotations" {
            object["metadata"]["annotations"] = op["value"].clone();
            continue;
        }
        let key = path
            .strip_prefix("/metadata/annotations/")
            .unwrap()
            .replace("~1", "/")
            .replace("~0", "~");
        let map = object["metadata"]["annotations"].as_object_mut().unwrap();
        match op["op"].as_str().unwrap() {
            "add" => {
                map.insert(key, op["value"].clone());
            }
            "remove" => {
                map.remove(&key);
            }
            other => panic!("unexpected op {other}"),
        }
    }
    object
}

/// Both webhooks in turn, as the API server calls them; the final object when allowed.
fn admit(op: &str, who: UserInfo, object: Value, old: Option<Value>) -> Result<Value, Denial> {
    let m = review(
        &review_of(op, who.clone(), object.clone(), old.clone()),
        &cfg(),
        Mode::Mutate,
        Some("aa"),
        now(),
    );
    if let Some(d) = m.denial {
        return Err(d);
    }
    let mutated = apply(object, &m.patch);
    let v = review(
        &review_of(op, who, mutated.clone(), old),
        &cfg(),
        Mode::Validate,
        Some("aa"),
        now(),
    );
    match v.denial {
        Some(d) => Err(d),
        None => Ok(mutated),
    }
}

fn annotations(o: &Value) -> BTreeMap<String, String> {
    o["metadata"]["annotations"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// What the operator believes of `o`: its records verified against its own spec (as the
/// operator binds them, through the typed spec's digest).
fn verified(o: &Value) -> Verified {
    let spec: crate::crd::PromotionRequestSpec = serde_json::from_value(o["spec"].clone()).unwrap();
    let terms = spec.approved_terms_sha256().unwrap().to_string();
    let b = Binding {
        namespace: "janus",
        request: "r1",
        uid: "uid-1",
        candidate: "c1",
        target: Target::Canary,
        model_sha256: Some("aa"),
        spec_sha256: Some(&terms),
    };
    verify_all(&annotations(o), &b, Some(&key()), now())
}

/// A request created by `creator` (the created-by stamp), as stored.
fn created_by(creator: UserInfo) -> Value {
    let mut o = object(json!({}), false);
    o["metadata"]["annotations"] = Value::Null;
    o["metadata"].as_object_mut().unwrap().remove("annotations");
    let mut at_create = o.clone();
    at_create["metadata"].as_object_mut().unwrap().remove("uid");
    let created = admit("CREATE", creator, at_create, None).unwrap();
    let mut stored = o;
    stored["metadata"]["annotations"] = created["metadata"]["annotations"].clone();
    // The creator record is stamped at admission time; the object's creationTimestamp follows.
    stored["metadata"]["creationTimestamp"] = json!("2026-03-01T12:00:00Z");
    stored
}

fn ask(stored: &Value, key: &str, value: &str) -> Value {
    let mut o = stored.clone();
    o["metadata"]["annotations"][key] = json!(value);
    o
}

#[test]
fn creation_stamps_the_authenticated_creator_and_drops_stamps_brought_along() {
    let forged = object(
        json!({crate::crd::STAMP_APPROVAL: "{\"by\":\"alice\"}", crate::crd::STAMP_CREATED_BY: "x"}),
        false,
    );
    let out = admit("CREATE", bob(), forged, None).unwrap();
    let a = annotations(&out);
    assert!(!a.contains_key(crate::crd::STAMP_APPROVAL));
    let record: Record = serde_json::from_str(&a[crate::crd::STAMP_CREATED_BY]).unwrap();
    assert_eq!(record.by, "bob");
    assert!(record.signature_valid(&key()));
}

#[test]
fn an_approver_who_did_not_create_the_request_approves_it() {
    let stored = created_by(bob());
    let out = admit(
        "UPDATE",
        alice(),
        ask(&stored, ASK_APPROVE_KEY, "true"),
        Some(stored.clone()),
    )
    .unwrap();
    assert!(
        !annotations(&out).contains_key(ASK_APPROVE_KEY),
        "the ask is consumed"
    );
    let v = verified(&out);
    let approval = v.approval.expect("a verified approval");
    assert_eq!(approval.by, "alice");
    assert_eq!(approval.model_sha256.as_deref(), Some("aa"));
    assert_eq!(approval.expires_at, Some(now() + Duration::hours(24)));
    assert_eq!(v.created_by.unwrap().by, "bob");
}

const ASK_APPROVE_KEY: &str = crate::crd::ASK_APPROVE;

fn denied(r: Result<Value, Denial>) -> Rule {
    match r {
        Ok(_) => panic!("allowed"),
        Err(d) => {
            assert!(d.message().contains(d.rule.name()), "{}", d.message());
            d.rule
        }
    }
}

#[test]
fn approvals_by_the_creator_machines_or_outsiders_are_refused_naming_the_rule() {
    let stored = created_by(alice());
    let asked = ask(&stored, ASK_APPROVE_KEY, "true");
    assert_eq!(
        denied(admit(
            "UPDATE",
            alice(),
            asked.clone(),
            Some(stored.clone())
        )),
        Rule::SeparationOfDuties
    );
    assert_eq!(
        denied(admit(
            "UPDATE",
            user(
                "system:serviceaccount:argocd:argocd",
                &["system:serviceaccounts", "janus-approvers"]
            ),
            asked.clone(),
            Some(stored.clone())
        )),
        Rule::HumanApprover
    );
    assert_eq!(
        denied(admit(
            "UPDATE",
            carol(),
            asked.clone(),
            Some(stored.clone())
        )),
        Rule::ApproverGroup
    );
    // No creator on record (made before the webhook): no approval.
    let bare = object(json!({}), false);
    assert_eq!(
        denied(admit(
            "UPDATE",
            bob(),
            ask(&bare, ASK_APPROVE_KEY, "true"),
            Some(bare.clone())
        )),
        Rule::CreatorOnRecord
    );
    // Asking at creation.
    assert_eq!(
        denied(admit(
            "CREATE",
            bob(),
            object(json!({ASK_APPROVE_KEY: "true"}), false),
            None
        )),
        Rule::RecordsNeedAnExistingRequest
    );
}

#[test]
fn the_forged_approval_of_the_issue_is_refused() {
    // Issue 16: a canary request applied with someone else's name as approver, a made-up token,
    // drills an hour ago and the runbook validated.
    let forged = object(
        json!({
            crate::crd::APPROVED_BY: "alice@example.com",
            crate::crd::APPROVAL_TOKEN: "i-made-this-up",
            crate::crd::ROLLBACK_DRILL_AT: "2026-03-01T11:00:00Z",
            crate::controller::promotion::KILL_SWITCH_DRILL_AT: "2026-03-01T11:00:00Z",
            crate::controller::promotion::RUNBOOK_VALIDATED: "true",
        }),
        false,
    );
    let d = admit("CREATE", bob(), forged, None).unwrap_err();
    assert_eq!(d.rule, Rule::NoUnsignedApprovals);
    assert!(
        d.message().contains("`no-unsigned-approvals`"),
        "{}",
        d.message()
    );
    // Plain annotations of old, and a made-up stamped record, on an existing request.
    let stored = created_by(bob());
    let mut forged = stored.clone();
    forged["metadata"]["annotations"][crate::crd::STAMP_APPROVAL] =
        json!("{\"kind\":\"approval\",\"by\":\"alice\",\"sig\":\"00\"}");
    assert_eq!(
        denied(admit("UPDATE", bob(), forged, Some(stored.clone()))),
        Rule::StampsAreWebhookOnly
    );
    // A real approval copied from another request (other UID).
    let other = {
        let mut s = stored.clone();
        s["metadata"]["uid"] = json!("uid-0");
        let out = admit(
            "UPDATE",
            alice(),
            ask(&s, ASK_APPROVE_KEY, "true"),
            Some(s.clone()),
        )
        .unwrap();
        annotations(&out)[crate::crd::STAMP_APPROVAL].clone()
    };
    let mut copied = stored.clone();
    copied["metadata"]["annotations"][crate::crd::STAMP_APPROVAL] = json!(other);
    assert_eq!(
        denied(admit("UPDATE", bob(), copied.clone(), Some(stored.clone()))),
        Rule::StampsAreWebhookOnly
    );
    // Even if it slipped past a webhook that was down, the operator does not believe it.
    let v = verified(&copied);
    assert!(v.approval.is_none());
    assert!(
        v.ignored.iter().any(|i| i.contains("request UID")),
        "{:?}",
        v.ignored
    );
}

#[test]
fn drills_and_runbook_validation_come_from_on_call_and_never_from_the_future() {
    let stored = created_by(bob());
    let drill = ask(
        &stored,
        crate::crd::ASK_ROLLBACK_DRILL,
        "2026-03-01T11:00:00Z",
    );
    let out = admit("UPDATE", carol(), drill.clone(), Some(stored.clone())).unwrap();
    let v = verified(&out);
    assert_eq!(
        v.rollback_drill.unwrap().at.to_rfc3339(),
        "2026-03-01T11:00:00+00:00"
    );
    assert_eq!(
        denied(admit("UPDATE", alice(), drill, Some(stored.clone()))),
        Rule::OncallGroup
    );
    let future = ask(
        &stored,
        crate::crd::ASK_KILL_SWITCH_DRILL,
        "2026-03-01T13:00:00Z",
    );
    assert_eq!(
        denied(admit("UPDATE", carol(), future, Some(stored.clone()))),
        Rule::NoFutureDrills
    );
    let junk = ask(&stored, crate::crd::ASK_KILL_SWITCH_DRILL, "yesterday");
    assert_eq!(
        denied(admit("UPDATE", carol(), junk, Some(stored.clone()))),
        Rule::Malformed
    );
    let runbook = ask(&stored, crate::crd::ASK_VALIDATE_RUNBOOK, "true");
    let out = admit("UPDATE", carol(), runbook, Some(stored.clone())).unwrap();
    assert!(verified(&out).runbook_validation.is_some());
}

#[test]
fn candidate_and_target_are_immutable_and_the_kill_switch_latches_and_is_stamped() {
    let stored = created_by(bob());
    let mut swapped = stored.clone();
    swapped["spec"]["candidate"] = json!("c2");
    assert_eq!(
        denied(admit("UPDATE", alice(), swapped, Some(stored.clone()))),
        Rule::ImmutableCandidateAndTarget
    );
    let mut retarget = stored.clone();
    retarget["spec"]["target"] = json!("paper");
    assert_eq!(
        denied(admit("UPDATE", alice(), retarget, Some(stored.clone()))),
        Rule::ImmutableCandidateAndTarget
    );
    let mut on = stored.clone();
    on["spec"]["killSwitch"] = json!(true);
    let halted = admit("UPDATE", user("dave", &[]), on, Some(stored.clone())).unwrap();
    assert_eq!(verified(&halted).kill_switch.unwrap().by, "dave");
    let mut off = halted.clone();
    off["spec"]["killSwitch"] = json!(false);
    assert_eq!(
        denied(admit("UPDATE", carol(), off, Some(halted))),
        Rule::KillSwitchLatches
    );
}

#[test]
fn stamps_cannot_be_edited_by_hand_but_can_be_withdrawn() {
    let stored = created_by(bob());
    let approved = admit(
        "UPDATE",
        alice(),
        ask(&stored, ASK_APPROVE_KEY, "true"),
        Some(stored.clone()),
    )
    .unwrap();
    // Withdrawn: allowed.
    let mut withdrawn = approved.clone();
    withdrawn["metadata"]["annotations"]
        .as_object_mut()
        .unwrap()
        .remove(crate::crd::STAMP_APPROVAL);
    assert!(admit("UPDATE", bob(), withdrawn.clone(), Some(approved.clone())).is_ok());
    // Re-added by someone else (a replay of alice's record): refused.
    assert_eq!(
        denied(admit("UPDATE", bob(), approved.clone(), Some(withdrawn))),
        Rule::StampsAreWebhookOnly
    );
    // The creator record neither removed nor replaced.
    let mut no_creator = approved.clone();
    no_creator["metadata"]["annotations"]
        .as_object_mut()
        .unwrap()
        .remove(crate::crd::STAMP_CREATED_BY);
    assert_eq!(
        denied(admit("UPDATE", bob(), no_creator, Some(approved.clone()))),
        Rule::StampsAreWebhookOnly
    );
    // Any other change (a label, a poke annotation) passes untouched.
    let mut poked = approved.clone();
    poked["metadata"]["annotations"]["e2e/poke"] = json!("1");
    let m = review(
        &review_of("UPDATE", bob(), poked.clone(), Some(approved.clone())),
        &cfg(),
        Mode::Mutate,
        None,
        now(),
    );
    assert!(m.allowed() && m.patch.is_empty(), "{m:?}");
}

#[test]
fn the_validating_webhook_alone_refuses_what_the_mutating_one_would_have_stamped() {
    let stored = created_by(bob());
    let asked = ask(&stored, ASK_APPROVE_KEY, "true");
    let v = review(
        &review_of("UPDATE", alice(), asked, Some(stored.clone())),
        &cfg(),
        Mode::Validate,
        None,
        now(),
    );
    assert_eq!(
        v.denial.unwrap().rule,
        Rule::AsksGoThroughTheMutatingWebhook
    );
    let mut no_stamp = object(json!({}), false);
    no_stamp["metadata"].as_object_mut().unwrap().remove("uid");
    let v = review(
        &review_of("CREATE", bob(), no_stamp, None),
        &cfg(),
        Mode::Validate,
        None,
        now(),
    );
    assert_eq!(v.denial.unwrap().rule, Rule::StampsAreWebhookOnly);
    // Refusals are audited with the authenticated user.
    assert_eq!(v.audit[0].event, "refused");
    assert_eq!(v.audit[0].actor, "bob");
}

#[test]
fn janus_candidates_are_written_by_the_operator_only() {
    let mut req = review_of("CREATE", bob(), json!({"metadata": {"name": "c1"}}), None);
    req.kind.kind = "JanusCandidate".into();
    let v = review(&req, &cfg(), Mode::Validate, None, now());
    assert_eq!(v.denial.unwrap().rule, Rule::CandidatesAreOperatorOnly);
    req.user_info = user(
        "system:serviceaccount:janus:janus-operator",
        &["system:serviceaccounts"],
    );
    assert!(review(&req, &cfg(), Mode::Validate, None, now()).allowed());
}

#[test]
fn garbage_never_panics_and_a_response_carries_the_patch() {
    for object in [
        json!(null),
        json!([]),
        json!({"metadata": 3}),
        json!({"metadata": {"name": "x", "annotations": {"a": 1}}, "spec": {"target": 7}}),
    ] {
        for op in ["CREATE", "UPDATE", "DELETE", ""] {
            for mode in [Mode::Mutate, Mode::Validate] {
                let _ = review(
                    &review_of(op, bob(), object.clone(), Some(object.clone())),
                    &cfg(),
                    mode,
                    None,
                    now(),
                );
            }
        }
    }
    let stored = created_by(bob());
    let m = review(
        &review_of(
            "UPDATE",
            alice(),
            ask(&stored, ASK_APPROVE_KEY, "true"),
            Some(stored),
        ),
        &cfg(),
        Mode::Mutate,
        None,
        now(),
    );
    let r = m.response("review-1");
    assert!(r.allowed);
    assert_eq!(r.patch_type.as_deref(), Some("JSONPatch"));
    use base64::Engine;
    let patch: Vec<Value> = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(r.patch.unwrap())
            .unwrap(),
    )
    .unwrap();
    assert!(
        patch
            .iter()
            .any(|op| op["path"] == "/metadata/annotations/janus.torghut.io~1approval")
    );
}

/// Adversary (issue 16 review): the approval is bound to candidate, target and model, but not to
/// the canary's risk limits (`spec.canary`). After an approver approved a canary limited to one
/// symbol and $1,000 gross, anyone who may update the request (on-call; under GitOps Argo CD
/// applying a researcher's later commit) widens the limits to every symbol and $1e12, and the
/// webhook admits it and the old approval still verifies: the canary starts under limits nobody
/// approved. Expected: the change is refused (spec.canary immutable once approved) or the
/// approval is void.
#[test]
fn adversary_canary_limits_widened_after_approval_keep_the_approval() {
    let mut stored = created_by(bob());
    stored["spec"]["canary"] = json!({"maxGrossNotional": 1000.0, "maxNetNotional": 1000.0,
        "maxOrderNotional": 100.0, "symbols": ["AAPL"]});
    let approved = admit(
        "UPDATE",
        alice(),
        ask(&stored, ASK_APPROVE_KEY, "true"),
        Some(stored.clone()),
    )
    .unwrap();
    assert!(verified(&approved).approval.is_some());
    let mut widened = approved.clone();
    widened["spec"]["canary"] = json!({"maxGrossNotional": 1e12, "maxNetNotional": 1e12,
        "maxOrderNotional": 1e12, "symbols": ["AAPL", "TSLA", "GME", "*"]});
    let argocd = user(
        "system:serviceaccount:argocd:argocd-application-controller",
        &["system:serviceaccounts", "system:authenticated"],
    );
    let after = admit("UPDATE", argocd, widened, Some(approved.clone()));
    let still_approved = after
        .as_ref()
        .map(|o| verified(o).approval.is_some())
        .unwrap_or(false);
    assert!(
        !still_approved,
        "canary limits widened after approval were admitted ({:?}) and the approval still counts",
        after.map(|_| "allowed")
    );
}

/// An approval covers the spec it approved: a widened `spec.canary` is admitted but removes the
/// approval (a warning names the rule), turning the kill switch on keeps it, a new approval
/// binds the new limits, and an approval left in place because the mutating webhook was
/// skipped (down, updates fail open) counts for nothing at the operator.
#[test]
fn a_changed_spec_voids_the_approval_and_the_kill_switch_does_not() {
    let mut stored = created_by(bob());
    stored["spec"]["canary"] = json!({"maxGrossNotional": 1000.0, "maxNetNotional": 1000.0,
        "maxOrderNotional": 100.0, "symbols": ["AAPL"]});
    let approved = admit(
        "UPDATE",
        alice(),
        ask(&stored, ASK_APPROVE_KEY, "true"),
        Some(stored.clone()),
    )
    .unwrap();
    let record = verified(&approved).approval.expect("approved");
    // The digest of the canonical text written out by hand (see tests/crd.rs).
    assert_eq!(
        record.approved_spec_sha256.as_deref(),
        Some("5d6ddc5be24fa4ac9c97eccf1e0d40b68af9e1a48bb8cb08ed87be11a1531978")
    );
    // The kill switch on: the approval stays (it can only stop trading).
    let mut killed = approved.clone();
    killed["spec"]["killSwitch"] = json!(true);
    let out = admit("UPDATE", carol(), killed, Some(approved.clone())).unwrap();
    assert!(verified(&out).approval.is_some());
    // The same limits written as integers (as YAML gives them): the same terms.
    let mut same = approved.clone();
    same["spec"]["canary"] = json!({"maxGrossNotional": 1000, "maxNetNotional": 1000,
        "maxOrderNotional": 100, "symbols": ["AAPL"]});
    let out = admit("UPDATE", carol(), same, Some(approved.clone())).unwrap();
    assert!(verified(&out).approval.is_some());
    // Widened: admitted, the approval removed, the warning names the rule.
    let mut widened = approved.clone();
    widened["spec"]["canary"]["symbols"] = json!(["AAPL", "TSLA"]);
    let m = review(
        &review_of("UPDATE", carol(), widened.clone(), Some(approved.clone())),
        &cfg(),
        Mode::Mutate,
        None,
        now(),
    );
    assert!(m.allowed());
    assert!(
        m.warnings
            .iter()
            .any(|w| w.contains("approval-covers-the-spec")),
        "{:?}",
        m.warnings
    );
    let out = admit("UPDATE", carol(), widened.clone(), Some(approved.clone())).unwrap();
    assert!(!annotations(&out).contains_key(crate::crd::STAMP_APPROVAL));
    // A new approval binds the new limits.
    let again = admit(
        "UPDATE",
        alice(),
        ask(&out, ASK_APPROVE_KEY, "true"),
        Some(out.clone()),
    )
    .unwrap();
    let renewed = verified(&again).approval.expect("approved again");
    assert_ne!(renewed.approved_spec_sha256, record.approved_spec_sha256);
    // The webhook skipped: the old approval stays on the widened object, and is not believed.
    let v = verified(&widened);
    assert!(v.approval.is_none());
    assert!(
        v.ignored
            .iter()
            .any(|i| i.contains("does not cover this spec")),
        "{:?}",
        v.ignored
    );
}

/// A stamped record is not audited by the webhook (the object may still be refused after it);
/// the operator records it once persisted. A refusal is audited here.
#[test]
fn stamping_writes_no_audit_line_and_a_refusal_does() {
    let stored = created_by(bob());
    let m = review(
        &review_of(
            "UPDATE",
            alice(),
            ask(&stored, ASK_APPROVE_KEY, "true"),
            Some(stored.clone()),
        ),
        &cfg(),
        Mode::Mutate,
        Some("aa"),
        now(),
    );
    assert!(m.allowed() && !m.patch.is_empty());
    assert!(m.audit.is_empty(), "{:?}", m.audit);
    let m = review(
        &review_of(
            "UPDATE",
            bob(),
            ask(&stored, ASK_APPROVE_KEY, "true"),
            Some(stored.clone()),
        ),
        &cfg(),
        Mode::Mutate,
        Some("aa"),
        now(),
    );
    assert_eq!(m.denial.unwrap().rule, Rule::SeparationOfDuties);
    assert_eq!(m.audit.len(), 1);
    assert_eq!(m.audit[0].event, "refused");
}

// ---------- adversarial (adv16b) ----------

/// An approval asked while the webhook cannot read the candidate's model (the candidate does
/// not exist yet, or the read timed out) is stamped with no model digest; such a record must
/// not count for whatever model the candidate later names (issue 16: "bound to the request's
/// candidate digest").
#[test]
fn adv_an_approval_stamped_without_a_model_digest_does_not_count_for_another_model() {
    let stored = created_by(bob());
    let asked = ask(&stored, ASK_APPROVE_KEY, "true");
    let m = review(
        &review_of("UPDATE", alice(), asked.clone(), Some(stored.clone())),
        &cfg(),
        Mode::Mutate,
        None,
        now(),
    );
    if m.denial.is_some() {
        return; // Refusing the unbound approval is a fix too.
    }
    let out = apply(asked, &m.patch);
    // Later the candidate names model "bb" (recreated from another run), not one Alice saw.
    let spec: crate::crd::PromotionRequestSpec =
        serde_json::from_value(out["spec"].clone()).unwrap();
    let terms = spec.approved_terms_sha256().unwrap().to_string();
    let b = Binding {
        namespace: "janus",
        request: "r1",
        uid: "uid-1",
        candidate: "c1",
        target: Target::Canary,
        model_sha256: Some("bb"),
        spec_sha256: Some(&terms),
    };
    let v = verify_all(&annotations(&out), &b, Some(&key()), now());
    assert!(
        v.approval.is_none(),
        "an approval bound to no model counts for model bb: {:?}",
        v.approval
    );
}

/// `kubectl annotate --dry-run=server ... approve=true`: nothing is persisted and nothing goes
/// to the audit trail, but the response carries a valid signed approval, which can be put on
/// the request later (an update with the webhook down) with no approval ever audited.
#[test]
fn adv_a_dry_run_gets_no_signed_record() {
    let stored = created_by(bob());
    let asked = ask(&stored, ASK_APPROVE_KEY, "true");
    let mut r = review_of("UPDATE", alice(), asked.clone(), Some(stored.clone()));
    r.dry_run = Some(true);
    let m = review(&r, &cfg(), Mode::Mutate, Some("aa"), now());
    let out = apply(asked, &m.patch);
    assert!(
        verified(&out).approval.is_none(),
        "a dry run was answered with a valid signed approval"
    );
}
