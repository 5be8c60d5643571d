//! Proxies as kubectl uses them, against the real local control plane: `HTTPS_PROXY` and
//! `NO_PROXY` from the environment, the kubeconfig cluster's `proxy-url` (HTTP CONNECT and
//! SOCKS5), and no environment proxy for a loopback API server.
//!
//! The API server listens on 127.0.0.1, which kubectl never sends through an environment proxy.
//! So the environment-proxy tests name it `kubernetes.default.svc` (in its certificate, resolved
//! by nothing on this host): only the test proxy knows where that is, as a bastion's proxy knows
//! the cluster's private names.

mod support;

use std::ffi::OsStr;
use std::path::Path;

use support::connect_proxy::{ConnectProxy, Protocol, dead_port};
use support::{Specs, TestNamespace, berth_kubeconfig, berth_with_env, ensure_rbac, simple_app};

/// A name in the API server's certificate that only the test proxy resolves.
const PRIVATE_NAME: &str = "kubernetes.default.svc";

async fn setup(prefix: &str) -> (TestNamespace, Specs) {
    let ns = TestNamespace::new(prefix).await;
    ensure_rbac(&ns.client).await;
    let specs = Specs::new();
    specs.write("web.toml", &simple_app(1, "1Gi"));
    (ns, specs)
}

/// The berth kubeconfig as JSON (which is YAML), with `edit` applied to its one cluster entry.
fn kubeconfig_with(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> std::path::PathBuf {
    let text = std::fs::read_to_string(berth_kubeconfig()).expect("read the berth kubeconfig");
    let mut kubeconfig: serde_json::Value =
        serde_saphyr::from_str(&text).expect("the berth kubeconfig parses");
    edit(&mut kubeconfig["clusters"][0]["cluster"]);
    let path = dir.join("kubeconfig");
    std::fs::write(&path, kubeconfig.to_string()).expect("write the kubeconfig");
    path
}

/// The API server's port, from the berth kubeconfig.
fn api_port() -> u16 {
    let text = std::fs::read_to_string(berth_kubeconfig()).expect("read the berth kubeconfig");
    let kubeconfig: serde_json::Value =
        serde_saphyr::from_str(&text).expect("the berth kubeconfig parses");
    let server = kubeconfig["clusters"][0]["cluster"]["server"]
        .as_str()
        .expect("a server URL");
    server
        .rsplit_once(':')
        .and_then(|(_, port)| port.trim_end_matches('/').parse().ok())
        .expect("a port in the server URL")
}

/// A kubeconfig that names the API server by [`PRIVATE_NAME`].
fn kubeconfig_by_private_name(dir: &Path) -> std::path::PathBuf {
    let server = format!("https://{PRIVATE_NAME}:{}", api_port());
    kubeconfig_with(dir, |cluster| cluster["server"] = server.into())
}

/// The proxy carried requests, every one of them to `want` (`host:port`).
fn assert_every_request_through(proxy: &ConnectProxy, want: &str) {
    let targets = proxy.targets();
    assert!(!targets.is_empty(), "berth did not use the proxy");
    assert!(targets.iter().all(|t| t == want), "{targets:?}");
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn https_proxy_from_the_environment_carries_every_request() {
    let (ns, specs) = setup("proxy-env").await;
    let proxy = ConnectProxy::start(Protocol::Connect, &[(PRIVATE_NAME, "127.0.0.1")]).await;
    let kubeconfig = kubeconfig_by_private_name(specs.dir.path());

    let url = proxy.url();
    let env: [(&str, &OsStr); 2] = [
        ("KUBECONFIG", kubeconfig.as_os_str()),
        ("HTTPS_PROXY", url.as_ref()),
    ];
    berth_with_env(&ns, &env, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);

    assert_every_request_through(&proxy, &format!("{PRIVATE_NAME}:{}", api_port()));
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn no_proxy_naming_the_api_server_bypasses_a_dead_proxy() {
    let (ns, specs) = setup("proxy-noproxy").await;
    let dead = format!("http://127.0.0.1:{}", dead_port().await);
    let env: [(&str, &OsStr); 2] = [
        ("HTTPS_PROXY", dead.as_ref()),
        ("NO_PROXY", "localhost,127.0.0.1".as_ref()),
    ];
    berth_with_env(&ns, &env, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn no_proxy_domain_suffix_sends_the_requests_direct() {
    let (ns, specs) = setup("proxy-suffix").await;
    let proxy = ConnectProxy::start(Protocol::Connect, &[(PRIVATE_NAME, "127.0.0.1")]).await;
    let kubeconfig = kubeconfig_by_private_name(specs.dir.path());

    let url = proxy.url();
    let env: [(&str, &OsStr); 3] = [
        ("KUBECONFIG", kubeconfig.as_os_str()),
        ("https_proxy", url.as_ref()),
        ("no_proxy", "example.com,.svc".as_ref()),
    ];
    // Direct, the private name resolves to nothing here: the run fails without the proxy.
    let run = berth_with_env(&ns, &env, &["diff", specs.path()]).await;
    assert_ne!(run.code, 0, "{run:?}");
    assert!(proxy.targets().is_empty(), "{:?}", proxy.targets());
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn a_loopback_api_server_never_goes_through_the_environment_proxy() {
    let (ns, specs) = setup("proxy-loopback").await;
    let proxy = ConnectProxy::start(Protocol::Connect, &[]).await;
    let url = proxy.url();
    let env: [(&str, &OsStr); 1] = [("HTTPS_PROXY", url.as_ref())];
    berth_with_env(&ns, &env, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    assert!(proxy.targets().is_empty(), "{:?}", proxy.targets());
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn kubeconfig_proxy_url_carries_every_request() {
    let (ns, specs) = setup("proxy-kubeconfig").await;
    let proxy = ConnectProxy::start(Protocol::Connect, &[]).await;
    let url = proxy.url();
    let kubeconfig = kubeconfig_with(specs.dir.path(), |cluster| {
        cluster["proxy-url"] = url.clone().into()
    });

    let env: [(&str, &OsStr); 1] = [("KUBECONFIG", kubeconfig.as_os_str())];
    berth_with_env(&ns, &env, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);

    assert_every_request_through(&proxy, &format!("127.0.0.1:{}", api_port()));
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn kubeconfig_socks5_proxy_url_wins_over_no_proxy() {
    let (ns, specs) = setup("proxy-socks5").await;
    let proxy = ConnectProxy::start(Protocol::Socks5, &[]).await;
    let url = proxy.url();
    let kubeconfig = kubeconfig_with(specs.dir.path(), |cluster| {
        cluster["proxy-url"] = url.clone().into()
    });

    let env: [(&str, &OsStr); 2] = [
        ("KUBECONFIG", kubeconfig.as_os_str()),
        ("NO_PROXY", "127.0.0.1".as_ref()),
    ];
    berth_with_env(&ns, &env, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);

    assert_every_request_through(&proxy, &format!("127.0.0.1:{}", api_port()));
    ns.cleanup().await;
}
