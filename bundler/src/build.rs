//! Executing a plan: fetch (in parallel) -> stage -> pack (hashing in the same pass) -> sign ->
//! write.
//!
//! Every artifact is resolved on its own thread into the content-addressed cache. Each payload
//! folder is then walked read-only (the recipe's `symlinksFrom` links are added as symlink
//! entries, never written into the cache), all payloads are packed in one pass, and the index
//! that lists what was packed is signed and written in front of it.

use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use kojibox_kbx::write::{BundleSpec, InputEntry, InputKind, PackInput, PackOptions, PayloadSpec};
use kojibox_manifests::bundle::Provenance;
use kojibox_manifests::model::ServiceBinary;
use kojibox_manifests::recipe::SymlinkSpec;
use kojibox_signing::SecretKey;

use crate::Error;
use crate::fetch::{self, FetchContext, Resolved};
use crate::plan::{Job, Plan};

/// How the build talks to the user.
#[derive(Clone)]
pub struct Ui {
    multi: MultiProgress,
    interactive: bool,
}

impl Ui {
    /// Progress bars on a terminal (stderr), plain lines otherwise.
    pub fn new(interactive: bool) -> Ui {
        let target = if interactive {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Ui {
            multi: MultiProgress::with_draw_target(target),
            interactive,
        }
    }

    /// A line for the user (printed above the bars, or plainly). `Ui` is the build's terminal,
    /// which the binary hands in: printing is its whole job.
    #[allow(clippy::print_stderr)]
    pub fn line(&self, text: &str) {
        if self.interactive {
            let _ = self.multi.println(text);
        } else {
            eprintln!("{text}");
        }
    }

    fn bar(&self, label: String, total: Option<u64>) -> ProgressBar {
        if !self.interactive {
            return ProgressBar::hidden();
        }
        let bar = self.multi.add(ProgressBar::new(total.unwrap_or(0)));
        let style = ProgressStyle::with_template(
            "{prefix:<34} {bar:30} {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(label);
        bar
    }
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// Bytes of the bundle.
    pub bytes: u64,
    /// `sha256:<hex>` of the bundle, when the plan asks for it.
    pub sha256: Option<String>,
    /// Bytes of payload files packed.
    pub payload_bytes: u64,
    /// The signer's key id.
    pub key_id: String,
    /// One line per payload: label, size, checksum.
    pub payloads: Vec<(String, u64, String)>,
    /// Artifacts downloaded vs taken from the cache.
    pub downloaded: usize,
    /// Artifacts served by the cache.
    pub cached: usize,
    /// Wall time.
    pub elapsed: Duration,
}

/// Runs a plan.
pub fn build(
    plan: &Plan<'_>,
    key: &SecretKey,
    fetch_ctx: &FetchContext,
    threads: u32,
    created_at: i64,
    ui: &Ui,
) -> Result<BuildReport, Error> {
    let started = Instant::now();
    let resolved = fetch_all(plan, fetch_ctx, ui)?;

    let mut inputs = Vec::with_capacity(plan.jobs.len());
    for (job, resolved) in plan.jobs.iter().zip(&resolved) {
        inputs.push(stage(job, resolved)?);
    }

    let total: u64 = inputs
        .iter()
        .flat_map(|i| &i.entries)
        .map(|e| match &e.kind {
            InputKind::File { source, .. } => {
                std::fs::metadata(source).map(|m| m.len()).unwrap_or(0)
            }
            InputKind::Symlink { .. } => 0,
        })
        .sum();
    let options = PackOptions {
        level: plan.level,
        threads,
        mtime: created_at.max(0) as u64,
    };
    let created = jiff::Timestamp::from_second(created_at)
        .map_err(|e| Error::Plan(format!("bad build time {created_at}: {e}")))?;
    let mut payloads = Vec::new();
    let mut provenance = Vec::new();
    for ((job, resolved), input) in plan.jobs.iter().zip(&resolved).zip(inputs) {
        let service = job.service;
        payloads.push(PayloadSpec {
            binary: ServiceBinary {
                name: service.name.clone(),
                version: service.version.clone(),
                os: job.target.os.clone(),
                arch: job.target.arch.clone(),
                checksum: String::new(),
                size: 0,
                bin_path: format!("{}/{}", input.root, job.target.bin_path),
                default_ports: service.default_ports.clone(),
                env: service.env.clone(),
                args: service.args.clone(),
            },
            entries: input.entries,
        });
        provenance.push(Provenance {
            service: service.name.clone(),
            version: service.version.clone(),
            target: job.target.triple(),
            source: resolved.source.clone(),
            upstream_digest: resolved.upstream_digest.clone(),
            artifact_sha256: resolved.artifact_sha256.clone(),
            packages: resolved.packages.clone(),
        });
    }
    let spec = BundleSpec {
        version: plan.recipe.version.clone(),
        source: plan.recipe.source.clone(),
        created_at: created.to_string(),
        payloads,
        templates: plan
            .recipe
            .services
            .iter()
            .map(|s| (s.name.clone(), s.definition.clone()))
            .collect(),
        provenance,
    };
    let bar = ui.bar("pack".into(), Some(total));
    if !ui.interactive {
        ui.line(&format!(
            "packing {} payloads ({})",
            plan.jobs.len(),
            human_bytes(total)
        ));
    }
    let built = kojibox_kbx::write::build(spec, key, &options, &plan.out, &mut |n| bar.inc(n))?;
    bar.finish_and_clear();
    let written = built.written;
    let payloads = plan
        .jobs
        .iter()
        .zip(&built.index.manifest.services)
        .map(|(job, s)| (job.label(), s.size, s.checksum.clone()))
        .collect();

    // Not computed by default: the bundle's own hash needs a second read of the whole file
    // after it is written (its first bytes, the signed index, are known last), which would
    // be the single largest cost of packing after compression.
    let sha256 = if plan.sha256 {
        Some(
            file_sha256(&plan.out).map_err(|source| kojibox_kbx::Error::Io {
                action: "read back",
                path: plan.out.clone(),
                source,
            })?,
        )
    } else {
        None
    };

    Ok(BuildReport {
        bytes: written.bytes,
        sha256,
        payload_bytes: total,
        key_id: key.key_id().to_string(),
        payloads,
        downloaded: resolved.iter().filter(|r| !r.from_cache).count(),
        cached: resolved.iter().filter(|r| r.from_cache).count(),
        elapsed: started.elapsed(),
    })
}

/// Resolves every job's source, one thread each.
fn fetch_all(plan: &Plan<'_>, ctx: &FetchContext, ui: &Ui) -> Result<Vec<Resolved>, Error> {
    let results: Vec<Result<Resolved, Error>> = std::thread::scope(|scope| {
        let handles: Vec<_> = plan
            .jobs
            .iter()
            .map(|job| {
                let bar = ui.bar(format!("fetch {}", job.label()), None);
                scope.spawn(move || {
                    let result = fetch::resolve(&job.target.source, &job.target.arch, ctx, &bar);
                    bar.finish_and_clear();
                    match &result {
                        Ok(r) => {
                            ui.line(&format!(
                                "fetched {}{}",
                                job.label(),
                                if r.from_cache { " (cached)" } else { "" }
                            ));
                            for file in &r.cleared {
                                ui.line(&format!(
                                    "cleared {}: the setuid/setgid bit of {file} (a bundle never \
                                     carries one)",
                                    job.label()
                                ));
                            }
                        }
                        Err(_) => ui.line(&format!("failed  {}", job.label())),
                    }
                    result.map_err(|source| Error::Fetch {
                        job: job.label(),
                        source,
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Plan("a fetch thread panicked".into())))
            })
            .collect()
    });
    results.into_iter().collect()
}

/// The entries of one payload: its folder's files and links, plus `symlinksFrom` links.
fn stage(job: &Job<'_>, resolved: &Resolved) -> Result<PackInput, Error> {
    let mut entries = kojibox_kbx::write::walk_payload(&resolved.root)?;
    if let Some(list) = &job.target.symlinks_from {
        let path = resolved.root.join(list);
        let text = std::fs::read(&path).map_err(|e| Error::Payload {
            job: job.label(),
            problem: format!(
                "symlinksFrom {list}: could not read {}: {e}",
                path.display()
            ),
        })?;
        let links: Vec<SymlinkSpec> =
            kojibox_manifests::from_json_slice(&text).map_err(|e| Error::Payload {
                job: job.label(),
                problem: format!("symlinksFrom {list}: {e}"),
            })?;
        for link in links {
            add_link(&mut entries, &link).map_err(|problem| Error::Payload {
                job: job.label(),
                problem: format!("symlinksFrom {list}: {problem}"),
            })?;
        }
        entries.sort_by(|a, b| a.rel.as_bytes().cmp(b.rel.as_bytes()));
    }
    if !entries.iter().any(|e| e.rel == job.target.bin_path) {
        return Err(Error::Payload {
            job: job.label(),
            problem: format!(
                "binPath `{}` is not in the payload (from {}); check binPath and strip",
                job.target.bin_path, resolved.source
            ),
        });
    }
    Ok(PackInput {
        root: job.root(),
        entries,
    })
}

/// Adds `link.target -> link.source` as a relative symlink entry.
fn add_link(entries: &mut Vec<InputEntry>, link: &SymlinkSpec) -> Result<(), String> {
    for p in [&link.source, &link.target] {
        kojibox_kbx::paths::check_relative(p).map_err(|why| format!("`{p}`: {why}"))?;
    }
    if !entries.iter().any(|e| e.rel == link.source) {
        return Err(format!(
            "link source `{}` is not in the payload",
            link.source
        ));
    }
    let relative = relative_link(&link.target, &link.source);
    if let Some(existing) = entries.iter().find(|e| e.rel == link.target) {
        return match &existing.kind {
            InputKind::Symlink { target } if *target == relative => Ok(()),
            _ => Err(format!("`{}` already exists in the payload", link.target)),
        };
    }
    entries.push(InputEntry {
        rel: link.target.clone(),
        kind: InputKind::Symlink { target: relative },
    });
    Ok(())
}

/// The relative path from the folder of `link` to `target` (both payload-relative).
fn relative_link(link: &str, target: &str) -> String {
    let from: Vec<&str> = link.split('/').collect();
    let from = &from[..from.len() - 1];
    let to: Vec<&str> = target.split('/').collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<&str> = vec![".."; from.len() - common];
    parts.extend(&to[common..]);
    parts.join("/")
}

/// `sha256:<hex>` of the file at `path`.
fn file_sha256(path: &std::path::Path) -> std::io::Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0; 1 << 20];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(format!("sha256:{}", hex::encode(hasher.finalize()))),
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// `12.3 MiB`.
pub fn human_bytes(n: u64) -> String {
    indicatif::BinaryBytes(n).to_string()
}

#[cfg(test)]
mod tests {
    use super::relative_link;

    #[test]
    fn relative_links() {
        assert_eq!(
            relative_link("native/lib/libpq.so.5", "native/lib/libpq.so.5.16"),
            "libpq.so.5.16"
        );
        assert_eq!(
            relative_link("bin/pg", "native/bin/postgres"),
            "../native/bin/postgres"
        );
        assert_eq!(relative_link("top", "a/b"), "a/b");
    }
}
