//! Small helpers for the processes the harness starts: spawn detached, record and check PIDs,
//! stop them, and read the tail of their logs for error messages.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A component started by the harness. The PID file lets a later `down` stop exactly it.
pub struct Started {
    pub name: &'static str,
    pub child: Child,
    pub log: PathBuf,
}

/// Spawns `cmd` in its own process group, so it outlives `cargo xtask cluster up` and a Ctrl-C in
/// the terminal that started it does not take the cluster down with it.
pub fn spawn(name: &'static str, mut cmd: Command, logs: &Path, pids: &Path) -> Result<Started> {
    use std::os::unix::process::CommandExt;
    let log = logs.join(format!("{name}.log"));
    // Appended to: a component the fault tests restart keeps its earlier log.
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("opening {}", log.display()))?;
    let err = out.try_clone()?;
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
    fs::write(pids.join(format!("{name}.pid")), child.id().to_string())?;
    Ok(Started { name, child, log })
}

impl Started {
    /// Errors with the tail of the component's log when it has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited during start-up ({status}); last lines of {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 30)
            );
        }
        Ok(())
    }
}

/// The last `lines` lines of a log file, or a note that it could not be read.
pub fn tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(err) => format!("(cannot read {}: {err})", path.display()),
    }
}

/// Reads a PID file and returns the PID if that process still runs the expected program.
/// Checking the command line guards against a recycled PID belonging to something else.
pub fn live_pid(pid_file: &Path, expect_in_cmdline: &str) -> Option<u32> {
    let pid: u32 = fs::read_to_string(pid_file).ok()?.trim().parse().ok()?;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // A zombie has exited; only its parent has not collected it yet.
    let state = stat.rsplit(')').next()?.split_whitespace().next()?;
    if state == "Z" {
        return None;
    }
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    String::from_utf8_lossy(&cmdline)
        .contains(expect_in_cmdline)
        .then_some(pid)
}

/// SIGTERM, a grace period, then SIGKILL. Only ever called with PIDs the harness recorded.
pub fn stop(pid: u32, name: &str, expect_in_cmdline: &str, pid_file: &Path) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if live_pid(pid_file, expect_in_cmdline).is_none() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("{name} (pid {pid}) did not stop after SIGTERM; sending SIGKILL");
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

/// SIGKILL at once, as a crash would end the process; waits until it is gone.
pub fn kill(pid: u32, name: &str, expect_in_cmdline: &str, pid_file: &Path) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && live_pid(pid_file, expect_in_cmdline).is_some() {
        std::thread::sleep(Duration::from_millis(20));
    }
    if live_pid(pid_file, expect_in_cmdline).is_some() {
        eprintln!("{name} (pid {pid}) is still there 10s after SIGKILL");
    }
}

/// Fails with a clear message when something else already listens on a port the cluster needs.
pub fn ensure_port_free(port: u16, component: &str) -> Result<()> {
    match std::net::TcpListener::bind(("127.0.0.1", port)) {
        Ok(_) => Ok(()),
        Err(err) => bail!(
            "port 127.0.0.1:{port} needed by {component} is busy ({err}); \
             stop whatever listens there (`ss -ltnp 'sport = :{port}'` shows it) or run \
             `cargo xtask cluster down` if it is a cluster from an earlier run"
        ),
    }
}

/// Polls `probe` until it returns true, failing early when a watched component dies.
pub fn wait_for(
    what: &str,
    timeout: Duration,
    started: &mut [&mut Started],
    mut probe: impl FnMut() -> bool,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        for s in started.iter_mut() {
            s.check_alive()?;
        }
        if probe() {
            return Ok(());
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = started
                .iter()
                .map(|s| format!("--- {} ({})\n{}", s.name, s.log.display(), tail(&s.log, 20)))
                .collect();
            bail!(
                "timed out after {}s waiting for {what}\n{}",
                timeout.as_secs(),
                logs.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
