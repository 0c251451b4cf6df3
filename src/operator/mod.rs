//! `janus controller`: the operator process. It watches one namespace, elects a leader on a
//! Lease (only the leader reconciles; a standby takes over when the leader's lease lapses or is
//! released on shutdown), runs the three reconcilers of [`reconcile`], and serves `/metrics`,
//! `/healthz` and `/readyz`. Logs are JSON lines on stderr.

pub mod claims;
pub mod kill;
pub mod lease;
pub mod lenient;
pub mod metrics;
pub mod reconcile;
pub mod trail;
pub mod webhook;

use crate::crd::{JanusCandidate, JanusRun, Lenient, PromotionRequest};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use clap::Args;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The key of the gate policy in its ConfigMap.
pub const POLICY_KEY: &str = "gate-policy.json";

#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// The namespace to watch (runs, candidates, promotion requests, their Jobs and ConfigMaps).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// Image of the step Jobs (the operator's own image, which runs `janus <step>`).
    #[arg(long, env = "JANUS_OPERATOR_IMAGE", default_value = concat!("ghcr.io/torghut/janus:", env!("CARGO_PKG_VERSION")))]
    pub operator_image: String,
    /// Where the artifacts volume is mounted (read-only is enough): evidence and runtime
    /// statistics are read and verified from here.
    #[arg(long, env = "JANUS_ARTIFACTS_ROOT", default_value = "/artifacts")]
    pub artifacts_root: PathBuf,
    /// The gate policy's ConfigMap, NAMESPACE/NAME (key `gate-policy.json`); default
    /// `<namespace>/janus-gate-policy`.
    #[arg(long)]
    pub policy: Option<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: String,
    /// The Lease replicas elect a leader on.
    #[arg(long, default_value = "janus-operator")]
    pub lease_name: String,
    /// How long a leader's lease lasts without renewal (it renews every fifth of it).
    #[arg(long, default_value_t = 15)]
    pub lease_seconds: u64,
    /// How often the leader audits runtime ConfigMaps for trading without a promoted request
    /// behind it (`janus_runtime_unbacked_trading`).
    #[arg(long, default_value_t = 15)]
    pub audit_seconds: u64,
    /// This replica's identity in the Lease (default: POD_NAME, else host name and pid).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// `json` (default) or `text` logs.
    #[arg(long, default_value = "json")]
    pub log_format: String,
    /// Serve the admission webhook (`/mutate`, `/validate`, AdmissionReview v1) over TLS on this
    /// address, on every replica; needs --webhook-cert-dir, --webhook-signing-key-file and
    /// --operator-service-account.
    #[arg(long)]
    pub webhook_listen: Option<String>,
    /// Directory holding the webhook's serving certificate: `tls.crt` (chain) and `tls.key`.
    #[arg(long)]
    pub webhook_cert_dir: Option<PathBuf>,
    /// PEM file of the CA(s) that issued the API server's client certificate for webhooks
    /// (its AdmissionConfiguration kubeconfig): the webhook then completes a TLS handshake only
    /// with a client holding such a certificate. Without it anything that reaches the port can
    /// have records signed for any user (a warning at start; docs/gates.md).
    #[arg(long)]
    pub webhook_client_ca: Option<PathBuf>,
    /// The key the webhook signs stamped records with and the operator verifies them with (a
    /// Secret only the operator reads; at least 16 bytes). Without it no approval, drill or
    /// runbook validation counts.
    #[arg(long, env = "JANUS_WEBHOOK_SIGNING_KEY_FILE")]
    pub webhook_signing_key_file: Option<PathBuf>,
    /// The statistics key the decision service signs its runtime statistics with (`janus serve
    /// --stats-key`; a Secret the operator and the decision service mount, the webhook key's
    /// file format). Without it no `decision-service` statistics count: only a simulation can,
    /// where the policy accepts one.
    #[arg(long, env = "JANUS_STATS_KEY_FILE")]
    pub stats_key: Option<PathBuf>,
    /// Members of this group may approve canaries (never their own requests).
    #[arg(long, default_value = "janus-approvers")]
    pub approver_group: String,
    /// Members of this group may record drills and runbook validation.
    #[arg(long, default_value = "janus-oncall")]
    pub oncall_group: String,
    /// The operator's own ServiceAccount, the only identity that may create or change
    /// JanusCandidates: NAME (in --namespace), NAMESPACE:NAME or
    /// `system:serviceaccount:NAMESPACE:NAME`.
    #[arg(long, env = "JANUS_OPERATOR_SERVICE_ACCOUNT")]
    pub operator_service_account: Option<String>,
    /// The ServiceAccount every step Job runs as (the chart's step ServiceAccount, bound to no
    /// Role; its token is not mounted). Unset: the namespace's default.
    #[arg(long, env = "JANUS_STEP_SERVICE_ACCOUNT")]
    pub step_service_account: Option<String>,
    /// How long an approval counts after it is stamped (hours).
    #[arg(long, default_value_t = 24.0)]
    pub approval_max_age_hours: f64,
    /// Serve the webhook (and /healthz) only: take no part in leader election, reconcile
    /// nothing (a webhook Deployment of its own, or a webhook that outlives operator restarts).
    #[arg(long, requires = "webhook_listen")]
    pub webhook_only: bool,
}

/// The username the API server gives a ServiceAccount.
pub fn service_account_username(arg: &str, namespace: &str) -> String {
    if arg.starts_with("system:serviceaccount:") {
        arg.to_string()
    } else if let Some((ns, name)) = arg.split_once(':') {
        format!("system:serviceaccount:{ns}:{name}")
    } else {
        format!("system:serviceaccount:{namespace}:{arg}")
    }
}

pub struct OperatorConfig {
    pub namespace: String,
    pub operator_image: String,
    pub artifacts_root: PathBuf,
    pub policy_config_map: (String, String),
    pub field_manager: String,
    /// The admission webhook's signing key: stamped records verify only with it (none: no
    /// approval, drill or runbook validation counts).
    pub signing_key: Option<crate::identity::SigningKey>,
    /// The ServiceAccount step Jobs run as.
    pub step_service_account: Option<String>,
    /// Verifies the decision service's signature on runtime statistics (none: no
    /// `decision-service` statistics count).
    pub stats_key: Option<crate::identity::SigningKey>,
}

pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: metrics::Metrics,
    pub config: OperatorConfig,
    /// Consecutive failures per object, for exponential backoff.
    failures: Mutex<HashMap<String, u32>>,
    ready: AtomicBool,
    /// Kill switches seen on (the fast path's and the reconciles' latch).
    pub kill_latch: kill::KillLatch,
    /// The PromotionRequest informer's cache, once its first list is complete.
    requests: std::sync::OnceLock<Store<Lenient<PromotionRequest>>>,
    /// The leader's lease epoch (`u64::MAX` until it leads).
    lease_epoch: AtomicU64,
    /// The audit trails (pending entries, the records already in each file).
    pub trail: Arc<trail::Trail>,
}

impl Context {
    /// The PromotionRequests as the informer last saw them; empty until its first list is
    /// complete (so nothing is released on the strength of a cache not yet filled).
    pub fn requests(&self) -> Store<Lenient<PromotionRequest>> {
        self.requests
            .get()
            .cloned()
            .unwrap_or_else(|| reflector::store().0)
    }

    /// The readable PromotionRequests of the cache that satisfy `keep`.
    pub fn requests_where(
        &self,
        keep: impl Fn(&PromotionRequest) -> bool,
    ) -> Vec<PromotionRequest> {
        self.requests()
            .state_filter(|r| r.readable().is_some_and(&keep))
            .into_iter()
            .filter_map(|r| r.readable().cloned())
            .collect()
    }

    /// Whether the PromotionRequest cache has been filled.
    pub fn requests_ready(&self) -> bool {
        self.requests.get().is_some()
    }

    /// The epoch of this replica's leadership, once it leads.
    pub fn lease_epoch(&self) -> Option<u64> {
        match self.lease_epoch.load(Ordering::SeqCst) {
            u64::MAX => None,
            e => Some(e),
        }
    }
}

/// JSON (or text) logs on stderr and, when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, the same spans exported as OpenTelemetry traces
/// over OTLP/HTTP (protobuf), batched on a background thread. `service` names the resource.
pub fn init_logs(format: &str, service: &'static str) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn,tower=warn"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if format == "text" {
        fmt.boxed()
    } else {
        fmt.json().flatten_event(true).boxed()
    };
    let otlp_configured = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()));
    let (otel, error) = if otlp_configured {
        match otlp_tracer(service) {
            Ok(tracer) => (
                Some(tracing_opentelemetry::layer().with_tracer(tracer)),
                None,
            ),
            Err(e) => (None, Some(e)),
        }
    } else {
        (None, None)
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .init();
    if let Some(e) = error {
        tracing::error!(error = %e, "OpenTelemetry export is configured but could not start");
    }
}

static TRACER_PROVIDER: std::sync::OnceLock<opentelemetry_sdk::trace::SdkTracerProvider> =
    std::sync::OnceLock::new();

fn otlp_tracer(service: &'static str) -> Result<opentelemetry_sdk::trace::Tracer, String> {
    use opentelemetry::trace::TracerProvider;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| e.to_string())?;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service)
                .build(),
        )
        .build();
    let tracer = provider.tracer("janus");
    let _ = TRACER_PROVIDER.set(provider);
    Ok(tracer)
}

/// Sends the spans still batched (on shutdown).
pub fn flush_traces() {
    if let Some(p) = TRACER_PROVIDER.get() {
        let _ = p.force_flush();
        let _ = p.shutdown();
    }
}

fn backoff(ctx: &Context, key: String) -> Action {
    let mut failures = ctx.failures.lock().expect("not poisoned");
    let n = failures.entry(key).or_insert(0);
    *n = (*n + 1).min(6);
    // 2 s, 4 s, ... up to about 2 minutes.
    Action::requeue(Duration::from_secs(1 << *n).min(Duration::from_secs(120)))
}

fn error_policy<K: kube::Resource<DynamicType = ()>>(
    obj: Arc<K>,
    error: &reconcile::ReconcileError,
    ctx: Arc<Context>,
) -> Action {
    let kind = K::kind(&());
    let kind = kind.as_ref();
    ctx.metrics.reconcile_failed(kind, error.label());
    if error.is_conflict() {
        tracing::debug!(kind, name = %obj.name_any(), "changed since read; deciding again");
        return Action::requeue(Duration::from_millis(100));
    }
    tracing::warn!(kind, name = %obj.name_any(), error = %error, "reconcile failed; retrying");
    backoff(&ctx, format!("{kind}/{}", obj.name_any()))
}

/// Wraps a reconciler so a success resets the object's backoff.
macro_rules! with_reset {
    ($f:path, $kind:literal) => {
        |obj, ctx: Arc<Context>| async move {
            let key = format!("{}/{}", $kind, obj.name_any());
            let result = $f(obj, ctx.clone()).await;
            if result.is_ok() {
                ctx.failures.lock().expect("not poisoned").remove(&key);
            }
            result
        }
    };
}

async fn serve_http(listen: String, ctx: Arc<Context>) -> std::io::Result<()> {
    async fn metrics(State(ctx): State<Arc<Context>>) -> impl IntoResponse {
        ctx.metrics.response()
    }
    async fn ready(State(ctx): State<Arc<Context>>) -> StatusCode {
        if ctx.ready.load(Ordering::Relaxed) {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(ctx);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    tracing::info!(%listen, "serving /metrics, /healthz, /readyz");
    axum::serve(listener, app).await
}

pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installs a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}

pub fn run(args: ControllerArgs) -> crate::cli::CliResult {
    init_logs(&args.log_format, "janus-operator");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::cli::CliError::Runtime(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(operate(args))
}

async fn operate(args: ControllerArgs) -> crate::cli::CliResult {
    let fail = |m: String| crate::cli::CliError::Usage(m);
    let client = Client::try_default().await.map_err(|e| {
        crate::cli::CliError::Runtime(format!("cannot reach the Kubernetes API: {e}"))
    })?;
    let policy_config_map = match &args.policy {
        Some(p) => {
            let (ns, name) = p
                .split_once('/')
                .ok_or_else(|| fail(format!("--policy `{p}`: expected NAMESPACE/NAME")))?;
            (ns.to_string(), name.to_string())
        }
        None => (args.namespace.clone(), "janus-gate-policy".to_string()),
    };
    let identity = args.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "janus".into());
        format!("{host}-{}", std::process::id())
    });
    let field_manager = "janus-operator".to_string();
    let signing_key = match &args.webhook_signing_key_file {
        Some(path) => {
            Some(crate::identity::SigningKey::from_file(path).map_err(|e| fail(e.to_string()))?)
        }
        None => {
            tracing::warn!(
                "no --webhook-signing-key-file: no approval, drill or runbook validation will count"
            );
            None
        }
    };
    let stats_key = match &args.stats_key {
        Some(path) => Some(
            crate::identity::SigningKey::from_file(path)
                .map_err(|e| fail(format!("--stats-key: {e}")))?,
        ),
        None => {
            tracing::warn!(
                "no --stats-key: no runtime statistics of a decision service will count (shadow → paper and paper → canary stay blocked but for a simulation the policy accepts)"
            );
            None
        }
    };
    // The decision service holds the statistics key (and is network-facing): were it also the
    // webhook's key, the service could mint approvals, drills and status seals.
    if let (Some(stats), Some(signing)) = (&stats_key, &signing_key)
        && stats.shares_a_key_with(signing)
    {
        return Err(fail(
            "--stats-key and --webhook-signing-key-file hold the same key: the decision service, which holds the statistics key, could then sign approvals, drills and status seals; give each its own Secret".into(),
        ));
    }
    // The audit key: derived from the signing key (crate::audit::AuditKey).
    let audit_key = match &args.webhook_signing_key_file {
        Some(path) => {
            Some(crate::audit::AuditKey::from_file(path).map_err(|e| fail(e.to_string()))?)
        }
        None => {
            tracing::warn!(
                "no --webhook-signing-key-file: audit lines are not MACed (version 1, chain only)"
            );
            None
        }
    };
    let metrics = metrics::Metrics::default();
    let trail = Arc::new(trail::Trail::new(
        args.artifacts_root.clone(),
        audit_key,
        metrics.audit_pending.clone(),
        metrics.audit_lost.clone(),
    ));
    tokio::spawn(trail.clone().retry_forever());
    if let Some(listen) = &args.webhook_listen {
        let dir = args
            .webhook_cert_dir
            .as_ref()
            .ok_or_else(|| fail("--webhook-listen needs --webhook-cert-dir".into()))?;
        let key = signing_key
            .clone()
            .ok_or_else(|| fail("--webhook-listen needs --webhook-signing-key-file".into()))?;
        let operator = args
            .operator_service_account
            .as_deref()
            .ok_or_else(|| fail("--webhook-listen needs --operator-service-account".into()))?;
        if !(args.approval_max_age_hours > 0.0 && args.approval_max_age_hours <= 24.0 * 365.0) {
            return Err(fail(
                "--approval-max-age-hours must lie in (0, 8760]".into(),
            ));
        }
        if args.webhook_client_ca.is_none() {
            tracing::warn!(
                "no --webhook-client-ca: the webhook answers any client that reaches its port, \
                 so anything in the cluster network can have records signed for any user it \
                 names; require the API server's client certificate (docs/gates.md)"
            );
        }
        let tls = webhook::tls_config(dir, args.webhook_client_ca.as_deref())
            .map_err(|e| fail(e.to_string()))?;
        let hook = webhook::Webhook {
            config: crate::admission::Config {
                approver_group: args.approver_group.clone(),
                oncall_group: args.oncall_group.clone(),
                operator_username: service_account_username(operator, &args.namespace),
                approval_ttl: chrono::Duration::seconds(
                    (args.approval_max_age_hours * 3600.0) as i64,
                ),
                key,
            },
            client: client.clone(),
            trail: trail.clone(),
        };
        // A webhook that cannot listen stops the process (exit 2): it must not run half-armed.
        let listen = listen.clone();
        tokio::spawn(async move {
            if let Err(e) = webhook::serve(listen, tls, hook).await {
                tracing::error!(error = %e, "the admission webhook stopped");
                std::process::exit(2);
            }
        });
    }
    let ctx = Arc::new(Context {
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: field_manager.clone(),
                instance: Some(identity.clone()),
            },
        ),
        client: client.clone(),
        metrics,
        config: OperatorConfig {
            namespace: args.namespace.clone(),
            operator_image: args.operator_image.clone(),
            artifacts_root: args.artifacts_root.clone(),
            policy_config_map,
            field_manager,
            signing_key,
            step_service_account: args.step_service_account.clone(),
            stats_key,
        },
        failures: Mutex::new(HashMap::new()),
        ready: AtomicBool::new(false),
        trail: trail.clone(),
        kill_latch: kill::KillLatch::default(),
        requests: std::sync::OnceLock::new(),
        lease_epoch: AtomicU64::new(u64::MAX),
    });
    let http = tokio::spawn(serve_http(args.listen.clone(), ctx.clone()));
    if args.webhook_only {
        ctx.ready.store(true, Ordering::Relaxed);
        tracing::info!("serving the admission webhook only");
        shutdown_signal().await;
        trail.report_pending_at_shutdown();
        http.abort();
        return Ok(std::process::ExitCode::SUCCESS);
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = {
        let rx = stop_rx.clone();
        move || {
            let mut rx = rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        }
    };

    let elector = Arc::new(lease::Elector {
        api: Api::<Lease>::namespaced(client.clone(), &args.namespace),
        name: args.lease_name.clone(),
        identity: identity.clone(),
        duration: Duration::from_secs(args.lease_seconds.max(2)),
        epoch: AtomicU64::new(0),
        observed: Mutex::new(None),
    });
    let renew_every = elector.duration / 5;
    tracing::info!(%identity, namespace = %args.namespace, "waiting for leadership");
    loop {
        match elector.try_acquire_or_renew().await {
            Ok(true) => break,
            Ok(false) => ctx.ready.store(true, Ordering::Relaxed),
            Err(e) => tracing::warn!(error = %e, "lease"),
        }
        tokio::select! {
            _ = tokio::time::sleep(renew_every) => {},
            _ = stopped() => {
                trail.report_pending_at_shutdown();
                http.abort();
                return Ok(std::process::ExitCode::SUCCESS);
            }
        }
    }
    ctx.ready.store(true, Ordering::Relaxed);
    ctx.metrics.set_leader(true);
    ctx.lease_epoch
        .store(elector.epoch.load(Ordering::SeqCst), Ordering::SeqCst);
    tracing::info!(%identity, epoch = ?ctx.lease_epoch(), "leading");

    // Keep the lease. A leader must stop before its lease can expire, whatever it is doing: a
    // watchdog on its own OS thread (so a busy or stuck async runtime cannot delay it) exits the
    // process when the last renewal is older than the lease less one renewal period; each
    // renewal is bounded by a timeout, so a hung API call counts as a failed one. Losing the
    // lease exits too; the Deployment restarts the replica as a standby.
    let started = Instant::now();
    let last_renewal_ms = Arc::new(AtomicU64::new(0));
    {
        let last = last_renewal_ms.clone();
        let limit = elector.duration.saturating_sub(renew_every);
        std::thread::Builder::new()
            .name("lease-watchdog".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_millis(50));
                    let since = started.elapsed().saturating_sub(Duration::from_millis(
                        last.load(Ordering::SeqCst),
                    ));
                    if since >= limit {
                        eprintln!(
                            "{{\"level\":\"ERROR\",\"message\":\"lease not renewed for {} ms: stepping down before it can expire\"}}",
                            since.as_millis()
                        );
                        std::process::exit(3);
                    }
                }
            })
            .map_err(|e| fail(format!("cannot start the lease watchdog: {e}")))?;
    }
    let keeper = {
        let elector = elector.clone();
        let mut stop = stop_rx.clone();
        let last = last_renewal_ms.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(renew_every) => {},
                    _ = stop.wait_for(|s| *s) => return,
                }
                match tokio::time::timeout(renew_every, elector.try_acquire_or_renew()).await {
                    Ok(Ok(true)) => {
                        last.store(started.elapsed().as_millis() as u64, Ordering::SeqCst)
                    }
                    Ok(Ok(false)) => {
                        tracing::error!("lost the leader lease; exiting");
                        std::process::exit(3);
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "cannot renew the lease"),
                    Err(_) => tracing::warn!("renewing the lease timed out"),
                }
            }
        })
    };

    let ns = args.namespace.as_str();
    let config = watcher::Config::default();
    // Bounded concurrency per kind: a backlog of a thousand objects is worked off steadily
    // instead of a thousand reconciles racing for the API server at once (the kill switch has
    // its own path, `kill::fast_path`, ahead of any backlog).
    let bounded = || kube::runtime::controller::Config::default().concurrency(16);
    let ours = watcher::Config::default().labels("app.kubernetes.io/name=janus");
    // Every kind is watched leniently (`Lenient<K>`): one object the types refuse must not fail
    // a watcher's list and stall every other object of its kind.
    let runs = Controller::new(
        Api::<Lenient<JanusRun>>::namespaced(client.clone(), ns),
        config.clone(),
    )
    .owns(Api::<Job>::namespaced(client.clone(), ns), ours.clone())
    .with_config(bounded())
    .graceful_shutdown_on(stopped())
    .run(
        with_reset!(lenient::reconcile_run, "JanusRun"),
        error_policy,
        ctx.clone(),
    )
    .for_each(|_| async {});
    let candidates = Controller::new(
        Api::<Lenient<JanusCandidate>>::namespaced(client.clone(), ns),
        config.clone(),
    )
    .watches(
        Api::<Lenient<JanusRun>>::namespaced(client.clone(), ns),
        config.clone(),
        |run| {
            let ns = run.namespace();
            run.readable()
                .and_then(|r| r.status.as_ref())
                .and_then(|s| s.candidate.clone())
                .map(|c| {
                    ObjectRef::<Lenient<JanusCandidate>>::new(&c)
                        .within(ns.as_deref().unwrap_or(""))
                })
        },
    )
    // A request that changes or goes away may release its candidate's in-use finalizer.
    .watches(
        Api::<Lenient<PromotionRequest>>::namespaced(client.clone(), ns),
        config.clone(),
        |request| {
            let ns = request.namespace();
            request.readable().map(|r| {
                ObjectRef::<Lenient<JanusCandidate>>::new(&r.spec.candidate)
                    .within(ns.as_deref().unwrap_or(""))
            })
        },
    )
    .with_config(bounded())
    .graceful_shutdown_on(stopped())
    .run(
        with_reset!(lenient::reconcile_candidate, "JanusCandidate"),
        error_policy,
        ctx.clone(),
    )
    .for_each(|_| async {});
    let promotion_controller = Controller::new(
        Api::<Lenient<PromotionRequest>>::namespaced(client.clone(), ns),
        config.clone(),
    );
    let requests = promotion_controller.store();
    {
        // The cache becomes visible to the reconcilers once its first list is complete.
        let (ctx, requests) = (ctx.clone(), requests.clone());
        tokio::spawn(async move {
            // Polled again every 100 ms: kube-runtime's `DelayedInit` wakes only the waiter that
            // polled it last, and the controller's own runner waits on the same store, so a
            // second waiter that just awaits may never be woken (seen against a real API server;
            // the same waker hand-off is discussed in kube-rs/kube#1243).
            loop {
                match tokio::time::timeout(Duration::from_millis(100), requests.wait_until_ready())
                    .await
                {
                    Ok(Ok(())) => {
                        tracing::info!("PromotionRequest cache filled");
                        let _ = ctx.requests.set(requests);
                        return;
                    }
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "the PromotionRequest cache never filled");
                        return;
                    }
                    Err(_) => continue,
                }
            }
        });
    }
    let fast_path = kill::fast_path(ctx.clone(), args.namespace.clone(), stopped());
    let promotions = promotion_controller
        .owns(Api::<ConfigMap>::namespaced(client.clone(), ns), ours)
        .watches(
            Api::<Lenient<JanusCandidate>>::namespaced(client.clone(), ns),
            config,
            move |candidate| {
                let name = candidate.name_any();
                requests
                    .state_filter(|r| r.readable().is_some_and(|r| r.spec.candidate == name))
                    .into_iter()
                    .map(|r| ObjectRef::from_obj(r.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .with_config(bounded())
        .graceful_shutdown_on(stopped())
        .run(
            with_reset!(lenient::reconcile_promotion, "PromotionRequest"),
            error_policy,
            ctx.clone(),
        )
        .for_each(|_| async {});
    // The gate-bypass audit, while this replica leads.
    let audit = {
        let ctx = ctx.clone();
        let ns = args.namespace.clone();
        let every = Duration::from_secs(args.audit_seconds.max(1));
        async move {
            loop {
                if let Err(e) = reconcile::audit_runtime(&ctx, &ns).await {
                    tracing::warn!(error = %e, "runtime audit");
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {},
                    _ = stopped() => return,
                }
            }
        }
    };
    tokio::join!(runs, candidates, promotions, audit, fast_path);
    keeper.abort();
    if let Err(e) = elector.release().await {
        tracing::warn!(error = %e, "cannot release the lease");
    }
    ctx.metrics.set_leader(false);
    trail.report_pending_at_shutdown();
    tracing::info!("stopped");
    flush_traces();
    http.abort();
    Ok(std::process::ExitCode::SUCCESS)
}
