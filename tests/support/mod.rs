//! Shared set-up for the tests that run against the real local control plane
//! (`cargo xtask test` starts it and sets KUBECONFIG). Each test gets its own namespace.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{DeleteParams, PostParams};

/// A client with the admin kubeconfig: for set-up and for observing what berth did.
pub async fn admin_client() -> kube::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    assert!(
        std::env::var_os("KUBECONFIG").is_some(),
        "KUBECONFIG is not set: run the cluster tests with `cargo xtask test`, which starts the \
         local control plane"
    );
    kube::Client::try_default()
        .await
        .expect("a client from KUBECONFIG")
}

/// A fresh namespace named after the test, so tests never see each other's objects.
pub struct TestNamespace {
    pub name: String,
    pub client: kube::Client,
}

impl TestNamespace {
    pub async fn new(prefix: &str) -> TestNamespace {
        let client = admin_client().await;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let name = format!("{prefix}-{:x}{nanos:08x}", std::process::id());
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"berth.dev/test": prefix}}
        }))
        .expect("namespace object");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create the test namespace");
        TestNamespace { name, client }
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Deletes the namespace. Called at the end of a passing test; a failing one leaves its
    /// namespace for a look (the cluster is thrown away after the run anyway).
    pub async fn cleanup(self) {
        let _ = Api::<Namespace>::all(self.client)
            .delete(&self.name, &DeleteParams::default())
            .await;
    }
}

/// Polls `check` every 200ms until it returns Some, or panics after `timeout` naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {}s waiting for {what}",
            timeout.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
