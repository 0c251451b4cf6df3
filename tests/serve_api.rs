//! The decision service in its API modes (`--promotion-request`, `--runtime-config`) against a
//! fake API server on 127.0.0.1 (list, watch and get of PromotionRequests and ConfigMaps; it
//! can be taken down and brought back): the kill switch latches from the watch stream (on, then
//! off within the same millisecond: still halted), a deleted or malformed request halts, a
//! ConfigMap for another request is refused, the request's `status.runtimeConfigMap` is
//! followed, and a configuration that cannot be confirmed within `--max-config-age` halts
//! (`config_stale`, /readyz 503) until a fresh read. Timings are printed, never asserted beyond
//! generous liveness bounds.

mod common;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::http;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const JANUS: &str = env!("CARGO_BIN_EXE_janus");
const CONFIG_MAPS: &str = "configmaps";
const REQUESTS: &str = "promotionrequests";

/// The fake API server's objects (by resource and name; one namespace) and watch events.
struct Fake {
    objects: Mutex<BTreeMap<(String, String), Value>>,
    version: AtomicU64,
    events: tokio::sync::broadcast::Sender<(String, String, Value)>,
    down: AtomicBool,
}

type Shared = Arc<Fake>;

fn status(code: u16, reason: &str) -> Response {
    let body = json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
        "message": reason, "reason": reason, "code": code});
    (
        StatusCode::from_u16(code).unwrap(),
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn selected(query: &HashMap<String, String>) -> Option<String> {
    query
        .get("fieldSelector")
        .and_then(|f| f.strip_prefix("metadata.name="))
        .map(str::to_string)
}

async fn list_or_watch(
    State(fake): State<Shared>,
    UrlPath(resource): UrlPath<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if fake.down.load(Ordering::SeqCst) {
        return status(503, "ServiceUnavailable");
    }
    let name = selected(&query);
    if query.get("watch").map(String::as_str) == Some("true") {
        let rx = fake.events.subscribe();
        let stream = futures::stream::unfold(
            (rx, fake.clone(), resource, name),
            |(mut rx, fake, resource, name)| async move {
                loop {
                    if fake.down.load(Ordering::SeqCst) {
                        return None;
                    }
                    match tokio::time::timeout(Duration::from_millis(20), rx.recv()).await {
                        Err(_) => continue,
                        Ok(Ok((r, n, event))) => {
                            if r == resource && name.as_ref().is_none_or(|x| *x == n) {
                                let line = format!("{event}\n");
                                return Some((
                                    Ok::<_, std::convert::Infallible>(line),
                                    (rx, fake, resource, name),
                                ));
                            }
                        }
                        Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
                        Ok(Err(_)) => return None,
                    }
                }
            },
        );
        return (
            [("content-type", "application/json")],
            axum::body::Body::from_stream(stream),
        )
            .into_response();
    }
    let objects = fake.objects.lock().unwrap();
    let items: Vec<Value> = objects
        .iter()
        .filter(|((r, n), _)| *r == resource && name.as_ref().is_none_or(|x| x == n))
        .map(|(_, v)| v.clone())
        .collect();
    let body = json!({"apiVersion": "v1", "kind": "List",
        "metadata": {"resourceVersion": fake.version.load(Ordering::SeqCst).to_string()},
        "items": items});
    ([("content-type", "application/json")], body.to_string()).into_response()
}

async fn get_one(
    State(fake): State<Shared>,
    UrlPath((resource, name)): UrlPath<(String, String)>,
) -> Response {
    if fake.down.load(Ordering::SeqCst) {
        return status(503, "ServiceUnavailable");
    }
    match fake.objects.lock().unwrap().get(&(resource, name)) {
        Some(v) => ([("content-type", "application/json")], v.to_string()).into_response(),
        None => status(404, "NotFound"),
    }
}

struct Api {
    fake: Shared,
    addr: String,
    _runtime: tokio::runtime::Runtime,
}

impl Api {
    fn start() -> Self {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (events, _) = tokio::sync::broadcast::channel(1024);
        let fake = Arc::new(Fake {
            objects: Mutex::new(BTreeMap::new()),
            version: AtomicU64::new(1),
            events,
            down: AtomicBool::new(false),
        });
        let app = axum::Router::new()
            .route(
                "/api/v1/namespaces/{ns}/{resource}",
                axum::routing::get(|s, UrlPath((_, r)): UrlPath<(String, String)>, q| {
                    list_or_watch(s, UrlPath(r), q)
                }),
            )
            .route(
                "/api/v1/namespaces/{ns}/{resource}/{name}",
                axum::routing::get(|s, UrlPath((_, r, n)): UrlPath<(String, String, String)>| {
                    get_one(s, UrlPath((r, n)))
                }),
            )
            .route(
                "/apis/janus.torghut.io/v1alpha1/namespaces/{ns}/{resource}",
                axum::routing::get(|s, UrlPath((_, r)): UrlPath<(String, String)>, q| {
                    list_or_watch(s, UrlPath(r), q)
                }),
            )
            .route(
                "/apis/janus.torghut.io/v1alpha1/namespaces/{ns}/{resource}/{name}",
                axum::routing::get(|s, UrlPath((_, r, n)): UrlPath<(String, String, String)>| {
                    get_one(s, UrlPath((r, n)))
                }),
            )
            .with_state(fake.clone());
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        runtime.spawn(async move { axum::serve(listener, app).await });
        Api {
            fake,
            addr,
            _runtime: runtime,
        }
    }

    /// Creates or replaces an object; watchers see it at once.
    fn put(&self, resource: &str, mut object: Value) {
        let name = object["metadata"]["name"].as_str().unwrap().to_string();
        let version = self.fake.version.fetch_add(1, Ordering::SeqCst) + 1;
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        object["metadata"]["namespace"] = json!("ns");
        object["metadata"]["uid"] = json!(format!("uid-{name}"));
        let existed = self
            .fake
            .objects
            .lock()
            .unwrap()
            .insert((resource.to_string(), name.clone()), object.clone())
            .is_some();
        let kind = if existed { "MODIFIED" } else { "ADDED" };
        let _ = self.fake.events.send((
            resource.to_string(),
            name,
            json!({"type": kind, "object": object}),
        ));
    }

    fn delete(&self, resource: &str, name: &str) {
        let removed = self
            .fake
            .objects
            .lock()
            .unwrap()
            .remove(&(resource.to_string(), name.to_string()));
        if let Some(mut object) = removed {
            let version = self.fake.version.fetch_add(1, Ordering::SeqCst) + 1;
            object["metadata"]["resourceVersion"] = json!(version.to_string());
            let _ = self.fake.events.send((
                resource.to_string(),
                name.to_string(),
                json!({"type": "DELETED", "object": object}),
            ));
        }
    }

    fn set_down(&self, down: bool) {
        self.fake.down.store(down, Ordering::SeqCst);
    }

    fn kubeconfig(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{}\n\
             users:\n- name: u\n  user: {{}}\ncontexts:\n- name: c\n  context:\n    cluster: fake\n    user: u\n    namespace: ns\n\
             current-context: c\n",
            self.addr
        );
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// A PromotionRequest with UID `uid-<name>`, promoted at paper unless `status` says otherwise.
fn request(name: &str, kill: Value, status: Value) -> Value {
    let mut full = json!({"phase": "Promoted", "stage": "paper"});
    if let (Some(full), Some(given)) = (full.as_object_mut(), status.as_object()) {
        full.extend(given.clone());
    }
    json!({"apiVersion": "janus.torghut.io/v1alpha1", "kind": "PromotionRequest",
        "metadata": {"name": name, "uid": format!("uid-{name}")},
        "spec": {"candidate": "c1", "target": "paper", "killSwitch": kill},
        "status": full})
}

/// A runtime ConfigMap as the operator writes it: its controller owner is the request, by UID.
fn config_map(name: &str, request: &str, trading: bool, candidate: &str) -> Value {
    let sha = janus::contracts::Sha256Hex::of_bytes(b"a model").to_string();
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name,
            "ownerReferences": [{"apiVersion": "janus.torghut.io/v1alpha1", "kind": "PromotionRequest",
                "name": request, "uid": format!("uid-{request}"), "controller": true}]},
        "data": {"stage": "paper", "candidate": candidate, "promotionRequest": request,
            "modelUri": "missing.onnx", "modelSha256": sha,
            "tradingEnabled": trading.to_string(), "forceFallback": (!trading).to_string()}})
}

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(kubeconfig: &std::path::Path, args: &[&str]) -> Server {
    let mut child = Command::new(JANUS)
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "text"])
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().rsplit("http://").next().unwrap().to_string();
    Server { child, addr }
}

fn decide(s: &Server) -> Value {
    let body = serde_json::to_vec(&json!({"event": {
        "event_id": "e", "timestamp": chrono::Utc::now().to_rfc3339(), "symbol": "600000.SH",
        "event_type": "dividend", "title": "dividend raised"}}))
    .unwrap();
    let (status, text) = http(&s.addr, "POST", "/v1/decide", &body);
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

fn reason(d: &Value) -> (String, String) {
    (
        d["source"].as_str().unwrap_or("").to_string(),
        d["reason"].as_str().unwrap_or("").to_string(),
    )
}

fn trading(s: &Server) -> bool {
    decide(s)["source"] == "fallback"
}

fn metric(s: &Server, prefix: &str) -> f64 {
    let (_, text) = http(&s.addr, "GET", "/metrics", b"");
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits (at most 30 s) until `f`, and says how long it took.
fn wait_until(what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(30), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
    t0.elapsed()
}

#[test]
fn the_service_follows_its_promotion_request() {
    let api = Api::start();
    let tmp = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(tmp.path());
    for n in ["p1", "p2", "p3"] {
        api.put(REQUESTS, request(n, json!(false), json!({})));
        api.put(
            CONFIG_MAPS,
            config_map(&format!("{n}-runtime"), n, true, "c1"),
        );
    }
    // p3's ConfigMap names another request.
    api.put(CONFIG_MAPS, config_map("p3-runtime", "p1", true, "c1"));
    // p4's status names its ConfigMap; the default name holds something else.
    api.put(
        REQUESTS,
        request("p4", json!(false), json!({"runtimeConfigMap": "p4-custom"})),
    );
    api.put(CONFIG_MAPS, config_map("p4-custom", "p4", true, "c1"));
    api.put(CONFIG_MAPS, config_map("p4-runtime", "p4", false, "c1"));
    // p5's kill switch is not a boolean (an API server would refuse it; a fake does not).
    api.put(REQUESTS, request("p5", json!("yes"), json!({})));
    api.put(CONFIG_MAPS, config_map("p5-runtime", "p5", true, "c1"));

    let s: Vec<Server> = ["p1", "p2", "p3", "p4", "p5"]
        .iter()
        .map(|n| serve(&kubeconfig, &["--promotion-request", &format!("ns/{n}")]))
        .collect();
    wait_until("p1 trades", || trading(&s[0]));
    wait_until("p2 trades", || trading(&s[1]));
    wait_until("p4 trades on the ConfigMap its status names", || {
        trading(&s[3])
    });
    wait_until("p3 refuses another request's ConfigMap", || {
        reason(&decide(&s[2])) == ("halted".into(), "no_runtime_config".into())
    });
    let d = decide(&s[2]);
    assert!(d["detail"].as_str().unwrap().contains("not `p3`"), "{d}");
    wait_until("p5 is halted while malformed", || {
        reason(&decide(&s[4])) == ("halted".into(), "request_unavailable".into())
    });

    // The kill switch on, then off within the same millisecond: halted, and it stays so.
    let on = Instant::now();
    api.put(REQUESTS, request("p1", json!(true), json!({})));
    api.put(REQUESTS, request("p1", json!(false), json!({})));
    let latency = wait_until("the kill switch applies", || {
        reason(&decide(&s[0])) == ("halted".into(), "kill_switch".into())
    });
    eprintln!(
        "fake API: kill switch written → first kill_switch decision: {latency:?} ({:?} since the write)",
        on.elapsed()
    );
    // Whatever comes after: a new ConfigMap with trading on, the switch still off.
    api.put(CONFIG_MAPS, config_map("p1-runtime", "p1", true, "c2"));
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..20 {
        assert_eq!(
            reason(&decide(&s[0])),
            ("halted".into(), "kill_switch".into())
        );
    }
    assert_eq!(metric(&s[0], "janus_kill_switch_latched"), 1.0);
    assert!(metric(&s[0], "janus_kill_switch_release_ignored_total") >= 1.0);
    assert_eq!(metric(&s[0], "janus_trading_enabled"), 0.0);

    // A deleted request halts while it is gone.
    api.delete(REQUESTS, "p2");
    wait_until("p2 halts", || {
        reason(&decide(&s[1])) == ("halted".into(), "request_unavailable".into())
    });
    api.put(REQUESTS, request("p2", json!(false), json!({})));
    wait_until("p2 trades once it is back", || trading(&s[1]));
}

#[test]
fn an_unconfirmed_configuration_halts_trading() {
    let api = Api::start();
    let tmp = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(tmp.path());
    api.put(REQUESTS, request("p1", json!(false), json!({})));
    api.put(CONFIG_MAPS, config_map("p1-runtime", "p1", true, "c1"));
    let servers = [
        serve(
            &kubeconfig,
            &["--promotion-request", "ns/p1", "--max-config-age", "2"],
        ),
        serve(
            &kubeconfig,
            &["--runtime-config", "ns/p1-runtime", "--max-config-age", "2"],
        ),
    ];
    for s in &servers {
        wait_until("trades", || trading(s));
        wait_until("ready", || http(&s.addr, "GET", "/readyz", b"").0 == 200);
    }
    // Confirmed by the reads while nothing changes: no staleness after several max ages.
    std::thread::sleep(Duration::from_secs(5));
    for s in &servers {
        assert!(trading(s), "{}", decide(s));
    }

    api.set_down(true);
    for s in &servers {
        let stale = wait_until("config_stale", || {
            reason(&decide(s)) == ("halted".into(), "config_stale".into())
        });
        let (status, body) = http(&s.addr, "GET", "/readyz", b"");
        assert_eq!(status, 503);
        assert!(body.contains("config_stale"), "{body}");
        eprintln!("API down → first config_stale decision: {stale:?} (max age 2 s)");
    }
    api.set_down(false);
    for s in &servers {
        let resumed = wait_until("resumes after a fresh read", || trading(s));
        assert_eq!(http(&s.addr, "GET", "/readyz", b"").0, 200);
        eprintln!("API back → trading again: {resumed:?}");
    }
}
