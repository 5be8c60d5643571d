//! `berth watch` as a child process, for the daemon tests: start it as the restricted `berth`
//! user with the test namespace as its instance, read its admin endpoints and its log, signal it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::{TestNamespace, berth_kubeconfig, wait_for};

/// How long a daemon may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `berth watch` child process.
pub struct Daemon {
    /// The process; tests signal it and wait for its exit.
    pub child: Child,
    /// The admin address (/healthz, /readyz, /metrics).
    pub admin: String,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

impl Daemon {
    pub async fn start(ns: &TestNamespace, dir: &Path, extra: &[&str], log: PathBuf) -> Daemon {
        Daemon::start_with(ns, dir, extra, &[], log).await
    }

    /// `global` goes before `watch`, `watch_args` after it.
    pub async fn start_with(
        ns: &TestNamespace,
        dir: &Path,
        global: &[&str],
        watch_args: &[&str],
        log: PathBuf,
    ) -> Daemon {
        Daemon::start_with_env(ns, dir, global, watch_args, &[], log).await
    }

    /// With the daemon config `config` and no `--namespace`: the config's `defaults.namespace`
    /// decides where specs without one go (and SIGHUP re-reads it).
    pub async fn start_configured(
        ns: &TestNamespace,
        dir: &Path,
        config: &str,
        log: PathBuf,
    ) -> Daemon {
        Daemon::spawn(ns, dir, &["--config", config], &[], &[], log, false).await
    }

    /// Like [`Daemon::start_with`], with extra environment variables (set last, so they win:
    /// `RUST_LOG`, or `KUBECONFIG` for other credentials).
    pub async fn start_with_env(
        ns: &TestNamespace,
        dir: &Path,
        global: &[&str],
        watch_args: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
        log: PathBuf,
    ) -> Daemon {
        Daemon::spawn(ns, dir, global, watch_args, env, log, true).await
    }

    /// Starts `berth watch` and waits until it is ready. `in_test_namespace`: specs without a
    /// namespace land in the test's namespace (`--namespace`).
    async fn spawn(
        ns: &TestNamespace,
        dir: &Path,
        global: &[&str],
        watch_args: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
        log: PathBuf,
        in_test_namespace: bool,
    ) -> Daemon {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let admin = format!("127.0.0.1:{port}");
        let out = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
        if !env.iter().any(|(k, _)| *k == "KUBECONFIG") {
            cmd.env("KUBECONFIG", berth_kubeconfig());
        }
        cmd.env_remove("BERTH_CONFIG")
            .args(["--instance", &ns.name]);
        if in_test_namespace {
            cmd.args(["--namespace", &ns.name]);
        }
        let child = cmd
            .args(global)
            .args(["watch", "--log-format", "json", "--admin-addr", &admin])
            .args(watch_args)
            .arg(dir)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .expect("start berth watch");
        let daemon = Daemon { child, admin, log };
        let d = &daemon;
        wait_for("the daemon's /readyz", READY_TIMEOUT, || async move {
            (d.get("/readyz").await.as_deref() == Some("ready")).then_some(())
        })
        .await;
        daemon
    }

    /// GET on the admin address; the body when the status is 200.
    pub async fn get(&self, path: &str) -> Option<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(&self.admin).await.ok()?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await.ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.1 200")
            .then(|| body.trim().to_string())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

impl Drop for Daemon {
    /// A failing test shows what the daemon logged.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- berth watch log ({}):\n{}",
                self.log.display(),
                self.log()
            );
        }
    }
}

/// Replaces `file` in `dir` atomically (write a hidden temp file, rename it over), as an editor
/// or git would.
pub fn write_atomic(dir: &Path, file: &str, body: &str) {
    let tmp = dir.join(format!(".{file}.swp"));
    std::fs::write(&tmp, body).expect("write");
    std::fs::rename(&tmp, dir.join(file)).expect("rename");
}
