//! The kwok stages the local control plane runs with: the release's "fast" stages (pods Ready at
//! once, deleted at once) for every pod, and a "slow" profile that a pod opts into with the label
//! `berth.test/kwok-profile: slow`: Running with its IP at once, Ready 5 s later, gone 3 s after
//! its deletion, as real pods with a readiness probe and a grace period behave. The tests that
//! measure availability during a restart use it; every other test stays fast.
//!
//! kwok reads its stages only at start, and the file lives in the shared binary cache: it is
//! composed again at every `cluster up` and rewritten whenever its content changes, so a machine
//! with an older cache picks new stages up at the next start of the cluster.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// The selector line that keeps a release stage off the pods that carry the profile label (jq path syntax, as
/// kwok's selectors read them).
const NOT_PROFILED: &str = "    - key: '.metadata.labels[\"berth.test/kwok-profile\"]'\n      \
                            operator: 'DoesNotExist'\n";

/// Where each release stage's selector starts; the profile exclusion goes right after it.
const MATCH_EXPRESSIONS: &str = "  selector:\n    matchExpressions:\n";

/// The slow profile. Three stages, each selected by the label:
/// - `pod-slow-start`: a new pod becomes Running with its IP (so it has its DNS record, as a
///   real pod has once its sandbox is up) but not Ready;
/// - `pod-slow-ready`: 5 s later it becomes Ready (a readiness probe passing);
/// - `pod-slow-delete`: a deleted pod is gone 3 s later (a process stopping on SIGTERM).
const SLOW_PROFILE: &str = r#"---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-slow-start
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.labels["berth.test/kwok-profile"]'
      operator: 'In'
      values:
      - 'slow'
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.podIP'
      operator: 'DoesNotExist'
  next:
    statusTemplate: |
      {{ $now := Now }}

      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{ $now | Quote }}
        reason: ContainersNotReady
        status: "False"
        type: Ready
      - lastTransitionTime: {{ $now | Quote }}
        reason: ContainersNotReady
        status: "False"
        type: ContainersReady

      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        restartCount: 0
        started: true
        state:
          running:
            startedAt: {{ $now | Quote }}
      {{ end }}

      initContainerStatuses:
      {{ range .spec.initContainers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: true
        restartCount: 0
        state:
          terminated:
            exitCode: 0
            finishedAt: {{ $now | Quote }}
            reason: Completed
            startedAt: {{ $now | Quote }}
      {{ end }}
      {{ $hostIPs := NodeIPsWith .spec.nodeName }}
      {{ with $hostIPs }}
      hostIP: {{ index . 0 | Quote }}
      hostIPs:
      {{ range . }}
      - ip: {{ . | Quote }}
      {{ end }}
      {{ end }}
      {{ $podIPs := PodIPsWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) }}
      {{ with $podIPs }}
      podIP: {{ index . 0 | Quote }}
      podIPs:
      {{ range . }}
      - ip: {{ . | Quote }}
      {{ end }}
      {{ end }}
      phase: Running
      startTime: {{ $now | Quote }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-slow-ready
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.labels["berth.test/kwok-profile"]'
      operator: 'In'
      values:
      - 'slow'
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Running'
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: 'NotIn'
      values:
      - 'True'
  delay:
    durationMilliseconds: 5000
  next:
    statusTemplate: |
      {{ $now := Now }}

      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Ready
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: ContainersReady

      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: true
        restartCount: 0
        started: true
        state:
          running:
            startedAt: {{ $now | Quote }}
      {{ end }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-slow-delete
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.labels["berth.test/kwok-profile"]'
      operator: 'In'
      values:
      - 'slow'
    - key: '.metadata.deletionTimestamp'
      operator: 'Exists'
  delay:
    durationMilliseconds: 3000
  next:
    delete: true
"#;

/// The harness's stages from the release's (`---`-separated stage documents): every pod stage of
/// the release is kept off profiled pods, and the slow profile is added.
pub fn compose(release: &str) -> Result<String> {
    let mut out = String::new();
    for doc in release.split("---\n").filter(|d| !d.trim().is_empty()) {
        out.push_str("---\n");
        if !doc.contains("\n    kind: Pod\n") {
            out.push_str(doc);
            continue;
        }
        let name = doc
            .lines()
            .find_map(|l| l.trim().strip_prefix("name: "))
            .unwrap_or("?");
        if doc.matches(MATCH_EXPRESSIONS).count() != 1 {
            bail!(
                "kwok's pod stage `{name}` does not have exactly one `selector.matchExpressions` \
                 list where the harness expects it; update xtask/src/kwok_stages.rs to the \
                 release's stage format"
            );
        }
        out.push_str(&doc.replacen(
            MATCH_EXPRESSIONS,
            &format!("{MATCH_EXPRESSIONS}{NOT_PROFILED}"),
            1,
        ));
    }
    out.push_str(SLOW_PROFILE);
    Ok(out)
}

/// Composes the harness's stages from the release's file and writes them to `out` when they
/// differ from what is there (atomically: a kwok starting meanwhile reads the old or the new).
/// Returns whether the file was written.
pub fn write_if_changed(release: &Path, out: &Path) -> Result<bool> {
    let text = fs::read_to_string(release)
        .with_context(|| format!("reading kwok's release stages {}", release.display()))?;
    let composed = compose(&text)?;
    if fs::read_to_string(out).is_ok_and(|old| old == composed) {
        return Ok(false);
    }
    let tmp = out.with_extension(format!("partial-{}", std::process::id()));
    fs::write(&tmp, &composed).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, out).with_context(|| format!("renaming into {}", out.display()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELEASE: &str = "---\napiVersion: kwok.x-k8s.io/v1alpha1\nkind: Stage\nmetadata:\n  \
                           name: node-initialize\nspec:\n  resourceRef:\n    apiGroup: v1\n    \
                           kind: Node\n  selector:\n    matchExpressions:\n    - key: x\n---\n\
                           apiVersion: kwok.x-k8s.io/v1alpha1\nkind: Stage\nmetadata:\n  name: \
                           pod-ready\nspec:\n  resourceRef:\n    apiGroup: v1\n    kind: Pod\n  \
                           selector:\n    matchExpressions:\n    - key: y\n";

    #[test]
    fn release_pod_stages_skip_profiled_pods_and_node_stages_are_kept_as_they_are() {
        let composed = compose(RELEASE).expect("composes");
        let docs: Vec<&str> = composed.split("---\n").filter(|d| !d.is_empty()).collect();
        assert_eq!(docs.len(), 2 + 3, "{composed}");
        assert!(!docs[0].contains("kwok-profile"), "{}", docs[0]);
        assert!(
            docs[1].contains(&format!("{MATCH_EXPRESSIONS}{NOT_PROFILED}    - key: y\n")),
            "{}",
            docs[1]
        );
        for (doc, name) in
            docs[2..]
                .iter()
                .zip(["pod-slow-start", "pod-slow-ready", "pod-slow-delete"])
        {
            assert!(doc.contains(&format!("name: {name}\n")), "{doc}");
            assert!(doc.contains("operator: 'In'\n      values:\n      - 'slow'"));
        }
    }

    #[test]
    fn a_pod_stage_in_an_unknown_format_is_refused_not_left_matching_every_pod() {
        let odd = RELEASE.replace("  selector:\n    matchExpressions:\n    - key: y", "  x: 1");
        let err = compose(&odd).expect_err("refused").to_string();
        assert!(err.contains("`pod-ready`"), "{err}");
    }

    #[test]
    fn the_file_is_rewritten_only_when_its_content_changes() {
        let dir = tempdir();
        let (release, out) = (dir.join("stages.yaml"), dir.join("harness-stages.yaml"));
        fs::write(&release, RELEASE).expect("write");
        fs::write(&out, "stages of an older harness").expect("write");
        assert!(write_if_changed(&release, &out).expect("writes"));
        assert_eq!(
            fs::read_to_string(&out).expect("read"),
            compose(RELEASE).expect("composes")
        );
        assert!(!write_if_changed(&release, &out).expect("unchanged"));
        let _ = fs::remove_dir_all(dir);
    }

    fn tempdir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "xtask-kwok-stages-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        fs::create_dir_all(&dir).expect("temp dir");
        dir
    }
}
