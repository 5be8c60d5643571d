//! Carrying out a plan in the order `after` asks for: wave by wave ([`crate::plan::order`]),
//! each staying app only once the apps it names are healthy at their current spec. An app whose
//! dependency cannot get there (blocked, held, suspended, failed, degraded, or not healthy in
//! time) is not applied and is reported as failed with why, so the run ends with 2 and the next
//! run tries again.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::wait::{Waited, until_healthy};
use super::{Cluster, ClusterError, Planned, Progress, Report};
use crate::plan::{Action, order};
use crate::spec::{AppKey, Loaded};

impl Cluster {
    /// Like [`Cluster::execute`], in `after` order; `timeout` bounds each wait for health.
    pub async fn execute_in_order(
        &self,
        planned: &Planned,
        loaded: &Loaded,
        timeout: Duration,
        progress: &dyn Progress,
    ) -> Result<Report, ClusterError> {
        let nodes = planned.order_nodes(loaded);
        let staying: BTreeSet<AppKey> = loaded.apps.iter().map(|a| a.key()).collect();
        let actions: BTreeMap<AppKey, &Action> = planned
            .plan
            .apps
            .iter()
            .map(|a| (AppKey::new(a.namespace.clone(), a.name.clone()), &a.action))
            .collect();
        let mut report = Report::default();
        // Apps that did not get where their dependents need them, with why.
        let mut stuck: BTreeMap<AppKey, String> = BTreeMap::new();
        for wave in order::waves(&nodes) {
            let mut ready: Vec<AppKey> = Vec::new();
            let mut to_check: BTreeSet<AppKey> = BTreeSet::new();
            for key in wave {
                let node = &nodes[&key];
                let deps: Vec<&AppKey> = node
                    .after
                    .iter()
                    .filter(|d| !node.removal && staying.contains(*d))
                    .collect();
                let blocked = deps.iter().find_map(|dep| {
                    let why = stuck
                        .get(*dep)
                        .cloned()
                        .or_else(|| match actions.get(*dep) {
                            Some(Action::Blocked { .. }) => Some("blocked".to_string()),
                            Some(Action::Held { .. }) => Some("held".to_string()),
                            Some(Action::Suspended { .. }) => Some("suspended".to_string()),
                            _ => None,
                        })?;
                    Some(format!("waits for {dep}, which is {why}"))
                });
                match blocked {
                    Some(why) => {
                        progress.step(&key.to_string(), &format!("not applied: {why}"));
                        stuck.insert(key.clone(), "not applied".to_string());
                        report
                            .failed
                            .push((key.to_string(), format!("not applied: {why}")));
                    }
                    None => {
                        to_check.extend(deps.into_iter().cloned());
                        ready.push(key);
                    }
                }
            }
            if !to_check.is_empty() {
                let list: Vec<AppKey> = to_check.iter().cloned().collect();
                let unhealthy = match until_healthy(self, &list, timeout, progress).await? {
                    Waited::Healthy => Vec::new(),
                    Waited::Degraded(apps) | Waited::TimedOut(apps) => apps,
                };
                for (dep, health) in unhealthy {
                    let why = match health.reason {
                        Some(reason) => format!("{}: {reason}", health.state),
                        None => health.state.to_string(),
                    };
                    stuck.insert(dep.clone(), why.clone());
                    ready.retain(|key| {
                        if !nodes[key].after.contains(&dep) {
                            return true;
                        }
                        let message = format!("not applied: waits for {dep}, which is {why}");
                        progress.step(&key.to_string(), &message);
                        report.failed.push((key.to_string(), message));
                        false
                    });
                }
            }
            let done = self.execute(&planned.only(&ready), progress).await;
            for (app, error) in &done.failed {
                if let Some((ns, name)) = app.split_once('/') {
                    stuck.insert(AppKey::new(ns, name), format!("failed: {error}"));
                }
            }
            report.done.extend(done.done);
            report.failed.extend(done.failed);
            report.retained_pvcs.extend(done.retained_pvcs);
            report.waiting.extend(done.waiting);
            report.not_attempted.extend(done.not_attempted);
            report.server_unreachable |= done.server_unreachable;
        }
        report.failed.sort();
        Ok(report)
    }
}
