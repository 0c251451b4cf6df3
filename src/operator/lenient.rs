//! The reconcilers as the controllers call them: each kind is watched as
//! [`Lenient<K>`](crate::crd::Lenient), so one object the Rust types refuse never fails a
//! watcher's list. A readable object goes on to its reconciler in [`super::reconcile`]; an
//! unreadable one gets what [`crate::controller::unreadable`] decides (the `InvalidSpec`
//! condition, a Warning Event, and for a PromotionRequest its runtime ConfigMap switched off)
//! and then waits for a change. Also the lenient reads other reconcilers use, so that listing
//! or fetching one of our kinds never fails on one bad object.

use super::Context;
use super::reconcile::{self, ReconcileError, publish};
use crate::controller::unreadable::{
    Kind, halt_note, readable_again, unreadable as unreadable_plan,
};
use crate::crd::{Conditions, JanusCandidate, JanusRun, Lenient, PromotionRequest};
use chrono::Utc;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, ReconcileError>;

/// The bounds every kind read leniently satisfies.
pub trait Kube:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> Kube for K where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static
{
}

/// Reconciles a JanusRun, readable or not.
pub async fn reconcile_run(obj: Arc<Lenient<JanusRun>>, ctx: Arc<Context>) -> Result<Action> {
    dispatch(obj, ctx, Kind::JanusRun, reconcile::reconcile_run).await
}

/// Reconciles a JanusCandidate, readable or not.
pub async fn reconcile_candidate(
    obj: Arc<Lenient<JanusCandidate>>,
    ctx: Arc<Context>,
) -> Result<Action> {
    dispatch(
        obj,
        ctx,
        Kind::JanusCandidate,
        reconcile::reconcile_candidate,
    )
    .await
}

/// Reconciles a PromotionRequest, readable or not: an unreadable one has its runtime ConfigMap
/// switched off before anything else.
pub async fn reconcile_promotion(
    obj: Arc<Lenient<PromotionRequest>>,
    ctx: Arc<Context>,
) -> Result<Action> {
    dispatch(
        obj,
        ctx,
        Kind::PromotionRequest,
        reconcile::reconcile_promotion,
    )
    .await
}

async fn dispatch<K, F, Fut>(
    obj: Arc<Lenient<K>>,
    ctx: Arc<Context>,
    kind: Kind,
    readable: F,
) -> Result<Action>
where
    K: Kube,
    F: FnOnce(Arc<K>, Arc<Context>) -> Fut,
    Fut: Future<Output = Result<Action>>,
{
    let Some(ns) = obj.namespace() else {
        return Err(ReconcileError::Invalid(format!(
            "{} {} has no namespace",
            kind.name(),
            obj.name_any()
        )));
    };
    let api: Api<Lenient<K>> = Api::namespaced(ctx.client.clone(), &ns);
    match &obj.parsed {
        Ok(k) => {
            let k = match readable_again(&obj.conditions, obj.metadata.generation, Utc::now()) {
                None => k.clone(),
                Some(conditions) => {
                    tracing::info!(kind = kind.name(), name = %obj.name_any(), "readable again");
                    let patched = patch_conditions(&api, obj.as_ref(), &conditions).await?;
                    match patched.parsed {
                        Ok(k) => k,
                        // Changed again meanwhile: decide on what is there now.
                        Err(_) => return Ok(Action::requeue(Duration::from_millis(100))),
                    }
                }
            };
            readable(Arc::new(k), ctx).await
        }
        Err(why) => unreadable(&api, obj.as_ref(), why, kind, &ns, &ctx).await,
    }
}

/// Writes `status.conditions` as a JSON merge patch carrying the resourceVersion read (a
/// concurrent change fails it with 409 and the object is decided again).
async fn patch_conditions<K: Kube>(
    api: &Api<Lenient<K>>,
    obj: &Lenient<K>,
    conditions: &Conditions,
) -> std::result::Result<Lenient<K>, kube::Error> {
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": obj.metadata.resource_version},
        "status": {"conditions": conditions},
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
}

async fn unreadable<K: Kube>(
    api: &Api<Lenient<K>>,
    obj: &Lenient<K>,
    why: &crate::crd::Unreadable,
    kind: Kind,
    ns: &str,
    ctx: &Context,
) -> Result<Action> {
    let started = Instant::now();
    let name = obj.name_any();
    tracing::warn!(kind = kind.name(), %name, path = %why.path, error = %why.message,
        "cannot read the object; nothing acts on it until it is fixed");
    let plan = unreadable_plan(
        kind,
        &name,
        why,
        &obj.conditions,
        obj.metadata.generation,
        Utc::now(),
    );
    let mut failure: Option<ReconcileError> = None;
    // Trading off first: it must not wait on anything that follows.
    if let Some(halt) = &plan.halt {
        match super::kill::halt_runtime_config_map(ctx, ns, &halt.config_map).await {
            Ok(true) => {
                tracing::warn!(%name, config_map = %halt.config_map,
                    "unreadable PromotionRequest: trading switched off");
                publish(ctx, obj, "Halt", [halt_note(&name, halt)]).await;
            }
            Ok(false) => {}
            Err(e) => failure = Some(e.into()),
        }
    }
    if let Some(conditions) = &plan.conditions {
        match patch_conditions(api, obj, conditions).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            // A 1.20 API server validates the whole object on a status write; an object stored
            // under an older CRD that the current one refuses cannot take a condition. The Event
            // and the log line are its record then.
            Err(kube::Error::Api(e)) if e.code == 422 => {
                tracing::warn!(kind = kind.name(), %name, error = %e.message,
                    "the API server refuses status writes on this object (it no longer validates \
                     against the current CRD); the InvalidSpec Event is its record")
            }
            Err(e) => {
                failure.get_or_insert(e.into());
            }
        }
    }
    if let Some(event) = plan.event {
        publish(ctx, obj, "Validate", [event]).await;
    }
    ctx.metrics
        .reconciled(kind.name(), started.elapsed().as_secs_f64());
    match failure {
        Some(e) => Err(e),
        None => Ok(Action::await_change()),
    }
}

/// Every object of kind `K` in `ns` that reads; the ones that do not are left out (their own
/// reconcile reports them).
pub async fn list_readable<K: Kube>(
    client: &Client,
    ns: &str,
) -> std::result::Result<Vec<K>, kube::Error> {
    let api: Api<Lenient<K>> = Api::namespaced(client.clone(), ns);
    Ok(api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|o| o.parsed.ok())
        .collect())
}

/// One object of kind `K`, when it exists and reads; an unreadable one counts as absent (and is
/// logged), so the reconcile that asked goes on with "not found".
pub async fn get_readable<K: Kube>(
    client: &Client,
    ns: &str,
    name: &str,
) -> std::result::Result<Option<K>, kube::Error> {
    let api: Api<Lenient<K>> = Api::namespaced(client.clone(), ns);
    Ok(api.get_opt(name).await?.and_then(|o| match o.parsed {
        Ok(k) => Some(k),
        Err(why) => {
            tracing::warn!(kind = %K::kind(&()), %name, error = %why, "cannot read; treated as absent");
            None
        }
    }))
}
