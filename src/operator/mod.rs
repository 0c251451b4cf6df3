//! `janus controller`: the operator process. It watches one namespace, elects a leader on a
//! Lease (only the leader reconciles; a standby takes over when the leader's lease lapses or is
//! released on shutdown), runs the three reconcilers of [`reconcile`], and serves `/metrics`,
//! `/healthz` and `/readyz`. Logs are JSON lines on stderr.

pub mod lease;
pub mod lenient;
pub mod metrics;
pub mod reconcile;

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
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
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
}

pub struct OperatorConfig {
    pub namespace: String,
    pub operator_image: String,
    pub artifacts_root: PathBuf,
    pub policy_config_map: (String, String),
    pub field_manager: String,
}

pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: metrics::Metrics,
    pub config: OperatorConfig,
    /// Consecutive failures per object, for exponential backoff.
    failures: Mutex<HashMap<String, u32>>,
    ready: AtomicBool,
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
        .map_err(|e| crate::cli::CliError::Usage(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(operate(args))
}

async fn operate(args: ControllerArgs) -> crate::cli::CliResult {
    let fail = |m: String| crate::cli::CliError::Usage(m);
    let client = Client::try_default()
        .await
        .map_err(|e| fail(format!("cannot reach the Kubernetes API: {e}")))?;
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
    let ctx = Arc::new(Context {
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: field_manager.clone(),
                instance: Some(identity.clone()),
            },
        ),
        client: client.clone(),
        metrics: metrics::Metrics::default(),
        config: OperatorConfig {
            namespace: args.namespace.clone(),
            operator_image: args.operator_image.clone(),
            artifacts_root: args.artifacts_root.clone(),
            policy_config_map,
            field_manager,
        },
        failures: Mutex::new(HashMap::new()),
        ready: AtomicBool::new(false),
    });
    let http = tokio::spawn(serve_http(args.listen.clone(), ctx.clone()));

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
            _ = stopped() => { http.abort(); return Ok(std::process::ExitCode::SUCCESS); }
        }
    }
    ctx.ready.store(true, Ordering::Relaxed);
    ctx.metrics.set_leader(true);
    tracing::info!(%identity, "leading");

    // Keep the lease; losing it stops this replica (its controllers must not run beside the
    // new leader's), and the Deployment restarts it as a standby.
    let keeper = {
        let elector = elector.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut last_renewal = Instant::now();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(renew_every) => {},
                    _ = stop.wait_for(|s| *s) => return,
                }
                match elector.try_acquire_or_renew().await {
                    Ok(true) => last_renewal = Instant::now(),
                    Ok(false) => {
                        tracing::error!("lost the leader lease; exiting");
                        std::process::exit(3);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot renew the lease");
                        if last_renewal.elapsed() + renew_every >= elector.duration {
                            tracing::error!("the lease expires before it can be renewed; exiting");
                            std::process::exit(3);
                        }
                    }
                }
            }
        })
    };

    let ns = args.namespace.as_str();
    let config = watcher::Config::default();
    let ours = watcher::Config::default().labels("app.kubernetes.io/name=janus");
    // Every kind is watched leniently (`Lenient<K>`): one object the types refuse must not fail
    // a watcher's list and stall every other object of its kind.
    let runs = Controller::new(
        Api::<Lenient<JanusRun>>::namespaced(client.clone(), ns),
        config.clone(),
    )
    .owns(Api::<Job>::namespaced(client.clone(), ns), ours.clone())
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
    let promotions = promotion_controller
        .owns(Api::<ConfigMap>::namespaced(client.clone(), ns), ours)
        .watches(
            Api::<Lenient<JanusCandidate>>::namespaced(client.clone(), ns),
            config,
            move |candidate| {
                let name = candidate.name_any();
                requests
                    .state()
                    .into_iter()
                    .filter(|r| r.readable().is_some_and(|r| r.spec.candidate == name))
                    .map(|r| ObjectRef::from_obj(r.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
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
    tokio::join!(runs, candidates, promotions, audit);
    keeper.abort();
    if let Err(e) = elector.release().await {
        tracing::warn!(error = %e, "cannot release the lease");
    }
    ctx.metrics.set_leader(false);
    tracing::info!("stopped");
    flush_traces();
    http.abort();
    Ok(std::process::ExitCode::SUCCESS)
}
