//! The berth binary run in the background, its output read as it comes: for tests that act on
//! the cluster, or look at it, while a long apply is under way.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::{Run, TestNamespace, berth_kubeconfig};

/// A berth process started by [`Background::start`].
pub struct Background {
    child: Child,
    /// Everything it wrote to stdout so far.
    stdout: Arc<Mutex<String>>,
    /// Everything it wrote to stderr so far (the progress lines go there).
    stderr: Arc<Mutex<String>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl Background {
    /// Starts berth as the restricted `berth` user with the test namespace as its instance, as
    /// [`super::berth`] runs it.
    pub fn start(ns: &TestNamespace, args: &[&str]) -> Background {
        let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .env("KUBECONFIG", berth_kubeconfig())
            .env("NO_COLOR", "1")
            .env_remove("BERTH_CONFIG")
            .args(["--instance", &ns.name, "--namespace", &ns.name])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start berth");
        let (stdout, stderr) = (Arc::default(), Arc::default());
        let readers = vec![
            collect(child.stdout.take().expect("stdout"), Arc::clone(&stdout)),
            collect(child.stderr.take().expect("stderr"), Arc::clone(&stderr)),
        ];
        Background {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    /// Its stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }

    /// Waits until its stderr holds `needle`; panics with the output when it does not within
    /// `timeout`, or when berth exits first.
    pub async fn wait_for_stderr(&mut self, needle: &str, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.stderr().contains(needle) {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("berth's status") {
                // Let the readers take the last lines.
                tokio::time::sleep(Duration::from_millis(200)).await;
                panic!(
                    "berth exited ({status}) without printing `{needle}`; stderr:\n{}",
                    self.stderr()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "berth did not print `{needle}` within {}s; stderr so far:\n{}",
                timeout.as_secs(),
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits for it to exit and returns what it did.
    pub async fn finish(mut self, timeout: Duration) -> Run {
        let status = tokio::time::timeout(timeout, self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "berth did not finish within {}s; stderr so far:\n{}",
                    timeout.as_secs(),
                    self.stderr()
                )
            })
            .expect("berth's status");
        for reader in self.readers.drain(..) {
            let _ = reader.await;
        }
        Run {
            code: status.code().unwrap_or(-1),
            stdout: self.stdout.lock().expect("lock").clone(),
            stderr: self.stderr(),
        }
    }
}

/// Appends every line read from `from` to `into`.
fn collect(
    from: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    into: Arc<Mutex<String>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(from).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut text = into.lock().expect("lock");
            text.push_str(&line);
            text.push('\n');
        }
    })
}
