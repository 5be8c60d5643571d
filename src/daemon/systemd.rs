//! Talking to systemd under `Type=notify`: READY=1 after the first full sync, STATUS= one-line
//! summaries, RELOADING=1 on SIGHUP, STOPPING=1 on shutdown, and WATCHDOG=1 pings.
//!
//! Outside systemd (no `NOTIFY_SOCKET`) every call is a no-op. A failed notification is logged
//! and otherwise ignored: systemd being unreachable must never take the daemon down (if it
//! matters, systemd's own start and watchdog timeouts notice).
//!
//! Messages are formatted by `sd_notify::NotifyState` but sent here, to a socket path read once
//! into the struct, so that tests can point it at a socket of their own. `NOTIFY_SOCKET` stays in
//! the environment (removing it needs `unsafe` `std::env::remove_var`); children inheriting it is
//! harmless, as the unit's `NotifyAccess=main` makes systemd ignore anyone but the main process.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use sd_notify::NotifyState;

/// A handle on the service manager's notification socket.
#[derive(Debug, Clone, Default)]
pub struct Systemd {
    /// `NOTIFY_SOCKET` as read at start-up: a path, or `@name` for an abstract socket. `None`
    /// when not started by systemd with `Type=notify`, which turns every call into a no-op.
    socket: Option<OsString>,
    /// `WATCHDOG_USEC` (when meant for this process): systemd kills the service if no WATCHDOG=1
    /// arrives within it.
    watchdog_timeout: Option<Duration>,
}

impl Systemd {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from the environment.
    pub fn from_env() -> Systemd {
        match std::env::var_os("NOTIFY_SOCKET") {
            Some(path) if !path.is_empty() => {
                let systemd = Systemd::with_socket(path);
                // sd_watchdog_enabled(3): WATCHDOG_USEC counts only if WATCHDOG_PID is unset or
                // ours (a variable inherited from a parent service is not our watchdog).
                match sd_notify::watchdog_enabled() {
                    Some(timeout) => systemd.with_watchdog_timeout(timeout),
                    None => systemd,
                }
            }
            _ => Systemd::disabled(),
        }
    }

    /// Notifications go to `socket` (a path, or `@name` for an abstract socket); no watchdog.
    pub fn with_socket(socket: impl Into<OsString>) -> Systemd {
        Systemd {
            socket: Some(socket.into()),
            watchdog_timeout: None,
        }
    }

    /// Every call is a no-op.
    pub fn disabled() -> Systemd {
        Systemd::default()
    }

    /// Sets the watchdog timeout (as systemd's `WATCHDOG_USEC` would).
    pub fn with_watchdog_timeout(mut self, timeout: Duration) -> Systemd {
        self.watchdog_timeout = Some(timeout).filter(|t| !t.is_zero());
        self
    }

    /// Whether notifications are sent anywhere.
    pub fn is_enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// Start-up (or a reload) is complete: READY=1 with a one-line status.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(one_line(status))]);
    }

    /// A one-line summary shown by `systemctl status`.
    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(one_line(status))]);
    }

    /// The daemon config is being reloaded; call [`Systemd::ready`] when done.
    pub fn reloading(&self) {
        // systemd ≥ 253 requires MONOTONIC_USEC with RELOADING=1 (for Type=notify-reload) to
        // tell this reload from an older one; older versions ignore it.
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now]),
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the monotonic clock for RELOADING=1");
                self.send(&[NotifyState::Reloading]);
            }
        }
    }

    /// Shutdown has begun.
    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    /// How often to call [`Systemd::watchdog`]: half the watchdog timeout, as sd_watchdog_enabled(3)
    /// recommends, so that one late tick does not kill the service. `None` without a watchdog.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        // Pings without a socket would go nowhere; don't make the daemon run a timer for them.
        self.socket.as_ref()?;
        self.watchdog_timeout.map(|t| t / 2)
    }

    /// Watchdog keep-alive ping.
    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        let Some(socket) = &self.socket else {
            return;
        };
        let message: String = states.iter().map(|s| format!("{s}\n")).collect();
        if let Err(err) = send_datagram(socket, message.as_bytes()) {
            tracing::warn!(
                error = %err,
                socket = %socket.to_string_lossy(),
                message = %message.trim_end(),
                "cannot notify systemd"
            );
        }
    }
}

/// STATUS= ends at the first newline; keep the whole text on that line instead of losing the
/// rest or turning it into bogus assignments.
fn one_line(status: &str) -> &str {
    status.lines().next().unwrap_or("")
}

fn send_datagram(socket: &OsStr, message: &[u8]) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    // A fresh connection per message: systemd re-creates its socket on daemon-reexec, and a
    // message every few seconds at most makes the cost irrelevant.
    match socket.as_encoded_bytes().strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.connect_addr(&addr)?;
        }
        None => sock.connect(socket)?,
    }
    let sent = sock.send(message)?;
    if sent != message.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("sent {sent} of {} bytes", message.len()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bound datagram socket in a temporary directory, standing in for systemd's.
    struct FakeSystemd {
        _dir: tempfile::TempDir,
        socket: UnixDatagram,
        path: std::path::PathBuf,
    }

    impl FakeSystemd {
        fn new() -> FakeSystemd {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("notify");
            let socket = UnixDatagram::bind(&path).expect("bind notify socket");
            socket
                .set_read_timeout(Some(Duration::from_secs(5)))
                .expect("set read timeout");
            FakeSystemd {
                _dir: dir,
                socket,
                path,
            }
        }

        fn recv(&self) -> String {
            let mut buf = [0u8; 4096];
            let n = self.socket.recv(&mut buf).expect("a notification");
            String::from_utf8(buf[..n].to_vec()).expect("UTF-8 notification")
        }
    }

    #[test]
    fn sends_each_notification_as_one_datagram() {
        let fake = FakeSystemd::new();
        let systemd = Systemd::with_socket(&fake.path);
        assert!(systemd.is_enabled());

        systemd.ready("12 apps in sync");
        assert_eq!(fake.recv(), "READY=1\nSTATUS=12 apps in sync\n");

        systemd.status("reconciling 3 apps\nsecond line");
        assert_eq!(fake.recv(), "STATUS=reconciling 3 apps\n");

        systemd.watchdog();
        assert_eq!(fake.recv(), "WATCHDOG=1\n");

        systemd.reloading();
        let reloading = fake.recv();
        assert!(
            reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
            "{reloading}"
        );

        systemd.stopping();
        assert_eq!(fake.recv(), "STOPPING=1\nSTATUS=stopping\n");
    }

    #[test]
    fn abstract_socket_names_work() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("berth-test-{}", std::process::id());
        let addr =
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("name");
        let receiver = UnixDatagram::bind_addr(&addr).expect("bind abstract socket");
        receiver
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("set read timeout");

        Systemd::with_socket(format!("@{name}")).ready("up");
        let mut buf = [0u8; 256];
        let n = receiver.recv(&mut buf).expect("a notification");
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=up\n");
    }

    #[test]
    fn a_missing_socket_is_not_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        // Nothing listens there: the call logs and returns.
        Systemd::with_socket(dir.path().join("gone")).ready("up");
        Systemd::disabled().ready("up");
        assert!(!Systemd::disabled().is_enabled());
    }

    #[test]
    fn watchdog_interval_is_half_the_timeout() {
        let fake = FakeSystemd::new();
        let systemd = Systemd::with_socket(&fake.path);
        assert_eq!(systemd.watchdog_interval(), None);
        let systemd = systemd.with_watchdog_timeout(Duration::from_secs(30));
        assert_eq!(systemd.watchdog_interval(), Some(Duration::from_secs(15)));
        let systemd = Systemd::with_socket(&fake.path).with_watchdog_timeout(Duration::ZERO);
        assert_eq!(systemd.watchdog_interval(), None);
        let systemd = Systemd::disabled().with_watchdog_timeout(Duration::from_secs(30));
        assert_eq!(systemd.watchdog_interval(), None);
    }
}
