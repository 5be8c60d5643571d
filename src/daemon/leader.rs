//! Leader election over a Kubernetes Lease, so that two bastions can run `berth watch` and
//! exactly one of them writes. The other keeps its caches warm and takes over when the leader
//! stops renewing.
//!
//! The election opens and closes the cluster's write [`Fence`]: after each *successful* renew the
//! fence stays open until the time that renew was sent, plus the lease duration, minus a safety
//! margin. A standby takes the lease only after it has seen the same record, unchanged, for a
//! whole lease duration on its own clock, and it first saw that record no earlier than the renew
//! that wrote it was sent; so it cannot take over before the leader's fence has closed, whatever
//! the leader is doing (a hung renew, a stalled connection, a process stopped and resumed).
//!
//! The protocol is client-go's: every write of the Lease is a compare-and-swap on its
//! resourceVersion, so a renew succeeds only if no one else wrote the Lease since this process
//! did, and a takeover only if the record is still the one that was watched expire.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::cluster::Fence;
use crate::config::LeaderElection;

/// The periods of the election, all derived from the lease duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Timing {
    /// How long a lease lasts without a renew (`leaseDurationSeconds`).
    duration: Duration,
    /// How often the leader renews, and a standby looks at the Lease.
    renew_every: Duration,
    /// How long one Lease request may take: several renews fit before the fence closes.
    request_timeout: Duration,
    /// How much earlier than the lease's end the leader stops writing: room for a write sent
    /// just before the deadline to land, and for clocks that run at slightly different rates.
    margin: Duration,
    /// The pause after a failed request before the next try.
    retry_pause: Duration,
}

impl Timing {
    fn for_duration(duration: Duration) -> Timing {
        let duration = duration.max(Duration::from_secs(2));
        Timing {
            duration,
            renew_every: duration / 3,
            request_timeout: (duration / 10).max(Duration::from_millis(500)),
            margin: duration / 5,
            retry_pause: (duration / 15).max(Duration::from_millis(100)),
        }
    }

    /// Until when a renew (or acquire) sent at `sent` and answered with success lets this
    /// process write.
    fn deadline(&self, sent: Instant) -> Instant {
        sent + self.duration - self.margin
    }
}

/// A running election. `leading` says whether this process holds the lease now; it turns false
/// once the fence's deadline passes without a successful renew, even while a renew still hangs.
pub struct Election {
    pub leading: watch::Receiver<bool>,
    /// Turns true once the first attempt at the lease has an answer (or timed out).
    looked: watch::Receiver<bool>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Election {
    /// Starts the election loop. `client` must not be fenced (it renews the lease); `fence` is
    /// the fence of the client berth writes through, opened only while the lease is held.
    pub fn start(client: kube::Client, settings: &LeaderElection, fence: Fence) -> Election {
        let identity = settings.identity.clone().unwrap_or_else(default_identity);
        let timing = Timing::for_duration(settings.lease_duration);
        info!(
            lease = %format!("{}/{}", settings.namespace, settings.lease_name),
            identity = %identity,
            duration_seconds = timing.duration.as_secs(),
            "joining leader election"
        );
        // Nothing is written before the lease is held.
        fence.close();
        let (leading_tx, leading) = watch::channel(false);
        let (looked_tx, looked) = watch::channel(false);
        let stop = CancellationToken::new();
        let elector = Elector {
            leases: Api::namespaced(client, &settings.namespace),
            name: settings.lease_name.clone(),
            identity,
            timing,
            fence,
            leading: leading_tx,
            looked: looked_tx,
        };
        let task = tokio::spawn(elector.run(stop.clone()));
        Election {
            leading,
            looked,
            stop,
            task,
        }
    }

    /// Resolves once the first attempt at the lease is over: `leading` then says whether this
    /// process got it.
    pub async fn first_look(&mut self) {
        let _ = self.looked.wait_for(|looked| *looked).await;
    }

    /// Gives the lease up (the other replica takes over at once instead of after expiry) and
    /// waits briefly for that to be done. Call it after the last write.
    pub async fn release(self) {
        self.stop.cancel();
        if tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .is_err()
        {
            warn!("releasing the leader lease timed out; it expires by itself");
        }
    }
}

/// The loop's own state and handles.
struct Elector {
    leases: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    /// Opened after every successful acquire or renew, closed when the lease is lost.
    fence: Fence,
    leading: watch::Sender<bool>,
    looked: watch::Sender<bool>,
}

/// What a standby saw of another holder's lease, and since when on its own clock.
struct Observed {
    /// Holder and renew time of the record: the record changes when either does.
    record: (Option<String>, Option<MicroTime>),
    since: Instant,
}

/// How one attempt at the Lease ended.
enum Attempt {
    /// The Lease is ours, as written (its new resourceVersion is in it).
    Held(Lease),
    /// Someone else holds it, validly as far as this process can tell.
    Other { holder: String, lease: Lease },
    /// The request failed or timed out: nothing is known.
    Unknown(String),
}

impl Elector {
    async fn run(self, stop: CancellationToken) {
        // The Lease as this process last wrote it, while it holds it.
        let mut held: Option<Lease> = None;
        let mut observed: Option<Observed> = None;
        let mut next = Instant::now();
        loop {
            // Wake at the fence's deadline too, so `leading` turns false on time.
            let wake = match self.fence.deadline() {
                Some(deadline) if *self.leading.borrow() => next.min(deadline),
                _ => next,
            };
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep_until(wake) => {}
            }
            if Instant::now() < next {
                // Woken by the deadline, not by a due attempt.
                self.check_deadline();
                continue;
            }
            let sent = Instant::now();
            let attempt = match &held {
                Some(lease) => self.renew(lease).await,
                None => self.try_acquire(&mut observed).await,
            };
            match attempt {
                Attempt::Held(lease) => {
                    self.fence.open_until(self.timing.deadline(sent));
                    if held.is_none() {
                        info!(identity = %self.identity, "acquired the leader lease");
                    }
                    held = Some(lease);
                    observed = None;
                    self.set_leading(true);
                    next = sent + self.timing.renew_every;
                }
                Attempt::Other { holder, lease } => {
                    if held.take().is_some() {
                        self.fence.close();
                        warn!(holder = %holder, "the leader lease is held by another berth now");
                    }
                    self.set_leading(false);
                    let record = record_of(&lease);
                    if observed.as_ref().is_none_or(|o| o.record != record) {
                        observed = Some(Observed {
                            record,
                            since: Instant::now(),
                        });
                    }
                    next = Instant::now() + self.timing.renew_every;
                }
                Attempt::Unknown(error) => {
                    warn!(
                        error = %error,
                        holding = held.is_some(),
                        "leader lease request failed; retrying"
                    );
                    self.check_deadline();
                    next = Instant::now() + self.timing.retry_pause;
                }
            }
            self.looked.send_replace(true);
        }
        self.fence.close();
        self.set_leading(false);
        if let Some(lease) = held {
            self.give_up(lease).await;
        }
    }

    /// `leading` turns false once the fence has closed by itself (renews failing past the
    /// deadline). The lease may still be ours: the next successful renew reopens both.
    fn check_deadline(&self) {
        if *self.leading.borrow() && !self.fence.is_open() {
            warn!(
                "no successful renew of the leader lease within its duration: writing nothing \
                 until the lease is confirmed again"
            );
            self.set_leading(false);
        }
    }

    fn set_leading(&self, leading: bool) {
        self.leading.send_if_modified(|now| {
            let changed = *now != leading;
            *now = leading;
            changed
        });
    }

    /// Renews the lease this process holds: a compare-and-swap on the resourceVersion it wrote
    /// last, so it succeeds only while no one else has written the Lease since.
    async fn renew(&self, lease: &Lease) -> Attempt {
        let mut renewed = lease.clone();
        let spec = renewed.spec.get_or_insert_with(LeaseSpec::default);
        spec.renew_time = Some(now());
        spec.lease_duration_seconds = Some(self.duration_seconds());
        match self.write(&renewed, true).await {
            Err(Conflict) => {
                // Someone wrote the Lease: it is only still ours if it still names us.
                self.try_acquire(&mut None).await
            }
            Ok(attempt) => attempt,
        }
    }

    /// Reads the Lease and takes it when it is free, ours, or expired: held by another whose
    /// record `observed` has seen unchanged for a whole lease duration.
    async fn try_acquire(&self, observed: &mut Option<Observed>) -> Attempt {
        let current = match tokio::time::timeout(
            self.timing.request_timeout,
            self.leases.get_opt(&self.name),
        )
        .await
        {
            Ok(Ok(current)) => current,
            Ok(Err(err)) => return Attempt::Unknown(err.to_string()),
            Err(_) => return Attempt::Unknown(self.timed_out()),
        };
        let Some(current) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec_taking_over()),
            };
            return self.write(&lease, false).await.unwrap_or_else(|Conflict| {
                Attempt::Unknown("another berth created the lease at the same time".into())
            });
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        match &holder {
            Some(h) if *h != self.identity => {
                let duration = spec
                    .lease_duration_seconds
                    .and_then(|s| u64::try_from(s).ok())
                    .map_or(self.timing.duration, Duration::from_secs);
                let expired = observed.as_ref().is_some_and(|o| {
                    o.record == record_of(&current) && o.since.elapsed() >= duration
                });
                if !expired {
                    return Attempt::Other {
                        holder: h.clone(),
                        lease: current,
                    };
                }
                info!(previous = %h, "the leader lease expired; taking it over");
            }
            _ => {}
        }
        let mut taken = current.clone();
        let mut new_spec = self.spec_taking_over();
        if holder.as_deref() == Some(self.identity.as_str()) {
            // Ours already (a restart with a fixed identity): the same tenure goes on.
            new_spec.acquire_time = spec.acquire_time.clone().or(new_spec.acquire_time);
            new_spec.lease_transitions = spec.lease_transitions;
        } else {
            new_spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        taken.spec = Some(new_spec);
        // The resourceVersion read above makes this a compare-and-swap.
        match self.write(&taken, true).await {
            Ok(attempt) => attempt,
            Err(Conflict) => Attempt::Unknown("the lease changed while taking it".into()),
        }
    }

    /// The spec of a lease taken by this process now.
    fn spec_taking_over(&self) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration_seconds()),
            acquire_time: Some(now()),
            renew_time: Some(now()),
            lease_transitions: Some(0),
            ..LeaseSpec::default()
        }
    }

    /// Creates (`replace` false) or replaces the Lease, within the request timeout. Err when
    /// the compare-and-swap lost: 409, or 404 on a replace (the Lease was deleted meanwhile).
    async fn write(&self, lease: &Lease, replace: bool) -> Result<Attempt, Conflict> {
        let params = PostParams {
            field_manager: Some(format!("berth-{}", self.identity)),
            ..PostParams::default()
        };
        let request = async {
            if replace {
                self.leases.replace(&self.name, &params, lease).await
            } else {
                self.leases.create(&params, lease).await
            }
        };
        match tokio::time::timeout(self.timing.request_timeout, request).await {
            Ok(Ok(written)) => Ok(Attempt::Held(written)),
            Ok(Err(kube::Error::Api(e))) if e.code == 409 || (replace && e.code == 404) => {
                Err(Conflict)
            }
            Ok(Err(err)) => Ok(Attempt::Unknown(err.to_string())),
            Err(_) => Ok(Attempt::Unknown(self.timed_out())),
        }
    }

    /// Hands the lease back on shutdown: no holder, so a standby takes it at its next look
    /// instead of after the lease duration.
    async fn give_up(&self, lease: Lease) {
        let mut released = lease;
        if let Some(spec) = released.spec.as_mut() {
            spec.holder_identity = None;
            spec.renew_time = Some(now());
            spec.lease_duration_seconds = Some(1);
        }
        match self.write(&released, true).await {
            Ok(Attempt::Held(_)) => info!("leader lease released"),
            Ok(Attempt::Unknown(error)) => {
                warn!(error = %error, "releasing the leader lease failed; it expires by itself")
            }
            Ok(Attempt::Other { .. }) | Err(Conflict) => {
                info!("the leader lease had already gone to another berth")
            }
        }
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.timing.duration.as_secs()).unwrap_or(i32::MAX)
    }

    fn timed_out(&self) -> String {
        format!(
            "no answer within {} ms",
            self.timing.request_timeout.as_millis()
        )
    }
}

/// A compare-and-swap on the Lease lost: someone else wrote it in between.
struct Conflict;

fn record_of(lease: &Lease) -> (Option<String>, Option<MicroTime>) {
    let spec = lease.spec.as_ref();
    (
        spec.and_then(|s| s.holder_identity.clone()),
        spec.and_then(|s| s.renew_time.clone()),
    )
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

/// `hostname-pid`: unique per process, readable in `kubectl get lease -o yaml`.
fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "berth".to_string());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests;
