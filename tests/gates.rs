//! Gates and the stage machine: every gate's pass and failure reasons, fail-closed inputs, the
//! policy's switch matrix, monotonicity, and the kill switch and drill-age rules under an
//! injected clock.

use chrono::{DateTime, Duration, Utc};
use janus::contracts::Sha256Hex;
use janus::contracts::evidence::*;
use janus::gates::policy::GatePolicy;
use janus::gates::*;
use janus::promotion::{Phase, PromotionState, Stage, rollback, step};
use proptest::prelude::*;

mod common;
use common::{good_evidence, live_policy};

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
        .unwrap()
        .to_utc()
}

fn good_runtime() -> RuntimeStats {
    RuntimeStats {
        stage: "paper".into(),
        window_start: now() - Duration::hours(96),
        window_end: now() - Duration::hours(1),
        completed: true,
        decisions: 5000,
        feature_schema_version: Some("janus-event-car-v1".into()),
        null_rate: Some(0.001),
        staleness_p95_ms: Some(800.0),
        symbol_coverage: Some(1.0),
        error_ratio: Some(0.001),
        fallback_ratio: Some(0.01),
        latency_p95_ms: Some(12.0),
        timeout_ratio: Some(0.0005),
    }
}

fn good_ops() -> Operations {
    Operations {
        runbook_validated: true,
        kill_switch_drill_at: Some(now() - Duration::hours(5)),
        rollback_drill_at: Some(now() - Duration::hours(6)),
    }
}

fn approval() -> Approval {
    Approval {
        approved_by: "alice@example.com".into(),
        token: "tok-123".into(),
    }
}

struct World {
    evidence: Result<EvidenceArtifact, String>,
    runtime: Option<RuntimeStats>,
    ops: Option<Operations>,
    approval: Option<Approval>,
    recalibration: Option<String>,
    now: DateTime<Utc>,
}

impl World {
    fn good() -> Self {
        World {
            evidence: Ok(good_evidence()),
            runtime: Some(good_runtime()),
            ops: Some(good_ops()),
            approval: Some(approval()),
            recalibration: None,
            now: now(),
        }
    }
    fn decide(&self, target: Target, policy: &GatePolicy) -> Decision {
        evaluate(
            target,
            &GateInputs {
                evidence: self.evidence.as_ref().map_err(Clone::clone),
                runtime: self.runtime.as_ref().ok_or("no statistics files"),
                operations: self.ops.as_ref(),
                approval: self.approval.as_ref(),
                recalibration_ref: self.recalibration.as_deref(),
                now: self.now,
            },
            policy,
        )
    }
}

fn gate<'a>(d: &'a Decision, id: &str) -> &'a GateResult {
    d.gates.iter().find(|g| g.id == id).unwrap()
}

#[test]
fn good_inputs_pass_every_gate_for_both_targets() {
    let policy = live_policy();
    for target in [Target::Paper, Target::Canary] {
        let d = World::good().decide(target, &policy);
        assert!(
            d.allowed,
            "{target:?}: {:#?}",
            d.failed().collect::<Vec<_>>()
        );
        assert!(d.missing.is_empty());
    }
    let paper = World::good().decide(Target::Paper, &policy);
    for id in ["gate3", "gate4", "gate5"] {
        assert_eq!(gate(&paper, id).status, GateStatus::NotRequired);
    }
}

#[test]
fn every_failure_is_named_with_its_gate_and_numbers() {
    type Mutation = Box<dyn Fn(&mut World)>;
    let ev = |f: fn(&mut EvidenceArtifact)| -> Mutation {
        Box::new(move |w: &mut World| f(w.evidence.as_mut().unwrap()))
    };
    let rt = |f: fn(&mut RuntimeStats)| -> Mutation {
        Box::new(move |w: &mut World| f(w.runtime.as_mut().unwrap()))
    };
    let cases: Vec<(&str, &str, Mutation)> = vec![
        (
            "gate0",
            "feature_schema_version",
            rt(|r| r.feature_schema_version = Some("old".into())),
        ),
        (
            "gate0",
            "missing_feature_schema_version",
            rt(|r| r.feature_schema_version = None),
        ),
        ("gate0", "null_rate", rt(|r| r.null_rate = Some(0.02))),
        (
            "gate0",
            "staleness_p95_ms",
            rt(|r| r.staleness_p95_ms = Some(130_000.0)),
        ),
        (
            "gate0",
            "missing_staleness_p95_ms",
            rt(|r| r.staleness_p95_ms = None),
        ),
        (
            "gate0",
            "symbol_coverage",
            rt(|r| r.symbol_coverage = Some(0.9)),
        ),
        (
            "gate0",
            "missing_runtime_stats",
            Box::new(|w| w.runtime = None),
        ),
        ("gate1", "decisions", ev(|e| e.counts.predictions = 0)),
        ("gate1", "trades", ev(|e| e.counts.trades = 0)),
        (
            "gate1",
            "net_pnl",
            ev(|e| {
                e.metrics.insert("total_return".into(), -0.01);
            }),
        ),
        (
            "gate1",
            "missing_net_pnl",
            ev(|e| {
                e.metrics.remove("total_return");
            }),
        ),
        (
            "gate1",
            "negative_fold_ratio",
            ev(|e| e.walk_forward.as_mut().unwrap().negative_fold_ratio = Some(0.6)),
        ),
        (
            "gate1",
            "fold_pnl_cv",
            ev(|e| e.walk_forward.as_mut().unwrap().fold_pnl_cv = Some(2.5)),
        ),
        (
            "gate1",
            "missing_negative_fold_ratio",
            ev(|e| e.walk_forward = None),
        ),
        // No fold: the statistics are null with a reason, and null is a failure, never a pass.
        (
            "gate1",
            "missing_fold_pnl_cv",
            ev(|e| {
                let wf = e.walk_forward.as_mut().unwrap();
                wf.folds = 0;
                wf.negative_fold_ratio = None;
                wf.fold_pnl_cv = None;
                e.null_reasons.insert(
                    "walk_forward.fold_pnl_cv".into(),
                    "no_folds: the evaluated window has 30 return days".into(),
                );
            }),
        ),
        (
            "gate1",
            "sr_delta_ci_lower",
            ev(|e| e.deltas.get_mut("sr").unwrap().ci_lower = -0.1),
        ),
        (
            "gate1",
            "missing_sr_delta",
            ev(|e| {
                e.deltas.remove("sr");
            }),
        ),
        (
            "gate1",
            "da_delta_p_value",
            ev(|e| e.deltas.get_mut("da").unwrap().p_value = 0.2),
        ),
        (
            "gate1",
            "missing_significance",
            ev(|e| e.significance = None),
        ),
        (
            "gate2",
            "max_drawdown",
            ev(|e| {
                e.metrics.insert("mdd".into(), 0.3);
            }),
        ),
        (
            "gate2",
            "turnover",
            ev(|e| {
                e.metrics.insert("turnover".into(), 9.0);
            }),
        ),
        (
            "gate2",
            "cost_bps",
            ev(|e| {
                e.metrics.insert("cost_bps".into(), 40.0);
            }),
        ),
        (
            "gate2",
            "gross_exposure",
            ev(|e| {
                e.metrics.insert("gross_exposure_max".into(), 3.5);
            }),
        ),
        ("gate3", "window_incomplete", rt(|r| r.completed = false)),
        (
            "gate3",
            "window_hours",
            rt(|r| r.window_start = r.window_end - Duration::hours(10)),
        ),
        ("gate3", "error_ratio", rt(|r| r.error_ratio = Some(0.2))),
        (
            "gate3",
            "fallback_ratio",
            rt(|r| r.fallback_ratio = Some(0.06)),
        ),
        (
            "gate3",
            "latency_p95_ms",
            rt(|r| r.latency_p95_ms = Some(250.0)),
        ),
        (
            "gate3",
            "timeout_ratio",
            rt(|r| r.timeout_ratio = Some(0.01)),
        ),
        (
            "gate3",
            "missing_paper_window",
            rt(|r| r.stage = "shadow".into()),
        ),
        (
            "gate4",
            "runbook_not_validated",
            Box::new(|w| w.ops.as_mut().unwrap().runbook_validated = false),
        ),
        (
            "gate4",
            "missing_kill_switch_drill",
            Box::new(|w| w.ops.as_mut().unwrap().kill_switch_drill_at = None),
        ),
        (
            "gate4",
            "rollback_drill_age_hours",
            Box::new(|w| {
                w.ops.as_mut().unwrap().rollback_drill_at = Some(now() - Duration::hours(73))
            }),
        ),
        (
            "gate4",
            "rollback_drill_in_future",
            Box::new(|w| {
                w.ops.as_mut().unwrap().rollback_drill_at = Some(now() + Duration::hours(1))
            }),
        ),
        ("gate4", "missing_operations", Box::new(|w| w.ops = None)),
        ("gate5", "missing_approval", Box::new(|w| w.approval = None)),
        (
            "gate5",
            "incomplete_approval",
            Box::new(|w| w.approval.as_mut().unwrap().token = " ".into()),
        ),
        (
            "gate6",
            "evidence_incomplete",
            ev(|e| {
                e.summary = EvidenceSummary {
                    complete: false,
                    missing: vec!["calibration".into()],
                }
            }),
        ),
        ("gate6", "events", ev(|e| e.counts.labelled_events = 10)),
        ("gate6", "rewards", ev(|e| e.counts.rewards = 0)),
        (
            "gate6",
            "reproducibility_hashes",
            ev(|e| e.reproducibility_hashes.truncate(1)),
        ),
        (
            "gate6",
            "hash_not_in_lineage",
            ev(|e| e.reproducibility_hashes[0] = Sha256Hex::of_bytes(b"other")),
        ),
        (
            "gate6",
            "artifacts_differ_from_lineage",
            ev(|e| {
                e.artifacts.pop();
            }),
        ),
        ("gate7", "missing_calibration", ev(|e| e.calibration = None)),
        (
            "gate7",
            "coverage_error",
            ev(|e| e.calibration.as_mut().unwrap().observed_coverage = 0.80),
        ),
        (
            "gate7",
            "missing_recalibration_ref",
            ev(|e| e.calibration.as_mut().unwrap().shift_score = 0.7),
        ),
    ];
    let policy = live_policy();
    for (id, code, mutate) in cases {
        let mut w = World::good();
        mutate(&mut w);
        let d = w.decide(Target::Canary, &policy);
        assert!(!d.allowed, "{id}/{code} should block");
        let g = gate(&d, id);
        assert_eq!(g.status, GateStatus::Fail, "{id}/{code}");
        assert!(
            g.reasons.iter().any(|r| r.code == code),
            "{id}/{code}: {:?}",
            g.reasons
        );
        // A null figure fails with the evidence's reason for it.
        if code == "missing_fold_pnl_cv" {
            assert!(
                g.reasons
                    .iter()
                    .any(|r| r.code == code && r.message.contains("no_folds")),
                "{:?}",
                g.reasons
            );
        }
        // Only the mutated gate fails (runtime statistics feed gate0 and gate3 both).
        let shared = match code {
            "missing_runtime_stats" => "gate3",
            "window_incomplete" => "gate0",
            _ => "",
        };
        let others: Vec<&str> = d
            .failed()
            .map(|g| g.id.as_str())
            .filter(|g| *g != id && *g != shared)
            .collect();
        assert!(others.is_empty(), "{id}/{code} also failed {others:?}");
        if let Some(r) = g
            .reasons
            .iter()
            .find(|r| r.code == code && r.threshold.is_some())
        {
            assert!(r.measured.is_some(), "measured values are recorded");
        }
    }
}

/// Numbers no service could have measured (issue 18: a negative ratio, coverage 7, an empty
/// window) fail gate0 for paper and gate3 for canary, each reason naming the field.
#[test]
fn impossible_runtime_numbers_fail_naming_the_field() {
    type Mutation = fn(&mut RuntimeStats);
    let cases: Vec<(&str, Mutation)> = vec![
        ("null_rate", |r| r.null_rate = Some(-0.1)),
        ("error_ratio", |r| r.error_ratio = Some(-0.5)),
        ("fallback_ratio", |r| r.fallback_ratio = Some(1.5)),
        ("timeout_ratio", |r| r.timeout_ratio = Some(f64::NAN)),
        ("symbol_coverage", |r| r.symbol_coverage = Some(7.0)),
        ("latency_p95_ms", |r| r.latency_p95_ms = Some(-3.0)),
        ("staleness_p95_ms", |r| {
            r.staleness_p95_ms = Some(f64::INFINITY)
        }),
        ("decisions", |r| r.decisions = 0),
        ("window_end", |r| r.window_end = r.window_start),
        ("stage", |r| r.stage = "live".into()),
    ];
    let policy = live_policy();
    for (field, mutate) in cases {
        for (target, stage, id) in [
            (Target::Paper, "shadow", "gate0"),
            (Target::Canary, "paper", "gate3"),
        ] {
            let mut w = World::good();
            let r = w.runtime.as_mut().unwrap();
            r.stage = stage.into();
            mutate(r);
            let d = w.decide(target, &policy);
            assert!(!d.allowed, "{field} for {target:?}");
            // A stage that is not `paper` is no paper window for gate3; gate0 names it.
            let g = gate(&d, if field == "stage" { "gate0" } else { id });
            assert!(
                g.reasons.iter().any(|r| r.code == "invalid_runtime_stats"
                    && r.message.contains(&format!("`{field}`"))),
                "{field} {id}: {:?}",
                g.reasons
            );
        }
    }
    // The shipped examples' valid extremes stay valid: ratios 0 and 1, zero latency.
    let mut w = World::good();
    let r = w.runtime.as_mut().unwrap();
    (r.error_ratio, r.latency_p95_ms, r.symbol_coverage) = (Some(0.0), Some(0.0), Some(1.0));
    assert!(r.invalid_fields().is_empty());
    // A window that has not ended yet cannot have completed.
    let mut w = World::good();
    w.runtime.as_mut().unwrap().window_end = now() + Duration::hours(1);
    let d = w.decide(Target::Canary, &policy);
    for id in ["gate0", "gate3"] {
        assert!(
            gate(&d, id)
                .reasons
                .iter()
                .any(|r| r.code == "window_in_future"),
            "{id}"
        );
    }
}

#[test]
fn calibration_degrades_or_abstains_only_with_a_recalibration_reference() {
    let policy = live_policy();
    let mut w = World::good();
    w.evidence
        .as_mut()
        .unwrap()
        .calibration
        .as_mut()
        .unwrap()
        .shift_score = 0.7; // degrade
    w.recalibration = Some("JIRA-42".into());
    let d = w.decide(Target::Paper, &policy);
    assert_eq!(gate(&d, "gate7").status, GateStatus::Degrade);
    assert!(d.allowed);
    w.evidence
        .as_mut()
        .unwrap()
        .calibration
        .as_mut()
        .unwrap()
        .interval_width_ratio = 2.0; // abstain
    assert_eq!(
        gate(&w.decide(Target::Paper, &policy), "gate7").status,
        GateStatus::Abstain
    );
    w.evidence
        .as_mut()
        .unwrap()
        .calibration
        .as_mut()
        .unwrap()
        .shift_score = 0.99; // fail
    let d = w.decide(Target::Paper, &policy);
    assert_eq!(gate(&d, "gate7").status, GateStatus::Fail);
    assert!(!d.allowed);
}

#[test]
fn unusable_evidence_fails_closed() {
    let policy = live_policy();
    let w = World {
        evidence: Err("x.json: manifest_hash is ... changed after it was sealed".into()),
        ..World::good()
    };
    let d = w.decide(Target::Paper, &policy);
    assert!(!d.allowed);
    for id in ["gate1", "gate2", "gate6", "gate7"] {
        let g = gate(&d, id);
        assert_eq!(g.status, GateStatus::Fail, "{id}");
        assert!(
            g.reasons[0].message.contains("changed after it was sealed"),
            "{id}"
        );
    }
    assert!(d.missing.contains(&"evidence".to_string()));
}

/// Every combination of the evidence-family switches, for both targets: a family is required
/// exactly when it is checked — with nothing supplied, an enabled required gate fails on a
/// missing input, a disabled one is skipped and asks for nothing.
#[test]
fn switch_matrix_never_contradicts() {
    let families = [
        "gate0", "gate1", "gate2", "gate3", "gate4", "gate6", "gate7",
    ];
    for mask in 0u32..(1 << families.len()) {
        let mut policy = live_policy();
        let on = |i: usize| mask & (1 << i) != 0;
        policy.gate0_data_integrity.enabled = on(0);
        policy.gate1_statistics.enabled = on(1);
        policy.gate2_risk.enabled = on(2);
        policy.gate3_paper_trading.enabled = on(3);
        policy.gate4_operations.enabled = on(4);
        policy.gate6_janus_evidence.enabled = on(5);
        policy.gate7_calibration.enabled = on(6);
        for target in [Target::Paper, Target::Canary] {
            let nothing = World {
                evidence: Err("absent".into()),
                runtime: None,
                ops: None,
                approval: None,
                recalibration: None,
                now: now(),
            };
            let empty = nothing.decide(target, &policy);
            let full = World::good().decide(target, &policy);
            assert!(full.allowed, "mask {mask:b} {target:?}");
            for (i, id) in families.iter().enumerate() {
                let n: usize = id[4..].parse().unwrap();
                let g = gate(&empty, id);
                match (required(target, n), on(i)) {
                    (false, _) => assert_eq!(g.status, GateStatus::NotRequired),
                    (true, false) => {
                        assert_eq!(g.status, GateStatus::Skipped, "mask {mask:b} {id}");
                        assert_eq!(gate(&full, id).status, GateStatus::Skipped);
                    }
                    (true, true) => {
                        assert_eq!(g.status, GateStatus::Fail, "mask {mask:b} {id}");
                        assert!(
                            g.reasons.iter().all(|r| r.code.starts_with("missing_")),
                            "{id}: {:?}",
                            g.reasons
                        );
                    }
                }
            }
            // What is reported missing is exactly what an enabled, required family reads.
            let wants = |input: &str| match input {
                "runtime_stats" => required(target, 0) && on(0),
                "paper_runtime_stats" => required(target, 3) && on(3),
                "operations" => required(target, 4) && on(4),
                "approval" => target == Target::Canary,
                "evidence" => on(1) || on(2) || on(5) || on(6),
                _ => unreachable!(),
            };
            for input in [
                "runtime_stats",
                "paper_runtime_stats",
                "operations",
                "approval",
                "evidence",
            ] {
                assert_eq!(
                    empty.missing.contains(&input.to_string()),
                    wants(input),
                    "mask {mask:b} {target:?} {input}: {:?}",
                    empty.missing
                );
            }
            assert!(
                !empty.allowed,
                "nothing supplied never passes (evidence is always needed)"
            );
        }
    }
}

fn passed(d: &Decision, id: &str) -> bool {
    gate(d, id).status == GateStatus::Pass
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Making any measured input worse never turns a failing gate into a passing one, and the
    /// same inputs always give the same decision.
    #[test]
    fn worse_inputs_never_pass_and_decisions_are_deterministic(
        mdd in 0.0f64..0.4, turnover in 0.0f64..12.0, cost in 0.0f64..50.0, ret in -0.1f64..0.2,
        lo in -0.5f64..0.5, p in 0.0f64..0.2, neg in 0.0f64..1.0, cv in 0.0f64..4.0,
        cov in 0.7f64..1.0, shift in 0.0f64..1.0, latency in 0.0f64..400.0, worsen in 0.0f64..1.0,
    ) {
        let build = |k: f64| {
            let mut w = World::good();
            let e = w.evidence.as_mut().unwrap();
            e.metrics.insert("mdd".into(), mdd + k * 0.1);
            e.metrics.insert("turnover".into(), turnover + k * 2.0);
            e.metrics.insert("cost_bps".into(), cost + k * 5.0);
            e.metrics.insert("total_return".into(), ret - k * 0.05);
            e.deltas.get_mut("sr").unwrap().ci_lower = lo - k * 0.2;
            e.deltas.get_mut("da").unwrap().p_value = p + k * 0.05;
            let wf = e.walk_forward.as_mut().unwrap();
            wf.negative_fold_ratio = Some((neg + k * 0.2).min(1.0));
            wf.fold_pnl_cv = Some(cv + k);
            let c = e.calibration.as_mut().unwrap();
            // Worse calibration: coverage further from the 0.90 target, on whichever side.
            c.observed_coverage = (0.9 + (cov - 0.9) * (1.0 + k) + if cov == 0.9 { -k * 0.05 } else { 0.0 }).clamp(0.0, 1.0);
            c.shift_score = (shift + k * 0.1).min(1.0);
            w.runtime.as_mut().unwrap().latency_p95_ms = Some(latency + k * 50.0);
            w
        };
        let policy = live_policy();
        let before = build(0.0).decide(Target::Canary, &policy);
        let after = build(worsen).decide(Target::Canary, &policy);
        prop_assert_eq!(&before, &build(0.0).decide(Target::Canary, &policy));
        for id in ["gate1", "gate2", "gate3", "gate7"] {
            prop_assert!(passed(&before, id) || !passed(&after, id), "{} turned from fail to pass", id);
        }
        prop_assert!(before.allowed || !after.allowed);
    }
}

#[test]
fn drills_older_than_72_hours_block_canary() {
    let policy = live_policy();
    let mut w = World::good();
    let drill = now();
    w.ops.as_mut().unwrap().rollback_drill_at = Some(drill);
    w.ops.as_mut().unwrap().kill_switch_drill_at = Some(drill);
    for (hours, allowed) in [(0, true), (71, true), (72, true), (73, false), (200, false)] {
        w.now = drill + Duration::hours(hours);
        // Keep the other time-based inputs fresh relative to the injected clock.
        let d = w.decide(Target::Canary, &policy);
        assert_eq!(d.allowed, allowed, "drill age {hours} h");
    }
}

fn allowed_decision(target: Target) -> Decision {
    World::good().decide(target, &live_policy())
}

#[test]
fn the_stage_machine_moves_one_step_at_a_time_on_allowed_decisions() {
    let t0 = now();
    let s = PromotionState::default();
    assert!(!s.runtime_flags().trading_enabled);

    // Canary straight from shadow is refused whatever the gates say.
    let skip = step(
        &s,
        Target::Canary,
        false,
        Some(&allowed_decision(Target::Canary)),
        "alice",
        t0,
    );
    assert_eq!(skip.phase, Phase::Blocked);
    assert!(skip.reasons[0].contains("one stage at a time"));

    // A blocked decision records the failing gates.
    let mut bad = World::good();
    bad.evidence
        .as_mut()
        .unwrap()
        .metrics
        .insert("mdd".into(), 0.5);
    let blocked = step(
        &s,
        Target::Paper,
        false,
        Some(&bad.decide(Target::Paper, &live_policy())),
        "alice",
        t0,
    );
    assert_eq!(blocked.phase, Phase::Blocked);
    assert!(
        blocked
            .reasons
            .iter()
            .any(|r| r.starts_with("gate2: max drawdown 0.5 exceeds 0.2")),
        "{:?}",
        blocked.reasons
    );
    assert!(blocked.history.is_empty());

    let paper = step(
        &s,
        Target::Paper,
        false,
        Some(&allowed_decision(Target::Paper)),
        "alice",
        t0,
    );
    assert_eq!((paper.stage, paper.phase), (Stage::Paper, Phase::Promoted));
    assert_eq!(paper.history.len(), 1);
    assert_eq!(paper.history[0].actor, "alice");
    assert!(paper.runtime_flags().trading_enabled);
    // Idempotent.
    assert_eq!(
        step(
            &paper,
            Target::Paper,
            false,
            Some(&allowed_decision(Target::Paper)),
            "bob",
            t0 + Duration::hours(1)
        ),
        paper
    );

    let canary = step(
        &paper,
        Target::Canary,
        false,
        Some(&allowed_decision(Target::Canary)),
        "alice",
        t0,
    );
    assert_eq!(
        (canary.stage, canary.phase),
        (Stage::Canary, Phase::Promoted)
    );

    // A decision made for another target does not count.
    let wrong = step(
        &paper,
        Target::Canary,
        false,
        Some(&allowed_decision(Target::Paper)),
        "alice",
        t0,
    );
    assert_eq!(wrong.phase, Phase::Blocked);

    // Rollback demotes one stage with its reason.
    let back = rollback(&canary, "latency regression", "oncall", t0).unwrap();
    assert_eq!((back.stage, back.phase), (Stage::Paper, Phase::RolledBack));
    assert_eq!(back.history.last().unwrap().reason, "latency regression");
    assert!(rollback(&PromotionState::default(), "x", "oncall", t0).is_err());
    assert!(rollback(&canary, " ", "oncall", t0).is_err());
}

#[test]
fn the_kill_switch_overrides_everything_and_clearing_it_does_not_re_promote() {
    let t0 = now();
    let paper = step(
        &PromotionState::default(),
        Target::Paper,
        false,
        Some(&allowed_decision(Target::Paper)),
        "alice",
        t0,
    );
    let canary = step(
        &paper,
        Target::Canary,
        false,
        Some(&allowed_decision(Target::Canary)),
        "alice",
        t0,
    );
    for state in [PromotionState::default(), paper.clone(), canary.clone()] {
        // Even with an allowed decision in hand.
        let halted = step(
            &state,
            Target::Canary,
            true,
            Some(&allowed_decision(Target::Canary)),
            "oncall",
            t0,
        );
        assert_eq!(halted.phase, Phase::Halted);
        assert_eq!(halted.stage, state.stage);
        let flags = halted.runtime_flags();
        assert!(!flags.trading_enabled && flags.force_fallback);
        assert_eq!(halted.history.last().unwrap().reason, "kill switch engaged");
        assert_eq!(halted.history.last().unwrap().actor, "oncall");
        // Engaging twice records once.
        assert_eq!(
            step(&halted, Target::Canary, true, None, "oncall", t0)
                .history
                .len(),
            halted.history.len()
        );
        // Cleared: still halted, trading still off.
        let cleared = step(
            &halted,
            Target::Canary,
            false,
            Some(&allowed_decision(Target::Canary)),
            "alice",
            t0,
        );
        assert_eq!(cleared.phase, Phase::Halted);
        assert!(!cleared.runtime_flags().trading_enabled);
        assert!(cleared.reasons[0].contains("needs a new promotion request"));
    }
}

/// The shipped policy has live trading off: good inputs reach paper, never canary, and the
/// refusal says why. (Every other test here runs `live_policy()`, the shipped one switched on.)
#[test]
fn the_shipped_policy_never_goes_live() {
    let shipped = GatePolicy::default();
    assert!(!shipped.gate5_live.live_enabled);
    assert!(World::good().decide(Target::Paper, &shipped).allowed);
    let canary = World::good().decide(Target::Canary, &shipped);
    assert!(!canary.allowed);
    let failed: Vec<&str> = canary.failed().map(|g| g.id.as_str()).collect();
    assert_eq!(failed, ["gate5"]);
    assert_eq!(gate(&canary, "gate5").reasons[0].code, "live_disabled");
}

#[test]
fn policies_are_validated_with_the_key_named() {
    let path = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/gate-policy.json"
    ));
    let shipped: GatePolicy = janus::config::load(path).unwrap();
    assert_eq!(shipped, GatePolicy::default());

    let text = std::fs::read_to_string(path).unwrap();
    let check = |t: String, needle: &str| {
        let err = janus::config::parse::<GatePolicy>(path, &t)
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{err}");
    };
    check(
        text.replace("\"janus-gate-policy-v1\"", "\"janus-gate-policy-v2\""),
        "key `schema_version`",
    );
    check(
        text.replace("\"max_null_rate\"", "\"max_nul_rate\""),
        "unknown field `max_nul_rate`",
    );
    check(
        text.replace("\"max_null_rate\": 0.01", "\"max_null_rate\": 1.5"),
        "key `gate0_data_integrity.max_null_rate`: must lie in [0, 1]",
    );
    check(
        text.replace("[0.6, 0.8, 0.95]", "[0.9, 0.8, 0.95]"),
        "key `gate7_calibration.shift`",
    );
    check(
        text.replace("\"gate5_live\": {\n    \"live_enabled\": false\n  },", ""),
        "missing field `gate5_live`",
    );
}

/// short-wipeout-nav-floor: a ruined book (NAV ≤ 0) is never a pass, whichever figure a gate
/// reads — even when every other number of the evidence is good, and even when only the
/// reason of a null metric or only the total return says so.
#[test]
fn ruin_fails_every_gate_that_reads_performance() {
    let policy = live_policy();
    let ruined = |edit: &dyn Fn(&mut EvidenceArtifact)| {
        let mut w = World::good();
        let e = w.evidence.as_mut().unwrap();
        edit(e);
        w.decide(Target::Paper, &policy)
    };
    type Edit = Box<dyn Fn(&mut EvidenceArtifact)>;
    let cases: [(&str, Edit); 3] = [
        (
            "ruin metric",
            Box::new(|e| {
                e.metrics.insert("ruin".into(), 1.0);
            }),
        ),
        (
            "total return below -100 %",
            Box::new(|e| {
                e.metrics.insert("total_return".into(), -2.2972);
            }),
        ),
        (
            "null reason",
            Box::new(|e| {
                e.metrics.remove("sr");
                e.null_reasons.insert(
                    "sr".into(),
                    "ruin: NAV fell to -1.297 (≤ 0) on return day 205".into(),
                );
            }),
        ),
    ];
    for (what, edit) in cases {
        let d = ruined(&*edit);
        assert!(!d.allowed, "{what}");
        for id in ["gate1", "gate2", "gate6"] {
            let g = gate(&d, id);
            assert_eq!(g.status, GateStatus::Fail, "{what}: {id}");
            assert!(
                g.reasons.iter().any(|r| r.code == "ruin"),
                "{what}: {id}: {:?}",
                g.reasons
            );
        }
    }
    // A baseline's ruin is the baseline's business, and a solvent book is not flagged.
    let mut w = World::good();
    w.evidence
        .as_mut()
        .unwrap()
        .null_reasons
        .insert("baseline.sr".into(), "ruin: NAV fell to -0.5".into());
    w.evidence
        .as_mut()
        .unwrap()
        .metrics
        .insert("ruin".into(), 0.0);
    assert!(w.decide(Target::Paper, &policy).allowed);
}
