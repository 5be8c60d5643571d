//! Which live apps without a spec are removed, and which are protected or held. Pure: the
//! caller fetches the desired apps, the live inventory and the removal ledger, and carries out
//! what this returns.
//!
//! The rules, in the order they are tried for each live app that has no spec:
//! 1. A removal already under way (the StatefulSet carries `berth.dev/removing`) finishes.
//! 2. *Protected* (left alone, not a removal at all): the app's spec file is broken, its spec
//!    lies at or under a directory berth cannot walk, or one of its objects is an object that a
//!    desired app writes (its labels were changed outside berth; it is that app's drift).
//! 3. *Held* for this pass only: the spec directory is empty, or some directory cannot be walked
//!    and the app's spec file is not recorded (so it may be under it).
//! 4. *Held* until a person releases it, recorded in the ledger: a hold recorded earlier; an app
//!    that looks moved (an app appears in the same pass from the same file, under the same name
//!    in another namespace, or from a new file beside the old one in the same namespace); more
//!    removals than the budget allows (`max_removals` started per `window`, counted across
//!    passes, restarts and instances through the ledger).
//!
//! Only `--allow-removals` (or the spec coming back) releases a recorded hold. It also spends
//! past the budget; a protected app stays protected whatever the flags.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub use crate::spec::AppKey;

/// A desired app, as far as removal decisions need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub namespace: String,
    pub name: String,
    /// Its spec file relative to the spec directory ('/' separators).
    pub source: String,
    /// Objects it writes, as `(kind, name)`.
    pub objects: Vec<(String, String)>,
    /// It has no live objects yet, or it arrived in the same pass as the removals.
    pub appearing: bool,
}

/// A live app that has no spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gone {
    pub namespace: String,
    pub name: String,
    /// The spec file recorded on its objects (`berth.dev/source`), when any object has it.
    pub source: Option<String>,
    /// Its removal is already under way (the StatefulSet is marked).
    pub removing: bool,
    /// Its live objects as `(kind, name)`; may be empty when only its identity is known.
    pub objects: Vec<(String, String)>,
}

/// A spec file that cannot be used, with the best-known identity of its app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenFile {
    pub source: String,
    pub name: String,
    /// None when unknown: the name is then protected in every namespace.
    pub namespace: Option<String>,
    /// The path to show.
    pub shown: String,
}

/// What the operator allowed, and the limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub max_removals: usize,
    /// The budget's window, in seconds.
    pub window_secs: u64,
    pub allow_removals: bool,
    pub allow_empty: bool,
}

/// Removals started and holds, kept in the cluster so that every pass, restart and instance
/// counts against the same budget and no hold is forgotten.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// Removals started, oldest first.
    #[serde(default)]
    pub started: Vec<Started>,
    /// Held removals by app (`namespace/name`).
    #[serde(default)]
    pub held: BTreeMap<String, Hold>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    /// `namespace/name`.
    pub app: String,
    /// Unix seconds.
    pub at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub reason: String,
    /// Unix seconds.
    pub since: u64,
}

/// A change to the ledger, applied to whatever the ledger holds when it is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerChange {
    pub hold: BTreeMap<String, Hold>,
    pub release: BTreeSet<String>,
    pub start: Vec<String>,
}

impl LedgerChange {
    pub fn is_empty(&self) -> bool {
        self.hold.is_empty() && self.release.is_empty() && self.start.is_empty()
    }

    /// Only the holds and releases: what a pass records even when it starts nothing (a declined
    /// confirmation, a dry run never records anything).
    pub fn holds_only(&self) -> LedgerChange {
        LedgerChange {
            start: Vec::new(),
            ..self.clone()
        }
    }
}

impl Ledger {
    /// The ledger after `change`, without starts older than the window.
    pub fn apply(&self, change: &LedgerChange, now: u64, window_secs: u64) -> Ledger {
        let mut next = self.clone();
        for app in &change.release {
            next.held.remove(app);
        }
        for (app, hold) in &change.hold {
            next.held.entry(app.clone()).or_insert_with(|| hold.clone());
        }
        for app in &change.start {
            if !next.started_within(app, now, window_secs) {
                next.started.push(Started {
                    app: app.clone(),
                    at: now,
                });
            }
        }
        next.started
            .retain(|s| s.at.saturating_add(window_secs) > now);
        next
    }

    fn started_within(&self, app: &str, now: u64, window_secs: u64) -> bool {
        self.started
            .iter()
            .any(|s| s.app == app && s.at.saturating_add(window_secs) > now)
    }

    /// Apps whose removal started within the window: what the budget has spent.
    pub fn budgeted(&self, now: u64, window_secs: u64) -> BTreeSet<&str> {
        self.started
            .iter()
            .filter(|s| s.at.saturating_add(window_secs) > now)
            .map(|s| s.app.as_str())
            .collect()
    }
}

/// What happens to one live app without a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Start the ordered removal (or go on with it).
    Remove {
        /// The hold this pass releases (`--allow-removals`), shown so the operator sees it.
        released: Option<String>,
    },
    /// Left alone: not a removal at all (a broken spec, an unreadable directory, an object that
    /// belongs to a desired app).
    Protected { reason: String },
    /// A removal that waits for a person.
    Held { reason: String },
}

/// The verdicts, and what to record in the ledger when they are carried out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    pub verdicts: BTreeMap<AppKey, Verdict>,
    pub ledger: LedgerChange,
    /// Why removals are held as a whole (shown once for the plan).
    pub refusals: Vec<String>,
}

/// Everything a decision looks at.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub wanted: &'a [Wanted],
    pub gone: &'a [Gone],
    pub broken_files: &'a [BrokenFile],
    /// Directories berth cannot walk, relative to the spec directory ('/' separators).
    pub broken_dirs: &'a [String],
    /// Spec files found (valid or not); 0 means an empty directory.
    pub spec_files: usize,
    pub ledger: &'a Ledger,
    /// Unix seconds.
    pub now: u64,
    pub policy: &'a Policy,
}

/// The ledger's key of a gone app (`namespace/name`).
fn gone_key(gone: &Gone) -> String {
    AppKey::new(gone.namespace.clone(), gone.name.clone()).to_string()
}

/// True when `source` is `dir` or lies under it.
fn under(source: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    dir.is_empty()
        || source == dir
        || source
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn parent(source: &str) -> &str {
    source.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// Decides every live app without a spec.
pub fn decide(inputs: &Inputs) -> Decision {
    let mut decision = Decision::default();
    let policy = inputs.policy;
    let gone_keys: BTreeSet<String> = inputs.gone.iter().map(gone_key).collect();
    // A hold ends when its spec is back or nothing of the app is left.
    for app in inputs.ledger.held.keys() {
        if !gone_keys.contains(app) {
            decision.ledger.release.insert(app.clone());
        }
    }
    let sources: BTreeSet<&str> = inputs
        .wanted
        .iter()
        .map(|w| w.source.as_str())
        .chain(inputs.broken_files.iter().map(|b| b.source.as_str()))
        .collect();

    let mut candidates: Vec<&Gone> = Vec::new();
    for gone in inputs.gone {
        let key = AppKey::new(gone.namespace.clone(), gone.name.clone());
        let verdict = if gone.removing {
            Some(Verdict::Remove { released: None })
        } else if let Some(reason) = protection(gone, inputs) {
            Some(Verdict::Protected { reason })
        } else {
            pass_hold(gone, inputs).map(|reason| Verdict::Held { reason })
        };
        match verdict {
            Some(v) => {
                decision.verdicts.insert(key, v);
            }
            None => candidates.push(gone),
        }
    }
    if inputs.spec_files == 0 && !inputs.gone.is_empty() && !policy.allow_empty {
        decision.refusals.push(format!(
            "the spec directory has no specs, which would remove all {} app(s); if that is \
             really wanted, run again with --allow-empty",
            inputs.gone.len()
        ));
    }

    // Recorded holds and moves: held until a person says otherwise.
    let mut to_budget: Vec<&Gone> = Vec::new();
    for gone in candidates {
        let key = gone_key(gone);
        let recorded = inputs.ledger.held.get(&key).map(|h| h.reason.clone());
        let reason = recorded
            .clone()
            .or_else(|| looks_moved(gone, inputs, &sources));
        match reason {
            Some(reason) if !policy.allow_removals => {
                let record = recorded.is_none().then_some(inputs.now);
                hold(&mut decision, gone, &reason, "the old app", record);
            }
            Some(reason) => {
                decision.ledger.release.insert(key.clone());
                decision.ledger.start.push(key);
                decision.verdicts.insert(
                    AppKey::new(gone.namespace.clone(), gone.name.clone()),
                    Verdict::Remove {
                        released: Some(reason),
                    },
                );
            }
            None => to_budget.push(gone),
        }
    }

    // The budget: removals started within the window count once each, whoever started them.
    let budgeted = inputs.ledger.budgeted(inputs.now, policy.window_secs);
    let new: Vec<&&Gone> = to_budget
        .iter()
        .filter(|g| !budgeted.contains(gone_key(g).as_str()))
        .collect();
    let over = budgeted.len() + new.len() > policy.max_removals;
    if over && !policy.allow_removals && !new.is_empty() {
        let reason = format!(
            "removal budget: {} removal(s) started in the last {} and {} more pending exceed \
             safety.max_removals = {} per safety.removal_window",
            budgeted.len(),
            window_text(policy.window_secs),
            new.len(),
            policy.max_removals
        );
        decision.refusals.push(format!(
            "{reason}; if they are really wanted, run `berth apply --allow-removals`"
        ));
        for gone in &new {
            hold(&mut decision, gone, &reason, "the app", Some(inputs.now));
        }
    }
    for gone in to_budget {
        let key = AppKey::new(gone.namespace.clone(), gone.name.clone());
        if decision.verdicts.contains_key(&key) {
            continue;
        }
        decision.ledger.start.push(gone_key(gone));
        decision
            .verdicts
            .insert(key, Verdict::Remove { released: None });
    }
    decision
}

/// Holds `gone`'s removal for `reason`, recorded in the ledger (since `record`) unless the
/// ledger holds it already; `what` names what stays in the message.
fn hold(decision: &mut Decision, gone: &Gone, reason: &str, what: &str, record: Option<u64>) {
    let key = AppKey::new(gone.namespace.clone(), gone.name.clone());
    if let Some(since) = record {
        decision.ledger.hold.insert(
            key.to_string(),
            Hold {
                reason: reason.to_string(),
                since,
            },
        );
    }
    decision.verdicts.insert(
        key,
        Verdict::Held {
            reason: format!("{reason}; {what} stays until you confirm with --allow-removals"),
        },
    );
}

/// Why an app is not a removal at all, if it is not.
fn protection(gone: &Gone, inputs: &Inputs) -> Option<String> {
    let source = gone.source.as_deref();
    // A broken file protects its app by the identity it had, and by the file it came from (an
    // edit may have broken the very `name` line).
    if let Some(broken) = inputs.broken_files.iter().find(|b| {
        (b.name == gone.name && b.namespace.as_deref().is_none_or(|ns| ns == gone.namespace))
            || source == Some(b.source.as_str())
    }) {
        return Some(format!(
            "its spec {} has errors; the live app is left as it is until the file is fixed",
            broken.shown
        ));
    }
    if let Some(source) = source
        && let Some(dir) = inputs.broken_dirs.iter().find(|d| under(source, d))
    {
        return Some(format!(
            "its spec {source} lies under {dir}/, which berth cannot read; the live app is \
             left as it is until the directory can be read"
        ));
    }
    // An object a desired app writes is that app's, whatever its labels say now.
    for (kind, name) in &gone.objects {
        if let Some(owner) = inputs.wanted.iter().find(|w| {
            w.namespace == gone.namespace && w.objects.iter().any(|(k, n)| k == kind && n == name)
        }) {
            return Some(format!(
                "its {kind} {name} is an object of {}/{} whose labels were changed outside \
                 berth; it is that app's drift, never a removal",
                owner.namespace, owner.name
            ));
        }
    }
    None
}

/// Why an app's removal waits for this pass, if it does: nothing is recorded for these.
fn pass_hold(gone: &Gone, inputs: &Inputs) -> Option<String> {
    if inputs.spec_files == 0 && !inputs.policy.allow_empty {
        return Some(
            "removal held back: the spec directory has no specs; if every app should really \
             go, run again with --allow-empty"
                .to_string(),
        );
    }
    if gone.source.is_none()
        && let Some(dir) = inputs.broken_dirs.first()
    {
        return Some(format!(
            "removal held back: {dir}/ cannot be read and this app's objects do not record \
             its spec file, so it may lie there; every such removal waits until the \
             directory can be read"
        ));
    }
    None
}

/// Where the app looks moved to, if it does.
fn looks_moved(gone: &Gone, inputs: &Inputs, sources: &BTreeSet<&str>) -> Option<String> {
    let appearing = || inputs.wanted.iter().filter(|w| w.appearing);
    let moved = |w: &Wanted| {
        format!(
            "looks moved to {}/{} (from {})",
            w.namespace, w.name, w.source
        )
    };
    let source = gone.source.as_deref();
    if let Some(source) = source
        && let Some(w) = appearing().find(|w| w.source == source)
    {
        return Some(moved(w));
    }
    if let Some(w) = appearing().find(|w| w.name == gone.name && w.namespace != gone.namespace) {
        return Some(moved(w));
    }
    // A renamed file without `name`: its file is gone, and a new file in the same directory
    // declares a new app in the same namespace.
    if let Some(source) = source
        && !sources.contains(source)
        && let Some(w) = appearing()
            .find(|w| w.namespace == gone.namespace && parent(&w.source) == parent(source))
    {
        return Some(moved(w));
    }
    None
}

fn window_text(secs: u64) -> String {
    match secs {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests;
