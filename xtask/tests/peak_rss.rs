//! `xtask peak-rss`, the bench's wrapper for its one-shot commands: the figure it reports is the
//! command's own peak resident set, not that of the process that started the wrapper.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

const MIB: u64 = 1024 * 1024;

/// Runs `sh -c script` through the wrapper and returns its report.
fn wrapped_sh(name: &str, script: &str) -> Result<Value, Box<dyn std::error::Error>> {
    let report = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.json"));
    let status = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("peak-rss")
        .arg(&report)
        .args(["--", "sh", "-c", script])
        .status()?;
    assert!(status.success(), "xtask peak-rss: {status}");
    Ok(serde_json::from_str(&fs::read_to_string(&report)?)?)
}

/// VmHWM of this process, in bytes.
fn own_peak_rss() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

#[test]
fn the_peak_is_the_commands_own_whatever_its_starter_holds()
-> Result<(), Box<dyn std::error::Error>> {
    // A starter far larger than the command: a child started straight from it would report
    // at least this much.
    let held = std::hint::black_box(vec![1u8; (256 * MIB) as usize]);
    assert!(own_peak_rss() >= 256 * MIB, "the test holds too little");

    let small = wrapped_sh("small", "exit 3")?;
    assert_eq!(
        small["wait_status"],
        3 << 8,
        "exit code 3, as a wait status"
    );
    let small_kib = small["peak_rss_kib"].as_u64().unwrap_or(0);
    assert!(
        small_kib > 0 && small_kib * 1024 < 32 * MIB,
        "{small_kib} KiB for a shell that exits"
    );

    let big = wrapped_sh(
        "big",
        "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo ${#x} >/dev/null",
    )?;
    assert_eq!(big["wait_status"], 0);
    let big_kib = big["peak_rss_kib"].as_u64().unwrap_or(0);
    assert!(
        big_kib * 1024 >= 64 * MIB,
        "{big_kib} KiB for a shell holding 64 MiB"
    );
    drop(held);
    Ok(())
}

#[test]
fn a_command_that_cannot_start_fails_the_wrapper() -> Result<(), Box<dyn std::error::Error>> {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["peak-rss", "/dev/null", "--", "/nonexistent/berth"])
        .output()?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("running /nonexistent/berth"), "{stderr}");
    Ok(())
}
