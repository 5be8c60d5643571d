//! Security checks against the real control plane (issue 6, part 4): a secret-looking literal env
//! value never appears in berth's output or logs; kubeconfig credentials never appear in the
//! daemon's logs, even at trace level; objects without this instance's ownership labels are never
//! modified or deleted, whatever the specs say.

mod support;

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::Api;
use kube::api::{DeleteParams, PostParams};

use support::daemon::{Daemon, write_atomic};
use support::{
    Specs, TestNamespace, berth, berth_kubeconfig, ensure_rbac, grant_namespace_to, simple_app,
    statefulset_identity, wait_for,
};

const TIMEOUT: Duration = Duration::from_secs(60);

/// `simple_app` with literal env values: `DB_PASSWORD` (must be masked) and `GREETING` (must not).
fn app_with_password(replicas: u32, password: &str) -> String {
    simple_app(replicas, "1Gi").replace(
        "[containers.web]\n",
        &format!(
            "[containers.web]\nenv = {{ DB_PASSWORD = \"{password}\", GREETING = \"visible-value\" }}\n"
        ),
    )
}

/// The value of env `name` of container 0 of the live StatefulSet `web`.
async fn live_env(ns: &TestNamespace, name: &str) -> Option<String> {
    let sts = ns.api::<StatefulSet>().get_opt("web").await.ok()??;
    sts.spec?.template.spec?.containers[0]
        .env
        .clone()?
        .into_iter()
        .find(|e| e.name == name)?
        .value
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn a_secret_looking_env_value_never_appears_in_output_or_logs() {
    let ns = TestNamespace::new("sec-mask").await;
    ensure_rbac(&ns.client).await;
    let specs = Specs::new();
    let canaries = ["hunter2-canary", "hunter3-canary", "hunter4-canary"];
    let mut outputs: Vec<(String, String)> = Vec::new();

    // Create: the diff shows the whole new StatefulSet.
    specs.write("web.toml", &app_with_password(1, canaries[0]));
    for args in [&["diff"][..], &["diff", "-o", "json"], &["apply", "--yes"]] {
        let run = berth(&ns, &[args, &[specs.path()]].concat()).await;
        outputs.push((
            format!("{args:?} (create)"),
            format!("{}{}", run.stdout, run.stderr),
        ));
    }
    assert_eq!(
        live_env(&ns, "DB_PASSWORD").await.as_deref(),
        Some(canaries[0])
    );
    // Update: the diff and the summary show the changed env line.
    specs.write("web.toml", &app_with_password(1, canaries[1]));
    for args in [&["diff"][..], &["diff", "-o", "json"], &["apply", "--yes"]] {
        let run = berth(&ns, &[args, &[specs.path()]].concat()).await;
        outputs.push((
            format!("{args:?} (update)"),
            format!("{}{}", run.stdout, run.stderr),
        ));
    }
    assert_eq!(
        live_env(&ns, "DB_PASSWORD").await.as_deref(),
        Some(canaries[1])
    );
    // The checks below are not vacuous: the env is in the output, masked.
    let create_diff = &outputs[0].1;
    assert!(
        create_diff.contains("DB_PASSWORD")
            && create_diff.contains("***")
            && create_diff.contains("visible-value"),
        "the create diff shows the env, masked: {create_diff}"
    );
    assert!(
        outputs[3].1.contains("DB_PASSWORD: changed (value hidden)"),
        "the update summary names the change: {}",
        outputs[3].1
    );

    // The daemon at trace level: an edit it applies, and a broken file whose error is on the
    // line with the secret.
    let dir = tempfile::tempdir().expect("temp dir");
    let trace: [(&str, &OsStr); 1] = [("RUST_LOG", OsStr::new("trace"))];
    let daemon = Daemon::start_with_env(
        &ns,
        specs.dir.path(),
        &[],
        &[],
        &trace,
        dir.path().join("berth.log"),
    )
    .await;
    specs.write("web.toml", &app_with_password(2, canaries[2]));
    wait_for("the daemon to apply the edit", TIMEOUT, || async {
        (live_env(&ns, "DB_PASSWORD").await.as_deref() == Some(canaries[2])).then_some(())
    })
    .await;
    specs.write(
        "web.toml",
        &app_with_password(2, canaries[2]).replace("GREETING", "\"BAD NAME\""),
    );
    let d = &daemon;
    wait_for("the spec error in the log", TIMEOUT, || async move {
        d.log().contains("BAD NAME").then_some(())
    })
    .await;
    outputs.push(("berth watch, RUST_LOG=trace".into(), daemon.log()));

    for (what, text) in &outputs {
        for canary in canaries {
            let leaks: Vec<&str> = text.lines().filter(|l| l.contains(canary)).collect();
            assert!(
                leaks.is_empty(),
                "{what}: the secret `{canary}` appears in:\n{}",
                leaks.join("\n")
            );
        }
    }
    ns.cleanup().await;
}

/// Decodes standard base64 (kubeconfig `*-data` fields); whitespace is skipped.
fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .unwrap_or_else(|e| panic!("not base64: {e}"))
}

/// Strings that must never be logged: each `*-data` credential as written in the kubeconfig,
/// and every line of the PEM bodies inside it.
fn kubeconfig_secrets(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("kubeconfig");
    let config: serde_json::Value = serde_saphyr::from_str(&text).expect("kubeconfig YAML");
    let mut secrets = Vec::new();
    for user in config["users"].as_array().expect("users") {
        for field in ["client-key-data", "client-certificate-data"] {
            let Some(data) = user["user"][field].as_str() else {
                continue;
            };
            secrets.push(data.to_string());
            let pem = String::from_utf8(base64_decode(data)).expect("PEM text");
            secrets.extend(
                pem.lines()
                    .filter(|l| !l.starts_with("-----") && l.len() >= 16)
                    .map(str::to_string),
            );
        }
        if let Some(token) = user["user"]["token"].as_str() {
            secrets.push(token.to_string());
            // The signature alone, in case a log cut the token.
            secrets.extend(token.rsplit('.').next().map(str::to_string));
        }
    }
    assert!(
        !secrets.is_empty(),
        "no credentials found in {}",
        path.display()
    );
    secrets
}

/// A kubeconfig for a ServiceAccount token bound to berth's ClusterRole: the same cluster and CA
/// as berth's own kubeconfig, a bearer token instead of a client certificate.
async fn token_kubeconfig(ns: &TestNamespace, out: &Path) -> String {
    let sa: ServiceAccount =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "berth-token"}}))
            .expect("sa");
    ns.api::<ServiceAccount>()
        .create(&PostParams::default(), &sa)
        .await
        .expect("create the ServiceAccount");
    let binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": ns.name, "labels": {"berth.dev/test": "sec-creds"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "berth"},
        "subjects": [{"kind": "ServiceAccount", "name": "berth-token", "namespace": ns.name}],
    }))
    .expect("binding");
    Api::<ClusterRoleBinding>::all(ns.client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .expect("bind the ServiceAccount to berth's role");
    // And the per-namespace part of the shipped role (pods, Leases), as for the `berth` user.
    grant_namespace_to(
        &ns.client,
        &ns.name,
        &[serde_json::json!({"kind": "ServiceAccount", "name": "berth-token", "namespace": ns.name})],
    )
    .await;
    let request: TokenRequest = serde_json::from_value(serde_json::json!({
        "spec": {"audiences": [], "expirationSeconds": 3600}
    }))
    .expect("token request");
    let token = ns
        .api::<ServiceAccount>()
        .create_token_request("berth-token", &PostParams::default(), &request)
        .await
        .expect("a token")
        .status
        .expect("token status")
        .token;
    let base = std::fs::read_to_string(berth_kubeconfig()).expect("berth kubeconfig");
    let base: serde_json::Value = serde_saphyr::from_str(&base).expect("YAML");
    let cluster = &base["clusters"][0]["cluster"];
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "local", "user": "sa"}}],
        "current-context": "sa",
    });
    // JSON is YAML: kube reads it as a kubeconfig.
    std::fs::write(out, serde_json::to_string_pretty(&config).expect("json")).expect("write");
    token
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn kubeconfig_credentials_never_appear_in_trace_logs() {
    let ns = TestNamespace::new("sec-creds").await;
    ensure_rbac(&ns.client).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let token_config = dir.path().join("token.kubeconfig");
    token_kubeconfig(&ns, &token_config).await;
    let cert_config = std::path::PathBuf::from(berth_kubeconfig());

    for (what, kubeconfig, app) in [
        ("client certificate", &cert_config, "cert"),
        ("bearer token", &token_config, "token"),
    ] {
        let specs = dir.path().join(app);
        std::fs::create_dir(&specs).expect("dir");
        write_atomic(&specs, &format!("{app}.toml"), &simple_app(1, "1Gi"));
        let env: [(&str, &OsStr); 2] = [
            ("RUST_LOG", OsStr::new("trace")),
            ("KUBECONFIG", kubeconfig.as_os_str()),
        ];
        let daemon = Daemon::start_with_env(
            &ns,
            &specs,
            &[],
            &[],
            &env,
            dir.path().join(format!("{app}.log")),
        )
        .await;
        // Requests of every kind: lists and watches, a dry-run and a real apply.
        wait_for(&format!("{app} created"), TIMEOUT, || async {
            ns.api::<StatefulSet>().get_opt(app).await.ok()?.map(|_| ())
        })
        .await;
        write_atomic(&specs, &format!("{app}.toml"), &simple_app(2, "1Gi"));
        wait_for(&format!("{app} scaled"), TIMEOUT, || async {
            let sts = ns.api::<StatefulSet>().get_opt(app).await.ok()??;
            (sts.spec?.replicas == Some(2)).then_some(())
        })
        .await;
        let log = daemon.log();
        assert!(
            log.lines().count() > 20 && log.contains("TRACE"),
            "{what}: the daemon logged at trace level:\n{log}"
        );
        for secret in kubeconfig_secrets(kubeconfig) {
            assert!(
                !log.contains(&secret),
                "{what}: a credential from the kubeconfig appears in the trace log ({} chars: {}…)",
                secret.len(),
                &secret[..8]
            );
        }
        assert!(
            !log.to_ascii_lowercase().contains("authorization"),
            "{what}: the trace log shows an Authorization header"
        );
        drop(daemon);
    }
    let _ = Api::<ClusterRoleBinding>::all(ns.client.clone())
        .delete(&ns.name, &DeleteParams::default())
        .await;
    ns.cleanup().await;
}

/// Every StatefulSet and Service of the namespace, by kind/name, as what a writer other than the
/// StatefulSet controller could change: Services by uid and resourceVersion; StatefulSets by uid,
/// generation, labels, annotations, spec and the managedFields of the main resource (their
/// status is the controller's, and a busy controller may write it at any time).
async fn versions(ns: &TestNamespace) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    for sts in ns
        .api::<StatefulSet>()
        .list(&Default::default())
        .await
        .expect("list")
    {
        let fingerprint = statefulset_identity(&sts);
        out.push((
            format!("StatefulSet/{}", sts.metadata.name.unwrap_or_default()),
            fingerprint,
        ));
    }
    for svc in ns
        .api::<Service>()
        .list(&Default::default())
        .await
        .expect("list")
    {
        let m = svc.metadata;
        out.push((
            format!("Service/{}", m.name.unwrap_or_default()),
            serde_json::json!([m.uid, m.resource_version]),
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn objects_without_this_instances_labels_are_never_modified_or_deleted() {
    let ns = TestNamespace::new("sec-owned").await;
    ensure_rbac(&ns.client).await;
    // `web`: a StatefulSet and headless Service of the same names as a spec, without any label.
    // `other`: the same, labelled as berth's but by another instance (another config repo).
    for (app, labels) in [
        ("web", serde_json::json!({"team": "theirs"})),
        (
            "other",
            serde_json::json!({
                "app.kubernetes.io/managed-by": "berth",
                "berth.dev/instance": "another-instance",
                "app.kubernetes.io/name": "other",
            }),
        ),
    ] {
        let sts: StatefulSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": app, "labels": labels},
            "spec": {
                "replicas": 0,
                "serviceName": format!("{app}-headless"),
                "selector": {"matchLabels": {"theirs": app}},
                "template": {
                    "metadata": {"labels": {"theirs": app}},
                    "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}
                }
            }
        }))
        .expect("sts");
        ns.api::<StatefulSet>()
            .create(&PostParams::default(), &sts)
            .await
            .expect("create their StatefulSet");
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("{app}-headless"), "labels": labels},
            "spec": {"clusterIP": "None", "selector": {"theirs": app}, "ports": [{"name": "x", "port": 9}]}
        }))
        .expect("service");
        ns.api::<Service>()
            .create(&PostParams::default(), &svc)
            .await
            .expect("create their Service");
    }
    let theirs = versions(&ns).await;
    assert_eq!(theirs.len(), 4, "{theirs:?}");

    // Specs for both names, with an access Service and a disruption budget too, and one app
    // of berth's own, so that removing the two specs later is not an empty directory.
    let specs = Specs::new();
    let full = format!(
        "disruption_budget = {{ max_unavailable = 1 }}\n{}\n[service]\nports = {{ http = 80 }}\n",
        simple_app(1, "1Gi")
    );
    specs.write("web.toml", &full);
    specs.write("other.toml", &full);
    specs.write("mine.toml", &simple_app(1, "1Gi"));
    let diff = berth(&ns, &["diff", specs.path()]).await;
    assert!(
        diff.code == 1 || diff.code == 2,
        "diff: {} {}",
        diff.stdout,
        diff.stderr
    );
    assert_eq!(
        diff.stdout
            .matches("is not managed by this berth instance")
            .count(),
        2,
        "both apps are reported as blocked:\n{}",
        diff.stdout
    );
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(2);
    // Their objects are untouched; berth created nothing of its own for those apps, not even
    // the access Services whose names are free.
    let now = versions(&ns).await;
    let untouched: Vec<_> = now
        .iter()
        .filter(|(k, _)| !k.contains("mine"))
        .cloned()
        .collect();
    assert_eq!(untouched, theirs, "after apply");
    // Removal: the specs go; nothing of theirs is owned by this instance, so nothing is removed.
    specs.remove("web.toml");
    specs.remove("other.toml");
    let diff = berth(&ns, &["diff", specs.path()]).await;
    diff.expect_code(0);
    berth(&ns, &["apply", "--yes", "--allow-removals", specs.path()])
        .await
        .expect_code(0);
    // The daemon over the same directory, for a while.
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = Daemon::start(&ns, specs.dir.path(), &[], dir.path().join("berth.log")).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(daemon);
    let now = versions(&ns).await;
    let untouched: Vec<_> = now
        .iter()
        .filter(|(k, _)| !k.contains("mine"))
        .cloned()
        .collect();
    assert_eq!(untouched, theirs, "after the specs were removed");
    ns.cleanup().await;
}
