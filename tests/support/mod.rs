//! Shared set-up for the tests that run against the real local control plane
//! (`cargo xtask test` starts it and sets KUBECONFIG). Each test gets its own namespace.

#![allow(dead_code)] // Each test binary uses a different part of this module.

pub mod availability;
pub mod background;
pub mod connect_proxy;
pub mod daemon;
pub mod faults;
pub mod proxy;
pub mod receiver;

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
        TestNamespace::new_in(admin_client().await, prefix).await
    }

    /// A fresh namespace in the cluster of `client` (the fault tests' own cluster).
    pub async fn new_in(client: kube::Client, prefix: &str) -> TestNamespace {
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
        grant_namespace(&client, &name).await;
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

/// The documents of config/rbac.yaml.
fn rbac_docs() -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/rbac.yaml"))
        .expect("config/rbac.yaml");
    serde_saphyr::from_multiple(&text).expect("rbac.yaml parses")
}

/// Server-side applies one RBAC object as admin, in its own namespace when it has one.
async fn apply_rbac_doc(client: &kube::Client, doc: &serde_json::Value) {
    use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
    let kind = doc["kind"].as_str().expect("kind").to_string();
    let name = doc["metadata"]["name"].as_str().expect("name").to_string();
    let resource = ApiResource {
        group: "rbac.authorization.k8s.io".into(),
        version: "v1".into(),
        api_version: "rbac.authorization.k8s.io/v1".into(),
        kind: kind.clone(),
        plural: format!("{}s", kind.to_lowercase()),
    };
    let api: Api<DynamicObject> = match doc["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    api.patch(
        &name,
        &PatchParams::apply("berth-tests").force(),
        &Patch::Apply(doc),
    )
    .await
    .unwrap_or_else(|e| panic!("applying {kind} {name}: {e}"));
}

/// Applies config/rbac.yaml as admin (idempotent), so the `berth` user of
/// BERTH_TEST_KUBECONFIG has exactly the rights the shipped role grants.
pub async fn ensure_rbac(client: &kube::Client) {
    for doc in rbac_docs() {
        apply_rbac_doc(client, &doc).await;
    }
}

/// Gives `namespace` what config/rbac.yaml gives `default`, the shipped file's namespace where
/// berth runs apps and keeps its Leases: every test namespace is both (specs go there, and the
/// leader election tests put their lease there). Done for every test namespace, because the
/// shipped role lets berth write pods and Leases only where such a binding exists.
pub async fn grant_namespace(client: &kube::Client, namespace: &str) {
    grant_namespace_to(client, namespace, &[]).await;
}

/// Like [`grant_namespace`], binding `extra_subjects` (RBAC subjects) as well as the `berth` user.
pub async fn grant_namespace_to(
    client: &kube::Client,
    namespace: &str,
    extra_subjects: &[serde_json::Value],
) {
    for mut doc in rbac_docs() {
        if doc["metadata"]["namespace"].is_string() {
            doc["metadata"]["namespace"] = serde_json::Value::String(namespace.to_string());
            if let Some(subjects) = doc.get_mut("subjects").and_then(|s| s.as_array_mut()) {
                subjects.extend(extra_subjects.iter().cloned());
            }
            apply_rbac_doc(client, &doc).await;
        }
    }
}

/// The kubeconfig berth runs with in tests: the `berth` user, bound only to config/rbac.yaml.
/// Never the admin's: a test that ran berth with more rights than the shipped role grants would
/// prove nothing about the role, so a missing BERTH_TEST_KUBECONFIG is a failure.
pub fn berth_kubeconfig() -> std::ffi::OsString {
    std::env::var_os("BERTH_TEST_KUBECONFIG").expect(
        "BERTH_TEST_KUBECONFIG is not set: the cluster tests run berth as the restricted `berth` \
         user of target/cluster/berth.kubeconfig (run them with `cargo xtask test`)",
    )
}

/// What one run of the berth binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "berth exited {} (wanted {code})\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

/// Runs the berth binary as the restricted `berth` user, with the test namespace as the berth
/// instance (so parallel tests never see each other's apps as removals).
pub async fn berth(ns: &TestNamespace, args: &[&str]) -> Run {
    berth_with_env(ns, &[("KUBECONFIG", &berth_kubeconfig())], args).await
}

/// Like [`berth`], with extra environment variables (set last, so `KUBECONFIG` there wins).
pub async fn berth_with_env(
    ns: &TestNamespace,
    env: &[(&str, &std::ffi::OsStr)],
    args: &[&str],
) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_berth"));
    if !env.iter().any(|(k, _)| *k == "KUBECONFIG") {
        cmd.env("KUBECONFIG", berth_kubeconfig());
    }
    cmd.envs(env.iter().copied())
        .env("NO_COLOR", "1")
        .env_remove("BERTH_CONFIG")
        .args(["--instance", &ns.name, "--namespace", &ns.name])
        .args(args)
        .stdin(std::process::Stdio::null());
    let out = cmd.output().await.expect("run berth");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A spec directory for one test.
pub struct Specs {
    pub dir: tempfile::TempDir,
}

impl Specs {
    pub fn new() -> Specs {
        Specs {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &str {
        self.dir.path().to_str().expect("utf-8 temp path")
    }

    pub fn write(&self, file: &str, body: &str) {
        // Atomic, as an editor or git would leave it.
        let tmp = self.dir.path().join(format!(".{file}.tmp"));
        std::fs::write(&tmp, body).expect("write spec");
        std::fs::rename(&tmp, self.dir.path().join(file)).expect("rename spec");
    }

    pub fn remove(&self, file: &str) {
        std::fs::remove_file(self.dir.path().join(file)).expect("remove spec");
    }
}

/// A small app: `replicas` pods of one container with a port and one volume.
pub fn simple_app(replicas: u32, size: &str) -> String {
    format!(
        "replicas = {replicas}\n\n[containers.web]\nimage = \"nginx:1.27\"\ncpu = \"100m\"\n\
         memory = \"64Mi\"\nports = {{ http = 80 }}\nmounts = {{ data = \"/data\" }}\n\n\
         [volumes.data]\nsize = \"{size}\"\n"
    )
}

/// PVC name → uid in the namespace, for checking that volumes survive with their identity.
pub async fn pvc_uids(ns: &TestNamespace) -> std::collections::BTreeMap<String, String> {
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    ns.api::<PersistentVolumeClaim>()
        .list(&kube::api::ListParams::default())
        .await
        .expect("list PVCs")
        .items
        .into_iter()
        .map(|c| {
            (
                c.metadata.name.unwrap_or_default(),
                c.metadata.uid.unwrap_or_default(),
            )
        })
        .collect()
}

/// Puts a finalizer of the tests' own on a pod, so that once deleted it stays Terminating until
/// [`release_pod`]: a removal can then be caught between "scaled to 0" and "pods gone" (kwok
/// finishes deletions at once otherwise).
pub async fn hold_pod(pods: &kube::Api<k8s_openapi::api::core::v1::Pod>, name: &str) {
    set_finalizers(pods, name, serde_json::json!(["berth.dev/test-hold"])).await;
}

/// Lets a pod held by [`hold_pod`] go.
pub async fn release_pod(pods: &kube::Api<k8s_openapi::api::core::v1::Pod>, name: &str) {
    set_finalizers(pods, name, serde_json::Value::Null).await;
}

async fn set_finalizers(
    pods: &kube::Api<k8s_openapi::api::core::v1::Pod>,
    name: &str,
    finalizers: serde_json::Value,
) {
    use kube::api::{Patch, PatchParams};
    pods.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"finalizers": finalizers}})),
    )
    .await
    .unwrap_or_else(|e| panic!("setting the finalizers of pod {name}: {e}"));
}

/// True when the pod's Ready condition is True.
pub fn pod_ready(pod: &k8s_openapi::api::core::v1::Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// What anyone but the StatefulSet controller could change on a StatefulSet: uid, generation,
/// labels, annotations, spec and the managedFields of the main resource. Its status (and the
/// resourceVersion a status write bumps) is the controller's, which may write it at any time.
pub fn statefulset_identity(sts: &k8s_openapi::api::apps::v1::StatefulSet) -> serde_json::Value {
    let m = &sts.metadata;
    let managed: Vec<_> = m
        .managed_fields
        .iter()
        .flatten()
        .filter(|f| f.subresource.as_deref() != Some("status"))
        .collect();
    serde_json::json!({
        "uid": m.uid,
        "generation": m.generation,
        "labels": m.labels,
        "annotations": m.annotations,
        "deletionTimestamp": m.deletion_timestamp,
        "managedFields": managed,
        "spec": sts.spec,
    })
}

/// Runs git in `dir` as a throwaway identity, failing the test on an error; its stdout, trimmed.
pub fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args(args)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
