//! Logging in with a kubeconfig's `oidc` auth provider, as kubectl does: the ID token in the
//! kubeconfig has expired, so the client trades the refresh token for a new one at the
//! identity provider, and the API server accepts that one. Both ends are real: the local
//! control plane runs an OIDC issuer (`xtask oidc-issuer`, in the instance's folder) and its API
//! server trusts that issuer's tokens for the users `oidc:SUB`.

mod support;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::Api;
use kube::api::{Patch, PatchParams};
use support::{Specs, TestNamespace, berth_kubeconfig, berth_with_env, grant_namespace_to};

/// The user the API server makes of the issuer's tokens (`sub` with the `oidc:` prefix).
const OIDC_USER: &str = "oidc:berth-oidc";
/// The issuer's client, which the API server expects as the tokens' audience.
const CLIENT_ID: &str = "berth-local";

/// The local cluster's folder: the berth kubeconfig is in it.
fn cluster_dir() -> PathBuf {
    PathBuf::from(berth_kubeconfig())
        .parent()
        .expect("the berth kubeconfig is in the cluster's folder")
        .to_path_buf()
}

fn read_cluster_file(relative: &str) -> String {
    let path = cluster_dir().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (start the cluster with `cargo xtask cluster up`; a cluster started before \
             it had an OIDC issuer needs `cargo xtask cluster down` first)",
            path.display()
        )
    })
}

fn issuer_url() -> String {
    let ports: serde_json::Value =
        serde_json::from_str(&read_cluster_file("ports.json")).expect("ports.json parses");
    let port = ports["oidc_issuer"]
        .as_u64()
        .expect("ports.json names the oidc_issuer port");
    format!("https://127.0.0.1:{port}")
}

/// How many token requests the issuer answered with `outcome` (`granted` or `refused`).
fn refreshes(outcome: &str) -> usize {
    std::fs::read_to_string(cluster_dir().join("oidc-refreshes"))
        .map(|log| log.lines().filter(|line| *line == outcome).count())
        .unwrap_or(0)
}

/// An ID token that expired an hour ago. The client reads only its `exp` to decide on a refresh,
/// and never sends it once it has, so it needs no signature.
fn expired_id_token() -> String {
    let b64 = |json: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json.to_string())
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs();
    format!(
        "{}.{}.",
        b64(serde_json::json!({"alg": "none", "typ": "JWT"})),
        b64(serde_json::json!({
            "iss": issuer_url(), "sub": "berth-oidc", "aud": CLIENT_ID, "exp": now - 3600,
        }))
    )
}

/// The berth kubeconfig with its user replaced by the `oidc` auth provider (no certificate).
fn kubeconfig_with_oidc(dir: &Path, refresh_token: &str) -> PathBuf {
    let text = std::fs::read_to_string(berth_kubeconfig()).expect("read the berth kubeconfig");
    let mut kubeconfig: serde_json::Value =
        serde_saphyr::from_str(&text).expect("the berth kubeconfig parses");
    kubeconfig["users"][0]["user"] = serde_json::json!({
        "auth-provider": {
            "name": "oidc",
            "config": {
                // A public client, as kubectl allows: no `client-secret`.
                "client-id": CLIENT_ID,
                "idp-issuer-url": issuer_url(),
                "idp-certificate-authority": cluster_dir().join("pki/ca.crt").display().to_string(),
                "id-token": expired_id_token(),
                "refresh-token": refresh_token,
            }
        }
    });
    let path = dir.join("kubeconfig");
    std::fs::write(&path, kubeconfig.to_string()).expect("write the kubeconfig");
    path
}

/// The environment berth runs with: the OIDC kubeconfig, and the cluster CA as the trust store,
/// since kube-rs 5 refreshes through the system's roots and not `idp-certificate-authority`.
fn oidc_env(kubeconfig: &Path) -> Vec<(&'static str, std::ffi::OsString)> {
    vec![
        ("KUBECONFIG", kubeconfig.as_os_str().to_owned()),
        (
            "SSL_CERT_FILE",
            cluster_dir().join("pki/ca.crt").into_os_string(),
        ),
    ]
}

/// Gives the OIDC user what config/rbac.yaml gives `berth`: the cluster-wide role, the Lease
/// Role in `default` (where berth keeps its removal ledger), and the test namespace's bindings.
/// Bindings of its own, so that applying the shipped file again never drops the OIDC user.
async fn grant_oidc_user(ns: &TestNamespace) {
    let subject = serde_json::json!({
        "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": OIDC_USER,
    });
    let binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "berth-oidc-tests"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "berth"},
        "subjects": [subject],
    }))
    .expect("a ClusterRoleBinding");
    support::ensure_rbac(&ns.client).await;
    Api::<ClusterRoleBinding>::all(ns.client.clone())
        .patch(
            "berth-oidc-tests",
            &PatchParams::apply("berth-tests").force(),
            &Patch::Apply(&binding),
        )
        .await
        .expect("bind the OIDC user to the berth ClusterRole");
    let leases: RoleBinding = serde_json::from_value(serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "berth-oidc-tests-leases", "namespace": "default"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "berth-leases"},
        "subjects": [subject],
    }))
    .expect("a RoleBinding");
    Api::<RoleBinding>::namespaced(ns.client.clone(), "default")
        .patch(
            "berth-oidc-tests-leases",
            &PatchParams::apply("berth-tests").force(),
            &Patch::Apply(&leases),
        )
        .await
        .expect("bind the OIDC user to the berth-leases Role in default");
    grant_namespace_to(&ns.client, &ns.name, &[subject]).await;
}

fn as_env<'a>(env: &'a [(&'static str, std::ffi::OsString)]) -> Vec<(&'static str, &'a OsStr)> {
    env.iter().map(|(k, v)| (*k, v.as_os_str())).collect()
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn an_expired_oidc_token_is_refreshed_and_the_api_server_accepts_the_new_one() {
    let ns = TestNamespace::new("oidc").await;
    grant_oidc_user(&ns).await;
    let specs = Specs::new();
    specs.write("web.toml", &support::simple_app(1, "1Gi"));
    let kubeconfig = kubeconfig_with_oidc(
        specs.dir.path(),
        read_cluster_file("pki/oidc-refresh-token").trim(),
    );
    let env = oidc_env(&kubeconfig);

    let granted_before = refreshes("granted");
    berth_with_env(&ns, &as_env(&env), &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);

    assert!(
        refreshes("granted") > granted_before,
        "the issuer granted no refresh: berth used the expired ID token, or none"
    );
    ns.api::<StatefulSet>()
        .get("web")
        .await
        .expect("the StatefulSet berth applied with the refreshed ID token");
    // The same login reads the cluster back: nothing left to change.
    berth_with_env(&ns, &as_env(&env), &["diff", specs.path()])
        .await
        .expect_code(0);
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn a_refresh_token_the_issuer_refuses_is_a_clear_error_and_changes_nothing() {
    let ns = TestNamespace::new("oidc-refused").await;
    grant_oidc_user(&ns).await;
    let specs = Specs::new();
    specs.write("web.toml", &support::simple_app(1, "1Gi"));
    let kubeconfig = kubeconfig_with_oidc(specs.dir.path(), "revoked-refresh-token");
    let env = oidc_env(&kubeconfig);

    let refused_before = refreshes("refused");
    let run = berth_with_env(&ns, &as_env(&env), &["apply", "--yes", specs.path()]).await;

    assert_ne!(run.code, 0, "berth succeeded with a refused refresh token");
    assert!(
        refreshes("refused") > refused_before,
        "the issuer was never asked: the refresh did not happen"
    );
    let issuer = format!(
        "the kubeconfig's oidc login (issuer {}) failed",
        issuer_url()
    );
    for needle in [
        issuer.as_str(),
        "ID token expired and refreshing failed",
        "log in to the identity provider again",
    ] {
        assert!(
            run.stderr.contains(needle),
            "stderr does not say {needle:?}:\n{}",
            run.stderr
        );
    }
    // The identity provider answered: not a report of an API server that did not.
    assert!(!run.stderr.contains("did not answer"), "{}", run.stderr);
    assert!(
        ns.api::<StatefulSet>()
            .get_opt("web")
            .await
            .expect("get")
            .is_none(),
        "something was applied without a valid login"
    );
    ns.cleanup().await;
}
