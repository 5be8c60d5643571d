//! The fault tests' own control plane: `cargo xtask cluster up --name faults` (state in
//! target/cluster-faults/, every port + 1000), whose components the tests stop and start one at
//! a time. Only one fault test uses it at a time ([`fault_cluster`] serialises them), and no
//! other test binary touches it, so restarting its API server disturbs nothing else.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use tokio::sync::{Mutex, MutexGuard};

static SERIAL: Mutex<()> = Mutex::const_new(());

/// The running fault cluster.
pub struct FaultCluster {
    pub dir: PathBuf,
    pub apiserver_port: u16,
    pub etcd_port: u16,
}

/// Waits for the other fault tests, then brings the fault cluster up (or checks that all of it
/// still runs: a component left stopped by a failed test is started again by `up`).
pub async fn fault_cluster() -> (MutexGuard<'static, ()>, FaultCluster) {
    let guard = SERIAL.lock().await;
    xtask(&["cluster", "up", "--name", "faults"]);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/cluster-faults");
    let ports: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("ports.json")).expect("ports.json of the fault cluster"),
    )
    .expect("ports.json parses");
    let port = |key: &str| ports[key].as_u64().expect("a port") as u16;
    let cluster = FaultCluster {
        apiserver_port: port("apiserver"),
        etcd_port: port("etcd_client"),
        dir,
    };
    (guard, cluster)
}

/// Runs an xtask: the binary `cargo xtask test` names in BERTH_XTASK, else `cargo xtask`.
fn xtask(args: &[&str]) {
    let mut cmd = match std::env::var_os("BERTH_XTASK") {
        Some(bin) => Command::new(bin),
        None => {
            let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
            cmd.arg("xtask");
            cmd
        }
    };
    let out = cmd
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run xtask");
    assert!(
        out.status.success(),
        "xtask {} failed\n{}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl FaultCluster {
    /// Admin kubeconfig (system:masters), for set-up and for looking at what berth did.
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// The restricted `berth` user's kubeconfig (rights from config/rbac.yaml once bound).
    pub fn berth_kubeconfig(&self) -> OsString {
        self.dir.join("berth.kubeconfig").into_os_string()
    }

    pub async fn admin_client(&self) -> kube::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let kubeconfig =
            kube::config::Kubeconfig::read_from(self.admin_kubeconfig()).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("client config");
        kube::Client::try_from(config).expect("client")
    }

    /// SIGKILLs one component (`etcd`, `kube-apiserver`, …), as a crash would.
    pub fn kill(&self, component: &str) {
        xtask(&[
            "cluster",
            "stop-component",
            component,
            "--kill",
            "--name",
            "faults",
        ]);
    }

    /// Starts a stopped component again and waits until it serves.
    pub fn start(&self, component: &str) {
        xtask(&["cluster", "start-component", component, "--name", "faults"]);
    }

    /// Compacts etcd's history up to its current revision (what the API server does every few
    /// minutes), so a watch resuming from an older resourceVersion can only get 410 Gone.
    /// Returns the revision.
    pub fn compact_etcd(&self) -> i64 {
        // etcd's JSON gateway: a range request's header carries the current revision.
        let range = self.etcd_post("/v3/kv/range", r#"{"key":"AA==","limit":1}"#);
        let revision: i64 = range["header"]["revision"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .unwrap_or_else(|| panic!("a revision in {range}"));
        self.etcd_post(
            "/v3/kv/compaction",
            &format!(r#"{{"revision":"{revision}","physical":true}}"#),
        );
        revision
    }

    /// One HTTP/1.0 POST to etcd's client port; the JSON body of a 200 answer.
    fn etcd_post(&self, path: &str, body: &str) -> serde_json::Value {
        use std::io::{Read, Write};
        let mut stream =
            std::net::TcpStream::connect(("127.0.0.1", self.etcd_port)).expect("connect to etcd");
        write!(
            stream,
            "POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("write to etcd");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .expect("read from etcd");
        let (head, body) = response
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("an HTTP answer from etcd: {response}"));
        assert!(
            head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
            "etcd {path}: {head}\n{body}"
        );
        serde_json::from_str(body).unwrap_or_else(|e| panic!("etcd {path} JSON ({e}): {body}"))
    }
}
