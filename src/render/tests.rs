//! Rendering rules (selectors, ownership, immutability, server-side-apply completeness) and
//! snapshots of the YAML of every valid fixture.

use std::path::Path;

use serde_json::Value;

use super::*;
use crate::config::Config;
use crate::labels::{
    APP_INSTANCE_LABEL, INSTANCE_LABEL, MANAGED_BY_LABEL, NAME_LABEL, owner_selector,
};
use crate::spec::{App, check_source};

const COMMIT: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

fn app_from(text: &str, file: &str) -> App {
    let c = check_source(Path::new(file), Path::new(file), text, &Config::fixtures());
    c.app.unwrap_or_else(|| panic!("{:?}", c.diagnostics))
}

fn fixture(name: &str) -> App {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/valid")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    app_from(&text, name)
}

fn ctx(app: &App) -> RenderContext {
    RenderContext::new("default", app).with_commit(Some(COMMIT.to_string()))
}

fn labels(v: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(v.clone()).unwrap_or_default()
}

#[test]
fn selector_labels_are_name_and_instance_only() {
    let s = selector_labels("mysql", "blue");
    assert_eq!(s.len(), 2);
    assert_eq!(s.get(NAME_LABEL).map(String::as_str), Some("mysql"));
    assert_eq!(s.get(APP_INSTANCE_LABEL).map(String::as_str), Some("blue"));
    assert_eq!(
        owner_selector("blue"),
        "app.kubernetes.io/managed-by=berth,berth.dev/instance=blue"
    );
}

#[test]
fn every_object_is_owned_and_annotated() {
    let app = fixture("mysql-full.toml");
    let r = render_app(&app, &ctx(&app));
    let values = r.to_values();
    assert_eq!(values.len(), 4);
    for v in &values {
        let l = labels(&v["metadata"]["labels"]);
        assert_eq!(
            l.get(MANAGED_BY_LABEL).map(String::as_str),
            Some("berth"),
            "{}",
            v["kind"]
        );
        assert_eq!(l.get(INSTANCE_LABEL).map(String::as_str), Some("default"));
        assert_eq!(
            l.get("team").map(String::as_str),
            Some("payments"),
            "user labels on every object"
        );
        assert_eq!(
            v["metadata"]["annotations"][SOURCE_ANNOTATION],
            "mysql-full.toml"
        );
        assert_eq!(v["metadata"]["annotations"][COMMIT_ANNOTATION], COMMIT);
        assert_eq!(v["metadata"]["namespace"], "payments");
        assert!(v["apiVersion"].is_string() && v["kind"].is_string());
    }
    let kinds: Vec<_> = values
        .iter()
        .map(|v| v["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        kinds,
        ["Service", "StatefulSet", "Service", "PodDisruptionBudget"]
    );
}

#[test]
fn selectors_match_the_pod_labels() {
    for name in ["mysql-full.toml", "zookeeper-nodeport.toml", "nginx.toml"] {
        let app = fixture(name);
        let r = render_app(&app, &ctx(&app));
        let sts = to_value(&r.statefulset);
        let pod = labels(&sts["spec"]["template"]["metadata"]["labels"]);
        let mut selectors = vec![
            labels(&sts["spec"]["selector"]["matchLabels"]),
            labels(&to_value(&r.headless)["spec"]["selector"]),
        ];
        if let Some(s) = &r.service {
            selectors.push(labels(&to_value(s)["spec"]["selector"]));
        }
        if let Some(p) = &r.pdb {
            selectors.push(labels(&to_value(p)["spec"]["selector"]["matchLabels"]));
        }
        for sel in selectors {
            assert_eq!(sel, selector_labels(&app.name, "default"), "{name}");
            assert!(
                sel.iter().all(|(k, v)| pod.get(k) == Some(v)),
                "{name}: selector {sel:?} does not match pods {pod:?}"
            );
        }
    }
}

#[test]
fn a_new_commit_changes_no_pod_template_and_no_immutable_field() {
    let app = fixture("mysql-full.toml");
    let a = to_value(
        &render_app(
            &app,
            &RenderContext::new("default", &app).with_commit(Some("aaa".into())),
        )
        .statefulset,
    );
    let b = to_value(
        &render_app(
            &app,
            &RenderContext::new("default", &app).with_commit(Some("bbb".into())),
        )
        .statefulset,
    );
    for field in [
        "template",
        "selector",
        "volumeClaimTemplates",
        "serviceName",
        "podManagementPolicy",
    ] {
        assert_eq!(a["spec"][field], b["spec"][field], "{field}");
    }
    assert_ne!(a["metadata"]["annotations"], b["metadata"]["annotations"]);
    let template_annotations = labels(&a["spec"]["template"]["metadata"]["annotations"]);
    assert!(
        template_annotations
            .keys()
            .all(|k| !k.starts_with("berth.dev/"))
    );
    // Claim templates carry only the name and the selector labels.
    for vct in a["spec"]["volumeClaimTemplates"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let meta = vct["metadata"]
            .as_object()
            .map(|m| m.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default();
        assert_eq!(meta, ["labels", "name"]);
        assert_eq!(
            labels(&vct["metadata"]["labels"]),
            selector_labels(&app.name, "default")
        );
    }
}

#[test]
fn user_labels_stay_out_of_immutable_fields() {
    let with = app_from(
        "labels = { team = \"a\" }\n[containers.c]\nimage = \"x:1\"\nmounts = { d = \"/d\" }\n[volumes.d]\nsize = \"1Gi\"\n",
        "x.toml",
    );
    let without = app_from(
        "[containers.c]\nimage = \"x:1\"\nmounts = { d = \"/d\" }\n[volumes.d]\nsize = \"1Gi\"\n",
        "x.toml",
    );
    let a = to_value(&render_app(&with, &RenderContext::new("default", &with)).statefulset);
    let b = to_value(&render_app(&without, &RenderContext::new("default", &without)).statefulset);
    assert_eq!(a["spec"]["selector"], b["spec"]["selector"]);
    assert_eq!(
        a["spec"]["volumeClaimTemplates"],
        b["spec"]["volumeClaimTemplates"]
    );
    assert_ne!(a["spec"]["template"], b["spec"]["template"]);
}

#[test]
fn statefulset_essentials() {
    let app = fixture("mysql-full.toml");
    let sts = to_value(&render_app(&app, &ctx(&app)).statefulset);
    let spec = &sts["spec"];
    assert_eq!(spec["serviceName"], "mysql-peers");
    assert_eq!(spec["replicas"], 3);
    assert_eq!(spec["podManagementPolicy"], "OrderedReady");
    assert_eq!(
        spec["persistentVolumeClaimRetentionPolicy"]["whenDeleted"],
        "Retain"
    );
    assert_eq!(
        spec["persistentVolumeClaimRetentionPolicy"]["whenScaled"],
        "Retain"
    );
    assert_eq!(spec["updateStrategy"]["type"], "RollingUpdate");
    assert_eq!(spec["updateStrategy"]["rollingUpdate"]["maxUnavailable"], 1);
    let vct = &spec["volumeClaimTemplates"][0];
    assert_eq!(vct["spec"]["storageClassName"], "csi-disk");
    assert_eq!(vct["spec"]["resources"]["requests"]["storage"], "20Gi");
    assert_eq!(vct["spec"]["accessModes"][0], "ReadWriteOnce");
    let pod = &spec["template"]["spec"];
    assert_eq!(
        pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"],
        "kubernetes.io/hostname"
    );
    assert_eq!(pod["securityContext"]["runAsUser"], 999);
    assert_eq!(pod["securityContext"]["fsGroup"], 1000);
    assert_eq!(pod["terminationGracePeriodSeconds"], 60);
    assert_eq!(pod["serviceAccountName"], "mysql");
    assert_eq!(pod["imagePullSecrets"][0]["name"], "default-secret");
    assert_eq!(pod["dnsPolicy"], "ClusterFirst");
    assert_eq!(pod["dnsConfig"]["options"][0]["name"], "ndots");
    let c = &pod["containers"][0];
    assert_eq!(c["resources"]["requests"]["cpu"], "500m");
    assert_eq!(c["resources"]["limits"]["cpu"], "2");
    assert_eq!(c["resources"]["requests"]["memory"], "2Gi");
    assert_eq!(c["resources"]["limits"]["memory"], "2Gi");
    assert_eq!(c["env"][1]["valueFrom"]["secretKeyRef"]["key"], "root");
    assert_eq!(
        c["lifecycle"]["preStop"]["exec"]["command"][2],
        "mysqladmin shutdown"
    );
    assert_eq!(c["livenessProbe"]["tcpSocket"]["port"], 3306);
    assert_eq!(c["livenessProbe"]["initialDelaySeconds"], 30);
    assert_eq!(c["startupProbe"]["failureThreshold"], 30);
    assert_eq!(c["volumeMounts"][0]["subPath"], "mysql");
    // Claim volumes are templates, not pod volumes.
    let pod_volumes: Vec<_> = pod["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| v["name"].clone())
        .collect();
    assert_eq!(pod_volumes, ["conf", "config-map"]);
    assert_eq!(pod["initContainers"][0]["name"], "fix-perms");
}

#[test]
fn services() {
    let app = fixture("zookeeper-nodeport.toml");
    let r = render_app(&app, &ctx(&app));
    let headless = to_value(&r.headless);
    assert_eq!(headless["spec"]["clusterIP"], "None");
    assert_eq!(headless["spec"]["publishNotReadyAddresses"], true);
    let names: Vec<_> = headless["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| p["name"].clone())
        .collect();
    assert_eq!(names, ["client", "server", "leader-election"]);
    let svc = to_value(&r.service.unwrap_or_else(|| panic!("service")));
    assert_eq!(svc["metadata"]["name"], "zookeeper-nodeport");
    assert_eq!(svc["spec"]["type"], "NodePort");
    let ports = &svc["spec"]["ports"];
    assert_eq!(ports[0]["targetPort"], "client");
    assert_eq!(ports[0]["nodePort"], 30182);
    assert_eq!(ports[1]["targetPort"], 2181);
    assert_eq!(ports[2]["targetPort"], "server");
    let pdb = to_value(&r.pdb.unwrap_or_else(|| panic!("pdb")));
    assert_eq!(pdb["apiVersion"], "policy/v1");
    assert_eq!(pdb["spec"]["minAvailable"], "60%");
}

#[test]
fn udp_ports_keep_their_protocol() {
    let app = fixture("udp-ports.toml");
    let r = render_app(&app, &ctx(&app));
    let svc = to_value(&r.service.unwrap_or_else(|| panic!("service")));
    assert_eq!(svc["spec"]["ports"][0]["protocol"], "UDP");
    assert_eq!(svc["spec"]["ports"][1]["protocol"], "TCP");
}

/// Under server-side apply every field sent is owned: no zero ports, no empty selectors, no
/// `status`, nothing berth does not mean.
#[test]
fn nothing_is_left_at_a_meaningless_default() {
    fn walk(v: &Value, path: &str) {
        match v {
            Value::Object(o) => {
                for (k, child) in o {
                    let p = format!("{path}.{k}");
                    if matches!(
                        k.as_str(),
                        "port" | "containerPort" | "targetPort" | "nodePort"
                    ) {
                        assert_ne!(child, &Value::from(0), "{p}");
                    }
                    if matches!(k.as_str(), "selector" | "matchLabels" | "labels") {
                        assert!(
                            child.as_object().is_some_and(|m| !m.is_empty()),
                            "{p} is empty"
                        );
                    }
                    assert_ne!(k, "status", "{p}");
                    assert!(!child.is_null(), "{p} is null");
                    walk(child, &p);
                }
            }
            Value::Array(a) => {
                assert!(!a.is_empty(), "{path} is an empty list");
                for (i, child) in a.iter().enumerate() {
                    walk(child, &format!("{path}[{i}]"));
                }
            }
            _ => {}
        }
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let app = fixture(&name);
        for v in render_app(&app, &ctx(&app)).to_values() {
            walk(&v, &format!("{name}:{}", v["kind"]));
        }
        seen += 1;
    }
    assert!(seen >= 8);
}

#[test]
fn yaml_parses_back_to_the_same_objects() {
    let apps: Vec<App> = ["mysql-full.toml", "env-kinds.toml", "volume-kinds.toml"]
        .iter()
        .map(|n| fixture(n))
        .collect();
    let rendered: Vec<Rendered> = apps.iter().map(|a| render_app(a, &ctx(a))).collect();
    let yaml = render_yaml(&rendered);
    let docs: Vec<Value> = yaml
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_saphyr::from_str(d).unwrap_or_else(|e| panic!("{e}\n{d}")))
        .collect();
    let expected: Vec<Value> = rendered.iter().flat_map(Rendered::to_values).collect();
    assert_eq!(docs, expected);
    // Strings that look like other YAML types stay strings.
    assert!(
        yaml.contains("value: \"8080\"") || yaml.contains("value: '8080'"),
        "{yaml}"
    );
}

/// `Rendered::write_yaml` writes an unpatched app's objects from their types, not from their
/// JSON values; the two must be the same text for every kind of field the fixtures have.
#[test]
fn typed_yaml_is_the_yaml_of_the_values() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let mut unpatched = 0;
    for path in files {
        let text = std::fs::read_to_string(&path).expect("fixture");
        let file = Path::new(path.file_name().expect("name"));
        let app = check_source(&path, file, &text, &Config::fixtures())
            .app
            .unwrap_or_else(|| panic!("{} is invalid", path.display()));
        let rendered = render_app(&app, &ctx(&app));
        unpatched += usize::from(rendered.patches.is_empty());
        let from_values: String = rendered
            .to_values()
            .iter()
            .map(|v| format!("---\n{}", to_yaml(v)))
            .collect();
        let mut written = String::new();
        rendered.write_yaml(&mut written);
        assert_eq!(written, from_values, "{}", path.display());
    }
    assert!(
        unpatched >= 10,
        "the fixtures are mostly unpatched apps: {unpatched}"
    );
}

#[test]
fn valid_fixture_yaml() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    insta::glob!("../../tests/fixtures/valid", "*.toml", |path| {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let file = Path::new(path.file_name().unwrap_or_default());
        let rel = path.strip_prefix(root).unwrap_or(path);
        let checked = check_source(rel, file, &text, &Config::fixtures());
        assert!(
            checked.diagnostics.iter().all(|d| !d.is_error()),
            "{:?}",
            checked.diagnostics
        );
        let app = checked
            .app
            .unwrap_or_else(|| panic!("{} is invalid", rel.display()));
        let yaml = render_yaml(&[render_app(&app, &ctx(&app))]);
        insta::assert_snapshot!(yaml);
    });
}

/// Issue 13: with `replicas = "external"` an autoscaler or operator owns the count, so the
/// StatefulSet is sent without the field and no apply claims it.
#[test]
fn external_replicas_are_never_sent() {
    let app = app_from(
        "replicas = \"external\"\n[containers.web]\nimage = \"nginx:1.27\"\n",
        "web.toml",
    );
    let sts = serde_json::to_value(render_app(&app, &ctx(&app)).statefulset).expect("json");
    assert!(sts["spec"].get("replicas").is_none(), "{sts}");
    let counted = app_from(
        "replicas = 0\n[containers.web]\nimage = \"nginx:1.27\"\n",
        "web.toml",
    );
    let sts = serde_json::to_value(render_app(&counted, &ctx(&counted)).statefulset).expect("json");
    assert_eq!(sts["spec"]["replicas"], 0);
}

/// The restricted preset fills in what the level needs on every container, init containers
/// too, and keeps what the spec chose within the level.
#[test]
fn the_restricted_preset_fills_every_container_and_keeps_explicit_fields() {
    let app = app_from(
        "security = \"restricted\"\nseccomp = \"localhost/audit.json\"\n\
         [init_containers.init]\nimage = \"busybox:1.36\"\n\
         [containers.web]\nimage = \"nginx:1.27\"\ncapabilities = { add = [\"NET_BIND_SERVICE\"] }\n",
        "web.toml",
    );
    let sts = serde_json::to_value(render_app(&app, &ctx(&app)).statefulset).expect("json");
    let pod = &sts["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"],
        serde_json::json!({"type": "Localhost", "localhostProfile": "audit.json"})
    );
    for c in [&pod["initContainers"][0], &pod["containers"][0]] {
        assert_eq!(
            c["securityContext"]["allowPrivilegeEscalation"], false,
            "{c}"
        );
        assert_eq!(
            c["securityContext"]["capabilities"]["drop"],
            serde_json::json!(["ALL"]),
            "{c}"
        );
    }
    assert_eq!(
        pod["containers"][0]["securityContext"]["capabilities"]["add"],
        serde_json::json!(["NET_BIND_SERVICE"])
    );
}
