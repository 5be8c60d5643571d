//! The escape hatch, `[patches]`, against the real local control plane: a JSON patch reaches
//! the live object, shows in the diff like any change, is checked by the server-side dry-run,
//! and a patch that does not apply is refused before anything is written.

mod support;

use k8s_openapi::api::apps::v1::StatefulSet;
use support::{Specs, TestNamespace, berth, ensure_rbac, simple_app};

fn with_patch(op: &str) -> String {
    format!(
        "{}\n[patches]\nstatefulset = [{op}]\n",
        simple_app(1, "1Gi")
    )
}

async fn history_limit(ns: &TestNamespace) -> Option<i32> {
    ns.api::<StatefulSet>()
        .get("web")
        .await
        .expect("read the StatefulSet")
        .spec
        .and_then(|s| s.revision_history_limit)
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn a_patch_is_applied_diffed_and_checked_like_any_field() {
    let ns = TestNamespace::new("patches").await;
    ensure_rbac(&ns.client).await;
    let specs = Specs::new();

    specs.write(
        "web.toml",
        &with_patch("{ op = \"add\", path = \"/spec/revisionHistoryLimit\", value = 3 }"),
    );
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    assert_eq!(history_limit(&ns).await, Some(3));
    berth(&ns, &["diff", specs.path()]).await.expect_code(0);

    // A changed patch is a change like any other, in the diff.
    specs.write(
        "web.toml",
        &with_patch("{ op = \"add\", path = \"/spec/revisionHistoryLimit\", value = 5 }"),
    );
    let diff = berth(&ns, &["diff", specs.path()]).await;
    diff.expect_code(1);
    assert!(
        diff.stdout.contains("-  revisionHistoryLimit: 3")
            && diff.stdout.contains("+  revisionHistoryLimit: 5"),
        "{}",
        diff.stdout
    );
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    assert_eq!(history_limit(&ns).await, Some(5));

    // A value the API server refuses is caught by the dry-run, before any write.
    specs.write(
        "web.toml",
        &with_patch("{ op = \"add\", path = \"/spec/revisionHistoryLimit\", value = \"many\" }"),
    );
    let run = berth(&ns, &["apply", "--yes", specs.path()]).await;
    assert_ne!(run.code, 0, "{run:?}");
    assert!(
        run.stderr.contains("revisionHistoryLimit"),
        "{}",
        run.stderr
    );
    assert_eq!(history_limit(&ns).await, Some(5));

    // A patch that does not apply to what berth renders: refused at validation, nothing sent.
    specs.write(
        "web.toml",
        &with_patch("{ op = \"test\", path = \"/spec/replicas\", value = 9 }"),
    );
    let validate = berth(&ns, &["validate", specs.path()]).await;
    validate.expect_code(2);
    assert!(
        validate.stderr.contains("error[patch-does-not-apply]")
            && validate.stderr.contains("web.toml:14:16"),
        "{}",
        validate.stderr
    );
    let run = berth(&ns, &["apply", "--yes", specs.path()]).await;
    run.expect_code(2);
    assert_eq!(history_limit(&ns).await, Some(5), "the app was touched");
    ns.cleanup().await;
}
