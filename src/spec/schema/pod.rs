//! Schema properties of the fields beyond the console form: pod and container security,
//! scheduling, extended resources, the StatefulSet's own settings and the access Service's
//! traffic settings. [`super::schema`] merges them into its property lists.

use serde_json::{Map, Value, json};

use super::{duration, object, quantity, resource, string, string_map, strings};

fn props(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn id(desc: &str) -> Value {
    json!({ "type": "integer", "minimum": 0, "maximum": 2147483647, "description": desc })
}

fn node_expr(desc: &str, weighted: bool) -> Value {
    let mut p = json!({
        "key": string("Node label key."),
        "in": strings("The label has one of these values."),
        "not_in": strings("The label has none of these values."),
        "exists": { "type": "boolean", "description": "true: the label exists; false: it does not." },
        "gt": { "type": "integer", "description": "The label's value, a number, is greater." },
        "lt": { "type": "integer", "description": "The label's value, a number, is less." }
    });
    if weighted {
        p["weight"] = json!({ "type": "integer", "minimum": 1, "maximum": 100, "description": "Added to a node's score when the expression holds." });
    }
    object(desc, p)
}

/// Top-level keys.
pub(super) fn app_props() -> Map<String, Value> {
    props(json!({
        "security": { "enum": ["restricted"], "description": "Preset: everything the \"restricted\" Pod Security level requires (run_as_non_root, seccomp runtime-default, no privilege escalation, capabilities dropped). Explicit fields win where they stay within the level; a field that breaks it is an error." },
        "run_as_non_root": { "type": "boolean", "description": "Pod securityContext.runAsNonRoot." },
        "run_as_group": id("Pod securityContext.runAsGroup."),
        "supplemental_groups": { "type": "array", "items": id("A group id."), "description": "Pod securityContext.supplementalGroups." },
        "seccomp": { "type": "string", "pattern": "^(runtime-default|unconfined|localhost/.+)$", "description": "Seccomp profile: \"runtime-default\", \"unconfined\" or \"localhost/<path>\"." },
        "tolerations": { "type": "array", "description": "Taints the pods tolerate.", "items": object("A toleration; operator Equal with a value, Exists without.", json!({
            "key": string("Taint key; leave out (with value) to tolerate every taint."),
            "value": string("Taint value."),
            "effect": { "enum": ["NoSchedule", "PreferNoSchedule", "NoExecute"] },
            "evict_after": duration("tolerationSeconds (NoExecute only).")
        })) },
        "node_affinity": object("Node affinity.", json!({
            "required": { "type": "array", "description": "Expressions that must all hold.", "items": node_expr("A node label expression: key and one of in, not_in, exists, gt, lt.", false) },
            "preferred": { "type": "array", "description": "Weighted expressions the scheduler prefers.", "items": node_expr("A weighted node label expression.", true) }
        })),
        "prefer_spread": { "enum": ["hostname", "zone"], "description": "Preferred pod anti-affinity (weight 100) on the app's own pods. Not allowed with profile \"autopilot\"." },
        "topology_spread": { "type": "array", "description": "Topology spread constraints over the app's own pods.", "items": object("A constraint.", json!({
            "key": string("Topology key; \"zone\" and \"hostname\" stand for the well-known keys."),
            "max_skew": { "type": "integer", "minimum": 1, "description": "Default 1." },
            "when_unsatisfiable": { "enum": ["do-not-schedule", "schedule-anyway"], "description": "Default do-not-schedule." }
        })) },
        "priority_class": string("priorityClassName."),
        "min_ready": duration("minReadySeconds."),
        "start_ordinal": { "type": "integer", "minimum": 0, "description": "ordinals.start: the first pod's ordinal (default 0)." },
        "set_annotations": string_map("Annotations on the StatefulSet itself."),
        "headless_annotations": string_map("Annotations on the headless Service.")
    }))
}

/// Container keys.
pub(super) fn container_props() -> Map<String, Value> {
    props(json!({
        "ephemeral_storage": resource("Ephemeral storage: \"1Gi\" sets request = limit; or { request, limit }."),
        "resources": {
            "type": "object",
            "description": "Extended resources by name, request = limit: { \"nvidia.com/gpu\" = 1 }.",
            "additionalProperties": { "oneOf": [
                { "type": "integer", "minimum": 0 },
                quantity("A whole number.")
            ]}
        },
        "devices": {
            "type": "object",
            "description": "Block volumes (volume_mode = \"block\") by name → device path, e.g. { data = \"/dev/xvda\" }.",
            "additionalProperties": { "type": "string" }
        },
        "read_only_root": { "type": "boolean", "description": "securityContext.readOnlyRootFilesystem." },
        "allow_privilege_escalation": { "type": "boolean", "description": "securityContext.allowPrivilegeEscalation." },
        "privileged": { "type": "boolean", "description": "securityContext.privileged." },
        "capabilities": object("securityContext.capabilities.", json!({
            "add": strings("Capabilities to add, e.g. [\"NET_BIND_SERVICE\"]."),
            "drop": strings("Capabilities to drop, e.g. [\"ALL\"].")
        }))
    }))
}

/// `[service]` keys.
pub(super) fn service_props() -> Map<String, Value> {
    props(json!({
        "external_traffic_policy": { "enum": ["Cluster", "Local"], "description": "externalTrafficPolicy (NodePort and LoadBalancer)." },
        "load_balancer_source_ranges": strings("CIDR ranges allowed to reach a LoadBalancer."),
        "session_affinity": { "enum": ["None", "ClientIP"], "description": "sessionAffinity." },
        "selector": string_map("Labels selected on besides the app's own, e.g. { \"statefulset.kubernetes.io/pod-name\" = \"mysql-0\" } for the primary.")
    }))
}
