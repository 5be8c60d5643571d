//! The part of an app's plan that needs no request: render the spec, stamp each object's
//! fingerprint, parse the inventory's copies of its live objects, and, when those copies are
//! to be trusted as they are, tell which objects are in sync. It is nearly all of a no-op
//! plan's CPU, so a plan of many apps does it a batch at a time on every core
//! ([`prepare_batch`]) while the requests of the apps before wait.

use serde_json::Value;

use super::app::{in_sync, must_reread, stamp_fingerprint, suspension};
use super::{PlanOptions, kind_of, name_of};
use crate::cluster::inventory::{LiveApp, LiveObject};
use crate::cluster::{Cluster, Kind};
use crate::plan::hold_owned_replicas;
use crate::render::{RenderContext, render_app};
use crate::spec::App;

/// An app made ready for its plan.
pub(super) enum Prepared {
    /// Left alone (the reason shown).
    Suspended(String),
    Ready(Objects),
}

/// An app's rendered objects and what the inventory knows of them.
pub(super) struct Objects {
    /// The rendered objects, fingerprint stamped; a StatefulSet that leaves `replicas` to
    /// someone else already holds the live count when `cached` stands for the live objects
    /// (see [`hold_owned_replicas`]).
    pub desired: Vec<(Kind, Value)>,
    /// The inventory's copy of each desired object, if it has one.
    pub cached: Vec<Option<Value>>,
    /// The cached copies may be out of date: the app's objects are read from the server.
    pub reread: bool,
    /// Per desired object, without `reread`: its cached copy is in sync with it (nothing to
    /// write). All false with `reread`, decided once the objects are read.
    pub in_sync: Vec<bool>,
}

impl Cluster {
    pub(super) fn prepare(
        &self,
        app: &App,
        owned: Option<&LiveApp>,
        options: &PlanOptions,
    ) -> Prepared {
        if let Some(reason) = suspension(app, owned) {
            return Prepared::Suspended(reason);
        }
        let ctx = RenderContext::new(&self.instance, app).with_commit(options.commit.clone());
        let mut desired: Vec<(Kind, Value)> = render_app(app, &ctx)
            .to_values()
            .into_iter()
            .filter_map(|v| kind_of(&v).map(|k| (k, stamp_fingerprint(v))))
            .collect();
        // Each live object is parsed once, as JSON: the whole plan reads that form.
        let cached: Vec<Option<Value>> = desired
            .iter()
            .map(|(kind, want)| {
                let name = name_of(want);
                owned
                    .and_then(|o| {
                        o.objects
                            .iter()
                            .find(|live| live.kind == *kind && live.name == name)
                    })
                    .map(LiveObject::json)
            })
            .collect();
        let reread =
            options.live_from_cache && must_reread(&desired, &cached, options.spec_changed);
        let mut synced = vec![false; desired.len()];
        if !reread {
            for (((kind, want), cached), synced) in
                desired.iter_mut().zip(&cached).zip(synced.iter_mut())
            {
                let Some(live) = cached else { continue };
                // An external count berth's apply still owns is sent as it is live: left out,
                // the server would reset it to 1.
                if *kind == Kind::StatefulSet {
                    hold_owned_replicas(want, live, crate::cluster::FIELD_MANAGER);
                }
                *synced = in_sync(live, want);
            }
        }
        Prepared::Ready(Objects {
            desired,
            cached,
            reread,
            in_sync: synced,
        })
    }

    /// [`Cluster::prepare`] of each app, in order, the batch split across the cores when it is
    /// large enough to pay for the threads.
    pub(super) fn prepare_batch(
        &self,
        apps: &[(&App, Option<&LiveApp>)],
        options: &PlanOptions,
    ) -> Vec<Prepared> {
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(apps.len() / APPS_PER_THREAD)
            .max(1);
        let prepare_all = |apps: &[(&App, Option<&LiveApp>)]| -> Vec<Prepared> {
            apps.iter()
                .map(|(app, owned)| self.prepare(app, *owned, options))
                .collect()
        };
        if threads == 1 {
            return prepare_all(apps);
        }
        // The first part is prepared on this thread, the others each on a thread of their own.
        let mut parts = apps.chunks(apps.len().div_ceil(threads));
        let first = parts.next().unwrap_or_default();
        std::thread::scope(|scope| {
            let others: Vec<_> = parts
                .map(|part| scope.spawn(move || prepare_all(part)))
                .collect();
            let mut prepared = prepare_all(first);
            for handle in others {
                match handle.join() {
                    Ok(part) => prepared.extend(part),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            prepared
        })
    }
}

/// Apps prepared together before their plans go on: enough to share among the cores, few
/// enough that their rendered objects stay small (and the requests of earlier apps wait only
/// milliseconds).
pub(super) const PREPARE_BATCH: usize = 128;

/// The fewest apps one thread of [`Cluster::prepare_batch`] takes.
const APPS_PER_THREAD: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::inventory::Inventory;
    use crate::config::Config;
    use crate::spec::Loaded;

    /// Enough apps that one batch is split across threads.
    const APPS: usize = 3 * APPS_PER_THREAD;

    fn fleet() -> Loaded {
        let dir = tempfile::tempdir().expect("temp dir");
        for i in 0..APPS {
            let suspend = if i % 7 == 0 { "suspend = true\n" } else { "" };
            std::fs::write(
                dir.path().join(format!("app-{i:03}.toml")),
                format!(
                    "namespace = \"ns\"\nreplicas = {}\n{suspend}[containers.web]\nimage = \"nginx:1.{i}\"\n",
                    i % 3
                ),
            )
            .expect("write");
        }
        crate::spec::load_dir(dir.path(), &Config::default()).expect("load")
    }

    /// What a list would return for the app's rendered objects: every third app is missing
    /// its objects, every fifth has a StatefulSet someone changed.
    fn inventory_of(cluster: &Cluster, loaded: &Loaded) -> Inventory {
        let mut inventory = Inventory::default();
        for (i, app) in loaded.apps.iter().enumerate().filter(|(i, _)| i % 3 != 0) {
            let Prepared::Ready(objects) = cluster.prepare(app, None, &PlanOptions::default())
            else {
                continue;
            };
            for (kind, mut want) in objects.desired {
                if i % 5 == 0 && kind == Kind::StatefulSet {
                    want["spec"]["template"]["spec"]["containers"][0]["image"] = "drifted".into();
                }
                let object = serde_json::from_value(want).expect("a rendered object");
                inventory.add(kind, object);
            }
        }
        inventory
    }

    /// The parts of a prepared app a plan reads, to compare.
    #[derive(Debug, PartialEq)]
    struct Seen {
        suspended: Option<String>,
        desired: Vec<Value>,
        cached: Vec<Option<Value>>,
        reread: bool,
        in_sync: Vec<bool>,
    }

    impl Seen {
        fn of(prepared: &Prepared) -> Seen {
            match prepared {
                Prepared::Suspended(reason) => Seen {
                    suspended: Some(reason.clone()),
                    desired: vec![],
                    cached: vec![],
                    reread: false,
                    in_sync: vec![],
                },
                Prepared::Ready(o) => Seen {
                    suspended: None,
                    desired: o.desired.iter().map(|(_, v)| v.clone()).collect(),
                    cached: o.cached.clone(),
                    reread: o.reread,
                    in_sync: o.in_sync.clone(),
                },
            }
        }

        fn all_in_sync(&self) -> bool {
            !self.in_sync.is_empty() && self.in_sync.iter().all(|b| *b)
        }
    }

    #[tokio::test]
    async fn a_batch_prepared_across_threads_is_each_app_prepared_alone_in_order() {
        let config = kube::Config::new("https://127.0.0.1:1".parse().expect("a URL"));
        let client = kube::Client::try_from(config).expect("a client");
        let cluster = Cluster::new(client, "test");
        let loaded = fleet();
        let inventory = inventory_of(&cluster, &loaded);
        let apps: Vec<(&App, Option<&LiveApp>)> = loaded
            .apps
            .iter()
            .map(|app| (app, inventory.apps.get(&app.key())))
            .collect();
        let options = PlanOptions::default();

        let batch = cluster.prepare_batch(&apps, &options);

        let alone: Vec<Seen> = apps
            .iter()
            .map(|(app, owned)| Seen::of(&cluster.prepare(app, *owned, &options)))
            .collect();
        let batched: Vec<Seen> = batch.iter().map(Seen::of).collect();
        assert_eq!(batched.len(), APPS);
        assert_eq!(batched, alone);
        // The fleet has every case: suspended, no live objects, in sync, drifted.
        assert!(batched.iter().any(|s| s.suspended.is_some()));
        assert!(
            batched
                .iter()
                .any(|s| s.suspended.is_none() && s.cached.iter().all(Option::is_none))
        );
        assert!(batched.iter().any(Seen::all_in_sync));
        assert!(batched.iter().any(|s| {
            s.suspended.is_none() && s.cached.iter().all(Option::is_some) && !s.all_in_sync()
        }));
    }
}
