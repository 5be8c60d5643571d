//! Normalisation: what the API server adds to an object that is not a change berth made or
//! should undo, removed so a live object and a dry-run result compare equal when in sync.

use serde_json::{Map, Value};

use crate::labels::COMMIT_ANNOTATION;

/// Metadata the server owns.
const SERVER_METADATA: [&str; 8] = [
    "managedFields",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "selfLink",
    "deletionGracePeriodSeconds",
    "ownerReferences",
];

/// Returns the object without server noise: status, server-owned metadata, kubectl's
/// last-applied annotation, the commit annotation (a new commit alone is not a change to an app),
/// and the volumeClaimTemplate quirks (the server adds apiVersion, kind and an empty status to
/// each template).
pub fn normalize(object: &Value) -> Value {
    let mut obj = object.clone();
    let Some(map) = obj.as_object_mut() else {
        return obj;
    };
    map.remove("status");
    if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in SERVER_METADATA {
            meta.remove(key);
        }
        strip_annotations(meta);
    }
    if let Some(templates) = map
        .get_mut("spec")
        .and_then(|s| s.get_mut("volumeClaimTemplates"))
        .and_then(Value::as_array_mut)
    {
        for t in templates.iter_mut().filter_map(Value::as_object_mut) {
            t.remove("apiVersion");
            t.remove("kind");
            t.remove("status");
            if let Some(meta) = t.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("creationTimestamp");
            }
        }
    }
    // The pod template's creationTimestamp: null from older clients.
    if let Some(meta) = map
        .get_mut("spec")
        .and_then(|s| s.get_mut("template"))
        .and_then(|t| t.get_mut("metadata"))
        .and_then(Value::as_object_mut)
    {
        meta.remove("creationTimestamp");
    }
    obj
}

fn strip_annotations(meta: &mut Map<String, Value>) {
    let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) else {
        return;
    };
    annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    annotations.remove("deployment.kubernetes.io/revision");
    annotations.remove(COMMIT_ANNOTATION);
    annotations.remove(FINGERPRINT_ANNOTATION);
    if annotations.is_empty() {
        meta.remove("annotations");
    }
}

pub const MASK: &str = "***";

/// One list of secret-looking names for diffs, summaries and diagnostics.
pub use crate::spec::secret::looks_secret;

/// Replaces literal env values with secret-looking names, credentials inside URLs in the other
/// env values, and the secrets `command` and `args` carry (`spec::secret`), in every container
/// and init container of a StatefulSet (other kinds are returned unchanged).
pub fn mask(object: &Value) -> Value {
    let mut obj = object.clone();
    let Some(pod) = obj
        .get_mut("spec")
        .and_then(|s| s.get_mut("template"))
        .and_then(|t| t.get_mut("spec"))
    else {
        return obj;
    };
    for list in ["containers", "initContainers"] {
        let Some(containers) = pod.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for container in containers.iter_mut() {
            for key in ["command", "args"] {
                if let Some(args) = container.get_mut(key).and_then(Value::as_array_mut) {
                    crate::spec::secret::mask_args(args);
                }
            }
            let Some(env) = container.get_mut("env").and_then(Value::as_array_mut) else {
                continue;
            };
            for var in env.iter_mut().filter_map(Value::as_object_mut) {
                let secret = var
                    .get("name")
                    .and_then(Value::as_str)
                    .is_some_and(looks_secret);
                let masked = match var.get("value").and_then(Value::as_str) {
                    Some(_) if secret => MASK.to_string(),
                    // Any other value may still carry a URL with credentials.
                    Some(value) => crate::spec::secret::mask_text(value),
                    None => continue,
                };
                var.insert("value".into(), Value::String(masked));
            }
        }
    }
    obj
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_noise_and_template_quirks_are_removed() {
        let live = json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "uid": "u", "resourceVersion": "7", "generation": 3,
                "creationTimestamp": "2026-01-01T00:00:00Z", "managedFields": [{}],
                "annotations": {"berth.dev/commit": "abc", "berth.dev/source": "db.toml"}},
            "spec": {"replicas": 1, "volumeClaimTemplates": [{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data", "creationTimestamp": null}, "spec": {}, "status": {"phase": "Pending"}}]},
            "status": {"replicas": 1}
        });
        let want = json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "annotations": {"berth.dev/source": "db.toml"}},
            "spec": {"replicas": 1, "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}]}
        });
        assert_eq!(normalize(&live), want);
    }

    #[test]
    fn only_the_commit_annotation_means_no_annotations() {
        let obj = json!({"metadata": {"name": "x", "annotations": {"berth.dev/commit": "abc"}}});
        assert_eq!(normalize(&obj), json!({"metadata": {"name": "x"}}));
    }

    #[test]
    fn secret_looking_literals_are_masked_and_refs_kept() {
        let sts = json!({"spec": {"template": {"spec": {
            "containers": [{"name": "db", "env": [
                {"name": "MYSQL_ROOT_PASSWORD", "value": "hunter2"},
                {"name": "api_token", "value": "t"},
                {"name": "MYSQL_DATABASE", "value": "app"},
                {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
            ]}],
            "initContainers": [{"name": "init", "env": [{"name": "SECRET_KEY", "value": "k"}]}]
        }}}});
        let masked = mask(&sts);
        let env = &masked["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(env[0]["value"], MASK);
        assert_eq!(env[1]["value"], MASK);
        assert_eq!(env[2]["value"], "app");
        assert!(env[3].get("value").is_none());
        assert_eq!(
            masked["spec"]["template"]["spec"]["initContainers"][0]["env"][0]["value"],
            MASK
        );
        assert!(
            !serde_json::to_string(&masked)
                .unwrap_or_default()
                .contains("hunter2")
        );
    }

    #[test]
    fn secrets_in_command_args_and_urls_are_masked() {
        let sts = json!({"spec": {"template": {"spec": {
            "containers": [{"name": "db",
                "command": ["sh", "-c", "PGPASSWORD=hunter2 psql"],
                "args": ["--password", "hunter2", "--port=5432"],
                "env": [{"name": "DATABASE_URL", "value": "postgres://app:hunter2@db/app"}]}]
        }}}});
        let masked = mask(&sts);
        let c = &masked["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["command"], json!(["sh", "-c", "PGPASSWORD=*** psql"]));
        assert_eq!(c["args"], json!(["--password", "***", "--port=5432"]));
        assert_eq!(c["env"][0]["value"], "postgres://app:***@db/app");
        assert!(
            !serde_json::to_string(&masked)
                .unwrap_or_default()
                .contains("hunter2")
        );
    }
}

/// True when every field of `desired` is in `live` with the same value: then the live object
/// already carries everything berth would apply. Lists must match in length and item by item.
/// The commit annotation is left out (a new commit alone is not a change).
pub fn contained_in(desired: &Value, live: &Value) -> bool {
    fn walk(d: &Value, l: &Value, path: &mut Vec<String>) -> bool {
        match (d, l) {
            (Value::Object(dm), Value::Object(lm)) => dm.iter().all(|(k, dv)| {
                if path.len() == 2
                    && path[0] == "metadata"
                    && path[1] == "annotations"
                    && k == COMMIT_ANNOTATION
                {
                    return true;
                }
                let Some(lv) = lm.get(k) else {
                    return false;
                };
                path.push(k.clone());
                let ok = walk(dv, lv, path);
                path.pop();
                ok
            }),
            (Value::Array(da), Value::Array(la)) => {
                da.len() == la.len() && da.iter().zip(la).all(|(dv, lv)| walk(dv, lv, path))
            }
            (a, b) => a == b,
        }
    }
    walk(desired, live, &mut Vec::new())
}

/// FNV-1a over the object's JSON (commit annotation left out): a stable fingerprint of what
/// berth applied, recorded on the object so an unchanged spec needs no dry-run to prove it.
pub fn fingerprint(desired: &Value) -> String {
    let mut value = desired.clone();
    fingerprint_in_place(&mut value)
}

/// [`fingerprint`] of an object the caller owns: the two annotations left out are taken off
/// and put back instead of the whole object being copied (a plan fingerprints every object it
/// renders), and the JSON is hashed as it is written, never held as text. Maps are ordered, so
/// putting an annotation back restores the object exactly.
pub fn fingerprint_in_place(value: &mut Value) -> String {
    let annotations = value
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut);
    let taken = annotations.map(|a| {
        let commit = a.remove(COMMIT_ANNOTATION);
        let print = a.remove(FINGERPRINT_ANNOTATION);
        (commit, print)
    });
    let mut hasher = Fnv1a(0xcbf2_9ce4_8422_2325);
    // Writing JSON into a hasher cannot fail (its writes always succeed).
    let _ = serde_json::to_writer(&mut hasher, &*value);
    if let Some((commit, print)) = taken
        && let Some(a) = value
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
    {
        if let Some(commit) = commit {
            a.insert(COMMIT_ANNOTATION.to_string(), commit);
        }
        if let Some(print) = print {
            a.insert(FINGERPRINT_ANNOTATION.to_string(), print);
        }
    }
    format!("{:016x}", hasher.0)
}

/// FNV-1a as an `io::Write`, so serde_json writes into the hash directly.
struct Fnv1a(u64);

impl std::io::Write for Fnv1a {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

use crate::labels::FINGERPRINT_ANNOTATION;

#[cfg(test)]
mod containment_tests {
    use super::*;
    use serde_json::json;

    /// The in-place fingerprint hashes what the copying one does (live objects carry
    /// fingerprints made by either) and leaves the object as it found it.
    #[test]
    fn fingerprint_in_place_matches_and_restores_the_object() {
        let original = json!({"metadata": {"name": "a", "annotations": {
                "berth.dev/commit": "abc", "berth.dev/applied": "old", "team": "x"}},
            "spec": {"replicas": 2}});
        let mut value = original.clone();
        assert_eq!(fingerprint_in_place(&mut value), fingerprint(&original));
        assert_eq!(value, original);
        // Left out: another commit or an older fingerprint does not change it.
        let mut other = original.clone();
        other["metadata"]["annotations"]["berth.dev/commit"] = json!("def");
        other["metadata"]["annotations"]["berth.dev/applied"] = json!("older");
        assert_eq!(fingerprint(&other), fingerprint(&original));
        other["spec"]["replicas"] = json!(3);
        assert_ne!(fingerprint(&other), fingerprint(&original));
        let bare = json!({"metadata": {"name": "a"}});
        assert_eq!(fingerprint_in_place(&mut bare.clone()), fingerprint(&bare));
    }

    #[test]
    fn live_with_server_defaults_contains_the_desired_object() {
        let desired = json!({"metadata": {"name": "a", "annotations": {"berth.dev/commit": "new"}},
            "spec": {"replicas": 2, "ports": [{"port": 80}]}});
        let live = json!({"metadata": {"name": "a", "uid": "u", "annotations": {"berth.dev/commit": "old"}},
            "spec": {"replicas": 2, "ports": [{"port": 80, "protocol": "TCP"}], "sessionAffinity": "None"}});
        assert!(contained_in(&desired, &live));
    }

    #[test]
    fn a_changed_value_or_list_length_is_not_contained() {
        let desired = json!({"spec": {"replicas": 3, "ports": [{"port": 80}]}});
        assert!(!contained_in(
            &desired,
            &json!({"spec": {"replicas": 2, "ports": [{"port": 80}]}})
        ));
        assert!(!contained_in(
            &desired,
            &json!({"spec": {"replicas": 3, "ports": [{"port": 80}, {"port": 81}]}})
        ));
        assert!(!contained_in(
            &desired,
            &json!({"spec": {"ports": [{"port": 80}]}})
        ));
    }

    #[test]
    fn fingerprints_ignore_the_commit_and_see_everything_else() {
        let a = json!({"metadata": {"annotations": {"berth.dev/commit": "1"}}, "spec": {"replicas": 1}});
        let b = json!({"metadata": {"annotations": {"berth.dev/commit": "2"}}, "spec": {"replicas": 1}});
        let c = json!({"metadata": {"annotations": {"berth.dev/commit": "2"}}, "spec": {"replicas": 2}});
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&b), fingerprint(&c));
    }
}
