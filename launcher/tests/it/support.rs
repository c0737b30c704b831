//! Fixtures: real bundles built from small payload folders, a fresh home per test, the `kojibox`
//! binary, and snapshots of a whole folder tree to prove what an install did (or did not) touch.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kojibox_kbx::write::{BundleSpec, PackOptions, PayloadSpec};
use kojibox_manifests::model::{RuntimeManifest, ServiceBinary};
use kojibox_manifests::recipe::ServiceTemplate;
use kojibox_signing::SecretKey;
use launcher::Home;
use launcher::install::{InstallOptions, InstallReport};
use sha2::{Digest, Sha256};

/// The mtime written in every test bundle.
pub const MTIME: u64 = 1_700_000_000;

/// This machine's target (`linux-x64`).
pub fn host() -> String {
    kojibox_kbx::paths::host_target().expect("the tests run on a target bundles know")
}

/// A target that is not this machine's.
pub fn foreign() -> String {
    if host() == "darwin-arm64" {
        "windows-x64".into()
    } else {
        "darwin-arm64".into()
    }
}

/// The test signing key number `seed`.
pub fn key(seed: u8) -> SecretKey {
    SecretKey::from_seed(&[seed; 32])
}

/// `runtime/bin/<name>/<version>/<target>`.
pub fn root(name: &str, version: &str, target: &str) -> String {
    format!("runtime/bin/{name}/{version}/{target}")
}

/// One service payload of a bundle.
#[derive(Debug, Clone)]
pub struct Svc {
    pub name: String,
    pub version: String,
    pub target: String,
    /// Extra incompressible bytes, in 1 MiB files `data/blobN` (for crash tests).
    pub big_mib: usize,
}

/// What a test bundle holds.
#[derive(Debug, Clone)]
pub struct Spec {
    pub version: String,
    pub services: Vec<Svc>,
    pub key: u8,
    /// The templates' `displayName` (so two bundles can carry different templates).
    pub display: Option<String>,
}

impl Spec {
    /// Bundle `version` with service `demo` `service_version` for this machine, signed by key 1.
    pub fn demo(version: &str, service_version: &str) -> Spec {
        Spec {
            version: version.into(),
            services: vec![],
            key: 1,
            display: None,
        }
        .with("demo", service_version, &host())
    }

    /// Adds a service payload.
    pub fn with(mut self, name: &str, version: &str, target: &str) -> Spec {
        self.services.push(Svc {
            name: name.into(),
            version: version.into(),
            target: target.into(),
            big_mib: 0,
        });
        self
    }

    /// Signed by key `seed`.
    pub fn signed_by(mut self, seed: u8) -> Spec {
        self.key = seed;
        self
    }

    /// Templates with this display name.
    pub fn display(mut self, name: &str) -> Spec {
        self.display = Some(name.into());
        self
    }

    /// Makes every payload `mib` MiB bigger.
    pub fn big(mut self, mib: usize) -> Spec {
        for s in &mut self.services {
            s.big_mib = mib;
        }
        self
    }
}

/// Deterministic incompressible bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

pub fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

/// Writes a payload folder: an executable, a text file, a library and a symlink to it; the same
/// service name, version and target always give the same bytes.
fn write_payload(dir: &Path, svc: &Svc) {
    let name = &svc.name;
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    let exe = dir.join(format!("bin/{name}"));
    std::fs::write(&exe, format!("#!/bin/sh\necho {name} {}\n", svc.version)).unwrap();
    set_mode(&exe, 0o755);
    let readme = format!("{name} {} for {}\n", svc.version, svc.target).repeat(40);
    std::fs::write(dir.join("README.txt"), readme).unwrap();
    let seed = svc.version.bytes().chain(svc.target.bytes());
    let seed = seed.fold(7u64, |a, b| a.wrapping_mul(31).wrapping_add(u64::from(b)));
    std::fs::write(dir.join(format!("lib/lib{name}.so.1.2")), noise(3000, seed)).unwrap();
    std::os::unix::fs::symlink(
        format!("lib{name}.so.1.2"),
        dir.join(format!("lib/lib{name}.so.1")),
    )
    .unwrap();
    if svc.big_mib > 0 {
        std::fs::create_dir_all(dir.join("data")).unwrap();
        for i in 0..svc.big_mib {
            let blob = noise(1 << 20, seed ^ (i as u64 + 1));
            std::fs::write(dir.join(format!("data/blob{i}")), blob).unwrap();
        }
    }
}

/// A test environment: a temporary folder holding the home (`home/`), key files (`keys/`),
/// payload folders and bundles (`bundles/`).
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new().prefix("kbx-it").tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bundles")).unwrap();
        Env { dir }
    }

    /// The environment's folder.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The home folder (not created).
    pub fn home_dir(&self) -> PathBuf {
        self.root().join("home")
    }

    pub fn home(&self) -> Home {
        Home::at(&self.home_dir()).unwrap()
    }

    /// `<home>/<rel>`.
    pub fn at(&self, rel: &str) -> PathBuf {
        self.home_dir().join(rel)
    }

    /// The public key file of key `seed` (written on first use).
    pub fn pubkey(&self, seed: u8) -> PathBuf {
        let path = self.root().join(format!("keys/key{seed}.pub"));
        if !path.exists() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            key(seed).public_key().write(&path).unwrap();
        }
        path
    }

    /// Builds `spec` into `bundles/<name>.kbx`.
    pub fn bundle(&self, name: &str, spec: &Spec) -> PathBuf {
        let mut payloads = Vec::new();
        for svc in &spec.services {
            let dir = self.root().join(format!(
                "payloads/{name}/{}-{}-{}",
                svc.name, svc.version, svc.target
            ));
            write_payload(&dir, svc);
            let (os, arch) = svc.target.split_once('-').unwrap();
            let root = root(&svc.name, &svc.version, &svc.target);
            payloads.push(PayloadSpec {
                binary: ServiceBinary {
                    name: svc.name.clone(),
                    version: svc.version.clone(),
                    os: os.into(),
                    arch: arch.into(),
                    checksum: String::new(),
                    size: 0,
                    bin_path: format!("{root}/bin/{}", svc.name),
                    default_ports: vec![],
                    env: BTreeMap::new(),
                    args: vec![],
                },
                entries: kojibox_kbx::write::walk_payload(&dir).unwrap(),
            });
        }
        let template = ServiceTemplate {
            display_name: spec.display.clone(),
            ..ServiceTemplate::default()
        };
        let templates = spec
            .services
            .iter()
            .map(|s| (s.name.clone(), template.clone()))
            .collect();
        let bundle = BundleSpec {
            version: spec.version.clone(),
            source: "test".into(),
            created_at: "2023-11-14T22:13:20Z".into(),
            payloads,
            templates,
            provenance: vec![],
        };
        let options = PackOptions {
            level: 1,
            threads: 1,
            mtime: MTIME,
        };
        let out = self.root().join(format!("bundles/{name}.kbx"));
        kojibox_kbx::write::build(bundle, &key(spec.key), &options, &out, &mut |_| {}).unwrap();
        out
    }

    /// Writes crafted bundle bytes to `bundles/<name>.kbx`.
    pub fn write_bundle(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let out = self.root().join(format!("bundles/{name}.kbx"));
        std::fs::write(&out, bytes).unwrap();
        out
    }

    /// Installs with the library, trusting key `pubkey` (if any) besides the pinned ones.
    pub fn install(
        &self,
        bundle: &Path,
        pubkey: Option<u8>,
    ) -> kojibox_runtime::Result<InstallReport> {
        self.install_with(
            bundle,
            InstallOptions {
                pubkey: pubkey.map(|seed| self.pubkey(seed)),
                ..InstallOptions::default()
            },
        )
    }

    pub fn install_with(
        &self,
        bundle: &Path,
        options: InstallOptions,
    ) -> kojibox_runtime::Result<InstallReport> {
        launcher::install::install(&self.home(), bundle, &options, &mut |_| {})
    }

    /// `kojibox --home <home> ARGS`, not yet run, with no `KOJIBOX_HOME` of the test's own
    /// environment.
    pub fn kojibox_command<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kojibox"));
        command
            .arg("--home")
            .arg(self.home_dir())
            .args(args)
            .env_remove("KOJIBOX_HOME");
        command
    }

    /// Runs `kojibox --home <home> ARGS`, with `KOJIBOX_FAULT` set when `fault` is given.
    pub fn kojibox<S: AsRef<std::ffi::OsStr>>(&self, args: &[S], fault: Option<&str>) -> Output {
        let mut command = self.kojibox_command(args);
        command.env_remove("KOJIBOX_FAULT");
        if let Some(fault) = fault {
            command.env("KOJIBOX_FAULT", fault);
        }
        command.output().unwrap()
    }

    /// `kojibox install BUNDLE [--pubkey keys/keyN.pub] [EXTRA]`, which must succeed.
    pub fn cli_install(&self, bundle: &Path, pubkey: Option<u8>, extra: &[&str]) -> Output {
        let out = self.kojibox(&self.install_args(bundle, pubkey, extra), None);
        assert!(out.status.success(), "install failed:\n{}", text(&out));
        out
    }

    pub fn install_args(&self, bundle: &Path, pubkey: Option<u8>, extra: &[&str]) -> Vec<String> {
        let mut args = vec!["install".to_owned(), bundle.to_str().unwrap().to_owned()];
        if let Some(seed) = pubkey {
            args.push("--pubkey".into());
            args.push(self.pubkey(seed).to_str().unwrap().into());
        }
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    }

    /// The installed manifest.
    pub fn manifest(&self) -> RuntimeManifest {
        launcher::runtime::get_manifest(&self.home()).unwrap()
    }

    /// The home's tree.
    pub fn snapshot(&self) -> Tree {
        snapshot(&self.home_dir())
    }
}

/// Stdout and stderr of a run, for messages.
pub fn text(out: &Output) -> String {
    format!(
        "status: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// One node of a folder tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir {
        mode: u32,
    },
    File {
        mode: u32,
        mtime: (i64, i64),
        sha256: String,
    },
    Link {
        target: PathBuf,
    },
    Other {
        mode: u32,
    },
}

/// Every path under a folder (relative, `/`-separated) with what it is.
pub type Tree = BTreeMap<String, Node>;

/// Snapshots `root`: paths, modes, file contents and mtimes, link targets.
pub fn snapshot(root: &Path) -> Tree {
    let mut out = Tree::new();
    if root.exists() {
        walk(root, "", &mut out);
    }
    out
}

fn walk(dir: &Path, rel: &str, out: &mut Tree) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let rel = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        let node = if meta.file_type().is_symlink() {
            Node::Link {
                target: std::fs::read_link(&path).unwrap(),
            }
        } else if meta.is_dir() {
            walk(&path, &rel, out);
            Node::Dir { mode }
        } else if meta.is_file() {
            Node::File {
                mode,
                mtime: (meta.mtime(), meta.mtime_nsec()),
                sha256: hex::encode(Sha256::digest(std::fs::read(&path).unwrap())),
            }
        } else {
            Node::Other { mode }
        };
        out.insert(rel, node);
    }
}

/// The paths that differ between two trees, each with how.
pub fn diff(before: &Tree, after: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    for (path, node) in before {
        match after.get(path) {
            None => out.push(format!("removed {path}")),
            Some(other) if other != node => out.push(format!("changed {path}")),
            Some(_) => {}
        }
    }
    for path in after.keys().filter(|p| !before.contains_key(*p)) {
        out.push(format!("added {path}"));
    }
    out
}

/// The part of a tree under `prefix/`.
pub fn subtree(tree: &Tree, prefix: &str) -> Tree {
    let prefix = format!("{prefix}/");
    tree.iter()
        .filter(|(p, _)| p.starts_with(&prefix))
        .map(|(p, n)| (p.clone(), n.clone()))
        .collect()
}

/// A service for the supervisor tests: a `/bin/sh` script (the payload's `bin/<name>`) with its
/// template, ports and environment. The script gets `DATA` (its `${data}` folder) and, for each
/// port, `PORT_<NAME>` (upper case), expanded by the launcher from the placeholders.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub name: String,
    pub script: String,
    pub template: ServiceTemplate,
    pub ports: Vec<(String, u16)>,
    pub env: BTreeMap<String, String>,
    /// The executable's bytes, instead of a script.
    pub file: Option<Vec<u8>>,
}

impl Fixture {
    /// Service `name` running `script`; pid health check probed every 100 ms, no retries,
    /// 2 s stop timeout (each test sets what it is about).
    pub fn new(name: &str, script: &str) -> Fixture {
        use kojibox_manifests::model::{HealthCheck, HealthCheckType, RestartPolicy};
        Fixture {
            name: name.into(),
            script: script.into(),
            template: ServiceTemplate {
                health_check: Some(HealthCheck {
                    kind: HealthCheckType::Pid,
                    target: String::new(),
                    timeout_ms: 500,
                    interval_ms: 100,
                }),
                restart_policy: Some(RestartPolicy {
                    max_retries: 0,
                    backoff_ms: 100,
                }),
                stop_timeout_ms: Some(2000),
                ..ServiceTemplate::default()
            },
            ports: vec![],
            env: BTreeMap::from([("DATA".to_owned(), "${data}".to_owned())]),
            file: None,
        }
    }

    /// A payload `bin/<name>` holding `bytes` (a program, not a script).
    pub fn file(name: &str, bytes: Vec<u8>) -> Fixture {
        Fixture {
            file: Some(bytes),
            ..Fixture::new(name, "")
        }
    }

    /// Adds TCP port `name` (the script sees `PORT_<NAME>`).
    pub fn port(mut self, name: &str, port: u16) -> Fixture {
        self.env.insert(
            format!("PORT_{}", name.to_ascii_uppercase()),
            format!("${{port.{name}}}"),
        );
        self.ports.push((name.into(), port));
        self
    }

    /// Changes the template.
    pub fn template(mut self, change: impl FnOnce(&mut ServiceTemplate)) -> Fixture {
        change(&mut self.template);
        self
    }
}

impl Env {
    /// An environment services can run in: a fresh folder directly under `/tmp`, traversable by
    /// everyone, because a launcher running as root runs services as `nobody`, who must reach
    /// the home (a temp dir elsewhere, e.g. under a `TMPDIR` in `/root`, would not do).
    pub fn for_services() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("kbx-sv")
            .tempdir_in("/tmp")
            .unwrap();
        set_mode(dir.path(), 0o755);
        assert!(dir.path().starts_with("/tmp"), "{}", dir.path().display());
        std::fs::create_dir_all(dir.path().join("bundles")).unwrap();
        Env { dir }
    }

    /// Builds the fixtures into one bundle (signed by key 1) and installs it with the library.
    pub fn install_fixtures(&self, fixtures: &[Fixture]) {
        let out = self.fixture_bundle("fixtures", "1.0.0", "1.0", &host(), fixtures);
        self.install(&out, Some(1)).unwrap();
    }

    /// Builds `bundles/<name>.kbx` (bundle `version`, signed by key 1) holding the fixtures as
    /// services of version `service_version` for `target`.
    pub fn fixture_bundle(
        &self,
        name: &str,
        bundle_version: &str,
        version: &str,
        target: &str,
        fixtures: &[Fixture],
    ) -> PathBuf {
        self.fixture_bundle_signed(name, bundle_version, version, target, fixtures, 1)
    }

    /// [`fixture_bundle`](Env::fixture_bundle), signed by key `seed`.
    pub fn fixture_bundle_signed(
        &self,
        name: &str,
        bundle_version: &str,
        version: &str,
        target: &str,
        fixtures: &[Fixture],
        seed: u8,
    ) -> PathBuf {
        use kojibox_manifests::model::{PortDef, Protocol};
        let (os, arch) = target.split_once('-').unwrap();
        let mut payloads = Vec::new();
        for f in fixtures {
            let dir = self.root().join(format!("payloads/{name}/{}", f.name));
            std::fs::create_dir_all(dir.join("bin")).unwrap();
            let exe = dir.join(format!("bin/{}", f.name));
            match &f.file {
                Some(bytes) => std::fs::write(&exe, bytes).unwrap(),
                None => std::fs::write(&exe, format!("#!/bin/sh\n{}\n", f.script)).unwrap(),
            }
            set_mode(&exe, 0o755);
            let root = root(&f.name, version, target);
            payloads.push(PayloadSpec {
                binary: ServiceBinary {
                    name: f.name.clone(),
                    version: version.into(),
                    os: os.into(),
                    arch: arch.into(),
                    checksum: String::new(),
                    size: 0,
                    bin_path: format!("{root}/bin/{}", f.name),
                    default_ports: f
                        .ports
                        .iter()
                        .map(|(name, port)| PortDef {
                            name: name.clone(),
                            port: *port,
                            protocol: Protocol::Tcp,
                        })
                        .collect(),
                    env: f.env.clone(),
                    args: vec![],
                },
                entries: kojibox_kbx::write::walk_payload(&dir).unwrap(),
            });
        }
        let bundle = BundleSpec {
            version: bundle_version.into(),
            source: "test".into(),
            created_at: "2023-11-14T22:13:20Z".into(),
            payloads,
            templates: fixtures
                .iter()
                .map(|f| (f.name.clone(), f.template.clone()))
                .collect(),
            provenance: vec![],
        };
        let options = PackOptions {
            level: 1,
            threads: 1,
            mtime: MTIME,
        };
        let out = self.root().join(format!("bundles/{name}.kbx"));
        kojibox_kbx::write::build(bundle, &key(seed), &options, &out, &mut |_| {}).unwrap();
        out
    }
}

/// The pids in `/proc` now (the processes of this machine).
pub fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The watchdog of daemon `daemon`: its child running `kojibox __watchdog`.
pub fn watchdog_of(daemon: u32) -> Option<u32> {
    pids().into_iter().find(|pid| {
        let ppid = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                let rest = s[s.rfind(')')? + 2..].to_owned();
                rest.split(' ').nth(1)?.parse::<u32>().ok()
            });
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        ppid == Some(daemon) && String::from_utf8_lossy(&cmdline).contains("__watchdog")
    })
}

/// Kills (by pid) the daemon a `kojibox up` of this home started, when dropped.
pub struct UpDaemon<'a>(pub &'a Env);

impl Drop for UpDaemon<'_> {
    fn drop(&mut self) {
        let Ok(text) = std::fs::read_to_string(self.0.at("app/state/api.json")) else {
            return;
        };
        let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        if let Some(pid) = value["pid"].as_u64().and_then(|p| u32::try_from(p).ok()) {
            let _ = self.0.kojibox(&["down"], None);
            if kojibox_proc::is_alive(pid) {
                crate::api::signal(pid, rustix::process::Signal::KILL);
            }
        }
    }
}
