//! Plans: what converging one app would do, decided from the desired objects, the server's
//! dry-run of them and the live objects. Pure: no client, no I/O.
//!
//! - [`normalize`] strips what the server adds that is not a change (status, managedFields, …)
//!   and the known StatefulSet quirks, so a converged cluster shows no diff at all.
//! - [`mask`] hides literal env values whose names look secret, in every output.
//! - [`summarize`] turns an object diff into spec-level lines (`replicas 2 → 3`).
//! - [`immutable_changes`] finds StatefulSet changes the API server would refuse in place, and
//!   [`recreate::gate`] decides whether a recreate may carry them out.
//! - [`removals::decide`] decides what happens to live apps whose spec is gone.
//! - [`hold_owned_replicas`] keeps an external replica count safe while berth still owns it.

mod diff;
mod normalize;
pub mod order;
pub mod recreate;
pub mod removals;
mod replicas;
mod summary;

use std::fmt;

use serde::Serialize;

pub use diff::{ColorChoice, unified_diff};
pub use normalize::{contained_in, fingerprint, fingerprint_in_place, mask, normalize};
pub use replicas::hold_owned_replicas;
pub use summary::{ImmutableChange, immutable_changes, summarize};

/// What converging an app would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// The app's objects do not exist yet.
    Create,
    /// Some objects differ; applying them is an in-place update.
    Update,
    /// Live objects match the spec: nothing is sent.
    Unchanged,
    /// The spec file is gone: scale to zero, wait for the pods, delete. PVCs stay.
    Remove,
    /// An immutable StatefulSet field changes and the operator allowed a recreate.
    Recreate { reasons: Vec<String> },
    /// Nothing will be done for this app until the reason is dealt with. `destructive` when
    /// what is held back is a recreate or an immutable change (so `berth diff` still exits 3).
    Blocked { reason: String, destructive: bool },
    /// A removal that waits for a person: it looks like a move, the removal budget is spent,
    /// or the directory it would be judged by cannot be read. Released only by
    /// `berth apply --allow-removals` or by the spec coming back (see [`removals`]).
    Held { reason: String },
    /// Suspended (`suspend = true` in the spec, or `berth suspend` on the live StatefulSet):
    /// nothing is written, drift is not corrected, a removal does not start.
    Suspended { reason: String },
}

impl Action {
    /// Removals and recreates are destructive: `berth diff` exits 3 for them.
    pub fn is_destructive(&self) -> bool {
        matches!(
            self,
            Action::Remove
                | Action::Recreate { .. }
                | Action::Held { .. }
                | Action::Blocked {
                    destructive: true,
                    ..
                }
        )
    }

    pub fn is_change(&self) -> bool {
        !matches!(
            self,
            Action::Unchanged
                | Action::Blocked { .. }
                | Action::Held { .. }
                | Action::Suspended { .. }
        )
    }

    pub fn word(&self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Unchanged => "unchanged",
            Action::Remove => "remove",
            Action::Recreate { .. } => "recreate",
            Action::Blocked { .. } => "blocked",
            Action::Held { .. } => "held",
            Action::Suspended { .. } => "suspended",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Blocked { reason, .. } => write!(f, "blocked: {reason}"),
            Action::Held { reason } => write!(f, "held: {reason}"),
            Action::Suspended { reason } => write!(f, "suspended: {reason}"),
            Action::Recreate { reasons } => write!(f, "recreate: {}", reasons.join("; ")),
            other => f.write_str(other.word()),
        }
    }
}

/// The identity of one Kubernetes object berth manages.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ObjectRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// One object's part in a plan: the diff of its masked, normalized YAML before and after. The
/// objects themselves are not kept: a plan holds every change until it is shown and carried
/// out, and a cold apply of 10,000 apps held 30,000 objects twice over in them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectChange {
    pub object: ObjectRef,
    /// The object exists in the cluster (a change or a removal, not a create).
    #[serde(skip)]
    pub live: bool,
    /// Unified diff of the two (masked), plain text; empty when they are equal.
    pub diff: String,
}

impl ObjectChange {
    /// Builds the change from normalized objects; the diff text is masked, but a change hidden
    /// by masking still counts and says so.
    pub fn new(
        object: ObjectRef,
        before: Option<&serde_json::Value>,
        after: Option<&serde_json::Value>,
    ) -> ObjectChange {
        let text = |v: Option<&serde_json::Value>| {
            v.map(|v| crate::render::to_yaml(&mask(v)))
                .unwrap_or_default()
        };
        let label = object.to_string();
        let diff = if before == after {
            String::new()
        } else {
            let diff = unified_diff(&text(before), &text(after), &label);
            if diff.is_empty() {
                format!("--- {label}\n+++ {label}\n  (a masked secret value changed)\n")
            } else {
                diff
            }
        };
        ObjectChange {
            object,
            live: before.is_some(),
            diff,
        }
    }

    pub fn changed(&self) -> bool {
        !self.diff.is_empty()
    }
}

/// The plan for one app.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppPlan {
    pub namespace: String,
    pub name: String,
    #[serde(flatten)]
    pub action: Action,
    /// Spec-level lines, e.g. `replicas 2 → 3`.
    pub summary: Vec<String>,
    /// Objects that change (unchanged ones are left out).
    pub changes: Vec<ObjectChange>,
    /// PersistentVolumeClaims that stay after a removal (berth never deletes volumes).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retained_pvcs: Vec<String>,
}

impl AppPlan {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The plan for a whole spec directory.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    pub apps: Vec<AppPlan>,
    /// Why the plan as a whole is held back (too many removals, empty directory…).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refusals: Vec<String>,
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        self.apps.iter().any(|a| a.action.is_change())
    }

    pub fn has_destructive(&self) -> bool {
        self.apps.iter().any(|a| a.action.is_destructive())
    }

    /// Apps for which nothing is done: blocked, or a removal held for a person.
    pub fn blocked(&self) -> impl Iterator<Item = &AppPlan> {
        self.apps
            .iter()
            .filter(|a| matches!(a.action, Action::Blocked { .. } | Action::Held { .. }))
    }

    pub fn removals(&self) -> usize {
        self.apps
            .iter()
            .filter(|a| a.action == Action::Remove)
            .count()
    }

    /// Forgets the object diffs, once shown: the actions, summaries and work stay.
    pub fn drop_diffs(&mut self) {
        for app in &mut self.apps {
            app.changes = Vec::new();
        }
    }

    /// The human-readable plan: one summary block per app that is not unchanged, then the
    /// object diffs.
    pub fn render_text(&self, color: ColorChoice) -> String {
        let mut out = String::new();
        let written: Result<(), std::convert::Infallible> = self.write_text(color, |text| {
            out.push_str(text);
            Ok(())
        });
        let Ok(()) = written;
        out
    }

    /// [`Plan::render_text`] handed to `write` a piece at a time, so it is never held whole: the
    /// plan of a cold apply of a large fleet is every object's diff, hundreds of MiB as one text.
    pub fn write_text<E>(
        &self,
        color: ColorChoice,
        mut write: impl FnMut(&str) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut out = String::new();
        let mut unchanged = 0;
        for app in &self.apps {
            if app.action == Action::Unchanged {
                unchanged += 1;
                continue;
            }
            out.push_str(&format!("{}: {}\n", app.key(), app.action));
            for line in &app.summary {
                out.push_str(&format!("  {line}\n"));
            }
            if !app.retained_pvcs.is_empty() {
                out.push_str(&format!(
                    "  volumes kept: {}\n",
                    app.retained_pvcs.join(", ")
                ));
            }
            flush_full(&mut out, &mut write)?;
        }
        if unchanged > 0 {
            out.push_str(&format!("{unchanged} app(s) unchanged\n"));
        }
        for refusal in &self.refusals {
            out.push_str(&format!("refused: {refusal}\n"));
        }
        let mut diffs = self
            .apps
            .iter()
            .flat_map(|a| a.changes.iter())
            .filter(|c| c.changed())
            .peekable();
        if diffs.peek().is_some() {
            out.push('\n');
            for change in diffs {
                out.push_str(&diff::paint(&change.diff, color));
                flush_full(&mut out, &mut write)?;
            }
        }
        if out.is_empty() {
            return Ok(());
        }
        write(&out)
    }
}

/// How much text [`Plan::write_text`] gathers before it hands it on.
const WRITE_CHUNK_BYTES: usize = 64 * 1024;

/// Hands `out` to `write` and empties it once it holds [`WRITE_CHUNK_BYTES`].
fn flush_full<E>(out: &mut String, write: &mut impl FnMut(&str) -> Result<(), E>) -> Result<(), E> {
    if out.len() < WRITE_CHUNK_BYTES {
        return Ok(());
    }
    write(out)?;
    out.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan that creates `apps` apps, each with one object of `lines` lines.
    fn cold_plan(apps: usize, lines: usize) -> Plan {
        let plan_of = |i: usize| {
            let labels: serde_json::Map<String, serde_json::Value> = (0..lines)
                .map(|l| (format!("label-{l:04}"), format!("value-{i}").into()))
                .collect();
            let object =
                serde_json::json!({"metadata": {"name": format!("app-{i}"), "labels": labels}});
            let change = ObjectChange::new(
                ObjectRef {
                    kind: "Service".into(),
                    namespace: "ns".into(),
                    name: format!("app-{i}"),
                },
                None,
                Some(&object),
            );
            AppPlan {
                namespace: "ns".into(),
                name: format!("app-{i}"),
                action: Action::Create,
                summary: vec![format!("new app {i}")],
                changes: vec![change],
                retained_pvcs: Vec::new(),
            }
        };
        Plan {
            apps: (0..apps).map(plan_of).collect(),
            refusals: vec!["too many removals".into()],
        }
    }

    #[test]
    fn a_large_plan_is_written_in_pieces_that_make_up_the_whole_text() {
        let plan = cold_plan(400, 40);
        let mut pieces = Vec::new();
        let written: Result<(), ()> = plan.write_text(ColorChoice::Never, |text| {
            pieces.push(text.to_string());
            Ok(())
        });
        assert_eq!(written, Ok(()));
        let whole = plan.render_text(ColorChoice::Never);
        assert!(whole.len() > 4 * WRITE_CHUNK_BYTES, "{} bytes", whole.len());
        assert_eq!(pieces.concat(), whole);
        assert!(pieces.len() >= 4, "{} pieces", pieces.len());
        assert!(pieces.iter().all(|p| p.len() < 2 * WRITE_CHUNK_BYTES));
        assert!(whole.starts_with("ns/app-0: "));
        assert!(whole.contains("refused: too many removals\n"));
        assert!(
            whole.contains("+    label-0039: value-399\n"),
            "{}",
            &whole[whole.len() - 300..]
        );
    }

    #[test]
    fn writing_stops_at_the_first_error() {
        let plan = cold_plan(400, 40);
        let mut calls = 0;
        let written = plan.write_text(ColorChoice::Never, |_| {
            calls += 1;
            Err("reader gone")
        });
        assert_eq!(written, Err("reader gone"));
        assert_eq!(calls, 1);
    }

    #[test]
    fn a_plan_with_nothing_to_show_writes_nothing() {
        let mut pieces = 0;
        let written: Result<(), ()> = Plan::default().write_text(ColorChoice::Never, |_| {
            pieces += 1;
            Ok(())
        });
        assert_eq!((written, pieces), (Ok(()), 0));
    }

    #[test]
    fn dropped_diffs_leave_the_actions_and_summaries() {
        let mut plan = cold_plan(3, 2);
        plan.drop_diffs();
        assert!(plan.apps.iter().all(|a| a.changes.is_empty()));
        assert!(plan.has_changes());
        assert_eq!(plan.apps[2].summary, ["new app 2"]);
    }
}
