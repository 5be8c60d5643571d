//! Checks of the systemd units in systemd/: the lines the daemon's contract relies on
//! (Type=notify, watchdog, restart policy, a dedicated user, hardening), and the exposure score
//! of `systemd-analyze security`, which must stay at 2.0 or lower.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn unit_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("systemd")
        .join(name)
}

/// The assignments of one section, each key with all its values in order (systemd allows
/// repeated keys such as SystemCallFilter=).
fn section(unit: &str, name: &str) -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(unit_path(unit)).expect("read the unit file");
    let mut current = String::new();
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = header.to_owned();
            continue;
        }
        assert!(
            !line.ends_with('\\'),
            "continuation lines are not expected: {line}"
        );
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not an assignment: {line}"));
        if current == name {
            keys.entry(key.trim().to_owned())
                .or_default()
                .push(value.trim().to_owned());
        }
    }
    keys
}

/// The single value of `key`, failing the test when it is absent or repeated.
fn one<'a>(keys: &'a BTreeMap<String, Vec<String>>, key: &str) -> &'a str {
    match keys.get(key).map(Vec::as_slice) {
        Some([value]) => value,
        Some(values) => panic!("{key}= is set {} times: {values:?}", values.len()),
        None => panic!("{key}= is missing"),
    }
}

#[test]
fn berth_service_has_the_lines_the_daemon_relies_on() {
    let service = section("berth.service", "Service");

    // Readiness and liveness protocol implemented by src/daemon/systemd.rs.
    assert_eq!(one(&service, "Type"), "notify");
    assert_eq!(one(&service, "NotifyAccess"), "main");
    let watchdog = one(&service, "WatchdogSec");
    let watchdog = humantime::parse_duration(watchdog)
        .unwrap_or_else(|e| panic!("WatchdogSec={watchdog}: {e}"));
    assert!(
        watchdog.as_secs() >= 10,
        "WatchdogSec must leave room for a slow reconcile step: {watchdog:?}"
    );
    assert_eq!(one(&service, "Restart"), "on-failure");
    assert!(service.contains_key("RestartSec"));
    assert!(service.contains_key("TimeoutStopSec"));

    let exec = one(&service, "ExecStart");
    assert!(
        exec.starts_with("/usr/local/bin/berth watch "),
        "ExecStart={exec}"
    );
    assert!(exec.contains("--log-format json"), "ExecStart={exec}");
    // `$VAR` is split into words and vanishes when empty; `${VAR}` would be one argument,
    // an empty string when unset.
    assert!(exec.ends_with(" $BERTH_ARGS"), "ExecStart={exec}");
    assert!(one(&service, "ExecReload").contains("-HUP $MAINPID"));
    assert_eq!(one(&service, "EnvironmentFile"), "-/etc/berth/berth.env");

    // A dedicated, unprivileged identity.
    let user = service
        .get("User")
        .and_then(|v| v.first())
        .map(String::as_str);
    let dynamic = service
        .get("DynamicUser")
        .and_then(|v| v.first())
        .map(String::as_str);
    assert!(
        matches!(user, Some(u) if u != "root") || dynamic == Some("yes"),
        "berth must run as a dedicated user (User=… or DynamicUser=yes)"
    );

    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("PrivateUsers", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("ProtectClock", "yes"),
        ("ProtectHostname", "yes"),
        ("ProtectProc", "invisible"),
        ("RestrictNamespaces", "yes"),
        ("RestrictRealtime", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("SystemCallArchitectures", "native"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
    ] {
        assert_eq!(one(&service, key), value, "{key}=");
    }
    let filters = service
        .get("SystemCallFilter")
        .expect("SystemCallFilter= is set");
    assert!(
        filters.iter().any(|f| f == "@system-service"),
        "{filters:?}"
    );
    // berth writes nothing on disk: no writable path may punch through ProtectSystem=strict.
    for key in [
        "ReadWritePaths",
        "StateDirectory",
        "CacheDirectory",
        "LogsDirectory",
    ] {
        assert!(!service.contains_key(key), "{key}= is not needed by berth");
    }
}

#[test]
fn git_pull_timer_runs_the_hardened_pull_every_minute() {
    let service = section("berth-git-pull.service", "Service");
    assert_eq!(one(&service, "Type"), "oneshot");
    assert_eq!(one(&service, "User"), "berth");
    assert_eq!(
        one(&service, "ExecStart"),
        "/usr/bin/git -C /srv/berth/config pull --ff-only --quiet"
    );
    assert_eq!(one(&service, "ProtectSystem"), "strict");
    assert_eq!(one(&service, "NoNewPrivileges"), "yes");
    assert_eq!(one(&service, "ReadWritePaths"), "/srv/berth/config");

    let timer = section("berth-git-pull.timer", "Timer");
    assert_eq!(one(&timer, "OnUnitActiveSec"), "1min");
}

#[test]
fn the_template_unit_is_berth_service_with_a_config_and_environment_per_instance() {
    let single = section("berth.service", "Service");
    let template = section("berth@.service", "Service");
    assert_eq!(one(&template, "EnvironmentFile"), "/etc/berth/%i.env");
    assert_eq!(
        one(&template, "ExecStart"),
        "/usr/local/bin/berth watch --config /etc/berth/%i.toml --log-format json $BERTH_ARGS"
    );
    // Everything else, the hardening above all, is the single unit's, line for line.
    let without = |mut keys: BTreeMap<String, Vec<String>>| {
        keys.remove("EnvironmentFile");
        keys.remove("ExecStart");
        keys
    };
    assert_eq!(without(template), without(single));
    assert_eq!(
        section("berth@.service", "Install"),
        section("berth.service", "Install")
    );
}

#[test]
fn an_instance_of_the_template_unit_has_exposure_at_most_2() {
    // systemd-analyze reads a template only through an instance name.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let instance = dir.path().join("berth@staging.service");
    std::fs::copy(unit_path("berth@.service"), &instance).expect("copy the template");
    let score = exposure_of(&instance, "berth@staging.service");
    println!("systemd-analyze security: berth@staging.service {score}");
    assert!(
        score <= 2.0,
        "berth@.service exposure {score} > 2.0; see `systemd-analyze security --offline=true` on a copy named berth@NAME.service"
    );
}

/// The overall exposure from `systemd-analyze security --offline=true`, e.g. 1.1 from
/// "→ Overall exposure level for berth.service: 1.1 OK 🙂".
fn exposure(unit: &str) -> f64 {
    exposure_of(&unit_path(unit), unit)
}

fn exposure_of(path: &Path, unit: &str) -> f64 {
    let output = Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run systemd-analyze ({e}); install the `systemd` package (systemd ≥ 252 \
                 for --offline=true) to check the unit's hardening"
            )
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let marker = format!("Overall exposure level for {unit}:");
    stdout
        .lines()
        .find_map(|line| line.split_once(&marker))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|score| score.parse().ok())
        .unwrap_or_else(|| {
            panic!("no exposure score for {unit} in systemd-analyze output:\n{stdout}\n{stderr}")
        })
}

#[test]
fn berth_service_exposure_is_at_most_2() {
    let score = exposure("berth.service");
    println!("systemd-analyze security: berth.service {score}");
    assert!(
        score <= 2.0,
        "berth.service exposure {score} > 2.0; see `systemd-analyze security --offline=true systemd/berth.service`"
    );
}

#[test]
fn git_pull_service_exposure_is_at_most_2() {
    let score = exposure("berth-git-pull.service");
    println!("systemd-analyze security: berth-git-pull.service {score}");
    assert!(
        score <= 2.0,
        "berth-git-pull.service exposure {score} > 2.0; see `systemd-analyze security --offline=true systemd/berth-git-pull.service`"
    );
}
