use std::path::Path;

use super::*;

fn notice(event: Event, namespace: &str, app: &str) -> Notice {
    Notice {
        event,
        namespace: namespace.into(),
        app: app.into(),
        commit: Some("0123456789abcdef".into()),
        reason: "removal budget spent".into(),
    }
}

fn parse(text: &str) -> (Vec<Target>, Vec<Diagnostic>) {
    #[derive(serde::Deserialize)]
    struct Doc {
        notify: Vec<RawTarget>,
    }
    let doc: Doc = toml::from_str(text).expect("TOML");
    let mut diags = Vec::new();
    let targets = parse_targets(
        Path::new("/etc/berth/berth.toml"),
        text,
        doc.notify,
        &mut diags,
    );
    (targets, diags)
}

#[test]
fn a_target_takes_its_events_and_apps_and_defaults_to_what_needs_a_person() {
    let (targets, diags) = parse(
        "[[notify]]\nurl = \"https://hooks.example.com/T/B/x\"\nformat = \"slack\"\n\
         headers_file = \"notify-headers\"\nevents = [\"held\", \"degraded\"]\napps = [\"db/*\"]\n\n\
         [[notify]]\nurl = \"http://127.0.0.1:9000/hook\"\n",
    );
    assert!(diags.is_empty(), "{diags:?}");
    let [slack, plain] = &targets[..] else {
        panic!("{targets:?}")
    };
    assert_eq!(slack.format, Format::Slack);
    assert_eq!(
        slack.headers_file.as_deref(),
        Some(Path::new("/etc/berth/notify-headers"))
    );
    assert!(slack.wants(&notice(Event::Held, "db", "mysql")));
    assert!(!slack.wants(&notice(Event::Held, "web", "nginx")));
    assert!(!slack.wants(&notice(Event::Failed, "db", "mysql")));
    assert_eq!(plain.format, Format::Json);
    assert!(plain.wants(&notice(Event::Failed, "web", "nginx")));
    assert!(
        !plain.wants(&notice(Event::Applied, "web", "nginx")),
        "routine applies only when asked for"
    );
}

#[test]
fn a_bad_url_or_event_is_a_diagnostic_at_its_place() {
    let text = "[[notify]]\nurl = \"hooks.example.com\"\n\n[[notify]]\nurl = \"https://x.example\"\nevents = [\"helt\"]\n";
    let (targets, diags) = parse(text);
    assert_eq!(targets.len(), 1);
    let rules: Vec<&str> = diags.iter().map(|d| d.rule).collect();
    assert_eq!(rules, ["notify-url", "notify-event"]);
    let rendered = diags[1].render(false);
    assert!(rendered.contains("berth.toml:6:"), "{rendered}");
    assert!(rendered.contains("unknown event `helt`"), "{rendered}");
}

#[test]
fn the_webhook_path_is_not_shown() {
    let (targets, _) = parse("[[notify]]\nurl = \"https://hooks.example.com/services/SECRET\"\n");
    let shown = serde_json::to_string(&targets[0]).expect("json");
    assert!(!shown.contains("SECRET"), "{shown}");
    assert_eq!(targets[0].host(), "hooks.example.com");
}

#[test]
fn globs_match_whole_keys() {
    assert!(glob_match("db/*", "db/mysql"));
    assert!(glob_match("*/mysql", "prod/mysql"));
    assert!(glob_match("*", "a/b"));
    assert!(glob_match("db/my*l", "db/mysql"));
    assert!(!glob_match("db/*", "dbx/mysql"));
    assert!(!glob_match("db/mysql", "db/mysql-2"));
}

#[test]
fn bodies_carry_the_app_namespace_commit_and_reason() {
    let n = notice(Event::Held, "db", "mysql");
    let json: serde_json::Value =
        serde_json::from_str(&body(Format::Json, &n, "prod", "2026-11-30T08:00:00Z"))
            .expect("json");
    assert_eq!(json["event"], "held");
    assert_eq!(json["app"], "mysql");
    assert_eq!(json["namespace"], "db");
    assert_eq!(json["commit"], "0123456789abcdef");
    assert_eq!(json["reason"], "removal budget spent");
    assert_eq!(json["instance"], "prod");
    let slack: serde_json::Value =
        serde_json::from_str(&body(Format::Slack, &n, "prod", "t")).expect("json");
    assert_eq!(
        slack["text"],
        "[berth prod] held db/mysql: removal budget spent (commit 0123456789ab)"
    );
}

#[test]
fn a_headers_file_gives_sensitive_headers_and_names_a_bad_line_without_its_value() {
    let headers =
        parse_headers("# token for the receiver\nAuthorization: Bearer s3cret\n\nX-Team: db\n")
            .expect("headers");
    assert_eq!(headers.len(), 2);
    assert_eq!(headers[0].0, "authorization");
    assert!(headers[0].1.is_sensitive());
    let err = parse_headers("Authorization Bearer s3cret").expect_err("no colon");
    assert_eq!(err, "line 1 is not `Name: value`");
    assert!(!err.contains("s3cret"));
}
