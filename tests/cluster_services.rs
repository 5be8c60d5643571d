//! Access Services beyond `[service]` and the import of fields no spec key spells, against the
//! real local control plane: a read/write split's Services are created with their selectors and
//! one taken out of the spec is deleted alone; a hardened set applied with kubectl is imported
//! with its second Service as `[services.NAME]` and its unmodelled fields as `[patches]`, and
//! the imported spec renders every live field back.

mod support;

use std::path::Path;

use berth::import::strip_server_defaults;
use k8s_openapi::api::core::v1::Service;
use serde_json::Value;

use support::{Specs, TestNamespace, berth, ensure_rbac};

const SPLIT: &str = "replicas = 2\n\n[containers.db]\nimage = \"mysql:8.4\"\nports = { mysql = 3306 }\n\n\
[service]\nname = \"db-read\"\nports = { mysql = 3306 }\n\n\
[services.db-primary]\nports = { mysql = 3306 }\nselector = { \"statefulset.kubernetes.io/pod-name\" = \"db-0\" }\n\n\
[services.db-admin]\nports = { mysql = 3306 }\n\n\
[patches]\nservices.db-primary = [{ op = \"add\", path = \"/spec/publishNotReadyAddresses\", value = true }]\n";

async fn service(ns: &TestNamespace, name: &str) -> Option<Service> {
    ns.api::<Service>()
        .get_opt(name)
        .await
        .expect("get Service")
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn a_read_write_split_gets_its_services_and_loses_only_the_one_taken_out() {
    let ns = TestNamespace::new("rw-split").await;
    ensure_rbac(&ns.client).await;
    let specs = Specs::new();
    specs.write("db.toml", SPLIT);
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);

    let primary = service(&ns, "db-primary")
        .await
        .expect("db-primary created");
    let spec = primary.spec.expect("spec");
    let selector = spec.selector.expect("selector");
    assert_eq!(
        selector
            .get("statefulset.kubernetes.io/pod-name")
            .map(String::as_str),
        Some("db-0")
    );
    assert_eq!(
        selector.get("app.kubernetes.io/name").map(String::as_str),
        Some("db")
    );
    assert_eq!(
        spec.publish_not_ready_addresses,
        Some(true),
        "the patch applied"
    );
    let read = service(&ns, "db-read").await.expect("db-read created");
    let read_uid = read.metadata.uid.clone();
    assert!(
        !read
            .spec
            .and_then(|s| s.selector)
            .unwrap_or_default()
            .contains_key("statefulset.kubernetes.io/pod-name"),
        "[service] reaches every replica"
    );
    assert!(service(&ns, "db-admin").await.is_some());
    berth(&ns, &["diff", specs.path()]).await.expect_code(0);

    // `[services.db-admin]` taken out: shown, then deleted alone.
    let without_admin = SPLIT.replace("[services.db-admin]\nports = { mysql = 3306 }\n\n", "");
    specs.write("db.toml", &without_admin);
    let diff = berth(&ns, &["diff", specs.path()]).await;
    diff.expect_code(1);
    assert!(diff.stdout.contains("db-admin"), "{}", diff.stdout);
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    assert!(service(&ns, "db-admin").await.is_none(), "db-admin deleted");
    let read = service(&ns, "db-read").await.expect("db-read kept");
    assert_eq!(read.metadata.uid, read_uid, "db-read untouched");
    assert!(
        service(&ns, "db-primary").await.is_some(),
        "db-primary kept"
    );
    assert!(service(&ns, "db-headless").await.is_some(), "headless kept");
    ns.cleanup().await;
}

/// The hardened fixture as a person would apply it with kubectl: in the test's namespace, without
/// what the API server allocates (cluster IPs, node ports).
fn hardened_yaml(namespace: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import/hardened.yaml");
    let text = std::fs::read_to_string(path).expect("fixture");
    text.lines()
        .filter(|l| {
            let l = l.trim_start();
            !(l.starts_with("clusterIP: 10.")
                || l.starts_with("clusterIPs: [10.")
                || l.starts_with("healthCheckNodePort:"))
        })
        .map(|l| {
            let l = l.replace("namespace: db", &format!("namespace: {namespace}"));
            let l = l.replace(", nodePort: 31432", "");
            format!("{l}\n")
        })
        .collect()
}

async fn kubectl_apply(file: &Path) {
    let out = tokio::process::Command::new("kubectl")
        .args(["apply", "-f"])
        .arg(file)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn kubectl_get(ns: &str, what: &str) -> Value {
    let out = tokio::process::Command::new("kubectl")
        .args(["get", "-n", ns, what, "-o", "json"])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run kubectl");
    assert!(out.status.success(), "kubectl get {what}");
    serde_json::from_slice(&out.stdout).expect("kubectl JSON")
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn a_hardened_set_applied_with_kubectl_is_imported_without_losing_a_field() {
    let ns = TestNamespace::new("hardened").await;
    ensure_rbac(&ns.client).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let yaml = dir.path().join("hardened.yaml");
    std::fs::write(&yaml, hardened_yaml(&ns.name)).expect("write YAML");
    kubectl_apply(&yaml).await;

    let run = berth(&ns, &["import", &format!("{}/pg", ns.name)]).await;
    run.expect_code(0);
    let spec = &run.stdout;
    for want in [
        "[services.pg-primary]\n",
        "selector = { \"statefulset.kubernetes.io/pod-name\" = \"pg-1\" }",
        "[patches]\nstatefulset = [\n",
        "path = \"/spec/template/spec/shareProcessNamespace\", value = true",
        "path = \"/spec/template/spec/hostAliases\"",
        "path = \"/spec/template/spec/containers/0/workingDir\"",
    ] {
        assert!(spec.contains(want), "missing {want:?} in\n{spec}");
    }
    // Only the adoption advice is noted: no field is lost or changed.
    for lost in ["cannot express", "to its own value", "does not validate"] {
        assert!(!spec.contains(lost), "{lost:?} in\n{spec}");
    }

    // Rendered back, every field the server holds is there with its value.
    let specs = Specs::new();
    specs.write("pg.toml", spec);
    let rendered = berth(&ns, &["render", specs.path()]).await;
    rendered.expect_code(0);
    let objects: Vec<Value> = serde_saphyr::from_multiple(&rendered.stdout).expect("YAML");
    let find = |kind: &str, name: &str| {
        objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{kind} {name} rendered"))
    };
    // Compared without what the API server fills in by default, on both sides.
    let live_sts = strip_server_defaults(&kubectl_get(&ns.name, "statefulset/pg").await);
    let sts = strip_server_defaults(find("StatefulSet", "pg"));
    for pointer in [
        "/spec/minReadySeconds",
        "/spec/ordinals",
        "/spec/template/spec/securityContext",
        "/spec/template/spec/tolerations",
        "/spec/template/spec/affinity/nodeAffinity",
        "/spec/template/spec/priorityClassName",
        "/spec/template/spec/shareProcessNamespace",
        "/spec/template/spec/hostAliases",
        "/spec/template/spec/containers/0/workingDir",
        "/spec/template/spec/containers/0/envFrom",
        "/spec/template/spec/containers/0/env",
        "/spec/template/spec/containers/0/resources",
        "/spec/template/spec/containers/0/securityContext",
        "/spec/template/spec/containers/0/lifecycle",
        "/spec/template/spec/containers/1/livenessProbe",
        "/spec/template/spec/volumes",
    ] {
        assert_eq!(sts.pointer(pointer), live_sts.pointer(pointer), "{pointer}");
    }
    for (name, pointers) in [
        (
            "pg-lb",
            &[
                "/spec/type",
                "/spec/externalTrafficPolicy",
                "/spec/loadBalancerSourceRanges",
                "/metadata/annotations/service.beta.kubernetes.io~1aws-load-balancer-type",
            ][..],
        ),
        (
            "pg-primary",
            &[
                "/spec/selector/statefulset.kubernetes.io~1pod-name",
                "/spec/ports/0/port",
            ][..],
        ),
    ] {
        let live = strip_server_defaults(&kubectl_get(&ns.name, &format!("service/{name}")).await);
        let svc = strip_server_defaults(find("Service", name));
        for pointer in pointers {
            assert_eq!(
                svc.pointer(pointer),
                live.pointer(pointer),
                "{name} {pointer}"
            );
        }
    }
    ns.cleanup().await;
}
