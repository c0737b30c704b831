//! `deb` sources: Debian packages named with exact versions, fetched with the system's apt and
//! made into one payload with the libraries their programs load.
//!
//! apt does the fetching (`apt-get download`), so the archive's signed index vouches for each
//! package: the `SHA256:` that `apt-cache show` lists for the exact version is compared with the
//! downloaded file before it becomes a blob. `dpkg-deb -x` unpacks.
//!
//! **The closure comes from the binaries, not from `Depends`** (which pulls in apache2, systemd
//! and perl). Starting from the named packages: every ELF file's `NEEDED` libraries must be
//! found inside the payload or be part of the assumed host base ([`HOST_BASE`]: glibc and
//! libgcc_s). For a library that is not, the packages the payload's packages depend on are
//! tried (those named like the library first), and the first one that holds it joins the
//! payload, with its own dependencies as further candidates. A library no candidate holds fails
//! the build, naming it and what needs it.
//!
//! **Relocation**: every ELF file of the payload gets a `DT_RUNPATH` of `$ORIGIN`-relative
//! folders, those holding the libraries it needs (`patchelf --set-rpath`), and is then checked:
//! each library it needs must be found through that run path inside the payload, or be the
//! host's, so nothing resolves to the build machine's `/usr/lib`. setuid and setgid bits are
//! cleared here, each file named (a payload is packed with modes 0755 or 0644 anyway).
//!
//! The closure is recorded (`deb/<key>.json`: each package's name, version, architecture,
//! sha256 and what pulled it in), so a second build of the same packages needs neither apt nor
//! the network: the blobs are re-hashed and, when the payload folder is already unpacked, used
//! as they stand.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use indicatif::ProgressBar;
use kojibox_manifests::bundle::ProvenancePackage;
use sha2::{Digest, Sha256};

use super::cache::Cache;
use super::error::FetchError;
use super::npm::copy_hashed;

/// Libraries every Linux host the payloads run on has (glibc's and libgcc_s): never bundled.
pub const HOST_BASE: &[&str] = &[
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
    "libc.so.6",
    "libm.so.6",
    "libmvec.so.1",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "libresolv.so.2",
    "libutil.so.1",
    "libanl.so.1",
    "libnsl.so.1",
    "libthread_db.so.1",
    "libBrokenLocale.so.1",
    "libc_malloc_debug.so.0",
    "libgcc_s.so.1",
];

/// The packages that provide [`HOST_BASE`]: never fetched as candidates.
const HOST_PACKAGES: &[&str] = &["libc6", "libgcc-s1"];

/// Folders of a package that a payload does not need (documentation, manuals, init scripts).
const PRUNED: &[&str] = &[
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/lintian",
    "usr/share/bug",
    "etc/init.d",
    "lib/systemd",
    "usr/lib/systemd",
];

/// A `deb` source made into a payload.
pub(crate) struct DebFetched {
    pub root: PathBuf,
    /// Payload files whose setuid or setgid bit was cleared (when the payload was unpacked).
    pub cleared: Vec<String>,
    /// Every package in the payload, the named ones first.
    pub packages: Vec<ProvenancePackage>,
    /// The record's sha256 (it lists every package's): what the provenance pins.
    pub closure_sha256: String,
    pub from_cache: bool,
}

/// The Debian architecture of a recipe target's `arch`.
pub fn debian_arch(arch: &str) -> Option<&'static str> {
    match arch {
        "x64" => Some("amd64"),
        "arm64" => Some("arm64"),
        _ => None,
    }
}

/// A source's closure, read from its record or computed (and then recorded).
struct Recorded {
    apt: Apt,
    /// The record's key (also the unpacked folder's).
    key: String,
    closure: Vec<ProvenancePackage>,
    /// Whether the record was there already (no apt was asked).
    from_record: bool,
}

fn recorded(
    packages: &[(&str, &str)],
    arch: &str,
    cache: &Cache,
    progress: &ProgressBar,
) -> Result<Recorded, FetchError> {
    let deb_arch = debian_arch(arch).ok_or_else(|| FetchError::InvalidSource {
        why: format!("`deb` sources are for linux x64 and arm64, not `{arch}`"),
    })?;
    let apt = Apt { arch: deb_arch };
    let key = closure_key(packages, deb_arch);
    let record = cache.deb_record(&key);
    if let Some(closure) = read_record(&record) {
        return Ok(Recorded {
            apt,
            key,
            closure,
            from_record: true,
        });
    }
    progress.set_message(format!("apt closure of {}", spec_list(packages)));
    let closure = compute_closure(packages, &apt, cache)?;
    cache.write_atomic(&record, record_text(&closure).as_bytes())?;
    Ok(Recorded {
        apt,
        key,
        closure,
        from_record: false,
    })
}

/// Resolves `packages` (`name=version`) for `arch` (a recipe arch: `x64`, `arm64`).
pub(crate) fn resolve(
    packages: &[(&str, &str)],
    arch: &str,
    cache: &Cache,
    progress: &ProgressBar,
) -> Result<DebFetched, FetchError> {
    let Recorded {
        apt,
        key,
        closure,
        from_record,
    } = recorded(packages, arch, cache, progress)?;
    let closure_sha256 = hex::encode(Sha256::digest(record_text(&closure).as_bytes()));
    let dest = cache.unpacked(&format!("{key}-deb"));
    let mut from_cache = from_record;
    let mut cleared = Vec::new();
    if !dest.is_dir() {
        let work = cache.temp_dir("deb-")?;
        for package in &closure {
            progress.set_message(format!("unpack {}={}", package.name, package.version));
            let blob = match cache.verified_blob(&package.sha256)? {
                Some(_) => cache.blob(&package.sha256),
                None => {
                    from_cache = false;
                    let stanza = apt.show(&package.name, Some(&package.version))?;
                    fetch(&stanza, &apt, cache)?
                }
            };
            unpack(&blob, work.path(), &package.name)?;
        }
        for pruned in PRUNED {
            let _ = fs::remove_dir_all(work.path().join(pruned));
        }
        progress.set_message(format!("relocate {}", spec_list(packages)));
        cleared = clear_special_bits(work.path())?;
        relocate(work.path())?;
        cache.publish_dir(work, &dest)?;
    }
    Ok(DebFetched {
        root: dest,
        cleared,
        packages: closure,
        closure_sha256,
        from_cache,
    })
}

/// What `--dry-run` shows: the closure, computed (and recorded) now if it is not yet.
pub(crate) fn closure(
    packages: &[(&str, &str)],
    arch: &str,
    cache: &Cache,
) -> Result<Vec<ProvenancePackage>, FetchError> {
    Ok(recorded(packages, arch, cache, &ProgressBar::hidden())?.closure)
}

fn spec_list(packages: &[(&str, &str)]) -> String {
    packages
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The record's name: the architecture and the sorted package specs, hashed.
fn closure_key(packages: &[(&str, &str)], arch: &str) -> String {
    let mut specs: Vec<String> = packages.iter().map(|(n, v)| format!("{n}={v}")).collect();
    specs.sort();
    let text = format!("{arch}\n{}", specs.join("\n"));
    hex::encode(&Sha256::digest(text.as_bytes())[..12])
}

/// The record's text: pretty JSON, one package per object, a final newline.
fn record_text(closure: &[ProvenancePackage]) -> String {
    let mut text = serde_json::to_string_pretty(closure).unwrap_or_default();
    text.push('\n');
    text
}

fn read_record(path: &Path) -> Option<Vec<ProvenancePackage>> {
    let closure: Vec<ProvenancePackage> = serde_json::from_slice(&fs::read(path).ok()?).ok()?;
    let sane = closure
        .iter()
        .all(|p| p.sha256.len() == 64 && p.sha256.bytes().all(|b| b.is_ascii_hexdigit()));
    (sane && !closure.is_empty()).then_some(closure)
}

/// What a closure is made of while it grows.
#[derive(Default)]
struct Growing {
    closure: Vec<ProvenancePackage>,
    /// Dependencies of the payload's packages, not (yet) in it.
    candidates: BTreeSet<String>,
    /// Library names the payload (or the host base) has.
    provided: BTreeSet<String>,
    /// `(soname, file needing it)` of every ELF file in the payload.
    needs: Vec<(String, String)>,
}

impl Growing {
    /// Adds the package `stanza` describes, unpacked in `dir`.
    fn add(
        &mut self,
        stanza: &Stanza,
        dir: &Path,
        needed_for: Option<String>,
    ) -> Result<(), FetchError> {
        self.closure.push(ProvenancePackage {
            name: stanza.name.clone(),
            version: stanza.version.clone(),
            arch: stanza.arch.clone(),
            sha256: stanza.sha256.clone(),
            needed_for,
        });
        self.candidates.extend(stanza.depends.iter().cloned());
        scan(dir, &mut self.provided, &mut self.needs)
    }

    /// The first library needed and not had.
    fn missing(&self) -> Option<(String, String)> {
        self.needs
            .iter()
            .find(|(soname, _)| !self.provided.contains(soname))
            .cloned()
    }
}

/// Downloads and unpacks packages until every ELF file's libraries resolve.
fn compute_closure(
    roots: &[(&str, &str)],
    apt: &Apt,
    cache: &Cache,
) -> Result<Vec<ProvenancePackage>, FetchError> {
    let work = cache.temp_dir("closure-")?;
    let mut growing = Growing {
        provided: HOST_BASE.iter().map(|s| s.to_string()).collect(),
        ..Growing::default()
    };
    // Candidates fetched and found of no use so far (kept, with the names of their files, for a
    // later library); `None` for a name apt cannot fetch (a virtual package).
    let mut tried: BTreeMap<String, Option<(Stanza, PathBuf, BTreeSet<String>)>> = BTreeMap::new();
    for (name, version) in roots {
        let stanza = apt.show(name, Some(version))?;
        let blob = fetch(&stanza, apt, cache)?;
        let dir = work.path().join(&stanza.name);
        unpack(&blob, &dir, &stanza.name)?;
        growing.add(&stanza, &dir, None)?;
    }
    while let Some((soname, needer)) = growing.missing() {
        let in_closure: BTreeSet<&str> = growing.closure.iter().map(|p| p.name.as_str()).collect();
        // Those named like the library first (`libssl.so.3` -> `libssl3`), then the others.
        let stem = soname.split(".so").next().unwrap_or(&soname).to_owned();
        let mut order: Vec<String> = growing
            .candidates
            .iter()
            .filter(|c| !in_closure.contains(c.as_str()) && !HOST_PACKAGES.contains(&c.as_str()))
            .cloned()
            .collect();
        order.sort_by_key(|c| !c.starts_with(&stem));
        let mut found = None;
        for candidate in order {
            if !tried.contains_key(&candidate) {
                let fetched = match apt.show(&candidate, None) {
                    Ok(stanza) => {
                        let blob = fetch(&stanza, apt, cache)?;
                        let dir = work.path().join(&stanza.name);
                        unpack(&blob, &dir, &stanza.name)?;
                        let names = names(&dir)?;
                        Some((stanza, dir, names))
                    }
                    Err(_) => None,
                };
                tried.insert(candidate.clone(), fetched);
            }
            if let Some(Some((_, _, names))) = tried.get(&candidate)
                && names.contains(&soname)
            {
                found = tried.remove(&candidate).flatten();
                break;
            }
        }
        let Some((stanza, dir, _)) = found else {
            return Err(FetchError::Deb {
                package: spec_list(roots),
                why: format!(
                    "{soname}, needed by {needer}, is in none of the packages; name the package \
                     that provides it in the recipe"
                ),
            });
        };
        growing.candidates.remove(&stanza.name);
        growing.add(&stanza, &dir, Some(format!("{soname} for {needer}")))?;
    }
    Ok(growing.closure)
}

/// Adds the library names `dir` holds to `provided` and each ELF file's `NEEDED` to `needs`
/// (`(soname, file)`, the file relative to `dir`).
fn scan(
    dir: &Path,
    provided: &mut BTreeSet<String>,
    needs: &mut Vec<(String, String)>,
) -> Result<(), FetchError> {
    for path in files(dir)? {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.contains(".so") {
            provided.insert(name);
        }
        let is_file = fs::symlink_metadata(&path).is_ok_and(|m| m.is_file());
        if is_file && crate::elf::is_elf(&path) {
            let dynamic = crate::elf::read(&path)
                .map_err(|e| FetchError::io("read the ELF file", &path, e))?;
            if let Some(dynamic) = dynamic {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                for soname in dynamic.needed {
                    needs.push((soname, rel.clone()));
                }
            }
        }
    }
    Ok(())
}

/// Clears every setuid and setgid bit under `root`; the files' payload paths.
fn clear_special_bits(root: &Path) -> Result<Vec<String>, FetchError> {
    let mut cleared = Vec::new();
    #[cfg(unix)]
    for path in files(root)? {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let mode = meta.permissions().mode();
        if meta.is_file() && mode & 0o6000 != 0 {
            super::cache::set_mode(&path, mode & 0o777)?;
            cleared.push(relative(root, &path));
        }
    }
    #[cfg(not(unix))]
    let _ = root;
    Ok(cleared)
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Gives every ELF file under `root` an `$ORIGIN`-relative run path to the folders holding the
/// libraries it needs, then checks that each of them resolves through it (or is the host's).
fn relocate(root: &Path) -> Result<(), FetchError> {
    let all = files(root)?;
    // Where each library name is, relative to the root.
    let mut homes: BTreeMap<String, BTreeSet<PathBuf>> = BTreeMap::new();
    for path in &all {
        if let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned())
            && name.contains(".so")
        {
            let dir = path.parent().unwrap_or(root);
            homes
                .entry(name)
                .or_default()
                .insert(dir.strip_prefix(root).unwrap_or(dir).to_owned());
        }
    }
    for path in &all {
        let is_file = fs::symlink_metadata(path).is_ok_and(|m| m.is_file());
        if !is_file || !crate::elf::is_elf(path) {
            continue;
        }
        let Some(dynamic) =
            crate::elf::read(path).map_err(|e| FetchError::io("read the ELF file", path, e))?
        else {
            continue;
        };
        let here = path
            .parent()
            .unwrap_or(root)
            .strip_prefix(root)
            .unwrap_or(Path::new(""))
            .to_owned();
        let mut dirs: Vec<PathBuf> = Vec::new();
        for needed in &dynamic.needed {
            if HOST_BASE.contains(&needed.as_str()) {
                continue;
            }
            let home = homes
                .get(needed)
                .and_then(|h| h.iter().next())
                .ok_or_else(|| FetchError::Deb {
                    package: relative(root, path),
                    why: format!("needs {needed}, which is not in the payload"),
                })?;
            if !dirs.contains(home) {
                dirs.push(home.clone());
            }
        }
        if dirs.is_empty() {
            continue;
        }
        let runpath: Vec<String> = dirs.iter().map(|dir| origin_relative(&here, dir)).collect();
        let runpath = runpath.join(":");
        if dynamic.runpath.as_deref() != Some(runpath.as_str()) {
            patchelf(path, &runpath)?;
        }
        check_resolves(root, path, &here)?;
    }
    Ok(())
}

/// `$ORIGIN/<the way from folder `from` to folder `to`>`, both relative to the payload root.
fn origin_relative(from: &Path, to: &Path) -> String {
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["$ORIGIN".to_owned()];
    parts.extend(std::iter::repeat_n("..".to_owned(), from.len() - common));
    parts.extend(
        to[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

/// `patchelf --set-rpath RUNPATH FILE` (patchelf writes `DT_RUNPATH`).
fn patchelf(path: &Path, runpath: &str) -> Result<(), FetchError> {
    let mut command = Command::new("patchelf");
    command.arg("--set-rpath").arg(runpath).arg(path);
    run(
        &mut command,
        &path.display().to_string(),
        "patchelf, which relocates deb payloads (`apt-get install patchelf`)",
        "patchelf --set-rpath",
    )
    .map(drop)
}

/// Each library `path` needs is found through its run path inside `root`, or is the host's.
fn check_resolves(root: &Path, path: &Path, here: &Path) -> Result<(), FetchError> {
    let dynamic = crate::elf::read(path)
        .map_err(|e| FetchError::io("read the ELF file", path, e))?
        .unwrap_or_default();
    let origin = root.join(here);
    let dirs: Vec<PathBuf> = dynamic
        .runpath
        .as_deref()
        .unwrap_or("")
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| PathBuf::from(d.replace("$ORIGIN", &origin.to_string_lossy())))
        .collect();
    for needed in &dynamic.needed {
        if HOST_BASE.contains(&needed.as_str()) {
            continue;
        }
        let found = dirs.iter().any(|dir| {
            let candidate = dir.join(needed);
            candidate.exists()
                && std::path::absolute(&candidate)
                    .ok()
                    .and_then(|c| c.canonicalize().ok())
                    .is_some_and(|c| c.starts_with(root.canonicalize().unwrap_or_default()))
        });
        if !found {
            return Err(FetchError::Deb {
                package: relative(root, path),
                why: format!(
                    "after relocation {needed} does not resolve inside the payload (run path \
                     `{}`)",
                    dynamic.runpath.as_deref().unwrap_or("")
                ),
            });
        }
    }
    Ok(())
}

/// The names of the files and links under `dir`.
fn names(dir: &Path) -> Result<BTreeSet<String>, FetchError> {
    Ok(files(dir)?
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect())
}

/// Every file and link under `dir`, depth first, sorted.
fn files(dir: &Path) -> Result<Vec<PathBuf>, FetchError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(at) = stack.pop() {
        let mut entries: Vec<_> = fs::read_dir(&at)
            .map_err(|e| FetchError::io("read the folder", &at, e))?
            .filter_map(|e| e.ok())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(_) => out.push(path),
                Err(_) => {}
            }
        }
    }
    Ok(out)
}

/// The stored blob of the package `stanza` names, downloaded with apt when it is not cached.
fn fetch(stanza: &Stanza, apt: &Apt, cache: &Cache) -> Result<PathBuf, FetchError> {
    if cache.verified_blob(&stanza.sha256)?.is_some() {
        return Ok(cache.blob(&stanza.sha256));
    }
    let work = cache.temp_dir("apt-")?;
    let downloaded = apt.download(stanza, work.path())?;
    let (verified, _, sha256) = copy_hashed(&downloaded, cache)?;
    if sha256 != stanza.sha256 {
        return Err(FetchError::ChecksumMismatch {
            artifact: format!("{}={}", stanza.name, stanza.version),
            expected: format!("sha256:{} (the apt index)", stanza.sha256),
            actual: format!("sha256:{sha256}"),
        });
    }
    cache.store_blob(verified, &sha256)?;
    Ok(cache.blob(&sha256))
}

/// `dpkg-deb -x BLOB DIR`.
fn unpack(blob: &Path, dir: &Path, name: &str) -> Result<(), FetchError> {
    fs::create_dir_all(dir).map_err(|e| FetchError::io("create", dir, e))?;
    let mut command = Command::new("dpkg-deb");
    command.arg("-x").arg(blob).arg(dir);
    run(
        &mut command,
        name,
        "dpkg-deb (Debian's `dpkg` provides it)",
        "dpkg-deb -x",
    )
    .map(drop)
}

/// Runs `command` for `package`; its output when it succeeds. Else an error naming `package`:
/// `could not run <program>` when it cannot start, `<what> failed: <its last stderr lines>`
/// when it fails.
fn run(
    command: &mut Command,
    package: &str,
    program: &str,
    what: &str,
) -> Result<std::process::Output, FetchError> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| FetchError::Deb {
            package: package.to_owned(),
            why: format!("could not run {program}: {e}"),
        })?;
    if !output.status.success() {
        let err = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = err.trim().lines().rev().take(3).collect();
        return Err(FetchError::Deb {
            package: package.to_owned(),
            why: format!(
                "{what} failed: {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
            ),
        });
    }
    Ok(output)
}

/// One package version as the apt index describes it.
#[derive(Debug, Clone)]
struct Stanza {
    name: String,
    version: String,
    arch: String,
    sha256: String,
    /// Every package named in `Depends` and `Pre-Depends` (each alternative).
    depends: Vec<String>,
}

/// The system's apt, asked about one architecture.
struct Apt {
    arch: &'static str,
}

impl Apt {
    /// `apt-cache show` of `name` at `version` (or apt's candidate version).
    fn show(&self, name: &str, version: Option<&str>) -> Result<Stanza, FetchError> {
        let spec = match version {
            Some(v) => format!("{name}:{}={v}", self.arch),
            None => format!("{name}:{}", self.arch),
        };
        let output = Command::new("apt-cache")
            .args(["show", "--no-all-versions", &spec])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| FetchError::Deb {
                package: spec.clone(),
                why: format!("could not run apt-cache (a Debian or Ubuntu machine's apt): {e}"),
            })?;
        let text = String::from_utf8_lossy(&output.stdout);
        let stanza = parse_stanza(&text);
        match stanza {
            Some(stanza) if output.status.success() => Ok(stanza),
            _ => Err(FetchError::Deb {
                package: spec,
                why: match version {
                    Some(_) => format!(
                        "apt has no such version (it has: {}); run `apt-get update`, or pin one \
                         of those",
                        self.versions(name).join(", ")
                    ),
                    None => "apt knows no such package".to_owned(),
                },
            }),
        }
    }

    /// The versions of `name` apt can fetch, newest first.
    fn versions(&self, name: &str) -> Vec<String> {
        let output = Command::new("apt-cache")
            .args(["madison", name])
            .stdin(Stdio::null())
            .output();
        let Ok(output) = output else {
            return vec!["none".to_owned()];
        };
        let mut versions: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|l| l.split('|').nth(1).map(|v| v.trim().to_owned()))
            .collect();
        versions.dedup();
        if versions.is_empty() {
            versions.push("none".to_owned());
        }
        versions
    }

    /// `apt-get download NAME:ARCH=VERSION` into `dir`; the `.deb` it wrote.
    fn download(&self, stanza: &Stanza, dir: &Path) -> Result<PathBuf, FetchError> {
        let spec = format!("{}:{}={}", stanza.name, self.arch, stanza.version);
        let spec = if stanza.arch == "all" {
            format!("{}={}", stanza.name, stanza.version)
        } else {
            spec
        };
        let mut command = Command::new("apt-get");
        command.args(["download", "-q", &spec]).current_dir(dir);
        run(&mut command, &spec, "apt-get", "apt-get download")?;
        let deb = fs::read_dir(dir)
            .map_err(|e| FetchError::io("read the folder", dir, e))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "deb"));
        deb.ok_or_else(|| FetchError::Deb {
            package: spec,
            why: "apt-get download wrote no .deb file".to_owned(),
        })
    }
}

/// The first stanza of `apt-cache show` output.
fn parse_stanza(text: &str) -> Option<Stanza> {
    let block = text.split("\n\n").find(|b| !b.trim().is_empty())?;
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in block.lines() {
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some(key) = &last
                && let Some(value) = fields.get_mut(key)
            {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((key, value)) = line.split_once(':') {
            fields.insert(key.to_owned(), value.trim().to_owned());
            last = Some(key.to_owned());
        }
    }
    let depends = ["Pre-Depends", "Depends"]
        .iter()
        .filter_map(|k| fields.get(*k))
        .flat_map(|v| v.split([',', '|']))
        .filter_map(|dep| {
            let name = dep.split_whitespace().next()?;
            // `foo:any` names the same package.
            Some(name.split(':').next().unwrap_or(name).to_owned())
        })
        .collect();
    let sha256 = fields.get("SHA256")?.to_ascii_lowercase();
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(Stanza {
        name: fields.get("Package")?.clone(),
        version: fields.get("Version")?.clone(),
        arch: fields.get("Architecture")?.clone(),
        sha256,
        depends,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stanza_gives_name_version_sha256_and_every_dependency() {
        let text = "Package: redis-tools\nVersion: 5:7.0.15-1~deb12u7\nArchitecture: amd64\n\
Pre-Depends: init-system-helpers (>= 1.54~)\nDepends: adduser, libatomic1 (>= 4.8), libc6 (>= 2.34),\n libssl3 (>= 3.0.0) | libssl1, libsystemd0:any\n\
Description: persistent key-value database\n with network interface\n\
SHA256: 3C8CD27847C6A06B6F6C29E7415A9057462A89661E3A8E2EB8DD5B2D7830BB40\n\nPackage: other\n";
        let stanza = parse_stanza(text).unwrap();
        assert_eq!(stanza.name, "redis-tools");
        assert_eq!(stanza.version, "5:7.0.15-1~deb12u7");
        assert_eq!(stanza.arch, "amd64");
        assert_eq!(
            stanza.sha256,
            "3c8cd27847c6a06b6f6c29e7415a9057462a89661e3a8e2eb8dd5b2d7830bb40"
        );
        assert_eq!(
            stanza.depends,
            [
                "init-system-helpers",
                "adduser",
                "libatomic1",
                "libc6",
                "libssl3",
                "libssl1",
                "libsystemd0"
            ]
        );
        // No SHA256, or a malformed one: not a stanza to trust.
        assert!(parse_stanza("Package: x\nVersion: 1\nArchitecture: all\n").is_none());
        assert!(parse_stanza("Package: x\nVersion: 1\nArchitecture: all\nSHA256: abc\n").is_none());
    }

    #[test]
    fn run_paths_lead_from_a_file_to_its_libraries() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            origin_relative(&p("usr/bin"), &p("usr/lib/x86_64-linux-gnu")),
            "$ORIGIN/../lib/x86_64-linux-gnu"
        );
        assert_eq!(
            origin_relative(&p("usr/lib/php/20220829"), &p("usr/lib/x86_64-linux-gnu")),
            "$ORIGIN/../../x86_64-linux-gnu"
        );
        assert_eq!(
            origin_relative(
                &p("usr/lib/x86_64-linux-gnu"),
                &p("usr/lib/x86_64-linux-gnu")
            ),
            "$ORIGIN"
        );
        assert_eq!(origin_relative(&p(""), &p("lib")), "$ORIGIN/lib");
    }

    #[cfg(unix)]
    #[test]
    fn setuid_and_setgid_bits_are_cleared_and_named() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let tool = dir
            .path()
            .join("usr/lib/mysql/plugin/auth_pam_tool_dir/auth_pam_tool");
        std::fs::create_dir_all(tool.parent().unwrap()).unwrap();
        std::fs::write(&tool, b"\x7fELF").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o4755)).unwrap();
        let group = dir.path().join("usr/bin/wall");
        std::fs::create_dir_all(group.parent().unwrap()).unwrap();
        std::fs::write(&group, b"x").unwrap();
        std::fs::set_permissions(&group, std::fs::Permissions::from_mode(0o2755)).unwrap();
        let plain = dir.path().join("usr/bin/plain");
        std::fs::write(&plain, b"x").unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut cleared = clear_special_bits(dir.path()).unwrap();
        cleared.sort();
        assert_eq!(
            cleared,
            [
                "usr/bin/wall",
                "usr/lib/mysql/plugin/auth_pam_tool_dir/auth_pam_tool"
            ]
        );
        for file in [&tool, &group, &plain] {
            let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o7777;
            assert_eq!(mode, 0o755, "{}", file.display());
        }
    }

    #[test]
    fn the_record_key_ignores_the_order_of_the_packages() {
        let a = closure_key(&[("a", "1"), ("b", "2")], "amd64");
        let b = closure_key(&[("b", "2"), ("a", "1")], "amd64");
        assert_eq!(a, b);
        assert_ne!(a, closure_key(&[("a", "1"), ("b", "2")], "arm64"));
        assert_ne!(a, closure_key(&[("a", "1"), ("b", "3")], "amd64"));
    }
}
