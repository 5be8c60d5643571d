//! What a test namespace's pods look like from outside while berth works on them, at every
//! moment: one watch per kind (pods, EndpointSlices, Services, StatefulSets,
//! PodDisruptionBudgets), and after every event of any of them the whole state is checked:
//! - how many pods are Ready (and not terminating);
//! - whether every Ready pod's DNS record is published: an endpoint with the pod's hostname in
//!   an EndpointSlice of the headless Service its `subdomain` names, and that Service exists;
//! - whether any object that was there when the watch started is gone while a pod is left.
//!
//! Events are the moments the state changes, so a state between two events is one the cluster
//! was in. Used with the slow kwok profile (`berth.test/kwok-profile: slow`), where pods take
//! seconds to become Ready and to stop, as real ones do.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::runtime::{WatchStreamExt, watcher};

use super::{TestNamespace, pod_ready, wait_for};

/// The pod label and value that select kwok's slow profile (see xtask/src/kwok_stages.rs).
pub const SLOW_PROFILE_LABEL: (&str, &str) = ("berth.test/kwok-profile", "slow");

/// How many examples of each kind of problem are kept (the count is always exact).
const EXAMPLES: usize = 8;

/// What the watch saw.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// The lowest number of Ready, not terminating pods at any moment.
    pub min_ready: Option<usize>,
    /// Moments a Ready pod had no DNS record, with what was missing.
    pub without_dns: Vec<String>,
    pub without_dns_count: usize,
    /// Moments an object that existed at the start was gone while pods were left.
    pub gone_before_pods: Vec<String>,
    pub gone_before_pods_count: usize,
    /// Watch events seen after the first complete lists.
    pub events: usize,
}

/// A running watch of one namespace; [`Availability::stop`] ends it and says what it saw.
pub struct Availability {
    seen: Arc<Mutex<Seen>>,
    listed: Arc<Mutex<bool>>,
    task: tokio::task::JoinHandle<()>,
}

/// One watch event of any of the watched kinds.
#[allow(clippy::large_enum_variant)] // Short-lived, one at a time: boxing buys nothing.
enum Change {
    Pod(watcher::Event<Pod>),
    Slice(watcher::Event<EndpointSlice>),
    Service(watcher::Event<Service>),
    Set(watcher::Event<StatefulSet>),
    Budget(watcher::Event<PodDisruptionBudget>),
}

/// The objects of one kind as the watch knows them, by name.
struct Store<K> {
    objects: BTreeMap<String, K>,
    /// Filled during a (re)list, swapped in when it is complete.
    listing: BTreeMap<String, K>,
    listed: bool,
}

impl<K: kube::Resource> Store<K> {
    fn new() -> Store<K> {
        Store {
            objects: BTreeMap::new(),
            listing: BTreeMap::new(),
            listed: false,
        }
    }

    fn update(&mut self, event: watcher::Event<K>) {
        match event {
            watcher::Event::Apply(o) => {
                self.objects.insert(o.name_any(), o);
            }
            watcher::Event::Delete(o) => {
                self.objects.remove(&o.name_any());
            }
            watcher::Event::Init => self.listing.clear(),
            watcher::Event::InitApply(o) => {
                self.listing.insert(o.name_any(), o);
            }
            watcher::Event::InitDone => {
                self.objects = std::mem::take(&mut self.listing);
                self.listed = true;
            }
        }
    }
}

/// Everything the watch knows now.
struct State {
    pods: Store<Pod>,
    slices: Store<EndpointSlice>,
    services: Store<Service>,
    sets: Store<StatefulSet>,
    budgets: Store<PodDisruptionBudget>,
    /// `Kind name` of every object there when all lists were first complete.
    at_start: Option<BTreeSet<String>>,
}

impl State {
    fn listed(&self) -> bool {
        self.pods.listed
            && self.slices.listed
            && self.services.listed
            && self.sets.listed
            && self.budgets.listed
    }

    fn objects(&self) -> BTreeSet<String> {
        let services = self.services.objects.keys().map(|n| format!("Service {n}"));
        let sets = self.sets.objects.keys().map(|n| format!("StatefulSet {n}"));
        let budgets = self
            .budgets
            .objects
            .keys()
            .map(|n| format!("PodDisruptionBudget {n}"));
        services.chain(sets).chain(budgets).collect()
    }

    /// Why the Ready pod `pod` has no DNS record now, if it has none.
    fn missing_dns(&self, pod: &Pod) -> Option<String> {
        let spec = pod.spec.as_ref()?;
        let name = pod.name_any();
        let Some(subdomain) = spec.subdomain.as_deref() else {
            return Some(format!("{name} names no headless Service (no subdomain)"));
        };
        let hostname = spec.hostname.clone().unwrap_or_else(|| name.clone());
        let headless =
            self.services.objects.get(subdomain).is_some_and(|s| {
                s.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
            });
        if !headless {
            return Some(format!("{name}: no headless Service {subdomain}"));
        }
        let published = self.slices.objects.values().any(|slice| {
            slice
                .labels()
                .get("kubernetes.io/service-name")
                .map(String::as_str)
                == Some(subdomain)
                && slice.endpoints.iter().any(|e| {
                    e.hostname.as_deref() == Some(hostname.as_str())
                        && e.target_ref.as_ref().and_then(|r| r.name.as_deref())
                            == Some(name.as_str())
                })
        });
        (!published)
            .then(|| format!("{name}: no endpoint {hostname} in the EndpointSlices of {subdomain}"))
    }

    /// Checks the state after an event.
    fn check(&mut self, since: Duration, seen: &mut Seen) {
        if !self.listed() {
            return;
        }
        if self.at_start.is_none() {
            self.at_start = Some(self.objects());
        }
        let at_start = self.at_start.clone().unwrap_or_default();
        seen.events += 1;
        let at = format!("{:.1}s", since.as_secs_f64());
        let running: Vec<&Pod> = self
            .pods
            .objects
            .values()
            .filter(|p| p.metadata.deletion_timestamp.is_none() && pod_ready(p))
            .collect();
        seen.min_ready = Some(
            seen.min_ready
                .map_or(running.len(), |m| m.min(running.len())),
        );
        for pod in running {
            if let Some(why) = self.missing_dns(pod) {
                seen.without_dns_count += 1;
                // The first moment of each distinct problem.
                if seen.without_dns.len() < EXAMPLES
                    && !seen.without_dns.iter().any(|s| s.ends_with(&why))
                {
                    seen.without_dns.push(format!("at {at}: {why}"));
                }
            }
        }
        if !self.pods.objects.is_empty() {
            let now = self.objects();
            let gone: Vec<&String> = at_start.difference(&now).collect();
            if !gone.is_empty() {
                seen.gone_before_pods_count += 1;
                if seen.gone_before_pods.len() < EXAMPLES {
                    let pods: Vec<String> = self.pods.objects.keys().cloned().collect();
                    seen.gone_before_pods.push(format!(
                        "at {at}: {} gone while pod(s) {} were left",
                        gone.iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        pods.join(", ")
                    ));
                }
            }
        }
    }
}

impl Availability {
    /// Starts watching the namespace and returns once every list is complete, so the first
    /// moment checked is the state before the test acts.
    pub async fn watch(ns: &TestNamespace) -> Availability {
        fn events<K>(api: kube::Api<K>) -> impl futures::Stream<Item = watcher::Event<K>>
        where
            K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
            K: Send + 'static,
        {
            watcher(api, watcher::Config::default())
                .default_backoff()
                .filter_map(|e| async move { e.ok() })
        }
        let changes = futures::stream::select_all([
            events(ns.api::<Pod>()).map(Change::Pod).boxed(),
            events(ns.api::<EndpointSlice>()).map(Change::Slice).boxed(),
            events(ns.api::<Service>()).map(Change::Service).boxed(),
            events(ns.api::<StatefulSet>()).map(Change::Set).boxed(),
            events(ns.api::<PodDisruptionBudget>())
                .map(Change::Budget)
                .boxed(),
        ]);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let listed = Arc::new(Mutex::new(false));
        let (seen_by_task, listed_by_task) = (seen.clone(), listed.clone());
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut state = State {
                pods: Store::new(),
                slices: Store::new(),
                services: Store::new(),
                sets: Store::new(),
                budgets: Store::new(),
                at_start: None,
            };
            let mut changes = changes;
            while let Some(change) = changes.next().await {
                match change {
                    Change::Pod(e) => state.pods.update(e),
                    Change::Slice(e) => state.slices.update(e),
                    Change::Service(e) => state.services.update(e),
                    Change::Set(e) => state.sets.update(e),
                    Change::Budget(e) => state.budgets.update(e),
                }
                state.check(started.elapsed(), &mut seen_by_task.lock().expect("lock"));
                *listed_by_task.lock().expect("lock") = state.listed();
            }
        });
        let watch = Availability { seen, listed, task };
        wait_for(
            "the availability watch to list",
            Duration::from_secs(30),
            || async { (*watch.listed.lock().expect("lock")).then_some(()) },
        )
        .await;
        watch
    }

    /// Ends the watch and returns what it saw.
    pub fn stop(self) -> Seen {
        self.task.abort();
        self.seen.lock().expect("lock").clone()
    }
}

impl Seen {
    /// Panics unless at least `min` pods were Ready at every moment and every Ready pod had its
    /// DNS record throughout; `what` names the operation watched.
    pub fn assert_available(&self, what: &str, min: usize) {
        let min_ready = self.min_ready.unwrap_or(0);
        let mut problems = Vec::new();
        if min_ready < min {
            problems.push(format!(
                "only {min_ready} pod(s) were Ready at some moment (wanted at least {min})"
            ));
        }
        if self.without_dns_count > 0 {
            problems.push(format!(
                "{} moment(s) a Ready pod had no DNS record, e.g.\n  {}",
                self.without_dns_count,
                self.without_dns.join("\n  ")
            ));
        }
        assert!(
            problems.is_empty(),
            "during {what} ({} events watched): {}",
            self.events,
            problems.join("; ")
        );
    }

    /// Panics if anything that was there at the start went while a pod was left.
    pub fn assert_nothing_gone_before_the_pods(&self, what: &str) {
        assert!(
            self.gone_before_pods_count == 0,
            "during {what}: {} moment(s) an object was gone while pods were left, e.g.\n  {}",
            self.gone_before_pods_count,
            self.gone_before_pods.join("\n  ")
        );
    }
}

/// Panics unless the namespace's pods come up as the slow kwok profile makes them (Ready some
/// seconds after they start): on a control plane started before the profile existed they would
/// be Ready at once and the measurements would prove nothing.
pub async fn assert_slow_profile(ns: &TestNamespace) {
    let pods = ns
        .api::<Pod>()
        .list(&kube::api::ListParams::default())
        .await
        .expect("list pods");
    let slowest = pods
        .items
        .iter()
        .filter_map(|p| {
            let start = p.status.as_ref()?.start_time.as_ref()?.0;
            let ready = p
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "Ready" && c.status == "True")?
                .last_transition_time
                .as_ref()?
                .0;
            Some(ready.as_second() - start.as_second())
        })
        .max();
    assert!(
        slowest.is_some_and(|s| s >= 3),
        "the pods became Ready {slowest:?}s after they started: the slow kwok profile is not \
         active. kwok reads its stages only at start: restart the local control plane \
         (`cargo xtask cluster down && cargo xtask cluster up`) so it runs with \
         xtask/src/kwok_stages.rs"
    );
}
