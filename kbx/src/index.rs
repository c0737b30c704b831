//! Checking a bundle index on its own: what the reader refuses before it trusts a single path,
//! and what the writer checks before it signs.

use kojibox_manifests::bundle::{BundleIndex, EntryKind, FORMAT};

use crate::Error;
use crate::digest::{payload_digest, payload_entries};
use crate::paths::{check_relative, payload_root, resolve_link};

/// Checks the index is self-consistent and names only safe paths inside declared payloads.
pub fn validate_index(index: &BundleIndex) -> Result<(), Error> {
    let invalid = |msg: String| Err(Error::InvalidIndex(msg));
    if index.format != FORMAT {
        return invalid(format!(
            "format {} is not supported (this build reads format {FORMAT}); use a newer kojibox",
            index.format
        ));
    }
    if !index.manifest.bundle.signature.is_empty() {
        return invalid("the signed manifest must have an empty signature".into());
    }
    // Names become folder and file names (`runtime/bin/<name>/<version>/<os>-<arch>`,
    // `runtime/services/<name>.json`): each must be one plain path component.
    for s in &index.manifest.services {
        if !kojibox_manifests::recipe::is_service_id(&s.name) {
            return invalid(format!(
                "service name {:?} is not a valid service id",
                s.name
            ));
        }
        for (what, value) in [("version", &s.version), ("os", &s.os), ("arch", &s.arch)] {
            if !crate::paths::is_component(value) {
                return invalid(format!(
                    "service {}: {what} {value:?} is not a plain path component",
                    s.name
                ));
            }
        }
    }
    if let Some(name) = index
        .templates
        .keys()
        .find(|name| !index.manifest.services.iter().any(|s| &s.name == *name))
    {
        return invalid(format!(
            "template {name:?} names no service of the manifest"
        ));
    }
    // Config file names become file names (`runtime/config/<name>/<file>`).
    for (name, template) in &index.templates {
        if let Some(file) = template
            .config_files
            .keys()
            .find(|f| !kojibox_manifests::recipe::is_config_file_name(f))
        {
            return invalid(format!(
                "template {name:?}: config file name {file:?} is not a plain file name"
            ));
        }
    }
    let roots: Vec<String> = index
        .manifest
        .services
        .iter()
        .map(|s| payload_root(&s.name, &s.version, &s.os, &s.arch))
        .collect();
    for (i, root) in roots.iter().enumerate() {
        check_relative(root).map_err(|why| {
            Error::InvalidIndex(format!(
                "service {}: {why}",
                index.manifest.services[i].name
            ))
        })?;
        if roots[..i].contains(root) {
            return invalid(format!("payload {root} is listed twice"));
        }
    }
    let mut previous: Option<&str> = None;
    for entry in &index.files {
        if let Some(prev) = previous
            && prev.as_bytes() >= entry.path.as_bytes()
        {
            return invalid(format!(
                "entries are not sorted or not unique at {}",
                entry.path
            ));
        }
        previous = Some(&entry.path);
        check_relative(&entry.path)
            .map_err(|why| Error::InvalidIndex(format!("{}: {why}", entry.path)))?;
        let Some(root) = roots.iter().find(|r| {
            entry.path.len() > r.len() + 1
                && entry.path.starts_with(r.as_str())
                && entry.path.as_bytes()[r.len()] == b'/'
        }) else {
            return invalid(format!("{} is outside every payload", entry.path));
        };
        match entry.kind {
            EntryKind::File => {
                let hex_ok = entry
                    .sha256
                    .as_deref()
                    .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
                if !hex_ok || entry.target.is_some() {
                    return invalid(format!(
                        "{}: a file needs a sha256 and no target",
                        entry.path
                    ));
                }
                if entry.mode & !0o777 != 0 {
                    return invalid(format!(
                        "{}: mode {:o} has special bits",
                        entry.path, entry.mode
                    ));
                }
            }
            EntryKind::Symlink => {
                let rel = &entry.path[root.len() + 1..];
                let inside = entry
                    .target
                    .as_deref()
                    .and_then(|t| resolve_link(rel, t))
                    .is_some();
                if !inside || entry.sha256.is_some() || entry.size != 0 {
                    return invalid(format!(
                        "{}: symlink target {:?} leaves its payload",
                        entry.path,
                        entry.target.as_deref().unwrap_or("")
                    ));
                }
            }
        }
    }
    // A link may not lead through another link: resolved as text each target stays inside, but
    // `..` after a linked folder is resolved on disk from wherever that link points, which could
    // be outside (`a/b/l -> ../../c`, then `x -> a/b/l/../..`).
    let links: std::collections::HashSet<&str> = index
        .files
        .iter()
        .filter(|e| e.kind == EntryKind::Symlink)
        .map(|e| e.path.as_str())
        .collect();
    for entry in index.files.iter().filter(|e| e.kind == EntryKind::Symlink) {
        let dir = entry.path.rsplit_once('/').map_or("", |(d, _)| d);
        let mut walked = dir.split('/').filter(|c| !c.is_empty()).collect::<Vec<_>>();
        let components: Vec<&str> = entry.target.as_deref().unwrap_or("").split('/').collect();
        for (i, component) in components.iter().enumerate() {
            match *component {
                "" | "." => {}
                ".." => {
                    walked.pop();
                }
                name => walked.push(name),
            }
            let is_last = i + 1 == components.len();
            if !is_last && links.contains(walked.join("/").as_str()) {
                return invalid(format!(
                    "{}: symlink target {:?} passes through another symlink",
                    entry.path,
                    entry.target.as_deref().unwrap_or("")
                ));
            }
        }
    }
    for (service, root) in index.manifest.services.iter().zip(&roots) {
        let what = format!(
            "{} {} {}-{}",
            service.name, service.version, service.os, service.arch
        );
        if !index.files.iter().any(|e| e.path == service.bin_path)
            || !service.bin_path.starts_with(root.as_str())
        {
            return invalid(format!(
                "{what}: binPath {} is not in its payload",
                service.bin_path
            ));
        }
        let (checksum, size) = payload_digest(&payload_entries(root, &index.files));
        if checksum != service.checksum || size != service.size {
            return invalid(format!(
                "{what}: checksum/size do not match the payload's entries"
            ));
        }
        if !index.templates.contains_key(&service.name) {
            return invalid(format!("{what}: no service template"));
        }
    }
    Ok(())
}
