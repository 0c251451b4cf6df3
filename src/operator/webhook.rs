//! The admission webhook's server: `POST /mutate` and `POST /validate` take a Kubernetes
//! AdmissionReview v1 and answer it with `crate::admission::review`, over TLS (rustls with the
//! ring provider; `tls.crt` and `tls.key` from `--webhook-cert-dir`, read once at start). Every
//! replica serves it, leader or not. Stamped records and refusals go to the audit trail.

use crate::admission::{AdmissionReview, Config, Mode, review};
use crate::crd::JanusCandidate;
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use kube::{Api, Client};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Why the webhook could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{path}: {why}")]
    Cert { path: PathBuf, why: String },
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// A rustls server configuration from `<dir>/tls.crt` (the chain) and `<dir>/tls.key`.
pub fn tls_config(dir: &Path) -> Result<rustls::ServerConfig, WebhookError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (crt, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let certs = CertificateDer::pem_file_iter(&crt)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| WebhookError::Cert {
            path: crt.clone(),
            why: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(WebhookError::Cert {
            path: crt,
            why: "no certificate in it".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&key).map_err(|e| WebhookError::Cert {
        path: key.clone(),
        why: e.to_string(),
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Accepted TLS connections: handshakes run in their own tasks (a slow client delays nobody)
/// and arrive here when complete.
struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The acceptor is gone: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

fn accept_loop(tcp: TcpListener, acceptor: TlsAcceptor) -> TlsListener {
    let local = tcp
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match tcp.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook accept");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send((tls, peer)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "webhook TLS handshake"),
                    Err(_) => tracing::debug!(%peer, "webhook TLS handshake timed out"),
                }
            });
        }
    });
    TlsListener { ready: rx, local }
}

/// What the handlers share.
pub struct Webhook {
    pub config: Config,
    pub client: Client,
    pub artifacts_root: PathBuf,
}

async fn answer(hook: &Webhook, body: &[u8], mode: Mode) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut reviewed: AdmissionReview = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                format!("not an AdmissionReview: {e}"),
            )
                .into_response();
        }
    };
    let Some(request) = reviewed.request.take() else {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            "an AdmissionReview without a request",
        )
            .into_response();
    };
    // An approval is bound to the candidate's model: read its digest when one is asked for.
    let asks_approval = mode == Mode::Mutate
        && request
            .object
            .as_ref()
            .and_then(|o| o.pointer("/metadata/annotations"))
            .and_then(|a| a.get(crate::crd::ASK_APPROVE))
            .is_some();
    let model = if asks_approval {
        let candidate = request
            .object
            .as_ref()
            .and_then(|o| o.pointer("/spec/candidate"))
            .and_then(|c| c.as_str())
            .unwrap_or_default()
            .to_string();
        let api: Api<JanusCandidate> = Api::namespaced(hook.client.clone(), &request.namespace);
        match tokio::time::timeout(Duration::from_secs(3), api.get_opt(&candidate)).await {
            Ok(Ok(Some(c))) => Some(c.spec.model.sha256.to_string()),
            _ => None,
        }
    } else {
        None
    };
    let verdict = review(
        &request,
        &hook.config,
        mode,
        model.as_deref(),
        chrono::Utc::now(),
    );
    if let Some(d) = &verdict.denial {
        tracing::warn!(user = %request.user_info.username, operation = %request.operation,
            kind = %request.kind.kind, name = %request.name, rule = d.rule.name(), "admission refused: {}", d.why);
    }
    if request.dry_run != Some(true) && !verdict.audit.is_empty() {
        let (root, ns, entries) = (
            hook.artifacts_root.clone(),
            request.namespace.clone(),
            verdict.audit.clone(),
        );
        tokio::spawn(async move { super::trail::append(&root, &ns, entries).await });
    }
    let response = AdmissionReview {
        api_version: "admission.k8s.io/v1".into(),
        kind: "AdmissionReview".into(),
        request: None,
        response: Some(verdict.response(&request.uid)),
    };
    axum::Json(response).into_response()
}

/// Serves `/mutate` and `/validate` over TLS on `listen` until the process ends.
pub async fn serve(
    listen: String,
    tls: rustls::ServerConfig,
    hook: Webhook,
) -> Result<(), WebhookError> {
    let hook = Arc::new(hook);
    let app = Router::new()
        .route(
            "/mutate",
            post(
                |State(h): State<Arc<Webhook>>, body: axum::body::Bytes| async move {
                    answer(&h, &body, Mode::Mutate).await
                },
            ),
        )
        .route(
            "/validate",
            post(
                |State(h): State<Arc<Webhook>>, body: axum::body::Bytes| async move {
                    answer(&h, &body, Mode::Validate).await
                },
            ),
        )
        .with_state(hook);
    let tcp = TcpListener::bind(&listen)
        .await
        .map_err(|source| WebhookError::Bind {
            addr: listen.clone(),
            source,
        })?;
    tracing::info!(%listen, "serving the admission webhook (/mutate, /validate) over TLS");
    let listener = accept_loop(tcp, TlsAcceptor::from(Arc::new(tls)));
    let _ = axum::serve(listener, app).await;
    Ok(())
}
