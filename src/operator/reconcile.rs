//! The glue between the API server and the pure reconcile decisions of `crate::controller`:
//! read what a decision needs, apply what it decides (server-side apply under one field
//! manager), publish its events, count it. Nothing here decides anything on its own.

use super::Context;
use crate::contracts::consistency::read_evidence_with_parents;
use crate::contracts::evidence::EvidenceArtifact;
use crate::controller::jobs::{self, Step};
use crate::controller::run::{self as run_plan, ChildKind, JobPhase, ObservedChild, ObservedJob};
use crate::controller::{candidate as candidate_plan, promotion as promotion_plan};
use crate::crd::{
    ConditionStatus, ConditionType, JanusCandidate, JanusRun, PromotionRequest, Reason, StatusEvent,
};
use crate::gates::RuntimeStats;
use crate::gates::policy::GatePolicy;
use crate::promotion::Phase;
use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a reconcile could not finish; it is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Invalid(String),
}

impl ReconcileError {
    pub fn label(&self) -> &'static str {
        match self {
            _ if self.is_conflict() => "conflict",
            ReconcileError::Kube(_) => "kube",
            ReconcileError::Invalid(_) => "invalid",
        }
    }

    /// The object changed since it was read (a status write's resourceVersion did not match):
    /// read it again and decide again, at once.
    pub fn is_conflict(&self) -> bool {
        matches!(self, ReconcileError::Kube(kube::Error::Api(e)) if e.code == 409)
    }
}

type Result<T> = std::result::Result<T, ReconcileError>;

fn namespace<K: ResourceExt>(obj: &K) -> Result<String> {
    obj.namespace()
        .ok_or_else(|| ReconcileError::Invalid(format!("{} has no namespace", obj.name_any())))
}

fn owner<K: Resource<DynamicType = ()>>(obj: &K) -> Option<OwnerReference> {
    obj.controller_owner_ref(&())
}

/// Drops null members from an apply patch (an absent field is one this manager does not set).
pub fn strip_nulls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Writes a status as a JSON merge patch carrying the resourceVersion that was read, so a
/// concurrent change makes it fail (409, retried) instead of being overwritten. Not server-side
/// apply: a 1.20 API server turns a nested object the apply no longer sets into a husk of nulls
/// and then refuses it (found by e2e), whereas a merge patch removes it with an explicit null.
async fn write_status<K, S>(api: &Api<K>, obj: &K, status: &S) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": obj.meta().resource_version},
        "status": status,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

pub(super) async fn publish<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    obj: &K,
    action: &str,
    events: impl IntoIterator<Item = StatusEvent>,
) {
    let reference = obj.object_ref(&());
    for e in events {
        let event = Event {
            type_: if e.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: e.reason.as_str().to_string(),
            // The API server refuses a note over 1 KiB: cut it, saying so.
            note: Some(crate::text::bounded(&e.message, 1024)),
            action: action.to_string(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            tracing::warn!(error = %e, "cannot publish an event");
        }
    }
}

/// The gate policy from its ConfigMap, and whether it was readable.
async fn policy(ctx: &Context) -> Result<std::result::Result<GatePolicy, String>> {
    let (ns, name) = &ctx.config.policy_config_map;
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    // An API error (a 429, a timeout) is no answer: the reconcile is retried. Only a definite
    // answer (absent, no key, invalid) is the policy's absence, which halts what it served.
    let Some(cm) = api.get_opt(name).await? else {
        return Ok(Err(format!("policy ConfigMap {ns}/{name} not found")));
    };
    let Some(text) = cm.data.as_ref().and_then(|d| d.get(super::POLICY_KEY)) else {
        return Ok(Err(format!(
            "policy ConfigMap {ns}/{name} lacks `{}`",
            super::POLICY_KEY
        )));
    };
    Ok(crate::config::parse(
        Path::new(&format!("configmap/{ns}/{name}/{}", super::POLICY_KEY)),
        text,
    )
    .map_err(|e| e.to_string()))
}

/// Reads a verified evidence artifact from the artifacts volume, with its parents as the run
/// left them (the event-car of the label step, the rewards beside the evidence): the evidence
/// must name them as its parents and carry their counts, and the rewards must be scored on those
/// labels (`contracts::consistency`). Anything else is unusable evidence, with the reason.
fn read_evidence(root: &Path, run: &str) -> std::result::Result<EvidenceArtifact, String> {
    let path = root.join(run_plan::evidence_path(run));
    let event_car = root.join(run_plan::event_car_path(run));
    let rewards = root.join(run_plan::rewards_path(run));
    read_evidence_with_parents(&path, Some(&event_car), Some(&rewards)).map_err(|e| e.to_string())
}

/// Runtime statistics of a candidate at a stage: the sealed `janus-runtime-stats-v1` windows
/// decision services wrote under `candidates/<name>/runtime/<stage>/`, each read by the
/// fail-closed artifact reader, kept only when they carry the decision service's signature (or
/// are a simulation) and come from serving `want` (`runtime::stats::accept`: signature,
/// request, stage, model digest, simulation per the policy), merged over their newest
/// contiguous stretch. Nothing else is read. Refused files and gaps are logged with their
/// reasons. Returns the statistics, or why there are none (the gate's blocker text), and the
/// notes on suspect refused files for the request's blockers.
fn read_runtime_stats(
    root: &Path,
    want: &crate::runtime::stats::Wanted<'_>,
    now: DateTime<Utc>,
) -> (std::result::Result<RuntimeStats, String>, Vec<String>) {
    let folder = crate::runtime::stats::stage_dir(want.candidate, want.stage);
    // No folder yet: no statistics (the reason below says "none under ...").
    let files: Vec<_> = crate::runtime::stats::read_stage(root, want.candidate, want.stage)
        .unwrap_or_default()
        .into_iter()
        .map(|(_, name, read)| (name, read))
        .collect();
    let accepted = crate::runtime::stats::accept(files, want, now);
    for refused in &accepted.refused {
        tracing::warn!(refused = %refused, "runtime statistics refused");
    }
    let notes = crate::runtime::stats::refusal_notes(&accepted.refused, MAX_REFUSAL_NOTES);
    let Some(merged) = accepted.merged else {
        let why = match (&accepted.unmergeable, accepted.refused.len()) {
            (Some(e), _) => format!("refused under {folder}/: {e}"),
            (None, 0) => format!("none under {folder}/"),
            (None, n) => format!("none that count under {folder}/ ({n} files refused)"),
        };
        return (Err(why), notes);
    };
    for gap in &merged.gaps {
        tracing::warn!(candidate = want.candidate, stage = want.stage, from = %gap.from, to = %gap.to,
            "a gap in the runtime statistics: only the windows after it count");
    }
    (Ok(merged.stats), notes)
}

/// Most refused statistics files named in a request's blockers (the log names every one).
const MAX_REFUSAL_NOTES: usize = 5;

// ---------- JanusRun ----------

fn observe(job: &Job, pods: &[Pod]) -> ObservedJob {
    let status = job.status.clone().unwrap_or_default();
    let conditions = status.conditions.unwrap_or_default();
    let condition = |t: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == t && c.status == "True")
    };
    let failed = condition("Failed");
    let phase = if condition("Complete").is_some() {
        JobPhase::Succeeded
    } else if failed.is_some() {
        JobPhase::Failed
    } else {
        JobPhase::Running
    };
    let time = |t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time| {
        chrono::DateTime::from_timestamp(t.0.as_second(), 0)
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    };
    // The newest pod's step container carries the termination message; only this Job's pods
    // count (a deleted Job of the same name may leave pods with the same `job-name` label).
    let job_uid = job.metadata.uid.as_deref();
    let message = pods
        .iter()
        .filter(|p| {
            run_plan::owned_by(
                job_uid,
                run_plan::controller_uid(p.metadata.owner_references.as_deref()).as_deref(),
            )
        })
        .filter_map(|p| {
            let started = p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            let statuses = p.status.as_ref()?.container_statuses.as_ref()?;
            let terminated = statuses
                .iter()
                .find_map(|c| c.state.as_ref()?.terminated.as_ref())?;
            Some((started, terminated.message.clone()))
        })
        .max_by_key(|(t, _)| *t)
        .and_then(|(_, m)| m);
    ObservedJob {
        owner_uid: run_plan::controller_uid(job.metadata.owner_references.as_deref()),
        phase,
        started_at: status.start_time.as_ref().and_then(time),
        finished_at: status
            .completion_time
            .as_ref()
            .and_then(time)
            .or_else(|| failed.and_then(|c| c.last_transition_time.as_ref().and_then(time))),
        termination_message: message,
        failure_reason: failed.and_then(|c| {
            Some(match (&c.reason, &c.message) {
                (Some(r), Some(m)) => format!("{r}: {m}"),
                (Some(r), None) => r.clone(),
                (None, Some(m)) => m.clone(),
                (None, None) => return None,
            })
        }),
    }
}

#[tracing::instrument(name = "reconcile JanusRun", skip_all, fields(name = %run.name_any()))]
pub async fn reconcile_run(run: Arc<JanusRun>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let ns = namespace(run.as_ref())?;
    let name = run.name_any();
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let runs: Api<JanusRun> = Api::namespaced(ctx.client.clone(), &ns);

    // Read every step Job straight from the API (not a cache): "does this Job exist" decides
    // whether a step starts, and must not be answered by a stale view.
    let mut observed: BTreeMap<&'static str, ObservedJob> = BTreeMap::new();
    for step in Step::ALL {
        let job_name = jobs::job_name(&name, step);
        if let Some(job) = jobs_api.get_opt(&job_name).await? {
            let pods = pods_api
                .list(&ListParams::default().labels(&format!("job-name={job_name}")))
                .await?
                .items;
            observed.insert(step.name(), observe(&job, &pods));
        }
    }
    let children = observe_children(&ctx, &ns, &name).await?;
    let plan = run_plan::reconcile(&run_plan::RunInputs {
        run: run.as_ref(),
        jobs: &observed,
        children: &children,
        now: Utc::now(),
    });

    if let Some(step) = plan.start {
        // The run's configuration first, then the Job that mounts it.
        let mut cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(jobs::config_map_name(&name)),
                namespace: Some(ns.clone()),
                owner_references: owner(run.as_ref()).map(|o| vec![o]),
                ..Default::default()
            },
            data: Some(jobs::config_map_data(run.as_ref())),
            ..Default::default()
        };
        cm.metadata.labels = Some(BTreeMap::from([(
            "app.kubernetes.io/name".to_string(),
            "janus".to_string(),
        )]));
        Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
            .patch(
                &jobs::config_map_name(&name),
                &PatchParams::apply(&ctx.config.field_manager).force(),
                &Patch::Apply(&cm),
            )
            .await?;
        let job = jobs::job(run.as_ref(), step, &ctx.config.operator_image)
            .ok_or_else(|| ReconcileError::Invalid(format!("run {name} lacks a uid or name")))?;
        let job = match &ctx.config.step_service_account {
            Some(sa) => jobs::with_service_account(job, sa),
            None => job,
        };
        // Create, never update: a Job that already exists (a restart between creating it and
        // recording it) is the same step, and is left as it is.
        match jobs_api.create(&PostParams::default(), &job).await {
            Ok(_) => tracing::info!(run = %name, step = step.name(), "created step Job"),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                // Appeared since it was read: the run's own (a restart), or another object's,
                // which is never recorded as this run's step. Decide again on what is there.
                tracing::info!(run = %name, step = step.name(), "step Job already exists");
                let existing = jobs_api
                    .get_opt(&job.metadata.name.clone().unwrap_or_default())
                    .await?;
                let owner = existing
                    .and_then(|j| run_plan::controller_uid(j.metadata.owner_references.as_deref()));
                if !run_plan::owned_by(run.metadata.uid.as_deref(), owner.as_deref()) {
                    return Ok(Action::requeue(Duration::from_secs(1)));
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    if let Some((cname, spec)) = &plan.candidate {
        let mut candidate = serde_json::json!({
            "apiVersion": JanusCandidate::api_version(&()),
            "kind": JanusCandidate::kind(&()),
            "metadata": {
                "name": cname,
                "namespace": ns,
                "ownerReferences": owner(run.as_ref()).map(|o| vec![o]),
                "labels": {"janus.torghut.io/run": jobs::bounded_name(&name, "run")},
            },
            "spec": spec,
        });
        strip_nulls(&mut candidate);
        Api::<JanusCandidate>::namespaced(ctx.client.clone(), &ns)
            .patch(
                cname,
                &PatchParams::apply(&ctx.config.field_manager).force(),
                &Patch::Apply(&candidate),
            )
            .await?;
    }
    if run.status.as_ref() != Some(&plan.status) {
        write_status(&runs, run.as_ref(), &plan.status).await?;
    }
    publish(&ctx, run.as_ref(), "Reconcile", plan.events).await;
    ctx.metrics
        .reconciled("JanusRun", started.elapsed().as_secs_f64());
    Ok(match plan.status.phase {
        _ if plan.waiting => Action::requeue(Duration::from_secs(5)),
        Some(p) if p.finished() => Action::await_change(),
        _ => Action::requeue(Duration::from_secs(30)),
    })
}

/// The run's config ConfigMap and candidate as found under their names (metadata only), for
/// the ownership rule of `controller::run`.
async fn observe_children(ctx: &Context, ns: &str, run: &str) -> Result<Vec<ObservedChild>> {
    let child = |kind: ChildKind, meta: ObjectMeta| ObservedChild {
        kind,
        name: meta.name.clone().unwrap_or_default(),
        owner_uid: run_plan::controller_uid(meta.owner_references.as_deref()),
    };
    let mut found = Vec::new();
    if let Some(cm) = Api::<ConfigMap>::namespaced(ctx.client.clone(), ns)
        .get_metadata_opt(&jobs::config_map_name(run))
        .await?
    {
        found.push(child(ChildKind::ConfigMap, cm.metadata));
    }
    if let Some(c) = Api::<JanusCandidate>::namespaced(ctx.client.clone(), ns)
        .get_metadata_opt(&run_plan::candidate_name(run))
        .await?
    {
        found.push(child(ChildKind::JanusCandidate, c.metadata));
    }
    Ok(found)
}

// ---------- JanusCandidate ----------

#[tracing::instrument(name = "reconcile JanusCandidate", skip_all, fields(name = %cand.name_any()))]
pub async fn reconcile_candidate(cand: Arc<JanusCandidate>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let ns = namespace(cand.as_ref())?;
    let name = cand.name_any();
    let candidates: Api<JanusCandidate> = Api::namespaced(ctx.client.clone(), &ns);
    // Read leniently: an unreadable run counts as absent here (its own reconcile reports it).
    let run =
        super::lenient::get_readable::<JanusRun>(&ctx.client, &ns, &cand.spec.run_ref).await?;
    release_if_unneeded(&ctx, &ns, cand.as_ref()).await?;
    let policy = match policy(&ctx).await? {
        Ok(p) => p,
        Err(why) => {
            // Without a policy nothing passes; say so on the candidate and retry.
            let mut status = cand.status.clone().unwrap_or_default();
            status.conditions.set(
                ConditionType::GatesPassed,
                ConditionStatus::False,
                Reason::PolicyUnavailable,
                why.clone(),
                Utc::now(),
                cand.metadata.generation,
            );
            write_status(&candidates, cand.as_ref(), &status).await?;
            return Err(ReconcileError::Invalid(why));
        }
    };
    let evidence = read_evidence(&ctx.config.artifacts_root, &cand.spec.run_ref);
    let (runtime, _) = read_runtime_stats(
        &ctx.config.artifacts_root,
        &crate::runtime::stats::Wanted {
            candidate: &name,
            stage: "shadow",
            model_sha256: &cand.spec.model.sha256,
            promotion_request: None,
            allow_simulation: policy.gate0_data_integrity.allow_simulation,
            key: ctx.config.stats_key.as_ref(),
        },
        Utc::now(),
    );
    let before = cand.status.clone();
    let status = candidate_plan::reconcile(&candidate_plan::CandidateInputs {
        name: &name,
        generation: cand.metadata.generation,
        spec: &cand.spec,
        status: before.as_ref(),
        run: run.as_ref().and_then(|r| r.status.as_ref()),
        evidence: evidence.as_ref().map_err(Clone::clone),
        runtime: runtime.as_ref().map_err(String::as_str),
        policy: &policy,
        now: Utc::now(),
    });
    let complete = status.conditions.is_true(ConditionType::EvidenceComplete);
    ctx.metrics.evidence(&ns, &name, complete);
    if before.as_ref() != Some(&status) {
        let events = candidate_plan::events(before.as_ref(), &status);
        write_status(&candidates, cand.as_ref(), &status).await?;
        publish(&ctx, cand.as_ref(), "Evaluate", events).await;
    }
    ctx.metrics
        .reconciled("JanusCandidate", started.elapsed().as_secs_f64());
    // Drills and runtime statistics age and arrive without an event: look again regularly.
    Ok(Action::requeue(Duration::from_secs(60)))
}

/// Drops the candidate's in-use finalizer once no promoted or halted request names it.
async fn release_if_unneeded(ctx: &Context, ns: &str, cand: &JanusCandidate) -> Result<()> {
    let name = cand.name_any();
    if !ctx.requests_ready() {
        // Not before the cache is filled: an empty cache would release every candidate.
        return Ok(());
    }
    // An unreadable request might name this candidate: while one exists, keep the finalizer.
    let unneeded = ctx
        .requests()
        .state_filter(|r| {
            r.namespace().as_deref() == Some(ns)
                && r.readable().is_none_or(|r| {
                    r.spec.candidate == name && crate::operator::claims::needs_candidate(r)
                })
        })
        .is_empty();
    if unneeded {
        crate::operator::claims::release_candidate(ctx, ns, cand).await?;
    }
    Ok(())
}

// ---------- PromotionRequest ----------

/// Who changed the request last, as far as managedFields tell: `unverified:<field manager>` of
/// its newest write (a name the client chose; see `kill::unverified`).
fn actor(pr: &PromotionRequest) -> String {
    let managed = pr.metadata.managed_fields.as_deref().unwrap_or_default();
    let manager =
        crate::operator::kill::latest_manager(managed).unwrap_or_else(|| "unknown".into());
    crate::operator::kill::unverified(&manager)
}

/// The stage the candidate holds: the highest stage another request promoted it to (from the
/// informer's cache: a reconcile never lists every request from the API server). A request
/// counts for the candidate it was bound to when first reconciled, not whatever its spec says
/// now, so an edited request lends no stage to another candidate.
fn candidate_stage(ctx: &Context, pr: &PromotionRequest) -> Option<crate::promotion::Stage> {
    let name = pr.name_any();
    let ns = pr.namespace();
    ctx.requests_where(|o| o.name_any() != name && o.namespace() == ns)
        .into_iter()
        .filter_map(|o| o.status.clone())
        .filter(|s| {
            s.phase == Some(Phase::Promoted)
                && s.bound
                    .as_ref()
                    .is_some_and(|b| b.candidate == pr.spec.candidate)
        })
        .filter_map(|s| s.stage)
        .max()
}

/// The records the admission webhook stamped on the request, verified with the signing key
/// (none without one).
fn stamped_records(
    ctx: &Context,
    pr: &PromotionRequest,
    model_sha256: Option<&str>,
    now: chrono::DateTime<Utc>,
) -> crate::identity::Verified {
    let (ns, name, uid) = (
        pr.namespace().unwrap_or_default(),
        pr.name_any(),
        pr.uid().unwrap_or_default(),
    );
    // An approval counts only for the spec it approved (canary limits included).
    let terms = pr.spec.approved_terms_sha256().ok().map(|d| d.to_string());
    let binding = crate::identity::Binding {
        namespace: &ns,
        request: &name,
        uid: &uid,
        candidate: &pr.spec.candidate,
        target: pr.spec.target,
        model_sha256,
        spec_sha256: terms.as_deref(),
    };
    crate::identity::verify_all(
        pr.annotations(),
        &binding,
        ctx.config.signing_key.as_ref(),
        now,
    )
}

#[tracing::instrument(name = "reconcile PromotionRequest", skip_all, fields(name = %pr.name_any()))]
pub async fn reconcile_promotion(pr: Arc<PromotionRequest>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let ns = namespace(pr.as_ref())?;
    let name = pr.name_any();
    let uid = pr.uid().unwrap_or_default();
    let requests: Api<PromotionRequest> = Api::namespaced(ctx.client.clone(), &ns);
    // The kill switch first: whatever else cannot be read below, a request whose switch is on
    // (or was seen on) has its trading turned off before anything else is attempted.
    let latched_by = ctx.kill_latch.actor(&uid);
    let now = Utc::now();
    let annotations = pr.annotations().clone();
    // Who set the kill switch: the webhook's signed record, else the field manager (marked
    // unverified: a typed name).
    let stamped_kill = stamped_records(&ctx, pr.as_ref(), None, now).kill_switch;
    let kill_actor = stamped_kill
        .map(|r| r.by)
        .or_else(|| {
            crate::operator::kill::kill_switch_actor(
                pr.metadata.managed_fields.as_deref().unwrap_or_default(),
            )
        })
        .or(latched_by.clone())
        .unwrap_or_else(|| crate::operator::kill::unverified("unknown"));
    if pr.spec.kill_switch {
        ctx.kill_latch.latch(&uid, &kill_actor);
    }
    let kill_switch = pr.spec.kill_switch || latched_by.is_some();
    if kill_switch && name.len() <= crate::crd::MAX_PROMOTION_REQUEST_NAME {
        let cm = pr
            .status
            .as_ref()
            .and_then(|s| s.runtime_config_map.clone())
            .unwrap_or_else(|| promotion_plan::runtime_config_map_name(&name));
        crate::operator::kill::halt_runtime_config_map(&ctx, &ns, &cm).await?;
    }
    // Read leniently: an unreadable candidate is no candidate (which halts a served request).
    let candidate =
        super::lenient::get_readable::<JanusCandidate>(&ctx.client, &ns, &pr.spec.candidate)
            .await?;
    let policy = policy(&ctx).await?;
    // The candidate's evidence counts only as the operator verified it on the candidate.
    let evidence: std::result::Result<EvidenceArtifact, String> = match &candidate {
        None => Err(format!("candidate `{}` not found", pr.spec.candidate)),
        Some(c) => {
            let status = c.status.clone().unwrap_or_default();
            if !status.conditions.is_true(ConditionType::EvidenceComplete) {
                Err(format!(
                    "candidate `{}` has no complete, verified evidence",
                    pr.spec.candidate
                ))
            } else {
                read_evidence(&ctx.config.artifacts_root, &c.spec.run_ref).and_then(|e| {
                    if Some(&e.manifest_hash) == status.evidence_manifest_hash.as_ref() {
                        Ok(e)
                    } else {
                        Err(format!(
                            "the evidence on disk ({}) is not the evidence verified on candidate `{}`",
                            e.manifest_hash, pr.spec.candidate
                        ))
                    }
                })
            }
        }
    };
    let runtime_stage = match pr.spec.target {
        crate::gates::Target::Paper => "shadow",
        crate::gates::Target::Canary => "paper",
    };
    // Shadow statistics must come from serving this request; the paper window from whichever
    // request served the candidate at paper. Simulation only where the policy accepts it.
    let allow_simulation = policy.as_ref().is_ok_and(|p| match pr.spec.target {
        crate::gates::Target::Paper => p.gate0_data_integrity.allow_simulation,
        crate::gates::Target::Canary => p.gate3_paper_trading.allow_simulation,
    });
    let (runtime, runtime_refused) = match candidate.as_ref() {
        Some(c) => read_runtime_stats(
            &ctx.config.artifacts_root,
            &crate::runtime::stats::Wanted {
                candidate: &pr.spec.candidate,
                stage: runtime_stage,
                model_sha256: &c.spec.model.sha256,
                promotion_request: (pr.spec.target == crate::gates::Target::Paper)
                    .then_some(name.as_str()),
                allow_simulation,
                key: ctx.config.stats_key.as_ref(),
            },
            now,
        ),
        None => (
            Err(format!("candidate `{}` not found", pr.spec.candidate)),
            Vec::new(),
        ),
    };
    let history_uri = candidate
        .as_ref()
        .map(|c| format!("{}/event-car.json", run_plan::run_dir(&c.spec.run_ref)));
    let stamped = stamped_records(
        &ctx,
        pr.as_ref(),
        candidate.as_ref().map(|c| c.spec.model.sha256.as_str()),
        now,
    );
    // The audit trail: each record the webhook stamped, once, now that it is verified on the
    // stored object (the webhook stamps before the API server persists, so it cannot say).
    let records = stamped
        .records()
        .map(|r| crate::audit::Entry::stamped(r, now))
        .collect();
    ctx.trail.append_records(&ns, records).await;
    // The actor of a promotion or block: the verified approver, else the verified creator,
    // else the field manager (unverified). A rollback's: who asked for it.
    let actor = (stamped.approval.as_ref())
        .or(stamped.created_by.as_ref())
        .map(|r| r.by.clone())
        .unwrap_or_else(|| actor(pr.as_ref()));
    let rollback_actor = (stamped.rollback.as_ref())
        .map(|r| r.by.clone())
        .or_else(|| {
            crate::operator::kill::rollback_actor(
                pr.metadata.managed_fields.as_deref().unwrap_or_default(),
            )
        })
        .unwrap_or_else(|| crate::operator::kill::unverified("unknown"));
    let candidate_stage = candidate_stage(&ctx, pr.as_ref());
    // Read the latch again after the reads above: the fast path may have seen a switch that
    // was set and cleared while this reconcile was queued or reading.
    let latched_by = latched_by.or_else(|| ctx.kill_latch.actor(&uid));
    let kill_actor = if kill_actor == crate::operator::kill::unverified("unknown") {
        latched_by.clone().unwrap_or(kill_actor)
    } else {
        kill_actor
    };
    tracing::debug!(
        ?candidate_stage,
        cache_ready = ctx.requests_ready(),
        "the candidate's stage"
    );
    // The status counts as the operator's only with its seal (when a key is configured).
    let status_sealed = match (ctx.config.signing_key.as_ref(), pr.status.as_ref()) {
        (Some(key), Some(status)) => {
            let fields = status.seal_fields(&uid);
            let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
            status
                .seal
                .as_deref()
                .is_some_and(|seal| crate::identity::status_seal_valid(key, &fields, seal))
        }
        _ => true,
    };
    let decide = |stage_held_by: Option<&str>| {
        promotion_plan::reconcile(&promotion_plan::PromotionInputs {
            name: &name,
            generation: pr.metadata.generation,
            spec: &pr.spec,
            annotations: &annotations,
            status: pr.status.as_ref(),
            stamped: &stamped,
            candidate_stage,
            model: candidate.as_ref().map(|c| &c.spec.model),
            candidate_deleting: candidate
                .as_ref()
                .is_some_and(|c| c.metadata.deletion_timestamp.is_some()),
            history_uri: history_uri.as_deref(),
            evidence: evidence.as_ref().map_err(Clone::clone),
            runtime: runtime.as_ref().map_err(String::as_str),
            runtime_refused: &runtime_refused,
            policy: policy.as_ref().map_err(Clone::clone),
            actor: &actor,
            rollback_actor: &rollback_actor,
            kill_switch_seen: latched_by.is_some(),
            kill_switch_actor: &kill_actor,
            stage_held_by,
            lease_epoch: ctx.lease_epoch(),
            status_sealed,
            now,
        })
    };
    let mut plan = decide(None);
    let previous = pr.status.clone().unwrap_or_default();
    // Promoting: claim the candidate's stage first, atomically in the API server; a claim held
    // by another promoted request blocks this one, naming it.
    if plan.status.phase == Some(Phase::Promoted) && previous.phase != Some(Phase::Promoted) {
        if let Some(stage) = plan.status.stage {
            if let Some(holder) =
                crate::operator::claims::claim_stage(&ctx, &ns, pr.as_ref(), stage).await?
            {
                plan = decide(Some(&holder));
            }
        }
    }

    // The runtime ConfigMap first: a kill switch must reach the decision service even if the
    // status write that follows fails.
    if let Some(data) = &plan.runtime_config {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(promotion_plan::runtime_config_map_name(&name)),
                namespace: Some(ns.clone()),
                owner_references: owner(pr.as_ref()).map(|o| vec![o]),
                labels: Some(BTreeMap::from([
                    ("app.kubernetes.io/name".to_string(), "janus".to_string()),
                    (
                        "app.kubernetes.io/component".to_string(),
                        "runtime-config".to_string(),
                    ),
                ])),
                ..Default::default()
            },
            data: Some(data.clone()),
            ..Default::default()
        };
        Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
            .patch(
                &promotion_plan::runtime_config_map_name(&name),
                &PatchParams::apply(&ctx.config.field_manager).force(),
                &Patch::Apply(&cm),
            )
            .await?;
        // A kill switch latched while this reconcile decided to trade wins over the write.
        if data.get("tradingEnabled").map(String::as_str) == Some("true")
            && ctx.kill_latch.actor(&uid).is_some()
        {
            crate::operator::kill::halt_runtime_config_map(
                &ctx,
                &ns,
                &promotion_plan::runtime_config_map_name(&name),
            )
            .await?;
        }
    } else if let Some(cm) = &previous.runtime_config_map {
        // Nothing to serve any more (or no model to name): trading off in what is there.
        crate::operator::kill::halt_runtime_config_map(&ctx, &ns, cm).await?;
    }
    if let (Some(c), Some(Phase::Promoted | Phase::Halted)) = (&candidate, plan.status.phase) {
        if c.metadata.deletion_timestamp.is_none() {
            crate::operator::claims::hold_candidate(&ctx, &ns, c).await?;
        }
    }
    if let Some(key) = ctx.config.signing_key.as_ref() {
        let fields = plan.status.seal_fields(&uid);
        let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
        plan.status.seal = Some(crate::identity::status_seal(key, &fields));
    }
    if pr.status.as_ref() != Some(&plan.status) {
        write_status(&requests, pr.as_ref(), &plan.status).await?;
        // The audit trail: each history entry this write added, once it is on record.
        let model = (plan.status.served_model.as_ref())
            .or(candidate.as_ref().map(|c| &c.spec.model))
            .map(|m| &m.sha256);
        let entries = crate::audit::new_transitions(&previous.history, &plan.status.history)
            .iter()
            .map(|t| {
                let uid = Some(uid.as_str()).filter(|u| !u.is_empty());
                crate::audit::Entry::transition(&ns, &name, uid, &pr.spec.candidate, model, t)
            })
            .collect();
        ctx.trail.append(&ns, entries).await;
    }
    let (stage, phase) = (plan.status.stage, plan.status.phase);
    if (previous.stage, previous.phase) != (stage, phase) {
        let target = pr.spec.target.name();
        let status = phase.map(|p| format!("{p:?}")).unwrap_or_default();
        let reason = plan.events.first().map_or("", |e| e.reason.as_str());
        ctx.metrics.promotion_attempt(target, &status, reason);
        if let Some(report) = &plan.status.gate_report {
            for gate in report.failed() {
                for r in &gate.reasons {
                    ctx.metrics.gate_failed(&gate.id, &r.code);
                }
            }
        }
    }
    publish(&ctx, pr.as_ref(), "Promote", plan.events).await;
    ctx.metrics
        .reconciled("PromotionRequest", started.elapsed().as_secs_f64());
    Ok(Action::requeue(Duration::from_secs(60)))
}

/// The gate-bypass audit (controller::audit) over the namespace's ConfigMaps, requests and
/// candidates: logs every runtime ConfigMap that enables trading without a promoted request
/// behind it and exports their count. Returns the count.
pub async fn audit_runtime(ctx: &Context, ns: &str) -> Result<usize> {
    use crate::controller::audit::{RequestView, unbacked_trading};
    let all = ListParams::default();
    let config_maps = Api::<ConfigMap>::namespaced(ctx.client.clone(), ns)
        .list(&all)
        .await?;
    // Read leniently: one unreadable object must not stop the audit. An unreadable request backs
    // nothing (and its own reconcile switches its runtime ConfigMap off).
    let requests = super::lenient::list_readable::<PromotionRequest>(&ctx.client, ns).await?;
    let candidates = super::lenient::list_readable::<JanusCandidate>(&ctx.client, ns).await?;
    let views: Vec<RequestView> = requests
        .iter()
        .map(|r| {
            let status = r.status.clone().unwrap_or_default();
            RequestView {
                name: r.name_any(),
                candidate: r.spec.candidate.clone(),
                kill_switch: r.spec.kill_switch,
                stage: status.stage,
                phase: status.phase,
                model_sha256: candidates
                    .iter()
                    .find(|c| c.name_any() == r.spec.candidate)
                    .map(|c| c.spec.model.sha256.clone()),
            }
        })
        .collect();
    let empty = BTreeMap::new();
    let found = unbacked_trading(
        config_maps.items.iter().map(|cm| {
            (
                cm.metadata.name.as_deref().unwrap_or_default(),
                cm.data.as_ref().unwrap_or(&empty),
            )
        }),
        &views,
    );
    for u in &found {
        tracing::warn!(namespace = %ns, config_map = %u.config_map, reason = %u.reason,
            "a runtime ConfigMap enables trading without a promoted request behind it");
    }
    ctx.metrics.set_unbacked_trading(found.len());
    Ok(found.len())
}

#[cfg(test)]
mod tests {
    #[test]
    fn apply_patches_carry_no_nulls() {
        let mut v = serde_json::json!({"status": {"a": null, "b": {"c": null, "d": 1}, "e": [{"f": null}]}});
        super::strip_nulls(&mut v);
        assert_eq!(v, serde_json::json!({"status": {"b": {"d": 1}, "e": [{}]}}));
    }
}
