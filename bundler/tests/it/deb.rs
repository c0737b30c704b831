//! `deb` sources against the machine's real apt (a Debian machine, as CI is): the closure comes
//! from the binaries, the packages are checked against apt's index, a second build needs no apt
//! at all, and a version apt does not have fails the build naming it.
#![cfg(target_os = "linux")]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bundler::elf;
use bundler::fetch::HOST_BASE;

/// The version of `package` apt would fetch now (so the test follows the archive's updates).
fn candidate(package: &str) -> String {
    let out = Command::new("apt-cache")
        .args(["policy", package])
        .output()
        .expect("this test needs apt (a Debian machine; CI is one)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Candidate: "))
        .filter(|v| *v != "(none)")
        .unwrap_or_else(|| panic!("apt has no candidate for {package}: run `apt-get update`"))
        .to_owned()
}

/// A recipe with one service whose linux-x64 payload is the `deb` packages `specs`.
fn recipe(dir: &Path, specs: &[String]) -> PathBuf {
    let list: Vec<String> = specs.iter().map(|s| format!("\"{s}\"")).collect();
    let text = format!(
        "version = \"1.0.0\"\nsource = \"test\"\n[[service]]\nname = \"redis\"\nversion = \"7\"\n\
         [[service.target]]\nos = \"linux\"\narch = \"x64\"\nbinPath = \"usr/bin/redis-server\"\n\
         source = {{ deb = [{}] }}\n",
        list.join(", ")
    );
    let path = dir.join("recipe.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn bundle(args: &[&str], path_var: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kojibox-bundle"));
    command.args(args);
    if let Some(path) = path_var {
        command.env("PATH", path);
    }
    command.output().expect("run kojibox-bundle")
}

/// `kojibox-bundle build RECIPE --cache CACHE --out OUT --key KEY`, with `PATH` set to
/// `path_var` when given.
fn build(recipe: &Path, cache: &Path, out: &Path, key: &Path, path_var: Option<&str>) -> Output {
    let arg = |p: &Path| p.to_str().unwrap().to_owned();
    let args = [
        "build".to_owned(),
        arg(recipe),
        "--cache".to_owned(),
        arg(cache),
        "--out".to_owned(),
        arg(out),
        "--key".to_owned(),
        arg(key),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    bundle(&args, path_var)
}

/// A fresh signing key in `dir`: the secret key's path.
fn keygen(dir: &Path) -> PathBuf {
    let prefix = dir.join("key");
    let out = bundle(&["keygen", "--out", prefix.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", text(&out));
    dir.join("key.key")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every file under `dir`, links included.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    out
}

#[test]
fn a_deb_payload_holds_every_library_its_programs_load_and_rebuilds_without_apt() {
    let version = candidate("redis-tools");
    let dir = tempfile::tempdir().unwrap();
    let specs = [
        format!("redis-server={version}"),
        format!("redis-tools={version}"),
    ];
    let recipe = recipe(dir.path(), &specs);
    let cache = dir.path().join("cache");
    let (recipe_s, cache_s) = (recipe.to_str().unwrap(), cache.to_str().unwrap());
    let key = keygen(dir.path());

    // --dry-run works the closure out and lists it, each added package with its reason.
    let out = bundle(
        &[
            "build",
            recipe_s,
            "--cache",
            cache_s,
            "--dry-run",
            "--out",
            "x.kbx",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out));
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(listed.contains("Debian packages"), "{listed}");
    assert!(
        listed.contains(&format!("redis-tools={version} amd64")),
        "{listed}"
    );
    assert!(
        listed.contains("libjemalloc.so.2 for usr/bin/redis-check-rdb")
            || listed.contains("libjemalloc.so.2 for usr/bin/redis-"),
        "{listed}"
    );
    assert!(!listed.contains("libc6="), "glibc is the host's: {listed}");

    let first = dir.path().join("first.kbx");
    let out = build(&recipe, &cache, &first, &key, None);
    assert!(out.status.success(), "{}", text(&out));

    // The payload: redis, its libraries, no documentation; every library an ELF file needs is
    // in the payload or the host base.
    let unpacked: Vec<PathBuf> = std::fs::read_dir(cache.join("unpacked"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with("-deb"))
        .collect();
    assert_eq!(unpacked.len(), 1, "{unpacked:?}");
    let payload = &unpacked[0];
    assert!(payload.join("usr/bin/redis-cli").is_file());
    assert!(payload.join("usr/bin/redis-server").exists());
    assert!(!payload.join("usr/share/doc").exists());
    let all = files(payload);
    let names: BTreeSet<String> = all
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let mut elves = 0;
    for file in &all {
        if !std::fs::symlink_metadata(file).unwrap().is_file() || !elf::is_elf(file) {
            continue;
        }
        let Some(dynamic) = elf::read(file).unwrap() else {
            continue;
        };
        elves += 1;
        for needed in dynamic.needed {
            assert!(
                names.contains(&needed) || HOST_BASE.contains(&needed.as_str()),
                "{} needs {needed}, which is neither in the payload nor the host's",
                file.display()
            );
        }
    }
    assert!(elves >= 3, "{elves} ELF files");
    // Relocated: the programs run from the payload with a clean environment, and the
    // libraries the loader picks are the payload's (glibc and libgcc_s aside), never the build
    // machine's.
    let cli = payload.join("usr/bin/redis-cli");
    let runpath = elf::read(&cli)
        .unwrap()
        .unwrap()
        .runpath
        .unwrap_or_default();
    assert!(runpath.starts_with("$ORIGIN/"), "{runpath}");
    let ran = Command::new(&cli)
        .arg("--version")
        .env_clear()
        .output()
        .unwrap();
    assert!(ran.status.success(), "{}", text(&ran));
    assert!(String::from_utf8_lossy(&ran.stdout).contains("redis-cli"));
    let ldd = Command::new("ldd").arg(&cli).output().unwrap();
    let resolved = String::from_utf8_lossy(&ldd.stdout).into_owned();
    let payload_dir = payload.canonicalize().unwrap();
    for line in resolved.lines() {
        let Some((lib, at)) = line.trim().split_once(" => ") else {
            continue;
        };
        if HOST_BASE.contains(&lib) || lib.starts_with("linux-vdso") {
            continue;
        }
        let at = Path::new(at.split(" (").next().unwrap());
        assert!(
            at.canonicalize().unwrap().starts_with(&payload_dir),
            "{lib} resolves outside the payload: {line}"
        );
    }
    assert!(names.contains("libjemalloc.so.2"), "{names:?}");

    // The provenance lists every package with the sha256 of apt's index.
    let out = bundle(&["inspect", first.to_str().unwrap(), "--json"], None);
    let inspected = text(&out);
    assert!(inspected.contains("\"packages\""), "{inspected}");
    assert!(inspected.contains("\"neededFor\""), "{inspected}");

    // Again, with no apt, no dpkg-deb, nothing on PATH at all: everything is in the cache.
    let second = dir.path().join("second.kbx");
    let out = build(&recipe, &cache, &second, &key, Some("/nonexistent"));
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("0 downloaded"), "{}", text(&out));
}

#[test]
fn a_version_apt_does_not_have_fails_the_build_naming_it_and_writes_nothing() {
    let version = candidate("redis-tools");
    let dir = tempfile::tempdir().unwrap();
    let recipe = recipe(dir.path(), &["redis-tools=0.0.1-nope".to_owned()]);
    let out_path = dir.path().join("out.kbx");
    let key = keygen(dir.path());
    let out = build(&recipe, &dir.path().join("cache"), &out_path, &key, None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("redis-tools:amd64=0.0.1-nope"), "{said}");
    assert!(said.contains("apt has no such version"), "{said}");
    assert!(said.contains(&version), "it names what apt has: {said}");
    assert!(!out_path.exists());
    assert!(!dir.path().join("out.kbx.partial").exists());
}
