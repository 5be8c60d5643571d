//! Logging in the way managed clusters do: the kubeconfig user is an exec credential plugin
//! (client.authentication.k8s.io/v1) that prints a bearer token, against the real local control
//! plane. The API server accepts a static token for the same `berth` user as the test client
//! certificate (`cargo xtask cluster up` writes it to pki/berth.token), so the plugin logs berth
//! in with exactly the rights of the shipped role.

mod support;

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::StatefulSet;
use support::{Specs, TestNamespace, berth_kubeconfig, berth_with_env, ensure_rbac, simple_app};

/// The `berth` user's bearer token, beside the berth kubeconfig.
fn berth_token() -> String {
    let kubeconfig = PathBuf::from(berth_kubeconfig());
    let path = kubeconfig
        .parent()
        .expect("the berth kubeconfig is in the cluster's folder")
        .join("pki/berth.token");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (start the cluster with `cargo xtask cluster up`)",
                path.display()
            )
        })
        .trim()
        .to_string()
}

/// A plugin script in `dir` that appends a line to `calls` each time it runs, then does `body`.
fn plugin(dir: &Path, body: &str) -> (PathBuf, PathBuf) {
    let script = dir.join("credential-plugin");
    let calls = dir.join("plugin-calls");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho called >> '{}'\n{body}\n", calls.display()),
    )
    .expect("write the plugin");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
        .expect("make the plugin executable");
    (script, calls)
}

/// The berth kubeconfig with its user replaced by the exec plugin `command` (no certificate).
fn kubeconfig_with_exec(dir: &Path, command: &Path) -> PathBuf {
    let text = std::fs::read_to_string(berth_kubeconfig()).expect("read the berth kubeconfig");
    let mut kubeconfig: serde_json::Value =
        serde_saphyr::from_str(&text).expect("the berth kubeconfig parses");
    kubeconfig["users"][0]["user"] = serde_json::json!({
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": command.display().to_string(),
            "interactiveMode": "Never",
        }
    });
    let path = dir.join("kubeconfig");
    std::fs::write(&path, kubeconfig.to_string()).expect("write the kubeconfig");
    path
}

fn call_count(calls: &Path) -> usize {
    std::fs::read_to_string(calls)
        .map(|text| text.lines().count())
        .unwrap_or(0)
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn an_exec_credential_plugin_logs_berth_in() {
    let ns = TestNamespace::new("exec-auth").await;
    ensure_rbac(&ns.client).await;
    let specs = Specs::new();
    specs.write("web.toml", &simple_app(1, "1Gi"));
    let (script, calls) = plugin(
        specs.dir.path(),
        &format!(
            "echo '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\
             \"status\":{{\"token\":\"{}\"}}}}'",
            berth_token()
        ),
    );
    let kubeconfig = kubeconfig_with_exec(specs.dir.path(), &script);

    let env: [(&str, &OsStr); 1] = [("KUBECONFIG", kubeconfig.as_os_str())];
    berth_with_env(&ns, &env, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);

    assert!(call_count(&calls) >= 1, "the plugin never ran");
    let sets = ns.api::<StatefulSet>();
    sets.get("web")
        .await
        .expect("the StatefulSet berth applied with the plugin's token");
    // The same login reads the cluster back: nothing left to change.
    let diff = berth_with_env(&ns, &env, &["diff", specs.path()]).await;
    diff.expect_code(0);
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn a_token_about_to_expire_is_fetched_again_from_the_plugin() {
    let ns = TestNamespace::new("exec-auth-expiry").await;
    ensure_rbac(&ns.client).await;
    let specs = Specs::new();
    specs.write("web.toml", &simple_app(1, "1Gi"));
    // Expiring within a minute: the client treats such a token as spent and asks again.
    let (script, calls) = plugin(
        specs.dir.path(),
        &format!(
            "expiry=$(date -u -d '+30 seconds' +%Y-%m-%dT%H:%M:%SZ)\n\
             echo '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\
             \"status\":{{\"token\":\"{}\",\"expirationTimestamp\":\"'$expiry'\"}}}}'",
            berth_token()
        ),
    );
    let kubeconfig = kubeconfig_with_exec(specs.dir.path(), &script);

    let env: [(&str, &OsStr); 1] = [("KUBECONFIG", kubeconfig.as_os_str())];
    berth_with_env(&ns, &env, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);

    assert!(
        call_count(&calls) >= 2,
        "the plugin ran {} time(s): an expiring token was not fetched again",
        call_count(&calls)
    );
    ns.api::<StatefulSet>()
        .get("web")
        .await
        .expect("the StatefulSet applied with the fetched-again tokens");
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn a_failing_plugin_is_a_clear_error_and_changes_nothing() {
    let ns = TestNamespace::new("exec-auth-fail").await;
    ensure_rbac(&ns.client).await;
    let specs = Specs::new();
    specs.write("web.toml", &simple_app(1, "1Gi"));
    let (script, calls) = plugin(
        specs.dir.path(),
        "echo 'error: not logged in; run corp-login first' >&2\nexit 1",
    );
    let kubeconfig = kubeconfig_with_exec(specs.dir.path(), &script);

    let env: [(&str, &OsStr); 1] = [("KUBECONFIG", kubeconfig.as_os_str())];
    let run = berth_with_env(&ns, &env, &["apply", "--yes", specs.path()]).await;

    assert_ne!(run.code, 0, "berth succeeded without credentials");
    assert!(call_count(&calls) >= 1, "the plugin never ran");
    for needle in [
        "exec credential plugin",
        script.to_str().expect("a UTF-8 path"),
        "not logged in; run corp-login first",
    ] {
        assert!(
            run.stderr.contains(needle),
            "stderr does not say {needle:?}:\n{}",
            run.stderr
        );
    }
    let sets = ns.api::<StatefulSet>();
    assert!(
        sets.get_opt("web").await.expect("list").is_none(),
        "something was applied without credentials"
    );
    ns.cleanup().await;
}
