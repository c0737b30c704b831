//! `kojibox-bundle inspect`: what a bundle holds, without verifying it.

use std::fmt::Write as _;
use std::io::BufReader;
use std::path::Path;

use kojibox_manifests::bundle::{BundleIndex, EntryKind};
use serde_json::json;

use crate::Error;
use crate::build::human_bytes;

/// The index and signature of a bundle, plus its file size.
pub struct Inspected {
    /// The signed index (manifest with an empty signature).
    pub index: BundleIndex,
    /// The signature string.
    pub signature: String,
    /// Bundle file size.
    pub bytes: u64,
}

/// Reads a bundle's index (only the first members).
pub fn inspect(path: &Path) -> Result<Inspected, Error> {
    let file = crate::open_bundle(path)?;
    let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    let (index, signature) =
        kojibox_kbx::read::read_index_unverified(BufReader::new(file), &Default::default())?;
    Ok(Inspected {
        index,
        signature,
        bytes,
    })
}

impl Inspected {
    /// JSON for scripts: the manifest as installed (signature filled in), provenance, templates
    /// and per-payload file counts.
    pub fn to_json(&self) -> serde_json::Value {
        let mut manifest = self.index.manifest.clone();
        manifest.bundle.signature = self.signature.clone();
        let payloads: Vec<_> = self.index.manifest.services.iter().map(|s| {
            let root = kojibox_kbx::paths::payload_root(&s.name, &s.version, &s.os, &s.arch);
            let files = self.index.files.iter().filter(|f| f.path.starts_with(&format!("{root}/")));
            let (mut count, mut links) = (0, 0);
            for f in files {
                match f.kind {
                    EntryKind::File => count += 1,
                    EntryKind::Symlink => links += 1,
                }
            }
            json!({"name": s.name, "version": s.version, "target": format!("{}-{}", s.os, s.arch), "root": root, "files": count, "symlinks": links, "size": s.size, "checksum": s.checksum})
        }).collect();
        json!({
            "format": self.index.format,
            "bundleBytes": self.bytes,
            "manifest": manifest,
            "payloads": payloads,
            "provenance": self.index.provenance,
            "templates": self.index.templates,
        })
    }

    /// A human summary.
    pub fn render(&self) -> String {
        let m = &self.index.manifest;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "bundle     {} (format {})",
            m.version, self.index.format
        );
        let _ = writeln!(out, "source     {}", m.bundle.source);
        let _ = writeln!(out, "created    {}", m.bundle.created_at);
        let _ = writeln!(
            out,
            "signature  {} (not verified: use `kojibox-bundle verify`)",
            self.signature
        );
        let _ = writeln!(
            out,
            "size       {} compressed, {} of payload",
            human_bytes(self.bytes),
            human_bytes(m.services.iter().map(|s| s.size).sum())
        );
        let _ = writeln!(out, "\npayloads:");
        for s in &m.services {
            let _ = writeln!(
                out,
                "  {:<10} {:<8} {:<13} {:>11}  {}",
                s.name,
                s.version,
                format!("{}-{}", s.os, s.arch),
                human_bytes(s.size),
                s.checksum
            );
            let _ = writeln!(out, "             bin {}", s.bin_path);
        }
        let _ = writeln!(out, "\nprovenance:");
        for p in &self.index.provenance {
            let _ = writeln!(
                out,
                "  {} {} {}: {}",
                p.service, p.version, p.target, p.source
            );
            if let Some(d) = &p.upstream_digest {
                let _ = writeln!(out, "      upstream {d}");
            }
            if let Some(d) = &p.artifact_sha256 {
                let _ = writeln!(out, "      artifact {d}");
            }
        }
        out
    }
}
