//! The admin HTTP server: `/healthz` (the process is up), `/readyz` (the first full sync is done)
//! and `/metrics` (OpenMetrics text), on the address from `--admin-addr` / `admin_addr`.
//!
//! Binding is separate from serving so that a busy port fails start-up with the address in the
//! message, before the daemon tells systemd it is ready.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;

/// The content type Prometheus asks for first; with it, the `# EOF` and `_total` conventions of
/// the body are read as OpenMetrics rather than the older text format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Errors of the admin server's set-up.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The port is taken: most often a second berth, or another exporter on 9464.
    #[error(
        "the admin address {addr} is already in use (another berth, or another service on that port?); choose another with `admin_addr` in the config or --admin-addr"
    )]
    AddrInUse {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// Any other bind failure (address not on this host, permission denied for a port < 1024…).
    #[error("cannot listen on the admin address {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Readiness shared between the daemon (which flips it) and `/readyz` (which reports it).
#[derive(Debug, Default)]
pub struct Health {
    /// True once the first full sync has finished; it stays true afterwards, as a failing app is
    /// reported in the metrics, not by taking the whole daemon out of service.
    ready: AtomicBool,
}

impl Health {
    /// Not ready yet.
    pub fn new() -> Arc<Health> {
        Arc::new(Health::default())
    }

    /// Sets readiness; the daemon calls `set_ready(true)` after the first full sync.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// Binds the admin address.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, AdminError> {
    TcpListener::bind(addr).await.map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            AdminError::AddrInUse { addr, source }
        } else {
            AdminError::Bind { addr, source }
        }
    })
}

/// What the handlers share.
#[derive(Clone)]
struct AppState {
    /// Encoded on every scrape.
    metrics: Arc<Metrics>,
    /// Read by `/readyz`.
    health: Arc<Health>,
}

/// Serves the admin endpoints on `listener` until `shutdown` is cancelled, then stops accepting
/// and returns once the connections in flight have finished.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_page))
        .with_state(AppState { metrics, health });
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(addr = %addr, "admin server listening");
    }
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// Liveness: answering at all is the signal (the watchdog covers a stuck loop).
async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.health.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

async fn metrics_page(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
        state.metrics.encode(),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::task::JoinHandle;

    use super::*;

    /// A parsed HTTP/1.1 response: status code, lower-cased header lines, body.
    struct Response {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Response {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }
    }

    /// One request on a fresh connection with `Connection: close`, so reading to the end is the
    /// whole response (no chunked keep-alive parsing needed).
    async fn request(addr: SocketAddr, method: &str, path: &str) -> Response {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connect to the admin server");
        let req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(req.as_bytes())
            .await
            .expect("send request");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read response");
        let raw = String::from_utf8(raw).expect("UTF-8 response");
        let (head, body) = raw.split_once("\r\n\r\n").expect("header/body separator");
        let mut lines = head.lines();
        let status_line = lines.next().expect("status line");
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code");
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Response {
            status,
            headers,
            body: body.to_owned(),
        }
    }

    async fn start() -> (
        SocketAddr,
        Arc<Metrics>,
        Arc<Health>,
        CancellationToken,
        JoinHandle<std::io::Result<()>>,
    ) {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind an ephemeral port");
        let addr = listener.local_addr().expect("local address");
        let metrics = Metrics::new();
        let health = Health::new();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(
            listener,
            metrics.clone(),
            health.clone(),
            shutdown.clone(),
        ));
        (addr, metrics, health, shutdown, server)
    }

    async fn stop(shutdown: CancellationToken, server: JoinHandle<std::io::Result<()>>) {
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("server stops after cancel")
            .expect("server task did not panic")
            .expect("server ended without error");
    }

    #[tokio::test]
    async fn healthz_answers_ok() {
        let (addr, _metrics, _health, shutdown, server) = start().await;
        let resp = request(addr, "GET", "/healthz").await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, "ok");
        stop(shutdown, server).await;
    }

    #[tokio::test]
    async fn readyz_flips_with_health() {
        let (addr, _metrics, health, shutdown, server) = start().await;
        let resp = request(addr, "GET", "/readyz").await;
        assert_eq!(resp.status, 503);
        assert_eq!(resp.body, "not ready");

        health.set_ready(true);
        let resp = request(addr, "GET", "/readyz").await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, "ready");

        health.set_ready(false);
        assert_eq!(request(addr, "GET", "/readyz").await.status, 503);
        stop(shutdown, server).await;
    }

    #[tokio::test]
    async fn metrics_are_openmetrics_text() {
        let (addr, metrics, _health, shutdown, server) = start().await;
        metrics.set_pending_removals(2);
        let resp = request(addr, "GET", "/metrics").await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-type"), Some(OPENMETRICS_CONTENT_TYPE));
        assert!(
            resp.body.contains("\nberth_pending_removals 2\n"),
            "{}",
            resp.body
        );
        assert!(resp.body.ends_with("# EOF\n"), "{}", resp.body);
        stop(shutdown, server).await;
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_are_refused() {
        let (addr, _metrics, _health, shutdown, server) = start().await;
        assert_eq!(request(addr, "GET", "/nope").await.status, 404);
        assert_eq!(request(addr, "POST", "/metrics").await.status, 405);
        stop(shutdown, server).await;
    }

    #[tokio::test]
    async fn shutdown_stops_the_server_and_frees_the_port() {
        let (addr, _metrics, _health, shutdown, server) = start().await;
        assert_eq!(request(addr, "GET", "/healthz").await.status, 200);
        stop(shutdown, server).await;
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "the listener is closed after shutdown"
        );
    }

    #[tokio::test]
    async fn a_busy_address_names_the_address() {
        let first = bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind an ephemeral port");
        let addr = first.local_addr().expect("local address");
        let err = bind(addr).await.expect_err("the port is taken");
        assert!(matches!(err, AdminError::AddrInUse { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains(&addr.to_string()), "{message}");
        assert!(message.contains("already in use"), "{message}");
    }
}
