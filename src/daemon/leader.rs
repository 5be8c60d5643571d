//! Leader election over a Kubernetes Lease (kube-lease-manager), so that two bastions can run
//! `berth watch` and exactly one of them writes. The other keeps its caches warm and takes over
//! within the lease duration when the leader stops renewing.

use std::time::Duration;

use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::LeaderElection;

/// A running election. `leading` says whether this process holds the lease now.
pub struct Election {
    pub leading: watch::Receiver<bool>,
    task: JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
}

impl Election {
    pub async fn start(
        client: kube::Client,
        settings: &LeaderElection,
    ) -> Result<Election, LeaseManagerError> {
        let identity = settings.identity.clone().unwrap_or_else(default_identity);
        let duration = settings.lease_duration.as_secs().max(2);
        // Renew a third of the duration before expiry: room for a slow API server and clock
        // skew between bastions, without letting a dead leader hold the lease much longer.
        let grace = (duration / 3).max(1);
        info!(
            lease = %format!("{}/{}", settings.namespace, settings.lease_name),
            identity = %identity,
            duration_seconds = duration,
            "joining leader election"
        );
        let manager = LeaseManagerBuilder::new(client, settings.lease_name.clone())
            .with_namespace(settings.namespace.clone())
            .with_identity(identity.clone())
            .with_duration(duration)
            .with_grace(grace)
            .with_field_manager(format!("berth-{identity}"))
            .build()
            .await?;
        let (leading, task) = manager.watch().await;
        Ok(Election { leading, task })
    }

    /// Gives the lease up (the other replica takes over at once instead of after expiry) and
    /// waits briefly for that to be done.
    pub async fn release(self) {
        let Election { leading, task } = self;
        // Closing the channel is what tells the manager's task to release the lease and end.
        drop(leading);
        match tokio::time::timeout(Duration::from_secs(5), task).await {
            Ok(Ok(Ok(_))) => info!("leader lease released"),
            Ok(Ok(Err(err))) => {
                warn!(error = %err, "releasing the leader lease failed; it expires by itself")
            }
            Ok(Err(err)) => warn!(error = %err, "the leader election task failed"),
            Err(_) => warn!("releasing the leader lease timed out; it expires by itself"),
        }
    }
}

/// `hostname-pid`: unique per process, readable in `kubectl get lease -o yaml`.
fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "berth".to_string());
    format!("{host}-{}", std::process::id())
}
