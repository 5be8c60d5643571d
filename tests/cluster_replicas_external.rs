//! `replicas = "external"` against the real local control plane (issue 13): berth never sends
//! the count, so whoever scales the set (an autoscaler, an operator, `kubectl scale`) keeps it,
//! and a count berth did not set is neither a pending change nor drift.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Patch, PatchParams};

use support::{Specs, TestNamespace, berth, ensure_rbac, wait_for};

const TIMEOUT: Duration = Duration::from_secs(90);

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
        (run.code == 0 && run.stdout.contains("in-sync  3/3")).then_some(())
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
