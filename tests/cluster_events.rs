//! The Kubernetes Events berth records on an app's StatefulSet, written as the restricted
//! `berth` user of config/rbac.yaml: an apply, a change and a removal each leave theirs, so
//! `kubectl describe statefulset` tells the story.

mod support;

use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;

use support::{Specs, TestNamespace, berth, ensure_rbac, simple_app};

/// The reasons of the events berth recorded on StatefulSet `name`, oldest first.
async fn berth_events(ns: &TestNamespace, name: &str) -> Vec<Event> {
    let mut events: Vec<Event> = ns
        .api::<Event>()
        .list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                && e.reporting_controller.as_deref() == Some("berth")
        })
        .collect();
    events.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
    events
}

fn reasons(events: &[Event]) -> Vec<&str> {
    events.iter().filter_map(|e| e.reason.as_deref()).collect()
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn apply_change_and_removal_are_recorded_as_events_on_the_statefulset() {
    let ns = TestNamespace::new("events").await;
    ensure_rbac(&ns.client).await;
    let specs = Specs::new();

    specs.write("web.toml", &simple_app(1, "1Gi"));
    // Another app stays, so removing web does not empty the directory.
    specs.write("keep.toml", &simple_app(1, "1Gi"));
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    let after_create = berth_events(&ns, "web").await;
    assert_eq!(reasons(&after_create), ["Applied"]);
    let applied = &after_create[0];
    assert_eq!(
        applied.reporting_instance.as_deref(),
        Some(ns.name.as_str()),
        "the instance reports"
    );
    assert_eq!(applied.type_.as_deref(), Some("Normal"));
    let regarding = applied.regarding.as_ref().expect("regarding");
    assert_eq!(regarding.kind.as_deref(), Some("StatefulSet"));
    assert!(regarding.uid.is_some(), "the event names the object by uid");

    specs.write("web.toml", &simple_app(2, "1Gi"));
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    assert_eq!(
        reasons(&berth_events(&ns, "web").await),
        ["Applied", "Applied"]
    );

    specs.remove("web.toml");
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    let all = berth_events(&ns, "web").await;
    assert_eq!(
        reasons(&all),
        [
            "Applied",
            "Applied",
            "RemovalStarted",
            "ScaledToZero",
            "Removed"
        ]
    );
    let started = all[2].note.as_deref().unwrap_or_default();
    assert!(started.contains("scaled 2 → 0"), "{started}");
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn the_daemons_holds_blocks_and_drift_corrections_and_a_recreate_are_recorded_too() {
    use std::time::Duration;

    use k8s_openapi::api::apps::v1::StatefulSet;
    use kube::api::{Patch, PatchParams};
    use support::daemon::{Daemon, write_atomic};
    use support::wait_for;

    let ns = TestNamespace::new("events-daemon").await;
    ensure_rbac(&ns.client).await;
    let specs = Specs::new();
    for app in ["held", "blocked", "drifted", "keep"] {
        specs.write(&format!("{app}.toml"), &simple_app(1, "1Gi"));
    }
    let logs = tempfile::tempdir().expect("a log directory");
    let config = logs.path().join("berth.toml");
    std::fs::write(
        &config,
        format!("[safety]\nmax_removals = 0\nnamespace = \"{}\"\n", ns.name),
    )
    .expect("write the config");
    let config = config.display().to_string();
    let daemon = Daemon::start_with(
        &ns,
        specs.dir.path(),
        &["--config", &config],
        &[],
        logs.path().join("berth.log"),
    )
    .await;

    // A removal with no budget: held. A headless rename nobody allowed: blocked. A hand scale:
    // drift, set back.
    specs.remove("held.toml");
    write_atomic(
        specs.dir.path(),
        "blocked.toml",
        &format!("headless = \"blocked-2\"\n{}", simple_app(1, "1Gi")),
    );
    ns.api::<StatefulSet>()
        .patch(
            "drifted",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 3}})),
        )
        .await
        .expect("scale by hand");
    for (app, reason) in [
        ("held", "RemovalHeld"),
        ("blocked", "Blocked"),
        ("drifted", "DriftCorrected"),
    ] {
        wait_for(
            &format!("{reason} on {app}"),
            Duration::from_secs(30),
            || async {
                reasons(&berth_events(&ns, app).await)
                    .contains(&reason)
                    .then_some(())
            },
        )
        .await;
    }
    let held = berth_events(&ns, "held").await;
    let warning = held
        .iter()
        .find(|e| e.reason.as_deref() == Some("RemovalHeld"))
        .expect("the hold's event");
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    drop(daemon);

    // A recreate, allowed: both of its steps are on the (new) StatefulSet.
    specs.write("held.toml", &simple_app(1, "1Gi"));
    berth(&ns, &["apply", "--yes", "--allow-recreate", specs.path()])
        .await
        .expect_code(0);
    let blocked = reasons(&berth_events(&ns, "blocked").await)
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>();
    assert!(
        blocked.iter().any(|r| r == "Recreating") && blocked.iter().any(|r| r == "Recreated"),
        "{blocked:?}"
    );
    ns.cleanup().await;
}
