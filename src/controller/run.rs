//! What a JanusRun's reconcile decides, as a plain function: from the run and the step Jobs
//! observed in the cluster, its status, the one step Job to create next (if any), the
//! JanusCandidate to create at the end, and the events of the transitions.
//!
//! Three rules keep a run honest:
//! - a step starts only once: a step whose Job the status records but the cluster no longer
//!   has fails the run rather than run again;
//! - the inputs are locked when the first step starts (the run config hash is recorded); a
//!   changed spec is refused with the `SpecChangeRefused` condition and nothing more starts;
//! - a step succeeds only with a readable result (termination message) carrying the digest the
//!   next steps and the candidate rely on;
//! - children are the run's by UID: a Job, the config ConfigMap or the candidate counts as the
//!   run's only when its controller owner reference carries the run's UID. One under the run's
//!   name that belongs to anything else (a deleted run of the same name whose children garbage
//!   collection has not removed yet, or a hand-made object) is never adopted nor overwritten:
//!   the run waits, with the `PreviousChildren` condition naming it, until it is gone.

use super::jobs::{Step, job_name, run_config_hash};
use crate::contracts::Sha256Hex;
use crate::crd::{
    ConditionStatus, ConditionType, JanusCandidateSpec, JanusRun, JanusRunStatus, ModelFormat,
    ModelRef, Reason, RunLineage, RunPhase, StatusEvent, StepRecord,
};
use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde::Deserialize;
use std::collections::BTreeMap;

/// A step Job as the cluster shows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObservedJob {
    pub phase: JobPhase,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// The step container's termination message (its compact result, or the log tail of a
    /// failure).
    pub termination_message: Option<String>,
    /// Kubernetes' own reason for a failed Job (e.g. `DeadlineExceeded`).
    pub failure_reason: Option<String>,
    /// The UID in the Job's controller owner reference (see [`controller_uid`]); the Job is the
    /// run's only when it is the run's UID.
    pub owner_uid: Option<String>,
}

/// The children of a run other than its Jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildKind {
    /// `<run>-config`, the step configurations the Jobs mount.
    ConfigMap,
    /// `<run>-candidate`, written when every step succeeded.
    JanusCandidate,
}

impl ChildKind {
    /// The kind as Kubernetes names it.
    pub fn name(self) -> &'static str {
        match self {
            ChildKind::ConfigMap => "ConfigMap",
            ChildKind::JanusCandidate => "JanusCandidate",
        }
    }
}

/// A child of a run other than its Jobs, as found under the name the run would give it.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedChild {
    pub kind: ChildKind,
    pub name: String,
    /// The UID in its controller owner reference.
    pub owner_uid: Option<String>,
}

/// The UID of an object's controller owner reference, if it has one.
pub fn controller_uid(owner_references: Option<&[OwnerReference]>) -> Option<String> {
    owner_references?
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.clone())
}

/// Whether a child whose controller owner carries `owner_uid` belongs to the run with `run_uid`.
/// Without a UID on either side, nothing belongs.
pub fn owned_by(run_uid: Option<&str>, owner_uid: Option<&str>) -> bool {
    matches!((run_uid, owner_uid), (Some(r), Some(o)) if !r.is_empty() && r == o)
}

/// What stands under the run's names but is not the run's: "Job r1-label (owner uid …)", in
/// step order, then the other children. Empty when nothing is in the way.
pub fn previous_children(
    run_uid: Option<&str>,
    jobs: &BTreeMap<&'static str, ObservedJob>,
    children: &[ObservedChild],
    run_name: &str,
) -> Vec<String> {
    let describe = |kind: &str, name: &str, owner: Option<&str>| match owner {
        Some(uid) => format!("{kind} {name} (owned by uid {uid})"),
        None => format!("{kind} {name} (no controller owner)"),
    };
    let mut found: Vec<String> = Step::ALL
        .iter()
        .filter_map(|step| {
            let job = jobs.get(step.name())?;
            (!owned_by(run_uid, job.owner_uid.as_deref()))
                .then(|| describe("Job", &job_name(run_name, *step), job.owner_uid.as_deref()))
        })
        .collect();
    found.extend(
        children
            .iter()
            .filter(|c| !owned_by(run_uid, c.owner_uid.as_deref()))
            .map(|c| describe(c.kind.name(), &c.name, c.owner_uid.as_deref())),
    );
    found
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JobPhase {
    #[default]
    Running,
    Succeeded,
    Failed,
}

/// The compact result a step writes to its termination message. Every field is optional and
/// unknown fields are ignored, so an external trainer's result reads as long as it carries the
/// digests its step must give (docs/trainer-contract.md).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct StepResult {
    pub dataset_snapshot_hash: Option<Sha256Hex>,
    pub event_car_manifest_hash: Option<Sha256Hex>,
    pub model_sha256: Option<Sha256Hex>,
    pub onnx_sha256: Option<Sha256Hex>,
    pub reward_manifest_hash: Option<Sha256Hex>,
    pub evidence_manifest_hash: Option<Sha256Hex>,
    pub matched: Option<bool>,
}

/// The run's working directory on the artifacts volume, relative to its root.
pub fn run_dir(run: &str) -> String {
    format!("runs/{run}")
}

/// Where the evaluate step leaves the evidence (relative to the artifacts root).
pub fn evidence_path(run: &str) -> String {
    format!("{}/evaluation/evidence.json", run_dir(run))
}

/// Where the label step leaves the labelled events (relative to the artifacts root).
pub fn event_car_path(run: &str) -> String {
    format!("{}/event-car.json", run_dir(run))
}

/// Where the evaluate step leaves the rewards the evidence names (relative to the root).
pub fn rewards_path(run: &str) -> String {
    format!("{}/evaluation/reward.json", run_dir(run))
}

/// Where the GRPO step leaves the model the decision service runs (relative to the root).
pub fn model_path(run: &str) -> String {
    format!("{}/models/grpo/model.onnx", run_dir(run))
}

pub fn candidate_name(run: &str) -> String {
    super::jobs::bounded_name(run, "candidate")
}

pub struct RunInputs<'a> {
    pub run: &'a JanusRun,
    /// The Jobs found in the cluster under the run's step Job names, by step, whoever owns them.
    pub jobs: &'a BTreeMap<&'static str, ObservedJob>,
    /// The run's config ConfigMap and candidate, when found under their names, whoever owns them.
    pub children: &'a [ObservedChild],
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunPlan {
    pub status: JanusRunStatus,
    /// The step whose Job must be created now.
    pub start: Option<Step>,
    /// The candidate to create (name, spec), once every step succeeded.
    pub candidate: Option<(String, JanusCandidateSpec)>,
    /// Kubernetes Events of this reconcile's transitions.
    pub events: Vec<StatusEvent>,
    /// Children of another object stand under the run's names (see [`previous_children`]): no
    /// step starts while a Job or the ConfigMap is another's, no candidate is written while the
    /// candidate is another's; look again soon.
    pub waiting: bool,
}

/// The steps this run executes, in order.
pub fn steps(run: &JanusRun) -> Vec<Step> {
    Step::ALL
        .into_iter()
        .filter(|s| *s != Step::Replay || run.spec.replay)
        .collect()
}

fn parse_result(step: Step, message: Option<&str>) -> Result<StepResult, String> {
    let text = message
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            format!(
                "step {} succeeded without a result in its termination message",
                step.name()
            )
        })?;
    let result: StepResult = serde_json::from_str(text).map_err(|e| {
        format!(
            "step {} left an unreadable result ({e}): {}",
            step.name(),
            crate::text::bounded(text, 200)
        )
    })?;
    let need = |field: &str, present: bool| {
        if present {
            Ok(())
        } else {
            Err(format!("step {}'s result lacks `{field}`", step.name()))
        }
    };
    match step {
        Step::Label => need(
            "event_car_manifest_hash",
            result.event_car_manifest_hash.is_some(),
        )?,
        Step::Sft => need("model_sha256", result.model_sha256.is_some())?,
        Step::Grpo => need("onnx_sha256", result.onnx_sha256.is_some())?,
        Step::Evaluate => need(
            "evidence_manifest_hash",
            result.evidence_manifest_hash.is_some(),
        )?,
        Step::Replay => {
            need("matched", result.matched.is_some())?;
            if result.matched != Some(true) {
                return Err("the replay's evidence does not match the evaluation".into());
            }
        }
    }
    Ok(result)
}

/// The record of a step that has not started.
fn pending(step: Step) -> StepRecord {
    StepRecord {
        name: step.name().into(),
        job: String::new(),
        phase: RunPhase::Pending,
        started_at: None,
        finished_at: None,
        result_digest: None,
        message: None,
    }
}

/// One reconcile of a JanusRun.
pub fn reconcile(input: &RunInputs<'_>) -> RunPlan {
    let run = input.run;
    let name = run.metadata.name.as_deref().unwrap_or_default();
    let generation = run.metadata.generation;
    let previous = run.status.clone().unwrap_or_default();
    let mut status = previous.clone();
    let mut events = Vec::new();
    let now = input.now;
    let hash = run_config_hash(run);

    let started = previous.steps.iter().any(|s| !s.job.is_empty());
    let mut lineage = previous.lineage.clone().unwrap_or(RunLineage {
        dataset_snapshot_hash: None,
        event_car_manifest_hash: None,
        reward_manifest_hash: None,
        evidence_manifest_hash: None,
        run_config_hash: None,
        generation_code: None,
    });
    let locked = lineage.run_config_hash.clone();
    let refused = started && locked.as_ref().is_some_and(|h| *h != hash);
    if refused {
        status.conditions.set(
            ConditionType::SpecChangeRefused,
            ConditionStatus::True,
            Reason::InputsChanged,
            format!(
                "the spec changed after the run started (inputs {} recorded, now {hash}); \
                 nothing more starts — revert the change, or create a new JanusRun",
                locked.as_ref().map(|h| h.to_string()).unwrap_or_default()
            ),
            now,
            generation,
        );
    } else if status
        .conditions
        .get(ConditionType::SpecChangeRefused)
        .is_some()
    {
        status.conditions.set(
            ConditionType::SpecChangeRefused,
            ConditionStatus::False,
            Reason::InputsUnchanged,
            String::new(),
            now,
            generation,
        );
    }

    // Only the run's own children count; anything else under its names makes it wait.
    let uid = run.metadata.uid.as_deref();
    let owned: BTreeMap<&'static str, ObservedJob> = input
        .jobs
        .iter()
        .filter(|(_, j)| owned_by(uid, j.owner_uid.as_deref()))
        .map(|(k, j)| (*k, j.clone()))
        .collect();
    let in_the_way = previous_children(uid, input.jobs, input.children, name);
    let waiting = !in_the_way.is_empty();
    // A foreign Job or ConfigMap holds back every step; a foreign candidate only the candidate.
    let steps_blocked = input
        .jobs
        .values()
        .any(|j| !owned_by(uid, j.owner_uid.as_deref()))
        || input
            .children
            .iter()
            .any(|c| c.kind != ChildKind::JanusCandidate && !owned_by(uid, c.owner_uid.as_deref()));
    let was_waiting = previous.conditions.is_true(ConditionType::PreviousChildren);
    if waiting {
        let message = format!(
            "waiting for garbage collection to remove what another object left under this \
             run's names: {}; this run (uid {}) never adopts nor overwrites them",
            in_the_way.join(", "),
            uid.unwrap_or("none")
        );
        if !was_waiting {
            events.push(StatusEvent {
                reason: Reason::WaitingForPreviousChildren,
                message: message.clone(),
                warning: true,
            });
        }
        status.conditions.set(
            ConditionType::PreviousChildren,
            ConditionStatus::True,
            Reason::WaitingForPreviousChildren,
            message,
            now,
            generation,
        );
    } else if was_waiting {
        status.conditions.set(
            ConditionType::PreviousChildren,
            ConditionStatus::False,
            Reason::PreviousChildrenGone,
            String::new(),
            now,
            generation,
        );
    }

    // Observe each step in order; stop at the first that is not done.
    let plan_steps = steps(run);
    let mut records: Vec<StepRecord> = Vec::new();
    let mut results: BTreeMap<&'static str, StepResult> = BTreeMap::new();
    let mut failure: Option<String> = None;
    let mut next: Option<Step> = None;
    let mut current: Option<Step> = None;
    for step in &plan_steps {
        let step = *step;
        let job = job_name(name, step);
        let recorded = previous.steps.iter().find(|s| s.name == step.name());
        let mut record = recorded.cloned().unwrap_or_else(|| pending(step));
        match owned.get(step.name()) {
            None if record.job.is_empty() => {
                next = Some(step);
                records.push(record);
                break;
            }
            None if record.phase.finished() => {
                // Finished earlier and its Job has since been cleaned up: keep the record.
                if record.phase == RunPhase::Failed {
                    failure = record.message.clone();
                    records.push(record);
                    break;
                }
                if let Some(r) = record
                    .message
                    .as_deref()
                    .and_then(|m| parse_result(step, Some(m)).ok())
                {
                    results.insert(step.name(), r);
                }
                records.push(record);
                continue;
            }
            None => {
                let why = format!(
                    "Job {job} of step {} disappeared before finishing; a step never runs twice — create a new JanusRun",
                    step.name()
                );
                record.phase = RunPhase::Failed;
                record.message = Some(why.clone());
                failure = Some(why);
                records.push(record);
                break;
            }
            Some(observed) => {
                record.job = job.clone();
                record.started_at = observed.started_at.clone().or(record.started_at);
                record.finished_at = observed.finished_at.clone();
                match observed.phase {
                    JobPhase::Running => {
                        record.phase = RunPhase::Running;
                        current = Some(step);
                        records.push(record);
                        break;
                    }
                    JobPhase::Failed => {
                        let why = format!(
                            "step {} failed{}: {}",
                            step.name(),
                            observed
                                .failure_reason
                                .as_deref()
                                .map(|r| format!(" ({r})"))
                                .unwrap_or_default(),
                            observed
                                .termination_message
                                .as_deref()
                                .map(|m| crate::text::bounded(m.trim(), 1000))
                                .unwrap_or_else(|| "no termination message".into())
                        );
                        record.phase = RunPhase::Failed;
                        record.message = Some(why.clone());
                        failure = Some(why);
                        records.push(record);
                        break;
                    }
                    JobPhase::Succeeded => {
                        match parse_result(step, observed.termination_message.as_deref()) {
                            Ok(r) => {
                                record.phase = RunPhase::Succeeded;
                                record.message = observed
                                    .termination_message
                                    .as_deref()
                                    .map(|m| m.trim().to_string());
                                record.result_digest = match step {
                                    Step::Label => r.event_car_manifest_hash.clone(),
                                    Step::Sft => r.model_sha256.clone(),
                                    Step::Grpo => r.onnx_sha256.clone(),
                                    Step::Evaluate | Step::Replay => {
                                        r.evidence_manifest_hash.clone()
                                    }
                                };
                                results.insert(step.name(), r);
                                records.push(record);
                            }
                            Err(why) => {
                                record.phase = RunPhase::Failed;
                                record.message = Some(why.clone());
                                failure = Some(why);
                                records.push(record);
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
    // Steps not reached yet keep a Pending record, so `kubectl get -o yaml` shows the plan.
    for step in &plan_steps {
        if !records.iter().any(|r| r.name == step.name()) {
            records.push(pending(*step));
        }
    }
    for r in &records {
        let before = previous.steps.iter().find(|p| p.name == r.name);
        if before.map(|b| b.phase) != Some(r.phase) && r.phase != RunPhase::Pending {
            let warning = r.phase == RunPhase::Failed;
            events.push(StatusEvent {
                reason: match r.phase {
                    RunPhase::Failed => Reason::StepFailed,
                    RunPhase::Succeeded => Reason::StepSucceeded,
                    _ => Reason::StepRunning,
                },
                message: r.message.clone().filter(|_| warning).unwrap_or_else(|| {
                    format!("step {} {}", r.name, r.phase.as_str().to_lowercase())
                }),
                warning,
            });
        }
    }

    // Lineage from the results.
    if let Some(r) = results.get("label") {
        lineage.event_car_manifest_hash = r.event_car_manifest_hash.clone();
        lineage.dataset_snapshot_hash = r
            .dataset_snapshot_hash
            .clone()
            .or_else(|| Some(run.spec.dataset.sha256.clone()));
    }
    if let Some(r) = results.get("evaluate") {
        lineage.evidence_manifest_hash = r.evidence_manifest_hash.clone();
        lineage.reward_manifest_hash = r.reward_manifest_hash.clone();
    }
    lineage.generation_code = Some(crate::version_string().to_string());

    let mut start = None;
    let mut candidate = None;
    let phase;
    if let Some(why) = &failure {
        phase = RunPhase::Failed;
        status.conditions.set(
            ConditionType::Succeeded,
            ConditionStatus::False,
            Reason::StepFailed,
            why.clone(),
            now,
            generation,
        );
    } else if current.is_some() {
        phase = RunPhase::Running;
    } else if let Some(step) = next {
        if steps_blocked {
            phase = if started {
                RunPhase::Running
            } else {
                RunPhase::Pending
            };
        } else if refused {
            phase = match previous.phase {
                Some(RunPhase::Running) => RunPhase::Running,
                _ => RunPhase::Pending,
            };
        } else {
            start = Some(step);
            current = Some(step);
            phase = RunPhase::Running;
            if !started {
                lineage.run_config_hash = Some(hash.clone());
            }
        }
    } else if waiting {
        // Every step succeeded, but the candidate's name is taken by another object's.
        phase = RunPhase::Running;
    } else {
        // Every step succeeded.
        phase = RunPhase::Succeeded;
        let grpo = results.get("grpo");
        let cname = candidate_name(name);
        if let Some(onnx) = grpo.and_then(|r| r.onnx_sha256.clone()) {
            candidate = Some((
                cname.clone(),
                JanusCandidateSpec {
                    run_ref: name.to_string(),
                    model: ModelRef {
                        uri: model_path(name),
                        sha256: onnx,
                        format: ModelFormat::Onnx,
                    },
                    lineage: lineage.clone(),
                },
            ));
            status.candidate = Some(cname.clone());
        }
        status.conditions.set(
            ConditionType::Succeeded,
            ConditionStatus::True,
            Reason::AllStepsSucceeded,
            format!("candidate {cname}"),
            now,
            generation,
        );
    }
    if phase == RunPhase::Running && status.conditions.get(ConditionType::Succeeded).is_none() {
        status.conditions.set(
            ConditionType::Succeeded,
            ConditionStatus::Unknown,
            Reason::Running,
            String::new(),
            now,
            generation,
        );
    }
    if previous.phase != Some(phase) && phase.finished() {
        events.push(StatusEvent {
            reason: if phase == RunPhase::Failed {
                Reason::RunFailed
            } else {
                Reason::RunSucceeded
            },
            message: failure
                .clone()
                .unwrap_or_else(|| format!("candidate {}", candidate_name(name))),
            warning: phase == RunPhase::Failed,
        });
    }

    status.phase = Some(phase);
    status.current_step = current.map(|s| s.name().to_string());
    status.steps = records;
    if let Some(step) = start {
        let r = status
            .steps
            .iter_mut()
            .find(|r| r.name == step.name())
            .expect("every step has a record");
        r.job = job_name(name, step);
        r.phase = RunPhase::Running;
        r.started_at = Some(now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        events.push(StatusEvent {
            reason: Reason::StepStarted,
            message: format!("step {} started as Job {}", step.name(), r.job),
            warning: false,
        });
    }
    status.lineage = Some(lineage);
    status.observed_generation = generation;
    RunPlan {
        status,
        start,
        candidate,
        events,
        waiting,
    }
}
