//! The one HTTP server both services run on (`janus serve` and `janus reward serve`), with the
//! limits that keep a client from holding the service: a cap on open connections, a deadline
//! for a request's headers (which also closes idle keep-alive connections), a deadline for the
//! whole request, a cap on requests in flight above which the service sheds load (503) instead
//! of queueing, and a body limit. Built from hyper / hyper-util (connections, header timeout,
//! graceful shutdown) and tower / tower-http (concurrency limit, load shedding, timeout); no
//! hand-written timers.

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use clap::Args;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceBuilder;

/// How much of the service one client, or all of them, may hold.
#[derive(Debug, Clone, Args)]
pub struct HttpLimits {
    /// Most open connections; further clients wait in the listen backlog until one closes.
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
    /// Milliseconds a client has to send a request's headers, counted from the connection's
    /// first byte or the end of its previous response (an idle keep-alive connection is closed
    /// after it).
    #[arg(long, default_value_t = 5_000)]
    pub header_read_timeout_ms: u64,
    /// Milliseconds for a whole request (body and handler); past it the answer is 408.
    #[arg(long, default_value_t = 10_000)]
    pub request_timeout_ms: u64,
    /// Most requests being handled at once; above it a request is answered 503 at once.
    #[arg(long, default_value_t = 512)]
    pub max_requests_in_flight: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_read_timeout_ms: 5_000,
            request_timeout_ms: 10_000,
            max_requests_in_flight: 512,
        }
    }
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("a limit is zero: {0} must be at least 1")]
    ZeroLimit(&'static str),
}

async fn shed(error: tower::BoxError) -> axum::response::Response {
    if error.is::<tower::load_shed::error::Overloaded>() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            r#"{"error": "overloaded: too many requests in flight"}"#,
        )
            .into_response()
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response()
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets the open requests finish (at
/// most `request_timeout_ms`) and returns. The router keeps its own body limit
/// (`DefaultBodyLimit`); the limits here hold for the whole router, not per route.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: &HttpLimits,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    if limits.max_connections == 0 {
        return Err(ServeError::ZeroLimit("--max-connections"));
    }
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms.max(1)))
        .keep_alive(true);
    // Around the whole router (axum's `Router::layer` would give each route its own limit).
    let app = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(shed))
        .load_shed()
        .concurrency_limit(limits.max_requests_in_flight.max(1))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(limits.request_timeout_ms),
        ))
        .service(app);
    let service = hyper_util::service::TowerToHyperService::new(app);
    tokio::pin!(shutdown);
    loop {
        // A slot first: at the cap, new connections wait in the kernel's backlog.
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, or the peer gave up: wait a little, go on.
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = builder.serve_connection(TokioIo::new(stream), service.clone());
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection closed");
            }
            drop(permit);
        });
    }
    drop(listener);
    let drain = Duration::from_millis(limits.request_timeout_ms);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain period: closing them");
    }
    Ok(())
}
