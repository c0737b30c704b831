//! The build plan: the list of steps a build will take, made before anything runs.
//!
//! `kojibox-bundle build --dry-run` prints it and stops; a real build executes the same list, so
//! what is printed is what happens.

use std::fmt;
use std::path::PathBuf;

use kojibox_manifests::recipe::{Recipe, RecipeService, RecipeTarget};

/// One payload to produce: a service for one target.
#[derive(Debug, Clone)]
pub struct Job<'a> {
    /// The recipe's service.
    pub service: &'a RecipeService,
    /// The target.
    pub target: &'a RecipeTarget,
}

impl Job<'_> {
    /// `postgres 16.14 linux-x64`.
    pub fn label(&self) -> String {
        format!(
            "{} {} {}",
            self.service.name,
            self.service.version,
            self.target.triple()
        )
    }

    /// Home-relative payload root.
    pub fn root(&self) -> String {
        kojibox_kbx::paths::payload_root(
            &self.service.name,
            &self.service.version,
            &self.target.os,
            &self.target.arch,
        )
    }
}

/// A build plan.
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    /// The recipe.
    pub recipe: &'a Recipe,
    /// Payloads, in recipe order.
    pub jobs: Vec<Job<'a>>,
    /// The output file.
    pub out: PathBuf,
    /// Where downloads are cached.
    pub cache: PathBuf,
    /// zstd level.
    pub level: i32,
    /// Also read the written bundle back for its sha256 (`--sha256`).
    pub sha256: bool,
}

impl<'a> Plan<'a> {
    /// Selects the jobs: every target of every service, or only `targets` (`os-arch`), in which
    /// case every service must have each of them.
    pub fn new(
        recipe: &'a Recipe,
        targets: &[String],
        out: PathBuf,
        cache: PathBuf,
        level: i32,
    ) -> Result<Plan<'a>, String> {
        for wanted in targets {
            if !recipe
                .services
                .iter()
                .any(|s| s.targets.iter().any(|t| &t.triple() == wanted))
            {
                let known: Vec<String> = recipe
                    .services
                    .iter()
                    .flat_map(|s| s.targets.iter().map(|t| t.triple()))
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                return Err(format!(
                    "no service has target `{wanted}`; the recipe has: {}",
                    known.join(", ")
                ));
            }
        }
        let mut jobs = Vec::new();
        for service in &recipe.services {
            if targets.is_empty() {
                jobs.extend(service.targets.iter().map(|target| Job { service, target }));
                continue;
            }
            for wanted in targets {
                let target = service.targets.iter().find(|t| &t.triple() == wanted).ok_or_else(|| {
                    format!("service `{}` has no target `{wanted}`: add it to the recipe or leave `--target {wanted}` out", service.name)
                })?;
                jobs.push(Job { service, target });
            }
        }
        Ok(Plan {
            recipe,
            jobs,
            out,
            cache,
            level,
            sha256: false,
        })
    }
}

impl fmt::Display for Plan<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "plan for bundle {} ({} payloads):",
            self.recipe.version,
            self.jobs.len()
        )?;
        let mut step = 0;
        let mut line = |f: &mut fmt::Formatter<'_>, text: String| {
            step += 1;
            writeln!(f, "{step:>3}. {text}")
        };
        for job in &self.jobs {
            let source = &job.target.source;
            let from = match source.kind() {
                Ok(kojibox_manifests::recipe::SourceKind::Npm { package, version }) => {
                    format!("npm {package}@{version} (registry integrity checked)")
                }
                Ok(kojibox_manifests::recipe::SourceKind::Url { url, sha256 }) => {
                    format!("{url} (sha256 {sha256})")
                }
                Ok(kojibox_manifests::recipe::SourceKind::Path { path, sha256 }) => format!(
                    "path {path}{}",
                    sha256.map(|s| format!(" (sha256 {s})")).unwrap_or_default()
                ),
                Ok(kojibox_manifests::recipe::SourceKind::Deb { packages }) => format!(
                    "apt {} and the packages of the libraries they load (apt's index sha256 \
                     checked)",
                    packages
                        .iter()
                        .map(|(n, v)| format!("{n}={v}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                Err(e) => e,
            };
            line(
                f,
                format!(
                    "fetch   {}: {from}, into cache {}",
                    job.label(),
                    self.cache.display()
                ),
            )?;
        }
        for job in &self.jobs {
            let links = job
                .target
                .symlinks_from
                .as_deref()
                .map(|l| format!(", links from {l}"))
                .unwrap_or_default();
            line(
                f,
                format!("stage   {} -> {}{links}", job.label(), job.root()),
            )?;
        }
        line(
            f,
            format!(
                "pack    {} payloads, hashing every file, zstd level {}",
                self.jobs.len(),
                self.level
            ),
        )?;
        line(f, "sign    the index (manifest, templates, provenance, every file's path, mode, size, sha256)".to_owned())?;
        line(
            f,
            format!(
                "write   {} (via {}.partial)",
                self.out.display(),
                self.out.display()
            ),
        )?;
        if self.sha256 {
            line(f, format!("hash    {} (its sha256)", self.out.display()))?;
        }
        Ok(())
    }
}
