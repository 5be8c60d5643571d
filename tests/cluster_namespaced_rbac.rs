//! berth on Roles alone, on the real local control plane: a user granted nothing cluster-wide,
//! bound to exactly what `berth rbac` prints for a daemon config that names its two namespaces,
//! applies, diffs, reports status, imports and runs the daemon across both namespaces.
//!
//! The user is made for the test (a client certificate signed by the local cluster's CA), so
//! no grant given to the shared `berth` user can stand in for the generated ones.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};

use support::daemon::{Daemon, write_atomic};
use support::{Specs, TestNamespace, berth_kubeconfig, berth_with_env, simple_app, wait_for};

const TIMEOUT: Duration = Duration::from_secs(60);

/// Runs openssl in `dir`, failing the test with its stderr.
fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A kubeconfig in `dir` for a new user `user`: the cluster entry of the `berth` test
/// kubeconfig, with a client certificate for `user` signed by the local cluster's CA (the API
/// server takes the certificate's CN as the user name). Nothing is written beside the CA.
fn kubeconfig_for(user: &str, dir: &Path) -> PathBuf {
    let berth = PathBuf::from(berth_kubeconfig());
    let pki = berth
        .parent()
        .expect("the kubeconfig's directory")
        .join("pki");
    let (ca_crt, ca_key) = (pki.join("ca.crt"), pki.join("ca.key"));
    std::fs::write(
        dir.join("client.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=clientAuth\n",
    )
    .expect("client.ext");
    let subject = format!("/CN={user}");
    openssl(
        dir,
        &[
            "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "user.key", "-out",
            "user.csr", "-subj", &subject,
        ],
    );
    let serial = format!("0x{:x}", std::process::id());
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "user.csr",
            "-CA",
            ca_crt.to_str().expect("utf-8"),
            "-CAkey",
            ca_key.to_str().expect("utf-8"),
            "-set_serial",
            &serial,
            "-days",
            "1",
            "-extfile",
            "client.ext",
            "-out",
            "user.crt",
        ],
    );
    let text = std::fs::read_to_string(&berth).expect("the berth kubeconfig");
    let mut config: serde_json::Value = serde_saphyr::from_str(&text).expect("kubeconfig YAML");
    let users = config["users"].as_array_mut().expect("users");
    assert_eq!(users.len(), 1, "one user in {}", berth.display());
    users[0]["user"] = serde_json::json!({
        "client-certificate": dir.join("user.crt"),
        "client-key": dir.join("user.key"),
    });
    let path = dir.join("kubeconfig");
    std::fs::write(&path, config.to_string()).expect("write the kubeconfig");
    path
}

/// Server-side applies one RBAC object as admin; returns whether it is cluster-wide.
async fn apply_rbac(client: &kube::Client, doc: &serde_json::Value) -> bool {
    let kind = doc["kind"].as_str().expect("kind").to_string();
    let name = doc["metadata"]["name"].as_str().expect("name").to_string();
    let resource = ApiResource {
        group: "rbac.authorization.k8s.io".into(),
        version: "v1".into(),
        api_version: "rbac.authorization.k8s.io/v1".into(),
        kind: kind.clone(),
        plural: format!("{}s", kind.to_lowercase()),
    };
    let namespace = doc["metadata"]["namespace"].as_str();
    let api: Api<DynamicObject> = match namespace {
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
    namespace.is_none()
}

/// Whether `user` may `verb` `group`/`resource` across all namespaces.
async fn may_cluster_wide(
    client: &kube::Client,
    user: &str,
    verb: &str,
    group: &str,
    resource: &str,
) -> bool {
    let review: SubjectAccessReview = serde_json::from_value(serde_json::json!({
        "spec": {
            "user": user,
            "resourceAttributes": { "verb": verb, "group": group, "resource": resource },
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

async fn replicas(ns: &TestNamespace, name: &str) -> Option<i32> {
    ns.api::<StatefulSet>()
        .get_opt(name)
        .await
        .expect("get StatefulSet")?
        .spec?
        .replicas
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn berth_works_with_only_the_roles_berth_rbac_prints_for_named_namespaces() {
    let a = TestNamespace::new("nsrbac-a").await;
    let b = TestNamespace::new("nsrbac-b").await;
    let user = format!("nsrbac-{}", a.name);
    let work = tempfile::tempdir().expect("temp dir");
    let kubeconfig = kubeconfig_for(&user, work.path());
    let env = [("KUBECONFIG", kubeconfig.as_os_str())];
    let config = work.path().join("berth.toml");
    std::fs::write(
        &config,
        format!(
            "[safety]\nnamespace = \"{a}\"\nnamespaces = [\"{a}\", \"{b}\"]\n\
             [leader_election]\nenabled = true\nnamespace = \"{a}\"\n",
            a = a.name,
            b = b.name
        ),
    )
    .expect("config");
    let config = config.to_str().expect("utf-8").to_string();
    let global = ["--config", config.as_str()];

    // The generated RBAC, applied as admin: nothing in it is cluster-wide.
    let rbac = berth_with_env(&a, &env, &["--config", &config, "rbac", "--user", &user]).await;
    rbac.expect_code(0);
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&rbac.stdout).expect("YAML");
    for doc in &docs {
        // Checked before anything is applied: the cluster is shared with other tests.
        let namespace = doc["metadata"]["namespace"].as_str();
        assert!(
            namespace.is_some_and(|ns| ns == a.name || ns == b.name),
            "an object outside the two namespaces in:\n{}",
            rbac.stdout
        );
    }
    for doc in &docs {
        assert!(!apply_rbac(&a.client, doc).await, "namespaced");
    }
    for (group, resource) in [
        ("apps", "statefulsets"),
        ("", "services"),
        ("policy", "poddisruptionbudgets"),
    ] {
        assert!(
            !may_cluster_wide(&a.client, &user, "list", group, resource).await,
            "{user} may list {resource} cluster-wide"
        );
    }

    // apply, diff, status and import across both namespaces.
    let specs = Specs::new();
    specs.write("one.toml", &simple_app(1, "1Gi"));
    specs.write(
        "two.toml",
        &format!("namespace = \"{}\"\n{}", b.name, simple_app(1, "1Gi")),
    );
    let apply = berth_with_env(
        &a,
        &env,
        &["--config", &config, "apply", "--yes", specs.path()],
    )
    .await;
    apply.expect_code(0);
    assert_eq!(replicas(&a, "one").await, Some(1), "{apply:?}");
    assert_eq!(replicas(&b, "two").await, Some(1), "{apply:?}");
    berth_with_env(&a, &env, &["--config", &config, "diff", specs.path()])
        .await
        .expect_code(0);
    let status = berth_with_env(&a, &env, &["--config", &config, "status", specs.path()]).await;
    assert!(
        status.code == 0 || status.code == 1,
        "status reports (0 or 1), not an error:\n{status:?}"
    );
    for app in [format!("{}/one", a.name), format!("{}/two", b.name)] {
        assert!(status.stdout.contains(&app), "{app} in:\n{}", status.stdout);
    }
    let import = berth_with_env(&a, &env, &["--config", &config, "import", "-A"]).await;
    import.expect_code(0);
    assert!(
        import
            .stdout
            .contains(&format!("namespace = \"{}\"", b.name)),
        "import -A lists the named namespaces:\n{import:?}"
    );

    // The daemon: ready (its caches listed both namespaces), leading, and converging an edit.
    let log = work.path().join("berth.log");
    let daemon = Daemon::start_with_env(&a, specs.dir.path(), &global, &[], &env, log).await;
    write_atomic(
        specs.dir.path(),
        "two.toml",
        &format!("namespace = \"{}\"\n{}", b.name, simple_app(2, "1Gi")),
    );
    wait_for("two scaled to 2 by the daemon", TIMEOUT, || async {
        (replicas(&b, "two").await == Some(2)).then_some(())
    })
    .await;
    let text = daemon.log();
    assert!(!text.contains("forbidden"), "nothing refused:\n{text}");
    drop(daemon);
    b.cleanup().await;
    a.cleanup().await;
}
