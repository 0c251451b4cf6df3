//! `janus serve`: the decision service. For each event the trading lane posts, it answers with a
//! decision within a time budget: the promoted model's call when the runtime configuration
//! allows it and inference finishes in time, else the deterministic fallback, and nothing at
//! all when trading is disabled, the event is stale or out of session. The rules are plain
//! functions in `crate::runtime::decision`; this module is the HTTP service, the runtime
//! configuration source (the operator's ConfigMap, watched, or a file) and the model swap.

pub mod metrics;

use crate::contracts::Sha256Hex;
use crate::contracts::event_car::EventCarArtifact;
use crate::contracts::read_artifact;
use crate::evaluation::baseline::TypeTable;
use crate::runtime::config::RuntimeConfig;
use crate::runtime::decision::{self, Book, DecideRequest, Decision, Rules, Session, Source};
use crate::runtime::onnx::OnnxPolicy;
use crate::taxonomy::{EventType, Normalizer};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use clap::Args;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one; the first line printed says which).
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub listen: String,
    /// The runtime ConfigMap the operator writes, NAMESPACE/NAME, watched through the API.
    #[arg(
        long,
        conflicts_with = "runtime_file",
        required_unless_present = "runtime_file"
    )]
    pub runtime_config: Option<String>,
    /// A file with the same data as a JSON object (`janus demo` writes `runtime.json`); re-read
    /// when it changes.
    #[arg(long)]
    pub runtime_file: Option<PathBuf>,
    /// Root that relative `modelUri`/`historyUri` are resolved against (default: the runtime
    /// file's directory, or /artifacts with --runtime-config).
    #[arg(long)]
    pub artifacts_root: Option<PathBuf>,
    /// Per-request budget for inference; a late answer is replaced by the fallback.
    #[arg(long, default_value_t = 50)]
    pub timeout_ms: u64,
    /// Events older than this are suppressed.
    #[arg(long, default_value_t = 300)]
    pub max_event_age_seconds: i64,
    /// Trading session in UTC, HH:MM-HH:MM (repeat for several); default: always open.
    /// Shanghai's A-share sessions are `--session 01:30-03:30 --session 05:00-07:00`.
    #[arg(long)]
    pub session: Vec<String>,
    /// Notional of a strong call.
    #[arg(long, default_value_t = 10_000.0)]
    pub unit_notional: f64,
    /// Trade weak calls too, at half the unit (the backtest's default is not to).
    #[arg(long)]
    pub trade_weak: bool,
    /// Fault injection for drills and tests: make every inference take this long.
    #[arg(long, default_value_t = 0, hide = true)]
    pub inject_inference_delay_ms: u64,
    /// `json` (default) or `text` logs.
    #[arg(long, default_value = "json")]
    pub log_format: String,
}

/// What the service runs with at one moment; replaced whole, never edited, so a request keeps a
/// consistent view while a new configuration or model arrives.
struct Loaded {
    config: Result<RuntimeConfig, String>,
    model: Result<Arc<Mutex<OnnxPolicy>>, String>,
    fallback: Arc<TypeTable>,
}

pub struct Service {
    current: RwLock<Arc<Loaded>>,
    book: Mutex<Book>,
    rules: Rules,
    budget: Duration,
    inject_delay: Duration,
    root: PathBuf,
    normalizer: Normalizer,
    ready: AtomicBool,
    pub metrics: metrics::ServeMetrics,
}

fn resolve(root: &Path, uri: &str) -> PathBuf {
    let p = Path::new(uri.trim_start_matches("file://"));
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        root.join(p)
    }
}

/// The fallback's per-type statistics from the run's labelled events (the baseline's
/// trailing window, ending at the last labelled event).
fn fallback_table(path: &Path, window_days: i64) -> Result<TypeTable, String> {
    let artifact: EventCarArtifact = read_artifact(path).map_err(|e| e.to_string())?;
    let labelled: Vec<_> = artifact
        .records
        .iter()
        .filter_map(|r| Some((r.d0?, r.label.as_ref()?)))
        .collect();
    let last = labelled.iter().map(|(d, _)| *d).max();
    let mut table = TypeTable::default();
    for (d0, label) in labelled {
        if last.is_some_and(|l| (l - d0).num_days() <= window_days) {
            table.add(label.event_type, label.car);
        }
    }
    Ok(table)
}

impl Service {
    pub fn new(args: &ServeArgs) -> Result<Self, String> {
        let sessions = args
            .session
            .iter()
            .map(|s| Session::parse(s))
            .collect::<Result<Vec<_>, _>>()?;
        if !(args.unit_notional.is_finite() && args.unit_notional >= 0.0) {
            return Err(format!(
                "--unit-notional {} must be ≥ 0",
                args.unit_notional
            ));
        }
        let rules = Rules {
            max_event_age: chrono::Duration::seconds(args.max_event_age_seconds),
            sessions,
            unit_notional: args.unit_notional,
            trade_weak: args.trade_weak,
            ..Rules::default()
        };
        let root = match (&args.artifacts_root, &args.runtime_file) {
            (Some(r), _) => r.clone(),
            (None, Some(f)) => f
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
            (None, None) => PathBuf::from("/artifacts"),
        };
        Ok(Self {
            current: RwLock::new(Arc::new(Loaded {
                config: Err("no runtime configuration read yet".into()),
                model: Err("no model loaded yet".into()),
                fallback: Arc::new(TypeTable::default()),
            })),
            book: Mutex::new(Book::default()),
            rules,
            budget: Duration::from_millis(args.timeout_ms),
            inject_delay: Duration::from_millis(args.inject_inference_delay_ms),
            root,
            normalizer: Normalizer::default(),
            ready: AtomicBool::new(false),
            metrics: metrics::ServeMetrics::default(),
        })
    }

    fn snapshot(&self) -> Arc<Loaded> {
        self.current.read().expect("not poisoned").clone()
    }

    /// Applies a new runtime configuration (or the reason there is none). Flags take effect at
    /// once; a new model is loaded and verified first, the fallback serving meanwhile.
    pub async fn apply(self: &Arc<Self>, data: Result<BTreeMap<String, String>, String>) {
        let config = data.and_then(|d| RuntimeConfig::from_data(&d));
        let previous = self.snapshot();
        let same_model = matches!((&config, &previous.config), (Ok(a), Ok(b))
            if a.model_sha256 == b.model_sha256 && a.model_uri == b.model_uri && a.history_uri == b.history_uri);
        match &config {
            Ok(c) => {
                tracing::info!(stage = %c.stage, candidate = %c.candidate, trading_enabled = c.trading_enabled,
                    force_fallback = c.force_fallback, model_sha256 = %c.model_sha256, "runtime configuration");
                self.metrics.trading(c.trading_enabled);
            }
            Err(e) => {
                tracing::warn!(error = %e, "no usable runtime configuration: trading halted");
                self.metrics.trading(false);
            }
        }
        if same_model {
            self.swap(Loaded {
                config,
                model: previous.model.clone(),
                fallback: previous.fallback.clone(),
            });
        } else {
            // The flags now; the model once it is verified.
            self.swap(Loaded {
                config: config.clone(),
                model: Err("loading the model".into()),
                fallback: previous.fallback.clone(),
            });
            if let Ok(c) = config.clone() {
                let root = self.root.clone();
                let loaded =
                    tokio::task::spawn_blocking(move || load_model_and_history(&root, &c)).await;
                let (model, fallback) = match loaded {
                    Ok(x) => x,
                    Err(e) => (Err(format!("model loading panicked: {e}")), None),
                };
                if let Err(e) = &model {
                    let reason = if e.contains("hashes to") {
                        "digest_mismatch"
                    } else {
                        "load_failed"
                    };
                    self.metrics.model_error(reason);
                    tracing::error!(error = %e, "model refused: serving the fallback");
                }
                // Only install it if the configuration did not change meanwhile.
                let now = self.snapshot();
                if matches!(&now.config, Ok(n) if Ok(n) == config.as_ref()) {
                    self.swap(Loaded {
                        config: now.config.clone(),
                        model: model.map(|m| Arc::new(Mutex::new(m))),
                        fallback: fallback
                            .map(Arc::new)
                            .unwrap_or_else(|| now.fallback.clone()),
                    });
                }
            }
        }
        self.ready.store(true, Ordering::Relaxed);
    }

    fn swap(&self, loaded: Loaded) {
        *self.current.write().expect("not poisoned") = Arc::new(loaded);
    }

    /// One decision.
    #[tracing::instrument(name = "decide", skip_all, fields(event_id = %request.event.event_id, symbol = %request.event.symbol))]
    pub async fn decide(&self, request: DecideRequest) -> Decision {
        let started = Instant::now();
        self.metrics.event();
        let now = Utc::now();
        let loaded = self.snapshot();
        let event = request.event;
        let config = loaded.config.as_ref().map_err(String::as_str);
        let base =
            |source: Source, reason: &str, detail: String, notional: f64, direction| Decision {
                event_id: event.event_id.clone(),
                direction,
                notional,
                source,
                reason: reason.to_string(),
                detail,
                stage: config.ok().map(|c| c.stage.clone()),
                candidate: config.ok().map(|c| c.candidate.clone()),
                model_sha256: config.ok().map(|c| c.model_sha256.to_string()),
                latency_ms: 0.0,
            };
        let hold = crate::contracts::label::Direction::Hold;
        let mut decision = if let Some((source, reason, detail)) =
            decision::admission(config, &event, &self.rules, now)
        {
            base(source, reason, detail, 0.0, hold)
        } else {
            let config = config.expect("admitted only with a configuration");
            let event_type = event
                .event_type
                .as_deref()
                .map(|t| self.normalizer.normalize(t))
                .unwrap_or(EventType::Unknown);
            let (prediction, source, reason, detail) = match (&loaded.model, config.force_fallback)
            {
                (_, true) => (
                    None,
                    Source::Fallback,
                    "force_fallback",
                    "forceFallback=true in the runtime configuration".to_string(),
                ),
                (Err(e), false) => (None, Source::Fallback, "model_unavailable", e.clone()),
                (Ok(model), false) => {
                    self.infer(model.clone(), event_type, &event.symbol, &event.title)
                        .await
                }
            };
            let prediction = prediction
                .unwrap_or_else(|| decision::fallback(&loaded.fallback, event_type, &self.rules));
            let wanted = decision::order(&prediction, &self.rules);
            if decision::is_shadow(config) {
                // A fallback keeps its reason (timeouts matter in shadow statistics too).
                let reason = if reason == "ok" { "shadow" } else { reason };
                let mut d = base(source, reason, detail, 0.0, prediction.direction);
                d.detail = format!("{}; shadow stage: order {wanted} not placed", d.detail);
                d.latency_ms = started.elapsed().as_secs_f64() * 1e3;
                self.metrics.decision(d.source.name(), reason, d.latency_ms);
                return d;
            }
            let (notional, actions) = self.book.lock().expect("not poisoned").place(
                config.canary_limits.as_ref(),
                &event.symbol,
                wanted,
                now,
                self.rules.holding,
            );
            let mut d = base(source, reason, detail, notional, prediction.direction);
            if !actions.is_empty() {
                for a in &actions {
                    self.metrics.limit(a.limit, a.action);
                }
                let last = actions.last().expect("not empty");
                d.reason = format!("{}_{}", last.limit, last.action);
                d.detail = format!(
                    "{}; order {wanted} → {notional} by {}",
                    d.detail,
                    actions
                        .iter()
                        .map(|a| format!("{} ({})", a.limit, a.action))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            d
        };
        decision.latency_ms = started.elapsed().as_secs_f64() * 1e3;
        self.metrics.decision(
            decision.source.name(),
            &decision.reason,
            decision.latency_ms,
        );
        decision
    }

    /// Runs the model within the budget: (prediction, source, reason, detail).
    async fn infer(
        &self,
        model: Arc<Mutex<OnnxPolicy>>,
        event_type: EventType,
        symbol: &str,
        title: &str,
    ) -> (
        Option<crate::contracts::label::Prediction>,
        Source,
        &'static str,
        String,
    ) {
        let (symbol, title) = (symbol.to_string(), title.to_string());
        let delay = self.inject_delay;
        let task = tokio::task::spawn_blocking(move || {
            if !delay.is_zero() {
                std::thread::sleep(delay);
            }
            let mut m = model
                .lock()
                .map_err(|_| "the model lock is poisoned".to_string())?;
            let dim = m.dim();
            let buckets = dim.saturating_sub(crate::training::features::HASH_OFFSET);
            let mut dense = vec![0f32; dim];
            for (i, v) in crate::training::features::encode(event_type, &symbol, &title, buckets) {
                if let Some(x) = dense.get_mut(i as usize) {
                    *x += v;
                }
            }
            m.predict(&dense)
        });
        match tokio::time::timeout(self.budget, task).await {
            Ok(Ok(Ok(p))) => (Some(p), Source::Model, "ok", "model".to_string()),
            Ok(Ok(Err(e))) => {
                self.metrics.model_error("inference_error");
                (None, Source::Fallback, "inference_error", e)
            }
            Ok(Err(e)) => {
                self.metrics.model_error("inference_error");
                (None, Source::Fallback, "inference_error", e.to_string())
            }
            Err(_) => {
                self.metrics.model_error("inference_timeout");
                (
                    None,
                    Source::Fallback,
                    "inference_timeout",
                    format!("inference took longer than {} ms", self.budget.as_millis()),
                )
            }
        }
    }
}

/// Reads, verifies and loads the model; reads the fallback's history. Blocking.
fn load_model_and_history(
    root: &Path,
    c: &RuntimeConfig,
) -> (Result<OnnxPolicy, String>, Option<TypeTable>) {
    let path = resolve(root, &c.model_uri);
    let model = std::fs::read(&path)
        .map_err(|e| format!("cannot read the model {}: {e}", path.display()))
        .and_then(|bytes| {
            let digest = Sha256Hex::of_bytes(&bytes);
            if digest != c.model_sha256 {
                return Err(format!(
                    "model {} hashes to {digest}, but the runtime configuration pins {}: refused",
                    path.display(),
                    c.model_sha256
                ));
            }
            OnnxPolicy::load_inferring_dim(&bytes)
        });
    let window = crate::evaluation::backtest::BacktestConfig::default().weight_window as i64;
    let history = c.history_uri.as_ref().and_then(|h| {
        let path = resolve(root, h);
        fallback_table(&path, window * 7 / 5)
            .map_err(|e| tracing::warn!(error = %e, "no fallback history: the fallback holds"))
            .ok()
    });
    (model, history)
}

// ---------- HTTP ----------

fn error(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({"error": message}).to_string(),
    )
        .into_response()
}

async fn decide_handler(State(service): State<Arc<Service>>, body: Bytes) -> Response {
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("request body is not JSON: {e}"),
            );
        }
    };
    let request: DecideRequest = match serde_path_to_error::deserialize(value) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("field `{}`: {}", e.path(), e.inner()),
            );
        }
    };
    if let Err(e) = request.event.validate() {
        return error(StatusCode::UNPROCESSABLE_ENTITY, e);
    }
    let d = service.decide(request).await;
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_string(&d).expect("decisions serialize"),
    )
        .into_response()
}

async fn runtime_handler(State(service): State<Arc<Service>>) -> Response {
    let l = service.snapshot();
    let body = serde_json::json!({
        "config": l.config.as_ref().ok().map(RuntimeConfig::to_data),
        "config_error": l.config.as_ref().err(),
        "model": if l.model.is_ok() { "loaded" } else { "unavailable" },
        "model_error": l.model.as_ref().err(),
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub fn router(service: Arc<Service>) -> Router {
    async fn metrics(State(s): State<Arc<Service>>) -> impl IntoResponse {
        s.metrics.response()
    }
    async fn ready(State(s): State<Arc<Service>>) -> StatusCode {
        if s.ready.load(Ordering::Relaxed) {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
    Router::new()
        .route("/v1/decide", post(decide_handler))
        .route("/v1/runtime", get(runtime_handler))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(service)
}

// ---------- runtime configuration sources ----------

fn read_runtime_file(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| format!("{}: not a JSON object of strings: {e}", path.display()))
}

/// Re-reads the file whenever its content changes (every 100 ms).
async fn watch_file(service: Arc<Service>, path: PathBuf) {
    let mut last: Option<Result<BTreeMap<String, String>, String>> = None;
    loop {
        let now = read_runtime_file(&path);
        if last.as_ref() != Some(&now) {
            service.apply(now.clone()).await;
            last = Some(now);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Watches the runtime ConfigMap through the API: a change applies as soon as the API
/// server sends it, without waiting for a mounted volume to refresh.
async fn watch_config_map(service: Arc<Service>, namespace: String, name: String) {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::{WatchStreamExt, watcher};
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            service
                .apply(Err(format!("cannot reach the Kubernetes API: {e}")))
                .await;
            return;
        }
    };
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, &namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher(api, config).default_backoff().boxed();
    let mut seen = false;
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm)) => {
                seen = true;
                service.apply(Ok(cm.data.unwrap_or_default())).await;
            }
            Ok(watcher::Event::Delete(_)) => {
                seen = false;
                service
                    .apply(Err(format!(
                        "runtime ConfigMap {namespace}/{name} was deleted"
                    )))
                    .await;
            }
            Ok(watcher::Event::InitDone) if !seen => {
                service
                    .apply(Err(format!(
                        "runtime ConfigMap {namespace}/{name} not found"
                    )))
                    .await;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "watching the runtime ConfigMap"),
        }
    }
}

pub fn run(args: ServeArgs) -> crate::cli::CliResult {
    crate::operator::init_logs(&args.log_format, "janus-decision-service");
    let fail = crate::cli::CliError::Usage;
    let service = Arc::new(Service::new(&args).map_err(fail)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .map_err(|e| fail(format!("cannot listen on {}: {e}", args.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| fail(format!("listener: {e}")))?;
        println!("janus serve listening on http://{addr}");
        match (&args.runtime_file, &args.runtime_config) {
            (Some(path), _) => {
                tokio::spawn(watch_file(service.clone(), path.clone()));
            }
            (None, Some(reference)) => {
                let (ns, name) = reference.split_once('/').ok_or_else(|| {
                    fail(format!(
                        "--runtime-config `{reference}`: expected NAMESPACE/NAME"
                    ))
                })?;
                tokio::spawn(watch_config_map(
                    service.clone(),
                    ns.to_string(),
                    name.to_string(),
                ));
            }
            (None, None) => unreachable!("clap requires one"),
        }
        axum::serve(listener, router(service))
            .with_graceful_shutdown(async {
                crate::operator::shutdown_signal().await;
            })
            .await
            .map_err(|e| fail(format!("serving: {e}")))?;
        crate::operator::flush_traces();
        Ok(std::process::ExitCode::SUCCESS)
    })
}
