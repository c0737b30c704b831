//! Issue 13, items 4 (home part), 6 and 10, tried as a local attacker would against the real
//! `kojibox` binary: a home created under `umask 000`, a home others can write or another user
//! owns, a link planted at `app/logs/<id>.jsonl` or `app/config/projects`, and secrets printed
//! in other cases or split by escapes and NULs.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use kojibox_manifests::model::ServiceStatus;
use serde_json::json;

use crate::api::{Api, eventually};
use crate::support::{Env, Fixture, UpDaemon, host, mode_of, set_mode, text};

/// `kojibox --home H ARGS` under `umask MASK` (through `sh`, which sets it and execs kojibox).
fn kojibox_umask(env: &Env, mask: &str, args: &[&str]) -> Output {
    Command::new("sh")
        .args(["-c", &format!("umask {mask} && exec \"$0\" \"$@\"")])
        .arg(env!("CARGO_BIN_EXE_kojibox"))
        .arg("--home")
        .arg(env.home_dir())
        .args(args)
        .env_remove("KOJIBOX_HOME")
        .env_remove("KOJIBOX_FAULT")
        .env_remove("KOJIBOX_PASSPHRASE")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn under_umask_000_every_folder_and_file_gets_its_own_mode() {
    let env = Env::for_services();
    let worker = Fixture::new("worker", "echo started; exec sleep 300");
    let bundle = env.fixture_bundle("fixtures", "1.0.0", "1.0", &host(), &[worker]);
    let args = env.install_args(&bundle, Some(1), &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = kojibox_umask(&env, "000", &args);
    assert!(out.status.success(), "{}", text(&out));
    let _daemon = UpDaemon(&env);
    let out = kojibox_umask(&env, "000", &["up"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = kojibox_umask(&env, "000", &["start", "worker", "--wait"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = kojibox_umask(&env, "000", &["config", "app", "--telemetry", "false"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        eventually(Duration::from_secs(10), || std::fs::read_to_string(
            env.at("app/logs/worker.jsonl")
        )
        .is_ok_and(|l| l.contains("started"))),
        "no log line"
    );
    let mut wrong = Vec::new();
    for (rel, want) in [
        ("", 0o755),
        ("app", 0o755),
        ("app/state", 0o700),
        ("app/state/api-token", 0o600),
        ("app/state/daemon.lock", 0o600),
        ("app/config", 0o700),
        ("app/keys", 0o700),
        ("app/logs", 0o700),
        ("app/logs/worker.jsonl", 0o600),
        ("app/logs/daemon.log", 0o600),
        ("runtime", 0o755),
        ("runtime/indexes", 0o755),
    ] {
        let path = env.at(rel);
        if !path.exists() {
            wrong.push(format!("{rel}: missing"));
            continue;
        }
        let got = mode_of(&path) & 0o7777;
        if got != want {
            wrong.push(format!("{rel}: {got:04o}, not {want:04o}"));
        }
    }
    if env.at("app/secrets").exists() {
        let got = mode_of(&env.at("app/secrets")) & 0o7777;
        if got != 0o700 {
            wrong.push(format!("app/secrets: {got:04o}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// `kojibox install` (the fixtures bundle) in `env`: its output.
fn try_install(env: &Env) -> Output {
    let bundle = env.fixture_bundle(
        "fixtures",
        "1.0.0",
        "1.0",
        &host(),
        &[Fixture::new("worker", "exec sleep 300")],
    );
    env.kojibox(&env.install_args(&bundle, Some(1), &[]), None)
}

fn assert_refused(out: &Output, folder: &Path, because: &str, fix: &str) {
    let said = text(out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("refusing to use the home")
            && said.contains(&format!("{} {because}", folder.display()))
            && said.contains(fix),
        "{said}"
    );
}

#[test]
fn a_home_others_can_write_is_refused_by_every_command_that_writes() {
    let env = Env::new();
    let home = env.home_dir();
    std::fs::create_dir(&home).unwrap();
    set_mode(&home, 0o777);
    let fix = format!("chmod go-w {}", home.display());
    assert_refused(
        &try_install(&env),
        &home,
        "is writable by its group and others (mode 0777)",
        &fix,
    );
    for args in [
        &["serve", "--listen", "127.0.0.1:0"][..],
        &["up"],
        &["secrets", "set", "token"],
        &["config", "app", "--telemetry", "false"],
    ] {
        let out = env.kojibox(args, None);
        assert!(!out.status.success(), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains("refusing to use the home") || !env.at("app").exists(),
            "{args:?}: {}",
            text(&out)
        );
    }
    assert!(!env.at("app").exists() && !env.at("runtime").exists());
    // Sticky, it is still the home: others could create `app/` in it first.
    set_mode(&home, 0o1777);
    assert_refused(&try_install(&env), &home, "is writable by", "chmod go-w");
    // Writable by its group: refused as ssh refuses it.
    set_mode(&home, 0o775);
    assert_refused(
        &try_install(&env),
        &home,
        "is writable by its group (mode 0775)",
        "chmod go-w",
    );
    // A parent writable by others (not a root-owned sticky one like /tmp) is refused too.
    set_mode(&home, 0o755);
    set_mode(env.root(), 0o777);
    assert_refused(
        &try_install(&env),
        env.root(),
        "is writable by its group and others",
        "chmod go-w",
    );
    set_mode(env.root(), 0o755);
    let out = try_install(&env);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_home_another_user_created_first_is_refused() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: only root can hand a folder to another user");
        return;
    }
    let env = Env::new();
    let home = env.home_dir();
    // `nobody` made the folder first (as in a shared /tmp), with an ordinary mode.
    std::fs::create_dir(&home).unwrap();
    set_mode(&home, 0o755);
    std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
    assert_refused(
        &try_install(&env),
        &home,
        "is owned by uid 65534, neither you (uid 0) nor root",
        "choose a home in a folder of your own",
    );
    let out = env.kojibox(&["serve", "--listen", "127.0.0.1:0"], None);
    assert!(
        text(&out).contains("is owned by uid 65534"),
        "{}",
        text(&out)
    );
    assert!(!env.at("app").exists(), "nothing is written into it");
    assert_eq!(std::fs::metadata(&home).unwrap().uid(), 65534);
    // Read-only commands still answer (and name the home).
    let out = env.kojibox(&["status"], None);
    assert!(!text(&out).contains("panicked"), "{}", text(&out));
}

#[test]
fn a_log_file_link_planted_before_a_service_starts_is_never_written_through() {
    let mut api = Api::home(&[]);
    let victim = api.env.root().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    set_mode(&victim, 0o644);
    let logs = api.env.at("app/logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::os::unix::fs::symlink(&victim, logs.join("worker.jsonl")).unwrap();
    api.serve(&[]);
    let started = api.rpc("services.start", json!({"id": "worker"}));
    assert!(started.get("error").is_none(), "{started:#}");
    api.wait_for("worker", ServiceStatus::Running);
    let tail = || api.rpc("services.logs", json!({"id": "worker", "tail": 50}));
    assert!(
        eventually(Duration::from_secs(10), || tail()
            .to_string()
            .contains("tick 3")),
        "{:#}",
        tail()
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert_eq!(mode_of(&victim) & 0o7777, 0o644);
    let said = tail().to_string();
    assert!(
        said.contains("not writing this log to a file")
            && said.contains(&format!(
                "{} is a symbolic link",
                logs.join("worker.jsonl").display()
            )),
        "{said}"
    );
    // The link is left for the user to see; the service runs on.
    assert!(
        std::fs::symlink_metadata(logs.join("worker.jsonl"))
            .unwrap()
            .is_symlink()
    );
    assert_eq!(api.state("worker").state, ServiceStatus::Running);
}

#[test]
fn a_logs_folder_link_is_never_written_through() {
    let mut api = Api::home(&[]);
    let elsewhere = api.env.root().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::create_dir_all(api.env.at("app")).unwrap();
    let _ = std::fs::remove_dir_all(api.env.at("app/logs"));
    std::os::unix::fs::symlink(&elsewhere, api.env.at("app/logs")).unwrap();
    api.serve(&[]);
    let started = api.rpc("services.start", json!({"id": "worker"}));
    assert!(started.get("error").is_none(), "{started:#}");
    api.wait_for("worker", ServiceStatus::Running);
    let tail = || api.rpc("services.logs", json!({"id": "worker", "tail": 50}));
    assert!(
        eventually(Duration::from_secs(10), || tail()
            .to_string()
            .contains("tick 2")),
        "{:#}",
        tail()
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    assert!(
        tail().to_string().contains("is a symbolic link"),
        "{:#}",
        tail()
    );
}

#[test]
fn a_projects_link_makes_set_project_fail_and_nothing_is_written_there() {
    let api = Api::boot(&[]);
    let elsewhere = api.env.root().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let projects = api.env.at("app/config/projects");
    let _ = std::fs::remove_dir_all(&projects);
    std::fs::create_dir_all(api.env.at("app/config")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &projects).unwrap();
    let project = json!({"id": "p1", "name": "p1", "path": api.env.home_dir(), "domain": "p1.test", "stack": "php", "overrides": {}});
    let out = api
        .env
        .kojibox(&["rpc", "config.setProject", &project.to_string()], None);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains(&format!("{} is a symbolic link", projects.display())),
        "{said}"
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0, "{said}");
    assert!(std::fs::symlink_metadata(&projects).unwrap().is_symlink());
    // Through the API too: the envelope names the path.
    let envelope = api.rpc("config.setProject", project);
    assert!(
        envelope.to_string().contains("is a symbolic link"),
        "{envelope:#}"
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

#[test]
fn secrets_in_other_cases_or_split_by_escapes_and_nuls_are_redacted_at_rest() {
    let secret = "S3cret-Value-42";
    // printf turns \033 and \000 into the bytes; each line hides the secret differently.
    let script = r#"printf 'a: %s\n' "$TOKEN"
printf 'b: %s\n' "$(printf '%s' "$TOKEN" | tr a-z A-Z)"
printf 'c: s3c\033[31mret-va\033[0mlue-42\n'
printf 'd: s3\000cret-value-42\n'
printf 'e: S3CRET\033]0;t\007-VALUE-42 done\n'
echo "printed all"
exec sleep 300"#;
    let mut worker = Fixture::new("leaky", script);
    worker
        .env
        .insert("TOKEN".to_owned(), "${secret.leaky-token}".to_owned());
    let mut api = Api::home(&[worker]);
    api.serve(&[]);
    let set = api.rpc(
        "secrets.set",
        json!({"scope": "app", "key": "leaky-token", "value": secret}),
    );
    assert_eq!(set["result"], "ok", "{set:#}");
    let started = api.rpc("services.start", json!({"id": "leaky"}));
    assert!(started.get("error").is_none(), "{started:#}");
    api.wait_for("leaky", ServiceStatus::Running);
    let file = api.env.at("app/logs/leaky.jsonl");
    assert!(
        eventually(Duration::from_secs(10), || std::fs::read_to_string(&file)
            .is_ok_and(|l| l.contains("printed all"))),
        "{:?}",
        std::fs::read_to_string(&file)
    );
    let written = std::fs::read_to_string(&file).unwrap();
    let lower = written.to_lowercase();
    assert!(
        !lower.contains("s3cret") && !lower.contains("value-42") && !lower.contains("lue-42"),
        "{written}"
    );
    for tag in ["a", "b", "c", "d", "e"] {
        assert!(
            written.contains(&format!("{tag}: [redacted]")),
            "{tag}: {written}"
        );
    }
    assert_eq!(mode_of(&file) & 0o7777, 0o600);
    assert_eq!(mode_of(&api.env.at("app/logs")) & 0o7777, 0o700);
    let tail = api
        .rpc("services.logs", json!({"id": "leaky", "tail": 50}))
        .to_string()
        .to_lowercase();
    assert!(!tail.contains("s3cret"), "{tail}");
}

#[test]
fn removing_a_project_through_a_planted_projects_link_deletes_nothing_there() {
    let env = crate::support::Env::new();
    let elsewhere = env.root().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let victim = elsewhere.join("victim.json");
    std::fs::write(&victim, "{}").unwrap();
    std::fs::create_dir_all(env.at("app/config")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, env.at("app/config/projects")).unwrap();
    let out = env.kojibox(&["projects", "remove", "victim"], None);
    assert!(!out.status.success(), "{}", crate::support::text(&out));
    assert!(victim.exists(), "the link's target was deleted");
}
