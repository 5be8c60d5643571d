//! Proves the local control plane is a real cluster with the behaviour berth relies on:
//! OrderedReady StatefulSets with volumeClaimTemplates get Ready pods in ordinal order, PVCs bind,
//! scale to zero completes and keeps the PVCs, and a grown PVC request is carried out.

mod support;

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};

use support::{TestNamespace, pod_ready, wait_for};

const TIMEOUT: Duration = Duration::from_secs(90);

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn ordered_statefulset_with_volumes_scales_to_zero_and_keeps_expandable_pvcs() {
    let ns = TestNamespace::new("foundation").await;
    let pods = ns.api::<Pod>();

    // Watch the namespace's pods before anything exists, recording each pod's first sighting and
    // the moment it first turns Ready, in the API server's order.
    let mut events = watcher(pods.clone(), watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    let recorder = tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut log = Vec::new();
        while let Some(Ok(pod)) = events.next().await {
            let name = pod.metadata.name.clone().unwrap_or_default();
            if !seen.contains(&(name.clone(), "created")) {
                seen.push((name.clone(), "created"));
                log.push(format!("created {name}"));
            }
            if pod_ready(&pod) && !seen.contains(&(name.clone(), "ready")) {
                seen.push((name.clone(), "ready"));
                log.push(format!("ready {name}"));
            }
            if log.len() == 6 {
                break;
            }
        }
        log
    });

    let headless: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}
    }))
    .expect("service");
    ns.api::<Service>()
        .create(&PostParams::default(), &headless)
        .await
        .expect("create the headless Service");
    let sts: StatefulSet = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {
            "serviceName": "web",
            "replicas": 3,
            "podManagementPolicy": "OrderedReady",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27", "ports": [{"name": "http", "containerPort": 80}]}]}
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
            }]
        }
    }))
    .expect("statefulset");
    let statefulsets = ns.api::<StatefulSet>();
    statefulsets
        .create(&PostParams::default(), &sts)
        .await
        .expect("create the StatefulSet");

    let order = tokio::time::timeout(TIMEOUT, recorder)
        .await
        .expect("three pods Ready within the timeout")
        .expect("the recorder task");
    assert_eq!(
        order,
        [
            "created web-0",
            "ready web-0",
            "created web-1",
            "ready web-1",
            "created web-2",
            "ready web-2"
        ],
        "OrderedReady creates each pod only after the one before it is Ready"
    );

    let claims = ns.api::<PersistentVolumeClaim>();
    let bound = |list: &[PersistentVolumeClaim]| -> Vec<String> {
        let mut names: Vec<String> = list
            .iter()
            .filter(|c| c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound"))
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        names.sort();
        names
    };
    let bound_before = wait_for("3 bound PVCs", TIMEOUT, || async {
        let list = claims.list(&ListParams::default()).await.ok()?;
        let names = bound(&list.items);
        (names.len() == 3).then_some(list.items)
    })
    .await;
    assert_eq!(
        bound(&bound_before),
        ["data-web-0", "data-web-1", "data-web-2"]
    );

    statefulsets
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 0}})),
        )
        .await
        .expect("scale to 0");
    wait_for("all pods gone and status.replicas 0", TIMEOUT, || async {
        let left = pods.list(&ListParams::default()).await.ok()?.items.len();
        let sts = statefulsets.get("web").await.ok()?;
        let replicas = sts.status.map(|s| s.replicas).unwrap_or(-1);
        (left == 0 && replicas == 0).then_some(())
    })
    .await;
    let after = claims
        .list(&ListParams::default())
        .await
        .expect("list PVCs");
    assert_eq!(
        bound(&after.items),
        ["data-web-0", "data-web-1", "data-web-2"]
    );
    let uids = |list: &[PersistentVolumeClaim]| -> Vec<Option<String>> {
        let mut uids: Vec<_> = list.iter().map(|c| c.metadata.uid.clone()).collect();
        uids.sort();
        uids
    };
    assert_eq!(
        uids(&after.items),
        uids(&bound_before),
        "the very same PVCs survive"
    );

    claims
        .patch(
            "data-web-0",
            &PatchParams::default(),
            &Patch::Merge(
                serde_json::json!({"spec": {"resources": {"requests": {"storage": "2Gi"}}}}),
            ),
        )
        .await
        .expect("raise the request of data-web-0");
    wait_for("data-web-0 status capacity 2Gi", TIMEOUT, || async {
        let pvc = claims.get("data-web-0").await.ok()?;
        let capacity = pvc.status?.capacity?.get("storage")?.0.clone();
        (capacity == "2Gi").then_some(())
    })
    .await;

    ns.cleanup().await;
}
