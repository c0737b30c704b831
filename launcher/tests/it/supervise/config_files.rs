//! A template's config files are rendered before every start into `${config}` (0600, the
//! service user's), with placeholders and secrets expanded; and a setup that fails leaves its
//! half-made data folder aside, so the next start runs the setup again.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use kojibox_manifests::model::{SecretScope, ServiceStatus};
use launcher::secrets::{SecretStore, SecretValue};

use super::{WAIT, harness, sup_shutdown};
use crate::support::Fixture;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_files_are_rendered_private_before_every_start() {
    // The service proves it read the file: it copies it into its data folder.
    let script = r#"cp "$CONF/app.conf" "$DATA/seen.conf"; exec sleep 300"#;
    let mut fixture = Fixture::new("web", script);
    fixture.ports = vec![("http".into(), super::free_port())];
    fixture.env.insert("CONF".into(), "${config}".into());
    fixture.template.config_files.insert(
        "app.conf".into(),
        "port = ${port.http}\nhome = ${home}\ndata = ${data}\npassword = ${secret.web-pass}\ncost = $$5\n"
            .into(),
    );
    let port = fixture.ports[0].1;
    let h = harness(&[fixture]).await;
    let store = SecretStore::open(&h.env.home(), None).unwrap();
    store
        .set(
            SecretScope::Service,
            "web-pass",
            &SecretValue::new("canary-c0nf1g".into()),
        )
        .unwrap();
    drop(store);

    h.sup.start_service("web").await.unwrap();
    h.running("web").await;
    let rendered = h.env.at("runtime/data/.web.config/app.conf");
    let home = h.env.home();
    let want = format!(
        "port = {port}\nhome = {}\ndata = {}\npassword = canary-c0nf1g\ncost = $5\n",
        home.root().display(),
        home.data_dir("web").display()
    );
    let seen = h.data("web", "seen.conf");
    assert!(
        super::eventually(WAIT, || std::fs::read_to_string(&seen).ok().as_deref()
            == Some(want.as_str()))
        .await,
        "the service read {:?}; logs {:?}",
        std::fs::read_to_string(&seen),
        h.log("web")
    );
    assert_eq!(std::fs::read_to_string(&rendered).unwrap(), want);
    let file = std::fs::metadata(&rendered).unwrap();
    let dir = std::fs::metadata(rendered.parent().unwrap()).unwrap();
    assert_eq!(file.permissions().mode() & 0o777, 0o600);
    assert_eq!(dir.permissions().mode() & 0o777, 0o700);
    let data = std::fs::metadata(home.data_dir("web")).unwrap();
    assert_eq!(
        (file.uid(), dir.uid()),
        (data.uid(), data.uid()),
        "owned by the service user"
    );
    // The template as installed, for reading: placeholders, no secret.
    let template = std::fs::read_to_string(h.env.at("runtime/config/web/app.conf")).unwrap();
    assert!(template.contains("${secret.web-pass}") && !template.contains("canary"));
    // Edited, it is written again from the signed index, and kojibox says so.
    std::fs::write(h.env.at("runtime/config/web/app.conf"), "port = 1\n").unwrap();
    let verify = h.env.kojibox(&["verify"], None);
    assert_eq!(verify.status.code(), Some(0), "{verify:?}");
    assert!(
        String::from_utf8_lossy(&verify.stderr).contains("wrote its service templates"),
        "{verify:?}"
    );
    assert_eq!(
        std::fs::read_to_string(h.env.at("runtime/config/web/app.conf")).unwrap(),
        template
    );

    // Edited by hand, a stray file beside it: the next start renders it whole again.
    std::fs::write(&rendered, "port = 1\n").unwrap();
    std::fs::write(rendered.with_file_name("stray.conf"), "x").unwrap();
    std::fs::remove_file(&seen).unwrap();
    h.sup.restart_service("web").await.unwrap();
    assert!(
        super::eventually(WAIT, || std::fs::read_to_string(&seen).ok().as_deref()
            == Some(want.as_str()))
        .await,
        "{:?}",
        h.log("web")
    );
    assert_eq!(std::fs::read_to_string(&rendered).unwrap(), want);
    assert!(!rendered.with_file_name("stray.conf").exists());
    sup_shutdown(h.sup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_setup_leaves_its_folder_aside_and_the_next_start_runs_it_again() {
    let mut fixture = Fixture::new("db", "exec sleep 300");
    fixture.template.setup = vec![vec![
        "/bin/sh".into(),
        "-c".into(),
        r#"echo half > "$DATA/half-made"; echo "initdb: disk on fire" >&2; exit 3"#.into(),
    ]];
    let h = harness(&[fixture]).await;
    let data = h.env.home().data_dir("db");
    let failed_folders = || -> Vec<std::path::PathBuf> {
        let mut all: Vec<_> = std::fs::read_dir(data.parent().unwrap())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("db.failed-")
            })
            .collect();
        all.sort();
        all
    };
    for run in 1..=2 {
        let _ = h.sup.start_service("db").await;
        let state = h
            .sup
            .wait_for("db", WAIT, |s| s.state == ServiceStatus::Error)
            .await
            .unwrap();
        let why = state.last_error.unwrap_or_default();
        assert!(why.contains("initdb: disk on fire"), "{why}");
        assert!(why.contains("db.failed-"), "{why}");
        let aside = failed_folders();
        assert_eq!(aside.len(), run, "{aside:?}");
        for folder in &aside {
            assert_eq!(
                std::fs::read_to_string(folder.join("half-made")).unwrap(),
                "half\n",
                "kept, not deleted"
            );
        }
        assert!(
            !data.exists(),
            "no half-made data folder where the next start looks"
        );
    }
    sup_shutdown(h.sup).await;
}

#[test]
fn exec_runs_a_payload_program_with_the_services_environment_config_and_credentials() {
    let env = crate::support::Env::for_services();
    // Run by `kojibox exec`, the service's program shows what it got.
    let script = r#"echo "args:$*"
echo "pw:$PW"
echo "ld:${LD_LIBRARY_PATH-unset}"
cat "$CONF/app.conf"
exit 7"#;
    let mut fixture = Fixture::new("tool", script);
    fixture.ports = vec![("http".into(), 18080)];
    fixture.env.insert("CONF".into(), "${config}".into());
    fixture
        .template
        .config_files
        .insert("app.conf".into(), "listen ${port.http}\n".into());
    fixture
        .template
        .client_env
        .insert("PW".into(), "${secret.tool-pass}".into());
    fixture
        .template
        .client_args
        .insert("tool".into(), vec!["--port=${port.http}".into()]);
    env.install_fixtures(&[fixture]);
    let store = SecretStore::open(&env.home(), None).unwrap();
    store
        .set(
            SecretScope::Service,
            "tool-pass",
            &SecretValue::new("s3cret-exec".into()),
        )
        .unwrap();
    drop(store);

    let out = env
        .kojibox_command(&["exec", "tool", "--", "tool", "a b", "c"])
        .env("LD_LIBRARY_PATH", "/evil")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(7),
        "the program's exit code: {out:?}"
    );
    assert_eq!(
        said, "args:--port=18080 a b c\npw:s3cret-exec\nld:unset\nlisten 18080\n",
        "{out:?}"
    );

    // A program the payload does not have, and a service that does not exist.
    let out = env
        .kojibox_command(&["exec", "tool", "--", "mariadb"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        err.contains("no program `mariadb`") && err.contains("usr/bin"),
        "{err}"
    );
    let out = env
        .kojibox_command(&["exec", "nope", "--", "ls"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("nope is not a service"),
        "{err}"
    );
    // Nothing outside the payload, even by a path.
    let out = env
        .kojibox_command(&["exec", "tool", "--", "../../../../../../bin/sh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}
