//! The local cluster's storage driver, doing what a cloud's CSI provisioner and external-resizer
//! do: every pending PVC of the `standard` class, once the scheduler has chosen its pod's node,
//! gets a new hostPath PV on that node, pre-bound to it through
//! `spec.claimRef` (the PV binder controller completes the binding), and a PVC whose request
//! grows past its capacity is expanded by raising the PV's capacity and then the PVC's
//! `status.capacity`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};

use crate::cluster::{PROVISIONER, STORAGE_CLASS};
use crate::kube_client;

const SELECTED_NODE_ANNOTATION: &str = "volume.kubernetes.io/selected-node";

pub fn run(kubeconfig: PathBuf) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let client = kube_client::client(&kubeconfig).await?;
        let claims: Api<PersistentVolumeClaim> = Api::all(client.clone());
        let volumes: Api<PersistentVolume> = Api::all(client.clone());
        eprintln!("provisioner: serving StorageClass {STORAGE_CLASS} ({PROVISIONER})");
        let mut events = watcher(claims.clone(), watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .boxed();
        // The watch drives the work; the periodic pass retries anything a failed call left behind.
        let mut resync = tokio::time::interval(Duration::from_secs(10));
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(Ok(pvc)) => handle(&client, &volumes, &pvc).await,
                    Some(Err(err)) => eprintln!("provisioner: watch error: {err}"),
                    None => anyhow::bail!("the PVC watch ended"),
                },
                _ = resync.tick() => {
                    match claims.list(&ListParams::default()).await {
                        Ok(list) => for pvc in &list.items { handle(&client, &volumes, pvc).await },
                        Err(err) => eprintln!("provisioner: list failed: {err}"),
                    }
                }
            }
        }
    })
}

async fn handle(
    client: &kube::Client,
    volumes: &Api<PersistentVolume>,
    pvc: &PersistentVolumeClaim,
) {
    if let Err(err) = reconcile(client, volumes, pvc).await {
        eprintln!(
            "provisioner: {}/{}: {err:#}",
            pvc.namespace().unwrap_or_default(),
            pvc.name_any()
        );
    }
}

async fn reconcile(
    client: &kube::Client,
    volumes: &Api<PersistentVolume>,
    pvc: &PersistentVolumeClaim,
) -> Result<()> {
    let Some(spec) = &pvc.spec else { return Ok(()) };
    if spec.storage_class_name.as_deref() != Some(STORAGE_CLASS)
        || pvc.metadata.deletion_timestamp.is_some()
    {
        return Ok(());
    }
    let requested = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .cloned()
        .context("PVC has no storage request")?;
    let namespace = pvc.namespace().unwrap_or_default();
    let phase = pvc.status.as_ref().and_then(|s| s.phase.as_deref());
    match (phase, &spec.volume_name) {
        (Some("Pending") | None, None) => {
            // The class binds on first consumer: the scheduler names the node it chose for the
            // pod, and only then is a volume made (on that node), exactly as a CSI provisioner does.
            let Some(node) = pvc.annotations().get(SELECTED_NODE_ANNOTATION) else {
                return Ok(());
            };
            let uid = pvc.metadata.uid.clone().context("PVC has no uid")?;
            let pv: PersistentVolume = serde_json::from_value(serde_json::json!({
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {
                    "name": format!("pvc-{uid}"),
                    "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}
                },
                "spec": {
                    "capacity": {"storage": requested},
                    "accessModes": spec.access_modes.clone().unwrap_or_else(|| vec!["ReadWriteOnce".into()]),
                    "volumeMode": spec.volume_mode.clone().unwrap_or_else(|| "Filesystem".into()),
                    "storageClassName": STORAGE_CLASS,
                    "persistentVolumeReclaimPolicy": "Retain",
                    "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
                    ]}]}},
                    "hostPath": {"path": format!("/tmp/berth-local-pv/{uid}"), "type": "DirectoryOrCreate"},
                    "claimRef": {
                        "apiVersion": "v1",
                        "kind": "PersistentVolumeClaim",
                        "namespace": namespace,
                        "name": pvc.name_any(),
                        "uid": uid
                    }
                }
            }))?;
            match volumes.create(&PostParams::default(), &pv).await {
                Ok(_) => eprintln!(
                    "provisioner: created {} for {namespace}/{}",
                    pv.name_any(),
                    pvc.name_any()
                ),
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e).context("creating the PV"),
            }
        }
        (Some("Bound"), Some(volume_name)) => {
            let capacity = pvc
                .status
                .as_ref()
                .and_then(|s| s.capacity.as_ref())
                .and_then(|c| c.get("storage"));
            let grown = match capacity {
                Some(have) => bytes(&requested.0) > bytes(&have.0),
                None => false,
            };
            if !grown {
                return Ok(());
            }
            // Order as the external-resizer does it: the volume first, then the claim's status.
            volumes
                .patch(
                    volume_name,
                    &PatchParams::default(),
                    &Patch::Merge(
                        serde_json::json!({"spec": {"capacity": {"storage": requested}}}),
                    ),
                )
                .await
                .context("raising the PV capacity")?;
            let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
            claims
                .patch_status(
                    &pvc.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(serde_json::json!({
                        "status": {
                            "capacity": {"storage": requested},
                            "allocatedResources": {"storage": requested},
                            "conditions": null
                        }
                    })),
                )
                .await
                .context("updating the PVC status capacity")?;
            eprintln!(
                "provisioner: expanded {namespace}/{} to {}",
                pvc.name_any(),
                requested.0
            );
        }
        _ => {}
    }
    Ok(())
}

/// Bytes in a storage quantity ("1Gi", "500M", "1073741824"); unparseable counts as 0, which
/// only ever means "no expansion".
fn bytes(quantity: &str) -> u128 {
    let q = quantity.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let multiplier: u128 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        _ => return 0,
    };
    number
        .parse::<f64>()
        .map(|n| (n * multiplier as f64) as u128)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::bytes;

    #[test]
    fn storage_quantities_compare_by_value() {
        assert_eq!(bytes("1Gi"), 1024 * 1024 * 1024);
        assert_eq!(bytes("1024Mi"), bytes("1Gi"));
        assert!(bytes("2Gi") > bytes("1Gi"));
        assert_eq!(bytes("1.5Gi"), 3 * 512 * 1024 * 1024);
        assert_eq!(bytes("10G"), 10_000_000_000);
        assert_eq!(bytes("what"), 0);
    }
}
