//! The part of an app's plan that needs no request: render the spec, stamp each object's
//! fingerprint, and tell which objects the inventory's copies show in sync. An app whose
//! objects are all in sync is told from the copies' text ([`LiveObject::holds`]); for any
//! other app the copies are parsed, and read as in sync only when they are to be trusted as
//! they are. It is nearly all of a no-op plan's CPU, so a plan of many apps does it a batch at
//! a time on every core ([`prepare_batch`]) while the requests of the apps before wait.

use serde_json::Value;

use super::app::{in_sync, in_sync_text, must_reread, stamp_fingerprint, suspension};
use super::{PlanOptions, kind_of, name_of};
use crate::cluster::inventory::{LiveApp, LiveObject};
use crate::cluster::{Cluster, Kind};
use crate::labels::REMOVING_ANNOTATION;
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
    /// The inventory's copy of each desired object, if it has one; of an app whose objects are
    /// all in sync, only their metadata (see [`all_in_sync`]).
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
        let desired = self.desired(app, options);
        let live = live_copies(&desired, owned);
        if all_in_sync(&desired, &live) {
            // What the rest of this function decides for such an app, decided from the text:
            // nothing to reread, every object in sync, and of the live copies the plan reads
            // only their metadata.
            let cached = live
                .iter()
                .map(|l| l.map(LiveObject::metadata_json))
                .collect();
            let in_sync = vec![true; desired.len()];
            return Prepared::Ready(Objects {
                desired,
                cached,
                reread: false,
                in_sync,
            });
        }
        self.prepare_parsed(desired, &live, options)
    }

    /// The app's rendered objects, each stamped with its fingerprint.
    fn desired(&self, app: &App, options: &PlanOptions) -> Vec<(Kind, Value)> {
        let ctx = RenderContext::new(&self.instance, app).with_commit(options.commit.clone());
        render_app(app, &ctx)
            .to_values()
            .into_iter()
            .filter_map(|v| kind_of(&v).map(|k| (k, stamp_fingerprint(v))))
            .collect()
    }

    /// [`Cluster::prepare`] of an app that is not plainly in sync: each live object is parsed
    /// once, as JSON, the form the whole plan reads.
    fn prepare_parsed(
        &self,
        mut desired: Vec<(Kind, Value)>,
        live: &[Option<&LiveObject>],
        options: &PlanOptions,
    ) -> Prepared {
        let cached: Vec<Option<Value>> = live.iter().map(|l| l.map(LiveObject::json)).collect();
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

/// The inventory's copy of each desired object (same kind and name), if it has one.
fn live_copies<'a>(
    desired: &[(Kind, Value)],
    owned: Option<&'a LiveApp>,
) -> Vec<Option<&'a LiveObject>> {
    desired
        .iter()
        .map(|(kind, want)| {
            let name = name_of(want);
            owned.and_then(|o| {
                o.objects
                    .iter()
                    .find(|live| live.kind == *kind && live.name == name)
            })
        })
        .collect()
}

/// True when every desired object has a live copy in sync with it ([`in_sync_text`]), no StatefulSet leaves `replicas` to the live
/// count ([`hold_owned_replicas`] would change it first), and the StatefulSet is not marked for
/// removal (cancelling that writes it, so the plan needs its live copy whole).
fn all_in_sync(desired: &[(Kind, Value)], live: &[Option<&LiveObject>]) -> bool {
    desired.iter().zip(live).all(|((kind, want), live)| {
        let Some(live) = live else { return false };
        let statefulset_settled = *kind != Kind::StatefulSet
            || (want.pointer("/spec/replicas").is_some()
                && live.annotation(REMOVING_ANNOTATION).is_none());
        statefulset_settled && in_sync_text(live, want)
    })
}

/// Apps prepared together before their plans go on: enough to share among the cores, few
/// enough that their rendered objects stay small (and the requests of earlier apps wait only
/// milliseconds).
pub(super) const PREPARE_BATCH: usize = 128;

/// The fewest apps one thread of [`Cluster::prepare_batch`] takes.
const APPS_PER_THREAD: usize = 32;

#[cfg(test)]
mod tests {
    use serde_json::json;

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

    fn cluster() -> Cluster {
        let config = kube::Config::new("https://127.0.0.1:1".parse().expect("a URL"));
        Cluster::new(kube::Client::try_from(config).expect("a client"), "test")
    }

    /// An app whose objects are all in sync is prepared from the live objects' text as from
    /// their trees, its live copies cut to their metadata; any other app is prepared from the
    /// trees. The fleet has both, and an app marked for removal keeps its trees.
    #[tokio::test]
    async fn an_app_in_sync_is_prepared_from_the_text_as_from_the_trees() {
        let cluster = cluster();
        let loaded = fleet();
        let mut inventory = inventory_of(&cluster, &loaded);
        // One app in sync, its StatefulSet marked for removal.
        let marked = loaded.apps[1].key();
        let app = inventory.apps.get_mut(&marked).expect("app 1 is live");
        for object in &mut app.objects {
            if object.kind == Kind::StatefulSet {
                let mut value = object.json();
                value["metadata"]["annotations"][REMOVING_ANNOTATION] = "2026-01-01".into();
                let parsed = serde_json::from_value(value).expect("an object");
                *object = LiveObject::new(Kind::StatefulSet, &parsed);
            }
        }
        let options = PlanOptions::default();
        let metadata_only = |v: &Option<Value>| {
            v.as_ref().map(|v| {
                json!({"apiVersion": v["apiVersion"], "kind": v["kind"], "metadata": v["metadata"]})
            })
        };
        let (mut from_text, mut from_trees) = (0, 0);
        for app in &loaded.apps {
            let owned = inventory.apps.get(&app.key());
            let prepared = Seen::of(&cluster.prepare(app, owned, &options));
            if prepared.suspended.is_some() {
                continue;
            }
            let desired = cluster.desired(app, &options);
            let live = live_copies(&desired, owned);
            let text = all_in_sync(&desired, &live);
            let mut parsed = Seen::of(&cluster.prepare_parsed(desired, &live, &options));
            if text {
                from_text += 1;
                assert!(parsed.all_in_sync() && !parsed.reread, "{}", app.name);
                parsed.cached = parsed.cached.iter().map(metadata_only).collect();
                assert!(app.key() != marked);
            } else {
                from_trees += 1;
            }
            assert_eq!(prepared, parsed, "{}", app.name);
        }
        assert!(from_text > 0 && from_trees > 0, "{from_text} {from_trees}");
        // The marked app is in sync, and was still prepared from its trees.
        let app = loaded.app_of(&marked).expect("app 1");
        let Prepared::Ready(objects) = cluster.prepare(app, inventory.apps.get(&marked), &options)
        else {
            panic!("{} is suspended", app.name);
        };
        assert!(objects.in_sync.iter().all(|s| *s));
        assert!(
            objects
                .cached
                .iter()
                .flatten()
                .all(|c| c.get("spec").is_some())
        );
    }

    #[tokio::test]
    async fn a_batch_prepared_across_threads_is_each_app_prepared_alone_in_order() {
        let cluster = cluster();
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
