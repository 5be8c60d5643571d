//! The peak resident set of the one-shot commands the bench measures (`berth apply`, `diff`,
//! `render` and `validate`, `kubectl apply`), from the kernel's account of the reaped process:
//! `wait4`'s rusage, whose `ru_maxrss` is the largest resident set of the process, or of any
//! child it waited for, in KiB on Linux. /proc/PID/status cannot give it: its VmHWM goes with the
//! process, and polling it misses a short peak.
//!
//! A child's `ru_maxrss` is never below the resident set of the process that started it: exec
//! folds the memory the child had until then (its parent's, shared by vfork or copied by fork)
//! into the figure. The harness holds tens of MiB (a runtime, a client, a fleet's rendered
//! objects), which would be the figure of every command that peaks below that. So each command
//! is started through `xtask peak-rss` ([`task`]), a fresh process of a few MiB that runs it,
//! reaps it and writes its status, time and peak to a file, as /usr/bin/time does.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

const USAGE: &str = "usage: xtask peak-rss REPORT -- PROGRAM [ARGS...]";

/// How a command ended, and what it cost.
#[derive(Debug)]
pub(super) struct Finished {
    pub(super) status: ExitStatus,
    /// From spawn to reaping.
    pub(super) seconds: f64,
    /// `ru_maxrss`: the largest resident set of the command or of a child it waited for.
    pub(super) peak_rss_kib: u64,
}

impl Finished {
    pub(super) fn peak_rss_mib(&self) -> f64 {
        self.peak_rss_kib as f64 / 1024.0
    }
}

/// `xtask peak-rss REPORT -- PROGRAM [ARGS...]`: runs PROGRAM with this process's environment,
/// directory and output, and writes how it ended to REPORT as JSON. The bench starts every
/// measured command so (see the module comment); the exit code says only whether that worked,
/// the command's own is in REPORT.
pub fn task(args: &[&str]) -> Result<()> {
    let [report, "--", program, rest @ ..] = args else {
        bail!("{USAGE}");
    };
    let finished = run_to_completion(Command::new(program).args(rest))
        .with_context(|| format!("running {program}"))?;
    let text = json!({
        "wait_status": finished.status.into_raw(),
        "seconds": finished.seconds,
        "peak_rss_kib": finished.peak_rss_kib,
    })
    .to_string();
    fs::write(report, text).with_context(|| format!("writing {report}"))
}

/// A command started through `xtask peak-rss`. Arguments added to [`Wrapped::command`] go to the
/// measured program; the environment and output set there reach it by inheritance.
pub(super) struct Wrapped {
    command: Command,
    /// Where the wrapper writes how the program ended.
    report: PathBuf,
}

impl Wrapped {
    pub(super) fn new(program: impl AsRef<OsStr>, report: PathBuf) -> Wrapped {
        // The running harness's own executable, even when a build has replaced
        // target/debug/xtask since the bench started (the link is resolved in the child).
        let mut command = Command::new("/proc/self/exe");
        command.arg("peak-rss").arg(&report).arg("--").arg(program);
        Wrapped { command, report }
    }

    pub(super) fn command(&mut self) -> &mut Command {
        &mut self.command
    }

    /// Runs the program to completion; an error means it could not be run or measured, not
    /// that it failed (that is [`Finished::status`]).
    pub(super) fn run(mut self) -> Result<Finished> {
        // A report left by an earlier run must never pass for this one's.
        let _ = fs::remove_file(&self.report);
        let status = self.command.status().context("starting xtask peak-rss")?;
        if !status.success() {
            bail!("xtask peak-rss failed ({status}); it says why in the command's error output");
        }
        let text = fs::read_to_string(&self.report)
            .with_context(|| format!("reading {}", self.report.display()))?;
        parse_report(&text).with_context(|| format!("in {}", self.report.display()))
    }
}

/// What [`task`] wrote, read back.
fn parse_report(text: &str) -> Result<Finished> {
    let report: Value = serde_json::from_str(text)?;
    let (Some(wait_status), Some(seconds), Some(peak_rss_kib)) = (
        report["wait_status"].as_i64(),
        report["seconds"].as_f64(),
        report["peak_rss_kib"].as_u64(),
    ) else {
        bail!("expected wait_status, seconds and peak_rss_kib, got {text}");
    };
    Ok(Finished {
        status: ExitStatus::from_raw(i32::try_from(wait_status)?),
        seconds,
        peak_rss_kib,
    })
}

/// Runs `cmd` to completion, reaped here with `wait4` for its rusage (std's `wait` must not reap
/// it as well: by then the pid may be another process's). Its output must go to files or be
/// inherited, not to pipes: nothing here reads them.
pub(super) fn run_to_completion(cmd: &mut Command) -> io::Result<Finished> {
    let started = Instant::now();
    let mut child = cmd.spawn()?;
    // As std's wait does: a child reading its input must see it end.
    drop(child.stdin.take());
    let pid = libc::pid_t::try_from(child.id()).map_err(io::Error::other)?;
    let (status, peak_rss_kib) = wait4(pid)?;
    Ok(Finished {
        status,
        seconds: started.elapsed().as_secs_f64(),
        peak_rss_kib,
    })
}

/// Blocks until `pid` exits and reaps it: its status and `ru_maxrss` (KiB on Linux).
#[allow(unsafe_code)] // wait4 has no safe form in std; the crate denies unsafe code elsewhere
fn wait4(pid: libc::pid_t) -> io::Result<(ExitStatus, u64)> {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is a struct of integers, for which all zeros is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers are to live, writable locals of the types wait4 writes.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            let peak_rss_kib = u64::try_from(usage.ru_maxrss).unwrap_or(0);
            return Ok((ExitStatus::from_raw(status), peak_rss_kib));
        }
        let err = io::Error::last_os_error();
        // A signal handled while waiting; the child is still there to reap.
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024;

    fn sh(script: &str) -> io::Result<Finished> {
        run_to_completion(Command::new("sh").args(["-c", script]))
    }

    #[test]
    fn the_exit_code_and_the_signal_are_the_childs() -> io::Result<()> {
        assert_eq!(sh("exit 3")?.status.code(), Some(3));
        assert!(sh("exit 0")?.status.success());
        let killed = sh("kill -TERM $$")?.status;
        assert_eq!(
            (killed.code(), killed.signal()),
            (None, Some(libc::SIGTERM))
        );
        Ok(())
    }

    #[test]
    fn the_peak_is_what_the_child_touched() -> io::Result<()> {
        // The shell holds all 64 MiB of the command substitution at once.
        let big = sh("x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo ${#x} >/dev/null")?;
        assert!(big.status.success());
        let small = sh("exit 0")?;
        assert!(
            big.peak_rss_kib >= 64 * MIB,
            "{} KiB for 64 MiB held",
            big.peak_rss_kib
        );
        assert!(
            small.peak_rss_kib > 0 && small.peak_rss_kib < 32 * MIB,
            "{} KiB for a shell that exits",
            small.peak_rss_kib
        );
        Ok(())
    }

    #[test]
    fn a_missing_program_is_an_error_not_a_status() {
        let err = run_to_completion(&mut Command::new("/nonexistent/berth"));
        assert_eq!(
            err.map(|f| f.status).map_err(|e| e.kind()),
            Err(io::ErrorKind::NotFound)
        );
    }

    #[test]
    fn the_wrappers_report_reads_back() -> Result<()> {
        let finished = parse_report(r#"{"wait_status":512,"seconds":1.5,"peak_rss_kib":2048}"#)?;
        assert_eq!(finished.status.code(), Some(2));
        assert_eq!(finished.seconds, 1.5);
        assert_eq!(finished.peak_rss_mib(), 2.0);
        assert!(parse_report(r#"{"wait_status":0}"#).is_err());
        Ok(())
    }
}
