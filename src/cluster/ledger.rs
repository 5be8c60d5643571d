//! The removal ledger in the cluster: removals started within the window and the holds that
//! only a person releases (see [`crate::plan::removals`]). It is the JSON of one annotation on a
//! Lease, `berth-removals-<instance>` in `safety.namespace`: kept in the cluster, the budget
//! counts across passes, restarts, laptops and both HA instances, and a hold outlives any
//! process. A Lease because berth's role already writes Leases (leader election); nothing else
//! reads this one.

use k8s_openapi::api::coordination::v1::Lease;
use kube::ResourceExt;
use kube::api::{Api, ObjectMeta, PostParams};

use super::{Cluster, ClusterError};
use crate::labels::owner_labels;
use crate::plan::removals::{Ledger, LedgerChange, Policy};

pub use crate::labels::LEDGER_ANNOTATION;

/// Attempts at a read-modify-write before giving up: each conflict means another run wrote the
/// ledger in between, which at most a few do at once.
const WRITE_ATTEMPTS: usize = 8;

/// Seconds since the Unix epoch: the ledger's clock, shared by every host that writes it.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Cluster {
    fn ledger_name(&self) -> String {
        format!("berth-removals-{}", self.instance)
    }

    /// The ledger and the Lease that holds it (None when there is none yet: an empty ledger).
    async fn ledger_lease(&self, namespace: &str) -> Result<(Ledger, Option<Lease>), ClusterError> {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), namespace);
        let name = self.ledger_name();
        let lease = leases
            .get_opt(&name)
            .await
            .map_err(|source| ClusterError::Ledger {
                message: format!("reading the removal ledger Lease {namespace}/{name}"),
                source: Some(source),
            })?;
        let Some(lease) = lease else {
            return Ok((Ledger::default(), None));
        };
        let ledger = match lease.annotations().get(LEDGER_ANNOTATION) {
            None => Ledger::default(),
            // A ledger that cannot be read is never taken for an empty one: that would hand
            // out the whole budget again and forget every hold.
            Some(text) => serde_json::from_str(text).map_err(|e| ClusterError::Ledger {
                message: format!(
                    "the removal ledger in Lease {namespace}/{name} (annotation \
                     {LEDGER_ANNOTATION}) cannot be read: {e}; fix or delete the annotation \
                     (deleting it forgets every hold)"
                ),
                source: None,
            })?,
        };
        Ok((ledger, Some(lease)))
    }

    /// The ledger as it is now (empty when none was written yet).
    pub async fn read_ledger(&self, namespace: &str) -> Result<Ledger, ClusterError> {
        Ok(self.ledger_lease(namespace).await?.0)
    }

    /// Ends the hold of `app` (`namespace/name`), if it has one: its spec is back.
    pub async fn release_hold(
        &self,
        namespace: &str,
        app: &str,
        policy: &Policy,
    ) -> Result<(), ClusterError> {
        let change = LedgerChange {
            release: [app.to_string()].into(),
            ..LedgerChange::default()
        };
        self.record_ledger(namespace, &change, policy, unix_now())
            .await
    }

    /// Writes `change` into the ledger as it is at the time of writing (not as it was when the
    /// plan read it). Removals it starts are checked against the budget again on that fresh
    /// ledger: another run that started removals meanwhile makes this one fail rather than
    /// overspend (plan again to see what is held).
    pub async fn record_ledger(
        &self,
        namespace: &str,
        change: &LedgerChange,
        policy: &Policy,
        now: u64,
    ) -> Result<(), ClusterError> {
        if change.is_empty() {
            return Ok(());
        }
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), namespace);
        let name = self.ledger_name();
        let write_error = |source| ClusterError::Ledger {
            message: format!("writing the removal ledger Lease {namespace}/{name}"),
            source: Some(source),
        };
        for _ in 0..WRITE_ATTEMPTS {
            let (ledger, lease) = self.ledger_lease(namespace).await?;
            let next = ledger.apply(change, now, policy.window_secs.max(1));
            if !policy.allow_removals {
                let started = |l: &Ledger| l.budgeted(now, policy.window_secs).len();
                if started(&next) > started(&ledger) && started(&next) > policy.max_removals {
                    return Err(ClusterError::Ledger {
                        message: format!(
                            "another run of berth started removals while this one planned; \
                             {} removal(s) would exceed safety.max_removals = {}. Nothing was \
                             removed: run again to see what is held",
                            started(&next),
                            policy.max_removals
                        ),
                        source: None,
                    });
                }
            }
            if lease.is_some() && next == ledger {
                return Ok(());
            }
            let text = serde_json::to_string(&next).map_err(|e| ClusterError::Ledger {
                message: format!("encoding the removal ledger: {e}"),
                source: None,
            })?;
            let result = match lease {
                Some(mut lease) => {
                    lease
                        .annotations_mut()
                        .insert(LEDGER_ANNOTATION.to_string(), text);
                    // The resourceVersion read above makes this a compare-and-swap.
                    leases.replace(&name, &PostParams::default(), &lease).await
                }
                None => {
                    let lease = Lease {
                        metadata: ObjectMeta {
                            name: Some(name.clone()),
                            namespace: Some(namespace.to_string()),
                            labels: Some(owner_labels(&self.instance)),
                            annotations: Some([(LEDGER_ANNOTATION.to_string(), text)].into()),
                            ..ObjectMeta::default()
                        },
                        spec: None,
                    };
                    leases.create(&PostParams::default(), &lease).await
                }
            };
            match result {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                Err(e) => return Err(write_error(e)),
            }
        }
        Err(ClusterError::Ledger {
            message: format!(
                "the removal ledger Lease {namespace}/{name} kept changing while berth wrote \
                 it; run again"
            ),
            source: None,
        })
    }
}
