//! What a config-repo committer can reach, on the real local control plane: a spec outside the
//! daemon config's `[safety]` lists (a system or unlisted namespace, a host path, a
//! ServiceAccount) is never applied, by `apply` or by the daemon, while the other apps are; and
//! the shipped role (config/rbac.yaml) lets berth write Leases only in its own namespace and
//! write pods only where it runs apps.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use kube::Api;
use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, PostParams};

use support::daemon::{Daemon, write_atomic};
use support::{Specs, TestNamespace, berth, ensure_rbac, simple_app, wait_for};

const TIMEOUT: Duration = Duration::from_secs(60);

const CONTAINER: &str =
    "[containers.app]\nimage = \"busybox:1.36\"\ncommand = [\"sleep\", \"infinity\"]\n";

/// Names of the StatefulSets of this test's berth instance, in every namespace.
async fn instance_statefulsets(ns: &TestNamespace) -> BTreeSet<String> {
    Api::<StatefulSet>::all(ns.client.clone())
        .list_metadata(&ListParams::default().labels(&format!("berth.dev/instance={}", ns.name)))
        .await
        .expect("list StatefulSets")
        .items
        .into_iter()
        .map(|s| {
            format!(
                "{}/{}",
                s.metadata.namespace.unwrap_or_default(),
                s.metadata.name.unwrap_or_default()
            )
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn a_spec_outside_the_safety_lists_is_never_applied_while_the_others_are() {
    let ns = TestNamespace::new("reach").await;
    ensure_rbac(&ns.client).await;
    let specs = Specs::new();
    let config_dir = tempfile::tempdir().expect("temp dir");
    let config = config_dir.path().join("berth.toml");
    std::fs::write(
        &config,
        format!("[safety]\nnamespaces = [\"{}\"]\n", ns.name),
    )
    .expect("config");
    let config = config.to_str().expect("utf-8").to_string();

    specs.write("good.toml", &simple_app(1, "1Gi"));
    specs.write(
        "system.toml",
        &format!("namespace = \"kube-system\"\n{CONTAINER}"),
    );
    specs.write(
        "unlisted.toml",
        &format!("namespace = \"{}-x\"\n{CONTAINER}", ns.name),
    );
    specs.write(
        "host.toml",
        &format!("{CONTAINER}mounts = {{ node = \"/host\" }}\n[volumes.node]\nhost_path = \"/\"\n"),
    );
    specs.write(
        "account.toml",
        &format!("service_account = \"admin\"\n{CONTAINER}"),
    );

    let validate = berth(&ns, &["--config", &config, "validate", specs.path()]).await;
    validate.expect_code(2);
    for (file, rule) in [
        ("system.toml:1:13", "namespace-not-allowed"),
        ("unlisted.toml:1:13", "namespace-not-allowed"),
        ("host.toml:6:13", "host-path-not-allowed"),
        ("account.toml:1:19", "service-account-not-allowed"),
    ] {
        assert!(
            validate.stderr.contains(file) && validate.stderr.contains(rule),
            "{file} {rule}:\n{}",
            validate.stderr
        );
    }

    let apply = berth(&ns, &["--config", &config, "apply", "--yes", specs.path()]).await;
    apply.expect_code(2);
    let good = BTreeSet::from([format!("{}/good", ns.name)]);
    assert_eq!(instance_statefulsets(&ns).await, good, "{apply:?}");
    let diff = berth(&ns, &["--config", &config, "diff", specs.path()]).await;
    diff.expect_code(2);

    // The daemon: a new good app is applied, the refused ones still are not.
    let log = config_dir.path().join("berth.log");
    let daemon = Daemon::start_with(&ns, specs.dir.path(), &["--config", &config], &[], log).await;
    write_atomic(specs.dir.path(), "good-too.toml", &simple_app(1, "1Gi"));
    let both = BTreeSet::from([format!("{}/good", ns.name), format!("{}/good-too", ns.name)]);
    wait_for("good-too applied by the daemon", TIMEOUT, || async {
        (instance_statefulsets(&ns).await == both).then_some(())
    })
    .await;
    let metrics = daemon.get("/metrics").await.unwrap_or_default();
    for file in ["system.toml", "unlisted.toml", "host.toml", "account.toml"] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("berth_spec_errors{") && l.contains(file)),
            "{file} counted as a spec error:\n{metrics}"
        );
    }
    let text = daemon.log();
    assert!(
        text.contains("namespace-not-allowed") && text.contains("host-path-not-allowed"),
        "the daemon logs why:\n{text}"
    );
    assert_eq!(instance_statefulsets(&ns).await, both, "still nothing else");
    ns.cleanup().await;
}

/// Asks the API server whether `user` may `verb` the `resource` (optionally `subresource`) in
/// `namespace`.
async fn may(
    client: &kube::Client,
    user: &str,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: &str,
) -> bool {
    let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
    let review: SubjectAccessReview = serde_json::from_value(serde_json::json!({
        "spec": {
            "user": user,
            "resourceAttributes": {
                "verb": verb, "group": group, "resource": resource,
                "subresource": subresource, "namespace": namespace,
            }
        }
    }))
    .expect("review");
    Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("a SubjectAccessReview")
        .status
        .is_some_and(|s| s.allowed)
}

/// config/rbac.yaml as it ships, every object renamed for `user` and bound to it: the shared
/// `berth` user may hold other rights in a cluster several runs share, this one holds exactly
/// the file's. `app_namespace` gets the per-namespace part, like `default` in the file.
async fn bind_shipped_role_to(
    client: &kube::Client,
    user: &str,
    app_namespace: &str,
) -> Vec<(ApiResource, Option<String>, String)> {
    use kube::api::{Patch, PatchParams};
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/rbac.yaml"))
        .expect("config/rbac.yaml");
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).expect("rbac.yaml");
    let rename = |name: &str| format!("{user}-{name}");
    let mut docs_for_user = Vec::new();
    for mut doc in docs {
        let name = rename(doc["metadata"]["name"].as_str().expect("name"));
        doc["metadata"]["name"] = name.into();
        if let Some(role) = doc["roleRef"]["name"].as_str() {
            doc["roleRef"]["name"] = rename(role).into();
        }
        if let Some(subjects) = doc.get_mut("subjects").and_then(|s| s.as_array_mut()) {
            for s in subjects {
                s["name"] = user.into();
            }
        }
        docs_for_user.push(doc.clone());
        if doc["metadata"]["namespace"].is_string() {
            doc["metadata"]["namespace"] = app_namespace.into();
            docs_for_user.push(doc);
        }
    }
    let mut made = Vec::new();
    for doc in docs_for_user {
        let kind = doc["kind"].as_str().expect("kind").to_string();
        let resource = ApiResource {
            group: "rbac.authorization.k8s.io".into(),
            version: "v1".into(),
            api_version: "rbac.authorization.k8s.io/v1".into(),
            kind: kind.clone(),
            plural: format!("{}s", kind.to_lowercase()),
        };
        let namespace = doc["metadata"]["namespace"].as_str().map(str::to_string);
        let api: Api<DynamicObject> = match &namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let name = doc["metadata"]["name"].as_str().expect("name").to_string();
        api.patch(
            &name,
            &PatchParams::apply("berth-tests").force(),
            &Patch::Apply(&doc),
        )
        .await
        .unwrap_or_else(|e| panic!("applying {kind} {name}: {e}"));
        made.push((resource, namespace, name));
    }
    made
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn the_shipped_role_writes_leases_only_in_its_namespace_and_pods_only_where_apps_run() {
    let ns = TestNamespace::new("reach-rbac").await;
    let user = ns.name.clone();
    let made = bind_shipped_role_to(&ns.client, &user, &ns.name).await;
    let client = &ns.client;
    // RBAC is cached by the authorizer only briefly; wait for the new bindings to count.
    wait_for("the bindings to take effect", TIMEOUT, || async {
        may(client, &user, "create", "apps", "statefulsets", "default")
            .await
            .then_some(())
    })
    .await;

    let (app_ns, other) = (ns.name.as_str(), format!("{}-other", ns.name));
    let lease = ("coordination.k8s.io", "leases");
    let pods = ("", "pods");
    let eviction = ("", "pods/eviction");
    let refused = [
        ("update", lease, "kube-node-lease"),
        ("create", lease, "kube-node-lease"),
        ("update", lease, "kube-system"),
        ("patch", lease, "kube-system"),
        ("update", lease, other.as_str()),
        ("delete", pods, "kube-system"),
        ("patch", pods, "kube-system"),
        ("create", eviction, "kube-system"),
        ("delete", pods, other.as_str()),
        ("get", ("", "secrets"), "default"),
        ("delete", ("", "persistentvolumeclaims"), "default"),
        // Restarts are evictions, so a PodDisruptionBudget holds them back: no pod deletes.
        ("delete", pods, app_ns),
        ("delete", pods, "default"),
    ];
    for (verb, (group, resource), namespace) in refused {
        assert!(
            !may(client, &user, verb, group, resource, namespace).await,
            "the shipped role must not allow {verb} {resource} in {namespace}"
        );
    }
    let allowed = [
        ("update", lease, "default"),
        ("create", lease, "default"),
        ("update", lease, app_ns),
        ("patch", pods, app_ns),
        ("create", eviction, app_ns),
        ("create", eviction, "default"),
        ("list", pods, "kube-system"),
        ("create", ("apps", "statefulsets"), app_ns),
    ];
    for (verb, (group, resource), namespace) in allowed {
        assert!(
            may(client, &user, verb, group, resource, namespace).await,
            "the shipped role must allow {verb} {resource} in {namespace}"
        );
    }
    for (resource, namespace, name) in made {
        let api: Api<DynamicObject> = match &namespace {
            Some(n) => Api::namespaced_with(client.clone(), n, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let _ = api.delete(&name, &DeleteParams::default()).await;
    }
    ns.cleanup().await;
}
