//! One failing and one passing case per rule, the 52/53, 63/64 and 15/16 edges, directory
//! loading, and snapshots of the diagnostics of every bad fixture.

use std::path::Path;

use super::*;
use crate::config::{Config, Profile};

const CONTAINER: &str = "[containers.app]\nimage = \"busybox:1.36\"\n";

/// A spec with `top` as top-level keys, one valid container, then `rest` (more tables).
fn spec(top: &str, rest: &str) -> String {
    format!("{top}\n{CONTAINER}{rest}")
}

fn check_with(text: &str, config: &Config) -> Checked {
    check_source(
        Path::new("apps/app.toml"),
        Path::new("app.toml"),
        text,
        config,
    )
}

fn check(text: &str) -> Checked {
    check_with(text, &Config::fixtures())
}

/// Rules of the errors, in report order.
fn errors(text: &str) -> Vec<&'static str> {
    check(text)
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.rule)
        .collect()
}

fn warnings(text: &str) -> Vec<&'static str> {
    check(text)
        .diagnostics
        .iter()
        .filter(|d| !d.is_error())
        .map(|d| d.rule)
        .collect()
}

fn ok(text: &str) -> App {
    let c = check(text);
    match c.app {
        Some(app) => app,
        None => panic!(
            "expected a valid spec, got:\n{}",
            render_all(&c.diagnostics)
        ),
    }
}

fn render_all(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(|d| d.render(false))
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_rule(text: &str, rule: &str) {
    let errs = errors(text);
    assert!(
        errs.contains(&rule),
        "expected `{rule}` in {errs:?} for:\n{text}"
    );
}

#[test]
fn minimal_spec_and_defaults() {
    let app = ok(CONTAINER);
    assert_eq!(app.name, "app");
    assert_eq!(app.namespace, "default");
    assert_eq!(app.replicas, 1);
    assert_eq!(app.headless, "app-headless");
    assert_eq!(app.pod_management, PodManagement::Ordered);
    assert_eq!(
        app.update,
        UpdateStrategy::Rolling {
            partition: None,
            max_unavailable: None
        }
    );
    assert!(!app.allow_recreate && !app.adopt);
    assert!(app.service.is_none());
    assert_eq!(app.source_path, Path::new("app.toml"));
}

#[test]
fn config_defaults_apply_and_spec_wins() {
    let mut config = Config::default();
    config.defaults.namespace = "team".into();
    config.defaults.pull_secrets = vec!["default-secret".into()];
    config.defaults.labels.insert("team".into(), "dba".into());
    config.defaults.labels.insert("env".into(), "prod".into());
    let c = check_with(CONTAINER, &config);
    let app = c.app.unwrap_or_else(|| panic!("{:?}", c.diagnostics));
    assert_eq!(app.namespace, "team");
    assert_eq!(app.pull_secrets, ["default-secret"]);
    let c = check_with(
        &spec(
            "namespace = \"db\"\npull_secrets = []\nlabels = { team = \"payments\" }",
            "",
        ),
        &config,
    );
    let app = c.app.unwrap_or_else(|| panic!("{:?}", c.diagnostics));
    assert_eq!(app.namespace, "db");
    assert!(app.pull_secrets.is_empty());
    assert_eq!(app.labels.get("team").map(String::as_str), Some("payments"));
    assert_eq!(app.labels.get("env").map(String::as_str), Some("prod"));
}

#[test]
fn toml_syntax_errors_have_positions() {
    let c = check("replicas = \n");
    assert_eq!(c.diagnostics.len(), 1);
    assert_eq!(c.diagnostics[0].rule, "toml-syntax");
    assert_eq!(c.diagnostics[0].location.as_ref().map(|l| l.line), Some(1));
    assert!(c.app.is_none());
}

#[test]
fn empty_file_is_an_error() {
    assert_eq!(errors(""), ["empty-spec"]);
    assert_eq!(errors("# nothing yet\n"), ["empty-spec"]);
}

#[test]
fn unknown_keys_suggest_the_right_one() {
    let c = check(&spec("replica = 2", "memroy = \"1Gi\"\n"));
    let rules: Vec<_> = c
        .diagnostics
        .iter()
        .map(|d| (d.rule, d.help.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        rules,
        [
            ("unknown-key", "did you mean `replicas`?".to_string()),
            ("unknown-key", "did you mean `memory`?".to_string())
        ]
    );
    // Far from every key: the list of keys instead.
    let c = check(&spec("zzzzzz = 1", ""));
    assert!(
        c.diagnostics[0]
            .help
            .as_deref()
            .unwrap_or_default()
            .starts_with("expected one of `name`")
    );
    assert_eq!(errors(&spec("replicas = 2", "")), Vec::<&str>::new());
}

#[test]
fn unknown_values_suggest() {
    let c = check(&spec("pod_management = \"paralel\"", ""));
    assert_eq!(c.diagnostics[0].rule, "unknown-value");
    assert!(
        c.diagnostics[0]
            .help
            .as_deref()
            .unwrap_or_default()
            .starts_with("did you mean `parallel`?")
    );
    assert_eq!(
        ok(&spec("pod_management = \"parallel\"", "")).pod_management,
        PodManagement::Parallel
    );
}

#[test]
fn wrong_types_are_reported_with_every_other_problem() {
    let text = spec(
        "replicas = \"3\"\nnamespace = \"Bad\"",
        "ports = 80\ncpu = \"lots\"\n",
    );
    // `replicas = "3"` is read as a string (it may be "external") and then told apart.
    assert_eq!(
        errors(&text),
        ["replicas", "namespace", "wrong-type", "quantity"]
    );
}

#[test]
fn all_problems_of_a_file_are_collected() {
    let text = "replicas = -1\nnamespce = \"x\"\n[containers.Bad]\nimage = \"\"\nports = { \"very-long-port-name\" = 1 }\n[service]\nports = { web = 80 }\n";
    assert_eq!(
        errors(text),
        [
            "replicas",
            "unknown-key",
            "container-name",
            "image-format",
            "port-name",
            "service-target"
        ]
    );
}

#[test]
fn app_name_rules_and_edges() {
    let name = |n: &str| spec(&format!("name = \"{n}\""), "");
    ok(&name("mysql"));
    ok(&name(&"a".repeat(52)));
    assert_rule(&name(&"a".repeat(53)), "app-name");
    let c = check(&name(&"a".repeat(53)));
    assert!(
        c.diagnostics[0]
            .help
            .as_deref()
            .unwrap_or_default()
            .contains("kubernetes issue 64023")
    );
    assert_rule(&name(&"a".repeat(63)), "app-name");
    assert_rule(&name(&"a".repeat(64)), "app-name");
    assert_rule(&name("My_App"), "app-name");
    assert_rule(&name("1app"), "app-name");
    assert_rule(&name("app-"), "app-name");
    // From the file stem: no position in the file, the fix says to rename the file.
    let c = check_source(
        Path::new("apps/Bad.toml"),
        Path::new("Bad.toml"),
        CONTAINER,
        &Config::default(),
    );
    assert_eq!(c.diagnostics[0].rule, "app-name");
    assert!(c.diagnostics[0].location.is_none());
    assert!(
        c.diagnostics[0]
            .help
            .as_deref()
            .unwrap_or_default()
            .contains("rename the file")
    );
}

#[test]
fn namespace_rule() {
    assert_eq!(ok(&spec("namespace = \"db-1\"", "")).namespace, "db-1");
    assert_rule(&spec("namespace = \"DB\"", ""), "namespace");
    assert_rule(
        &spec(&format!("namespace = \"{}\"", "n".repeat(64)), ""),
        "namespace",
    );
    ok(&spec(&format!("namespace = \"{}\"", "n".repeat(63)), ""));
}

#[test]
fn replicas_rule() {
    assert_eq!(ok(&spec("replicas = 0", "")).replicas, 0);
    assert_rule(&spec("replicas = -1", ""), "replicas");
    assert_rule(&spec("replicas = 3000000000", ""), "replicas");
}

#[test]
fn update_strategy_rules() {
    assert_eq!(
        ok(&spec("update = \"on-delete\"", "")).update,
        UpdateStrategy::OnDelete
    );
    assert_eq!(
        ok(&spec(
            "update = { partition = 2, max_unavailable = \"50%\" }",
            ""
        ))
        .update,
        UpdateStrategy::Rolling {
            partition: Some(2),
            max_unavailable: Some(IntOrPercent::Percent("50%".into()))
        }
    );
    assert_rule(
        &spec("update = { strategy = \"on-delete\", partition = 1 }", ""),
        "update-strategy",
    );
    assert_rule(&spec("update = { partition = -1 }", ""), "update-strategy");
    assert_rule(
        &spec("update = { max_unavailable = 0 }", ""),
        "update-strategy",
    );
    assert_rule(
        &spec("update = { max_unavailable = \"101%\" }", ""),
        "update-strategy",
    );
}

#[test]
fn label_rules() {
    let app = ok(&spec(
        "labels = { team = \"payments\", \"example.com/tier\" = \"db\", empty = \"\" }",
        "",
    ));
    assert_eq!(app.labels.len(), 3);
    assert_rule(&spec("labels = { \"-x\" = \"a\" }", ""), "label");
    assert_rule(&spec("labels = { team = \"a b\" }", ""), "label");
    assert_rule(
        &spec(&format!("labels = {{ team = \"{}\" }}", "v".repeat(64)), ""),
        "label",
    );
    ok(&spec(
        &format!("labels = {{ team = \"{}\" }}", "v".repeat(63)),
        "",
    ));
    assert_rule(
        &spec("labels = { \"app.kubernetes.io/name\" = \"x\" }", ""),
        "label",
    );
    assert_rule(
        &spec("labels = { \"berth.dev/anything\" = \"x\" }", ""),
        "label",
    );
    assert_rule(
        &spec("node_selector = { \"a b\" = \"x\" }", ""),
        "node-selector",
    );
    ok(&spec("node_selector = { disktype = \"ssd\" }", ""));
}

#[test]
fn annotation_rules() {
    ok(&spec(
        "annotations = { \"prometheus.io/scrape\" = \"true\", note = \"any text at all: ok\" }",
        "",
    ));
    assert_rule(
        &spec("annotations = { \"bad key\" = \"x\" }", ""),
        "annotation",
    );
    assert_rule(
        &spec("annotations = { \"berth.dev/commit\" = \"x\" }", ""),
        "annotation",
    );
}

#[test]
fn pull_secret_and_service_account_rules() {
    ok(&spec(
        "pull_secrets = [\"default-secret\"]\nservice_account = \"mysql\"",
        "",
    ));
    assert_rule(&spec("pull_secrets = [\"Default\"]", ""), "pull-secret");
    assert_rule(&spec("service_account = \"my_sa\"", ""), "service-account");
}

#[test]
fn security_context_rule() {
    let app = ok(&spec(
        "run_as_user = 999\nfs_group = 1000",
        "run_as_user = 0\n",
    ));
    assert_eq!(
        (app.run_as_user, app.fs_group, app.containers[0].run_as_user),
        (Some(999), Some(1000), Some(0))
    );
    assert_rule(&spec("fs_group = -1", ""), "security-context");
    assert_rule(&spec("", "run_as_user = 4294967296\n"), "security-context");
}

#[test]
fn dns_rules() {
    let app = ok(&spec(
        "dns = { policy = \"None\", nameservers = [\"10.0.0.10\", \"::1\"], searches = [\"db.svc.\"], options = { ndots = 2, edns0 = \"\" } }",
        "",
    ));
    let dns = app.dns.unwrap_or_else(|| panic!("dns"));
    assert_eq!(dns.options.get("ndots"), Some(&Some("2".to_string())));
    assert_eq!(dns.options.get("edns0"), Some(&None));
    assert_rule(&spec("dns = { policy = \"None\" }", ""), "dns");
    assert_rule(&spec("dns = { nameservers = [\"dns.local\"] }", ""), "dns");
    assert_rule(
        &spec(
            "dns = { nameservers = [\"1.1.1.1\", \"1.1.1.2\", \"1.1.1.3\", \"1.1.1.4\"] }",
            "",
        ),
        "dns",
    );
    assert_rule(&spec("dns = { searches = [\"Bad_Domain\"] }", ""), "dns");
}

#[test]
fn headless_and_service_names() {
    assert_eq!(ok(&spec("headless = \"db\"", "")).headless, "db");
    assert_rule(&spec("headless = \"DB\"", ""), "service-name");
    let svc = "[containers.app.ports]\nhttp = 80\n[service]\nports = { http = 80 }\n";
    let base = "[containers.app]\nimage = \"busybox:1.36\"\n";
    let app = ok(&format!("{base}{svc}"));
    assert_eq!(app.service.map(|s| s.name), Some("app".to_string()));
    assert_rule(
        &format!("{base}{svc}name = \"app-headless\"\n"),
        "service-name",
    );
    assert_rule(&format!("headless = \"app\"\n{base}{svc}"), "service-name");
    assert_rule(&format!("{base}{svc}name = \"Read\"\n"), "service-name");
}

#[test]
fn duration_rules() {
    let app = ok(&spec(
        "termination_grace = \"1m 30s\"",
        "liveness = { exec = [\"true\"], delay = \"0s\", period = \"1s\", timeout = \"2s\" }\n",
    ));
    assert_eq!(app.termination_grace_seconds, Some(90));
    let probe = app.containers[0]
        .liveness
        .clone()
        .unwrap_or_else(|| panic!("probe"));
    assert_eq!(
        (
            probe.delay_seconds,
            probe.period_seconds,
            probe.timeout_seconds
        ),
        (Some(0), Some(1), Some(2))
    );
    assert_rule(&spec("termination_grace = \"soon\"", ""), "duration");
    assert_rule(&spec("termination_grace = \"1500ms\"", ""), "duration");
    assert_rule(
        &spec("", "liveness = { exec = [\"true\"], period = \"0s\" }\n"),
        "duration",
    );
}

#[test]
fn autopilot_profile_forbids_spread() {
    let text = spec("spread = \"hostname\"", "");
    assert_eq!(ok(&text).spread, Some(Spread::Hostname));
    let config = Config {
        profile: Profile::Autopilot,
        ..Config::default()
    };
    let c = check_with(&text, &config);
    assert!(c.app.is_none());
    assert_eq!(c.diagnostics[0].rule, "profile-forbids");
    assert!(check_with(CONTAINER, &config).app.is_some());
}

#[test]
fn disruption_budget_rules() {
    assert_eq!(
        ok(&spec("disruption_budget = { min_available = \"50%\" }", "")).disruption_budget,
        Some(DisruptionBudget::MinAvailable(IntOrPercent::Percent(
            "50%".into()
        )))
    );
    assert_eq!(
        ok(&spec("disruption_budget = { max_unavailable = 0 }", "")).disruption_budget,
        Some(DisruptionBudget::MaxUnavailable(IntOrPercent::Int(0)))
    );
    assert_rule(&spec("disruption_budget = {}", ""), "disruption-budget");
    assert_rule(
        &spec(
            "disruption_budget = { max_unavailable = 1, min_available = 1 }",
            "",
        ),
        "disruption-budget",
    );
    assert_rule(
        &spec("disruption_budget = { max_unavailable = \"x\" }", ""),
        "disruption-budget",
    );
}

#[test]
fn container_rules() {
    assert_eq!(errors("replicas = 1\n"), ["containers-required"]);
    assert_rule(
        "[init_containers.x]\nimage = \"busybox:1.36\"\n",
        "containers-required",
    );
    assert_rule(
        &spec("", "[containers.Web]\nimage = \"nginx:1.27\"\n"),
        "container-name",
    );
    assert_rule(
        &spec("", "[init_containers.app]\nimage = \"nginx:1.27\"\n"),
        "container-name",
    );
    ok(&format!(
        "[containers.{}]\nimage = \"busybox:1.36\"\n",
        "c".repeat(63)
    ));
    assert_rule(
        &format!(
            "[containers.{}]\nimage = \"busybox:1.36\"\n",
            "c".repeat(64)
        ),
        "container-name",
    );
}

#[test]
fn image_rules() {
    assert_rule("[containers.app]\ncpu = \"1\"\n", "image-required");
    assert_rule("[containers.app]\nimage = \"my image\"\n", "image-format");
    assert_eq!(
        warnings("[containers.app]\nimage = \"nginx\"\n"),
        ["image-tag"]
    );
    assert_eq!(
        warnings("[containers.app]\nimage = \"localhost:5000/nginx\"\n"),
        ["image-tag"]
    );
    assert!(warnings("[containers.app]\nimage = \"localhost:5000/nginx:1.27\"\n").is_empty());
    assert!(warnings("[containers.app]\nimage = \"nginx@sha256:abc\"\n").is_empty());
    // A warning does not make the spec invalid.
    assert!(check("[containers.app]\nimage = \"nginx\"\n").app.is_some());
}

#[test]
fn port_rules_and_edges() {
    let ports = |p: &str| spec("", &format!("ports = {{ {p} }}\n"));
    let app = ok(&ports("http = 80, dns = \"53/udp\", x = \"9000/SCTP\""));
    let got: Vec<_> = app.containers[0]
        .ports
        .iter()
        .map(|p| (p.name.as_str(), p.number, p.protocol))
        .collect();
    assert_eq!(
        got,
        [
            ("http", 80, Protocol::Tcp),
            ("dns", 53, Protocol::Udp),
            ("x", 9000, Protocol::Sctp)
        ]
    );
    ok(&ports(&format!("{} = 80", "p".repeat(15))));
    assert_rule(&ports(&format!("{} = 80", "p".repeat(16))), "port-name");
    assert_rule(&ports("my--port = 80"), "port-name");
    assert_rule(&ports("\"8080\" = 80"), "port-name");
    assert_rule(&ports("http = 0"), "port-number");
    assert_rule(&ports("http = 65536"), "port-number");
    ok(&ports("http = 65535"));
    assert_rule(&ports("dns = \"53/icmp\""), "port-protocol");
}

#[test]
fn port_conflicts_between_containers() {
    let two = |a: &str, b: &str| {
        format!(
            "[containers.a]\nimage = \"x:1\"\nports = {{ {a} }}\n[containers.b]\nimage = \"y:1\"\nports = {{ {b} }}\n"
        )
    };
    assert_rule(&two("http = 8080", "admin = 8080"), "port-conflict");
    assert_rule(&two("http = 8080", "http = 8081"), "port-name");
    // Same number, different protocol: no clash.
    ok(&two("dns = \"53/udp\"", "dns-tcp = 53"));
    ok(&two("http = 8080", "admin = 8081"));
}

#[test]
fn env_rules() {
    let env = |e: &str| spec("", &format!("env = {{ {e} }}\n"));
    let app = ok(&env(
        "A = \"1\", B = { secret = \"s\", key = \"k\" }, C = { config_map = \"c\", key = \"k.v\" }, D = { field = \"status.podIP\" }, E = { field = \"metadata.annotations['x/y']\" }",
    ));
    assert_eq!(app.containers[0].env.len(), 5);
    assert_eq!(
        app.containers[0].env[1].value,
        EnvValue::Secret {
            name: "s".into(),
            key: "k".into()
        }
    );
    assert_rule(&env("1A = \"x\""), "env");
    assert_rule(&env("A = { secret = \"s\" }"), "env");
    assert_rule(&env("A = { secret = \"S\", key = \"k\" }"), "env");
    assert_rule(&env("A = { secret = \"s\", key = \"a/b\" }"), "env");
    assert_rule(
        &env("A = { secret = \"s\", config_map = \"c\", key = \"k\" }"),
        "env",
    );
    assert_rule(&env("A = { field = \"status.podip\" }"), "env");
    assert_rule(
        &env("A = { field = \"metadata.name\", key = \"k\" }"),
        "env",
    );
    assert_rule(&env("A = {}"), "env");
}

#[test]
fn quantity_rules() {
    let app = ok(&spec(
        "",
        "cpu = \"250m\"\nmemory = { request = \"512Mi\", limit = \"1Gi\" }\n",
    ));
    let c = &app.containers[0];
    assert_eq!(
        c.cpu
            .as_ref()
            .and_then(|r| r.limit.as_ref())
            .map(Quantity::as_str),
        Some("250m")
    );
    assert_eq!(
        c.memory
            .as_ref()
            .and_then(|r| r.request.as_ref())
            .map(Quantity::as_str),
        Some("512Mi")
    );
    ok(&spec("", "cpu = 2\n"));
    assert_rule(&spec("", "cpu = \"250mm\"\n"), "quantity");
    assert_rule(&spec("", "memory = \"1GB\"\n"), "quantity");
    assert_rule(&spec("", "memory = {}\n"), "quantity");
    assert_rule(
        &spec("", "mounts = { d = \"/d\" }\n[volumes.d]\nsize = \"0\"\n"),
        "quantity",
    );
    assert_rule(
        &spec(
            "",
            "mounts = { d = \"/d\" }\n[volumes.d]\nempty_dir = { size_limit = \"x\" }\n",
        ),
        "quantity",
    );
}

#[test]
fn request_must_not_exceed_limit() {
    assert_rule(
        &spec("", "cpu = { request = \"2\", limit = \"500m\" }\n"),
        "request-exceeds-limit",
    );
    assert_rule(
        &spec("", "memory = { request = \"1.5Gi\", limit = \"1Gi\" }\n"),
        "request-exceeds-limit",
    );
    ok(&spec(
        "",
        "memory = { request = \"1024Mi\", limit = \"1Gi\" }\ncpu = { request = \"500m\", limit = \"0.5\" }\n",
    ));
}

#[test]
fn volume_rules() {
    let vol = |v: &str| {
        spec(
            "",
            &format!("mounts = {{ v = \"/v\" }}\n[volumes.v]\n{v}\n"),
        )
    };
    let app = ok(&vol(
        "size = \"1Gi\"\nclass = \"fast\"\naccess = [\"ReadWriteOncePod\"]",
    ));
    assert_eq!(
        app.volumes[0].kind,
        VolumeKind::Claim {
            size: Quantity::parse("1Gi").unwrap_or_else(|e| panic!("{e}")),
            class: Some("fast".into()),
            access: vec![AccessMode::ReadWriteOncePod],
            block: false,
            data_source: None,
        }
    );
    ok(&vol("empty_dir = true"));
    ok(&vol("claim = \"backups\"\nread_only = true"));
    assert_rule(&vol("claim = \"backups\"\nsize = \"1Gi\""), "volume-kind");
    ok(&vol("config_map = \"c\""));
    ok(&vol("secret = \"s\""));
    ok(&vol("host_path = \"/srv\""));
    assert_rule(&vol(""), "volume-kind");
    assert_rule(&vol("size = \"1Gi\"\nsecret = \"s\""), "volume-kind");
    assert_rule(&vol("empty_dir = false"), "volume-kind");
    assert_rule(&vol("secret = \"s\"\nclass = \"fast\""), "volume-kind");
    assert_rule(&vol("size = \"1Gi\"\naccess = []"), "volume-kind");
    assert_rule(
        &vol("size = \"1Gi\"\nclass = \"Fast_Disk\""),
        "storage-class",
    );
    assert_rule(&vol("host_path = \"srv\""), "volume-source");
    assert_rule(&vol("config_map = \"Bad\""), "volume-source");
    assert_rule(&spec("", "[volumes.Data]\nsize = \"1Gi\"\n"), "volume-name");
}

#[test]
fn mount_rules() {
    let m = |mounts: &str| {
        spec(
            "",
            &format!(
                "mounts = {{ {mounts} }}\n[volumes.data]\nsize = \"1Gi\"\n[volumes.tmp]\nempty_dir = true\n"
            ),
        )
    };
    let app = ok(&m(
        "data = { path = \"/d\", sub_path = \"x\", read_only = true }, tmp = \"/tmp\"",
    ));
    assert_eq!(
        app.containers[0].mounts[0],
        Mount {
            volume: "data".into(),
            path: "/d".into(),
            sub_path: Some("x".into()),
            read_only: true
        }
    );
    let c = check(&m("dat = \"/d\", tmp = \"/tmp\""));
    let d = c
        .diagnostics
        .iter()
        .find(|d| d.rule == "mount-volume")
        .unwrap_or_else(|| panic!("no mount-volume"));
    assert_eq!(d.help.as_deref(), Some("did you mean `data`?"));
    assert_rule(&m("data = \"d\", tmp = \"/tmp\""), "mount-path");
    assert_rule(&m("data = \"/x\", tmp = \"/x/\""), "mount-path");
    assert_rule(
        &m("data = { path = \"/d\", sub_path = \"../x\" }, tmp = \"/tmp\""),
        "mount-path",
    );
    assert_rule(
        &m("data = { sub_path = \"x\" }, tmp = \"/tmp\""),
        "mount-path",
    );
}

#[test]
fn unused_volume_is_a_warning() {
    let text = spec("", "[volumes.data]\nsize = \"1Gi\"\n");
    assert_eq!(warnings(&text), ["unused-volume"]);
    assert!(check(&text).app.is_some());
    assert!(
        warnings(&spec(
            "",
            "mounts = { data = \"/d\" }\n[volumes.data]\nsize = \"1Gi\"\n"
        ))
        .is_empty()
    );
}

#[test]
fn init_containers_have_no_probes_or_hooks() {
    let init = |extra: &str| {
        spec(
            "",
            &format!("[init_containers.setup]\nimage = \"busybox:1.36\"\n{extra}\n"),
        )
    };
    ok(&init("command = [\"true\"]"));
    for field in [
        "liveness = { tcp = 1 }",
        "readiness = { tcp = 1 }",
        "startup = { tcp = 1 }",
        "post_start = [\"true\"]",
        "pre_stop = [\"true\"]",
    ] {
        assert_rule(&init(field), "init-container");
    }
    // The same on an ordinary container is fine.
    ok(&spec("", "liveness = { tcp = 1 }\npre_stop = [\"true\"]\n"));
}

#[test]
fn lifecycle_rule() {
    assert_rule(&spec("", "post_start = []\n"), "lifecycle");
    let app = ok(&spec("", "post_start = [\"sh\", \"-c\", \"x\"]\n"));
    assert_eq!(
        app.containers[0].post_start,
        Some(Hook::Exec(vec!["sh".into(), "-c".into(), "x".into()]))
    );
    let app = ok(&spec("", "pre_stop = { sleep = \"1m\" }\n"));
    assert_eq!(app.containers[0].pre_stop, Some(Hook::Sleep(60)));
}

#[test]
fn probe_rules() {
    let p = |probe: &str| spec("", &format!("ports = {{ http = 8080 }}\n{probe}\n"));
    ok(&p(
        "liveness = { http = { path = \"/h\", port = \"http\" } }\nreadiness = { tcp = 8080, success = 3 }\nstartup = { exec = [\"true\"], failures = 30 }",
    ));
    assert_rule(&p("liveness = { delay = \"1s\" }"), "probe");
    assert_rule(&p("liveness = { tcp = 1, exec = [\"true\"] }"), "probe");
    assert_rule(&p("liveness = { tcp = \"metrics\" }"), "probe");
    assert_rule(&p("liveness = { tcp = 0 }"), "probe");
    assert_rule(&p("liveness = { exec = [] }"), "probe");
    assert_rule(
        &p("liveness = { http = { path = \"h\", port = 80 } }"),
        "probe",
    );
    assert_rule(&p("liveness = { http = { path = \"/h\" } }"), "probe");
    assert_rule(&p("liveness = { tcp = 1, success = 2 }"), "probe");
    assert_rule(&p("startup = { tcp = 1, success = 2 }"), "probe");
    assert_rule(&p("readiness = { tcp = 1, failures = 0 }"), "probe");
}

#[test]
fn service_port_rules() {
    let svc = |ports: &str, extra: &str| {
        format!(
            "[containers.app]\nimage = \"x:1\"\nports = {{ http = 8080, dns = \"53/udp\" }}\n[service]\n{extra}\nports = {{ {ports} }}\n"
        )
    };
    let app = ok(&svc(
        "http = 80, dns = 53, raw = { port = 9000, target = 8080 }, named = { port = 9001, target = \"http\" }",
        "",
    ));
    let ports = app.service.map(|s| s.ports).unwrap_or_default();
    assert_eq!(ports[0].target, PortRef::Name("http".into()));
    assert_eq!(ports[1].protocol, Protocol::Udp);
    assert_eq!(ports[2].target, PortRef::Number(8080));
    assert_rule(&svc("web = 80", ""), "service-target");
    assert_rule(
        &svc("web = { port = 80, target = \"web\" }", ""),
        "service-target",
    );
    assert_rule(&svc("web = { target = 8080 }", ""), "service-ports");
    assert_rule(
        &svc("http = 80, other = { port = 80, target = 8080 }", ""),
        "service-ports",
    );
    assert_rule(&svc("http = 0", ""), "service-ports");
    assert_rule(&svc("", ""), "service-ports");
    assert_rule(&svc("Http = { port = 80, target = 8080 }", ""), "port-name");
}

#[test]
fn node_port_range_edges() {
    let np = |n: i64, kind: &str| {
        format!(
            "[containers.app]\nimage = \"x:1\"\nports = {{ http = 8080 }}\n[service]\ntype = \"{kind}\"\nports = {{ http = {{ port = 80, node_port = {n} }} }}\n"
        )
    };
    ok(&np(30000, "NodePort"));
    ok(&np(32767, "LoadBalancer"));
    assert_rule(&np(29999, "NodePort"), "node-port");
    assert_rule(&np(32768, "NodePort"), "node-port");
    assert_rule(&np(30080, "ClusterIP"), "node-port");
}

#[test]
fn allow_recreate_and_adopt() {
    let app = ok(&spec("allow_recreate = true\nadopt = true", ""));
    assert!(app.allow_recreate && app.adopt);
    assert!(!app.suspend);
    assert!(ok(&spec("suspend = true", "")).suspend);
    assert_rule(&spec("adopt = \"yes\"", ""), "wrong-type");
}

#[test]
fn diagnostics_are_sorted_by_position() {
    let c = check(&spec("labels = { zz = \"bad value\", aa = \"-x\" }", ""));
    let cols: Vec<usize> = c
        .diagnostics
        .iter()
        .filter_map(|d| d.location.as_ref().map(|l| l.column))
        .collect();
    let mut sorted = cols.clone();
    sorted.sort();
    assert_eq!(cols.len(), 2);
    assert_eq!(cols, sorted);
}

// --- directory loading

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{e}"));
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn load_dir_reads_specs_and_skips_the_rest() {
    let tmp = tempdir();
    let dir = tmp.path();
    write(dir, "web.toml", CONTAINER);
    write(dir, "team/db.toml", &spec("namespace = \"db\"", ""));
    for junk in [
        ".hidden.toml",
        ".#web.toml",
        "web.toml~",
        ".web.toml.swp",
        "#web.toml#",
        "notes.txt",
        "web.toml.bak",
        ".git/config.toml",
        ".toml",
    ] {
        write(dir, junk, "this is not toml = = =");
    }
    // A directory named `dir.toml` is a broken spec, not skipped: see
    // files_berth_cannot_read_are_broken_specs_never_missing_apps.
    let loaded = load_dir(dir, &Config::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.files, 2, "{:?}", loaded.diagnostics);
    assert!(
        loaded.diagnostics.is_empty(),
        "{}",
        render_all(&loaded.diagnostics)
    );
    let names: Vec<_> = loaded
        .apps
        .iter()
        .map(|a| (a.namespace.as_str(), a.name.as_str()))
        .collect();
    assert_eq!(names, [("db", "db"), ("default", "web")]);
    assert_eq!(loaded.apps[0].source_path, Path::new("team/db.toml"));
}

#[test]
fn missing_and_empty_directories_differ() {
    let tmp = tempdir();
    let missing = tmp.path().join("nope");
    assert!(matches!(
        load_dir(&missing, &Config::default()),
        Err(LoadError::Missing { .. })
    ));
    let loaded = load_dir(tmp.path(), &Config::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.files, 0);
    assert!(loaded.apps.is_empty() && loaded.broken.is_empty());
    write(tmp.path(), "file.toml", CONTAINER);
    assert!(matches!(
        load_dir(&tmp.path().join("file.toml"), &Config::default()),
        Err(LoadError::NotADirectory { .. })
    ));
}

#[test]
fn broken_specs_keep_their_identity() {
    let tmp = tempdir();
    let dir = tmp.path();
    write(dir, "good.toml", CONTAINER);
    // Broken by a rule: name and namespace are known.
    write(
        dir,
        "named.toml",
        &spec("name = \"cache\"\nnamespace = \"redis\"\nreplicas = -1", ""),
    );
    // Broken TOML after the identity keys: still known.
    write(
        dir,
        "half.toml",
        "namespace = \"db\"\nname = \"mysql\"\n[containers.mysql\n",
    );
    // Broken TOML, no identity keys: the file stem, namespace unknown.
    write(dir, "stem.toml", "[[[\n");
    // Broken by a rule, no namespace key: the configured default.
    write(
        dir,
        "plain.toml",
        "replicas = \"x\"\n[containers.a]\nimage = \"a:1\"\n",
    );
    let loaded = load_dir(dir, &Config::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.apps.len(), 1);
    let broken: Vec<_> = loaded
        .broken
        .iter()
        .map(|b| (b.name.as_str(), b.namespace.as_deref()))
        .collect();
    assert_eq!(
        broken,
        [
            ("mysql", Some("db")),
            ("cache", Some("redis")),
            ("plain", Some("default")),
            ("stem", None)
        ]
    );
    assert!(loaded.has_errors());
}

#[test]
fn duplicate_apps_across_files_break_both() {
    let tmp = tempdir();
    let dir = tmp.path();
    write(dir, "a.toml", &spec("name = \"db\"", ""));
    write(dir, "b/db.toml", CONTAINER);
    write(
        dir,
        "c.toml",
        &spec("name = \"db\"\nnamespace = \"other\"", ""),
    );
    let loaded = load_dir(dir, &Config::default()).unwrap_or_else(|e| panic!("{e}"));
    let rules: Vec<_> = loaded.diagnostics.iter().map(|d| d.rule).collect();
    assert_eq!(rules, ["duplicate-app", "duplicate-app"]);
    assert_eq!(loaded.broken.len(), 2);
    assert!(loaded.broken.iter().all(|b| b.name == "db"));
    assert_eq!(loaded.apps.len(), 1);
    assert_eq!(loaded.apps[0].namespace, "other");
}

#[test]
fn services_of_two_apps_must_not_clash() {
    let tmp = tempdir();
    let dir = tmp.path();
    write(
        dir,
        "a.toml",
        &spec(
            "",
            "ports = { http = 80 }\n[service]\nname = \"web\"\nports = { http = 80 }\n",
        ),
    );
    write(dir, "web.toml", CONTAINER);
    write(dir, "c.toml", CONTAINER);
    let loaded = load_dir(dir, &Config::default()).unwrap_or_else(|e| panic!("{e}"));
    // a.toml's access Service is named `web`; the app `web` only has `web-headless`: no clash.
    assert!(
        loaded.diagnostics.is_empty(),
        "{}",
        render_all(&loaded.diagnostics)
    );
    // Now the app `web` gets an access Service too, by default named `web`.
    write(
        dir,
        "web.toml",
        &spec(
            "",
            "ports = { http = 80 }\n[service]\nports = { http = 80 }\n",
        ),
    );
    let loaded = load_dir(dir, &Config::default()).unwrap_or_else(|e| panic!("{e}"));
    let rules: Vec<_> = loaded.diagnostics.iter().map(|d| d.rule).collect();
    assert_eq!(rules, ["duplicate-service", "duplicate-service"]);
    assert_eq!(loaded.apps.len(), 1);
}

#[test]
fn config_apps_examples_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/apps");
    let config = Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/berth.toml"))
        .unwrap_or_else(|d| panic!("{d:?}"));
    let loaded = load_dir(&dir, &config).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        loaded.diagnostics.is_empty(),
        "{}",
        render_all(&loaded.diagnostics)
    );
    assert!(loaded.apps.len() >= 3);
    for name in ["nginx.toml", "mysql.toml", "zookeeper.toml"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        assert!(
            text.starts_with("#:schema ../berth.schema.json\n"),
            "{name}"
        );
    }
}

// --- snapshots of every bad fixture's diagnostics

#[test]
fn invalid_fixture_diagnostics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    insta::glob!("../../tests/fixtures/invalid", "*.toml", |path| {
        let rel = path.strip_prefix(root).unwrap_or(path);
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let config = Config {
            profile: if stem.starts_with("autopilot") {
                Profile::Autopilot
            } else {
                Profile::Standard
            },
            ..Config::default()
        };
        let file = Path::new(path.file_name().unwrap_or_default());
        // Read as `load_dir` reads: a file that is not UTF-8 is a diagnostic too.
        let diagnostics = match read_spec(path) {
            Ok(text) => {
                let checked = check_source(rel, file, &text, &config);
                assert!(checked.app.is_none(), "{} should be invalid", rel.display());
                checked.diagnostics
            }
            Err(d) => vec![Diagnostic {
                path: rel.to_path_buf(),
                ..*d
            }],
        };
        assert!(
            diagnostics.iter().any(Diagnostic::is_error),
            "{}",
            rel.display()
        );
        insta::assert_snapshot!(render_all(&diagnostics));
    });
}

// --- inputs that cannot live in git as plain files, made in a temp dir

/// Renders `loaded`'s diagnostics with the temp dir replaced by `<dir>`, for a stable snapshot.
fn render_in(dir: &Path, loaded: &Loaded) -> String {
    render_all(&loaded.diagnostics).replace(&dir.display().to_string(), "<dir>")
}

#[test]
fn files_berth_cannot_read_are_broken_specs_never_missing_apps() {
    // Regression: a dangling link, a link loop, a FIFO or a directory named like a spec used to
    // be skipped silently, so the app looked deleted and berth would remove it from the cluster.
    let tmp = tempdir();
    let dir = tmp.path();
    write(dir, "ok.toml", CONTAINER);
    std::os::unix::fs::symlink("loop.toml", dir.join("loop.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink("gone.toml", dir.join("dangling.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir(dir.join("folder.toml")).unwrap_or_else(|e| panic!("{e}"));
    write(dir, "folder.toml/inner.toml", CONTAINER);
    // A file that cannot be read (EIO, EACCES) is tested through `read_spec` in dir_tests: the
    // only such file a root test can make, a link to /proc/self/mem, is outside the spec
    // directory, and `load_dir` refuses it before reading.
    let fifo = std::process::Command::new("mkfifo")
        .arg(dir.join("fifo.toml"))
        .status()
        .unwrap_or_else(|e| panic!("mkfifo: {e}"));
    assert!(fifo.success());

    // Must not block on the FIFO.
    let loaded = load_dir(dir, &Config::default()).unwrap_or_else(|e| panic!("{e}"));
    let mut broken: Vec<_> = loaded.broken.iter().map(|b| b.name.as_str()).collect();
    broken.sort_unstable();
    assert_eq!(broken, ["dangling", "fifo", "folder", "loop"]);
    assert!(loaded.broken.iter().all(|b| b.namespace.is_none()));
    assert_eq!(
        loaded
            .apps
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>(),
        ["ok"]
    );
    assert_eq!(loaded.files, 5);
    insta::assert_snapshot!(render_in(dir, &loaded));
}

#[test]
fn spec_files_over_1_mib_are_refused_quickly() {
    let tmp = tempdir();
    let dir = tmp.path();
    // 10 MB of comments after a valid spec: parsing it all would be slow and pointless.
    let mut text = spec("", "");
    while text.len() < 10 * 1024 * 1024 {
        text.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    write(dir, "huge.toml", &text);
    let mut just_over = spec("", "");
    just_over.push_str(&"#".repeat(MAX_SPEC_BYTES as usize - just_over.len()));
    write(dir, "limit.toml", &just_over);
    just_over.push('#');
    write(dir, "over.toml", &just_over);
    let started = std::time::Instant::now();
    let loaded = load_dir(dir, &Config::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let broken: Vec<_> = loaded.broken.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(broken, ["huge", "over"]);
    assert_eq!(loaded.apps.len(), 1, "exactly 1 MiB is still read");
    insta::assert_snapshot!(render_in(dir, &loaded));
}

#[test]
fn non_utf8_is_reported_at_the_first_bad_byte() {
    let tmp = tempdir();
    let dir = tmp.path();
    std::fs::write(dir.join("a.toml"), b"replicas = 2\n# na\xefve\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let loaded = load_dir(dir, &Config::default()).unwrap_or_else(|e| panic!("{e}"));
    let d = &loaded.diagnostics[0];
    assert_eq!(d.rule, "encoding");
    let loc = d.location.as_ref().unwrap_or_else(|| panic!("no location"));
    assert_eq!((loc.line, loc.column), (2, 5));
    assert_eq!(d.label, "byte 0xef is not UTF-8");
}

#[test]
fn a_spec_error_never_shows_a_secret_value() {
    // Regression: the daemon logged this diagnostic, source line and password included.
    let text = spec(
        "",
        "env = { DB_PASSWORD = \"hunter2-canary\", \"BAD NAME\" = \"x\" }\n",
    );
    let out = render_all(&check(&text).diagnostics);
    assert!(out.contains("error[env]"), "{out}");
    assert!(!out.contains("hunter2"), "{out}");
    assert!(
        out.contains("DB_PASSWORD = \"**************\", \"BAD NAME\""),
        "{out}"
    );
}

#[test]
fn one_bad_line_gives_one_syntax_error() {
    // `=======` used to give six errors, one per `=`.
    let c = check("<<<<<<< HEAD\nreplicas = 2\n=======\nreplicas = 3\n>>>>>>> main\n");
    let lines: Vec<_> = c
        .diagnostics
        .iter()
        .map(|d| d.location.as_ref().map(|l| (l.line, l.column)))
        .collect();
    assert_eq!(lines, [Some((1, 1)), Some((3, 2)), Some((5, 9))]);
    // Not TOML at all: ten errors, then one line that counts the rest.
    let junk = "a b\n".repeat(40);
    let c = check(&junk);
    assert_eq!(c.diagnostics.len(), 11);
    assert!(
        c.diagnostics[10]
            .message
            .starts_with("more syntax errors follow")
    );
}

#[test]
fn wrong_types_say_how_to_write_the_value() {
    let c = check(&spec("adopt = \"yes\"\nreplicas = 2024-01-01", ""));
    let got: Vec<_> = c
        .diagnostics
        .iter()
        .map(|d| (d.label.as_str(), d.help.as_deref().unwrap_or_default()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "found the string \"yes\"",
                "write true or false, without quotes"
            ),
            (
                "found a date or time",
                "write a whole number without quotes, e.g. 3, or \"external\""
            ),
        ]
    );
}

#[test]
fn a_mount_of_a_declared_but_broken_volume_is_not_called_undeclared() {
    let text = spec(
        "",
        "mounts = { data = \"/data\" }\n[volumes.data]\nsise = \"1Gi\"\n",
    );
    assert_eq!(errors(&text), ["unknown-key"]);
}

#[test]
fn app_names_over_63_characters_are_told_the_52_limit() {
    let c = check(&spec(&format!("name = \"{}\"", "a".repeat(64)), ""));
    assert_eq!(c.diagnostics[0].label, "must be no more than 52 characters");
}

#[test]
fn a_negative_duration_says_so() {
    let c = check(&spec("termination_grace = \"-30s\"", ""));
    assert_eq!(c.diagnostics[0].label, "a duration cannot be negative");
}

#[test]
fn a_huge_duration_is_too_long_not_too_short() {
    let c = check(&spec("termination_grace = \"100years\"", ""));
    assert_eq!(c.diagnostics[0].rule, "duration");
    assert_eq!(c.diagnostics[0].message, "`termination_grace` is too long");
}

#[test]
fn numbers_beyond_64_bits_are_out_of_range() {
    let c = check(&spec("replicas = 9223372036854775808", ""));
    assert_eq!(c.diagnostics[0].rule, "number-range");
    assert!(c.diagnostics[0].help.is_some());
}

#[test]
fn syntax_errors_suggest_a_fix() {
    let help = |text: &str| {
        let c = check(text);
        assert_eq!(c.diagnostics[0].rule, "toml-syntax", "{text}");
        c.diagnostics[0].help.clone().unwrap_or_default()
    };
    assert!(help("<<<<<<< HEAD\nreplicas = 2\n").contains("merge conflict"));
    assert!(help("replicas: 2\n").contains("YAML"));
    assert!(help("{\"replicas\": 2}\n").contains("JSON"));
    assert!(help("r\u{435}plicas = 2\n").contains("U+0435"));
    assert!(help("replicas = \n").contains("fix the TOML syntax"));
}
