//! What the daemon last made of each app: the value of `berth_apps{state}`, the systemd status
//! line and the log. One type, so a state cannot be misspelt at one of the places that set it.

use std::fmt;

/// An app's state in the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AppState {
    /// The live objects match the spec.
    InSync,
    /// A change is known and not applied (`--dry-run`).
    Pending,
    /// Someone changed the live objects and `drift = "report"` leaves them.
    Drifted,
    /// Needs an operator: a recreate to allow, an object berth does not own, a missing namespace,
    /// a broken spec.
    Blocked,
    /// A removal waits for a person (`berth apply --allow-removals`).
    Held,
    /// The ordered removal is under way.
    Removing,
    /// Planning or converging failed; retried with backoff.
    Error,
    /// Left alone on purpose (`suspend = true`, or `berth suspend`).
    Suspended,
    /// A change waits for the apps its `after` names to be healthy (or, for a removal, for the
    /// apps that named it to be gone).
    Waiting,
}

impl AppState {
    /// Every state, in the order `berth_apps` reports them.
    pub const ALL: [AppState; 9] = [
        AppState::InSync,
        AppState::Pending,
        AppState::Drifted,
        AppState::Blocked,
        AppState::Held,
        AppState::Removing,
        AppState::Error,
        AppState::Suspended,
        AppState::Waiting,
    ];

    /// The `state` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            AppState::InSync => "in-sync",
            AppState::Pending => "pending",
            AppState::Drifted => "drifted",
            AppState::Blocked => "blocked",
            AppState::Held => "held",
            AppState::Removing => "removing",
            AppState::Error => "error",
            AppState::Suspended => "suspended",
            AppState::Waiting => "waiting",
        }
    }
}

impl fmt::Display for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
