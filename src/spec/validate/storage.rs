//! Storage beyond claims per pod and plain pod volumes: an existing claim shared by every pod,
//! a claim template's `volume_mode = "block"` and `data_source`, a ConfigMap or Secret volume's
//! `items` and `default_mode`, and the `devices` through which containers use block volumes.

use std::collections::BTreeSet;

use super::Ctx;
use crate::spec::app::*;
use crate::spec::names;
use crate::spec::raw::*;

/// A ConfigMap or Secret volume; `kind` is "ConfigMap" or "Secret".
pub(super) fn keyed(cx: &mut Ctx<'_>, raw: &Spanned<RawKeyed>, kind: &str) -> Option<KeyedSource> {
    let k = raw.get_ref();
    let Some(name) = &k.name else {
        let d = cx
            .error(
                "volume-source",
                raw.span(),
                format!("the {kind} volume needs a `name`"),
            )
            .help("e.g. { name = \"app-config\", items = { \"app.conf\" = \"app.conf\" } }");
        cx.push(d);
        return None;
    };
    let span = super::pick(name.span(), raw.span());
    let errs = names::dns1123_subdomain(name.get_ref());
    let mut ok = cx.name(
        "volume-source",
        &format!("{kind} name"),
        name.get_ref(),
        span,
        errs,
        &format!("name a {kind} in the app's namespace"),
    );
    let mut items = Vec::new();
    for (key, path) in k.items.iter().flat_map(|i| i.0.iter()) {
        let errs = names::config_key(key.get_ref());
        ok &= cx.name(
            "volume-source",
            &format!("{kind} key"),
            key.get_ref(),
            key.span(),
            errs,
            "keys use letters, digits, '-', '_' and '.'",
        );
        let p = path.get_ref();
        if p.is_empty() || p.starts_with('/') || p.split('/').any(|s| s == "..") {
            let d = cx
                .error(
                    "volume-source",
                    path.span(),
                    format!("item path `{p}` must be a relative path without '..'"),
                )
                .help("the file's path inside the mount, e.g. \"conf/app.conf\"");
            cx.push(d);
            ok = false;
        }
        items.push((key.get_ref().clone(), p.clone()));
    }
    let default_mode = match &k.default_mode {
        Some(m) if (0..=0o777).contains(m.get_ref()) => Some(*m.get_ref() as i32),
        Some(m) => {
            let d = cx
                .error(
                    "volume-source",
                    m.span(),
                    "`default_mode` must be a file mode between 0o000 and 0o777",
                )
                .help("write it in octal, e.g. default_mode = 0o440");
            cx.push(d);
            ok = false;
            None
        }
        None => None,
    };
    ok.then(|| KeyedSource {
        name: name.get_ref().clone(),
        items,
        default_mode,
    })
}

/// `claim = "backups"`: an existing PersistentVolumeClaim, with `read_only`.
pub(super) fn existing_claim(
    cx: &mut Ctx<'_>,
    name: &Spanned<String>,
    vol: &RawVolume,
) -> Option<VolumeKind> {
    let errs = names::dns1123_subdomain(name.get_ref());
    cx.name(
        "volume-source",
        "PersistentVolumeClaim name",
        name.get_ref(),
        name.span(),
        errs,
        "name an existing PersistentVolumeClaim in the app's namespace",
    )
    .then(|| VolumeKind::ExistingClaim {
        name: name.get_ref().clone(),
        read_only: vol.read_only.as_ref().is_some_and(|r| *r.get_ref()),
    })
}

/// A claim template's volume mode and data source.
pub(super) fn template_extras(
    cx: &mut Ctx<'_>,
    vol: &RawVolume,
) -> Option<(bool, Option<DataSource>)> {
    let block = vol
        .volume_mode
        .as_ref()
        .is_some_and(|m| *m.get_ref() == VolumeMode::Block);
    let Some(ds) = &vol.data_source else {
        return Some((block, None));
    };
    let (name, source): (&Spanned<String>, fn(String) -> DataSource) =
        match (&ds.get_ref().snapshot, &ds.get_ref().claim) {
            (Some(s), None) => (s, DataSource::Snapshot),
            (None, Some(c)) => (c, DataSource::Claim),
            _ => {
                let d = cx
                    .error(
                        "volume-source",
                        ds.span(),
                        "`data_source` needs exactly one of `snapshot`, `claim`",
                    )
                    .help(
                        "e.g. data_source = { snapshot = \"nightly\" } to restore a VolumeSnapshot",
                    );
                cx.push(d);
                return None;
            }
        };
    let errs = names::dns1123_subdomain(name.get_ref());
    cx.name(
        "volume-source",
        "data source name",
        name.get_ref(),
        name.span(),
        errs,
        "name a VolumeSnapshot or PersistentVolumeClaim in the app's namespace",
    )
    .then(|| (block, Some(source(name.get_ref().clone()))))
}

/// Which fields apply to which kind of volume: `read_only` to `claim`; `class`, `access`,
/// `volume_mode` and `data_source` to a claim template (`size`).
pub(super) fn misplaced(cx: &mut Ctx<'_>, vol: &RawVolume) -> bool {
    let mut ok = true;
    let mut refuse = |cx: &mut Ctx<'_>,
                      field: &str,
                      span: Option<std::ops::Range<usize>>,
                      owner: &str,
                      fix: &str| {
        if let Some(span) = span {
            let d = cx
                .error(
                    "volume-kind",
                    span,
                    format!("`{field}` only applies to volumes with {owner}"),
                )
                .help(fix.to_string());
            cx.push(d);
            ok = false;
        }
    };
    if vol.size.is_none() {
        for (field, span) in [
            ("class", vol.class.as_ref().map(|c| c.span())),
            ("access", vol.access.as_ref().map(|c| c.span())),
            ("volume_mode", vol.volume_mode.as_ref().map(|c| c.span())),
            ("data_source", vol.data_source.as_ref().map(|c| c.span())),
        ] {
            refuse(
                cx,
                field,
                span,
                "a `size`",
                "remove it, or make the volume a claim with size = \"...\"",
            );
        }
    }
    if vol.claim.is_none() {
        let span = vol.read_only.as_ref().map(|c| c.span());
        refuse(
            cx,
            "read_only",
            span,
            "a `claim`",
            "make the mount read-only instead: mounts = { name = { path = \"...\", read_only = true } }",
        );
    }
    ok
}

/// Every container's `devices`: each names a block volume, at an absolute path; a block volume
/// is not mounted as a file system.
pub(super) fn devices(cx: &mut Ctx<'_>, raw: &RawApp, app: &mut App) {
    // Read from the raw spec: a block volume with an unrelated error is still a block volume.
    let block: BTreeSet<String> = raw
        .volumes
        .iter()
        .flat_map(|v| v.get_ref().0.iter())
        .filter(|(_, v)| {
            let v = v.get_ref();
            v.size.is_some()
                && v.volume_mode
                    .as_ref()
                    .is_some_and(|m| *m.get_ref() == VolumeMode::Block)
        })
        .map(|(k, _)| k.get_ref().clone())
        .collect();
    let raw_containers = [raw.init_containers.as_ref(), raw.containers.as_ref()]
        .into_iter()
        .flatten()
        .flat_map(|cs| cs.get_ref().0.iter());
    let mut found: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for (k, c) in raw_containers {
        for (mk, _) in c.mounts.iter().flat_map(|m| m.0.iter()) {
            if block.contains(mk.get_ref()) {
                let d = cx
                    .error(
                        "mount-volume",
                        mk.span(),
                        format!(
                            "volume `{}` is a block device, not a file system",
                            mk.get_ref()
                        ),
                    )
                    .help(format!(
                        "use it through `devices`, e.g. devices = {{ {} = \"/dev/xvda\" }}",
                        mk.get_ref()
                    ));
                cx.push(d);
            }
        }
        let mut list = Vec::new();
        for (dk, path) in c.devices.iter().flat_map(|d| d.0.iter()) {
            let vol = dk.get_ref();
            if !block.contains(vol) {
                let d = cx
                    .error(
                        "device",
                        dk.span(),
                        format!("`{vol}` is not a block volume"),
                    )
                    .help("a device names a volume with a `size` and volume_mode = \"block\"");
                cx.push(d);
                continue;
            }
            if !path.get_ref().starts_with('/') {
                let d = cx
                    .error(
                        "device",
                        path.span(),
                        format!("device path `{}` must be absolute", path.get_ref()),
                    )
                    .help("e.g. \"/dev/xvda\"");
                cx.push(d);
                continue;
            }
            list.push((vol.clone(), path.get_ref().clone()));
        }
        found.push((k.get_ref().clone(), list));
    }
    for c in app
        .init_containers
        .iter_mut()
        .chain(app.containers.iter_mut())
    {
        if let Some((_, list)) = found.iter_mut().find(|(n, _)| *n == c.name) {
            c.devices = std::mem::take(list);
        }
    }
}
