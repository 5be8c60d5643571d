//! What the bench reads from /proc: the CPU time and resident set of `berth watch` (by pid), the
//! machine's busy and total CPU ticks, and the machine facts the report starts with (memory, CPU
//! model, load).
//!
//! Linux only, like the local control plane the bench runs against.

use std::fs;
use std::process::Command;

use anyhow::{Context, Result};

/// utime + stime of a process, in seconds.
pub(super) fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    Ok(cpu_ticks(&stat) / clock_ticks())
}

/// utime + stime, in clock ticks, from the text of /proc/PID/stat.
fn cpu_ticks(stat: &str) -> f64 {
    // The command name may hold spaces; the fields after it are fixed.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // After ")": state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let ticks = |i: usize| -> f64 { fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0.0) };
    ticks(11) + ticks(12)
}

/// Clock ticks per second (the unit of /proc/PID/stat's times); 100 on every common Linux.
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// (busy, total) clock ticks of all cores since boot.
pub(super) fn machine_cpu_ticks() -> Result<(u64, u64)> {
    let stat = fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    parse_cpu_line(&stat).context("no cpu line in /proc/stat")
}

/// (busy, total) from the text of /proc/stat: idle and iowait are not busy; guest time is
/// already counted in user time, so it is left out of the total.
fn parse_cpu_line(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    let total: u64 = ticks.iter().sum();
    let idle = ticks.get(3)? + ticks.get(4)?;
    Some((total - idle, total))
}

/// VmHWM: the process's peak resident set, in KiB.
pub(super) fn peak_rss_kib(pid: u32) -> Result<u64> {
    status_kib(pid, "VmHWM")
}

/// One KiB field of /proc/PID/status (VmHWM, RssAnon: heap and stacks, RssFile: mapped code).
pub(super) fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    kib_field(&status, field).with_context(|| format!("no {field} in /proc/PID/status"))
}

/// The number of a `Field:   1234 kB` line, as in /proc/PID/status and /proc/meminfo.
fn kib_field(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The machine's memory in KiB (MemTotal), 0 if /proc/meminfo cannot be read.
pub(super) fn mem_total_kib() -> u64 {
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    kib_field(&meminfo, "MemTotal").unwrap_or(0)
}

/// The first CPU's model name, empty if /proc/cpuinfo has none.
pub(super) fn cpu_model() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default()
}

/// /proc/loadavg as it reads: the load when the run started puts the timings in context.
pub(super) fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_skip_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (berth (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 37 5 0 0 20 0 4 0";
        assert_eq!(cpu_ticks(stat), 42.0);
    }

    #[test]
    fn machine_ticks_leave_out_idle_and_iowait_and_count_guest_time_once() {
        // user nice system idle iowait irq softirq steal guest guest_nice
        let before = "cpu  100 0 50 800 50 0 0 0 30 0\ncpu0 50 0 25 400 25 0 0 0 15 0\n";
        let after = "cpu  160 0 70 900 70 0 0 0 90 0\ncpu0 80 0 35 450 35 0 0 0 45 0\n";
        assert_eq!(parse_cpu_line(before), Some((150, 1000)));
        assert_eq!(parse_cpu_line(after), Some((230, 1200)));
        assert_eq!(parse_cpu_line("cpu  1 2 3\n"), None);
        assert_eq!(parse_cpu_line("intr 1 2 3\n"), None);
    }

    #[test]
    fn kib_fields_are_read_by_exact_name() {
        let status = "VmHWM:\t   51200 kB\nRssAnon:\t   20480 kB\nRssFile:\t   10240 kB\n";
        assert_eq!(kib_field(status, "VmHWM"), Some(51200));
        assert_eq!(kib_field(status, "RssFile"), Some(10240));
        assert_eq!(kib_field(status, "Rss"), None);
    }
}
