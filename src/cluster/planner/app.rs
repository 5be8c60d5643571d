//! The plan of one app whose spec is there: render it, find each object's live counterpart,
//! gate immutable changes, dry-run what differs, and decide the action and the work. The
//! decisions that need no client (is an object in sync, which owned objects are stale, which
//! pods still wait for a restart, what the app's action is) are plain functions, tested below.

use kube::ResourceExt;
use kube::api::DynamicObject;
use serde_json::Value;

use super::lookups::Lookups;
use super::prepare::{Objects, Prepared};
use super::{PlanOptions, ToApply, Work, live_json, name_of};
use crate::cluster::inventory::{LiveApp, LiveObject};
use crate::cluster::{Cluster, ClusterError, Kind};
use crate::labels::{
    FINGERPRINT_ANNOTATION, REMOVING_ANNOTATION, RESTART_MARK, SUSPENDED_ANNOTATION,
};
use crate::plan::{
    Action, AppPlan, ObjectChange, ObjectRef, contained_in, fingerprint_in_place,
    hold_owned_replicas, immutable_changes, normalize, recreate, summarize,
};
use crate::spec::App;

impl Cluster {
    pub(super) async fn plan_app(
        &self,
        app: &App,
        owned: Option<&LiveApp>,
        prepared: Prepared,
        options: &PlanOptions,
        lookups: &Lookups,
    ) -> Result<(AppPlan, Option<Work>), ClusterError> {
        let ns = app.namespace.clone();
        let Objects {
            mut desired,
            cached,
            reread,
            in_sync: mut synced,
        } = match prepared {
            Prepared::Ready(objects) => objects,
            Prepared::Suspended(reason) => {
                let plan = AppPlan {
                    namespace: ns,
                    name: app.name.clone(),
                    action: Action::Suspended { reason },
                    summary: Vec::new(),
                    changes: Vec::new(),
                    retained_pvcs: Vec::new(),
                };
                return Ok((plan, None));
            }
        };
        let mut app_plan = AppPlan {
            namespace: ns.clone(),
            name: app.name.clone(),
            action: Action::Unchanged,
            summary: Vec::new(),
            changes: Vec::new(),
            retained_pvcs: Vec::new(),
        };
        let blocked = |mut p: AppPlan, reason: String, destructive: bool| {
            p.action = Action::Blocked {
                reason,
                destructive,
            };
            (p, None)
        };

        // The live object of each desired one: from the inventory when berth owns it, else a
        // direct read, which also finds same-name objects that are not berth's. A prefetched
        // name list that lacks the name proves there is nothing to read.
        let mut live: Vec<Option<Value>> = Vec::new();
        for (i, ((kind, want), cached)) in desired.iter_mut().zip(cached).enumerate() {
            let name = name_of(want);
            let found = match cached {
                Some(obj) if !reread => Some(obj),
                None if lookups.absent(*kind, &ns, &name) => None,
                _ => {
                    let read = self
                        .get(*kind, &ns, &name)
                        .await?
                        .map(|o| live_json(*kind, &o));
                    // What `prepare` settled for the inventory's copy, settled for this one.
                    if let Some(read) = &read {
                        if *kind == Kind::StatefulSet {
                            hold_owned_replicas(want, read, crate::cluster::FIELD_MANAGER);
                        }
                        synced[i] = in_sync(read, want);
                    }
                    read
                }
            };
            if let Some(obj) = &found
                && !self.owns_json(obj)
                && !app.adopt
            {
                return Ok(blocked(
                    app_plan,
                    format!(
                        "{kind} {ns}/{name} exists and is not managed by this berth instance \
                         ({}); berth leaves it alone. Set `adopt = true` in {} to take it over, \
                         or give the app another name",
                        self.instance,
                        app.source_path.display()
                    ),
                    false,
                ));
            }
            live.push(found);
        }
        let delete: Vec<(Kind, DynamicObject)> = owned
            .map(|o| stale_objects(&o.objects, &desired))
            .unwrap_or_default();

        let live_sts: Option<&Value> = desired
            .iter()
            .zip(&live)
            .find(|((k, _), _)| *k == Kind::StatefulSet)
            .and_then(|(_, l)| l.as_ref());
        let cancel_removal = live_sts.is_some_and(|s| has_annotation(s, REMOVING_ANNOTATION));

        // Immutable StatefulSet fields: decided before anything is sent. A StatefulSet in sync
        // was applied from exactly this object and still holds every field of it: nothing
        // immutable can differ.
        let statefulset_in_sync = desired
            .iter()
            .zip(&synced)
            .any(|((k, _), synced)| *k == Kind::StatefulSet && *synced);
        let mut recreate = None;
        if let (Some(live_sts), Some((_, want_sts)), false) = (
            live_sts,
            desired.iter().find(|(k, _)| *k == Kind::StatefulSet),
            statefulset_in_sync,
        ) {
            let live_set = recreate::LiveSet {
                name: &name_of(live_sts),
                replicas: live_sts
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(0),
            };
            let allowed = recreate::Allowed {
                recreate: app.allow_recreate || options.allow_recreate,
                abandon_claims: app.abandon_claims || options.abandon_claims,
            };
            let changes = immutable_changes(live_sts, want_sts);
            match recreate::gate(changes, live_set, allowed, &app.source_path) {
                recreate::Gate::InPlace => {}
                recreate::Gate::Blocked { reason } => return Ok(blocked(app_plan, reason, true)),
                recreate::Gate::Recreate {
                    reasons,
                    expand,
                    restart_pods,
                    abandoned,
                } => {
                    if !abandoned.is_empty() {
                        app_plan.summary.push(format!(
                            "claims left behind (kept, no longer mounted): {}",
                            abandoned.join(", ")
                        ));
                    }
                    recreate = Some((reasons, expand, restart_pods, parsed(live_sts)));
                }
            }
        }

        let mut changed_objects = Vec::new();
        for (((kind, want), live_obj), synced) in desired.iter().zip(&live).zip(&synced) {
            let name = name_of(want);
            let is_recreated = recreate.is_some() && *kind == Kind::StatefulSet;
            let must_write = is_recreated || (cancel_removal && *kind == Kind::StatefulSet);
            // Same fingerprint and every field in place: applying would change nothing, so no
            // dry-run is needed to prove it (no request at all for this object).
            if !must_write && *synced {
                continue;
            }
            let before = live_obj.as_ref().map(normalize);
            // A recreated StatefulSet cannot be dry-run as an update (the server refuses the
            // immutable change), so its rendered form stands in for the server's. So does a
            // new object: with nothing live there is no drift to hide, and the server's
            // defaults would only lengthen the diff. The one thing the dry-run of a create
            // tells is whether the namespace exists; one dry-run per namespace and plan asks
            // that (a plain 404 here becomes "blocked: namespace does not exist").
            let after = if recreate.is_some() && *kind == Kind::StatefulSet {
                normalize(want)
            } else if live_obj.is_none() {
                lookups
                    .check_namespace(self, *kind, &ns, &name, want)
                    .await?;
                normalize(want)
            } else {
                normalize(&self.dry_run(*kind, &ns, &name, want).await?)
            };
            let change = ObjectChange::new(
                ObjectRef {
                    kind: kind.to_string(),
                    namespace: ns.clone(),
                    name: name.clone(),
                },
                before.as_ref(),
                Some(&after),
            );
            if change.changed() || (cancel_removal && *kind == Kind::StatefulSet) {
                if before.is_some() {
                    app_plan.summary.extend(summarize(
                        &kind.to_string(),
                        before.as_ref(),
                        Some(&after),
                    ));
                }
                changed_objects.push((*kind, want.clone()));
            }
            if change.changed() {
                app_plan.changes.push(change);
            }
        }
        for (kind, object) in &delete {
            app_plan.summary.push(format!(
                "{kind}/{} is no longer in the spec: deleted",
                object.name_any()
            ));
            app_plan.changes.push(ObjectChange::new(
                ObjectRef {
                    kind: kind.to_string(),
                    namespace: ns.clone(),
                    name: object.name_any(),
                },
                Some(&normalize(&live_json(*kind, object))),
                None,
            ));
        }
        if cancel_removal {
            app_plan
                .summary
                .insert(0, "removal cancelled: the spec is back".to_string());
        }
        let marked = pending_restarts(
            live_sts,
            lookups.restarts.get(&app.key()).map(Vec::as_slice),
        );
        match &marked {
            Some(pods) if !pods.is_empty() => app_plan.summary.push(format!(
                "restart {} pod(s) one at a time, left marked by a recreate that was cut short: {}",
                pods.len(),
                pods.join(", ")
            )),
            Some(_) => app_plan
                .summary
                .push("finish a recreate that was cut short (clear its mark)".to_string()),
            None => {}
        }
        if marked.is_some() && live_sts.is_none() {
            // Created with the mark, so a crash before the restarts are done leaves it to see.
            for (kind, object) in changed_objects.iter_mut() {
                if *kind == Kind::StatefulSet {
                    mark_restart_pending(object);
                }
            }
        }

        app_plan.action = app_action(
            recreate.as_ref().map(|(reasons, ..)| reasons.as_slice()),
            live_sts.is_some(),
            &changed_objects,
            &delete,
            marked.is_some(),
        );
        if app_plan.action.is_change() && !app.after.is_empty() {
            let names: Vec<String> = app.after.iter().map(|d| d.key().to_string()).collect();
            app_plan.summary.push(format!(
                "after {}: applied once {} healthy",
                names.join(", "),
                if names.len() == 1 {
                    "it is"
                } else {
                    "they are"
                }
            ));
        }
        let objects: Vec<ToApply> = changed_objects
            .iter()
            .map(|(kind, object)| ToApply::new(*kind, object))
            .collect();
        drop(changed_objects);
        let work = match recreate {
            Some((_, expand, mark_pods, live_statefulset)) => Some(Work::Recreate {
                objects,
                delete,
                live_statefulset: Box::new(live_statefulset),
                expand,
                mark_pods,
                restart_marked: mark_pods || marked.is_some(),
            }),
            None if app_plan.action == Action::Unchanged => None,
            None => {
                if app_plan.action == Action::Create {
                    app_plan.summary.insert(
                        0,
                        format!(
                            "new app: {} replica(s), {}",
                            app.replicas,
                            app.containers
                                .iter()
                                .map(|c| c.image.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                }
                Some(Work::Apply {
                    objects,
                    delete,
                    cancel_removal,
                    restart_marked: marked.is_some(),
                })
            }
        };
        Ok((app_plan, work))
    }
}

/// Adds [`RESTART_MARK`] to a rendered StatefulSet.
pub(crate) fn mark_restart_pending(statefulset: &mut Value) {
    if let Some(metadata) = statefulset
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
    {
        let annotations = metadata
            .entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(map) = annotations.as_object_mut() {
            map.insert(RESTART_MARK.to_string(), Value::from("true"));
        }
    }
}

/// Records the object's fingerprint on it, so a later plan can tell "unchanged" without asking.
/// Why berth leaves the app alone, if it does: the spec says `suspend = true`, or someone ran
/// `berth suspend` on its live StatefulSet (which wins: it is the incident's word).
pub(super) fn suspension(app: &App, owned: Option<&LiveApp>) -> Option<String> {
    owned.and_then(suspended_live).or_else(|| {
        app.suspend
            .then(|| "suspend = true in its spec".to_string())
    })
}

/// The `berth suspend` mark on a live app's StatefulSet, as the reason shown.
pub(super) fn suspended_live(live: &LiveApp) -> Option<String> {
    let value = live.live_statefulset()?.annotation(SUSPENDED_ANNOTATION)?;
    Some(format!("berth suspend ({value}); `berth resume` ends it"))
}

/// Whether a live object (as JSON) carries the annotation.
fn has_annotation(object: &Value, key: &str) -> bool {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .is_some()
}

/// A live object read as JSON, as the typed object the executor takes. It was parsed from an
/// object of this shape, so it converts back.
fn parsed(object: &Value) -> DynamicObject {
    serde_json::from_value(object.clone()).expect("a live object's JSON is an object again")
}

pub(super) fn stamp_fingerprint(mut value: Value) -> Value {
    let print = fingerprint_in_place(&mut value);
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(map) = annotations.as_object_mut() {
            map.insert(FINGERPRINT_ANNOTATION.to_string(), Value::String(print));
        }
    }
    value
}

/// True when the live object was last applied from exactly this desired object (same
/// fingerprint) and still holds every field of it (nobody changed a field berth sets).
pub(super) fn in_sync(live: &Value, want: &Value) -> bool {
    let print = |v: &Value| {
        v.pointer("/metadata/annotations")
            .and_then(|a| a.get(FINGERPRINT_ANNOTATION))
            .cloned()
    };
    print(live).is_some() && print(live) == print(want) && contained_in(want, live)
}

/// [`in_sync`] of a live object kept as text, read without parsing it: a desired object
/// carries its fingerprint, and holding every field of it means holding the same fingerprint.
pub(super) fn in_sync_text(live: &LiveObject, want: &Value) -> bool {
    has_annotation(want, FINGERPRINT_ANNOTATION) && live.holds(want)
}

/// False when some desired object has no cached live copy, or one out of step with it: a cache
/// is trusted only to say "nothing to do", so such an app is read again from the server.
fn cache_in_sync(desired: &[(Kind, Value)], cached: &[Option<Value>]) -> bool {
    !desired
        .iter()
        .zip(cached)
        .any(|((_, want), c)| c.as_ref().is_none_or(|c| !in_sync(c, want)))
}

/// Whether a plan from the caches reads the app's objects from the server first. A cache is
/// trusted to say "nothing to do"; and, for a spec that changed since it last converged, to stand
/// for the objects that differ from it (they differ because the spec did; the gate of immutable
/// fields needs no fresher copy, and the write answers with what the server has). Anything else
/// (a difference under a spec that already converged: drift, or the cache lagging behind berth's
/// own last write) is decided on what the server has now.
pub(super) fn must_reread(
    desired: &[(Kind, Value)],
    cached: &[Option<Value>],
    spec_changed: bool,
) -> bool {
    !spec_changed && !cache_in_sync(desired, cached)
}

/// The owned objects that the rendered app no longer has (no desired object of the same kind
/// and name): deleted once the rest is applied.
fn stale_objects(owned: &[LiveObject], desired: &[(Kind, Value)]) -> Vec<(Kind, DynamicObject)> {
    owned
        .iter()
        .filter(|live| {
            !desired
                .iter()
                .any(|(kind, want)| *kind == live.kind && name_of(want) == live.name)
        })
        .map(|live| (live.kind, live.object()))
        .collect()
}

/// Pods a recreate cut short left to restart: the StatefulSet says so, or it is missing (the
/// recreate stopped between deleting and creating it) and marked pods remain. `None` when
/// there is no such recreate to finish; `Some` of no pods when only its mark is left to clear.
fn pending_restarts(
    live_statefulset: Option<&Value>,
    marked_pods: Option<&[String]>,
) -> Option<Vec<String>> {
    let marked_pods = marked_pods.filter(|pods| !pods.is_empty());
    let restart_pending = live_statefulset.is_some_and(|s| has_annotation(s, RESTART_MARK));
    (restart_pending || (live_statefulset.is_none() && marked_pods.is_some()))
        .then(|| marked_pods.map(<[String]>::to_vec).unwrap_or_default())
}

/// The app's action once its objects are compared. A recreate the gate allowed (its reasons)
/// decides it; otherwise nothing to write, delete or restart is `Unchanged`, and anything else
/// is a `Create` while the StatefulSet does not exist, else an `Update`.
fn app_action(
    recreate_reasons: Option<&[String]>,
    statefulset_exists: bool,
    writes: &[(Kind, Value)],
    deletes: &[(Kind, DynamicObject)],
    restart_pending: bool,
) -> Action {
    if let Some(reasons) = recreate_reasons {
        Action::Recreate {
            reasons: reasons.to_vec(),
        }
    } else if writes.is_empty() && deletes.is_empty() && !restart_pending {
        Action::Unchanged
    } else if statefulset_exists {
        Action::Update
    } else {
        Action::Create
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plan::fingerprint;

    fn rendered(kind: Kind, name: &str) -> (Kind, Value) {
        let resource = kind.resource();
        let value = json!({
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": {"name": name, "labels": {"app.kubernetes.io/name": name}},
            "spec": {"replicas": 3},
        });
        (kind, stamp_fingerprint(value))
    }

    /// The live copy of a rendered object, as a list returns it: no apiVersion or kind, and
    /// fields the server adds.
    fn live_copy(want: &Value) -> DynamicObject {
        let mut value = want.clone();
        let map = value.as_object_mut().expect("an object");
        map.remove("apiVersion");
        map.remove("kind");
        value["metadata"]["uid"] = json!("0b7e");
        value["status"] = json!({"replicas": 3});
        serde_json::from_value(value).expect("a DynamicObject")
    }

    /// A live copy as a plan reads it: through the inventory's text, as JSON.
    fn cached_copy(kind: Kind, want: &Value) -> Value {
        LiveObject::new(kind, &live_copy(want)).json()
    }

    fn object(kind: Kind, name: &str) -> DynamicObject {
        DynamicObject::new(name, &kind.resource())
    }

    fn annotated(mut object: DynamicObject, key: &str) -> DynamicObject {
        object
            .annotations_mut()
            .insert(key.to_string(), "true".to_string());
        object
    }

    fn pods(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn stamped_fingerprint_is_that_of_the_object_without_it() {
        let unstamped = json!({"kind": "Service", "metadata": {"name": "web"}});
        let stamped = stamp_fingerprint(unstamped.clone());
        assert_eq!(
            stamped["metadata"]["annotations"][FINGERPRINT_ANNOTATION],
            json!(fingerprint(&unstamped))
        );
        // An object that already carries a fingerprint gets the same one again.
        let annotated = json!({"kind": "Service", "metadata": {"name": "web", "annotations": {}}});
        let stamped = stamp_fingerprint(annotated);
        assert_eq!(stamp_fingerprint(stamped.clone()), stamped);
    }

    #[test]
    fn restart_mark_is_added_where_there_were_no_annotations() {
        let mut statefulset = json!({"kind": "StatefulSet", "metadata": {"name": "db"}});
        mark_restart_pending(&mut statefulset);
        assert_eq!(
            statefulset["metadata"]["annotations"][RESTART_MARK],
            json!("true")
        );
    }

    #[test]
    fn in_sync_when_the_live_object_has_the_fingerprint_and_every_field() {
        let (kind, want) = rendered(Kind::StatefulSet, "db");
        let live = live_json(kind, &live_copy(&want));
        assert!(in_sync(&live, &want));
    }

    #[test]
    fn not_in_sync_without_a_fingerprint_even_with_every_field() {
        let (_, want) = rendered(Kind::StatefulSet, "db");
        let mut live = want.clone();
        live["metadata"]["annotations"]
            .as_object_mut()
            .expect("annotations")
            .remove(FINGERPRINT_ANNOTATION);
        assert!(!in_sync(&live, &want));
        // Neither side carrying one is no proof either.
        let mut unstamped = live.clone();
        unstamped["metadata"]
            .as_object_mut()
            .expect("metadata")
            .remove("annotations");
        assert!(!in_sync(&unstamped, &unstamped));
    }

    #[test]
    fn not_in_sync_when_applied_from_another_spec() {
        let (_, want) = rendered(Kind::StatefulSet, "db");
        let mut older = want.clone();
        older["spec"]["replicas"] = json!(2);
        let older = stamp_fingerprint(older);
        let mut live = want.clone();
        live["metadata"]["annotations"][FINGERPRINT_ANNOTATION] =
            older["metadata"]["annotations"][FINGERPRINT_ANNOTATION].clone();
        assert!(!in_sync(&live, &want));
    }

    #[test]
    fn not_in_sync_when_someone_changed_a_field_berth_sets() {
        let (_, want) = rendered(Kind::StatefulSet, "db");
        let mut live = want.clone();
        live["spec"]["replicas"] = json!(5);
        assert!(!in_sync(&live, &want));
    }

    #[test]
    fn cache_is_trusted_only_when_every_object_is_cached_and_in_sync() {
        let desired = vec![
            rendered(Kind::StatefulSet, "db"),
            rendered(Kind::Service, "db-headless"),
        ];
        let cached: Vec<Option<Value>> = desired
            .iter()
            .map(|(kind, want)| Some(cached_copy(*kind, want)))
            .collect();
        assert!(cache_in_sync(&desired, &cached));

        let missing = vec![cached[0].clone(), None];
        assert!(!cache_in_sync(&desired, &missing));

        let mut drifted = cached.clone();
        if let Some(service) = drifted[1].as_mut() {
            service["spec"]["replicas"] = json!(1);
        }
        assert!(!cache_in_sync(&desired, &drifted));
    }

    #[test]
    fn a_changed_spec_is_planned_from_the_cache_and_drift_is_read_again() {
        let desired = vec![
            rendered(Kind::StatefulSet, "db"),
            rendered(Kind::Service, "db-headless"),
        ];
        // The live StatefulSet was applied from an older spec.
        let mut older = desired[0].1.clone();
        older["spec"]["replicas"] = json!(2);
        let older = stamp_fingerprint(older);
        let cached = vec![
            Some(cached_copy(Kind::StatefulSet, &older)),
            Some(cached_copy(Kind::Service, &desired[1].1)),
        ];
        assert!(
            !must_reread(&desired, &cached, true),
            "the spec changed: the cached copy stands for the live one"
        );
        assert!(
            must_reread(&desired, &cached, false),
            "the spec converged already: a difference is read again"
        );
        let in_sync: Vec<Option<Value>> = desired
            .iter()
            .map(|(kind, want)| Some(cached_copy(*kind, want)))
            .collect();
        assert!(!must_reread(&desired, &in_sync, false));
    }

    #[test]
    fn owned_objects_the_spec_no_longer_renders_are_stale() {
        let desired = vec![
            rendered(Kind::StatefulSet, "db"),
            rendered(Kind::Service, "db-headless"),
        ];
        let owned: Vec<LiveObject> = [
            (Kind::StatefulSet, "db"),
            (Kind::Service, "db-headless"),
            (Kind::Service, "db-public"),
            // Same name as the StatefulSet, other kind: not the same object.
            (Kind::PodDisruptionBudget, "db"),
        ]
        .into_iter()
        .map(|(kind, name)| LiveObject::new(kind, &object(kind, name)))
        .collect();
        let stale: Vec<(Kind, String)> = stale_objects(&owned, &desired)
            .into_iter()
            .map(|(kind, o)| (kind, o.name_any()))
            .collect();
        assert_eq!(
            stale,
            vec![
                (Kind::Service, "db-public".to_string()),
                (Kind::PodDisruptionBudget, "db".to_string()),
            ]
        );
        assert!(stale_objects(&owned[..2], &desired).is_empty());
    }

    #[test]
    fn a_marked_statefulset_restarts_its_marked_pods_or_just_clears_the_mark() {
        let marked = live_json(
            Kind::StatefulSet,
            &annotated(object(Kind::StatefulSet, "db"), RESTART_MARK),
        );
        let waiting = pods(&["db-0", "db-2"]);
        assert_eq!(
            pending_restarts(Some(&marked), Some(&waiting)),
            Some(waiting.clone())
        );
        assert_eq!(pending_restarts(Some(&marked), None), Some(Vec::new()));
        assert_eq!(pending_restarts(Some(&marked), Some(&[])), Some(Vec::new()));
    }

    #[test]
    fn marked_pods_of_an_unmarked_statefulset_are_left_alone() {
        let unmarked = live_json(Kind::StatefulSet, &object(Kind::StatefulSet, "db"));
        assert_eq!(
            pending_restarts(Some(&unmarked), Some(&pods(&["db-0"]))),
            None
        );
        assert_eq!(pending_restarts(Some(&unmarked), None), None);
    }

    #[test]
    fn a_missing_statefulset_with_marked_pods_is_a_recreate_cut_short() {
        let waiting = pods(&["db-1"]);
        assert_eq!(
            pending_restarts(None, Some(&waiting)),
            Some(waiting.clone())
        );
        // No StatefulSet and no marked pod: a new app, nothing to finish.
        assert_eq!(pending_restarts(None, Some(&[])), None);
        assert_eq!(pending_restarts(None, None), None);
    }

    #[test]
    fn a_recreate_decides_the_action() {
        let reasons = vec!["volumeClaimTemplates change".to_string()];
        assert_eq!(
            app_action(Some(&reasons), true, &[], &[], false),
            Action::Recreate { reasons }
        );
    }

    #[test]
    fn nothing_to_write_delete_or_restart_is_unchanged() {
        assert_eq!(app_action(None, true, &[], &[], false), Action::Unchanged);
    }

    #[test]
    fn work_is_a_create_without_a_statefulset_and_an_update_with_one() {
        let writes = vec![rendered(Kind::StatefulSet, "db")];
        assert_eq!(app_action(None, false, &writes, &[], false), Action::Create);
        assert_eq!(app_action(None, true, &writes, &[], false), Action::Update);
        let deletes = vec![(Kind::Service, object(Kind::Service, "db-public"))];
        assert_eq!(app_action(None, true, &[], &deletes, false), Action::Update);
        assert_eq!(app_action(None, true, &[], &[], true), Action::Update);
    }
}
