//! Delivering the webhook notifications of [`crate::notice`]: who is told when berth refuses,
//! fails, or sees an app degrade, drift or recover.
//!
//! Delivery never slows converging: [`Notifier::notify`] only puts the notice on each matching
//! target's bounded queue (a full queue drops it and counts the drop); one task per target posts
//! them in order, retrying with backoff, each request with its own timeout. A receiver that
//! hangs or is gone costs its own queue, nothing else.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::rt::TokioExecutor;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::cluster::proxy::{ProxyEnv, proxy_for};
use crate::notice::{Notice, Target, body, parse_headers};

/// How many notices wait per target before new ones are dropped.
const QUEUE: usize = 256;
/// One delivery attempt's limit: a receiver that hangs is given up on, not waited for.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Waits between attempts; after the last, the notice counts as failed.
const BACKOFF: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(4),
    Duration::from_secs(15),
];

/// The outcome of one notice at one target, for `berth_notifications_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    Failed,
    /// The target's queue was full.
    Dropped,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Sent, Outcome::Failed, Outcome::Dropped];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Sent => "sent",
            Outcome::Failed => "failed",
            Outcome::Dropped => "dropped",
        }
    }
}

type Count = Arc<dyn Fn(Outcome) + Send + Sync>;

/// The running deliveries; cheap to clone.
#[derive(Clone, Default)]
pub struct Notifier {
    targets: Vec<(Arc<Target>, mpsc::Sender<Notice>)>,
    count: Option<Count>,
}

impl Notifier {
    /// Starts one delivery task per target; `count` is told each outcome.
    pub fn start(
        targets: &[Target],
        instance: &str,
        count: impl Fn(Outcome) + Send + Sync + 'static,
    ) -> Notifier {
        let count: Count = Arc::new(count);
        let senders = targets
            .iter()
            .map(|target| {
                let target = Arc::new(target.clone());
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(deliver(
                    target.clone(),
                    instance.to_string(),
                    rx,
                    count.clone(),
                ));
                (target, tx)
            })
            .collect();
        Notifier {
            targets: senders,
            count: Some(count),
        }
    }

    /// Queues `notice` for every target that wants it; never waits.
    pub fn notify(&self, notice: &Notice) {
        for (target, tx) in &self.targets {
            if !target.wants(notice) {
                continue;
            }
            if tx.try_send(notice.clone()).is_err() {
                warn!(target = %target.host(), event = notice.event.as_str(), app = %notice.app,
                      "notification queue full; dropping the notice");
                if let Some(count) = &self.count {
                    count(Outcome::Dropped);
                }
            }
        }
    }
}

/// Direct, or through the HTTP CONNECT proxy that `HTTPS_PROXY`/`NO_PROXY` choose for the URL
/// (the rules kubectl uses for the API server).
enum HttpClient {
    Direct(Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>),
    Tunneled(Client<hyper_rustls::HttpsConnector<Tunnel<HttpConnector>>, Full<Bytes>>),
}

impl HttpClient {
    fn for_url(url: &Uri) -> Result<HttpClient, String> {
        let tls = || {
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_native_roots()
                .map_err(|e| format!("cannot read the system's CA certificates: {e}"))
                .map(|b| b.https_or_http().enable_http1())
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        let builder = Client::builder(TokioExecutor::new());
        match proxy_for(url, None, &ProxyEnv::from_env()) {
            None => Ok(HttpClient::Direct(
                builder.build(tls()?.wrap_connector(http)),
            )),
            Some(proxy) => {
                let proxy: Uri = proxy
                    .parse()
                    .map_err(|e| format!("the proxy URL is not a URL: {e}"))?;
                let tunnel = Tunnel::new(proxy, http);
                Ok(HttpClient::Tunneled(
                    builder.build(tls()?.wrap_connector(tunnel)),
                ))
            }
        }
    }

    async fn post(&self, request: Request<Full<Bytes>>) -> Result<http::StatusCode, String> {
        let response = match self {
            HttpClient::Direct(c) => c.request(request).await,
            HttpClient::Tunneled(c) => c.request(request).await,
        };
        response
            .map(|r| r.status())
            .map_err(|e| crate::output::error_chain(&e))
    }
}

async fn deliver(
    target: Arc<Target>,
    instance: String,
    mut queue: mpsc::Receiver<Notice>,
    count: Count,
) {
    let client = match HttpClient::for_url(&target.url) {
        Ok(c) => c,
        Err(err) => {
            warn!(target = %target.host(), error = %err, "notifications to this target are off");
            while queue.recv().await.is_some() {
                count(Outcome::Failed);
            }
            return;
        }
    };
    while let Some(notice) = queue.recv().await {
        let outcome = deliver_one(&client, &target, &instance, &notice).await;
        count(outcome);
    }
}

async fn deliver_one(
    client: &HttpClient,
    target: &Target,
    instance: &str,
    notice: &Notice,
) -> Outcome {
    let time = k8s_openapi::jiff::Timestamp::now().to_string();
    let body = body(target.format, notice, instance, &time);
    for attempt in 0..=BACKOFF.len() {
        if attempt > 0 {
            tokio::time::sleep(BACKOFF[attempt - 1]).await;
        }
        let request = match request(target, &body) {
            Ok(r) => r,
            Err(err) => {
                warn!(target = %target.host(), error = %err, "cannot build the notification");
                return Outcome::Failed;
            }
        };
        let result = tokio::time::timeout(ATTEMPT_TIMEOUT, client.post(request)).await;
        let why = match result {
            Ok(Ok(status)) if status.is_success() => {
                debug!(target = %target.host(), event = notice.event.as_str(), app = %notice.app, "notification sent");
                return Outcome::Sent;
            }
            // A receiver that refuses the request itself will refuse it again.
            Ok(Ok(status)) if status.is_client_error() && status.as_u16() != 429 => {
                warn!(target = %target.host(), status = status.as_u16(), "the receiver refused the notification");
                return Outcome::Failed;
            }
            Ok(Ok(status)) => format!("status {status}"),
            Ok(Err(err)) => err,
            Err(_) => format!("no answer within {}s", ATTEMPT_TIMEOUT.as_secs()),
        };
        warn!(target = %target.host(), attempt = attempt + 1, error = %why, "notification not delivered");
    }
    Outcome::Failed
}

fn request(target: &Target, body: &str) -> Result<Request<Full<Bytes>>, String> {
    let mut builder = Request::post(target.url.clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, "berth");
    if let Some(file) = &target.headers_file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read the headers file {}: {e}", file.display()))?;
        let headers =
            parse_headers(&text).map_err(|e| format!("headers file {}: {e}", file.display()))?;
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
    }
    builder
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| e.to_string())
}
