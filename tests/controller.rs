//! The PromotionRequest reconcile as a plain function: each transition, kill-switch precedence,
//! idempotence, and malformed annotations.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::{gate_now, good_evidence, janus_run};
use janus::controller::promotion::{
    KILL_SWITCH_DRILL_AT, PromotionInputs, PromotionPlan, RUNBOOK_VALIDATED, reconcile,
};
use janus::crd::{
    APPROVAL_TOKEN, APPROVED_BY, CanaryLimits, ConditionStatus, ModelFormat, ModelRef,
    PromotionRequestSpec, PromotionRequestStatus, ROLLBACK_DRILL_AT,
};
use janus::gates::policy::GatePolicy;
use janus::gates::{RuntimeStats, Target};
use janus::identity::{Binding, Kind, Record, SigningKey, Verified, verify_all};
use janus::promotion::{Phase, Stage};
use std::collections::BTreeMap;

fn model() -> ModelRef {
    ModelRef {
        uri: "pvc://artifacts/run-1/models/grpo/model.onnx".into(),
        sha256: janus::contracts::Sha256Hex::of_bytes(b"model"),
        format: ModelFormat::Onnx,
    }
}

fn spec(target: Target, kill: bool) -> PromotionRequestSpec {
    PromotionRequestSpec {
        candidate: "cand-1".into(),
        target,
        canary: (target == Target::Canary).then(|| CanaryLimits {
            symbols: vec!["600000.SH".into()],
            max_order_notional: 1e5,
            max_gross_notional: 1e6,
            max_net_notional: 2.5e5,
        }),
        kill_switch: kill,
    }
}

fn paper_stats(now: DateTime<Utc>) -> RuntimeStats {
    RuntimeStats {
        stage: "paper".into(),
        window_start: now - Duration::hours(96),
        window_end: now - Duration::hours(1),
        completed: true,
        decisions: 5000,
        feature_schema_version: Some("janus-event-car-v1".into()),
        null_rate: Some(0.0),
        staleness_p95_ms: Some(500.0),
        symbol_coverage: Some(1.0),
        error_ratio: Some(0.0),
        fallback_ratio: Some(0.01),
        latency_p95_ms: Some(10.0),
        timeout_ratio: Some(0.0),
    }
}

fn run(
    spec: &PromotionRequestSpec,
    annotations: &BTreeMap<String, String>,
    status: Option<&PromotionRequestStatus>,
    now: DateTime<Utc>,
) -> PromotionPlan {
    run_at(spec, annotations, status, None, now)
}

fn run_at(
    spec: &PromotionRequestSpec,
    annotations: &BTreeMap<String, String>,
    status: Option<&PromotionRequestStatus>,
    candidate_stage: Option<Stage>,
    now: DateTime<Utc>,
) -> PromotionPlan {
    run_with(spec, annotations, status, now, |i| {
        i.candidate_stage = candidate_stage
    })
}

/// One reconcile with every input good, after `tweak` changed some of them.
fn run_with(
    spec: &PromotionRequestSpec,
    annotations: &BTreeMap<String, String>,
    status: Option<&PromotionRequestStatus>,
    now: DateTime<Utc>,
    tweak: impl FnOnce(&mut PromotionInputs<'_>),
) -> PromotionPlan {
    let evidence = good_evidence();
    let stats = paper_stats(gate_now());
    let m = model();
    // Canaries are the subject here: live trading deliberately on (the shipped policy has it off).
    let policy = common::live_policy();
    // What the webhook stamped, verified as the operator does (signature, binding, expiry).
    let terms = spec.approved_terms_sha256().unwrap().to_string();
    let stamped = verify_all(
        annotations,
        &Binding {
            namespace: "janus",
            request: "promo-1",
            uid: "uid-1",
            candidate: &spec.candidate,
            target: spec.target,
            model_sha256: Some(m.sha256.as_str()),
            spec_sha256: Some(&terms),
        },
        Some(&signing_key()),
        now,
    );
    let mut inputs = PromotionInputs {
        name: "promo-1",
        generation: Some(1),
        spec,
        annotations,
        status,
        stamped: &stamped,
        candidate_stage: None,
        model: Some(&m),
        candidate_deleting: false,
        history_uri: Some("runs/run-1/event-car.json"),
        evidence: Ok(&evidence),
        runtime: Ok(&stats),
        runtime_refused: &[],
        policy: Ok(&policy),
        actor: "alice",
        rollback_actor: "carol",
        kill_switch_seen: false,
        kill_switch_actor: "unknown",
        stage_held_by: None,
        lease_epoch: Some(3),
        status_sealed: true,
        now,
    };
    tweak(&mut inputs);
    reconcile(&inputs)
}

fn condition(plan: &PromotionPlan, t: &str) -> ConditionStatus {
    plan.status
        .conditions
        .0
        .iter()
        .find(|c| c.type_ == t)
        .unwrap()
        .status
}

fn signing_key() -> SigningKey {
    SigningKey::new(b"controller-tests-signing-key").unwrap()
}

/// A record as the admission webhook stamps it for request `promo-1` (UID `uid-1`).
fn stamp(kind: Kind, by: &str, at: DateTime<Utc>) -> (String, String) {
    let record = Record {
        kind,
        by: by.into(),
        groups: vec![],
        namespace: "janus".into(),
        request: "promo-1".into(),
        request_uid: if kind == Kind::CreatedBy {
            String::new()
        } else {
            "uid-1".into()
        },
        candidate: "cand-1".into(),
        target: Target::Canary,
        model_sha256: (kind == Kind::Approval).then(|| model().sha256.to_string()),
        // Approved: the canary spec of `spec(Target::Canary, false)`, limits included.
        approved_spec_sha256: (kind == Kind::Approval).then(|| {
            spec(Target::Canary, false)
                .approved_terms_sha256()
                .unwrap()
                .to_string()
        }),
        at,
        recorded_at: at,
        expires_at: (kind == Kind::Approval).then(|| at + Duration::hours(24)),
        sig: String::new(),
    }
    .signed(&signing_key());
    (kind.annotation().to_string(), record.to_annotation())
}

/// A canary request's stamped records: created by bob, approved by alice, drills done.
fn canary_annotations(drill_age_hours: i64) -> BTreeMap<String, String> {
    let at = |h: i64| gate_now() - Duration::hours(h);
    BTreeMap::from([
        stamp(Kind::CreatedBy, "bob@example.com", at(30)),
        stamp(Kind::Approval, "alice@example.com", at(1)),
        stamp(
            Kind::RollbackDrill,
            "carol@example.com",
            at(drill_age_hours),
        ),
        stamp(Kind::KillSwitchDrill, "carol@example.com", at(2)),
        stamp(Kind::RunbookValidation, "carol@example.com", at(2)),
    ])
}

#[test]
fn paper_is_promoted_and_the_runtime_config_appears_idempotently() {
    // A minute after the evidence (dated gate_now()): ages count in whole hours rounded up, so
    // the gate report is the same five minutes later, within the same hour of age.
    let now = gate_now() + Duration::minutes(1);
    let none = BTreeMap::new();
    let plan = run(&spec(Target::Paper, false), &none, None, now);
    assert_eq!(plan.status.stage, Some(Stage::Paper));
    assert_eq!(plan.status.phase, Some(Phase::Promoted));
    assert_eq!(condition(&plan, "Promoted"), ConditionStatus::True);
    assert_eq!(condition(&plan, "GatesPassed"), ConditionStatus::True);
    let cm = plan.runtime_config.as_ref().unwrap();
    assert_eq!(cm["tradingEnabled"], "true");
    assert_eq!(cm["forceFallback"], "false");
    assert_eq!(cm["stage"], "paper");
    assert_eq!(cm["modelSha256"], model().sha256.to_string());
    assert_eq!(plan.events[0].reason.as_str(), "Promoted");
    assert_eq!(plan.status.history.len(), 1);

    // Reconciling again later changes nothing: no event, no history, same condition times.
    let again = run(
        &spec(Target::Paper, false),
        &none,
        Some(&plan.status),
        now + Duration::minutes(5),
    );
    assert_eq!(again.status, plan.status);
    assert!(again.events.is_empty());
    assert_eq!(again.runtime_config, plan.runtime_config);
}

/// Why no runtime statistics count is the gate's blocker; files refused for what they claim
/// are named in the blockers without blocking by themselves: with statistics that count, a
/// refused file beside them does not stop the promotion.
#[test]
fn refused_runtime_statistics_are_named_in_the_blockers() {
    let now = gate_now();
    let none = BTreeMap::new();
    // 'static: the inputs' lifetime is the reconcile's own.
    let refused: &'static [String] = Box::leak(Box::new([
        "runtime statistics refused: candidates/c/runtime/shadow/x.json: unsigned".to_string(),
    ]));
    let blocked = run_with(&spec(Target::Paper, false), &none, None, now, |i| {
        i.runtime = Err("none that count under candidates/c/runtime/shadow/ (1 files refused)");
        i.runtime_refused = refused;
    });
    assert_eq!(blocked.status.phase, Some(Phase::Blocked));
    let blockers = &blocked.status.blockers;
    assert!(
        blockers.iter().any(|b| b.contains(
            "no shadow or paper runtime statistics: none that count under candidates/c/runtime/shadow/ (1 files refused)"
        )),
        "{blockers:?}"
    );
    assert!(blockers.contains(&refused[0]), "{blockers:?}");
    let promoted = run_with(&spec(Target::Paper, false), &none, None, now, |i| {
        i.runtime_refused = refused;
    });
    assert_eq!(promoted.status.phase, Some(Phase::Promoted));
    assert!(promoted.status.blockers.contains(&refused[0]));
}

/// A paper request still at shadow (its gates not yet passed: no shadow statistics) gets a
/// runtime ConfigMap at stage shadow with trading off, which the decision service's own reader
/// takes as a shadow configuration: decisions computed, nothing placed. A kill switch halts it
/// with the fallback forced; promotion to paper rewrites the same ConfigMap.
#[test]
fn a_request_waiting_at_shadow_is_served_in_shadow_with_trading_off() {
    let now = gate_now();
    let none = BTreeMap::new();
    let waiting = run_with(&spec(Target::Paper, false), &none, None, now, |i| {
        i.runtime = Err("none")
    });
    assert_eq!(waiting.status.phase, Some(Phase::Blocked));
    assert_eq!(waiting.status.stage, Some(Stage::Shadow));
    let data = waiting.runtime_config.as_ref().expect("a shadow ConfigMap");
    assert_eq!(data["stage"], "shadow");
    assert_eq!(data["tradingEnabled"], "false");
    assert_eq!(data["forceFallback"], "false");
    assert_eq!(data["modelSha256"], model().sha256.to_string());
    assert_eq!(
        waiting.status.runtime_config_map.as_deref(),
        Some(janus::controller::promotion::runtime_config_map_name("promo-1").as_str())
    );
    let config = janus::runtime::config::RuntimeConfig::from_data(data).unwrap();
    assert!(janus::runtime::decision::is_shadow(&config));
    assert!(waiting.status.served_model.is_none(), "shadow pins nothing");

    // The kill switch: halted at shadow, fallback forced, no longer a shadow configuration.
    let halted = run_with(
        &spec(Target::Paper, true),
        &none,
        Some(&waiting.status),
        now,
        |i| i.runtime = Err("none"),
    );
    let data = halted.runtime_config.as_ref().unwrap();
    assert_eq!(
        (data["stage"].as_str(), data["tradingEnabled"].as_str()),
        ("shadow", "false")
    );
    assert_eq!(data["forceFallback"], "true");
    let config = janus::runtime::config::RuntimeConfig::from_data(data).unwrap();
    assert!(!janus::runtime::decision::is_shadow(&config));

    // Statistics arrive: promoted, the same ConfigMap now says paper.
    let promoted = run(
        &spec(Target::Paper, false),
        &none,
        Some(&waiting.status),
        now,
    );
    assert_eq!(promoted.status.phase, Some(Phase::Promoted));
    assert_eq!(promoted.runtime_config.as_ref().unwrap()["stage"], "paper");
    assert_eq!(
        promoted.status.runtime_config_map,
        waiting.status.runtime_config_map
    );

    // Not served in shadow: without a policy, while another request serves the candidate,
    // with unverified evidence, or while the candidate is being deleted.
    for case in 0..4 {
        let plan = run_with(&spec(Target::Paper, false), &none, None, now, |i| {
            i.runtime = Err("none");
            match case {
                0 => i.policy = Err("absent".into()),
                1 => i.stage_held_by = Some("other"),
                2 => i.evidence = Err("changed after it was sealed".into()),
                _ => i.candidate_deleting = true,
            }
        });
        assert!(plan.runtime_config.is_none(), "case {case}");
    }
}

#[test]
fn canary_needs_approval_and_a_fresh_drill() {
    let now = gate_now();
    // A canary request for a candidate another request promoted to paper.
    let without = run_at(
        &spec(Target::Canary, false),
        &BTreeMap::new(),
        None,
        Some(Stage::Paper),
        now,
    );
    assert_eq!(without.status.phase, Some(Phase::Blocked));
    assert_eq!(without.status.stage, Some(Stage::Paper));
    assert!(
        without
            .status
            .blockers
            .iter()
            .any(|b| b.contains("gate5: no human approval on record")),
        "{:?}",
        without.status.blockers
    );
    assert_eq!(condition(&without, "Approved"), ConditionStatus::False);
    // Still trading at paper while the canary is blocked.
    assert!(
        without.runtime_config.is_none()
            || without.runtime_config.as_ref().unwrap()["stage"] == "paper"
    );

    let stale = run_at(
        &spec(Target::Canary, false),
        &canary_annotations(80),
        None,
        Some(Stage::Paper),
        now,
    );
    assert_eq!(stale.status.phase, Some(Phase::Blocked));
    assert!(
        stale
            .status
            .blockers
            .iter()
            .any(|b| b.starts_with("gate4: rollback drill age (hours) 80 exceeds 72")),
        "{:?}",
        stale.status.blockers
    );
    assert_eq!(
        condition(&stale, "RollbackDrillFresh"),
        ConditionStatus::False
    );

    // A new canary request for a candidate at paper starts from paper.
    let ok = run_at(
        &spec(Target::Canary, false),
        &canary_annotations(3),
        None,
        Some(Stage::Paper),
        now,
    );
    assert_eq!(
        (ok.status.stage, ok.status.phase),
        (Some(Stage::Canary), Some(Phase::Promoted))
    );
    // A candidate still in shadow cannot skip to canary, approvals or not.
    let skip = run_at(
        &spec(Target::Canary, false),
        &canary_annotations(3),
        None,
        Some(Stage::Shadow),
        now,
    );
    assert_eq!(skip.status.phase, Some(Phase::Blocked));
    assert!(
        skip.status
            .blockers
            .iter()
            .any(|b| b.contains("one stage at a time"))
    );
    assert_eq!(condition(&ok, "Approved"), ConditionStatus::True);
    assert_eq!(condition(&ok, "RollbackDrillFresh"), ConditionStatus::True);
    let approval = ok.status.approval.as_ref().unwrap();
    assert_eq!(approval.approved_by, "alice@example.com");
    let sig: Record =
        serde_json::from_str(&canary_annotations(3)[Kind::Approval.annotation()]).unwrap();
    assert_eq!(
        approval.token_sha256,
        janus::contracts::Sha256Hex::of_bytes(sig.sig.as_bytes())
    );
    assert!(ok.runtime_config.as_ref().unwrap()["canaryLimits"].contains("600000.SH"));
}

#[test]
fn the_kill_switch_halts_in_the_same_reconcile() {
    let now = gate_now();
    let paper = run(&spec(Target::Paper, false), &BTreeMap::new(), None, now);
    let halted = run(
        &spec(Target::Paper, true),
        &BTreeMap::new(),
        Some(&paper.status),
        now,
    );
    assert_eq!(halted.status.phase, Some(Phase::Halted));
    assert_eq!(
        condition(&halted, "KillSwitchEngaged"),
        ConditionStatus::True
    );
    assert_eq!(condition(&halted, "Promoted"), ConditionStatus::False);
    let cm = halted.runtime_config.as_ref().unwrap();
    assert_eq!(cm["tradingEnabled"], "false");
    assert_eq!(cm["forceFallback"], "true");
    // What the operator writes is what the decision service reads, field for field.
    let read = janus::runtime::config::RuntimeConfig::from_data(cm).unwrap();
    assert!(!read.trading_enabled && read.force_fallback);
    assert_eq!(read.model_sha256, model().sha256);
    assert_eq!(
        read.history_uri.as_deref(),
        Some("runs/run-1/event-car.json")
    );
    assert_eq!(&read.to_data(), cm);
    assert_eq!(halted.events[0].reason.as_str(), "KillSwitchEngaged");
    // Even a fresh request with the switch on halts before anything is promoted.
    let fresh = run(&spec(Target::Paper, true), &BTreeMap::new(), None, now);
    assert_eq!(fresh.status.phase, Some(Phase::Halted));
    assert_eq!(
        fresh.runtime_config.as_ref().unwrap()["tradingEnabled"],
        "false"
    );
    // Clearing it does not re-promote.
    let cleared = run(
        &spec(Target::Paper, false),
        &BTreeMap::new(),
        Some(&halted.status),
        now,
    );
    assert_eq!(cleared.status.phase, Some(Phase::Halted));
    assert_eq!(
        cleared.runtime_config.as_ref().unwrap()["tradingEnabled"],
        "false"
    );
}

#[test]
fn a_rollback_annotation_demotes_once_stops_trading_and_is_final() {
    let now = gate_now();
    let none = BTreeMap::new();
    let paper = run(&spec(Target::Paper, false), &none, None, now);
    assert_eq!(paper.status.phase, Some(Phase::Promoted));
    let ask = BTreeMap::from([(
        janus::crd::ROLLBACK_REASON.to_string(),
        "drill: rollback rehearsal".to_string(),
    )]);
    let rolled = run(&spec(Target::Paper, false), &ask, Some(&paper.status), now);
    assert_eq!(rolled.status.phase, Some(Phase::RolledBack));
    assert_eq!(rolled.status.stage, Some(Stage::Shadow));
    let last = rolled.status.history.last().unwrap();
    assert_eq!(
        (
            last.from,
            last.to,
            last.reason.as_str(),
            last.actor.as_str()
        ),
        (
            Stage::Paper,
            Stage::Shadow,
            "drill: rollback rehearsal",
            // Who asked for the rollback (on-call), not the approver of the promotion.
            "carol"
        )
    );
    let cm = rolled
        .runtime_config
        .as_ref()
        .expect("the runtime learns of it");
    assert_eq!(cm["tradingEnabled"], "false");
    assert_eq!(condition(&rolled, "Promoted"), ConditionStatus::False);
    assert_eq!(rolled.events[0].reason.as_str(), "RolledBack");
    // Final: the gates still pass, yet the request neither re-promotes nor rolls back again.
    for annotations in [&ask, &none] {
        let again = run(
            &spec(Target::Paper, false),
            annotations,
            Some(&rolled.status),
            now,
        );
        assert_eq!(again.status.phase, Some(Phase::RolledBack));
        assert_eq!(again.status.history, rolled.status.history);
        assert_eq!(
            again.runtime_config.as_ref().unwrap()["tradingEnabled"],
            "false"
        );
    }
    // The kill switch still acts on it.
    let halted = run(&spec(Target::Paper, true), &none, Some(&rolled.status), now);
    assert_eq!(halted.status.phase, Some(Phase::Halted));
    // A rollback asked of a request that was never promoted changes nothing.
    let fresh_blocked = run(&spec(Target::Canary, false), &ask, None, now);
    assert_ne!(fresh_blocked.status.phase, Some(Phase::RolledBack));
}

#[test]
fn malformed_annotations_and_missing_candidates_block_with_a_reason() {
    let now = gate_now();
    // Issue 16's forgery: an approver, a made-up token, drills an hour ago, the runbook
    // "validated", all typed by hand. None of it counts, and the blockers say so.
    let at = (now - Duration::hours(1)).to_rfc3339();
    let forged = BTreeMap::from([
        (APPROVED_BY.to_string(), "alice@example.com".to_string()),
        (APPROVAL_TOKEN.to_string(), "i-made-this-up".to_string()),
        (ROLLBACK_DRILL_AT.to_string(), at.clone()),
        (KILL_SWITCH_DRILL_AT.to_string(), at),
        (RUNBOOK_VALIDATED.to_string(), "true".to_string()),
    ]);
    let plan = run_at(
        &spec(Target::Canary, false),
        &forged,
        None,
        Some(Stage::Paper),
        now,
    );
    assert_eq!(plan.status.phase, Some(Phase::Blocked));
    assert_eq!(condition(&plan, "Approved"), ConditionStatus::False);
    assert!(plan.status.approval.is_none());
    for needle in [
        "unsigned approval annotation ignored",
        "unsigned rollback-drill annotation ignored",
        "unsigned runbook-validation annotation ignored",
        "gate5: no human approval on record",
        "gate4: no rollback drill on record",
    ] {
        assert!(
            plan.status.blockers.iter().any(|b| b.contains(needle)),
            "{needle}: {:?}",
            plan.status.blockers
        );
    }
    // Stamped records copied from another request, or past their expiry, count for nothing.
    let mut copied = canary_annotations(3);
    let mut approval: Record = serde_json::from_str(&copied[Kind::Approval.annotation()]).unwrap();
    approval.request_uid = "uid-of-another-request".into();
    copied.insert(
        Kind::Approval.annotation().to_string(),
        approval.signed(&signing_key()).to_annotation(),
    );
    let plan = run_at(
        &spec(Target::Canary, false),
        &copied,
        None,
        Some(Stage::Paper),
        now,
    );
    assert_eq!(plan.status.phase, Some(Phase::Blocked));
    assert!(
        plan.status.blockers.iter().any(|b| b.contains("(copied)")),
        "{:?}",
        plan.status.blockers
    );
    let expired = run_at(
        &spec(Target::Canary, false),
        &canary_annotations(3),
        None,
        Some(Stage::Paper),
        now + Duration::hours(25),
    );
    assert_eq!(expired.status.phase, Some(Phase::Blocked));
    assert!(
        expired
            .status
            .blockers
            .iter()
            .any(|b| b.contains("expired")),
        "{:?}",
        expired.status.blockers
    );

    let evidence = good_evidence();
    let s = spec(Target::Paper, false);
    let none = BTreeMap::new();
    let plan = reconcile(&PromotionInputs {
        name: "promo-1",
        generation: Some(1),
        spec: &s,
        annotations: &none,
        status: None,
        stamped: &Verified::default(),
        candidate_stage: None,
        model: None,
        candidate_deleting: false,
        history_uri: None,
        evidence: Ok(&evidence),
        runtime: Err("none"),
        runtime_refused: &[],
        policy: Ok(&GatePolicy::default()),
        actor: "alice",
        rollback_actor: "carol",
        kill_switch_seen: false,
        kill_switch_actor: "unknown",
        stage_held_by: None,
        lease_epoch: None,
        status_sealed: true,
        now,
    });
    assert_eq!(plan.status.phase, Some(Phase::Blocked));
    assert!(
        plan.status
            .blockers
            .iter()
            .any(|b| b == "candidate `cand-1` not found")
    );
    assert!(plan.runtime_config.is_none());
}

// ---------- what a served request needs: identity, backing, one holder, the latched switch ----

fn other_model() -> ModelRef {
    ModelRef {
        uri: "pvc://artifacts/run-2/models/grpo/model.onnx".into(),
        sha256: janus::contracts::Sha256Hex::of_bytes(b"another model"),
        format: ModelFormat::Onnx,
    }
}

/// Asserts a halt for `reason` that turned trading off in a ConfigMap still naming the model
/// that was served.
fn assert_halted_for(plan: &PromotionPlan, reason: &str) {
    assert_eq!(plan.status.phase, Some(Phase::Halted), "{:?}", plan.status);
    let last = plan.status.history.last().unwrap();
    assert!(last.reason.starts_with(reason), "{}", last.reason);
    assert_eq!(plan.events[0].reason.as_str(), reason);
    let cm = plan
        .runtime_config
        .as_ref()
        .expect("trading off is written");
    assert_eq!(cm["tradingEnabled"], "false");
    assert_eq!(cm["forceFallback"], "true");
    assert_eq!(cm["modelSha256"], model().sha256.to_string());
    assert_eq!(condition(plan, "Promoted"), ConditionStatus::False);
}

#[test]
fn a_changed_candidate_or_target_halts_the_request_and_never_serves_the_other_model() {
    let now = gate_now();
    let none = BTreeMap::new();
    let paper = run(&spec(Target::Paper, false), &none, None, now);
    assert_eq!(paper.status.phase, Some(Phase::Promoted));
    assert_eq!(paper.status.served_model, Some(model()));
    let bound = paper.status.bound.clone().unwrap();
    assert_eq!(
        (bound.candidate.as_str(), bound.target),
        ("cand-1", Target::Paper)
    );

    let mut swapped = spec(Target::Paper, false);
    swapped.candidate = "cand-2".into();
    // Leaked: the tweak may set inputs of any lifetime (a few bytes, once per test).
    let other: &'static ModelRef = Box::leak(Box::new(other_model()));
    let plan = run_with(&swapped, &none, Some(&paper.status), now, |i| {
        i.model = Some(other)
    });
    assert_halted_for(&plan, "SpecChanged");
    assert!(
        plan.status
            .history
            .last()
            .unwrap()
            .reason
            .contains("cand-2")
    );
    // Reverting the edit does not resume: the halt is final.
    let reverted = run(&spec(Target::Paper, false), &none, Some(&plan.status), now);
    assert_eq!(reverted.status.phase, Some(Phase::Halted));
    assert_eq!(reverted.status.history, plan.status.history);

    // The target is fixed too, in any phase: a blocked canary request turned into paper.
    let blocked = run(&spec(Target::Canary, false), &none, None, now);
    assert_eq!(blocked.status.phase, Some(Phase::Blocked));
    let plan = run(
        &spec(Target::Paper, false),
        &none,
        Some(&blocked.status),
        now,
    );
    assert_eq!(plan.status.phase, Some(Phase::Halted));
    assert!(
        plan.status
            .history
            .last()
            .unwrap()
            .reason
            .starts_with("SpecChanged")
    );
    assert_eq!(plan.runtime_config.unwrap()["tradingEnabled"], "false");

    // The candidate itself now naming another model (its spec patched) halts as well.
    let plan = run_with(
        &spec(Target::Paper, false),
        &none,
        Some(&paper.status),
        now,
        |i| i.model = Some(other),
    );
    assert_halted_for(&plan, "SpecChanged");
}

#[test]
fn a_served_request_whose_backing_is_gone_halts_with_trading_off_first() {
    let now = gate_now();
    let none = BTreeMap::new();
    let s = spec(Target::Paper, false);
    let paper = run(&s, &none, None, now);
    assert_eq!(paper.status.phase, Some(Phase::Promoted));
    // Candidate deleted (garbage-collected with its run), being deleted, evidence or policy
    // unreadable: each turns trading off and says why.
    type Tweak = Box<dyn Fn(&mut PromotionInputs<'_>)>;
    let cases: Vec<(&str, Tweak)> = vec![
        ("no longer exists", Box::new(|i| i.model = None)),
        ("being deleted", Box::new(|i| i.candidate_deleting = true)),
        (
            "evidence: unreadable",
            Box::new(|i| i.evidence = Err("unreadable".into())),
        ),
        (
            "gate policy: not found",
            Box::new(|i| i.policy = Err("not found".into())),
        ),
    ];
    for (why, tweak) in cases {
        let plan = run_with(&s, &none, Some(&paper.status), now, |i| tweak(i));
        assert_halted_for(&plan, "BackingLost");
        let last = plan.status.history.last().unwrap();
        assert!(last.reason.contains(why), "{}", last.reason);
        // Nobody asked for it: the operator's own act, not the approver's.
        assert_eq!(last.actor, janus::controller::promotion::OPERATOR_ACTOR);
    }
    // Before anything is served the same losses only block.
    let plan = run_with(&s, &none, None, now, |i| i.policy = Err("not found".into()));
    assert_eq!(plan.status.phase, Some(Phase::Blocked));
    assert!(
        plan.status
            .blockers
            .iter()
            .any(|b| b.contains("gate policy unavailable"))
    );
    assert!(plan.runtime_config.is_none());
    let plan = run_with(&s, &none, None, now, |i| i.candidate_deleting = true);
    assert_eq!(plan.status.phase, Some(Phase::Blocked));
}

#[test]
fn a_kill_switch_seen_once_halts_even_after_it_was_cleared_and_names_who_set_it() {
    let now = gate_now();
    let none = BTreeMap::new();
    let paper = run(&spec(Target::Paper, false), &none, None, now);
    // The switch was on for a moment and is off again by the time the request is reconciled.
    let plan = run_with(
        &spec(Target::Paper, false),
        &none,
        Some(&paper.status),
        now,
        |i| {
            i.kill_switch_seen = true;
            i.kill_switch_actor = "oncall-bob";
        },
    );
    assert_eq!(plan.status.phase, Some(Phase::Halted));
    assert_eq!(condition(&plan, "KillSwitchEngaged"), ConditionStatus::True);
    let c = plan
        .status
        .conditions
        .0
        .iter()
        .find(|c| c.type_ == "KillSwitchEngaged")
        .unwrap();
    assert_eq!(c.reason, "KillSwitchLatched");
    let last = plan.status.history.last().unwrap();
    assert_eq!(last.actor, "oncall-bob");
    assert_eq!(
        plan.runtime_config.as_ref().unwrap()["tradingEnabled"],
        "false"
    );
    // The approver's annotation never becomes the actor of somebody else's kill switch.
    let approved = BTreeMap::from([(APPROVED_BY.to_string(), "alice@example.com".to_string())]);
    let plan = run_with(
        &spec(Target::Paper, true),
        &approved,
        Some(&paper.status),
        now,
        |i| {
            i.actor = "alice@example.com";
            i.kill_switch_actor = "kubectl-patch";
        },
    );
    assert_eq!(plan.status.history.last().unwrap().actor, "kubectl-patch");
}

#[test]
fn spec_changes_the_operator_did_not_see_halt_a_served_request() {
    let now = gate_now();
    let none = BTreeMap::new();
    let paper = run(&spec(Target::Paper, false), &none, None, now);
    assert_eq!(paper.status.observed_generation, Some(1));
    // One change since (generation 2): seen, judged on its own (here: nothing to halt for).
    let one = run_with(
        &spec(Target::Paper, false),
        &none,
        Some(&paper.status),
        now,
        |i| i.generation = Some(2),
    );
    assert_eq!(one.status.phase, Some(Phase::Promoted));
    // Two changes while nobody watched (on, then off: generation 3) cannot be told apart from a
    // kill switch set and cleared: halted.
    let two = run_with(
        &spec(Target::Paper, false),
        &none,
        Some(&paper.status),
        now,
        |i| i.generation = Some(3),
    );
    assert_halted_for(&two, "SpecChanged");
    assert!(
        two.status
            .history
            .last()
            .unwrap()
            .reason
            .contains("2 times")
    );
    // A request still waiting is not promoted on top of unseen changes either (it could be
    // promoted later with a kill switch flipped in between), nor one first seen at generation 3.
    let blocked = run(&spec(Target::Canary, false), &none, None, now);
    let later = run_with(
        &spec(Target::Canary, false),
        &none,
        Some(&blocked.status),
        now,
        |i| i.generation = Some(5),
    );
    assert_eq!(later.status.phase, Some(Phase::Halted));
    let fresh = run_with(&spec(Target::Paper, false), &none, None, now, |i| {
        i.generation = Some(3)
    });
    assert_eq!(fresh.status.phase, Some(Phase::Halted));
    assert_eq!(fresh.runtime_config.unwrap()["tradingEnabled"], "false");
    // First seen at generation 2 (one change, which the operator now sees): judged as it is.
    let two = run_with(&spec(Target::Paper, false), &none, None, now, |i| {
        i.generation = Some(2)
    });
    assert_eq!(two.status.phase, Some(Phase::Promoted));
}

#[test]
fn a_promoted_status_the_operator_did_not_seal_halts() {
    let now = gate_now();
    let none = BTreeMap::new();
    // A status written by hand (or restored from a backup) claiming the request is promoted:
    // the gates and the stage claim were never passed. It halts instead of trading.
    let forged = PromotionRequestStatus {
        stage: Some(Stage::Paper),
        phase: Some(Phase::Promoted),
        observed_generation: Some(1),
        ..Default::default()
    };
    let plan = run_with(
        &spec(Target::Paper, false),
        &none,
        Some(&forged),
        now,
        |i| i.status_sealed = false,
    );
    assert_eq!(plan.status.phase, Some(Phase::Halted));
    assert_halted_for(&plan, "StatusNotSealed");
    assert!(plan.status.history.last().unwrap().reason.contains("seal"));
    assert_eq!(plan.runtime_config.unwrap()["tradingEnabled"], "false");
    // The key's seal over the fields verifies, and any change to them breaks it.
    let key = janus::identity::SigningKey::new(b"0123456789abcdef0123").unwrap();
    let sealed = run(&spec(Target::Paper, false), &none, None, now).status;
    let fields = sealed.seal_fields("uid-1");
    let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
    let seal = janus::identity::status_seal(&key, &fields);
    assert!(janus::identity::status_seal_valid(&key, &fields, &seal));
    let other = sealed.seal_fields("uid-2");
    let other: Vec<&str> = other.iter().map(String::as_str).collect();
    assert!(!janus::identity::status_seal_valid(&key, &other, &seal));
    let mut canary = sealed.clone();
    canary.stage = Some(Stage::Canary);
    let moved = canary.seal_fields("uid-1");
    let moved: Vec<&str> = moved.iter().map(String::as_str).collect();
    assert!(!janus::identity::status_seal_valid(&key, &moved, &seal));
}

#[test]
fn canary_limits_widened_after_promotion_halt_and_are_never_served() {
    let now = gate_now();
    let canary = run_at(
        &spec(Target::Canary, false),
        &canary_annotations(3),
        None,
        Some(Stage::Paper),
        now,
    );
    assert_eq!(canary.status.phase, Some(Phase::Promoted));
    assert_eq!(
        canary.status.served_limits,
        spec(Target::Canary, false).canary
    );
    let mut wider = spec(Target::Canary, false);
    if let Some(limits) = wider.canary.as_mut() {
        limits.max_gross_notional = 1e12;
        limits.symbols.push("000001.SZ".into());
    }
    let plan = run_with(
        &wider,
        &canary_annotations(3),
        Some(&canary.status),
        now,
        |i| {
            i.candidate_stage = Some(Stage::Paper);
            i.generation = Some(2)
        },
    );
    assert_eq!(plan.status.phase, Some(Phase::Halted));
    assert!(
        plan.status
            .history
            .last()
            .unwrap()
            .reason
            .contains("spec.canary changed")
    );
    let cm = plan.runtime_config.unwrap();
    assert_eq!(cm["tradingEnabled"], "false");
    // The ConfigMap keeps the approved limits, not the widened ones.
    assert!(
        !cm["canaryLimits"].contains("000001.SZ"),
        "{}",
        cm["canaryLimits"]
    );
}

#[test]
fn one_promoted_request_per_candidate_and_stage() {
    let now = gate_now();
    let none = BTreeMap::new();
    let plan = run_with(&spec(Target::Paper, false), &none, None, now, |i| {
        i.stage_held_by = Some("first-request")
    });
    assert_eq!(plan.status.phase, Some(Phase::Blocked));
    assert!(
        plan.status
            .blockers
            .iter()
            .any(|b| b.contains("`first-request`")),
        "{:?}",
        plan.status.blockers
    );
    assert!(plan.runtime_config.is_none());
}

#[test]
fn names_too_long_for_their_runtime_config_map_are_never_served() {
    let now = gate_now();
    let none = BTreeMap::new();
    let long: &'static str = "r"
        .repeat(janus::crd::MAX_PROMOTION_REQUEST_NAME + 1)
        .leak();
    let plan = run_with(&spec(Target::Paper, false), &none, None, now, |i| {
        i.name = long
    });
    assert_eq!(plan.status.phase, Some(Phase::Blocked));
    assert!(plan.runtime_config.is_none());
    let fits: &'static str = "r".repeat(janus::crd::MAX_PROMOTION_REQUEST_NAME).leak();
    let plan = run_with(&spec(Target::Paper, false), &none, None, now, |i| {
        i.name = fits
    });
    assert_eq!(plan.status.phase, Some(Phase::Promoted));
    // The ConfigMap's name needs no shortening: the chart's `<name>-runtime` is the same name.
    let cm = janus::controller::promotion::runtime_config_map_name(fits);
    assert_eq!(cm, format!("{fits}-runtime"));
    assert_eq!(cm.len(), 63);
    assert_eq!(plan.status.runtime_config_map.as_deref(), Some(cm.as_str()));
    assert_eq!(plan.runtime_config.unwrap()["leaseEpoch"], "3");
}

// ---------- JanusCandidate ----------

use janus::controller::candidate::{CandidateInputs, reconcile as reconcile_candidate};
use janus::crd::{JanusCandidateSpec, JanusRunStatus, RunLineage};

fn lineage_with(evidence_hash: Option<janus::contracts::Sha256Hex>) -> RunLineage {
    RunLineage {
        dataset_snapshot_hash: None,
        event_car_manifest_hash: None,
        reward_manifest_hash: None,
        evidence_manifest_hash: evidence_hash,
        run_config_hash: None,
        generation_code: None,
    }
}

fn candidate_status(
    run: Option<&JanusRunStatus>,
    evidence: &janus::contracts::evidence::EvidenceArtifact,
) -> janus::crd::JanusCandidateStatus {
    let shadow = RuntimeStats {
        stage: "shadow".into(),
        ..paper_stats(gate_now())
    };
    let spec = JanusCandidateSpec {
        run_ref: "run-1".into(),
        model: model(),
        lineage: lineage_with(None),
    };
    reconcile_candidate(&CandidateInputs {
        name: "cand-1",
        generation: Some(1),
        spec: &spec,
        status: None,
        run,
        evidence: Ok(evidence),
        runtime: Ok(&shadow),
        policy: &GatePolicy::default(),
        now: gate_now(),
    })
}

fn cond(s: &janus::crd::JanusCandidateStatus, t: &str) -> ConditionStatus {
    s.conditions.0.iter().find(|c| c.type_ == t).unwrap().status
}

#[test]
fn a_candidate_from_its_run_with_good_evidence_passes() {
    let mut evidence = good_evidence();
    evidence.model_sha256 = Some(model().sha256);
    let run = JanusRunStatus {
        candidate: Some("cand-1".into()),
        lineage: Some(lineage_with(Some(evidence.manifest_hash.clone()))),
        ..Default::default()
    };
    let s = candidate_status(Some(&run), &evidence);
    assert_eq!(cond(&s, "EvidenceComplete"), ConditionStatus::True);
    assert_eq!(cond(&s, "Reproducible"), ConditionStatus::True);
    assert_eq!(cond(&s, "GatesPassed"), ConditionStatus::True);
    assert_eq!(s.gate_reports.len(), 2);
    assert!(s.gate_reports[0].decision.allowed);
    assert!(
        !s.gate_reports[1].decision.allowed,
        "canary needs runtime, drills and approval"
    );
    assert_eq!(s.evidence_summary.as_ref().unwrap().metrics["sr"], 1.3);
}

#[test]
fn a_candidate_the_operator_did_not_produce_never_has_complete_evidence() {
    let mut evidence = good_evidence();
    evidence.model_sha256 = Some(model().sha256);
    let genuine = JanusRunStatus {
        candidate: Some("cand-1".into()),
        lineage: Some(lineage_with(Some(evidence.manifest_hash.clone()))),
        ..Default::default()
    };
    let other_candidate = JanusRunStatus {
        candidate: Some("cand-2".into()),
        ..genuine.clone()
    };
    let other_evidence = JanusRunStatus {
        lineage: Some(lineage_with(Some(janus::contracts::Sha256Hex::of_bytes(
            b"other",
        )))),
        ..genuine.clone()
    };
    for (run, needle) in [
        (None, "run `run-1` not found"),
        (Some(&other_candidate), "did not produce this candidate"),
        (Some(&other_evidence), "is not the one run `run-1` recorded"),
    ] {
        let s = candidate_status(run, &evidence);
        assert_eq!(
            cond(&s, "EvidenceComplete"),
            ConditionStatus::False,
            "{needle}"
        );
        assert_eq!(cond(&s, "GatesPassed"), ConditionStatus::False, "{needle}");
        let message = &s
            .conditions
            .0
            .iter()
            .find(|c| c.type_ == "EvidenceComplete")
            .unwrap()
            .message;
        assert!(message.contains(needle), "{message}");
        assert!(s.evidence_summary.is_none());
    }
    // Evidence computed for another model does not count either.
    let mut wrong_model = evidence.clone();
    wrong_model.model_sha256 = Some(janus::contracts::Sha256Hex::of_bytes(b"another model"));
    let s = candidate_status(Some(&genuine), &wrong_model);
    assert_eq!(cond(&s, "EvidenceComplete"), ConditionStatus::False);
    assert_eq!(cond(&s, "GatesPassed"), ConditionStatus::False);
}

// ---------- JanusRun step Jobs ----------

use janus::controller::jobs::{self, Step};
use janus::controller::run::{JobPhase, ObservedJob, RunInputs};

#[test]
fn step_jobs_are_deterministic_owned_and_never_retried() {
    let run = janus_run(
        "run-1",
        janus::contracts::Sha256Hex::of_bytes(b"d"),
        Some("registry.example/trl-grpo:1"),
    );
    for step in Step::ALL {
        let job = jobs::job(&run, step, "registry.example/janus:0.1.0").unwrap();
        assert_eq!(
            job,
            jobs::job(&run, step, "registry.example/janus:0.1.0").unwrap(),
            "deterministic"
        );
        assert_eq!(
            job.metadata.name.as_deref(),
            Some(format!("run-1-{}", step.name()).as_str())
        );
        let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (
                owner.kind.as_str(),
                owner.name.as_str(),
                owner.uid.as_str(),
                owner.controller
            ),
            ("JanusRun", "run-1", "0b1f-uid", Some(true))
        );
        let spec = job.spec.as_ref().unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        assert_eq!(spec.active_deadline_seconds, Some(step.deadline_seconds()));
        let pod = spec.template.spec.as_ref().unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        let c = &pod.containers[0];
        let image = c.image.as_deref().unwrap();
        match step {
            Step::Sft | Step::Grpo => assert_eq!(image, "registry.example/trl-grpo:1"),
            _ => assert_eq!(image, "registry.example/janus:0.1.0"),
        }
        let env: BTreeMap<&str, &str> = c
            .env
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_deref().unwrap()))
            .collect();
        assert_eq!(
            env["SOURCE_DATE_EPOCH"], "1795852800",
            "2026-11-28T08:00:00Z"
        );
        assert_eq!(
            env["JANUS_RUN_CONFIG_HASH"],
            jobs::run_config_hash(&run).to_string()
        );
        assert_eq!(
            c.termination_message_path.as_deref(),
            Some("/dev/termination-log")
        );
    }
    // Long names stay within 63 characters and distinct.
    let long_a = jobs::job_name(&"a".repeat(80), Step::Evaluate);
    let long_b = jobs::job_name(&format!("{}b", "a".repeat(79)), Step::Evaluate);
    assert!(
        long_a.len() <= 63 && long_b.len() <= 63 && long_a != long_b,
        "{long_a} {long_b}"
    );
    assert!(long_a.ends_with("-evaluate"));
    // The config files parse back into the step configurations.
    let data = jobs::config_map_data(&run);
    let p = std::path::Path::new("hgrm.yaml");
    assert_eq!(
        janus::config::parse::<janus::reward::HgrmConfig>(p, &data["hgrm.yaml"]).unwrap(),
        janus::reward::HgrmConfig::default()
    );
    janus::config::parse::<janus::labeling::LabelingConfig>(p, &data["labeling.yaml"]).unwrap();
    janus::config::parse::<janus::evaluation::report::EvaluationConfig>(
        p,
        &data["evaluation.yaml"],
    )
    .unwrap();
}

/// The Jobs' command lines are real `janus` invocations: run every step locally against a
/// scratch artifacts directory, as the e2e harness's fake node will.
#[test]
fn step_commands_run_the_whole_pipeline_locally() {
    let dir = tempfile::tempdir().unwrap();
    let artifacts = dir.path().join("artifacts");
    let config = dir.path().join("run-config");
    let dataset = artifacts.join("datasets/d1");
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_janus"));
    let run_janus = |args: &[&str]| std::process::Command::new(bin).args(args).output().unwrap();
    let out = run_janus(&[
        "scenario",
        "--seed",
        "12",
        "--symbols",
        "80",
        "--days",
        "300",
        "--events",
        "3000",
        "--out",
        dataset.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    // The dataset's pinned digest, as its curator would publish it.
    let probe = run_janus(&[
        "label",
        "--dataset",
        dataset.to_str().unwrap(),
        "--out",
        dir.path().join("probe").to_str().unwrap(),
    ]);
    assert!(probe.status.success());
    let lineage: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("probe/event-car.json")).unwrap())
            .unwrap();
    let pinned = janus::contracts::Sha256Hex::parse(
        lineage["lineage"]["dataset_snapshot_hash"]
            .as_str()
            .unwrap(),
    )
    .unwrap();

    // Unset optional hyperparameters leave the spec (and so its locked hash) and the command
    // lines as they were; set ones reach the trainer as flags it accepts.
    let plain = janus_run("run-1", pinned.clone(), None);
    let sft = serde_json::to_value(&plain.spec.training.sft).unwrap();
    assert_eq!(
        sft.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["epochs", "learningRate", "seed"]
    );
    assert!(!jobs::command(&plain, Step::Sft).contains(&"--patience".to_string()));
    assert!(!jobs::command(&plain, Step::Grpo).contains(&"--batch-size".to_string()));
    let mut run = plain;
    run.spec.training.sft.weight_decay = Some(0.05);
    run.spec.training.sft.validation_fraction = Some(0.1);
    run.spec.training.sft.patience = Some(2);
    run.spec.training.grpo.batch_size = Some(16);
    let sft_command = jobs::command(&run, Step::Sft).join(" ");
    assert!(
        sft_command.contains("--weight-decay 0.05 --validation-fraction 0.1 --patience 2"),
        "{sft_command}"
    );
    assert!(
        jobs::command(&run, Step::Grpo)
            .join(" ")
            .contains("--batch-size 16")
    );
    std::fs::create_dir_all(&config).unwrap();
    for (file, text) in jobs::config_map_data(&run) {
        std::fs::write(config.join(file), text).unwrap();
    }
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut observed: BTreeMap<&'static str, ObservedJob> = BTreeMap::new();
    for step in Step::ALL {
        let termination = dir.path().join(format!("termination-{}", step.name()));
        let command: Vec<String> = jobs::command(&run, step)
            .into_iter()
            .map(|a| {
                a.replace(jobs::ARTIFACTS, artifacts.to_str().unwrap())
                    .replace(jobs::RUN_CONFIG, config.to_str().unwrap())
            })
            .collect();
        let program = if command[0] == "janus" {
            bin.to_str().unwrap().to_string()
        } else {
            command[0].clone()
        };
        let out = std::process::Command::new(program)
            .args(&command[1..])
            .env("PATH", &path)
            .env("SOURCE_DATE_EPOCH", "1795852800")
            .env("TERMINATION_MESSAGE_PATH", &termination)
            .output()
            .unwrap();
        observed.insert(
            step.name(),
            ObservedJob {
                phase: JobPhase::Succeeded,
                termination_message: std::fs::read_to_string(&termination).ok(),
                owner_uid: run.metadata.uid.clone(),
                ..Default::default()
            },
        );
        assert!(
            out.status.success(),
            "{}: {}\n{}",
            step.name(),
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        if step == Step::Replay {
            assert!(String::from_utf8_lossy(&out.stdout).contains("\"matched\": true"));
        }
    }
    // Each step's termination message is a result the run's reconcile reads: with all five,
    // the run succeeds and its candidate pins the ONNX model that is on disk.
    let mut started = run.clone();
    started.status = Some(janus::crd::JanusRunStatus {
        steps: Step::ALL
            .iter()
            .map(|s| janus::crd::StepRecord {
                name: s.name().into(),
                job: jobs::job_name("run-1", *s),
                phase: janus::crd::RunPhase::Running,
                started_at: None,
                finished_at: None,
                result_digest: None,
                message: None,
            })
            .collect(),
        ..Default::default()
    });
    let plan = janus::controller::run::reconcile(&RunInputs {
        run: &started,
        jobs: &observed,
        children: &[],
        now: gate_now(),
    });
    assert_eq!(
        plan.status.phase.map(|p| p.as_str()),
        Some("Succeeded"),
        "{plan:#?}"
    );
    let (name, candidate) = plan.candidate.expect("a candidate");
    assert_eq!(name, "run-1-candidate");
    let onnx = std::fs::read(artifacts.join("runs/run-1/models/grpo/model.onnx")).unwrap();
    assert_eq!(
        candidate.model.sha256,
        janus::contracts::Sha256Hex::of_bytes(&onnx)
    );
    let evidence: janus::contracts::evidence::EvidenceArtifact =
        janus::contracts::read_artifact(&artifacts.join("runs/run-1/evaluation/evidence.json"))
            .unwrap();
    assert_eq!(
        candidate.lineage.evidence_manifest_hash.as_ref(),
        Some(&evidence.manifest_hash)
    );
    assert_eq!(
        evidence.model_sha256.as_ref(),
        Some(&candidate.model.sha256)
    );

    let runs = artifacts.join("runs/run-1");
    for f in [
        "event-car.json",
        "models/sft/model.onnx",
        "models/grpo/model.onnx",
        "evaluation/evidence.json",
        "replay/evidence.json",
    ] {
        assert!(runs.join(f).exists(), "{f}");
    }
    // The run's label step refuses a dataset that changed after it was pinned.
    let mut prices = std::fs::read_to_string(dataset.join("prices.csv")).unwrap();
    prices.push('\n');
    std::fs::write(dataset.join("prices.csv"), prices).unwrap();
    let label: Vec<String> = jobs::command(&run, Step::Label)
        .into_iter()
        .map(|a| {
            a.replace(jobs::ARTIFACTS, artifacts.to_str().unwrap())
                .replace(jobs::RUN_CONFIG, config.to_str().unwrap())
        })
        .collect();
    let out = std::process::Command::new(bin)
        .args(&label[1..])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to label a different dataset"));
}

#[test]
fn step_jobs_run_as_the_step_service_account_without_an_api_token() {
    let run = janus_run("run-1", janus::contracts::Sha256Hex::of_bytes(b"d"), None);
    for step in Step::ALL {
        let job = jobs::with_service_account(
            jobs::job(&run, step, "registry.example/janus:0.1.0").unwrap(),
            "janus-step",
        );
        let pod = job.spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some("janus-step"));
        assert_eq!(pod.automount_service_account_token, Some(false));
    }
}

// ---------- adversarial (adv16b) ----------

/// Every step Job, including the trainer image a researcher names in `spec.training.image`
/// (code the researcher chose), mounts the whole artifacts volume read-write at /artifacts.
/// On it lie the audit trail (`audit/<namespace>.jsonl`) and the runtime statistics the gates
/// read for every candidate (`candidates/<candidate>/runtime/<stage>/`; a file a step wrote
/// would be refused as unsigned, but could still crowd out or delete the service's): a
/// researcher's step could rewrite the trail and tamper with its own candidate's windows. A
/// step must not be able to write either.
#[test]
fn adv_no_step_job_can_write_the_audit_trail_or_runtime_statistics() {
    let run = janus_run(
        "run-1",
        janus::contracts::Sha256Hex::of_bytes(b"d"),
        Some("registry.example/researchers-own-trainer:1"),
    );
    for step in Step::ALL {
        let job = jobs::job(&run, step, "registry.example/janus:0.1.0").unwrap();
        let pod = job.spec.unwrap().template.spec.unwrap();
        let mounts = pod.containers[0].volume_mounts.clone().unwrap_or_default();
        for folder in ["audit", "candidates"] {
            let path = format!("{}/{folder}", jobs::ARTIFACTS);
            // A writable mount of the artifacts volume's root that the folder lies under, with
            // no read-only mount over the folder.
            let writable_root = mounts.iter().any(|m| {
                m.name == "artifacts"
                    && m.read_only != Some(true)
                    && m.sub_path.as_deref().unwrap_or("").is_empty()
                    && path.starts_with(&m.mount_path)
            });
            let read_only = mounts
                .iter()
                .any(|m| m.mount_path == path && m.read_only == Some(true));
            assert!(
                !writable_root || read_only,
                "step {} can write {path}: {mounts:?}",
                step.name()
            );
        }
    }
}

/// e2e 37's case in the plan: an approval seen, then seen withdrawn (its record removed), then
/// put back (the saved record, with the webhook down): void for good; a fresh approval counts.
#[test]
fn an_approval_seen_withdrawn_never_counts_again() {
    let now = gate_now();
    let canary = spec(Target::Canary, false);
    let stage = Some(Stage::Paper);
    let approved = canary_annotations(2);
    let p1 = run_at(&canary, &approved, None, stage, now);
    assert_eq!(condition(&p1, "Approved"), ConditionStatus::True);
    let seen_at = p1.status.approval.as_ref().unwrap().recorded_at.clone();
    // Withdrawn: the operator records through when approvals are void.
    let mut withdrawn = approved.clone();
    withdrawn.remove(janus::crd::STAMP_APPROVAL);
    let later = |m: i64| now + Duration::minutes(m);
    let p2 = run_at(&canary, &withdrawn, Some(&p1.status), stage, later(1));
    assert_eq!(condition(&p2, "Approved"), ConditionStatus::False);
    // The later of the record's stamp (an hour ago) and the operator's first sight (now).
    let through = p2.status.approvals_void_through.clone().unwrap();
    assert_eq!(
        DateTime::parse_from_rfc3339(&through).unwrap(),
        DateTime::parse_from_rfc3339(&seen_at).unwrap()
    );
    // The sealed fields cover it.
    assert!(
        p2.status
            .seal_fields("uid-1")
            .contains(&format!("approvalsVoidThrough={through}"))
    );
    // Put back: still not approved, and the blocker says why.
    let p3 = run_at(&canary, &approved, Some(&p2.status), stage, later(2));
    assert_eq!(condition(&p3, "Approved"), ConditionStatus::False);
    assert!(
        p3.status
            .blockers
            .iter()
            .any(|b| b.contains("a withdrawn approval never counts again")),
        "{:?}",
        p3.status.blockers
    );
    assert_eq!(
        p3.status.approvals_void_through,
        p2.status.approvals_void_through
    );
    // A fresh approval, stamped after the withdrawal, counts.
    let mut fresh = approved.clone();
    let (k, v) = stamp(Kind::Approval, "alice@example.com", later(3));
    fresh.insert(k, v);
    let p4 = run_at(&canary, &fresh, Some(&p3.status), stage, later(4));
    assert_eq!(condition(&p4, "Approved"), ConditionStatus::True);
}

/// The webhook's clock ahead of the operator's: the withdrawn record was stamped "after" the
/// operator first saw it. It is still void once withdrawn (its own stamp bounds the void).
#[test]
fn a_withdrawn_approval_from_a_clock_ahead_is_void_too() {
    let now = gate_now();
    let canary = spec(Target::Canary, false);
    let stage = Some(Stage::Paper);
    let mut approved = canary_annotations(2);
    let (k, v) = stamp(
        Kind::Approval,
        "alice@example.com",
        now + Duration::seconds(2),
    );
    approved.insert(k, v);
    let p1 = run_at(&canary, &approved, None, stage, now);
    assert_eq!(condition(&p1, "Approved"), ConditionStatus::True);
    let mut withdrawn = approved.clone();
    withdrawn.remove(janus::crd::STAMP_APPROVAL);
    let p2 = run_at(
        &canary,
        &withdrawn,
        Some(&p1.status),
        stage,
        now + Duration::seconds(5),
    );
    let p3 = run_at(
        &canary,
        &approved,
        Some(&p2.status),
        stage,
        now + Duration::seconds(10),
    );
    assert_eq!(condition(&p3, "Approved"), ConditionStatus::False);
}
