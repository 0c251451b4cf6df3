//! The JanusRun reconcile as a plain function over the run and the Jobs the cluster shows —
//! the in-memory fake of the API is the map of observed Jobs: each transition, one step at a
//! time, no Job twice after a restart, refusal of spec changes, failures with their reasons —
//! and the leader-election decision.

mod common;

use chrono::Duration;
use common::{gate_now, janus_run};
use janus::contracts::Sha256Hex;
use janus::controller::jobs::{Step, job_name};
use janus::controller::run::{
    ChildKind, JobPhase, ObservedChild, ObservedJob, RunInputs, RunPlan, controller_uid, owned_by,
    reconcile,
};
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

/// The UID of the run under test (`common::janus_run`), which its own Jobs carry.
const UID: &str = "0b1f-uid";

/// A Job of the run under test.
fn ours(job: ObservedJob) -> ObservedJob {
    ObservedJob {
        owner_uid: Some(UID.into()),
        ..job
    }
}

fn done(step: Step) -> ObservedJob {
    ours(ObservedJob {
        phase: JobPhase::Succeeded,
        termination_message: Some(result(step)),
        ..Default::default()
    })
}

fn running() -> ObservedJob {
    ours(ObservedJob::default())
}

fn run() -> JanusRun {
    janus_run("r1", sha("dataset"), None)
}

fn reconcile_with(run: &JanusRun, jobs: &Jobs) -> RunPlan {
    reconcile(&RunInputs {
        run,
        jobs,
        children: &[],
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
        assert_eq!(plan.status.phase.map(|p| p.as_str()), Some("Running"));
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
    assert_eq!(plan.status.phase.map(|p| p.as_str()), Some("Succeeded"));
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
    assert_eq!(plan.status.phase.map(|p| p.as_str()), Some("Failed"));
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
        ours(ObservedJob {
            phase: JobPhase::Failed,
            termination_message: Some("refusing to label a different dataset".into()),
            failure_reason: Some(
                "BackoffLimitExceeded: Job has reached the specified backoff limit".into(),
            ),
            ..Default::default()
        }),
    );
    let plan = reconcile_with(&run, &jobs);
    assert_eq!(plan.start, None);
    assert_eq!(plan.status.phase.map(|p| p.as_str()), Some("Failed"));
    let (_, message) = condition(&plan, "Succeeded").unwrap();
    assert!(message.contains("step label failed"), "{message}");
    assert!(message.contains("refusing to label a different dataset"));
    assert!(message.contains("BackoffLimitExceeded"));
    assert!(
        plan.events
            .iter()
            .any(|e| e.reason.as_str() == "RunFailed" && e.warning)
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
            ours(ObservedJob {
                phase: JobPhase::Succeeded,
                termination_message: message.clone(),
                ..Default::default()
            }),
        );
        let plan = reconcile_with(&run, &jobs);
        assert_eq!(
            plan.status.phase.map(|p| p.as_str()),
            Some("Failed"),
            "{message:?}"
        );
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
        ours(ObservedJob {
            phase: JobPhase::Succeeded,
            termination_message: Some(r#"{"matched": false}"#.into()),
            ..Default::default()
        }),
    );
    let plan = reconcile_with(&run, &jobs);
    assert_eq!(plan.status.phase.map(|p| p.as_str()), Some("Failed"));
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
    assert_eq!(plan.status.phase.map(|p| p.as_str()), Some("Succeeded"));
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

// ---------- ownership by UID ----------

/// The UID of a deleted run of the same name, whose children garbage collection has not
/// removed yet.
const OLD_UID: &str = "9a9a-previous-uid";

fn theirs(job: ObservedJob, owner: Option<&str>) -> ObservedJob {
    ObservedJob {
        owner_uid: owner.map(str::to_string),
        ..job
    }
}

fn child(kind: ChildKind, name: &str, owner: Option<&str>) -> ObservedChild {
    ObservedChild {
        kind,
        name: name.into(),
        owner_uid: owner.map(str::to_string),
    }
}

fn reconcile_among(run: &JanusRun, jobs: &Jobs, children: &[ObservedChild]) -> RunPlan {
    reconcile(&RunInputs {
        run,
        jobs,
        children,
        now: gate_now(),
    })
}

#[test]
fn a_recreated_run_never_adopts_its_predecessors_jobs_and_starts_once_they_are_gone() {
    // The predecessor finished every step; its Jobs are still there, under the same names.
    let mut run = run();
    let mut jobs = Jobs::new();
    for step in Step::ALL {
        let mut job = theirs(done(step), Some(OLD_UID));
        job.started_at = Some("2026-11-27T08:00:00Z".into());
        jobs.insert(step.name(), job);
    }
    let plan = reconcile_among(&run, &jobs, &[]);
    assert!(plan.waiting);
    assert_eq!(plan.start, None);
    assert!(plan.candidate.is_none(), "never the predecessor's model");
    assert_eq!(plan.status.phase.map(|p| p.as_str()), Some("Pending"));
    assert_eq!(plan.status.candidate, None);
    for s in &plan.status.steps {
        assert_eq!(s.phase, "Pending", "{s:?}");
        assert!(s.job.is_empty() && s.started_at.is_none(), "{s:?}");
    }
    let (status, message) = condition(&plan, "PreviousChildren").expect("condition");
    assert_eq!(status, ConditionStatus::True);
    assert!(
        message.contains("Job r1-label (owned by uid 9a9a-previous-uid)"),
        "{message}"
    );
    assert!(message.contains("Job r1-replay"), "{message}");
    assert!(message.contains("0b1f-uid"), "{message}");
    let reason = plan
        .status
        .conditions
        .0
        .iter()
        .find(|c| c.type_ == "PreviousChildren")
        .map(|c| c.reason.clone());
    assert_eq!(reason.as_deref(), Some("WaitingForPreviousChildren"));
    assert_eq!(
        plan.events
            .iter()
            .filter(|e| e.reason.as_str() == "WaitingForPreviousChildren")
            .count(),
        1
    );
    apply(&mut run, &mut jobs, &plan);
    // Still there on the next look: no new event, still nothing started.
    let again = reconcile_among(&run, &jobs, &[]);
    assert!(again.waiting && again.start.is_none());
    assert!(again.events.is_empty(), "{:?}", again.events);
    // Garbage collection removes some: still waiting for the rest.
    for step in [Step::Label, Step::Sft, Step::Grpo, Step::Evaluate] {
        jobs.remove(step.name());
    }
    let plan = reconcile_among(&run, &jobs, &[]);
    assert!(plan.waiting && plan.start.is_none());
    let (_, message) = condition(&plan, "PreviousChildren").unwrap();
    assert!(
        !message.contains("r1-label") && message.contains("r1-replay"),
        "{message}"
    );
    apply(&mut run, &mut jobs, &plan);
    // All gone: the run starts at its first step, as itself.
    jobs.clear();
    let plan = reconcile_among(&run, &jobs, &[]);
    assert!(!plan.waiting);
    assert_eq!(plan.start, Some(Step::Label));
    let (status, _) = condition(&plan, "PreviousChildren").unwrap();
    assert_eq!(status, ConditionStatus::False);
    assert_eq!(
        plan.status.steps[0].started_at.as_deref(),
        Some("2026-11-28T12:00:00Z")
    );
}

#[test]
fn a_job_without_an_owner_or_of_a_stranger_is_never_adopted() {
    for owner in [None, Some("someone-else")] {
        let run = run();
        let mut jobs = Jobs::new();
        jobs.insert("label", theirs(done(Step::Label), owner));
        let plan = reconcile_among(&run, &jobs, &[]);
        assert!(plan.waiting, "{owner:?}");
        assert_eq!(plan.start, None);
        assert_eq!(plan.status.steps[0].phase, "Pending");
        let (_, message) = condition(&plan, "PreviousChildren").unwrap();
        let expect = match owner {
            None => "Job r1-label (no controller owner)".to_string(),
            Some(o) => format!("Job r1-label (owned by uid {o})"),
        };
        assert!(message.contains(&expect), "{message}");
    }
}

#[test]
fn a_run_under_way_waits_for_a_foreign_job_under_its_next_steps_name_instead_of_failing() {
    let mut run = run();
    let mut jobs = Jobs::new();
    let plan = reconcile_among(&run, &jobs, &[]);
    apply(&mut run, &mut jobs, &plan);
    jobs.insert("label", done(Step::Label));
    jobs.insert("sft", theirs(running(), Some(OLD_UID)));
    let plan = reconcile_among(&run, &jobs, &[]);
    assert!(plan.waiting);
    assert_eq!(plan.start, None);
    assert_eq!(plan.status.phase.map(|p| p.as_str()), Some("Running"));
    assert_eq!(
        plan.status.steps[0].phase, "Succeeded",
        "its own step still counts"
    );
    assert_eq!(plan.status.steps[1].phase, "Pending");
    assert!(plan.status.steps[1].job.is_empty());
    apply(&mut run, &mut jobs, &plan);
    jobs.remove("sft");
    let plan = reconcile_among(&run, &jobs, &[]);
    assert_eq!(plan.start, Some(Step::Sft));
}

#[test]
fn a_config_map_of_another_object_holds_back_the_first_step() {
    let run = run();
    let plan = reconcile_among(
        &run,
        &Jobs::new(),
        &[child(ChildKind::ConfigMap, "r1-config", Some(OLD_UID))],
    );
    assert!(plan.waiting);
    assert_eq!(plan.start, None);
    let (_, message) = condition(&plan, "PreviousChildren").unwrap();
    assert!(message.contains("ConfigMap r1-config (owned by uid 9a9a-previous-uid)"));
    // Its own ConfigMap is no obstacle.
    let plan = reconcile_among(
        &run,
        &Jobs::new(),
        &[child(ChildKind::ConfigMap, "r1-config", Some(UID))],
    );
    assert_eq!(plan.start, Some(Step::Label));
    assert!(condition(&plan, "PreviousChildren").is_none());
}

#[test]
fn a_candidate_of_another_object_is_never_overwritten() {
    // The steps run meanwhile (the candidate is written only at the end), every one of them.
    let foreign = [child(
        ChildKind::JanusCandidate,
        "r1-candidate",
        Some(OLD_UID),
    )];
    let mut run = run();
    let mut jobs = Jobs::new();
    for step in Step::ALL {
        let plan = reconcile_among(&run, &jobs, &foreign);
        assert_eq!(plan.start, Some(step), "{plan:#?}");
        assert!(plan.waiting);
        apply(&mut run, &mut jobs, &plan);
        jobs.insert(step.name(), done(step));
    }
    let plan = reconcile_among(&run, &jobs, &foreign);
    assert!(plan.waiting);
    assert!(plan.candidate.is_none());
    assert_ne!(plan.status.phase.map(|p| p.as_str()), Some("Succeeded"));
    assert_eq!(plan.status.candidate, None);
    let (_, message) = condition(&plan, "PreviousChildren").unwrap();
    assert!(message.contains("JanusCandidate r1-candidate"), "{message}");
    apply(&mut run, &mut jobs, &plan);
    // Gone: the run writes its own candidate and succeeds.
    let plan = reconcile_among(&run, &jobs, &[]);
    assert_eq!(plan.status.phase.map(|p| p.as_str()), Some("Succeeded"));
    assert_eq!(
        plan.candidate.expect("candidate").1.model.sha256,
        sha("onnx")
    );
    // Its own candidate, found on a later look, is no obstacle either.
    let plan = reconcile_among(
        &run,
        &jobs,
        &[child(ChildKind::JanusCandidate, "r1-candidate", Some(UID))],
    );
    assert!(!plan.waiting);
    assert_eq!(plan.status.phase.map(|p| p.as_str()), Some("Succeeded"));
}

#[test]
fn the_owner_is_the_controller_reference_and_needs_a_uid_on_both_sides() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    let reference = |uid: &str, controller: Option<bool>| OwnerReference {
        api_version: "janus.torghut.io/v1alpha1".into(),
        kind: "JanusRun".into(),
        name: "r1".into(),
        uid: uid.into(),
        controller,
        block_owner_deletion: None,
    };
    assert_eq!(controller_uid(None), None);
    assert_eq!(controller_uid(Some(&[reference("a", None)])), None);
    assert_eq!(
        controller_uid(Some(&[
            reference("a", Some(false)),
            reference("b", Some(true))
        ])),
        Some("b".into())
    );
    assert!(owned_by(Some("b"), Some("b")));
    assert!(!owned_by(Some("b"), Some("a")));
    assert!(!owned_by(Some("b"), None));
    assert!(!owned_by(None, None));
    assert!(!owned_by(Some(""), Some("")));
}

// ---------- leader election ----------

#[test]
fn the_lease_goes_to_one_holder_and_passes_on_only_when_it_lapses_or_is_released() {
    let now = gate_now();
    // The holder's renewal time as it wrote it: deliberately far from `now`, in both
    // directions, since a lease's lapse is judged only by how long it looked unchanged here.
    let lease = |holder: Option<&str>, renewed_offset_s: i64| LeaseView {
        holder: holder.map(str::to_string),
        renewed_at: Some(now + Duration::seconds(renewed_offset_s)),
        duration: Duration::seconds(15),
    };
    let secs = std::time::Duration::from_secs;
    assert_eq!(decide(None, "a", secs(0)), LeaseAction::Create);
    assert_eq!(
        decide(Some(&lease(Some("a"), -3)), "a", secs(3)),
        LeaseAction::Renew
    );
    assert_eq!(
        decide(Some(&lease(Some("a"), -30)), "a", secs(30)),
        LeaseAction::Renew
    );
    assert_eq!(
        decide(Some(&lease(Some("b"), -3)), "a", secs(3)),
        LeaseAction::StandBy
    );
    assert_eq!(
        decide(Some(&lease(Some("b"), -14)), "a", secs(14)),
        LeaseAction::StandBy
    );
    assert_eq!(
        decide(Some(&lease(Some("b"), -16)), "a", secs(16)),
        LeaseAction::TakeOver
    );
    assert_eq!(
        decide(Some(&lease(None, -1)), "a", secs(0)),
        LeaseAction::TakeOver
    );
    assert_eq!(
        decide(Some(&lease(Some(""), -1)), "a", secs(0)),
        LeaseAction::TakeOver
    );
    // Clock skew: a standby whose clock runs 20 s ahead (the holder's fresh renewal looks 20 s
    // old by this machine's clock) still stands by while the lease keeps changing.
    assert_eq!(
        decide(Some(&lease(Some("b"), -20)), "a", secs(0)),
        LeaseAction::StandBy
    );
    // And one whose clock runs behind does not wait forever for a holder that is gone.
    assert_eq!(
        decide(Some(&lease(Some("b"), 3600)), "a", secs(15)),
        LeaseAction::TakeOver
    );
    let never_renewed = LeaseView {
        holder: Some("b".into()),
        renewed_at: None,
        duration: Duration::seconds(15),
    };
    assert_eq!(
        decide(Some(&never_renewed), "a", secs(1)),
        LeaseAction::StandBy
    );
    assert_eq!(
        decide(Some(&never_renewed), "a", secs(15)),
        LeaseAction::TakeOver
    );
}
