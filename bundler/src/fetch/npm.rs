//! `npm` sources, fetched with the npm client itself (so registry auth, proxies and mirrors
//! configured for npm just work).
//!
//! A record `npm/<package>@<version>.json` (`{"integrity", "sha256"}`) maps an exact version
//! to its blob; with the record and its blob (or its unpacked folder) cached, npm is not run.
//! Otherwise `npm view <spec> dist.integrity` gives the integrity the registry publishes and
//! `npm pack <spec>` downloads the tarball into a fresh folder. The tarball is copied into our
//! own `tmp/` file while its sha512 (compared with the published integrity) and sha256 (its
//! blob name) are computed; only then are the blob and the record written. npm runs with its
//! own cache under ours, in an empty working folder, so no project's `.npmrc` leaks in.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use indicatif::ProgressBar;
use sha2::{Digest, Sha256, Sha512};
use tempfile::NamedTempFile;

use super::archive::Artifact;
use super::cache::Cache;
use super::context::FetchContext;
use super::error::FetchError;

/// npm tarballs are gzipped tars whatever the registry calls them.
const TARBALL_NAME: &str = "package.tgz";

/// An npm package version made into a payload.
pub(crate) struct NpmFetched {
    pub root: PathBuf,
    /// The registry's `sha512-<base64>` integrity.
    pub integrity: String,
    /// Lowercase hex sha256 of the tarball.
    pub sha256: String,
    pub from_cache: bool,
}

pub(crate) fn resolve(
    package: &str,
    version: &str,
    strip: u32,
    cache: &Cache,
    ctx: &FetchContext,
    progress: &ProgressBar,
) -> Result<NpmFetched, FetchError> {
    let spec = format!("{package}@{version}");
    let record_path = cache.npm_record(package, version);
    if let Some((integrity, sha256)) = read_record(&record_path) {
        let cached = tarball(&spec, &sha256, strip);
        let dest = cached.payload_dir(cache)?;
        let root = if dest.is_dir() {
            Some(dest)
        } else if let Some(mut blob) = cache.verified_blob(&sha256)? {
            Some(cached.materialize(cache, &mut blob)?)
        } else {
            None
        };
        if let Some(root) = root {
            return Ok(NpmFetched {
                root,
                integrity,
                sha256,
                from_cache: true,
            });
        }
    }

    progress.set_message(format!("npm {spec}"));
    let work = cache.temp_dir("npm-")?;
    let npm = Npm {
        ctx,
        cache,
        spec: &spec,
        cwd: work.path(),
    };
    let integrity = npm.published_integrity()?;
    let packed = npm.pack()?;
    let (verified, sha512, sha256) = copy_hashed(&packed, cache)?;
    let actual = format!("sha512-{}", BASE64.encode(sha512));
    if actual != integrity {
        return Err(FetchError::ChecksumMismatch {
            artifact: spec.clone(),
            expected: integrity,
            actual,
        });
    }
    let mut blob = cache.store_blob(verified, &sha256)?;
    let record = serde_json::json!({ "integrity": integrity, "sha256": sha256 });
    cache.write_atomic(&record_path, format!("{record:#}\n").as_bytes())?;
    let root = tarball(&spec, &sha256, strip).materialize(cache, &mut blob)?;
    Ok(NpmFetched {
        root,
        integrity,
        sha256,
        from_cache: false,
    })
}

fn tarball<'a>(spec: &'a str, sha256: &'a str, strip: u32) -> Artifact<'a> {
    Artifact {
        label: spec,
        name: TARBALL_NAME,
        sha256,
        strip,
        mode: 0o644,
    }
}

/// The cached record, when it is present and well formed (anything else means "fetch again").
fn read_record(path: &Path) -> Option<(String, String)> {
    let value: serde_json::Value = serde_json::from_slice(&fs::read(path).ok()?).ok()?;
    let integrity = value.get("integrity")?.as_str()?.to_owned();
    let sha256 = value.get("sha256")?.as_str()?.to_owned();
    let hex_ok = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
    (integrity.starts_with("sha512-") && hex_ok).then_some((integrity, sha256))
}

/// Copies npm's tarball into our own temporary file, hashing it on the way.
pub(crate) fn copy_hashed(
    source: &Path,
    cache: &Cache,
) -> Result<(NamedTempFile, Vec<u8>, String), FetchError> {
    let mut input = File::open(source).map_err(|e| FetchError::io("read", source, e))?;
    let mut output = cache.temp_file()?;
    let (mut sha512, mut sha256) = (Sha512::new(), Sha256::new());
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = input
            .read(&mut buf)
            .map_err(|e| FetchError::io("read", source, e))?;
        if n == 0 {
            break;
        }
        sha512.update(&buf[..n]);
        sha256.update(&buf[..n]);
        output
            .write_all(&buf[..n])
            .map_err(|e| FetchError::io("write", output.path(), e))?;
    }
    let sha512 = sha512.finalize().to_vec();
    Ok((output, sha512, hex::encode(sha256.finalize())))
}

/// Runs npm for one package version.
struct Npm<'a> {
    ctx: &'a FetchContext,
    cache: &'a Cache,
    spec: &'a str,
    cwd: &'a Path,
}

impl Npm<'_> {
    /// `npm view <spec> dist.integrity --json`: the registry's sha512 integrity.
    fn published_integrity(&self) -> Result<String, FetchError> {
        const ACTION: &str = "look up the published integrity of";
        let out = self.run(ACTION, &["view", self.spec, "dist.integrity", "--json"])?;
        let text = String::from_utf8_lossy(&out);
        if text.trim().is_empty() {
            return Err(self.error(ACTION, "the registry has no such version".into()));
        }
        let value: serde_json::Value = serde_json::from_str(text.trim())
            .map_err(|e| self.error(ACTION, format!("unexpected answer {text:?}: {e}")))?;
        let published = value
            .as_str()
            .ok_or_else(|| self.error(ACTION, format!("unexpected answer {text:?}")))?;
        // An integrity may list several digests; sha512 is the one npm has always published.
        published
            .split_whitespace()
            .find(|d| d.starts_with("sha512-"))
            .map(str::to_owned)
            .ok_or_else(|| {
                self.error(
                    ACTION,
                    format!("the registry publishes no sha512 integrity (only {published:?})"),
                )
            })
    }

    /// `npm pack <spec>` into a fresh folder; the path of the tarball it wrote.
    fn pack(&self) -> Result<PathBuf, FetchError> {
        const ACTION: &str = "download";
        let dest = self.cwd.join("pack");
        fs::create_dir(&dest).map_err(|e| FetchError::io("create folder", &dest, e))?;
        let dest_arg = dest.to_string_lossy().into_owned();
        self.run(
            ACTION,
            &[
                "pack",
                self.spec,
                "--json",
                "--ignore-scripts",
                "--pack-destination",
                &dest_arg,
            ],
        )?;
        // The folder was empty, so its one tarball is ours, whatever npm's naming scheme.
        let entries = fs::read_dir(&dest).map_err(|e| FetchError::io("list", &dest, e))?;
        let mut tarballs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "tgz"))
            .collect();
        match tarballs.len() {
            1 => Ok(tarballs.remove(0)),
            n => Err(self.error(
                ACTION,
                format!("expected one tarball from `npm pack`, found {n}"),
            )),
        }
    }

    fn run(&self, action: &'static str, args: &[&str]) -> Result<Vec<u8>, FetchError> {
        let http = &self.ctx.http;
        let mut cmd = Command::new(if cfg!(windows) { "npm.cmd" } else { "npm" });
        cmd.args(args)
            .arg("--cache")
            .arg(self.cache.npm_cache())
            .arg(format!("--fetch-retries={}", http.retries))
            .arg(format!("--fetch-timeout={}", http.read_timeout.as_millis()))
            .args(["--update-notifier=false", "--fund=false", "--audit=false"])
            .current_dir(self.cwd)
            .stdin(Stdio::null());
        if let Some(registry) = &self.ctx.npm_registry {
            cmd.arg("--registry").arg(registry);
        }
        let output = match cmd.output() {
            Ok(output) => output,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(FetchError::NpmMissing {
                    spec: self.spec.to_owned(),
                });
            }
            Err(e) => return Err(self.error(action, format!("could not run npm: {e}"))),
        };
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
            let tail = lines[lines.len().saturating_sub(12)..].join("\n");
            return Err(self.error(
                action,
                format!("npm {} ({})\n{tail}", args[0], output.status),
            ));
        }
        Ok(output.stdout)
    }

    fn error(&self, action: &'static str, why: String) -> FetchError {
        FetchError::Npm {
            spec: self.spec.to_owned(),
            action,
            why,
        }
    }
}
