//! The election against an in-process Lease API (one Lease, compare-and-swap on its
//! resourceVersion, as the API server does it), in paused time: what the real control plane
//! shows in tests/cluster_leader.rs, here at exact instants.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;

use super::*;

const NS: &str = "berth";
const NAME: &str = "berth";

/// The Lease API of one namespace, holding at most the one Lease.
#[derive(Default)]
struct FakeLeases {
    lease: Mutex<Option<Lease>>,
    version: AtomicU64,
    /// While set, every request hangs (a stalled connection).
    hang: AtomicBool,
}

impl FakeLeases {
    fn store(&self, mut lease: Lease) -> Lease {
        let version = self.version.fetch_add(1, Ordering::SeqCst) + 1;
        lease.metadata.resource_version = Some(version.to_string());
        lease.metadata.namespace = Some(NS.to_string());
        *self.lease.lock().expect("lock") = Some(lease.clone());
        lease
    }

    fn holder(&self) -> Option<String> {
        self.lease
            .lock()
            .expect("lock")
            .as_ref()?
            .spec
            .as_ref()?
            .holder_identity
            .clone()
    }

    /// Another berth writes the lease as its own.
    fn taken_by(&self, holder: &str) {
        let spec = LeaseSpec {
            holder_identity: Some(holder.to_string()),
            lease_duration_seconds: Some(15),
            renew_time: Some(now()),
            ..LeaseSpec::default()
        };
        self.store(Lease {
            metadata: ObjectMeta {
                name: Some(NAME.to_string()),
                ..ObjectMeta::default()
            },
            spec: Some(spec),
        });
    }

    async fn serve(&self, request: Request<Body>) -> Response<Body> {
        if self.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let method = request.method().clone();
        let body = request.into_body().collect_bytes().await.expect("body");
        let current = self.lease.lock().expect("lock").clone();
        match (method, current) {
            (Method::GET, Some(lease)) => ok(&lease),
            (Method::GET, None) => status(StatusCode::NOT_FOUND, "NotFound"),
            (Method::POST, Some(_)) => status(StatusCode::CONFLICT, "AlreadyExists"),
            (Method::POST, None) => ok(&self.store(parse(&body))),
            (Method::PUT, Some(lease)) => {
                let update = parse(&body);
                if update.metadata.resource_version != lease.metadata.resource_version {
                    status(StatusCode::CONFLICT, "Conflict")
                } else {
                    ok(&self.store(update))
                }
            }
            (Method::PUT, None) => status(StatusCode::NOT_FOUND, "NotFound"),
            (method, _) => panic!("unexpected {method}"),
        }
    }
}

fn parse(body: &[u8]) -> Lease {
    serde_json::from_slice(body).expect("a Lease")
}

fn ok(lease: &Lease) -> Response<Body> {
    let body = serde_json::to_vec(lease).expect("json");
    Response::new(Body::from(body))
}

fn status(code: StatusCode, reason: &str) -> Response<Body> {
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": reason, "reason": reason, "code": code.as_u16(),
    });
    Response::builder()
        .status(code)
        .body(Body::from(serde_json::to_vec(&body).expect("json")))
        .expect("response")
}

/// An election of `identity` against `api`, with a 15 s lease: renews every 5 s, requests time
/// out after 1.5 s, the fence closes 12 s after the last successful renew was sent.
fn election(api: &Arc<FakeLeases>, identity: &str) -> (Election, Fence) {
    let api = api.clone();
    let service = tower::service_fn(move |request: Request<Body>| {
        let api = api.clone();
        async move { Ok::<_, std::convert::Infallible>(api.serve(request).await) }
    });
    let client = kube::Client::new(service, NS);
    let settings = LeaderElection {
        enabled: true,
        namespace: NS.to_string(),
        lease_name: NAME.to_string(),
        lease_duration: Duration::from_secs(15),
        identity: Some(identity.to_string()),
    };
    let fence = Fence::always_open();
    (Election::start(client, &settings, fence.clone()), fence)
}

/// Sleeps until `at` seconds after `start`.
async fn until(start: Instant, at: f64) {
    tokio::time::sleep_until(start + Duration::from_secs_f64(at)).await;
}

#[test]
fn the_fence_closes_well_before_a_standby_can_take_over() {
    let t = Timing::for_duration(Duration::from_secs(15));
    assert_eq!(t.renew_every, Duration::from_secs(5));
    assert_eq!(t.margin, Duration::from_secs(3));
    // Two renews and their retries fit before the deadline; each is bounded well below the
    // margin.
    assert!(t.request_timeout * 2 <= t.margin);
    assert!(t.renew_every * 2 + t.request_timeout < t.duration - t.margin);
    let short = Timing::for_duration(Duration::from_secs(1));
    assert_eq!(short.duration, Duration::from_secs(2), "at least 2 s");
}

#[tokio::test(start_paused = true)]
async fn renews_that_hang_close_the_fence_at_the_deadline_and_a_later_renew_reopens_it() {
    let api = Arc::new(FakeLeases::default());
    let start = Instant::now();
    let (mut election, fence) = election(&api, "a");
    election.first_look().await;
    assert!(*election.leading.borrow(), "a free lease is taken at once");
    assert!(fence.is_open());
    assert_eq!(api.holder().as_deref(), Some("a"));

    // Every renew from now on hangs; the last successful one was sent at 0 s.
    api.hang.store(true, Ordering::SeqCst);
    until(start, 11.9).await;
    assert!(fence.is_open(), "still within the lease");
    assert!(*election.leading.borrow());
    until(start, 12.0).await;
    assert!(
        !fence.is_open(),
        "closed at 15 s − 3 s, renews still hanging"
    );
    until(start, 12.1).await;
    assert!(!*election.leading.borrow(), "and no longer leading");

    // The network is back and no one took the lease: the next renew confirms it.
    api.hang.store(false, Ordering::SeqCst);
    until(start, 14.0).await;
    assert!(fence.is_open());
    assert!(*election.leading.borrow());
    election.release().await;
    assert_eq!(api.holder(), None, "released on the way out");
    assert!(!fence.is_open());
}

#[tokio::test(start_paused = true)]
async fn a_lease_written_by_another_closes_the_fence_at_the_next_renew() {
    let api = Arc::new(FakeLeases::default());
    let start = Instant::now();
    let (mut election, fence) = election(&api, "a");
    election.first_look().await;
    assert!(fence.is_open());
    api.taken_by("b");
    until(start, 5.1).await;
    assert!(
        !fence.is_open(),
        "the renew's compare-and-swap lost: closed at once"
    );
    assert!(!*election.leading.borrow());
    assert_eq!(
        api.holder().as_deref(),
        Some("b"),
        "b's lease is left alone"
    );
    election.release().await;
    assert_eq!(api.holder().as_deref(), Some("b"));
}

#[tokio::test(start_paused = true)]
async fn a_standby_takes_over_only_after_a_whole_lease_duration_without_renewal() {
    let api = Arc::new(FakeLeases::default());
    api.taken_by("b");
    let start = Instant::now();
    let (mut election, fence) = election(&api, "a");
    election.first_look().await;
    assert!(!*election.leading.borrow(), "b holds the lease");
    assert!(!fence.is_open());

    // b renews at 4 s: the record changed, the wait starts again from the next look (5 s).
    until(start, 4.0).await;
    api.taken_by("b");
    until(start, 19.9).await;
    assert!(
        !fence.is_open(),
        "15 s after the look that saw b's renew: not yet"
    );
    assert_eq!(api.holder().as_deref(), Some("b"));
    until(start, 20.1).await;
    assert!(
        fence.is_open(),
        "taken over at the first look past 15 s unchanged"
    );
    assert!(*election.leading.borrow());
    let lease = api.lease.lock().expect("lock").clone().expect("lease");
    let spec = lease.spec.expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("a"));
    assert_eq!(spec.lease_transitions, Some(1));
    election.release().await;
}
