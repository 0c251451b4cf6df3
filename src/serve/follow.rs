//! Following the API server: the PromotionRequest (`--promotion-request`) and the runtime
//! ConfigMap, each through a watch (changes apply as soon as the API server sends them) and a
//! periodic read with a timeout (every third of `--max-config-age`), which confirms that the
//! watch is alive and current. A read confirms only when it shows the version the watch last
//! delivered: a read that raced a newer watch event must not roll the configuration back, and a
//! watch that silently stopped is caught because its version falls behind. What is not
//! confirmed within the max age halts trading (`config_stale`, in `crate::runtime::guard`).

use super::Service;
use crate::runtime::guard::{Latch, Source, read_request};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The version of one object the watch last delivered: `None` before the watch has said
/// anything, `Some(None)` absent, `Some(Some(resourceVersion))`.
#[derive(Default)]
struct Seen(Mutex<Option<Option<String>>>);

impl Seen {
    fn set(&self, version: Option<String>) {
        *super::lock(&self.0) = Some(version);
    }
    fn matches(&self, version: &Option<String>) -> bool {
        super::lock(&self.0).as_ref() == Some(version)
    }
}

/// How often the objects are read to confirm the watch: a third of the max age, at least 100 ms.
fn period(max_age: Option<Duration>) -> Option<Duration> {
    max_age.map(|a| (a / 3).max(Duration::from_millis(100)))
}

async fn client(service: &Arc<Service>) -> Option<kube::Client> {
    match kube::Client::try_default().await {
        Ok(c) => Some(c),
        Err(e) => {
            service.apply(Err(format!("cannot reach the Kubernetes API: {e}")));
            None
        }
    }
}

/// `--runtime-config NS/NAME`: the ConfigMap alone.
pub async fn follow_config_map_only(
    service: Arc<Service>,
    namespace: String,
    name: String,
    max_age: Option<Duration>,
) {
    if let Some(client) = client(&service).await {
        follow_config_map(service, client, namespace, name, max_age).await;
    }
}

async fn follow_config_map(
    service: Arc<Service>,
    client: kube::Client,
    namespace: String,
    name: String,
    max_age: Option<Duration>,
) {
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, &namespace);
    let seen = Arc::new(Seen::default());
    let what = format!("runtime ConfigMap {namespace}/{name}");
    let watch = watch_config_map(
        service.clone(),
        api.clone(),
        name.clone(),
        what,
        seen.clone(),
    );
    let confirm = async {
        match period(max_age) {
            Some(p) => {
                confirm_config_map(service.clone(), api.clone(), name.clone(), seen, p).await
            }
            None => std::future::pending().await,
        }
    };
    tokio::join!(watch, confirm);
}

async fn watch_config_map(
    service: Arc<Service>,
    api: kube::Api<ConfigMap>,
    name: String,
    what: String,
    seen: Arc<Seen>,
) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher(api, config).default_backoff().boxed();
    let mut present = false;
    while let Some(event) = stream.next().await {
        let confirmed = match event {
            Ok(watcher::Event::Init) => {
                present = false;
                false
            }
            Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm)) => {
                present = true;
                seen.set(Some(cm.metadata.resource_version.unwrap_or_default()));
                let owner = cm
                    .metadata
                    .owner_references
                    .as_ref()
                    .and_then(|refs| refs.iter().find(|r| r.controller == Some(true)))
                    .map(|r| r.uid.clone());
                service.with_guard(|g| g.config_owner(owner));
                service.apply(Ok(cm.data.unwrap_or_default()));
                true
            }
            Ok(watcher::Event::Delete(_)) => {
                present = false;
                seen.set(None);
                service.with_guard(|g| g.config_owner(None));
                service.apply(Err(format!("{what} was deleted")));
                true
            }
            Ok(watcher::Event::InitDone) => {
                if !present {
                    seen.set(None);
                    service.apply(Err(format!("{what} not found")));
                }
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "watching the runtime ConfigMap");
                false
            }
        };
        if confirmed {
            service.with_guard(|g| g.confirm(Source::ConfigMap, Instant::now()));
        }
    }
}

async fn confirm_config_map(
    service: Arc<Service>,
    api: kube::Api<ConfigMap>,
    name: String,
    seen: Arc<Seen>,
    period: Duration,
) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match tokio::time::timeout(period, api.get_opt(&name)).await {
            Ok(Ok(found)) => {
                let version = found.map(|cm| cm.metadata.resource_version.unwrap_or_default());
                if seen.matches(&version) {
                    service.with_guard(|g| g.confirm(Source::ConfigMap, Instant::now()));
                } else {
                    service.metrics.confirmation_failed("config_map");
                    tracing::warn!(read = ?version, "the runtime ConfigMap read does not match the watch: not confirmed");
                }
            }
            Ok(Err(e)) => {
                service.metrics.confirmation_failed("config_map");
                tracing::warn!(error = %e, "reading the runtime ConfigMap");
            }
            Err(_) => {
                service.metrics.confirmation_failed("config_map");
                tracing::warn!(
                    timeout_ms = period.as_millis() as u64,
                    "reading the runtime ConfigMap timed out"
                );
            }
        }
    }
}

/// `--promotion-request NS/NAME`: the request (kill switch latch, presence, the ConfigMap's
/// name) and its runtime ConfigMap.
pub async fn follow_request(
    service: Arc<Service>,
    namespace: String,
    name: String,
    max_age: Option<Duration>,
) {
    let Some(client) = client(&service).await else {
        service
            .with_guard(|g| g.request_problem(Some("the Kubernetes API cannot be reached".into())));
        return;
    };
    let resource = ApiResource::erase::<crate::crd::PromotionRequest>(&());
    let api: kube::Api<DynamicObject> =
        kube::Api::namespaced_with(client.clone(), &namespace, &resource);
    let default_map = crate::controller::promotion::runtime_config_map_name(&name);
    let (map_tx, mut map_rx) = tokio::sync::watch::channel(default_map);
    // The ConfigMap follower, restarted when the request names another ConfigMap.
    let follower = {
        let (service, client, namespace) = (service.clone(), client.clone(), namespace.clone());
        async move {
            let spawn = |name: String| {
                tokio::spawn(follow_config_map(
                    service.clone(),
                    client.clone(),
                    namespace.clone(),
                    name,
                    max_age,
                ))
            };
            let mut current = map_rx.borrow_and_update().clone();
            let mut task = spawn(current.clone());
            while map_rx.changed().await.is_ok() {
                let next = map_rx.borrow_and_update().clone();
                if next == current {
                    continue;
                }
                tracing::info!(from = %current, to = %next, "the request names another runtime ConfigMap");
                task.abort();
                service.apply(Err(format!(
                    "switching to runtime ConfigMap {namespace}/{next}"
                )));
                current = next;
                task = spawn(current.clone());
            }
            let _ = task.await;
        }
    };
    let seen = Arc::new(Seen::default());
    let what = format!("PromotionRequest {namespace}/{name}");
    let watch = watch_request(
        service.clone(),
        api.clone(),
        name.clone(),
        what.clone(),
        seen.clone(),
        map_tx.clone(),
    );
    let confirm = async {
        match period(max_age) {
            Some(p) => {
                confirm_request(
                    service.clone(),
                    api.clone(),
                    name.clone(),
                    what.clone(),
                    seen,
                    p,
                )
                .await
            }
            None => std::future::pending().await,
        }
    };
    tokio::join!(follower, watch, confirm);
}

/// One observation of the request (`None`: absent), from the watch or a read.
fn observe_request(
    service: &Service,
    what: &str,
    object: Option<&DynamicObject>,
    context: &str,
    map_tx: Option<&tokio::sync::watch::Sender<String>>,
) {
    let Some(object) = object else {
        tracing::error!("{what} {context}: trading halted");
        service.with_guard(|g| {
            g.request_backing(None, None);
            g.request_problem(Some(format!("{what} {context}")))
        });
        return;
    };
    let view = read_request(&object.data);
    let uid = object.metadata.uid.clone();
    let unobserved =
        crate::runtime::guard::unobserved_changes(object.metadata.generation, &object.data);
    let latch = service.with_guard(|g| {
        g.request_backing(uid, view.promoted_stage.clone());
        g.request_problem(
            view.problem
                .as_ref()
                .map(|p| format!("{what} is malformed: {p}"))
                .or_else(|| unobserved.as_ref().map(|u| format!("{what}: {u}"))),
        );
        g.kill_switch(view.kill_switch, context)
    });
    if let Some(p) = &view.problem {
        tracing::error!(problem = %p, "{what} is malformed: trading halted");
    }
    match latch {
        Latch::Engaged => {
            tracing::error!("{what}: kill switch engaged ({context}); trading halted until restart")
        }
        Latch::ReleaseIgnored => {
            service.metrics.kill_switch_release_ignored();
            tracing::warn!(
                "{what}: kill switch seen off again ({context}); ignored, trading stays halted until restart"
            );
        }
        Latch::Open | Latch::Held => {}
    }
    if let (Some(tx), Some(map)) = (map_tx, view.runtime_config_map) {
        tx.send_if_modified(|current| {
            let changed = *current != map;
            if changed {
                *current = map;
            }
            changed
        });
    }
}

async fn watch_request(
    service: Arc<Service>,
    api: kube::Api<DynamicObject>,
    name: String,
    what: String,
    seen: Arc<Seen>,
    map_tx: tokio::sync::watch::Sender<String>,
) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher(api, config).default_backoff().boxed();
    let mut present = false;
    while let Some(event) = stream.next().await {
        let confirmed = match event {
            Ok(watcher::Event::Init) => {
                present = false;
                false
            }
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                present = true;
                seen.set(Some(
                    o.metadata.resource_version.clone().unwrap_or_default(),
                ));
                observe_request(&service, &what, Some(&o), "watch", Some(&map_tx));
                true
            }
            Ok(watcher::Event::Delete(_)) => {
                present = false;
                seen.set(None);
                observe_request(&service, &what, None, "was deleted", None);
                true
            }
            Ok(watcher::Event::InitDone) => {
                if !present {
                    seen.set(None);
                    observe_request(&service, &what, None, "not found", None);
                }
                true
            }
            Err(e) => {
                // A malformed object fails to decode here too; DynamicObject decodes anything
                // with metadata, so this is the connection.
                tracing::warn!(error = %e, "watching the PromotionRequest");
                false
            }
        };
        if confirmed {
            service.with_guard(|g| g.confirm(Source::Request, Instant::now()));
        }
    }
}

async fn confirm_request(
    service: Arc<Service>,
    api: kube::Api<DynamicObject>,
    name: String,
    what: String,
    seen: Arc<Seen>,
    period: Duration,
) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match tokio::time::timeout(period, api.get_opt(&name)).await {
            Ok(Ok(found)) => {
                // An engaged kill switch counts from any source, at once.
                if let Some(o) = found.as_ref().filter(|o| read_request(&o.data).kill_switch) {
                    observe_request(&service, &what, Some(o), "read", None);
                }
                let version = found.map(|o| o.metadata.resource_version.unwrap_or_default());
                if seen.matches(&version) {
                    service.with_guard(|g| g.confirm(Source::Request, Instant::now()));
                } else {
                    service.metrics.confirmation_failed("promotion_request");
                    tracing::warn!(read = ?version, "the PromotionRequest read does not match the watch: not confirmed");
                }
            }
            Ok(Err(e)) => {
                service.metrics.confirmation_failed("promotion_request");
                tracing::warn!(error = %e, "reading the PromotionRequest");
            }
            Err(_) => {
                service.metrics.confirmation_failed("promotion_request");
                tracing::warn!(
                    timeout_ms = period.as_millis() as u64,
                    "reading the PromotionRequest timed out"
                );
            }
        }
    }
}
