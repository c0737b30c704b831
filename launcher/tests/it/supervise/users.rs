//! Under root, each service runs as a user of its own, tried as an attacker would: the real daemon
//! runs two services, each with a secret in its environment, and a process running as the first
//! one's uid tries to read the second's `/proc/<pid>/environ` and data. And `serviceUser` `root`
//! is refused unless the settings name the risk.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use kojibox_manifests::error::ErrorCode;
use kojibox_manifests::model::{SecretScope, ServiceStatus};
use launcher::secrets::{SecretStore, SecretValue};
use launcher::supervisor::Supervisor;
use tokio::sync::broadcast;

use super::{WAIT, alive, code, eventually, read_pid, sup_shutdown};
use crate::support::{Env, Fixture};

/// The real `kojibox serve --up`, SIGKILLed when dropped (its services die with it).
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `(real uid, real gid)` of a process, from `/proc/<pid>/status`.
fn ids_of(pid: u32) -> (u32, u32) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u32 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    (field("Uid:"), field("Gid:"))
}

/// `cat <path>` run as `uid`/`gid` (no supplementary groups), as another service would.
fn cat_as(uid: u32, gid: u32, path: &str) -> Output {
    Command::new("cat")
        .arg(path)
        .uid(uid)
        .gid(gid)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_service_cannot_read_another_services_environment_or_data() {
    if !kojibox_proc::current_is_root() {
        eprintln!("skipped: services change user only when kojibox runs as root");
        return;
    }
    let env = Env::for_services();
    let script = r#"echo $$ > "$DATA/pid"; echo mine > "$DATA/private"; exec sleep 300"#;
    let fixture = |name: &str| {
        let mut f = Fixture::new(name, script);
        f.env
            .insert("SECRET".into(), format!("${{secret.{name}-secret}}"));
        f
    };
    env.install_fixtures(&[fixture("alpha"), fixture("beta")]);
    let store = SecretStore::open(&env.home(), None).unwrap();
    for name in ["alpha", "beta"] {
        let value = SecretValue::new(format!("{name}-canary-7f3a9c"));
        store
            .set(SecretScope::Service, &format!("{name}-secret"), &value)
            .unwrap();
    }
    drop(store);

    let _daemon = Daemon(
        env.kojibox_command(&["serve", "--up"])
            .env_remove("KOJIBOX_PASSPHRASE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let a = read_pid(&env.at("runtime/data/alpha/pid")).await;
    let b = read_pid(&env.at("runtime/data/beta/pid")).await;
    assert!(alive(a) && alive(b));
    let (a_uid, a_gid) = ids_of(a);
    let (b_uid, b_gid) = ids_of(b);

    // Each its own unprivileged user, from kojibox's range; not shared, not nobody, not root.
    assert_ne!(a_uid, b_uid, "the services share a uid");
    assert_ne!(a_gid, b_gid, "the services share a gid");
    for (uid, gid) in [(a_uid, a_gid), (b_uid, b_gid)] {
        assert!(kojibox_proc::SERVICE_IDS.contains(&uid), "uid {uid}");
        assert_eq!(uid, gid);
    }

    // The attack: as alpha's user, read beta's environment (where its secret is) and data.
    let environ = format!("/proc/{b}/environ");
    let as_root = std::fs::read(&environ).unwrap();
    assert!(
        String::from_utf8_lossy(&as_root).contains("SECRET=beta-canary-7f3a9c"),
        "the secret is in beta's environment, so the attack would find it"
    );
    let own = cat_as(a_uid, a_gid, &format!("/proc/{a}/environ"));
    assert!(
        own.status.success() && String::from_utf8_lossy(&own.stdout).contains("alpha-canary"),
        "alpha's user reads its own environment (the attack works where allowed)"
    );
    let stolen = cat_as(a_uid, a_gid, &environ);
    assert!(
        !stolen.status.success(),
        "alpha's user read beta's environment"
    );
    assert!(!String::from_utf8_lossy(&stolen.stdout).contains("beta-canary"));
    let beta_data = env.at("runtime/data/beta/private");
    let stolen = cat_as(a_uid, a_gid, beta_data.to_str().unwrap());
    assert!(
        !stolen.status.success(),
        "alpha's user read beta's data: {}",
        String::from_utf8_lossy(&stolen.stdout)
    );

    // Each data folder: owned by its own user, 0700.
    for (id, uid) in [("alpha", a_uid), ("beta", b_uid)] {
        let meta = std::fs::metadata(env.at(&format!("runtime/data/{id}"))).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (uid, uid), "{id}'s data folder");
        assert_eq!(meta.mode() & 0o7777, 0o700, "{id}'s data folder");
    }
    // The allocation is the home's: recorded, and each user can be looked up by programs.
    let record = std::fs::read_to_string(env.at("app/state/service-users")).unwrap();
    assert!(
        record.contains(&format!("alpha {a_uid}\n")) && record.contains(&format!("beta {b_uid}\n")),
        "{record}"
    );
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    assert!(passwd.contains(&format!(
        "kbx{a_uid}-alpha:!:{a_uid}:{a_uid}:kojibox alpha "
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_user_root_is_refused_unless_the_risk_is_named() {
    if !kojibox_proc::current_is_root() {
        eprintln!("skipped: services change user only when kojibox runs as root");
        return;
    }
    let env = Env::for_services();
    env.install_fixtures(&[Fixture::new(
        "svc",
        r#"echo $$ > "$DATA/pid"; exec sleep 300"#,
    )]);
    let settings = env.at("app/config/settings.json");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    std::fs::write(&settings, r#"{"serviceUser": "root"}"#).unwrap();
    let (bus, _rx) = broadcast::channel(64);
    let Err(err) = Supervisor::start(&env.home(), bus.clone()).await else {
        panic!("serviceUser root was accepted");
    };
    let (code, detail) = code(&err);
    assert_eq!(code, ErrorCode::PermissionDenied, "{detail}");
    assert!(
        detail.contains("serviceUser")
            && detail.contains("root")
            && detail.contains("\"allowRootServices\": true")
            && detail.contains("settings.json"),
        "the error names the setting, the risk and the fix: {detail}"
    );
    assert!(!env.at("runtime/data/svc/pid").exists(), "nothing ran");

    // Named explicitly, the risk is taken: the service runs as root.
    std::fs::write(
        &settings,
        r#"{"serviceUser": "root", "allowRootServices": true}"#,
    )
    .unwrap();
    let (sup, _) = Supervisor::start(&env.home(), bus).await.unwrap();
    sup.start_service("svc").await.unwrap();
    sup.wait_for("svc", WAIT, |s| s.state == ServiceStatus::Running)
        .await
        .unwrap();
    let pid = read_pid(&env.at("runtime/data/svc/pid")).await;
    assert_eq!(ids_of(pid).0, 0);
    sup_shutdown(sup).await;
    assert!(eventually(Duration::from_secs(2), || !alive(pid)).await);
}
