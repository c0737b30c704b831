//! The command line: exit codes and messages.

use std::path::PathBuf;
use std::process::{Command, Output};

fn bundle(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kojibox-bundle"))
        .args(args)
        .current_dir(workspace())
        .output()
        .expect("run kojibox-bundle")
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn check_describes_the_default_recipe() {
    let out = bundle(&["check", "manifests/recipes/default.toml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.starts_with("bundle 1.0.0 (source: official), 1 service(s)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("windows-x64    native/bin/postgres.exe"),
        "{stdout}"
    );
}

#[test]
fn check_names_the_line_of_a_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("bad.toml");
    std::fs::write(
        &recipe,
        "version = \"1.0.0\"\nsource = \"x\"\n[[service]]\nname = \"a\"\nversion = \"1\"\n\
         [[service.target]]\nos = \"linux\"\narch = \"x64\"\nbinPath = \"../x\"\nsource = { path = \"x\" }\n",
    )
    .unwrap();
    let out = bundle(&["check", recipe.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("line 9, column 11: service[0].target[0].binPath"),
        "{stderr}"
    );
}

#[test]
fn check_reports_a_missing_file() {
    let out = bundle(&["check", "no/such/recipe.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("could not read recipe no/such/recipe.toml"),
        "{stderr}"
    );
}
