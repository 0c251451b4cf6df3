//! `janus reward serve`: the HGRM reward over HTTP for GRPO trainers. `POST /v1/rewards` with
//! `{"completions": [{"event_id", "completion"}, ...]}` answers `{"rewards": [...]}` in the same
//! order; every decomposition is appended to a JSONL trace. Malformed or oversized requests and
//! unknown event ids get a 4xx with a reason; nothing a client sends can crash it.

use crate::contracts::label::Label;
use crate::contracts::reward::RewardDecomposition;
use crate::reward::{HgrmConfig, output::parse_completion, score};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

/// Largest request body accepted (bytes).
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Most completions in one request.
pub const MAX_COMPLETIONS_PER_REQUEST: usize = 4096;

/// What the service scores against.
pub struct RewardService {
    pub labels: HashMap<String, Label>,
    /// Event ids in the artifact without a label (they cannot be scored).
    pub unlabelled: std::collections::HashSet<String>,
    pub config: HgrmConfig,
    pub trace: Mutex<tokio::fs::File>,
    pub metrics: RewardMetrics,
}

/// `/metrics` of the reward service: `janus_reward_count_total`, rewards scored.
pub struct RewardMetrics {
    registry: prometheus_client::registry::Registry,
    rewards: prometheus_client::metrics::counter::Counter,
}

impl Default for RewardMetrics {
    fn default() -> Self {
        let mut registry = prometheus_client::registry::Registry::default();
        let rewards = prometheus_client::metrics::counter::Counter::default();
        registry.register("janus_reward_count", "HGRM rewards scored", rewards.clone());
        Self { registry, rewards }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RewardRequest {
    completions: Vec<CompletionItem>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompletionItem {
    pub event_id: String,
    pub completion: String,
}

#[derive(Serialize)]
struct RewardResponse {
    rewards: Vec<RewardDecomposition>,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "error": message.into() })),
    )
        .into_response()
}

/// The service's routes; `max_body_bytes` bounds a request.
pub fn router(service: Arc<RewardService>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/rewards", post(rewards))
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(|State(s): State<Arc<RewardService>>| async move {
                crate::operator::metrics::openmetrics(&s.metrics.registry)
            }),
        )
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(service)
}

async fn rewards(State(service): State<Arc<RewardService>>, body: Bytes) -> Response {
    let request: RewardRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "request body is not {{\"completions\": [{{\"event_id\", \"completion\"}}]}}: {e}"
                ),
            );
        }
    };
    if request.completions.len() > MAX_COMPLETIONS_PER_REQUEST {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} completions; at most {MAX_COMPLETIONS_PER_REQUEST} per request",
                request.completions.len()
            ),
        );
    }
    let mut problems = Vec::new();
    for (i, item) in request.completions.iter().enumerate() {
        if service.unlabelled.contains(&item.event_id) {
            problems.push(format!(
                "completions[{i}]: event `{}` has no label",
                item.event_id
            ));
        } else if !service.labels.contains_key(&item.event_id) {
            problems.push(format!(
                "completions[{i}]: unknown event_id `{}`",
                item.event_id
            ));
        }
    }
    if !problems.is_empty() {
        return error(StatusCode::UNPROCESSABLE_ENTITY, problems.join("; "));
    }
    let rewards: Vec<RewardDecomposition> = request
        .completions
        .iter()
        .map(|item| {
            let parsed = parse_completion(&item.completion);
            score(
                &item.event_id,
                parsed.as_ref(),
                &service.labels[&item.event_id],
                &service.config,
            )
        })
        .collect();
    let mut lines = Vec::with_capacity(rewards.len() * 512);
    for r in &rewards {
        serde_json::to_writer(&mut lines, r).expect("decompositions serialize");
        lines.push(b'\n');
    }
    {
        let mut trace = service.trace.lock().await;
        if let Err(e) = async {
            trace.write_all(&lines).await?;
            trace.flush().await
        }
        .await
        {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot append to the trace file: {e}"),
            );
        }
    }
    service.metrics.rewards.inc_by(rewards.len() as u64);
    axum::Json(RewardResponse { rewards }).into_response()
}

/// Serves until SIGINT or SIGTERM, then finishes in-flight requests and returns; the
/// connection and request limits are the decision service's (`crate::http_server`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: &crate::http_server::HttpLimits,
) -> Result<(), crate::http_server::ServeError> {
    crate::http_server::serve(listener, app, limits, shutdown_signal()).await
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
}
