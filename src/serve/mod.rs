//! `janus serve`: the decision service. For each event the trading lane posts, it answers with a
//! decision within a time budget: the promoted model's call when the runtime configuration
//! allows it and inference finishes in time, else the deterministic fallback, and nothing at
//! all when trading is disabled, the event is stale or out of session. The rules are plain
//! functions in `crate::runtime::decision` and `crate::runtime::guard`; this module is the HTTP
//! service, the runtime configuration source (the operator's ConfigMap and PromotionRequest,
//! watched, or a file) and the model swap.
//!
//! Reading the configuration never waits for a model: flags apply the moment they are read,
//! and a model loads in a task of its own, installed only if the configuration still wants it
//! when the load ends.

pub mod follow;
pub mod metrics;

use crate::contracts::Sha256Hex;
use crate::contracts::event_car::EventCarArtifact;
use crate::contracts::read_artifact;
use crate::contracts::runtime_stats::{RuntimeStatsArtifact, ServiceIdentity, StatsSource};
use crate::contracts::write_artifact;
use crate::evaluation::baseline::TypeTable;
use crate::runtime::config::RuntimeConfig;
use crate::runtime::decision::{self, Book, DecideRequest, Decision, Rules, Session, Source};
use crate::runtime::dedup::{self, FirstAnswers};
use crate::runtime::guard::{Guard, Halt};
use crate::runtime::onnx::OnnxPolicy;
use crate::runtime::stats::{self, Observation, Recorder, Served};
use crate::taxonomy::{EventType, Normalizer};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use clap::Args;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Where the runtime configuration comes from: exactly one.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ConfigSource {
    /// The PromotionRequest to follow, NAMESPACE/NAME: its kill switch is latched from the watch
    /// stream, and its runtime ConfigMap (`status.runtimeConfigMap`, else `NAME-runtime`) is
    /// watched too. What the chart deploys.
    #[arg(long)]
    pub promotion_request: Option<String>,
    /// The runtime ConfigMap the operator writes, NAMESPACE/NAME, watched through the API.
    #[arg(long)]
    pub runtime_config: Option<String>,
    /// A file with the same data as a JSON object (`janus demo` writes `runtime.json`); re-read
    /// when it changes (polled every 50 ms).
    #[arg(long)]
    pub runtime_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one; the first line printed says which).
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub listen: String,
    #[command(flatten)]
    pub source: ConfigSource,
    /// Seconds the configuration may go unconfirmed (no watch event, no successful read) before
    /// every decision is halted (`config_stale`) and /readyz fails; the API modes confirm it by
    /// a read every third of this. 0 disables the check (for shadow).
    #[arg(long, default_value_t = 30)]
    pub max_config_age: u64,
    /// Most inferences running at once (each holds a blocking thread until it really ends,
    /// timed out or not); an event arriving when all are taken gets the fallback at once
    /// (`overloaded`).
    #[arg(long, default_value_t = 4)]
    pub max_inferences_in_flight: usize,
    #[command(flatten)]
    pub http: crate::http_server::HttpLimits,
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
    /// Fault injection for drills and tests: make every model load take this long.
    #[arg(long, default_value_t = 0, hide = true)]
    pub inject_model_load_delay_ms: u64,
    /// `json` (default) or `text` logs.
    #[arg(long, default_value = "json")]
    pub log_format: String,
    /// Seconds between the sealed `janus-runtime-stats-v1` files this replica writes under
    /// `<artifacts root>/candidates/<candidate>/runtime/<stage>/` (also written on shutdown and
    /// whenever what is served changes). 0: never written.
    #[arg(long, default_value_t = 300)]
    pub stats_interval: u64,
    /// This replica's name in its statistics files (default: `$HOSTNAME`, the pod's name).
    #[arg(long)]
    pub replica: Option<String>,
    /// The events are a replay (`janus demo`): statistics say `source: simulation`.
    #[arg(long, hide = true)]
    pub simulation: bool,
    /// The statistics key (a mounted Secret; the same file format as the webhook's signing key:
    /// the first line signs, further lines are previous keys): every statistics file is signed
    /// with it, and the operator (`controller --stats-key`) counts a `decision-service` file
    /// only with a signature it verifies. Without it the files are written unsigned.
    #[arg(long)]
    pub stats_key: Option<PathBuf>,
}

/// What the service runs with at one moment; replaced whole, never edited, so a request keeps a
/// consistent view while a new configuration or model arrives.
struct Loaded {
    config: Result<RuntimeConfig, String>,
    /// Which model `model` is (or is being loaded as).
    model_key: Option<ModelKey>,
    model: Result<Arc<Mutex<OnnxPolicy>>, String>,
    fallback: Arc<TypeTable>,
}

/// What identifies a model to load: the files and the pinned digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ModelKey {
    uri: String,
    sha256: Sha256Hex,
    history: Option<String>,
}

impl ModelKey {
    fn of(c: &RuntimeConfig) -> Self {
        Self {
            uri: c.model_uri.clone(),
            sha256: c.model_sha256.clone(),
            history: c.history_uri.clone(),
        }
    }
}

const LOADING: &str = "loading the model";

pub struct Service {
    current: RwLock<Arc<Loaded>>,
    /// The last data applied (a repeat changes nothing).
    last_data: Mutex<Option<Result<BTreeMap<String, String>, String>>>,
    /// Models being loaded; a key here is not loaded twice at once.
    loading: Mutex<HashSet<ModelKey>>,
    guard: Mutex<Guard>,
    /// With `--promotion-request`: the request a runtime ConfigMap must name.
    expected_request: Option<String>,
    inference_slots: Arc<Semaphore>,
    max_inferences: usize,
    book: Mutex<Book>,
    rules: Rules,
    budget: Duration,
    inject_delay: Duration,
    inject_load_delay: Duration,
    root: PathBuf,
    normalizer: Normalizer,
    ready: AtomicBool,
    pub metrics: metrics::ServeMetrics,
    /// This replica's statistics; `None` with `--stats-interval 0`.
    stats: Option<Mutex<Recorder>>,
    /// Signs every statistics file (`--stats-key`).
    stats_key: Option<crate::identity::SigningKey>,
    /// The first decision of each event id under the configuration in force (duplicates).
    first_answers: Mutex<FirstAnswers<Sha256Hex, tokio::sync::OnceCell<Decision>>>,
}

/// Locks a mutex; a panic elsewhere while it was held does not stop the service (the data is
/// replaced whole, never left half-edited).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
        if args.max_inferences_in_flight == 0 {
            return Err("--max-inferences-in-flight must be at least 1".into());
        }
        let root = match (&args.artifacts_root, &args.source.runtime_file) {
            (Some(r), _) => r.clone(),
            (None, Some(f)) => f
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
            (None, None) => PathBuf::from("/artifacts"),
        };
        let api_mode = args.source.runtime_file.is_none();
        let max_age =
            (api_mode && args.max_config_age > 0).then(|| Duration::from_secs(args.max_config_age));
        let expected_request = match &args.source.promotion_request {
            Some(r) => Some(split_reference(r, "--promotion-request")?.1.to_string()),
            None => None,
        };
        let stats_key = match &args.stats_key {
            Some(path) => Some(
                crate::identity::SigningKey::from_file(path)
                    .map_err(|e| format!("--stats-key: {e}"))?,
            ),
            None => None,
        };
        if stats_key.is_none() && args.stats_interval > 0 && !args.simulation {
            tracing::warn!(
                "no --stats-key: runtime statistics are written unsigned, and the operator will not count them"
            );
        }
        Ok(Self {
            current: RwLock::new(Arc::new(Loaded {
                config: Err("no runtime configuration read yet".into()),
                model_key: None,
                model: Err("no model loaded yet".into()),
                fallback: Arc::new(TypeTable::default()),
            })),
            last_data: Mutex::new(None),
            loading: Mutex::new(HashSet::new()),
            guard: Mutex::new(Guard::new(
                max_age,
                expected_request.is_some(),
                Instant::now(),
            )),
            expected_request,
            inference_slots: Arc::new(Semaphore::new(args.max_inferences_in_flight)),
            max_inferences: args.max_inferences_in_flight,
            book: Mutex::new(Book::default()),
            rules,
            budget: Duration::from_millis(args.timeout_ms),
            inject_delay: Duration::from_millis(args.inject_inference_delay_ms),
            inject_load_delay: Duration::from_millis(args.inject_model_load_delay_ms),
            root,
            normalizer: Normalizer::default(),
            ready: AtomicBool::new(false),
            metrics: metrics::ServeMetrics::default(),
            stats: (args.stats_interval > 0).then(|| {
                let source = if args.simulation {
                    StatsSource::Simulation
                } else {
                    StatsSource::DecisionService
                };
                let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
                Mutex::new(Recorder::new(
                    source,
                    ServiceIdentity {
                        replica: args
                            .replica
                            .clone()
                            .or_else(|| env("HOSTNAME"))
                            .unwrap_or_else(|| "local".into()),
                        namespace: env("POD_NAMESPACE"),
                        service_account: env("JANUS_SERVICE_ACCOUNT"),
                    },
                ))
            }),
            stats_key,
            first_answers: Mutex::new(FirstAnswers::new(dedup::DEFAULT_CAPACITY)),
        })
    }

    /// Closes this replica's current statistics window at `now` and writes it (the periodic
    /// flush and the one on shutdown).
    pub fn flush_stats(&self, now: chrono::DateTime<Utc>) {
        if let Some(r) = &self.stats {
            let closed = lock(r).close(now);
            self.write_stats(closed);
        }
    }

    /// Signs (with `--stats-key`), seals and writes a closed window; a failure is logged, never
    /// fatal.
    fn write_stats(&self, closed: Option<RuntimeStatsArtifact>) {
        let Some(mut a) = closed else { return };
        let path = self.root.join(stats::file_path(&a));
        let written = self
            .stats_key
            .as_ref()
            .map_or(Ok(()), |key| stats::sign(&mut a, key))
            .map_err(|e| e.to_string())
            .and_then(|()| {
                path.parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .map_err(|e| e.to_string())
            })
            .and_then(|()| write_artifact(&path, &mut a).map_err(|e| e.to_string()));
        match written {
            Ok(()) => tracing::info!(path = %path.display(), events = a.counts.events,
                decisions = a.counts.decisions, window_start = %a.window_start,
                window_end = %a.window_end, "runtime statistics written"),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot write runtime statistics")
            }
        }
    }

    /// What a configuration serves, for the statistics.
    fn served(config: &RuntimeConfig) -> Served {
        Served {
            promotion_request: config.promotion_request.clone(),
            candidate: config.candidate.clone(),
            stage: config.stage.clone(),
            model_sha256: config.model_sha256.clone(),
            config_hash: crate::contracts::canonical_hash(&config.to_data())
                .expect("a map of strings hashes"),
        }
    }

    fn snapshot(&self) -> Arc<Loaded> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Runs `f` on the guard and refreshes the trading gauge.
    pub fn with_guard<T>(&self, f: impl FnOnce(&mut Guard) -> T) -> T {
        let out = f(&mut lock(&self.guard));
        self.refresh_gauges();
        out
    }

    /// Why every decision is halted now, before the event is looked at: the kill switch latch,
    /// a missing request, an unconfirmed configuration, an older lease epoch.
    fn halt(&self, config: Result<&RuntimeConfig, &str>) -> Option<Halt> {
        let guard = lock(&self.guard);
        guard
            .halt(Instant::now())
            .or_else(|| config.ok().and_then(|c| guard.stale_epoch(c)))
            .or_else(|| config.ok().and_then(|c| guard.unbacked(c)))
    }

    /// Sets `janus_trading_enabled` and `janus_kill_switch_latched` from the state now.
    fn refresh_gauges(&self) {
        let loaded = self.snapshot();
        let config = loaded.config.as_ref().map_err(String::as_str);
        let trading = config.is_ok_and(|c| c.trading_enabled) && self.halt(config).is_none();
        self.metrics.trading(trading);
        self.metrics.kill_switch_latched(lock(&self.guard).killed());
    }

    /// Applies a new runtime configuration (or the reason there is none) at once and returns:
    /// the flags take effect before this returns; a new model loads in a task of its own (the
    /// fallback serves meanwhile) and is installed only if the configuration still wants it
    /// when the load ends. Repeating the last data changes nothing.
    pub fn apply(self: &Arc<Self>, data: Result<BTreeMap<String, String>, String>) {
        {
            let mut last = lock(&self.last_data);
            if last.as_ref() == Some(&data) {
                return;
            }
            *last = Some(data.clone());
        }
        let config = data
            .and_then(|d| RuntimeConfig::from_data(&d))
            .and_then(|c| match &self.expected_request {
                Some(r) if &c.promotion_request != r => Err(format!(
                    "the runtime ConfigMap is for promotion request `{}`, not `{r}`: refused",
                    c.promotion_request
                )),
                _ => Ok(c),
            });
        match &config {
            Ok(c) => {
                tracing::info!(stage = %c.stage, candidate = %c.candidate, trading_enabled = c.trading_enabled,
                    force_fallback = c.force_fallback, model_sha256 = %c.model_sha256,
                    lease_epoch = ?c.lease_epoch, "runtime configuration");
                if let Some(r) = &self.stats {
                    // Serving time counts from now, events or not.
                    let closed = lock(r).serving(&Self::served(c), Utc::now());
                    self.write_stats(closed);
                }
                lock(&self.guard).observe_epoch(c);
                self.metrics.config_valid(true);
            }
            Err(e) => {
                tracing::warn!(error = %e, "no usable runtime configuration: trading halted");
                if let Some(r) = &self.stats {
                    // Nothing is served until a usable configuration returns: that time is in
                    // no window (a gap, never counted as served).
                    let closed = lock(r).stop(Utc::now());
                    self.write_stats(closed);
                }
                self.metrics.config_valid(false);
            }
        }
        let wanted = config.as_ref().ok().map(ModelKey::of);
        let load = {
            let mut current = self
                .current
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let previous = current.clone();
            let (model_key, model, load) = match wanted {
                Some(key) if previous.model_key.as_ref() != Some(&key) => {
                    // Not loaded twice at once: a load still running installs itself.
                    let start = lock(&self.loading).insert(key.clone());
                    let load = match (start, &config) {
                        (true, Ok(c)) => Some((key.clone(), c.clone())),
                        _ => None,
                    };
                    (Some(key), Err(LOADING.to_string()), load)
                }
                // The same model, or no usable configuration (halted): keep what is there.
                _ => (previous.model_key.clone(), previous.model.clone(), None),
            };
            *current = Arc::new(Loaded {
                config,
                model_key,
                model,
                fallback: previous.fallback.clone(),
            });
            load
        };
        self.ready.store(true, Ordering::Relaxed);
        self.refresh_gauges();
        if let Some((key, config)) = load {
            tokio::spawn(self.clone().load(key, config));
        }
    }

    /// Loads and verifies a model on a blocking thread; installs it if the configuration still
    /// wants it. A read that never ends (a stalled mount) holds one thread and nothing else.
    async fn load(self: Arc<Self>, key: ModelKey, config: RuntimeConfig) {
        let root = self.root.clone();
        let delay = self.inject_load_delay;
        let loaded = tokio::task::spawn_blocking(move || {
            if !delay.is_zero() {
                std::thread::sleep(delay);
            }
            load_model_and_history(&root, &config)
        })
        .await;
        let (model, fallback) = match loaded {
            Ok(x) => x,
            Err(e) => (Err(format!("model loading panicked: {e}")), None),
        };
        if let Ok(m) = &model {
            tracing::info!(model_uri = %key.uri, model_sha256 = %key.sha256, dim = m.dim(),
                "model loaded: the model serves");
        }
        if let Err(e) = &model {
            let reason = if e.contains("hashes to") {
                "digest_mismatch"
            } else {
                "load_failed"
            };
            self.metrics.model_error(reason);
            tracing::error!(model_uri = %key.uri, error = %e, "model refused: serving the fallback");
        }
        let mut current = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        lock(&self.loading).remove(&key);
        if current.model_key.as_ref() == Some(&key) {
            let now = current.clone();
            *current = Arc::new(Loaded {
                config: now.config.clone(),
                model_key: Some(key),
                model: model.map(|m| Arc::new(Mutex::new(m))),
                fallback: fallback
                    .map(Arc::new)
                    .unwrap_or_else(|| now.fallback.clone()),
            });
        } else {
            tracing::info!(model_uri = %key.uri, "a model finished loading after the configuration moved on: dropped");
        }
    }

    /// One decision (see [`Service::decide_once`]).
    pub async fn decide(&self, request: DecideRequest) -> Decision {
        self.decide_once(request).await.0
    }

    /// One decision, and whether it is a repeat: an `event_id` already decided under the
    /// configuration in force gets its first decision again (`runtime::dedup`), counted as a
    /// duplicate and never decided, ordered or booked twice. The kill switch and every other
    /// halt come first: a halted service answers `halted` to a repeat too.
    #[tracing::instrument(name = "decide", skip_all, fields(event_id = %request.event.event_id, symbol = %request.event.symbol))]
    pub async fn decide_once(&self, request: DecideRequest) -> (Decision, bool) {
        let started = Instant::now();
        self.metrics.event();
        let now = Utc::now();
        let loaded = self.snapshot();
        let event = request.event;
        let config = loaded.config.as_ref().map_err(String::as_str);
        let served = config.ok().map(Self::served);
        let halt = self.halt(config);
        let (decision, repeat) = match (&served, halt) {
            (Some(served), None) => {
                let found = lock(&self.first_answers).slot(&served.config_hash, &event.event_id);
                let mut decided_here = false;
                let decision = found
                    .slot
                    .get_or_init(|| {
                        decided_here = true;
                        async {
                            let mut d = self.answer(&loaded, &event, now, None).await;
                            // Kept with its own latency: a repeat reports the first answer's.
                            d.latency_ms = started.elapsed().as_secs_f64() * 1e3;
                            d
                        }
                    })
                    .await
                    .clone();
                if decided_here && !matches!(decision.source, Source::Model | Source::Fallback) {
                    // Only decisions are kept: a suppressed event sent again is looked at again.
                    lock(&self.first_answers).forget(&event.event_id, &found.slot);
                }
                (decision, !decided_here)
            }
            (_, halt) => {
                let mut d = self.answer(&loaded, &event, now, halt).await;
                d.latency_ms = started.elapsed().as_secs_f64() * 1e3;
                (d, false)
            }
        };
        if let (Some(r), Some(served)) = (&self.stats, &served) {
            let closed = lock(r).record(
                served,
                &Observation {
                    event_id: &event.event_id,
                    repeat,
                    symbol: &event.symbol,
                    null: event.title.trim().is_empty()
                        || event
                            .event_type
                            .as_deref()
                            .is_none_or(|t| t.trim().is_empty()),
                    source: decision.source,
                    reason: &decision.reason,
                    latency_ms: decision.latency_ms,
                    staleness_ms: (now - event.timestamp).num_milliseconds() as f64,
                },
                Utc::now(),
            );
            self.write_stats(closed);
        }
        if repeat {
            self.metrics.duplicate();
        } else {
            self.metrics.decision(
                decision.source.name(),
                &decision.reason,
                decision.latency_ms,
            );
        }
        (decision, repeat)
    }

    /// The answer to an event seen for the first time under this configuration (or while halted).
    async fn answer(
        &self,
        loaded: &Loaded,
        event: &decision::Event,
        now: chrono::DateTime<Utc>,
        halt: Option<Halt>,
    ) -> Decision {
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
        let admitted = match halt {
            Some(h) => Err((Source::Halted, h.reason, h.detail)),
            None => match decision::admission(config, event, &self.rules, now) {
                Some(refused) => Err(refused),
                None => config.map_err(|e| (Source::Halted, "no_runtime_config", e.to_string())),
            },
        };
        match admitted {
            Err((source, reason, detail)) => base(source, reason, detail, 0.0, hold),
            Ok(config) => {
                self.decide_admitted(config, loaded, event, now, &base)
                    .await
            }
        }
    }

    /// The model (or the fallback) on an admitted event, the shadow stage, the limits.
    async fn decide_admitted(
        &self,
        config: &RuntimeConfig,
        loaded: &Loaded,
        event: &decision::Event,
        now: chrono::DateTime<Utc>,
        base: &impl Fn(Source, &str, String, f64, crate::contracts::label::Direction) -> Decision,
    ) -> Decision {
        {
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
                // The model reads the headline only; the upstream type (above) serves the
                // fallback, never the model's inputs (training::features).
                (Ok(model), false) => self.infer(model.clone(), &event.symbol, &event.title).await,
            };
            let prediction = prediction
                .unwrap_or_else(|| decision::fallback(&loaded.fallback, event_type, &self.rules));
            let wanted = decision::order(&prediction, &self.rules);
            if decision::is_shadow(config) {
                // A fallback keeps its reason (timeouts matter in shadow statistics too).
                let reason = if reason == "ok" { "shadow" } else { reason };
                let mut d = base(source, reason, detail, 0.0, prediction.direction);
                d.detail = format!("{}; shadow stage: order {wanted} not placed", d.detail);
                return d;
            }
            let (notional, actions) = lock(&self.book).place(
                config.canary_limits.as_ref(),
                &event.symbol,
                wanted,
                now,
                self.rules.holding,
            );
            let mut d = base(source, reason, detail, notional, prediction.direction);
            if let Some(last) = actions.last() {
                for a in &actions {
                    self.metrics.limit(a.limit, a.action);
                }
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
        }
    }

    /// Runs the model within the budget: (prediction, source, reason, detail).
    async fn infer(
        &self,
        model: Arc<Mutex<OnnxPolicy>>,
        symbol: &str,
        title: &str,
    ) -> (
        Option<crate::contracts::label::Prediction>,
        Source,
        &'static str,
        String,
    ) {
        // A slot, or the fallback at once: the slot moves into the blocking closure, so an
        // inference that missed its budget still holds it until it really ends.
        let Ok(slot) = self.inference_slots.clone().try_acquire_owned() else {
            self.metrics.overloaded();
            return (
                None,
                Source::Fallback,
                "overloaded",
                format!(
                    "{} inferences already running (--max-inferences-in-flight)",
                    self.max_inferences
                ),
            );
        };
        let (symbol, title) = (symbol.to_string(), title.to_string());
        let delay = self.inject_delay;
        let task = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            if !delay.is_zero() {
                std::thread::sleep(delay);
            }
            let mut m = model
                .lock()
                .map_err(|_| "the model lock is poisoned".to_string())?;
            let dim = m.dim();
            let buckets = dim.saturating_sub(crate::training::features::HASH_OFFSET);
            let x = crate::training::features::encode(&symbol, &title, buckets);
            m.predict(&crate::training::onnx::dense(&[&x], dim))
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

/// Response header of `/v1/decide`: `true` when the answer is the first decision of an event id
/// already decided (a duplicate), `false` otherwise.
pub const DUPLICATE_HEADER: &str = "janus-duplicate";

async fn decide_handler(State(service): State<Arc<Service>>, body: Bytes) -> Response {
    // Strict: a member given twice (two `event`s) is refused, never answered for one of them.
    let value: serde_json::Value = match crate::contracts::strict_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("request body is not JSON (without repeated members): {e}"),
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
    let (d, repeat) = service.decide_once(request).await;
    match serde_json::to_string(&d) {
        Ok(text) => (
            [
                (
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/json"),
                ),
                // The first decision of this event id, answered again (a duplicate).
                (
                    header::HeaderName::from_static(DUPLICATE_HEADER),
                    header::HeaderValue::from_static(if repeat { "true" } else { "false" }),
                ),
            ],
            text,
        )
            .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("decision: {e}")),
    }
}

async fn runtime_handler(State(service): State<Arc<Service>>) -> Response {
    let l = service.snapshot();
    let halt = service.halt(l.config.as_ref().map_err(String::as_str));
    let (killed, highest_epoch) = {
        let g = lock(&service.guard);
        (g.killed(), g.highest_epoch())
    };
    let body = serde_json::json!({
        "config": l.config.as_ref().ok().map(RuntimeConfig::to_data),
        "config_error": l.config.as_ref().err(),
        "halt": halt.map(|h| serde_json::json!({"reason": h.reason, "detail": h.detail})),
        "kill_switch_latched": killed,
        "highest_lease_epoch": highest_epoch,
        "model": if l.model.is_ok() { "loaded" } else { "unavailable" },
        "model_error": l.model.as_ref().err(),
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Whether a load balancer should send this replica events: 200 only when a usable runtime
/// configuration is in force and confirmed, and its model has settled (loaded, or refused so
/// that the deterministic fallback serves it); else 503 with the reason — before any
/// configuration is read, without a usable one (missing file, unknown keys: every decision
/// would be halted), while it is not confirmed (`config_stale`), and while the model loads (the
/// fallback would answer for a model that is about to serve). The kill switch does not make a
/// replica unready: a halted answer is the answer then, and every replica gives it.
async fn ready_handler(State(s): State<Arc<Service>>) -> Response {
    if !s.ready.load(Ordering::Relaxed) {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no runtime configuration read yet".into(),
        );
    }
    let loaded = s.snapshot();
    if let Err(e) = &loaded.config {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no usable runtime configuration: {e}"),
        );
    }
    let stale = lock(&s.guard).stale(Instant::now());
    match (stale, &loaded.model) {
        (Some(h), _) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{}: {}", h.reason, h.detail),
        ),
        (None, Err(e)) if e == LOADING => error(StatusCode::SERVICE_UNAVAILABLE, e.clone()),
        (None, _) => (StatusCode::OK, "ready").into_response(),
    }
}

pub fn router(service: Arc<Service>) -> Router {
    async fn metrics(State(s): State<Arc<Service>>) -> impl IntoResponse {
        s.refresh_gauges();
        s.metrics.response()
    }
    Router::new()
        .route("/v1/decide", post(decide_handler))
        .route("/v1/runtime", get(runtime_handler))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready_handler))
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(service)
}

// ---------- runtime configuration sources ----------

/// Reads the runtime file without blocking the runtime; a read that does not end within 1 s
/// (a stalled mount) is reported as an error, and the next read starts only when it ends.
async fn read_runtime_file(
    path: &Path,
    pending: &mut Option<tokio::task::JoinHandle<std::io::Result<Vec<u8>>>>,
) -> Option<Result<BTreeMap<String, String>, String>> {
    let handle = pending.get_or_insert_with(|| {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || std::fs::read(path))
    });
    let read = match tokio::time::timeout(Duration::from_secs(1), handle).await {
        Err(_) => {
            return Some(Err(format!(
                "reading {} has not finished within 1 s",
                path.display()
            )));
        }
        Ok(r) => r,
    };
    *pending = None;
    let bytes = match read {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return Some(Err(format!("cannot read {}: {e}", path.display()))),
        Err(e) => return Some(Err(format!("reading {}: {e}", path.display()))),
    };
    Some(
        crate::runtime::config::data_from_json(&bytes)
            .map_err(|e| format!("{}: not a JSON object of strings: {e}", path.display())),
    )
}

/// Re-reads the file every 50 ms; a change applies at once (`apply` never waits for a model).
async fn watch_file(service: Arc<Service>, path: PathBuf) {
    let mut pending = None;
    loop {
        if let Some(data) = read_runtime_file(&path, &mut pending).await {
            service.apply(data);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `NAMESPACE/NAME` → (namespace, name).
fn split_reference<'a>(reference: &'a str, flag: &str) -> Result<(&'a str, &'a str), String> {
    match reference.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns, name))
        }
        _ => Err(format!("{flag} `{reference}`: expected NAMESPACE/NAME")),
    }
}

pub fn run(args: ServeArgs) -> crate::cli::CliResult {
    crate::operator::init_logs(&args.log_format, "janus-decision-service");
    let fail = crate::cli::CliError::Usage;
    let service = Arc::new(Service::new(&args).map_err(fail)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::cli::CliError::Runtime(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .map_err(|e| {
                crate::cli::CliError::Runtime(format!("cannot listen on {}: {e}", args.listen))
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| crate::cli::CliError::Runtime(format!("listener: {e}")))?;
        // A log line: a closed or full stdout must not stop the service (println! would panic).
        let _ = std::io::Write::write_fmt(
            &mut std::io::stdout(),
            format_args!("janus serve listening on http://{addr}\n"),
        );
        let max_age = (args.max_config_age > 0).then(|| Duration::from_secs(args.max_config_age));
        let source = &args.source;
        match (
            &source.runtime_file,
            &source.runtime_config,
            &source.promotion_request,
        ) {
            (Some(path), _, _) => {
                tokio::spawn(watch_file(service.clone(), path.clone()));
            }
            (None, Some(reference), _) => {
                let (ns, name) = split_reference(reference, "--runtime-config").map_err(fail)?;
                tokio::spawn(follow::follow_config_map_only(
                    service.clone(),
                    ns.to_string(),
                    name.to_string(),
                    max_age,
                ));
            }
            (None, None, Some(reference)) => {
                let (ns, name) = split_reference(reference, "--promotion-request").map_err(fail)?;
                tokio::spawn(follow::follow_request(
                    service.clone(),
                    ns.to_string(),
                    name.to_string(),
                    max_age,
                ));
            }
            (None, None, None) => {
                return Err(fail(
                    "one of --promotion-request, --runtime-config, --runtime-file is required"
                        .into(),
                ));
            }
        }
        if args.stats_interval > 0 {
            let (s, every) = (service.clone(), Duration::from_secs(args.stats_interval));
            tokio::spawn(async move {
                let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                loop {
                    tick.tick().await;
                    s.flush_stats(Utc::now());
                }
            });
        }
        let served = crate::http_server::serve(
            listener,
            router(service.clone()),
            &args.http,
            crate::operator::shutdown_signal(),
        )
        .await;
        // On shutdown (SIGTERM, SIGINT) the open window is written: nothing answered is lost.
        service.flush_stats(Utc::now());
        served.map_err(|e| crate::cli::CliError::Runtime(format!("serving: {e}")))?;
        crate::operator::flush_traces();
        Ok(std::process::ExitCode::SUCCESS)
    })
}
