//! The `[volumes]` table: each volume's name and its one kind (a claim per pod with a `size`, an
//! emptyDir, a ConfigMap, a Secret, a host path or an existing claim; the storage extras are in
//! `storage.rs`). Whether containers mount them is checked
//! where the whole spec is in view (`build` in `mod.rs`, and the mounts in `containers.rs`).

use std::ops::Range;

use super::storage;
use super::values::quantity;
use super::{Ctx, NAME_HELP};
use crate::spec::app::*;
use crate::spec::names;
use crate::spec::raw::*;

pub(super) fn volumes(
    cx: &mut Ctx<'_>,
    raw: Option<&Spanned<Entries<Spanned<RawVolume>>>>,
) -> Vec<Volume> {
    let mut out = Vec::new();
    let Some(raw) = raw else { return out };
    for (k, v) in &raw.get_ref().0 {
        let name = k.get_ref();
        let errs = names::dns1035_label(name);
        let mut ok = cx.name(
            "volume-name",
            "volume name",
            name,
            k.span(),
            errs,
            NAME_HELP,
        );
        let vol = v.get_ref();
        let kinds: Vec<(&str, Range<usize>)> = [
            ("size", vol.size.as_ref().map(|x| x.span())),
            ("empty_dir", vol.empty_dir.as_ref().map(|x| x.span())),
            ("config_map", vol.config_map.as_ref().map(|x| x.span())),
            ("secret", vol.secret.as_ref().map(|x| x.span())),
            ("host_path", vol.host_path.as_ref().map(|x| x.span())),
            ("claim", vol.claim.as_ref().map(|x| x.span())),
        ]
        .into_iter()
        .filter_map(|(n, s)| s.map(|s| (n, s)))
        .collect();
        if kinds.len() != 1 {
            let span = kinds.get(1).map_or(k.span(), |(_, s)| s.clone());
            let found = kinds
                .iter()
                .map(|(n, _)| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let d = cx
                .error("volume-kind", span, format!("volume `{name}` must have exactly one of `size`, `empty_dir`, `config_map`, `secret`, `host_path`, `claim`"))
                .label(if kinds.is_empty() { "none given".to_string() } else { format!("found {found}") })
                .help("`size = \"10Gi\"` makes a volume claim per pod; the others are pod volumes");
            cx.push(d);
            continue;
        }
        ok &= storage::misplaced(cx, vol);
        let kind = if let Some(size) = &vol.size {
            let size = quantity(cx, size, "size", true);
            let class = vol.class.as_ref().map(|c| {
                let errs = names::dns1123_subdomain(c.get_ref());
                ok &= cx.name(
                    "storage-class",
                    "StorageClass name",
                    c.get_ref(),
                    c.span(),
                    errs,
                    "name a StorageClass of the cluster (kubectl get storageclass)",
                );
                c.get_ref().clone()
            });
            let access = match &vol.access {
                Some(a) if a.get_ref().0.is_empty() => {
                    let d = cx
                        .error(
                            "volume-kind",
                            a.span(),
                            "`access` must name at least one access mode",
                        )
                        .help("e.g. access = \"ReadWriteOnce\"");
                    cx.push(d);
                    ok = false;
                    Vec::new()
                }
                Some(a) => a.get_ref().0.clone(),
                None => vec![AccessMode::ReadWriteOnce],
            };
            let extras = storage::template_extras(cx, vol);
            match (size, extras) {
                (Some(size), Some((block, data_source))) => Some(VolumeKind::Claim {
                    size,
                    class,
                    access,
                    block,
                    data_source,
                }),
                _ => None,
            }
        } else if let Some(e) = &vol.empty_dir {
            match e.get_ref() {
                RawEmptyDir::Flag(true) => Some(VolumeKind::EmptyDir {
                    medium: None,
                    size_limit: None,
                }),
                RawEmptyDir::Flag(false) => {
                    let d = cx
                        .error(
                            "volume-kind",
                            e.span(),
                            "`empty_dir = false` declares no volume",
                        )
                        .help("use empty_dir = true, or remove the volume");
                    cx.push(d);
                    None
                }
                RawEmptyDir::Table { medium, size_limit } => {
                    let medium = medium.as_ref().and_then(|m| {
                        let ok = m.get_ref().is_empty()
                            || m.get_ref() == "Memory"
                            || m.get_ref().starts_with("HugePages");
                        if ok {
                            (!m.get_ref().is_empty()).then(|| m.get_ref().clone())
                        } else {
                            let d = cx
                                .error(
                                    "volume-kind",
                                    m.span(),
                                    format!("unknown emptyDir medium `{}`", m.get_ref()),
                                )
                                .help(
                                    "use \"Memory\" (tmpfs), or leave it out for the node's disk",
                                );
                            cx.push(d);
                            None
                        }
                    });
                    let size_limit = match size_limit {
                        Some(s) => match quantity(cx, s, "size_limit", false) {
                            Some(q) => Some(q),
                            None => {
                                ok = false;
                                None
                            }
                        },
                        None => None,
                    };
                    Some(VolumeKind::EmptyDir { medium, size_limit })
                }
            }
        } else if let Some(c) = &vol.config_map {
            storage::keyed(cx, c, "ConfigMap").map(VolumeKind::ConfigMap)
        } else if let Some(s) = &vol.secret {
            storage::keyed(cx, s, "Secret").map(VolumeKind::Secret)
        } else if let Some(c) = &vol.claim {
            storage::existing_claim(cx, c, vol)
        } else if let Some(h) = &vol.host_path {
            if h.get_ref().starts_with('/') {
                Some(VolumeKind::HostPath(h.get_ref().clone()))
            } else {
                let d = cx
                    .error(
                        "volume-source",
                        h.span(),
                        "`host_path` must be an absolute path",
                    )
                    .help("e.g. host_path = \"/srv/data\"");
                cx.push(d);
                None
            }
        } else {
            None
        };
        if let (true, Some(kind)) = (ok, kind) {
            out.push(Volume {
                name: name.clone(),
                kind,
            });
        }
    }
    out
}
