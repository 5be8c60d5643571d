//! Server defaults: the values the API server fills in when a manifest leaves them out.
//! [`strip_server_defaults`] removes them, so that a live object and a rendered one compare on
//! what someone chose, and an import does not turn a server default into a spec field.

use serde_json::{Map, Value};

use crate::plan::normalize;

/// Removes `key` when it holds the server's default value.
fn remove_if(map: &mut Map<String, Value>, key: &str, default: &Value) {
    if map.get(key) == Some(default) {
        map.remove(key);
    }
}

fn obj_mut<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    v.get_mut(key).and_then(Value::as_object_mut)
}

/// Removes `key` when it holds an empty object or list, or null: nothing was chosen there.
fn remove_if_empty(map: &mut Map<String, Value>, key: &str) {
    let empty = match map.get(key) {
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Null) => true,
        _ => false,
    };
    if empty {
        map.remove(key);
    }
}

/// The pull policy Kubernetes picks when none is given: Always for `:latest` or an untagged
/// image, IfNotPresent otherwise.
fn default_pull(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn strip_probe(p: &mut Map<String, Value>) {
    for (key, default) in [
        ("initialDelaySeconds", 0),
        ("timeoutSeconds", 1),
        ("periodSeconds", 10),
        ("successThreshold", 1),
        ("failureThreshold", 3),
    ] {
        remove_if(p, key, &Value::from(default));
    }
    if let Some(http) = p.get_mut("httpGet").and_then(Value::as_object_mut) {
        remove_if(http, "scheme", &Value::from("HTTP"));
    }
    if let Some(grpc) = p.get_mut("grpc").and_then(Value::as_object_mut) {
        remove_if(grpc, "service", &Value::from(""));
    }
}

fn strip_container(c: &mut Map<String, Value>) {
    remove_if(
        c,
        "terminationMessagePath",
        &Value::from("/dev/termination-log"),
    );
    remove_if(c, "terminationMessagePolicy", &Value::from("File"));
    if let Some(image) = c.get("image").and_then(Value::as_str) {
        let pull = Value::from(default_pull(image));
        remove_if(c, "imagePullPolicy", &pull);
    }
    for port in c
        .get_mut("ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
    {
        remove_if(port, "protocol", &Value::from("TCP"));
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).and_then(Value::as_object_mut) {
            strip_probe(p);
        }
    }
    let name = c.get("name").cloned().unwrap_or(Value::Null);
    for var in c
        .get_mut("env")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(field) = var
            .get_mut("valueFrom")
            .and_then(|f| f.get_mut("fieldRef"))
            .and_then(Value::as_object_mut)
        {
            remove_if(field, "apiVersion", &Value::from("v1"));
        }
        if let Some(resource) = var
            .get_mut("valueFrom")
            .and_then(|f| f.get_mut("resourceFieldRef"))
            .and_then(Value::as_object_mut)
        {
            // A divisor of "0" stands for none; the container is this one.
            remove_if(resource, "divisor", &Value::from("0"));
            remove_if(resource, "containerName", &Value::from(""));
            remove_if(resource, "containerName", &name);
        }
    }
    for hook in ["postStart", "preStop"] {
        if let Some(get) = c
            .get_mut("lifecycle")
            .and_then(|l| l.get_mut(hook))
            .and_then(|h| h.get_mut("httpGet"))
            .and_then(Value::as_object_mut)
        {
            remove_if(get, "scheme", &Value::from("HTTP"));
        }
    }
    remove_if_empty(c, "resources");
    remove_if_empty(c, "securityContext");
}

fn strip_pod_spec(pod: &mut Map<String, Value>) {
    remove_if(pod, "restartPolicy", &Value::from("Always"));
    remove_if(pod, "terminationGracePeriodSeconds", &Value::from(30));
    remove_if(pod, "dnsPolicy", &Value::from("ClusterFirst"));
    remove_if(pod, "schedulerName", &Value::from("default-scheduler"));
    remove_if(pod, "enableServiceLinks", &Value::from(true));
    remove_if_empty(pod, "securityContext");
    // The deprecated alias the server fills in from serviceAccountName.
    if pod.get("serviceAccount") == pod.get("serviceAccountName") {
        pod.remove("serviceAccount");
    }
    for list in ["containers", "initContainers"] {
        for c in pod
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
            .filter_map(Value::as_object_mut)
        {
            strip_container(c);
        }
    }
    for v in pod
        .get_mut("volumes")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
    {
        for source in ["configMap", "secret"] {
            if let Some(s) = v.get_mut(source).and_then(Value::as_object_mut) {
                remove_if(s, "defaultMode", &Value::from(420));
            }
        }
        if let Some(h) = v.get_mut("hostPath").and_then(Value::as_object_mut) {
            remove_if(h, "type", &Value::from(""));
        }
    }
}

fn strip_statefulset(spec: &mut Map<String, Value>) {
    remove_if(spec, "revisionHistoryLimit", &Value::from(10));
    remove_if(spec, "podManagementPolicy", &Value::from("OrderedReady"));
    remove_if(spec, "minReadySeconds", &Value::from(0));
    if let Some(strategy) = spec
        .get_mut("updateStrategy")
        .and_then(Value::as_object_mut)
    {
        if let Some(rolling) = strategy
            .get_mut("rollingUpdate")
            .and_then(Value::as_object_mut)
        {
            // The server fills in partition 0 and maxUnavailable 1 only when rollingUpdate is
            // given at all, and a spec that gives neither renders no rollingUpdate. So the
            // partition stays (it keeps rollingUpdate present), and maxUnavailable 1 goes only
            // beside it.
            if rolling.contains_key("partition") {
                remove_if(rolling, "maxUnavailable", &Value::from(1));
            }
        }
        remove_if_empty(strategy, "rollingUpdate");
    }
    for t in spec
        .get_mut("volumeClaimTemplates")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(s) = obj_mut(t, "spec") {
            remove_if(s, "volumeMode", &Value::from("Filesystem"));
            // The server mirrors dataSource into dataSourceRef.
            if let Some(source) = s.get("dataSource").cloned() {
                remove_if(s, "dataSourceRef", &source);
            }
        }
    }
    if let Some(pod) = spec
        .get_mut("template")
        .and_then(|t| t.get_mut("spec"))
        .and_then(Value::as_object_mut)
    {
        strip_pod_spec(pod);
    }
}

fn strip_service(spec: &mut Map<String, Value>) {
    remove_if(spec, "sessionAffinity", &Value::from("None"));
    // With ClientIP the server fills in the default stickiness of three hours.
    remove_if(
        spec,
        "sessionAffinityConfig",
        &serde_json::json!({"clientIP": {"timeoutSeconds": 10800}}),
    );
    remove_if(spec, "internalTrafficPolicy", &Value::from("Cluster"));
    remove_if(spec, "externalTrafficPolicy", &Value::from("Cluster"));
    remove_if(spec, "allocateLoadBalancerNodePorts", &Value::from(true));
    remove_if(spec, "ipFamilyPolicy", &Value::from("SingleStack"));
    // Allocated by the API server for a LoadBalancer with externalTrafficPolicy Local, as its
    // node ports are; pinned in a spec it would clash in another namespace or cluster.
    spec.remove("healthCheckNodePort");
    spec.remove("ipFamilies");
    // Allocated addresses are the server's; only "None" (headless) is a choice.
    if spec.get("clusterIP").and_then(Value::as_str) != Some("None") {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    } else {
        remove_if(spec, "clusterIPs", &serde_json::json!(["None"]));
    }
}

/// The object without server noise ([`normalize`]) and without the values the API server fills
/// in when they are not given (probe timings, pull policy for a tagged image, partition 0, …).
/// What is left is what someone chose; two objects that compare equal after this are stored
/// alike by the server.
pub fn strip_server_defaults(object: &Value) -> Value {
    let mut v = normalize(object);
    let kind = v
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(spec) = obj_mut(&mut v, "spec") {
        match kind.as_str() {
            "StatefulSet" => strip_statefulset(spec),
            "Service" => strip_service(spec),
            _ => {}
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_pull_policy_follows_the_tag() {
        assert_eq!(default_pull("nginx"), "Always");
        assert_eq!(default_pull("nginx:latest"), "Always");
        assert_eq!(default_pull("registry:5000/nginx"), "Always");
        assert_eq!(default_pull("registry:5000/nginx:1.2"), "IfNotPresent");
        assert_eq!(default_pull("redis@sha256:abc"), "IfNotPresent");
    }
}
