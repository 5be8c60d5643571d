//! Pod Security admission against the real local control plane (issue 13): in a namespace that
//! enforces the "restricted" level, the pods of a spec with `security = "restricted"` are
//! admitted, the pods of one without it are refused, and `berth status` says why (the
//! StatefulSet controller's FailedCreate event), run as the restricted `berth` user.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};

use support::{Specs, TestNamespace, berth, ensure_rbac, wait_for};

const TIMEOUT: Duration = Duration::from_secs(90);

fn app(security: &str) -> String {
    format!(
        "{security}replicas = 1\n\n[containers.web]\nimage = \"nginx:1.27\"\nports = {{ http = 80 }}\n\
         [init_containers.prepare]\nimage = \"busybox:1.36\"\ncommand = [\"true\"]\n"
    )
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn the_restricted_preset_passes_pod_security_and_status_shows_why_other_pods_are_refused() {
    let ns = TestNamespace::new("psa").await;
    ensure_rbac(&ns.client).await;
    // Pod Security admission is built into the API server: the label is all it takes.
    Api::<Namespace>::all(ns.client.clone())
        .patch(
            &ns.name,
            &PatchParams::apply("berth-tests").force(),
            &Patch::Apply(serde_json::json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns.name, "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest"
                }}
            })),
        )
        .await
        .expect("label the namespace");

    let specs = Specs::new();
    specs.write(
        "locked.toml",
        &app("security = \"restricted\"\nrun_as_user = 1000\n"),
    );
    specs.write("loose.toml", &app(""));
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);

    // The preset's pods are admitted: the StatefulSet controller creates them.
    let pods: Api<Pod> = ns.api();
    wait_for("locked-0 created", TIMEOUT, || async {
        pods.get_opt("locked-0").await.ok().flatten().map(|_| ())
    })
    .await;

    // The other set's pods are refused, and the controller says so in an event.
    let events: Api<Event> = ns.api();
    let refusal = wait_for("loose's FailedCreate event", TIMEOUT, || async {
        let list = events
            .list(&ListParams::default().fields(
                "involvedObject.kind=StatefulSet,involvedObject.name=loose,reason=FailedCreate",
            ))
            .await
            .ok()?;
        list.items.into_iter().find_map(|e| e.message)
    })
    .await;
    assert!(refusal.contains("violates PodSecurity"), "{refusal}");
    assert!(
        pods.get_opt("loose-0")
            .await
            .expect("get loose-0")
            .is_none(),
        "the restricted namespace admitted a pod without the preset"
    );

    // `berth status` names the refusal for the app whose pods are missing, and only for it.
    let status = berth(&ns, &["status", specs.path()]).await;
    status.expect_code(1);
    let line = |app: &str| {
        status
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{}/{app} ", ns.name)))
            .unwrap_or_else(|| panic!("no line for {app}:\n{}", status.stdout))
            .to_string()
    };
    let loose = line("loose");
    assert!(loose.contains("0/1"), "{loose}");
    assert!(
        loose.contains("FailedCreate") && loose.contains("violates PodSecurity"),
        "{loose}"
    );
    assert!(
        !line("locked").contains("FailedCreate"),
        "{}",
        status.stdout
    );

    // Without DIR too: only live objects are read, the refusal is still named.
    let live_only = berth(&ns, &["status"]).await;
    assert!(
        live_only
            .stdout
            .lines()
            .any(|l| l.contains("/loose ") && l.contains("FailedCreate")),
        "{}",
        live_only.stdout
    );

    let json = berth(&ns, &["status", specs.path(), "-o", "json"]).await;
    let value: serde_json::Value = serde_json::from_str(&json.stdout).expect("status json");
    let apps = value["apps"].as_array().expect("apps");
    let loose = apps
        .iter()
        .find(|a| a["name"] == "loose")
        .expect("loose in json");
    assert_eq!(loose["health"]["state"], "degraded", "{loose}");
    assert!(
        loose["health"]["reason"]
            .as_str()
            .is_some_and(|e| e.contains("allowPrivilegeEscalation")),
        "{loose}"
    );
    ns.cleanup().await;
}
