//! Who sent what: the identity the measured commands run as, and the API server's request
//! counters read before and after each of them.
//!
//! The measured commands (berth and kubectl alike) run as the ServiceAccount [`IDENTITY`], and one
//! FlowSchema per verb classifies its requests, so the priority-and-fairness counters
//! (`apiserver_flowcontrol_dispatched_requests_total{flow_schema}`) count exactly what the
//! measured command sent, however many other clients (the controllers, other tests) use the same
//! cluster: `apiserver_request_total` has no per-client label.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use super::{BENCH_LABEL, Bench};
use crate::cluster;

/// The ServiceAccount the measured commands run as, and the prefix of its FlowSchemas' names.
pub(super) const IDENTITY: &str = "berth-bench";
/// Kubernetes verbs, each with its own FlowSchema `berth-bench-<verb>`.
const VERBS: [&str; 8] = [
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];
/// The verbs that change something, for [`writes`].
const WRITE_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];
/// The kinds berth writes. `apiserver_request_total` tells dry-runs from real writes, which the
/// FlowSchema counters cannot; it is cluster-wide, so it is read over these kinds only and
/// reported as an approximation.
const BERTH_RESOURCES: [&str; 3] = ["statefulsets", "services", "poddisruptionbudgets"];

/// One reading of the API server's request counters; two readings around a command give what
/// it sent ([`delta`]).
pub(super) struct RequestCounts {
    /// Requests sent as [`IDENTITY`], by verb: exact.
    pub(super) by_verb: BTreeMap<String, u64>,
    /// Writes to [`BERTH_RESOURCES`] by every client, as `write` and `dry-run`: approximate.
    pub(super) cluster_wide: BTreeMap<String, u64>,
}

impl Bench {
    /// Requests sent as [`IDENTITY`], by verb (exact), and cluster-wide writes to berth's kinds
    /// split into `write` and `dry-run` (approximate: every client's).
    pub(super) fn request_counts(&self) -> Result<RequestCounts> {
        let text = self.rt.block_on(async {
            let req = http::Request::get("/metrics").body(Vec::new())?;
            anyhow::Ok(self.client.request_text(req).await?)
        })?;
        let mut by_verb = BTreeMap::new();
        let mut cluster_wide = BTreeMap::new();
        for line in text.lines() {
            let Some((name, rest)) = line.split_once('{') else {
                continue;
            };
            let Some((labels, value)) = rest.rsplit_once('}') else {
                continue;
            };
            let value: f64 = value.trim().parse().unwrap_or(0.0);
            let labels = parse_labels(labels);
            let get = |k: &str| labels.get(k).map(String::as_str).unwrap_or_default();
            match name {
                "apiserver_flowcontrol_dispatched_requests_total" => {
                    if let Some(verb) = get("flow_schema").strip_prefix(&format!("{IDENTITY}-")) {
                        *by_verb.entry(verb.to_string()).or_insert(0) += value as u64;
                    }
                }
                "apiserver_request_total" => {
                    let verb = get("verb");
                    if BERTH_RESOURCES.contains(&get("resource"))
                        && get("subresource").is_empty()
                        && matches!(verb, "POST" | "PUT" | "PATCH" | "APPLY" | "DELETE")
                    {
                        let key = if get("dry_run").is_empty() {
                            "write"
                        } else {
                            "dry-run"
                        };
                        *cluster_wide.entry(key.to_string()).or_insert(0) += value as u64;
                    }
                }
                _ => {}
            }
        }
        Ok(RequestCounts {
            by_verb,
            cluster_wide,
        })
    }

    /// The ServiceAccount the measured commands run as (bound to cluster-admin, like the admin
    /// certificate), one FlowSchema per verb for it in the exempt priority level (never queued,
    /// as the admin certificate is not), and a kubeconfig with its token.
    pub(super) fn create_identity(&mut self) -> Result<()> {
        let mut manifest = format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {IDENTITY}, labels: \
             {{{BENCH_LABEL}: \"true\"}}}}\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: \
             {{name: {IDENTITY}, namespace: {IDENTITY}}}\n---\napiVersion: \
             rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{name: \
             {IDENTITY}, labels: {{{BENCH_LABEL}: \"true\"}}}}\nroleRef: {{apiGroup: \
             rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}}\nsubjects: \
             [{{kind: ServiceAccount, name: {IDENTITY}, namespace: {IDENTITY}}}]\n"
        );
        for verb in VERBS {
            manifest.push_str(&format!(
                "---\napiVersion: flowcontrol.apiserver.k8s.io/v1\nkind: FlowSchema\nmetadata: \
                 {{name: {IDENTITY}-{verb}, labels: {{{BENCH_LABEL}: \"true\"}}}}\nspec:\n  \
                 matchingPrecedence: 10\n  priorityLevelConfiguration: {{name: exempt}}\n  \
                 rules:\n  - subjects: [{{kind: ServiceAccount, serviceAccount: {{name: \
                 {IDENTITY}, namespace: {IDENTITY}}}}}]\n    resourceRules: [{{verbs: \
                 [\"{verb}\"], apiGroups: [\"*\"], resources: [\"*\"], namespaces: [\"*\"], \
                 clusterScope: true}}]\n    nonResourceRules: [{{verbs: [\"{verb}\"], \
                 nonResourceURLs: [\"*\"]}}]\n"
            ));
        }
        let mut child = Command::new("kubectl")
            .env("KUBECONFIG", &self.admin_kubeconfig)
            .args(["apply", "--server-side", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .context("running kubectl")?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(manifest.as_bytes())?;
        }
        if !child.wait()?.success() {
            bail!("creating the bench identity ({IDENTITY}) failed");
        }
        let token = Command::new("kubectl")
            .env("KUBECONFIG", &self.admin_kubeconfig)
            .args(["create", "token", IDENTITY, "-n", IDENTITY, "--duration=6h"])
            .output()
            .context("running kubectl create token")?;
        if !token.status.success() {
            bail!(
                "kubectl create token failed: {}",
                String::from_utf8_lossy(&token.stderr)
            );
        }
        let token = String::from_utf8(token.stdout)?.trim().to_string();
        let admin = fs::read_to_string(&self.admin_kubeconfig)?;
        let ca = admin
            .lines()
            .find_map(|l| l.trim().strip_prefix("certificate-authority-data:"))
            .context("no certificate-authority-data in the admin kubeconfig")?
            .trim();
        fs::write(
            &self.kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: \
                 https://127.0.0.1:{}\n    certificate-authority-data: {ca}\nusers:\n- name: \
                 {IDENTITY}\n  user:\n    token: {token}\ncontexts:\n- name: local\n  context:\n    \
                 cluster: local\n    user: {IDENTITY}\ncurrent-context: local\n",
                cluster::APISERVER_PORT
            ),
        )?;
        Ok(())
    }
}

/// `k="v",k2="v2"` from a Prometheus sample line.
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((at, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                '"' => {
                    end = at + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').trim().to_string(), value);
        rest = &after[end..];
    }
    labels
}

/// What each counter grew by between two readings; counters that did not move are left out.
pub(super) fn delta(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.saturating_sub(before.get(k).copied().unwrap_or(0)),
            )
        })
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// Write requests among requests by verb.
pub(super) fn writes(requests: &BTreeMap<String, u64>) -> u64 {
    requests
        .iter()
        .filter(|(verb, _)| WRITE_VERBS.contains(&verb.as_str()))
        .map(|(_, n)| n)
        .sum()
}

/// Requests by verb as a progress line: `get 3, patch 5`.
pub(super) fn requests_line(requests: &BTreeMap<String, u64>) -> String {
    if requests.is_empty() {
        return "no requests".to_string();
    }
    requests
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse() {
        let labels = parse_labels(
            r#"code="201",component="apiserver",dry_run="All",resource="statefulsets",subresource="",verb="APPLY""#,
        );
        assert_eq!(labels["dry_run"], "All");
        assert_eq!(labels["subresource"], "");
        assert_eq!(labels["verb"], "APPLY");
    }

    #[test]
    fn writes_are_counted_by_verb() {
        let requests = BTreeMap::from([
            ("patch".to_string(), 3),
            ("create".to_string(), 5),
            ("get".to_string(), 7),
        ]);
        assert_eq!(writes(&requests), 8);
    }
}
