//! The spec fields of issue 13 against the real local control plane: the API server accepts
//! what they render, `berth import` reads every one of them back (a diff of the imported specs
//! is a no-op), and `replicas = "external"` leaves the count to whoever scales the set.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Patch, PatchParams};

use support::{Specs, TestNamespace, berth, ensure_rbac, wait_for};

const TIMEOUT: Duration = Duration::from_secs(90);

/// A fixture's text with its `namespace` line removed, so it lands in the test namespace.
fn fixture(file: &str) -> String {
    let path = format!("{}/tests/fixtures/valid/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|l| !l.starts_with("namespace ="))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn the_new_fields_are_accepted_by_the_server_and_imported_back() {
    let ns = TestNamespace::new("spec-fields").await;
    ensure_rbac(&ns.client).await;
    let specs = Specs::new();
    let files = [
        "env-and-probes.toml",
        "hardened.toml",
        "read-write-split.toml",
        "security-fields.toml",
        "storage-kinds.toml",
    ];
    for file in files {
        specs.write(file, &fixture(file));
    }
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);

    let imported = tempfile::tempdir().expect("temp dir");
    let out = imported.path().join("apps");
    let out = out.to_str().expect("utf-8 path");
    let run = berth(&ns, &["import", "-n", &ns.name, "-o", out]).await;
    run.expect_code(0);
    // Nothing the server stored is beyond the spec (the LoadBalancer's allocated node ports are
    // left out on purpose, which is a remark, not a warning).
    assert!(!run.stderr.contains("warning:"), "{}", run.stderr);
    for file in files {
        let text = std::fs::read_to_string(format!("{out}/{file}")).expect("imported spec");
        assert!(!text.contains("cannot express"), "{file}:\n{text}");
    }
    let diff = berth(&ns, &["diff", out]).await;
    diff.expect_code(0);
    assert!(
        diff.stdout.contains("5 app(s) unchanged"),
        "{}",
        diff.stdout
    );
    ns.cleanup().await;
}

const EXTERNAL: &str =
    "replicas = \"external\"\n\n[containers.web]\nimage = \"nginx:1.27\"\nports = { http = 80 }\n";

async fn live_replicas(ns: &TestNamespace) -> Option<i32> {
    ns.api::<StatefulSet>()
        .get("web")
        .await
        .expect("get web")
        .spec
        .and_then(|s| s.replicas)
}

/// Scales the set as an autoscaler does: through the scale subresource, as another manager.
async fn scale(ns: &TestNamespace, replicas: i32) {
    ns.api::<StatefulSet>()
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": replicas}})),
        )
        .await
        .expect("scale web");
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn an_external_replica_count_is_left_to_whoever_scales_the_set() {
    let ns = TestNamespace::new("ext-replicas").await;
    ensure_rbac(&ns.client).await;
    let specs = Specs::new();
    specs.write("web.toml", EXTERNAL);
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    // Created without the field: the server's default.
    assert_eq!(live_replicas(&ns).await, Some(1));

    scale(&ns, 3).await;
    // Neither a pending change nor drift, and apply leaves the count alone.
    let diff = berth(&ns, &["diff", specs.path()]).await;
    diff.expect_code(0);
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    assert_eq!(live_replicas(&ns).await, Some(3));
    wait_for("web in sync with 3/3 ready", TIMEOUT, || async {
        let run = berth(&ns, &["status", specs.path()]).await;
        (run.code == 0 && run.stdout.contains("in-sync  healthy  3/3")).then_some(())
    })
    .await;

    // Back to a count: berth sets it again.
    specs.write("web.toml", &EXTERNAL.replace("\"external\"", "2"));
    let diff = berth(&ns, &["diff", specs.path()]).await;
    diff.expect_code(1);
    assert!(diff.stdout.contains("replicas: 3 → 2"), "{}", diff.stdout);
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    assert_eq!(live_replicas(&ns).await, Some(2));

    ns.cleanup().await;
}
