//! The bench's namespaces, from creation to deletion: each carries [`BENCH_LABEL`], so the
//! leftovers of an interrupted run are found and removed before the next one, and the
//! PersistentVolumes their claims leave behind are deleted with them.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolume};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

use super::{BENCH_LABEL, Bench, SETTLE_TIMEOUT};

impl Bench {
    /// Waits until every StatefulSet in `ns` runs its pods (kwok makes them Ready).
    pub(super) fn settle(&self, ns: &str) -> Result<()> {
        let started = Instant::now();
        let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
        loop {
            let list = self.rt.block_on(api.list(&ListParams::default()))?;
            let ready = list
                .items
                .iter()
                .filter(|s| {
                    let want = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                    s.status
                        .as_ref()
                        .and_then(|s| s.ready_replicas)
                        .unwrap_or(0)
                        >= want
                })
                .count();
            if ready >= self.size {
                eprintln!(
                    "  {ns}: all {ready} apps running after {:.0}s",
                    started.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            if started.elapsed() > SETTLE_TIMEOUT {
                bail!(
                    "only {ready} of {} apps in {ns} ran their pods within {}s",
                    self.size,
                    SETTLE_TIMEOUT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    /// A fresh namespace for one measured command, labelled for cleanup.
    pub(super) fn create_namespace(&self, name: &str) -> Result<()> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns: Namespace = serde_json::from_value(
            json!({"metadata": {"name": name, "labels": {BENCH_LABEL: "true"}}}),
        )?;
        self.rt
            .block_on(api.create(&PostParams::default(), &ns))
            .with_context(|| format!("creating namespace {name}"))?;
        Ok(())
    }

    /// Deletes the namespaces, waits until they are gone, then deletes the PersistentVolumes
    /// their claims had (the class retains volumes, so they would pile up run after run).
    pub(super) fn delete_namespaces(&self, names: &[String]) -> Result<()> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let started = Instant::now();
        for name in names {
            match self
                .rt
                .block_on(api.delete(name, &DeleteParams::background()))
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e).context(format!("deleting namespace {name}")),
            }
        }
        for name in names {
            while self.rt.block_on(api.get_opt(name))?.is_some() {
                if started.elapsed() > SETTLE_TIMEOUT {
                    bail!(
                        "namespace {name} still exists {}s after its deletion",
                        SETTLE_TIMEOUT.as_secs()
                    );
                }
                std::thread::sleep(Duration::from_secs(2));
            }
        }
        let volumes: Api<PersistentVolume> = Api::all(self.client.clone());
        let list = self.rt.block_on(volumes.list(&ListParams::default()))?;
        for pv in list.items {
            let claim_ns = pv
                .spec
                .as_ref()
                .and_then(|s| s.claim_ref.as_ref())
                .and_then(|c| c.namespace.clone())
                .unwrap_or_default();
            if names.contains(&claim_ns)
                && let Some(pv_name) = pv.metadata.name.as_deref()
            {
                let _ = self
                    .rt
                    .block_on(volumes.delete(pv_name, &DeleteParams::background()));
            }
        }
        if !names.is_empty() {
            eprintln!(
                "  deleted namespace(s) {} in {:.0}s",
                names.join(", "),
                started.elapsed().as_secs_f64()
            );
        }
        Ok(())
    }

    /// Removes everything labelled [`BENCH_LABEL`]: the namespaces (with their volumes) and the
    /// bench identity's cluster-wide objects. Runs before the phases and after them, whatever
    /// they returned.
    pub(super) fn cleanup_leftovers(&self) -> Result<()> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let list = self
            .rt
            .block_on(api.list(&ListParams::default().labels(&format!("{BENCH_LABEL}=true"))))?;
        let names: Vec<String> = list
            .items
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .collect();
        // The identity's cluster-wide objects (binding, FlowSchemas) carry the label too.
        let status = Command::new("kubectl")
            .env("KUBECONFIG", &self.admin_kubeconfig)
            .args([
                "delete",
                "clusterrolebindings.rbac.authorization.k8s.io,flowschemas.flowcontrol.apiserver.k8s.io",
                "-l",
                &format!("{BENCH_LABEL}=true"),
            ])
            .stdout(Stdio::null())
            .status()?;
        if !status.success() {
            bail!("deleting the bench identity's FlowSchemas and binding failed");
        }
        self.delete_namespaces(&names)
    }
}
