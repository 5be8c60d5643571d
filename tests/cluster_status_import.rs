//! `berth import` and `berth status` against the real local control plane, run as the
//! restricted `berth` user: importing what berth applied gives a spec whose diff is a no-op,
//! importing a hand-written StatefulSet says how to adopt it, and status tells in-sync, pending,
//! drifted, error and removing apart with the right exit code.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams, PostParams};

use support::{Specs, TestNamespace, berth, ensure_rbac, simple_app, wait_for};

const TIMEOUT: Duration = Duration::from_secs(120);

async fn setup(prefix: &str) -> (TestNamespace, Specs) {
    let ns = TestNamespace::new(prefix).await;
    ensure_rbac(&ns.client).await;
    (ns, Specs::new())
}

/// A fixture's text with its `namespace` line removed, so it lands in the test namespace.
fn fixture(path: &str) -> String {
    let text = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|l| !l.starts_with("namespace ="))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn importing_applied_fixtures_gives_specs_whose_diff_is_a_no_op() {
    let (ns, specs) = setup("import-roundtrip").await;
    // Fixtures that can share one namespace (no fixed node ports, no clashing Service names).
    for file in [
        "nginx.toml",
        "probes-http.toml",
        "udp-ports.toml",
        "volume-kinds.toml",
        "env-kinds.toml",
        "on-delete.toml",
        "mysql-full.toml",
        "named-app.toml",
    ] {
        specs.write(file, &fixture(&format!("tests/fixtures/valid/{file}")));
    }
    // The fixtures' config allows the host path and ServiceAccount they use.
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/berth.toml");
    berth(&ns, &["--config", config, "apply", "--yes", specs.path()])
        .await
        .expect_code(0);

    let imported = tempfile::tempdir().expect("temp dir");
    let out = imported.path().join("apps");
    let out = out.to_str().expect("utf-8 path");
    let run = berth(
        &ns,
        &["--config", config, "import", "-n", &ns.name, "-o", out],
    )
    .await;
    run.expect_code(0);
    let mut written: Vec<String> = std::fs::read_dir(out)
        .expect("import wrote a directory")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(
        written,
        // berth's own apps go back to the file they came from (`berth.dev/source`).
        [
            "env-kinds.toml",
            "mysql-full.toml",
            "named-app.toml",
            "nginx.toml",
            "on-delete.toml",
            "probes-http.toml",
            "udp-ports.toml",
            "volume-kinds.toml",
        ],
        "{}",
        run.stderr
    );
    // berth's own objects hold nothing a spec cannot say.
    assert!(!run.stderr.contains("warning:"), "{}", run.stderr);

    let diff = berth(&ns, &["--config", config, "diff", out]).await;
    diff.expect_code(0);
    assert!(
        diff.stdout.contains("8 app(s) unchanged"),
        "{}",
        diff.stdout
    );
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn importing_a_hand_written_statefulset_says_how_to_adopt_it() {
    let (ns, specs) = setup("import-adopt").await;
    // The seed's nginx: a StatefulSet and headless Service written by hand, selector app=nginx.
    let svc: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "nginx", "labels": {"app": "nginx"}},
        "spec": {"clusterIP": "None", "selector": {"app": "nginx"},
                 "ports": [{"name": "http", "port": 80, "targetPort": 80}]}
    }))
    .expect("service");
    ns.api::<Service>()
        .create(&PostParams::default(), &svc)
        .await
        .expect("create the headless Service");
    let sts: StatefulSet = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "nginx", "labels": {"app": "nginx"}},
        "spec": {
            "replicas": 2,
            "serviceName": "nginx",
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [{
                    "name": "container-1", "image": "nginx:latest",
                    "resources": {"requests": {"cpu": "250m", "memory": "512Mi"},
                                  "limits": {"cpu": "250m", "memory": "512Mi"}},
                    "ports": [{"containerPort": 80, "name": "http"}]
                }],
                "tolerations": [{"key": "dedicated", "operator": "Exists"}]}
            }
        }
    }))
    .expect("statefulset");
    ns.api::<StatefulSet>()
        .create(&PostParams::default(), &sts)
        .await
        .expect("create the StatefulSet");

    let run = berth(&ns, &["import", &format!("{}/nginx", ns.name)]).await;
    run.expect_code(0);
    let spec = &run.stdout;
    for want in [
        "\nadopt = true\n",
        "\nreplicas = 2\n",
        "\nlabels = { app = \"nginx\" }\n",
        "\nheadless = \"nginx\"\n",
        "image = \"nginx:latest\"\ncpu = \"250m\"\nmemory = \"512Mi\"\nports = { http = 80 }\n",
        "# note: the live selector {app=nginx} differs",
        "needs a recreate",
        "tolerations",
    ] {
        assert!(spec.contains(want), "missing {want:?} in\n{spec}");
    }
    assert!(run.stderr.contains("warning:"), "{}", run.stderr);

    // The advice is what berth then does: the spec is accepted, and blocked until a recreate
    // is allowed.
    specs.write("nginx.toml", spec);
    let diff = berth(&ns, &["diff", specs.path()]).await;
    diff.expect_code(3);
    assert!(diff.stdout.contains("needs recreate"), "{}", diff.stdout);
    ns.cleanup().await;
}

/// `berth status` as text and as JSON. Call it in a settled state: the two runs must agree.
async fn status(ns: &TestNamespace, args: &[&str]) -> (i32, serde_json::Value, String) {
    let mut all = vec!["status"];
    all.extend_from_slice(args);
    let text = berth(ns, &all).await;
    let json = status_json(ns, args).await;
    assert_eq!(text.code, json.0, "{}\n{}", text.stdout, json.1);
    (text.code, json.1, text.stdout)
}

async fn status_json(ns: &TestNamespace, args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = vec!["status"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    let json = berth(ns, &all).await;
    let value: serde_json::Value = serde_json::from_str(&json.stdout)
        .unwrap_or_else(|e| panic!("status -o json: {e}\n{}\n{}", json.stdout, json.stderr));
    (json.code, value)
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn status_tells_in_sync_pending_drifted_error_and_removing_apart() {
    let (ns, specs) = setup("status").await;
    specs.write("web.toml", &simple_app(1, "1Gi"));

    // Not applied yet: pending, nothing ready.
    let (code, json, text) = status(&ns, &[specs.path()]).await;
    assert_eq!(code, 1, "{text}");
    assert_eq!(json["apps"][0]["sync"], "pending", "{json}");
    assert!(
        text.contains(&format!("{}/web  pending  missing  0/1", ns.name)),
        "{text}"
    );

    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    wait_for("web in sync and ready", TIMEOUT, || async {
        let (code, _) = status_json(&ns, &[specs.path()]).await;
        (code == 0).then_some(())
    })
    .await;
    let (code, json, text) = status(&ns, &[specs.path()]).await;
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("in-sync  healthy  1/1    up to date"),
        "{text}"
    );
    assert_eq!(json["ok"], true);
    assert_eq!(json["apps"][0]["sync"], "in-sync", "{json}");
    assert_eq!(json["apps"][0]["ready"], 1, "{json}");
    assert_eq!(json["apps"][0]["rollout"]["complete"], true, "{json}");

    // Someone else scales the StatefulSet: the spec did not change, so this is drift.
    ns.api::<StatefulSet>()
        .patch(
            "web",
            &PatchParams::apply("someone-else").force(),
            &Patch::Apply(serde_json::json!({
                "apiVersion": "apps/v1", "kind": "StatefulSet", "spec": {"replicas": 2}
            })),
        )
        .await
        .expect("scale by hand");
    let (code, json, text) = status(&ns, &[specs.path()]).await;
    assert_eq!(code, 1, "{text}");
    assert_eq!(json["apps"][0]["sync"], "drifted", "{json}");

    // The spec changes: pending (not drift).
    specs.write("web.toml", &simple_app(3, "1Gi"));
    let (_, json, _) = status(&ns, &[specs.path()]).await;
    assert_eq!(json["apps"][0]["sync"], "pending", "{json}");

    // A broken spec: error, with the reason.
    specs.write("web.toml", "replicas = \"three\"\n");
    let (code, json, text) = status(&ns, &[specs.path()]).await;
    assert_eq!(code, 1, "{text}");
    assert_eq!(json["apps"][0]["sync"], "error", "{json}");
    assert!(
        json["apps"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("has errors")),
        "{json}"
    );

    // Without a directory: live state only; the removal mark shows as removing.
    ns.api::<StatefulSet>()
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({
                "metadata": {"annotations": {"berth.dev/removing": "1"}}
            })),
        )
        .await
        .expect("mark for removal");
    let (code, json, text) = status(&ns, &[]).await;
    assert_eq!(code, 1, "{text}");
    assert_eq!(json["apps"][0]["sync"], "removing", "{json}");
    assert!(text.contains("removing"), "{text}");
    ns.cleanup().await;
}
