//! Live state for the daemon: one reflector per kind on the objects this instance owns, so plans
//! read a local cache instead of asking the API server, and every change to an owned object
//! (berth's own writes, and drift) names the app to look at again.

use std::collections::BTreeSet;

use futures::StreamExt;
use kube::ResourceExt;
use kube::api::DynamicObject;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::inventory::Inventory;
use super::{Cluster, Kind};
use crate::render::{NAME_LABEL, owner_selector};

/// Server-side timeout of each watch request, and with it how long a dead connection can go
/// unnoticed (see [`Cluster::start_cache`]).
const WATCH_TIMEOUT_SECS: u32 = 60;

/// `(namespace, app)`.
pub type AppKey = (String, String);

/// The readers of the owned-object caches.
#[derive(Clone)]
pub struct OwnedCache {
    stores: Vec<(Kind, Store<DynamicObject>)>,
}

impl OwnedCache {
    /// Waits until every cache holds a complete first list (never decide removals before that:
    /// an empty cache would look like "nothing is deployed").
    pub async fn wait_until_ready(&self) -> Result<(), reflector::store::WriterDropped> {
        for (_, store) in &self.stores {
            store.wait_until_ready().await?;
        }
        Ok(())
    }

    /// The inventory: full objects for apps in `scope` (all when None), identities for the rest.
    pub fn inventory(&self, scope: Option<&BTreeSet<AppKey>>) -> Inventory {
        let mut inventory = Inventory::default();
        for (kind, store) in &self.stores {
            for object in store.state() {
                let keep = scope.is_none_or(|s| s.contains(&app_key(&object).unwrap_or_default()));
                inventory.add(*kind, &object, keep);
            }
        }
        inventory
    }

    /// The inventory of the apps in `scope` alone: their objects, and no identities of other
    /// apps. Enough to plan apps that have a spec (the removal limit only concerns apps
    /// without one), at the cost of one pass over the caches without copying anything else:
    /// [`OwnedCache::inventory`] builds every app's identity, which for each of N apps at
    /// start-up made the first sync quadratic.
    pub fn inventory_of(&self, scope: &BTreeSet<AppKey>) -> Inventory {
        let mut inventory = Inventory::default();
        for (kind, store) in &self.stores {
            for object in store.state() {
                let (Some(ns), Some(app)) = (
                    object.metadata.namespace.as_deref(),
                    object.labels().get(NAME_LABEL),
                ) else {
                    continue;
                };
                if scope.iter().any(|(n, a)| n == ns && a == app) {
                    inventory.add(*kind, &object, true);
                }
            }
        }
        inventory
    }

    /// Every app that has owned objects.
    pub fn keys(&self) -> BTreeSet<AppKey> {
        self.stores
            .iter()
            .flat_map(|(_, s)| s.state())
            .filter_map(|o| app_key(&o))
            .collect()
    }
}

fn app_key(object: &DynamicObject) -> Option<AppKey> {
    Some((
        object.namespace()?,
        object.labels().get(NAME_LABEL)?.clone(),
    ))
}

impl Cluster {
    /// Starts the reflectors. Each change after the initial list sends the app's key to
    /// `changed`. The tasks run in `tasks` until `shutdown`.
    pub fn start_cache(
        &self,
        changed: mpsc::UnboundedSender<AppKey>,
        tasks: &mut JoinSet<()>,
        shutdown: CancellationToken,
    ) -> OwnedCache {
        let selector = owner_selector(&self.instance);
        let mut stores = Vec::new();
        for kind in Kind::ALL {
            let writer = reflector::store::Writer::new(kind.resource());
            let reader = writer.as_reader();
            let api = kind.all(&self.watch_client);
            let store = reader.clone();
            // A watch over a connection that died without a FIN or RST (a network blip, a NAT
            // dropping the flow) receives nothing and raises nothing: the watcher's only way out
            // is its idle timeout, the server-side timeout plus a few seconds. kube's 290 s
            // default left drift unseen for five minutes; a healthy watch gets a bookmark at
            // least every minute, so a one-minute watch costs one re-watch request per kind per
            // minute and bounds a blind spell to about that.
            let config = watcher::Config::default()
                .labels(&selector)
                .timeout(WATCH_TIMEOUT_SECS);
            let changed = changed.clone();
            let shutdown = shutdown.clone();
            // default_backoff: without it a failing watch retries in a hot loop.
            // managedFields and status are dropped before caching: nothing berth decides from
            // the cache reads them (removal reads the StatefulSet's status from the server), and
            // they are the bulk of each object (most of the daemon's memory at 1000 apps).
            let mut events = watcher(api, config)
                .default_backoff()
                .modify(|object| {
                    object.metadata.managed_fields = None;
                    if let Some(map) = object.data.as_object_mut() {
                        map.remove("status");
                    }
                })
                .reflect(writer)
                .boxed();
            tasks.spawn(async move {
                let mut listed = false;
                // Apps with objects in the cache when a re-list began (after a watch expired with
                // 410 Gone, or the API server restarted). Changes made while the watch was down
                // arrive only as the new list, not as events: every app in the old or the new
                // list is looked at again once it is complete.
                let mut before_relist: Option<BTreeSet<AppKey>> = None;
                loop {
                    let event = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        event = events.next() => event,
                    };
                    match event {
                        Some(Ok(watcher::Event::InitDone)) => {
                            listed = true;
                            if let Some(mut keys) = before_relist.take() {
                                keys.extend(store.state().iter().filter_map(|o| app_key(o)));
                                tracing::info!(kind = %kind, apps = keys.len(), "owned objects re-listed; checking their apps again");
                                for key in keys {
                                    let _ = changed.send(key);
                                }
                            }
                        }
                        Some(Ok(watcher::Event::Init)) => {
                            // The store still holds the previous list until InitDone swaps it.
                            if listed {
                                before_relist =
                                    Some(store.state().iter().filter_map(|o| app_key(o)).collect());
                            }
                            listed = false;
                        }
                        Some(Ok(watcher::Event::Apply(o) | watcher::Event::Delete(o))) if listed => {
                            if let Some(key) = app_key(&o) {
                                let _ = changed.send(key);
                            }
                        }
                        Some(Ok(_)) => {}
                        Some(Err(err)) => {
                            tracing::warn!(kind = %kind, error = %err, "watch of owned objects failed; retrying");
                        }
                        None => return,
                    }
                }
            });
            stores.push((kind, reader));
        }
        OwnedCache { stores }
    }
}
