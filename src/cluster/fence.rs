//! The fence between a leader and its writes: one chokepoint that every write berth sends goes
//! through, so a berth that may no longer hold the leader lease writes nothing, whatever step of
//! whatever work it is in (an apply, each step of a removal or of a recreate, the removal
//! ledger, an Event).
//!
//! A [`Fence`] is open until a deadline on the monotonic clock: the time the last successful
//! renew of the lease was *sent*, plus the lease duration, minus a safety margin (see
//! `daemon::leader`). A standby cannot take the lease before that renew's time plus the
//! duration, so a leader whose fence is open is still the only writer. The fence is checked by a
//! tower layer on the request client ([`FenceLayer`]): a request that changes something is
//! refused with [`Fenced`] once the deadline has passed, before a byte leaves the process.
//!
//! Without leader election the fence is always open.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::time::Instant;

/// The error of a write refused because this process may no longer lead.
#[derive(Debug, thiserror::Error)]
#[error(
    "not written: this berth may no longer hold the leader lease (the last renew is older than \
     the lease allows); whoever leads now carries on"
)]
pub struct Fenced;

/// Whether this process may write now. Cheap to clone; every clone is the same fence.
#[derive(Clone, Debug)]
pub struct Fence {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    /// Writes refused so far: a worker compares it before and after its work to tell "stopped
    /// by the fence" from a failure.
    refused: AtomicU64,
}

#[derive(Clone, Copy, Debug)]
enum State {
    /// No leader election: one berth, every write may go.
    AlwaysOpen,
    /// Open while `now < deadline`; None is closed (not leading yet, or leadership lost or
    /// given up).
    Until(Option<Instant>),
}

impl Fence {
    /// A fence that never closes, until [`Fence::close`]: the CLI, and a daemon without
    /// leader election.
    pub fn always_open() -> Fence {
        Fence {
            inner: Arc::new(Inner {
                state: Mutex::new(State::AlwaysOpen),
                refused: AtomicU64::new(0),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens the fence until `deadline` (a successful acquire or renew). Never moves an open
    /// deadline backwards: an older renew that answered late cannot shorten a newer one.
    pub fn open_until(&self, deadline: Instant) {
        let mut state = self.state();
        match *state {
            State::Until(Some(current)) if current >= deadline => {}
            _ => *state = State::Until(Some(deadline)),
        }
    }

    /// Closes the fence now: from here on a write needs a held lease ([`Fence::open_until`]).
    /// A daemon in leader election closes it before anything else; the election closes it when
    /// the lease went to another holder or is given up.
    pub fn close(&self) {
        *self.state() = State::Until(None);
    }

    /// The deadline in force: None when closed, or when always open.
    pub fn deadline(&self) -> Option<Instant> {
        match *self.state() {
            State::AlwaysOpen => None,
            State::Until(deadline) => deadline,
        }
    }

    /// Whether a write may go now.
    ///
    /// The clock is the monotonic one (CLOCK_MONOTONIC on Linux), which keeps counting while
    /// the process is stopped (SIGSTOP, a debugger, a VM pause of the process alone): a berth
    /// resumed after longer than its lease finds its deadline passed at its first write, and
    /// writes again only after a fresh successful renew re-confirmed the lease.
    pub fn is_open(&self) -> bool {
        match *self.state() {
            State::AlwaysOpen => true,
            State::Until(deadline) => deadline.is_some_and(|deadline| Instant::now() < deadline),
        }
    }

    /// Ok while open; otherwise counts the refusal and says why.
    pub fn check(&self) -> Result<(), Fenced> {
        if self.is_open() {
            Ok(())
        } else {
            self.inner.refused.fetch_add(1, Ordering::SeqCst);
            Err(Fenced)
        }
    }

    /// Writes refused so far.
    pub fn refused(&self) -> u64 {
        self.inner.refused.load(Ordering::SeqCst)
    }
}

/// Whether a request changes something in the cluster: every method but the reads, except a
/// server-side dry-run (planning is a dry-run apply, and writes nothing).
fn is_write<B>(request: &http::Request<B>) -> bool {
    use http::Method;
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return false;
    }
    let dry_run = request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|pair| pair == "dryRun=All"));
    !dry_run
}

/// The tower layer that checks the [`Fence`] before every write of a client.
#[derive(Clone)]
pub struct FenceLayer {
    fence: Fence,
}

impl FenceLayer {
    pub fn new(fence: Fence) -> FenceLayer {
        FenceLayer { fence }
    }
}

impl<S> tower::Layer<S> for FenceLayer {
    type Service = FencedService<S>;

    fn layer(&self, inner: S) -> FencedService<S> {
        FencedService {
            inner,
            fence: self.fence.clone(),
        }
    }
}

/// A service that refuses writes while its fence is closed.
#[derive(Clone)]
pub struct FencedService<S> {
    inner: S,
    fence: Fence,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, B> tower::Service<http::Request<B>> for FencedService<S>
where
    S: tower::Service<http::Request<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if is_write(&request)
            && let Err(fenced) = self.fence.check()
        {
            tracing::warn!(
                method = %request.method(),
                path = %request.uri().path(),
                "write refused: this berth may no longer hold the leader lease"
            );
            return Box::pin(std::future::ready(Err(Box::new(fenced) as BoxError)));
        }
        let response = self.inner.call(request);
        Box::pin(async move { response.await.map_err(Into::into) })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Whether `err`, or any error in its chain, is a write refused by the fence.
    fn is_fenced(err: &(dyn std::error::Error + 'static)) -> bool {
        let mut current = Some(err);
        while let Some(err) = current {
            if err.is::<Fenced>() {
                return true;
            }
            current = err.source();
        }
        false
    }

    fn request(method: &str, uri: &str) -> http::Request<()> {
        http::Request::builder()
            .method(method)
            .uri(uri)
            .body(())
            .expect("request")
    }

    #[test]
    fn reads_and_dry_runs_are_not_writes() {
        assert!(!is_write(&request("GET", "/api/v1/namespaces/a/pods")));
        assert!(!is_write(&request(
            "PATCH",
            "/apis/apps/v1/namespaces/a/statefulsets/web?dryRun=All&fieldManager=berth"
        )));
        assert!(is_write(&request(
            "PATCH",
            "/apis/apps/v1/namespaces/a/statefulsets/web?fieldManager=berth"
        )));
        assert!(is_write(&request(
            "DELETE",
            "/api/v1/namespaces/a/pods/web-0"
        )));
        assert!(is_write(&request(
            "POST",
            "/api/v1/namespaces/a/pods/web-0/eviction"
        )));
        assert!(is_write(&request("PUT", "/apis/coordination.k8s.io/v1/x")));
    }

    #[tokio::test(start_paused = true)]
    async fn the_fence_closes_at_its_deadline_and_counts_refusals() {
        let fence = Fence::always_open();
        assert!(fence.check().is_ok());
        fence.close();
        assert!(fence.check().is_err(), "closed until the lease is held");
        fence.open_until(Instant::now() + Duration::from_secs(4));
        assert!(fence.check().is_ok());
        // An older renew answering late never shortens the deadline.
        fence.open_until(Instant::now() + Duration::from_secs(1));
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(fence.check().is_ok());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(fence.check().is_err(), "closed at the deadline");
        assert_eq!(fence.refused(), 2);
        fence.open_until(Instant::now() + Duration::from_secs(4));
        fence.close();
        assert!(!fence.is_open());
    }

    #[tokio::test]
    async fn a_fenced_client_refuses_writes_before_sending_them() {
        use tower::{Layer, Service, ServiceExt};
        let sent = Arc::new(AtomicU64::new(0));
        let counter = sent.clone();
        let inner = tower::service_fn(move |_: http::Request<()>| {
            counter.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok::<_, BoxError>("ok"))
        });
        let fence = Fence::always_open();
        fence.close();
        let mut service = FenceLayer::new(fence.clone()).layer(inner);
        let read = service
            .ready()
            .await
            .expect("ready")
            .call(request("GET", "/x"));
        assert!(read.await.is_ok(), "reads always go");
        let write = service
            .ready()
            .await
            .expect("ready")
            .call(request("DELETE", "/x"));
        let err = write.await.expect_err("refused");
        assert!(is_fenced(err.as_ref()), "{err}");
        assert_eq!(sent.load(Ordering::SeqCst), 1, "the write was never sent");
    }
}
