//! The admission webhook's server: `POST /mutate` and `POST /validate` take a Kubernetes
//! AdmissionReview v1 and answer it with `crate::admission::review`, over TLS (rustls with the
//! ring provider; `tls.crt` and `tls.key` from `--webhook-cert-dir`, read once at start). Every
//! replica serves it, leader or not. Refusals go to the audit trail (stamped records go there
//! from the operator, once they are stored). It takes any AdmissionReview the API server can
//! send ([`MAX_REVIEW_BYTES`]): a review refused for its size would let an UPDATE (failure
//! policy `Ignore`) past unchecked.

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

/// A rustls server configuration from `<dir>/tls.crt` (the chain) and `<dir>/tls.key`; with
/// `client_ca` (a PEM file of CA certificates) a client must present a certificate one of them
/// issued (RFC 8446 §4.3.2 CertificateRequest; rustls's WebPKI client verifier), else the
/// handshake fails and no request is read: only the API server, configured with such a client
/// certificate, is answered.
pub fn tls_config(
    dir: &Path,
    client_ca: Option<&Path>,
) -> Result<rustls::ServerConfig, WebhookError> {
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
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let cert = |why: String| WebhookError::Cert {
                path: path.to_path_buf(),
                why,
            };
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(path).map_err(|e| cert(e.to_string()))? {
                roots
                    .add(c.map_err(|e| cert(e.to_string()))?)
                    .map_err(|e| cert(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(cert("no CA certificate in it".into()));
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .map_err(|e| cert(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key)?;
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

/// The largest AdmissionReview the webhook reads: 16 MiB. The API server takes a request body
/// of at most 3 MiB and a review carries the object and the old object (plus the request's
/// metadata), so it never sends more than about 6 MiB; axum's default limit (2 MiB) would
/// answer a big one 413.
pub const MAX_REVIEW_BYTES: usize = 16 * 1024 * 1024;

/// What the handlers share.
pub struct Webhook {
    pub config: Config,
    pub client: Client,
    /// The audit trail refusals are appended to.
    pub trail: std::sync::Arc<super::trail::Trail>,
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
        let (trail, ns, entries) = (
            hook.trail.clone(),
            request.namespace.clone(),
            verdict.audit.clone(),
        );
        tokio::spawn(async move { trail.append(&ns, entries).await });
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
    let app = app(Arc::new(hook));
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

/// The routes: `POST /mutate` and `POST /validate`, bodies up to [`MAX_REVIEW_BYTES`].
pub fn app(hook: Arc<Webhook>) -> Router {
    Router::new()
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
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REVIEW_BYTES))
        .with_state(hook)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::{AdmissionResponse, Config};
    use crate::identity::SigningKey;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    /// A kube client whose API server answers every call 404 (no candidate to read).
    fn client() -> Client {
        let api = tower::service_fn(|_req: axum::http::Request<kube::client::Body>| async {
            let body = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#;
            Ok::<_, std::convert::Infallible>(
                axum::http::Response::builder()
                    .status(404)
                    .header("content-type", "application/json")
                    .body(kube::client::Body::from(body.as_bytes().to_vec()))
                    .unwrap(),
            )
        });
        Client::new(api, "janus")
    }

    fn hook(root: &Path) -> Arc<Webhook> {
        Arc::new(Webhook {
            config: Config {
                approver_group: "janus-approvers".into(),
                oncall_group: "janus-oncall".into(),
                operator_username: "system:serviceaccount:janus:janus-operator".into(),
                approval_ttl: chrono::Duration::hours(24),
                key: SigningKey::new(b"webhook-test-key-0123456789").unwrap(),
            },
            client: client(),
            trail: Arc::new(crate::operator::trail::Trail::new(
                root.to_path_buf(),
                None,
                Default::default(),
                Default::default(),
            )),
        })
    }

    /// A PromotionRequest at the CRD's bounds where people write (253-character names, 1000
    /// canary symbols of 32 characters), padded with annotations to `bytes` of JSON.
    fn maximal(bytes: usize, kill: bool) -> Value {
        let symbols: Vec<String> = (0..crate::crd::MAX_CANARY_SYMBOLS)
            .map(|i| format!("{i:0>32}"))
            .collect();
        let mut o = json!({
            "apiVersion": "janus.torghut.io/v1alpha1",
            "kind": "PromotionRequest",
            "metadata": {"name": "r1", "namespace": "janus", "uid": "uid-1",
                         "creationTimestamp": "2026-03-01T10:00:00Z", "annotations": {}},
            "spec": {"candidate": "c".repeat(253), "target": "canary", "killSwitch": kill,
                     "canary": {"symbols": symbols, "maxOrderNotional": 1.0,
                                "maxGrossNotional": 1.0, "maxNetNotional": 1.0}}
        });
        let mut i = 0;
        while o.to_string().len() < bytes {
            o["metadata"]["annotations"][format!("pad.example/{i}")] = json!("p".repeat(60_000));
            i += 1;
        }
        o
    }

    /// What the API server can send at most: object and old object each at the 3 MiB request
    /// cap. Reviewed (allowed, the kill switch stamped), not refused for its size.
    #[tokio::test]
    async fn the_largest_review_the_api_server_can_send_is_reviewed() {
        let dir = tempfile::tempdir().unwrap();
        let review = json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "review-1",
                "kind": {"group": "janus.torghut.io", "version": "v1alpha1", "kind": "PromotionRequest"},
                "name": "r1", "namespace": "janus", "operation": "UPDATE",
                "userInfo": {"username": "carol", "groups": ["janus-oncall"]},
                "object": maximal(3 << 20, true),
                "oldObject": maximal(3 << 20, false),
            }
        });
        let body = review.to_string();
        assert!(body.len() > 6 << 20, "{} bytes", body.len());
        for path in ["/mutate", "/validate"] {
            let request = axum::http::Request::post(path)
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body.clone()))
                .unwrap();
            let response = app(hook(dir.path())).oneshot(request).await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            let answered: AdmissionReview = serde_json::from_slice(&bytes).unwrap();
            let r: AdmissionResponse = answered.response.unwrap();
            assert_eq!(r.uid, "review-1");
            if path == "/mutate" {
                assert!(r.allowed, "{:?}", r.status);
                assert!(r.patch.is_some(), "the kill switch is stamped");
            }
        }
        // Beyond the limit (not something the API server sends): refused, not read.
        let request = axum::http::Request::post("/mutate")
            .body(axum::body::Body::from(vec![b' '; MAX_REVIEW_BYTES + 1]))
            .unwrap();
        let response = app(hook(dir.path())).oneshot(request).await.unwrap();
        assert_eq!(response.status(), 413);
    }
}
