//! The JSON Schema (draft-07) of the spec format, for editors (taplo / Even Better TOML read it
//! through a `#:schema` comment). Built by hand with serde_json rather than derived: the spec's
//! "string or table" fields have custom Deserialize impls that a derive cannot describe, and a
//! hand-written schema can carry the documentation a person reads on hover.
//!
//! A unit test keeps the property lists in step with the raw serde types, and another keeps
//! config/berth.schema.json equal to this output.

use serde_json::{Value, json};

mod pod;

/// A list of RFC 6902 operations (`[patches]`).
fn patch_list() -> Value {
    json!({
        "type": "array",
        "items": {
            "type": "object",
            "required": ["op", "path"],
            "properties": {
                "op": { "enum": ["add", "remove", "replace", "move", "copy", "test"] },
                "path": { "type": "string", "description": "A JSON pointer into the rendered object, e.g. /spec/revisionHistoryLimit." },
                "from": { "type": "string" },
                "value": {}
            },
            "additionalProperties": false
        }
    })
}

/// `base` (an object schema) with `extra` added to its properties.
fn with_props(mut base: Value, extra: serde_json::Map<String, Value>) -> Value {
    if let Some(p) = base.get_mut("properties").and_then(Value::as_object_mut) {
        p.extend(extra);
    }
    base
}

fn string(desc: &str) -> Value {
    json!({ "type": "string", "description": desc })
}

fn strings(desc: &str) -> Value {
    json!({ "type": "array", "items": { "type": "string" }, "description": desc })
}

fn string_map(desc: &str) -> Value {
    json!({ "type": "object", "additionalProperties": { "type": "string" }, "description": desc })
}

fn object(desc: &str, properties: Value) -> Value {
    json!({ "type": "object", "description": desc, "properties": properties, "additionalProperties": false })
}

const NAME_PATTERN: &str = "^[a-z]([-a-z0-9]*[a-z0-9])?$";
const PORT_NAME_PATTERN: &str = "^[a-z0-9]([a-z0-9]|-(?!-))*$";

fn duration(desc: &str) -> Value {
    json!({ "type": "string", "description": format!("{desc} A duration such as \"30s\" or \"1m 30s\", whole seconds."), "examples": ["10s", "1m"] })
}

fn quantity(desc: &str) -> Value {
    json!({ "type": "string", "description": desc, "pattern": "^[+]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][-+]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$" })
}

fn resource(desc: &str) -> Value {
    json!({
        "description": desc,
        "oneOf": [
            { "type": "string", "description": "Request = limit." },
            { "type": "integer", "minimum": 0, "description": "Request = limit." },
            object("Request and limit given separately.", json!({
                "request": quantity("What the scheduler reserves."),
                "limit": quantity("The most the container may use."),
            }))
        ]
    })
}

fn int_or_percent(desc: &str) -> Value {
    json!({ "description": desc, "oneOf": [
        { "type": "integer", "minimum": 0 },
        { "type": "string", "pattern": "^[0-9]+%$" }
    ]})
}

fn port_ref(desc: &str) -> Value {
    json!({ "description": desc, "oneOf": [
        { "type": "integer", "minimum": 1, "maximum": 65535 },
        { "type": "string", "description": "The name of a port of this container." }
    ]})
}

fn http_get(desc: &str) -> Value {
    object(
        desc,
        json!({
            "path": string("Request path, default \"/\"."),
            "port": port_ref("Port number or container port name."),
            "scheme": { "enum": ["HTTP", "HTTPS", "http", "https"] },
            "headers": string_map("Request headers, e.g. { \"X-Probe\" = \"kubelet\" }.")
        }),
    )
}

fn hook(desc: &str) -> Value {
    json!({ "description": desc, "oneOf": [
        strings("A command."),
        object("A command, an HTTP GET or a sleep: exactly one.", json!({
            "exec": strings("A command."),
            "http": http_get("An HTTP GET to the container."),
            "sleep": duration("Wait this long.")
        }))
    ]})
}

fn probe(desc: &str) -> Value {
    object(
        desc,
        json!({
            "exec": strings("Run this command in the container; exit 0 is success."),
            "tcp": port_ref("Open a TCP connection to this port."),
            "http": http_get("HTTP GET; a status 200-399 is success."),
            "grpc": { "description": "gRPC health check on this port number.", "oneOf": [
                { "type": "integer", "minimum": 1, "maximum": 65535 },
                object("gRPC check with a service name.", json!({
                    "port": { "type": "integer", "minimum": 1, "maximum": 65535 },
                    "service": string("The service name sent in the health check request.")
                }))
            ]},
            "delay": duration("initialDelaySeconds: wait this long after start."),
            "period": duration("periodSeconds: how often to check."),
            "timeout": duration("timeoutSeconds: how long one check may take."),
            "failures": { "type": "integer", "minimum": 1, "description": "failureThreshold: consecutive failures before acting." },
            "success": { "type": "integer", "minimum": 1, "description": "successThreshold: consecutive successes to count as healthy (1 for liveness and startup)." }
        }),
    )
}

fn container(desc: &str) -> Value {
    with_props(container_base(desc), pod::container_props())
}

fn container_base(desc: &str) -> Value {
    object(
        desc,
        json!({
            "image": string("Image with tag or digest, e.g. \"mysql:8.4\". Required; a missing tag is a warning."),
            "pull": { "enum": ["always", "if-not-present", "never"], "description": "imagePullPolicy." },
            "cpu": resource("CPU: \"250m\" sets request = limit; or { request, limit }."),
            "memory": resource("Memory: \"512Mi\" sets request = limit; or { request, limit }."),
            "ports": {
                "type": "object",
                "description": "Container ports by name (at most 15 characters): http = 80, or \"53/udp\".",
                "propertyNames": { "maxLength": 15, "pattern": PORT_NAME_PATTERN },
                "additionalProperties": { "oneOf": [
                    { "type": "integer", "minimum": 1, "maximum": 65535 },
                    { "type": "string", "pattern": "^[0-9]+(/(tcp|udp|sctp|TCP|UDP|SCTP))?$" }
                ]}
            },
            "env": {
                "type": "object",
                "description": "Environment variables: a literal, or a reference to a Secret key, a ConfigMap key or a pod field.",
                "additionalProperties": { "oneOf": [
                    { "type": ["string", "integer", "number", "boolean"] },
                    object("A reference: { secret, key }, { config_map, key }, { field } or { resource, divisor }.", json!({
                        "secret": string("Secret name."),
                        "config_map": string("ConfigMap name."),
                        "key": string("Key inside the Secret or ConfigMap."),
                        "field": string("Pod field, e.g. metadata.name, status.podIP."),
                        "resource": { "enum": ["limits.cpu", "limits.memory", "limits.ephemeral-storage", "requests.cpu", "requests.memory", "requests.ephemeral-storage"], "description": "A resource of this container." },
                        "divisor": quantity("Unit of a resource value, e.g. \"1Mi\".")
                    }))
                ]}
            },
            "command": strings("Entrypoint (replaces the image's)."),
            "args": strings("Arguments."),
            "env_from": { "type": "array", "description": "Every key of a ConfigMap or Secret as a variable.", "items": object("One source: config_map or secret, and an optional prefix.", json!({
                "config_map": string("ConfigMap name."),
                "secret": string("Secret name."),
                "prefix": string("Put before every key.")
            })) },
            "post_start": hook("postStart hook: a command, { http = {...} } or { sleep = \"5s\" }."),
            "pre_stop": hook("preStop hook: a command, { http = {...} } or { sleep = \"5s\" }."),
            "liveness": probe("Liveness probe: restart the container when it fails."),
            "readiness": probe("Readiness probe: take the pod out of Services while it fails."),
            "startup": probe("Startup probe: hold the other probes until it succeeds."),
            "run_as_user": { "type": "integer", "minimum": 0, "description": "Container securityContext.runAsUser." },
            "mounts": {
                "type": "object",
                "description": "Volume name → mount path, or { path, sub_path, read_only }.",
                "additionalProperties": { "oneOf": [
                    { "type": "string" },
                    object("A mount with options.", json!({
                        "path": string("Absolute path in the container."),
                        "sub_path": string("Mount only this sub-directory of the volume."),
                        "read_only": { "type": "boolean" }
                    }))
                ]}
            }
        }),
    )
}

fn keyed(kind: &str) -> Value {
    json!({ "description": format!("{kind} name, or a table with the keys to project and the file mode."), "oneOf": [
        { "type": "string" },
        object(&format!("A {kind} volume with options."), json!({
            "name": string(&format!("{kind} name.")),
            "items": string_map("Key → path inside the mount; only these keys are projected."),
            "default_mode": { "type": "integer", "minimum": 0, "maximum": 511, "description": "File mode, e.g. 0o440." }
        }))
    ]})
}

fn volumes() -> Value {
    json!({
        "type": "object",
        "description": "Volumes by name: `size` makes a volumeClaimTemplate (one PVC per pod); the other kinds are pod volumes.",
        "propertyNames": { "maxLength": 63, "pattern": NAME_PATTERN },
        "additionalProperties": object("A volume: exactly one of size, empty_dir, config_map, secret, host_path, claim.", json!({
            "size": quantity("Claim size, e.g. \"20Gi\"."),
            "class": string("StorageClass (claims only); default: the cluster default."),
            "access": { "description": "Access modes (claims only); default ReadWriteOnce.", "oneOf": [
                { "enum": ["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"] },
                { "type": "array", "items": { "enum": ["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"] } }
            ]},
            "empty_dir": { "description": "A scratch volume.", "oneOf": [
                { "type": "boolean" },
                object("Scratch volume options.", json!({
                    "medium": string("\"Memory\" for tmpfs."),
                    "size_limit": quantity("Size limit.")
                }))
            ]},
            "config_map": keyed("ConfigMap"),
            "secret": keyed("Secret"),
            "host_path": string("Absolute path on the node."),
            "claim": string("An existing PersistentVolumeClaim, shared by every pod."),
            "read_only": { "type": "boolean", "description": "Mount the existing claim read-only (claim only)." },
            "volume_mode": { "enum": ["filesystem", "block"], "description": "Claims only: \"block\" gives a raw device, used through a container's `devices`." },
            "data_source": object("Claims only: where a new claim's data comes from.", json!({
                "snapshot": string("A VolumeSnapshot to restore."),
                "claim": string("A PersistentVolumeClaim to clone.")
            }))
        }))
    })
}

fn service() -> Value {
    with_props(service_base(), pod::service_props())
}

/// `[services.NAME]`: `[service]` named by its key.
fn named_services() -> Value {
    let mut one = service();
    if let Some(p) = one.get_mut("properties").and_then(Value::as_object_mut) {
        p.remove("name");
    }
    one["description"] = json!("A further access Service, named by its key.");
    json!({
        "type": "object",
        "description": "More access Services by name (a read/write split): each like [service], named by its key.",
        "propertyNames": { "maxLength": 63, "pattern": NAME_PATTERN },
        "additionalProperties": one
    })
}

fn service_base() -> Value {
    object(
        "Optional access Service; the headless Service always exists.",
        json!({
            "name": { "type": "string", "maxLength": 63, "pattern": NAME_PATTERN, "description": "Default: the app name." },
            "type": { "enum": ["ClusterIP", "NodePort", "LoadBalancer"], "description": "Default ClusterIP." },
            "ports": {
                "type": "object",
                "description": "Service ports by name: mysql = 3306 targets the container port named mysql; or { port, target, node_port }.",
                "propertyNames": { "maxLength": 15, "pattern": PORT_NAME_PATTERN },
                "additionalProperties": { "oneOf": [
                    { "type": "integer", "minimum": 1, "maximum": 65535 },
                    object("A port with an explicit target or node port.", json!({
                        "port": { "type": "integer", "minimum": 1, "maximum": 65535 },
                        "target": port_ref("Container port number or name; default: the container port named like this key."),
                        "node_port": { "type": "integer", "minimum": 30000, "maximum": 32767 }
                    }))
                ]}
            },
            "annotations": string_map("Service annotations (e.g. for a cloud load balancer).")
        }),
    )
}

/// The schema document.
pub fn schema() -> Value {
    let containers = |desc: &str| {
        json!({
            "type": "object",
            "description": desc,
            "propertyNames": { "maxLength": 63, "pattern": NAME_PATTERN },
            "additionalProperties": container("A container.")
        })
    };
    let mut doc = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://berth.dev/schema/app.json",
        "title": "berth app spec",
        "description": "One stateful app: a StatefulSet, its headless Service, an optional access Service and PodDisruptionBudget. The app name is the file stem unless `name` is set.",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "name": { "type": "string", "maxLength": 52, "pattern": NAME_PATTERN, "description": "App (StatefulSet) name; default: the file stem. At most 52 characters (kubernetes issue 64023)." },
            "namespace": string("Namespace; default: the daemon config's defaults.namespace, else \"default\"."),
            "replicas": { "description": "Number of pods (default 1), or \"external\": an autoscaler or an operator sets the count and berth never sends it.", "oneOf": [
                { "type": "integer", "minimum": 0 },
                { "const": "external" }
            ]},
            "pod_management": { "enum": ["ordered", "parallel"], "description": "OrderedReady (default) or Parallel." },
            "update": {
                "description": "Update strategy: \"rolling\" (default) or \"on-delete\", or a table.",
                "oneOf": [
                    { "enum": ["rolling", "on-delete"] },
                    object("Rolling update settings.", json!({
                        "strategy": { "enum": ["rolling", "on-delete"] },
                        "partition": { "type": "integer", "minimum": 0, "description": "Only pods with an ordinal ≥ partition are updated." },
                        "max_unavailable": int_or_percent("Pods that may be down during the update.")
                    }))
                ]
            },
            "labels": string_map("Labels added to the pods and every object."),
            "annotations": string_map("Pod annotations."),
            "pull_secrets": strings("Image pull secrets; default: the daemon config's defaults.pull_secrets."),
            "run_as_user": { "type": "integer", "minimum": 0, "description": "Pod securityContext.runAsUser." },
            "fs_group": { "type": "integer", "minimum": 0, "description": "Pod securityContext.fsGroup." },
            "dns": object("Pod DNS policy and config.", json!({
                "policy": { "enum": ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"] },
                "nameservers": { "type": "array", "items": { "type": "string" }, "maxItems": 3 },
                "searches": strings("Search domains."),
                "options": { "type": "object", "additionalProperties": { "type": ["string", "integer"] }, "description": "resolv.conf options, e.g. { ndots = \"2\" }; an empty string means no value." }
            })),
            "headless": { "type": "string", "maxLength": 63, "pattern": NAME_PATTERN, "description": "Headless Service name; default \"<app>-headless\"." },
            "termination_grace": duration("terminationGracePeriodSeconds."),
            "service_account": string("serviceAccountName."),
            "node_selector": string_map("Node labels the pods must run on."),
            "spread": { "enum": ["hostname", "zone"], "description": "At most one pod per node (hostname) or per zone: required pod anti-affinity. Not allowed with profile \"autopilot\"." },
            "disruption_budget": object("PodDisruptionBudget: exactly one of the two.", json!({
                "max_unavailable": int_or_percent("Pods that may be evicted at once."),
                "min_available": int_or_percent("Pods that must stay up.")
            })),
            "allow_recreate": { "type": "boolean", "description": "Allow berth to recreate the StatefulSet (without an outage) when an immutable field changes." },
            "abandon_claims": { "type": "boolean", "description": "Also allow a recreate that moves the pods onto new, empty claims (a volume renamed or no longer declared); the old claims are kept, unused." },
            "adopt": { "type": "boolean", "description": "Allow berth to take over existing objects of the same name it did not create." },
            "patches": {
                "type": "object",
                "additionalProperties": false,
                "description": "RFC 6902 JSON patch operations applied to the rendered objects, for fields the spec cannot express; shown in the diff like any change.",
                "properties": {
                    "statefulset": patch_list(),
                    "headless": patch_list(),
                    "service": patch_list(),
                    "services": {
                        "type": "object",
                        "description": "Per [services.NAME], by its name.",
                        "additionalProperties": patch_list()
                    },
                    "budget": patch_list()
                }
            },
            "after": { "type": "array", "items": { "type": "string", "pattern": "^([a-z0-9]([-a-z0-9]*[a-z0-9])?/)?[a-z]([-a-z0-9]*[a-z0-9])?$" }, "description": "Apps this one is created and updated after, once they are healthy: NAMESPACE/NAME, or NAME in this app's namespace." },
            "suspend": { "type": "boolean", "description": "Leave the app entirely alone: no writes, no drift correction, no removal (berth diff and status say so)." },
            "init_containers": containers("Init containers, run in order before the containers. No probes or lifecycle hooks."),
            "containers": containers("Containers by name. At least one."),
            "volumes": volumes(),
            "service": service(),
            "services": named_services(),
        },
        "required": ["containers"]
    });
    if let Some(p) = doc.get_mut("properties").and_then(Value::as_object_mut) {
        p.extend(pod::app_props());
    }
    doc
}

/// The schema as berth prints it (`berth schema`) and as config/berth.schema.json holds it.
pub fn schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&schema()).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::raw::{RawApp, RawContainer, RawProbe, RawService, RawVolume};
    use serde::de::DeserializeOwned;

    /// The field list serde knows for `T`, read from its own "unknown field" error.
    fn fields<T: DeserializeOwned>() -> Vec<String> {
        let err = toml::from_str::<T>("__probe__ = 1")
            .err()
            .map(|e| e.message().to_string())
            .unwrap_or_default();
        let (_, list) = err.split_once("expected one of ").unwrap_or(("", ""));
        let mut out: Vec<String> = list
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        out.sort();
        out
    }

    fn props(v: &Value) -> Vec<String> {
        let mut out: Vec<String> = v["properties"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        out.sort();
        out
    }

    #[test]
    fn schema_matches_the_serde_types() {
        let s = schema();
        assert_eq!(props(&s), fields::<RawApp>());
        let container = &s["properties"]["containers"]["additionalProperties"];
        assert_eq!(props(container), fields::<RawContainer>());
        assert_eq!(
            props(&container["properties"]["liveness"]),
            fields::<RawProbe>()
        );
        assert_eq!(
            props(&s["properties"]["volumes"]["additionalProperties"]),
            fields::<RawVolume>()
        );
        assert_eq!(props(&s["properties"]["service"]), fields::<RawService>());
        let mut named = fields::<RawService>();
        named.retain(|f| f != "name");
        assert_eq!(
            props(&s["properties"]["services"]["additionalProperties"]),
            named
        );
        assert!(fields::<RawApp>().len() > 20, "probe read the field list");
    }

    #[test]
    fn every_object_forbids_unknown_keys() {
        fn walk(v: &Value, path: &str) {
            if let Some(o) = v.as_object() {
                if o.contains_key("properties") {
                    assert_eq!(
                        o.get("additionalProperties"),
                        Some(&Value::Bool(false)),
                        "{path}"
                    );
                }
                for (k, child) in o {
                    walk(child, &format!("{path}/{k}"));
                }
            } else if let Some(a) = v.as_array() {
                for (i, child) in a.iter().enumerate() {
                    walk(child, &format!("{path}/{i}"));
                }
            }
        }
        walk(&schema(), "");
    }

    #[test]
    fn checked_in_schema_is_current() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/berth.schema.json");
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == schema_text(),
            "config/berth.schema.json is stale: run `cargo run -- schema > config/berth.schema.json`"
        );
    }
}
