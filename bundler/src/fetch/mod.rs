//! The fetch layer: turns a recipe [`Source`] into a folder whose contents are the payload.
//!
//! # Theory of operation
//!
//! [`resolve`] dispatches on the source kind:
//!
//! - **url**: the file is downloaded into `tmp/` while it is hashed (sha256, required by the
//!   recipe), with timeouts, retries with exponential backoff and `Range` resumption (see
//!   `http.rs`). Only a file whose digest matches is renamed into `blobs/`.
//! - **npm**: `npm view` tells which integrity (`sha512-…`) the registry publishes, `npm pack`
//!   downloads the tarball; its sha512 must match before it is stored as a blob and a small
//!   record (`npm/<package>@<version>.json`) remembers which blob it is (see `npm.rs`).
//! - **path**: a folder is used in place (never copied, never modified); a file is verified
//!   against its optional sha256 and then treated like a downloaded file.
//! - **deb**: Debian packages at exact versions, downloaded with the system's apt and checked
//!   against the `SHA256:` of its signed index, plus the packages holding the libraries their
//!   ELF files need, unpacked together into one payload (see `deb.rs`).
//!
//! A verified file then becomes a payload folder under `unpacked/`: archives are unpacked with
//! `strip` applied and strict entry checks (see `archive.rs`); any other file is copied alone
//! into a folder, under its own name. The file is verified on the handle that is then read to
//! unpack it, so nothing is used that was not hashed first.
//!
//! # Cache layout (under [`FetchContext::cache_dir`])
//!
//! ```text
//! blobs/sha256/<hex>              verified downloads and npm tarballs, named by their sha256
//! npm/<package>@<version>.json    {"integrity": "sha512-…", "sha256": "<hex>"}; `/` in a
//!                                 scoped name is written `+`
//! npm-cache/                      npm's own cache, private to us (so runs are reproducible)
//! deb/<key>.json                  a `deb` source's closure: each package's name, version,
//!                                 architecture, sha256 and why it is there
//! unpacked/<key>-deb/             that closure unpacked
//! unpacked/<hex>-strip<N>/        an archive unpacked with `strip = N`
//! unpacked/<hex>-file<mode>-<name>/  a single-file payload
//! tmp/                            `*.partial` downloads and unpack folders in progress
//! ```
//!
//! Every entry outside `tmp/` appears by an atomic rename of complete, verified content, so
//! concurrent resolves (one thread per target) never see half-written files: two threads
//! fetching the same artifact both download, and whichever renames second simply finds the
//! result already there. Anything a crash left in `tmp/` can be deleted while no build runs.
//!
//! Trust: a blob is re-hashed whenever it is read (a corrupt one is deleted and fetched again);
//! an unpacked folder is trusted as it stands, like any build output, since only verified bytes
//! ever produce one. Deleting the whole cache is always safe.
//!
//! **Offline guarantee**: a url source whose blob or unpacked folder is cached, and an npm
//! source whose record and blob (or unpacked folder) are cached, are resolved without any
//! network access (`from_cache`); `path` sources never use the network. So once every artifact
//! of a recipe is in the cache, a build needs no network.

mod archive;
mod cache;
mod context;
mod deb;
mod error;
mod http;
mod npm;
mod path;

use std::path::PathBuf;

use indicatif::ProgressBar;
use kojibox_manifests::recipe::{Source, SourceKind};

pub use context::{FetchContext, HttpOptions};
pub use deb::{HOST_BASE, debian_arch};
pub use error::FetchError;

use cache::Cache;

/// A payload ready to pack.
///
/// `root` is a directory whose *contents* are the payload, with `strip` already applied. It may
/// be the user's own folder (a `path` folder source: never copied, never modified) or a folder
/// inside the cache. The caller walks it read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The payload folder.
    pub root: PathBuf,
    /// `npm:<spec>`, `url:<url>` or `path:<as written>` (`Provenance.source`).
    pub source: String,
    /// npm: the registry's integrity (`sha512-…`); url: `sha256:<hex>` pinned in the recipe;
    /// a path file with a sha256: `sha256:<hex>`; otherwise `None`.
    pub upstream_digest: Option<String>,
    /// `sha256:<hex>` of the fetched file or archive; `None` for a folder.
    pub artifact_sha256: Option<String>,
    /// True when nothing had to be downloaded.
    pub from_cache: bool,
    /// `deb`: every package in the payload (the provenance lists them).
    pub packages: Vec<kojibox_manifests::bundle::ProvenancePackage>,
    /// `deb`: payload files whose setuid or setgid bit was cleared, when this build unpacked
    /// it (the build names them).
    pub cleared: Vec<String>,
}

/// Fetches, verifies and unpacks one source for a target of architecture `arch` (`x64`,
/// `arm64`: only `deb` sources depend on it). Safe to call from several threads at once on the
/// same cache.
pub fn resolve(
    source: &Source,
    arch: &str,
    ctx: &FetchContext,
    progress: &ProgressBar,
) -> Result<Resolved, FetchError> {
    let kind = source
        .kind()
        .map_err(|why| FetchError::InvalidSource { why })?;
    let strip = source.strip_or_default();
    match kind {
        SourceKind::Url { url, sha256 } => {
            let cache = Cache::open(&ctx.cache_dir)?;
            let (root, from_cache) =
                http::resolve(url, sha256, strip, &cache, &ctx.http, progress)?;
            Ok(Resolved {
                root,
                source: format!("url:{url}"),
                upstream_digest: Some(format!("sha256:{sha256}")),
                artifact_sha256: Some(format!("sha256:{sha256}")),
                from_cache,
                packages: Vec::new(),
                cleared: Vec::new(),
            })
        }
        SourceKind::Npm { package, version } => {
            let cache = Cache::open(&ctx.cache_dir)?;
            let fetched = npm::resolve(package, version, strip, &cache, ctx, progress)?;
            Ok(Resolved {
                root: fetched.root,
                source: format!("npm:{package}@{version}"),
                upstream_digest: Some(fetched.integrity),
                artifact_sha256: Some(format!("sha256:{}", fetched.sha256)),
                from_cache: fetched.from_cache,
                packages: Vec::new(),
                cleared: Vec::new(),
            })
        }
        SourceKind::Path { path, sha256 } => {
            let (root, actual) = path::resolve(path, sha256, strip, ctx, progress)?;
            Ok(Resolved {
                root,
                source: format!("path:{path}"),
                upstream_digest: sha256.map(|hex| format!("sha256:{hex}")),
                artifact_sha256: actual.map(|hex| format!("sha256:{hex}")),
                from_cache: true,
                packages: Vec::new(),
                cleared: Vec::new(),
            })
        }
        SourceKind::Deb { packages } => {
            let cache = Cache::open(&ctx.cache_dir)?;
            let fetched = deb::resolve(&packages, arch, &cache, progress)?;
            let specs: Vec<String> = packages.iter().map(|(n, v)| format!("{n}={v}")).collect();
            Ok(Resolved {
                root: fetched.root,
                source: format!("deb:{}", specs.join(",")),
                // The closure record lists every package's sha256 from the apt index.
                upstream_digest: Some(format!("sha256:{}", fetched.closure_sha256)),
                artifact_sha256: None,
                from_cache: fetched.from_cache,
                packages: fetched.packages,
                cleared: fetched.cleared,
            })
        }
    }
}

/// The packages a `deb` source's payload is made of (computed with apt, downloading what it
/// needs to read the libraries' names, when the cache does not know it yet): what
/// `kojibox-bundle build --dry-run` lists. Other sources have none.
pub fn deb_closure(
    source: &Source,
    arch: &str,
    ctx: &FetchContext,
) -> Result<Vec<kojibox_manifests::bundle::ProvenancePackage>, FetchError> {
    match source
        .kind()
        .map_err(|why| FetchError::InvalidSource { why })?
    {
        SourceKind::Deb { packages } => {
            let cache = Cache::open(&ctx.cache_dir)?;
            deb::closure(&packages, arch, &cache)
        }
        _ => Ok(Vec::new()),
    }
}
