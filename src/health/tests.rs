use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod};
use serde_json::{Value, json};

use super::{Observed, State, assess};

fn sts(replicas: i64, status: Value) -> Value {
    json!({
        "metadata": {"name": "db", "generation": 2, "uid": "u1"},
        "spec": {"replicas": replicas, "updateStrategy": {"type": "RollingUpdate"}},
        "status": status
    })
}

fn settled(replicas: i64, ready: i64) -> Value {
    sts(
        replicas,
        json!({"observedGeneration": 2, "replicas": replicas, "readyReplicas": ready,
               "updatedReplicas": replicas, "currentRevision": "db-a", "updateRevision": "db-a"}),
    )
}

fn pod(name: &str, status: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "mysql"}],
                 "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": format!("data-{name}")}}]},
        "status": status
    }))
    .expect("a pod")
}

fn waiting(reason: &str, message: &str) -> Value {
    json!({"phase": "Running", "containerStatuses": [{
        "name": "mysql", "ready": false, "restartCount": 4, "image": "mysql", "imageID": "",
        "state": {"waiting": {"reason": reason, "message": message}}
    }]})
}

fn event(kind: &str, name: &str, reason: &str, message: &str, at: &str) -> Event {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{name}.{at}")},
        "involvedObject": {"kind": kind, "name": name},
        "reason": reason, "message": message, "type": "Warning", "lastTimestamp": at
    }))
    .expect("an event")
}

#[test]
fn no_statefulset_is_missing() {
    let health = assess(&Observed::default());
    assert_eq!(health.state, State::Missing);
}

#[test]
fn every_pod_ready_on_the_current_revision_is_healthy() {
    let set = settled(3, 3);
    let health = assess(&Observed {
        statefulset: Some(&set),
        ..Observed::default()
    });
    assert_eq!((health.state, health.reason), (State::Healthy, None));
}

#[test]
fn a_rollout_or_pods_not_ready_yet_are_progressing() {
    let rolling = sts(
        3,
        json!({"observedGeneration": 2, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 1,
               "currentRevision": "db-old", "updateRevision": "db-new"}),
    );
    let health = assess(&Observed {
        statefulset: Some(&rolling),
        ..Observed::default()
    });
    assert_eq!(health.state, State::Progressing);
    assert_eq!(
        health.reason.as_deref(),
        Some("rolling: 1/3 updated (old → new)")
    );
    let starting = settled(3, 1);
    let health = assess(&Observed {
        statefulset: Some(&starting),
        ..Observed::default()
    });
    assert_eq!(health.state, State::Progressing);
    assert_eq!(health.reason.as_deref(), Some("1/3 pods ready"));
}

#[test]
fn a_crash_loop_names_the_first_pod_and_its_container() {
    let set = settled(3, 1);
    let p2 = pod(
        "db-2",
        waiting("CrashLoopBackOff", "back-off 40s restarting"),
    );
    let p1 = pod(
        "db-1",
        waiting("ImagePullBackOff", "Back-off pulling image \"mysql:9.9\""),
    );
    let health = assess(&Observed {
        statefulset: Some(&set),
        pods: vec![&p2, &p1],
        ..Observed::default()
    });
    assert_eq!(health.state, State::Degraded);
    assert!(!health.may_clear);
    assert_eq!(
        health.reason.as_deref(),
        Some("pod db-1: container mysql: ImagePullBackOff: Back-off pulling image \"mysql:9.9\"")
    );
}

#[test]
fn a_container_killed_for_memory_says_so() {
    let set = settled(1, 0);
    let mut status = waiting("CrashLoopBackOff", "");
    status["containerStatuses"][0]["lastState"] =
        json!({"terminated": {"reason": "OOMKilled", "exitCode": 137}});
    let p = pod("db-0", status);
    let health = assess(&Observed {
        statefulset: Some(&set),
        pods: vec![&p],
        ..Observed::default()
    });
    assert_eq!(
        health.reason.as_deref(),
        Some(
            "pod db-0: container mysql: OOMKilled, restarting (CrashLoopBackOff): raise its memory limit"
        )
    );
    let p = pod(
        "db-0",
        json!({"phase": "Running", "containerStatuses": [{
            "name": "mysql", "ready": false, "restartCount": 0, "image": "mysql", "imageID": "",
            "state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]}),
    );
    let health = assess(&Observed {
        statefulset: Some(&set),
        pods: vec![&p],
        ..Observed::default()
    });
    assert_eq!(
        health.reason.as_deref(),
        Some("pod db-0: container mysql: OOMKilled (exit code 137): raise its memory limit")
    );
}

#[test]
fn an_unschedulable_pod_is_degraded_with_the_schedulers_words_and_may_clear() {
    let set = settled(2, 1);
    let p = pod(
        "db-1",
        json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": "0/1 nodes are available: 1 Insufficient cpu."}]}),
    );
    let health = assess(&Observed {
        statefulset: Some(&set),
        pods: vec![&p],
        ..Observed::default()
    });
    assert_eq!(health.state, State::Degraded);
    assert!(health.may_clear);
    assert_eq!(
        health.reason.as_deref(),
        Some("pod db-1 Unschedulable: 0/1 nodes are available: 1 Insufficient cpu.")
    );
}

#[test]
fn a_pending_claim_is_named_with_its_latest_event() {
    let set = settled(1, 0);
    let p = pod(
        "db-0",
        json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": "pod has unbound immediate PersistentVolumeClaims"}]}),
    );
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "data-db-0"}, "status": {"phase": "Pending"}
    }))
    .expect("a claim");
    let old = event(
        "PersistentVolumeClaim",
        "data-db-0",
        "ProvisioningFailed",
        "old words",
        "2026-01-01T00:00:00Z",
    );
    let new = event(
        "PersistentVolumeClaim",
        "data-db-0",
        "ProvisioningFailed",
        "storageclass.storage.k8s.io \"gold\" not found",
        "2026-01-01T00:05:00Z",
    );
    let health = assess(&Observed {
        statefulset: Some(&set),
        pods: vec![&p],
        claims: vec![&claim],
        events: vec![&new, &old],
    });
    assert_eq!(
        health.reason.as_deref(),
        Some("claim data-db-0 Pending: storageclass.storage.k8s.io \"gold\" not found")
    );
    assert!(health.may_clear);
}

#[test]
fn failed_create_counts_only_while_pods_are_missing() {
    let rejected = event(
        "StatefulSet",
        "db",
        "FailedCreate",
        "create Pod db-0 in StatefulSet db failed error: pods \"db-0\" is forbidden: violates PodSecurity \"restricted:latest\"",
        "2026-01-01T00:00:00Z",
    );
    let short = sts(
        1,
        json!({"observedGeneration": 2, "replicas": 0, "currentRevision": "db-a", "updateRevision": "db-a"}),
    );
    let health = assess(&Observed {
        statefulset: Some(&short),
        events: vec![&rejected],
        ..Observed::default()
    });
    assert_eq!(health.state, State::Degraded);
    assert!(!health.may_clear);
    assert!(
        health
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("FailedCreate: create Pod db-0")),
        "{health:?}"
    );
    // The pods exist now: an old event is history, not the app's state.
    let full = settled(1, 1);
    let health = assess(&Observed {
        statefulset: Some(&full),
        events: vec![&rejected],
        ..Observed::default()
    });
    assert_eq!(health.state, State::Healthy);
}

#[test]
fn a_broken_container_outranks_a_problem_that_may_clear() {
    let set = settled(3, 0);
    let unplaced = pod(
        "db-0",
        json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": "0/1 nodes"}]}),
    );
    let crashing = pod("db-1", waiting("CrashLoopBackOff", ""));
    let health = assess(&Observed {
        statefulset: Some(&set),
        pods: vec![&unplaced, &crashing],
        ..Observed::default()
    });
    assert_eq!(
        health.reason.as_deref(),
        Some("pod db-1: container mysql: CrashLoopBackOff")
    );
    assert!(!health.may_clear);
}
