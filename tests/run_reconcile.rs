//! The JanusRun reconcile as a plain function over the run and the Jobs the cluster shows —
//! the in-memory fake of the API is the map of observed Jobs: each transition, one step at a
//! time, no Job twice after a restart, refusal of spec changes, failures with their reasons —
//! and the leader-election decision.

mod common;

use chrono::Duration;
use common::{gate_now, janus_run};
use janus::contracts::Sha256Hex;
use janus::controller::jobs::{Step, job_name};
use janus::controller::run::{JobPhase, ObservedJob, RunInputs, RunPlan, reconcile};
use janus::crd::{ConditionStatus, JanusRun};
use janus::operator::lease::{LeaseAction, LeaseView, decide};
use std::collections::BTreeMap;

type Jobs = BTreeMap<&'static str, ObservedJob>;

fn sha(s: &str) -> Sha256Hex {
    Sha256Hex::of_bytes(s.as_bytes())
}

fn result(step: Step) -> String {
    match step {
        Step::Label => serde_json::json!({"event_car_manifest_hash": sha("ec"), "dataset_snapshot_hash": sha("ds")}),
        Step::Sft => serde_json::json!({"stage": "sft", "model_sha256": sha("sft")}),
        Step::Grpo => serde_json::json!({"stage": "grpo", "model_sha256": sha("grpo"), "onnx_sha256": sha("onnx")}),
        Step::Evaluate => serde_json::json!({"evidence_manifest_hash": sha("ev"), "reward_manifest_hash": sha("rw")}),
        Step::Replay => serde_json::json!({"matched": true, "evidence_manifest_hash": sha("ev2")}),
    }
    .to_string()
}

fn done(step: Step) -> ObservedJob {
    ObservedJob {
        phase: JobPhase::Succeeded,
        termination_message: Some(result(step)),
        ..Default::default()
    }
}

fn running() -> ObservedJob {
    ObservedJob::default()
}

fn run() -> JanusRun {
    janus_run("r1", sha("dataset"), None)
}

fn reconcile_with(run: &JanusRun, jobs: &Jobs) -> RunPlan {
    reconcile(&RunInputs {
        run,
        jobs,
        now: gate_now(),
    })
}

/// Applies a plan the way the glue does: the Job it starts appears, the status is written.
fn apply(run: &mut JanusRun, jobs: &mut Jobs, plan: &RunPlan) {
    if let Some(step) = plan.start {
        jobs.insert(step.name(), running());
    }
    run.status = Some(plan.status.clone());
}

fn condition(plan: &RunPlan, t: &str) -> Option<(ConditionStatus, String)> {
    plan.status
        .conditions
        .0
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| (c.status, c.message.clone()))
}

#[test]
fn steps_run_one_at_a_time_in_order_and_end_with_a_candidate() {
    let mut run = run();
    let mut jobs = Jobs::new();
    for step in Step::ALL {
        let plan = reconcile_with(&run, &jobs);
        assert_eq!(plan.start, Some(step), "{plan:#?}");
        assert_eq!(plan.status.phase.as_deref(), Some("Running"));
        assert_eq!(plan.status.current_step.as_deref(), Some(step.name()));
        assert!(plan.candidate.is_none());
        apply(&mut run, &mut jobs, &plan);
        // While the step runs, nothing else starts, however often it is reconciled.
        let again = reconcile_with(&run, &jobs);
        assert_eq!(again.start, None);
        assert_eq!(again.status.steps, plan.status.steps);
        jobs.insert(step.name(), done(step));
    }
    let plan = reconcile_with(&run, &jobs);
    assert_eq!(plan.start, None);
    assert_eq!(plan.status.phase.as_deref(), Some("Succeeded"));
    let (name, spec) = plan.candidate.clone().expect("candidate");
    assert_eq!(name, "r1-candidate");
    assert_eq!(spec.run_ref, "r1");
    assert_eq!(spec.model.sha256, sha("onnx"));
    assert_eq!(spec.model.uri, "runs/r1/models/grpo/model.onnx");
    let lineage = plan.status.lineage.clone().unwrap();
    assert_eq!(lineage.event_car_manifest_hash, Some(sha("ec")));
    assert_eq!(lineage.dataset_snapshot_hash, Some(sha("ds")));
    assert_eq!(lineage.evidence_manifest_hash, Some(sha("ev")));
    assert_eq!(lineage.reward_manifest_hash, Some(sha("rw")));
    assert!(lineage.run_config_hash.is_some());
    assert_eq!(spec.lineage, lineage);
    assert_eq!(plan.status.candidate.as_deref(), Some("r1-candidate"));
    assert_eq!(
        condition(&plan, "Succeeded").map(|c| c.0),
        Some(ConditionStatus::True)
    );
    for s in &plan.status.steps {
        assert_eq!(s.phase, "Succeeded", "{s:?}");
        assert!(s.result_digest.is_some());
    }
    // Idempotent: the finished run asks for nothing new and its status does not churn.
    apply(&mut run, &mut jobs, &plan);
    let again = reconcile_with(&run, &jobs);
    assert_eq!(again.start, None);
    assert_eq!(again.status, plan.status);
    assert!(again.events.is_empty(), "{:?}", again.events);
}

#[test]
fn a_restart_after_creating_a_job_but_before_recording_it_does_not_create_another() {
    // The operator created the label Job and died before writing the status.
    let run = run();
    let mut jobs = Jobs::new();
    jobs.insert("label", running());
    let plan = reconcile_with(&run, &jobs);
    assert_eq!(plan.start, None, "the existing Job is the step");
    assert_eq!(plan.status.steps[0].job, job_name("r1", Step::Label));
    assert_eq!(plan.status.steps[0].phase, "Running");
    // And when it finished meanwhile, the next step starts — once.
    jobs.insert("label", done(Step::Label));
    let plan = reconcile_with(&run, &jobs);
    assert_eq!(plan.start, Some(Step::Sft));
}

#[test]
fn a_recorded_step_whose_job_disappeared_fails_the_run_instead_of_running_again() {
    let mut run = run();
    let mut jobs = Jobs::new();
    let plan = reconcile_with(&run, &jobs);
    apply(&mut run, &mut jobs, &plan);
    jobs.clear(); // deleted by someone while it ran
    let plan = reconcile_with(&run, &jobs);
    assert_eq!(plan.start, None);
    assert_eq!(plan.status.phase.as_deref(), Some("Failed"));
    let (status, message) = condition(&plan, "Succeeded").unwrap();
    assert_eq!(status, ConditionStatus::False);
    assert!(message.contains("disappeared"), "{message}");
}

#[test]
fn a_failed_step_fails_the_run_with_its_reason_and_nothing_more_starts() {
    let mut run = run();
    let mut jobs = Jobs::new();
    let plan = reconcile_with(&run, &jobs);
    apply(&mut run, &mut jobs, &plan);
    jobs.insert(
        "label",
        ObservedJob {
            phase: JobPhase::Failed,
            termination_message: Some("refusing to label a different dataset".into()),
            failure_reason: Some(
                "BackoffLimitExceeded: Job has reached the specified backoff limit".into(),
            ),
            ..Default::default()
        },
    );
    let plan = reconcile_with(&run, &jobs);
    assert_eq!(plan.start, None);
    assert_eq!(plan.status.phase.as_deref(), Some("Failed"));
    let (_, message) = condition(&plan, "Succeeded").unwrap();
    assert!(message.contains("step label failed"), "{message}");
    assert!(message.contains("refusing to label a different dataset"));
    assert!(message.contains("BackoffLimitExceeded"));
    assert!(
        plan.events
            .iter()
            .any(|(r, _, warning)| r == "RunFailed" && *warning)
    );
    apply(&mut run, &mut jobs, &plan);
    assert_eq!(reconcile_with(&run, &jobs).start, None);
}

#[test]
fn a_success_without_a_usable_result_is_a_failure() {
    for (message, expect) in [
        (None, "without a result"),
        (Some("not json".to_string()), "unreadable result"),
        (
            Some(r#"{"model_sha256": "x"}"#.to_string()),
            "unreadable result",
        ),
        (
            Some(r#"{"dataset_snapshot_hash": null}"#.to_string()),
            "lacks `event_car_manifest_hash`",
        ),
    ] {
        let mut run = run();
        let mut jobs = Jobs::new();
        let plan = reconcile_with(&run, &jobs);
        apply(&mut run, &mut jobs, &plan);
        jobs.insert(
            "label",
            ObservedJob {
                phase: JobPhase::Succeeded,
                termination_message: message.clone(),
                ..Default::default()
            },
        );
        let plan = reconcile_with(&run, &jobs);
        assert_eq!(plan.status.phase.as_deref(), Some("Failed"), "{message:?}");
        let (_, why) = condition(&plan, "Succeeded").unwrap();
        assert!(why.contains(expect), "{message:?}: {why}");
    }
}

#[test]
fn a_replay_that_does_not_match_fails_the_run() {
    let mut run = run();
    let mut jobs = Jobs::new();
    for step in Step::ALL {
        let plan = reconcile_with(&run, &jobs);
        apply(&mut run, &mut jobs, &plan);
        jobs.insert(step.name(), done(step));
    }
    jobs.insert(
        "replay",
        ObservedJob {
            phase: JobPhase::Succeeded,
            termination_message: Some(r#"{"matched": false}"#.into()),
            ..Default::default()
        },
    );
    let plan = reconcile_with(&run, &jobs);
    assert_eq!(plan.status.phase.as_deref(), Some("Failed"));
    assert!(plan.candidate.is_none());
}

#[test]
fn without_replay_the_run_ends_after_evaluate() {
    let mut run = run();
    run.spec.replay = false;
    let mut jobs = Jobs::new();
    for step in [Step::Label, Step::Sft, Step::Grpo, Step::Evaluate] {
        let plan = reconcile_with(&run, &jobs);
        assert_eq!(plan.start, Some(step));
        apply(&mut run, &mut jobs, &plan);
        jobs.insert(step.name(), done(step));
    }
    let plan = reconcile_with(&run, &jobs);
    assert_eq!(plan.status.phase.as_deref(), Some("Succeeded"));
    assert_eq!(plan.status.steps.len(), 4);
    assert!(plan.candidate.is_some());
}

#[test]
fn changing_the_inputs_of_a_started_run_is_refused_until_reverted() {
    let mut run = run();
    let mut jobs = Jobs::new();
    let plan = reconcile_with(&run, &jobs);
    apply(&mut run, &mut jobs, &plan);
    jobs.insert("label", done(Step::Label));
    let original = run.spec.clone();
    run.spec.training.sft.seed += 1;
    run.metadata.generation = Some(2);
    let plan = reconcile_with(&run, &jobs);
    assert_eq!(plan.start, None, "nothing starts under changed inputs");
    let (status, message) = condition(&plan, "SpecChangeRefused").unwrap();
    assert_eq!(status, ConditionStatus::True);
    assert!(message.contains("create a new JanusRun"), "{message}");
    // The recorded inputs stay what the run started with.
    assert_eq!(
        plan.status.lineage.as_ref().unwrap().run_config_hash,
        run.status
            .as_ref()
            .unwrap()
            .lineage
            .as_ref()
            .unwrap()
            .run_config_hash
    );
    apply(&mut run, &mut jobs, &plan);
    // Reverted: the run goes on.
    run.spec = original;
    let plan = reconcile_with(&run, &jobs);
    assert_eq!(plan.start, Some(Step::Sft));
    assert_eq!(
        condition(&plan, "SpecChangeRefused").map(|c| c.0),
        Some(ConditionStatus::False)
    );
}

#[test]
fn a_spec_change_before_anything_started_is_simply_the_new_spec() {
    let mut run = run();
    run.spec.training.sft.seed += 1;
    let plan = reconcile_with(&run, &Jobs::new());
    assert_eq!(plan.start, Some(Step::Label));
    assert!(condition(&plan, "SpecChangeRefused").is_none());
}

// ---------- leader election ----------

#[test]
fn the_lease_goes_to_one_holder_and_passes_on_only_when_it_lapses_or_is_released() {
    let now = gate_now();
    let lease = |holder: Option<&str>, age_s: i64| LeaseView {
        holder: holder.map(str::to_string),
        renewed_at: Some(now - Duration::seconds(age_s)),
        duration: Duration::seconds(15),
    };
    assert_eq!(decide(None, "a", now), LeaseAction::Create);
    assert_eq!(
        decide(Some(&lease(Some("a"), 3)), "a", now),
        LeaseAction::Renew
    );
    assert_eq!(
        decide(Some(&lease(Some("a"), 30)), "a", now),
        LeaseAction::Renew
    );
    assert_eq!(
        decide(Some(&lease(Some("b"), 3)), "a", now),
        LeaseAction::StandBy
    );
    assert_eq!(
        decide(Some(&lease(Some("b"), 14)), "a", now),
        LeaseAction::StandBy
    );
    assert_eq!(
        decide(Some(&lease(Some("b"), 16)), "a", now),
        LeaseAction::TakeOver
    );
    assert_eq!(
        decide(Some(&lease(None, 1)), "a", now),
        LeaseAction::TakeOver
    );
    assert_eq!(
        decide(Some(&lease(Some(""), 1)), "a", now),
        LeaseAction::TakeOver
    );
    let never_renewed = LeaseView {
        holder: Some("b".into()),
        renewed_at: None,
        duration: Duration::seconds(15),
    };
    assert_eq!(
        decide(Some(&never_renewed), "a", now),
        LeaseAction::TakeOver
    );
}
