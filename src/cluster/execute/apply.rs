//! Applying an app's objects in place: server-side apply in rendered order (the headless
//! Service before the StatefulSet that names it), the deletes of objects the spec no longer
//! renders, and the cancel of a removal the spec brought the app back from.

use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams};
use serde_json::json;

use crate::cluster::planner::ToApply;
use crate::cluster::{Cluster, ClusterError, FIELD_MANAGER, Kind};
use crate::labels::REMOVING_ANNOTATION;

impl Cluster {
    /// Returns the StatefulSet as the apply left it, when the objects held one.
    pub(super) async fn apply_app(
        &self,
        ns: &str,
        name: &str,
        objects: &[ToApply],
        delete: &[(Kind, DynamicObject)],
        cancel_removal: bool,
    ) -> Result<Option<DynamicObject>, ClusterError> {
        if cancel_removal {
            // The mark was set by a merge patch, which server-side apply does not undo.
            Kind::StatefulSet
                .api(&self.client, ns)
                .patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(
                        json!({"metadata": {"annotations": {REMOVING_ANNOTATION: null}}}),
                    ),
                )
                .await
                .map_err(|source| ClusterError::Step {
                    operation: "cancelling the removal",
                    namespace: ns.to_string(),
                    name: name.to_string(),
                    source,
                })?;
        }
        // Rendered order: the headless Service exists before the StatefulSet that names it.
        let mut statefulset = None;
        for object in objects {
            let applied = self.apply_object(ns, object).await?;
            if object.kind == Kind::StatefulSet {
                statefulset = Some(applied);
            }
        }
        for (kind, object) in delete {
            // One that is no longer this app's (relabelled, replaced) is not its to delete and
            // is left alone.
            let _left = self
                .delete_owned(*kind, object, DeleteParams::background())
                .await?;
        }
        Ok(statefulset)
    }

    async fn apply_object(
        &self,
        ns: &str,
        object: &ToApply,
    ) -> Result<DynamicObject, ClusterError> {
        let ToApply { kind, name, json } = object;
        let kind = *kind;
        // force: berth takes back fields it owns from whoever changed them (drift); fields that
        // only others set are untouched, as berth's objects never name them.
        let params = PatchParams::apply(FIELD_MANAGER).force();
        kind.api(&self.client, ns)
            .patch(name, &params, &Patch::Apply(&**json))
            .await
            .map_err(|source| ClusterError::Apply {
                kind,
                namespace: ns.to_string(),
                name: name.to_string(),
                source,
            })
    }
}
