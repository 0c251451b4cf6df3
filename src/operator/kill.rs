//! The kill switch's own path, ahead of every reconcile: a watch of the namespace's
//! PromotionRequests, read untyped so that no malformed object can break it, that latches every
//! `spec.killSwitch: true` it sees (even one that lasted a millisecond) and turns its runtime
//! ConfigMap's trading off at once, before the request's turn in the reconcile queue comes. The
//! reconcile then records the halt, naming who set the switch (see [`kill_switch_actor`]).

use super::Context;
use crate::controller::promotion::runtime_config_map_name;
use crate::controller::unreadable::halt_merge;
use crate::crd::PromotionRequest;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Kill switches seen on, by request UID, with who set them. Only grows while a request lives:
/// a cleared switch never unlatches.
#[derive(Default)]
pub struct KillLatch {
    seen: Mutex<HashMap<String, String>>,
}

impl KillLatch {
    /// Records a kill switch seen on; `true` the first time for this UID.
    pub fn latch(&self, uid: &str, actor: &str) -> bool {
        let mut seen = self.seen.lock().expect("not poisoned");
        if seen.contains_key(uid) {
            return false;
        }
        seen.insert(uid.to_string(), actor.to_string());
        true
    }

    /// Who set the kill switch of this request, when it was seen on.
    pub fn actor(&self, uid: &str) -> Option<String> {
        self.seen.lock().expect("not poisoned").get(uid).cloned()
    }

    /// The request is gone: forget it.
    pub fn forget(&self, uid: &str) {
        self.seen.lock().expect("not poisoned").remove(uid);
    }
}

/// The field manager that last wrote the field at `path` of managedFields (`["f:spec",
/// "f:killSwitch"]`), the most recent when several did. `None` when no entry names the field.
pub fn field_manager_of(managed: &[ManagedFieldsEntry], path: &[&str]) -> Option<String> {
    latest_manager(managed.iter().filter(|m| {
        let mut at = m.fields_v1.as_ref().map(|f| &f.0);
        for segment in path {
            at = at.and_then(|v| v.get(*segment));
        }
        at.is_some()
    }))
}

/// The field manager of the most recent write to the object itself (not a subresource) among
/// `entries`; `None` when there is none.
pub fn latest_manager<'a>(
    entries: impl IntoIterator<Item = &'a ManagedFieldsEntry>,
) -> Option<String> {
    entries
        .into_iter()
        .filter(|m| m.subresource.as_deref().unwrap_or("").is_empty())
        .max_by_key(|m| m.time.as_ref().map(|t| t.0))
        .and_then(|m| m.manager.clone())
}

/// A field manager as an actor: `unverified:<manager>`. A field manager is a name the client
/// chose (`kubectl --field-manager=alice`, any `fieldManager` query parameter), never an identity
/// the API server authenticated; it is recorded only marked as such (`crate::audit::Entry`).
pub fn unverified(manager: &str) -> String {
    format!("unverified:{manager}")
}

/// Who set `spec.killSwitch` as far as managedFields tell: `unverified:<field manager>` of the
/// field (see [`unverified`]: a typed name, not an authenticated one). The authenticated user is
/// known only from the webhook's signed `kill-switch-by` record, which the reconcile prefers.
pub fn kill_switch_actor(managed: &[ManagedFieldsEntry]) -> Option<String> {
    field_manager_of(managed, &["f:spec", "f:killSwitch"]).map(|m| unverified(&m))
}

/// Who set `janus.torghut.io/rollback-reason` as far as managedFields tell:
/// `unverified:<field manager>` (see [`kill_switch_actor`]); the webhook's signed `rollback-by`
/// record is preferred.
pub fn rollback_actor(managed: &[ManagedFieldsEntry]) -> Option<String> {
    let field = format!("f:{}", crate::crd::ROLLBACK_REASON);
    field_manager_of(managed, &["f:metadata", "f:annotations", &field]).map(|m| unverified(&m))
}

/// Turns trading off in a request's runtime ConfigMap, touching nothing else in it: the two
/// flags and this leader's lease epoch (`controller::unreadable::halt_merge`), by JSON merge
/// patch under the field manager `<manager>-halt`, unless it says all that already. Returns
/// whether it wrote. A ConfigMap that does not exist is left absent (nothing trades on it).
/// The one halt of the operator: the kill switch's fast path, a reconcile that stops serving
/// and the reconcile of a request that cannot be read.
pub async fn halt_runtime_config_map(
    ctx: &Context,
    ns: &str,
    config_map: &str,
) -> Result<bool, kube::Error> {
    let api = Api::<ConfigMap>::namespaced(ctx.client.clone(), ns);
    let Some(cm) = api.get_opt(config_map).await? else {
        return Ok(false);
    };
    let Some(data) = halt_merge(&cm.data.unwrap_or_default(), ctx.lease_epoch()) else {
        return Ok(false);
    };
    let params = PatchParams {
        field_manager: Some(format!("{}-halt", ctx.config.field_manager)),
        ..Default::default()
    };
    match api
        .patch(
            config_map,
            &params,
            &Patch::Merge(&serde_json::json!({ "data": data })),
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

/// The runtime ConfigMap a request's status names, else the one its name derives. `None` for
/// a name too long to be served (such a request never has a ConfigMap, and a shortened name
/// could be another request's).
fn config_map_of(obj: &DynamicObject) -> Option<String> {
    let name = obj
        .metadata
        .name
        .as_deref()
        .filter(|n| n.len() <= crate::crd::MAX_PROMOTION_REQUEST_NAME)?;
    Some(
        obj.data
            .pointer("/status/runtimeConfigMap")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| runtime_config_map_name(name)),
    )
}

/// Watches the namespace's PromotionRequests while this replica leads; every request seen with
/// `spec.killSwitch: true` is latched and its runtime ConfigMap halted, with at most 32 writes
/// in flight. Runs until `stopped` resolves.
pub async fn fast_path(
    ctx: Arc<Context>,
    ns: String,
    stopped: impl std::future::Future<Output = ()>,
) {
    let resource = ApiResource::erase::<PromotionRequest>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &resource);
    let limit = Arc::new(tokio::sync::Semaphore::new(32));
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    tokio::pin!(stopped);
    loop {
        let event = tokio::select! {
            e = events.next() => match e { Some(e) => e, None => return },
            _ = &mut stopped => return,
        };
        let obj = match event {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => o,
            Ok(watcher::Event::Delete(o)) => {
                if let Some(uid) = o.metadata.uid.as_deref() {
                    ctx.kill_latch.forget(uid);
                }
                continue;
            }
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "kill-switch watch");
                continue;
            }
        };
        let on = obj.data.pointer("/spec/killSwitch") == Some(&serde_json::Value::Bool(true));
        let (Some(uid), Some(name), Some(config_map)) = (
            obj.metadata.uid.clone(),
            obj.metadata.name.clone(),
            config_map_of(&obj),
        ) else {
            continue;
        };
        if !on {
            continue;
        }
        let actor = kill_switch_actor(obj.metadata.managed_fields.as_deref().unwrap_or_default())
            .unwrap_or_else(|| unverified("unknown"));
        if !ctx.kill_latch.latch(&uid, &actor) {
            continue;
        }
        tracing::warn!(request = %name, %actor, "kill switch seen: halting its runtime ConfigMap");
        ctx.metrics.kill_switch_latched();
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        let (ctx, ns) = (ctx.clone(), ns.clone());
        tokio::spawn(async move {
            let _permit = permit;
            // Retried until it lands or the ConfigMap is known absent: this write is the switch.
            for attempt in 0..20u32 {
                match halt_runtime_config_map(&ctx, &ns, &config_map).await {
                    Ok(_) => return,
                    Err(e) => {
                        tracing::warn!(request = %name, error = %e, attempt, "cannot halt the runtime ConfigMap yet");
                        tokio::time::sleep(std::time::Duration::from_millis(
                            100 * u64::from(attempt + 1),
                        ))
                        .await;
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, Time};

    fn entry(manager: &str, secs: i64, fields: serde_json::Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Update".into()),
            fields_v1: Some(FieldsV1(fields)),
            time: Some(Time(
                k8s_openapi::jiff::Timestamp::from_second(secs).expect("a time"),
            )),
            ..Default::default()
        }
    }

    #[test]
    fn the_actor_is_the_manager_of_the_kill_switch_field_not_the_latest_writer() {
        let managed = vec![
            entry(
                "argocd-controller",
                100,
                serde_json::json!({"f:spec": {"f:candidate": {}, "f:killSwitch": {}}}),
            ),
            entry(
                "kubectl-patch",
                200,
                serde_json::json!({"f:spec": {"f:killSwitch": {}}}),
            ),
            // A later annotation by someone else does not make them the switch's actor.
            entry(
                "kubectl-annotate",
                300,
                serde_json::json!({"f:metadata": {"f:annotations": {}}}),
            ),
        ];
        assert_eq!(
            kill_switch_actor(&managed).as_deref(),
            Some("unverified:kubectl-patch")
        );
        assert_eq!(kill_switch_actor(&managed[2..]), None);
    }

    #[test]
    fn a_latched_switch_stays_latched_until_the_request_is_gone() {
        let latch = KillLatch::default();
        assert!(latch.latch("u1", "oncall"));
        assert!(!latch.latch("u1", "someone-else"));
        assert_eq!(latch.actor("u1").as_deref(), Some("oncall"));
        assert_eq!(latch.actor("u2"), None);
        latch.forget("u1");
        assert_eq!(latch.actor("u1"), None);
    }
}
