//! Volumes: the claim templates (one PVC per pod, with volume mode and data source) and the pod
//! volumes (emptyDir, ConfigMap and Secret with their items and mode, host path, an existing
//! claim).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, EmptyDirVolumeSource, HostPathVolumeSource, KeyToPath,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource,
    SecretVolumeSource, TypedLocalObjectReference, Volume as K8sVolume, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::non_empty;
use crate::spec::{App, DataSource, KeyedSource, VolumeKind};

pub(super) fn claim_templates(
    app: &App,
    selector: &BTreeMap<String, String>,
) -> Vec<PersistentVolumeClaim> {
    app.volumes
        .iter()
        .filter_map(|v| match &v.kind {
            VolumeKind::Claim {
                size,
                class,
                access,
                block,
                data_source,
            } => Some(PersistentVolumeClaim {
                // Immutable: only the name and the (never changing) selector labels, so PVCs
                // can be found by app; no user labels, no commit.
                metadata: ObjectMeta {
                    name: Some(v.name.clone()),
                    labels: Some(selector.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(access.iter().map(|a| a.as_str().to_string()).collect()),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([(
                            "storage".to_string(),
                            K8sQuantity(size.text.clone()),
                        )])),
                        limits: None,
                    }),
                    storage_class_name: class.clone(),
                    volume_mode: block.then(|| "Block".to_string()),
                    data_source: data_source.as_ref().map(|d| match d {
                        DataSource::Snapshot(name) => TypedLocalObjectReference {
                            api_group: Some("snapshot.storage.k8s.io".to_string()),
                            kind: "VolumeSnapshot".to_string(),
                            name: name.clone(),
                        },
                        DataSource::Claim(name) => TypedLocalObjectReference {
                            api_group: None,
                            kind: "PersistentVolumeClaim".to_string(),
                            name: name.clone(),
                        },
                    }),
                    ..PersistentVolumeClaimSpec::default()
                }),
                status: None,
            }),
            _ => None,
        })
        .collect()
}

fn items(k: &KeyedSource) -> Option<Vec<KeyToPath>> {
    non_empty(
        k.items
            .iter()
            .map(|(key, path)| KeyToPath {
                key: key.clone(),
                path: path.clone(),
                mode: None,
            })
            .collect(),
    )
}

pub(super) fn pod_volumes(app: &App) -> Vec<K8sVolume> {
    app.volumes
        .iter()
        .filter_map(|v| {
            let mut vol = K8sVolume {
                name: v.name.clone(),
                ..K8sVolume::default()
            };
            match &v.kind {
                VolumeKind::Claim { .. } => return None,
                VolumeKind::EmptyDir { medium, size_limit } => {
                    vol.empty_dir = Some(EmptyDirVolumeSource {
                        medium: medium.clone(),
                        size_limit: size_limit.as_ref().map(|q| K8sQuantity(q.text.clone())),
                    });
                }
                VolumeKind::ConfigMap(k) => {
                    vol.config_map = Some(ConfigMapVolumeSource {
                        name: k.name.clone(),
                        items: items(k),
                        default_mode: k.default_mode,
                        ..ConfigMapVolumeSource::default()
                    });
                }
                VolumeKind::Secret(k) => {
                    vol.secret = Some(SecretVolumeSource {
                        secret_name: Some(k.name.clone()),
                        items: items(k),
                        default_mode: k.default_mode,
                        ..SecretVolumeSource::default()
                    });
                }
                VolumeKind::HostPath(path) => {
                    vol.host_path = Some(HostPathVolumeSource {
                        path: path.clone(),
                        type_: None,
                    });
                }
                VolumeKind::ExistingClaim { name, read_only } => {
                    vol.persistent_volume_claim = Some(PersistentVolumeClaimVolumeSource {
                        claim_name: name.clone(),
                        read_only: read_only.then_some(true),
                    });
                }
            }
            Some(vol)
        })
        .collect()
}
