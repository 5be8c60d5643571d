//! Every label and annotation key berth reads or writes, and the rules built on them: which
//! objects are this instance's (ownership) and which app an object belongs to (identity). No
//! other module spells a `berth.dev/` or `app.kubernetes.io/` key.

use std::collections::BTreeMap;

/// `app.kubernetes.io/managed-by=berth` on every object berth writes.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "berth";
/// Names the berth instance that owns an object, so two config repos never fight.
pub const INSTANCE_LABEL: &str = "berth.dev/instance";
/// Selector label: the app name.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// Selector label: the berth instance (the same value as [`INSTANCE_LABEL`]).
pub const APP_INSTANCE_LABEL: &str = "app.kubernetes.io/instance";

/// The spec file an object came from, relative to the spec directory.
pub const SOURCE_ANNOTATION: &str = "berth.dev/source";
/// The config repo's commit, when the spec directory is a git checkout.
pub const COMMIT_ANNOTATION: &str = "berth.dev/commit";
/// The app an object belongs to, `NAMESPACE/NAME`, written by berth on every object. Which app
/// owns an object is read from here, not from the `app.kubernetes.io/name` label: a label is
/// something other tools and people change (a policy engine, a mistyped `kubectl label`), and
/// a changed label must read as drift of the same app, never as a second app to remove.
pub const APP_ANNOTATION: &str = "berth.dev/app";
/// The fingerprint of the desired object berth last applied: a plan that renders the same
/// fingerprint, with every field still in place, needs no request at all.
pub const FINGERPRINT_ANNOTATION: &str = "berth.dev/applied";
/// Set on a StatefulSet while berth removes its app; a run that finds it resumes the removal.
/// The value is the replica count before the removal started.
pub const REMOVING_ANNOTATION: &str = "berth.dev/removing";
/// The mark of a recreate's unfinished restarts, under one key in two places. As a label
/// (value: the instance's name) on each pod to restart, set before the StatefulSet is deleted;
/// the pod's replacement comes without it. As an annotation on the StatefulSet while any pod is
/// marked, so that a plan knows to look for marked pods (one pod list) and no other plan has to.
/// A run that finds marked pods restarts them one at a time, so a recreate cut short at any step
/// still ends with every pod restarted.
pub const RESTART_MARK: &str = "berth.dev/restart-pending";
/// On a StatefulSet: `berth suspend` put its app on hold for an incident; every berth instance
/// that reads the object leaves the app alone until `berth resume` takes the annotation away.
/// The value says who, when and why.
pub const SUSPENDED_ANNOTATION: &str = "berth.dev/suspended";
/// On every object of an app with `after`: the apps it named (`ns/name,ns/name`), so that a
/// removal, when the spec is gone, still knows to go before them.
pub const AFTER_ANNOTATION: &str = "berth.dev/after";
/// On the removal ledger's Lease: the ledger's JSON (see `crate::cluster::ledger`).
pub const LEDGER_ANNOTATION: &str = "berth.dev/removal-ledger";

/// Prefix of berth's own labels and annotations: a spec may not set keys under it.
pub const RESERVED_PREFIX: &str = "berth.dev/";
/// Label keys berth sets itself; a spec must not set them (they would fight selectors and
/// ownership).
pub const RESERVED_LABEL_KEYS: [&str; 4] = [
    NAME_LABEL,
    APP_INSTANCE_LABEL,
    MANAGED_BY_LABEL,
    INSTANCE_LABEL,
];

/// The labels that select an app's pods. Immutable in a StatefulSet: nothing volatile may ever
/// go in here (not a commit, not a spec hash, not user labels).
pub fn selector_labels(app: &str, instance: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME_LABEL.to_string(), app.to_string()),
        (APP_INSTANCE_LABEL.to_string(), instance.to_string()),
    ])
}

/// The ownership labels of an instance.
pub fn owner_labels(instance: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string()),
        (INSTANCE_LABEL.to_string(), instance.to_string()),
    ])
}

/// A label selector string for everything an instance owns (for list and watch calls).
pub fn owner_selector(instance: &str) -> String {
    format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},{INSTANCE_LABEL}={instance}")
}

/// Who wrote a live object, as its labels say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership<'a> {
    /// Managed by berth and labelled with this instance: berth's to change.
    ThisInstance,
    /// Managed by berth and labelled with another instance (named here).
    OtherInstance(&'a str),
    /// Not managed by berth, or managed by berth without an instance label.
    NotBerth,
}

/// The one ownership rule: berth changes an object only when both ownership labels name it and
/// `instance`; anything else needs `adopt = true`.
pub fn ownership<'a>(labels: &'a BTreeMap<String, String>, instance: &str) -> Ownership<'a> {
    let managed_by_berth =
        labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY_VALUE);
    match labels.get(INSTANCE_LABEL) {
        Some(owner) if managed_by_berth && owner == instance => Ownership::ThisInstance,
        Some(other) if managed_by_berth => Ownership::OtherInstance(other),
        _ => Ownership::NotBerth,
    }
}

/// The value of [`APP_ANNOTATION`] for an app.
pub fn app_value(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// The app an owned object belongs to: berth's own record ([`APP_ANNOTATION`]) when the object
/// has one for its namespace, else (objects written before berth kept that record) its
/// `app.kubernetes.io/name` label. None when neither says.
pub fn app_of<'a>(
    namespace: &str,
    labels: &'a BTreeMap<String, String>,
    annotations: &'a BTreeMap<String, String>,
) -> Option<&'a str> {
    if let Some(recorded) = annotations.get(APP_ANNOTATION)
        && let Some((ns, name)) = recorded.split_once('/')
        && ns == namespace
        && !name.is_empty()
    {
        return Some(name);
    }
    labels.get(NAME_LABEL).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn ownership_needs_both_labels_and_the_instance() {
        assert_eq!(
            ownership(&owner_labels("blue"), "blue"),
            Ownership::ThisInstance
        );
        assert_eq!(
            ownership(&owner_labels("green"), "blue"),
            Ownership::OtherInstance("green")
        );
        let no_instance = map(&[(MANAGED_BY_LABEL, MANAGED_BY_VALUE)]);
        assert_eq!(ownership(&no_instance, "blue"), Ownership::NotBerth);
        let other_manager = map(&[(MANAGED_BY_LABEL, "helm"), (INSTANCE_LABEL, "blue")]);
        assert_eq!(ownership(&other_manager, "blue"), Ownership::NotBerth);
    }

    #[test]
    fn identity_is_berths_record_and_the_label_only_for_objects_without_one() {
        let labels = map(&[(NAME_LABEL, "web2")]);
        let recorded = map(&[(APP_ANNOTATION, "db/web")]);
        assert_eq!(app_of("db", &labels, &recorded), Some("web"));
        assert_eq!(app_of("db", &labels, &BTreeMap::new()), Some("web2"));
        // A record for another namespace (a copied object) is not this object's.
        assert_eq!(app_of("other", &labels, &recorded), Some("web2"));
        assert_eq!(app_of("db", &BTreeMap::new(), &BTreeMap::new()), None);
    }
}
