//! Error messages a person can act on, one cause each (issue 14, item 9), read from the real
//! binary or the real daemon: a signature error said once, a failed write naming the file
//! written (not its temporary name), one note per interrupted update, and a corrupt file never
//! called retryable. (The update source's messages are in `update_errors`.)

use std::process::Command;

use serde_json::json;

use crate::api::Api;
use crate::api::contract::error;
use crate::support::{Env, Spec, key, stderr, text};

/// (b) A signature error is printed once (before: its cause a second time after it).
#[test]
fn a_signature_error_is_printed_once() {
    let env = Env::new();
    let other = env.bundle("other", &Spec::demo("1.0.0", "1.0").signed_by(2));
    let out = env.kojibox(&env.install_args(&other, Some(1), &[]), None);
    assert!(!out.status.success());
    let err = stderr(&out);
    let last = err.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!(
            "error: bundle signature is invalid: data was signed by key {}, not by this key {}",
            key(2).key_id(),
            key(1).key_id()
        ),
        "{err}"
    );
    assert_eq!(err.matches("data was signed by").count(), 1, "{err}");
}

/// `kojibox ARGS` with writes limited to `blocks` (of 1 KiB), SIGXFSZ ignored: a write past the
/// limit fails (`EFBIG`) as a full disk would, in a real child process.
fn limited(env: &Env, blocks: u32, args: &[&str]) -> std::process::Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f {blocks}; exec \"$0\" \"$@\""
        ))
        .arg(env!("CARGO_BIN_EXE_kojibox"))
        .arg("--home")
        .arg(env.home_dir())
        .args(args)
        .env_remove("KOJIBOX_HOME")
        .env_remove("KOJIBOX_FAULT")
        .output()
        .unwrap()
}

/// (c) A write that fails names the file being written, once, and what to do, never the
/// temporary file it goes through.
#[test]
fn a_failed_write_names_the_real_file_once() {
    let env = Env::new();
    let v1 = env.bundle("v1", &Spec::demo("1.0.0", "1.0"));
    env.install(&v1, Some(1)).unwrap();
    let out = limited(&env, 0, &["config", "app", "--update-channel", "beta"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "error: could not write {}: File too large (os error 27); the file would exceed \
             the size this system allows a file (`ulimit -f`)\n",
            env.at("app/config/app.json").display()
        )
    );

    // The trust store: pinning a key names the key's file.
    let fresh = Env::new();
    let out = limited(
        &fresh,
        0,
        &[
            "install",
            v1.to_str().unwrap(),
            "--pubkey",
            env.pubkey(1).to_str().unwrap(),
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));
    let err = stderr(&out);
    assert!(!err.contains(".tmp") && !err.contains("-tmp"), "{err}");
    assert_eq!(err.matches("File too large").count(), 1, "{err}");
}

/// (i) An update killed after the switch and recovered by the next command: one note saying
/// what happened, not a second one calling the installed version unchanged.
#[test]
fn an_interrupted_update_is_one_note() {
    let (env, repo) = crate::update_errors::setup(0);
    crate::update_errors::set_source(&env, repo.to_str().unwrap());
    let out = env.kojibox(&["update", "apply"], Some("install:after-switch"));
    assert!(!out.status.success(), "{}", text(&out));
    let out = env.kojibox(&["verify"], None);
    assert!(out.status.success(), "{}", text(&out));
    let notes: Vec<String> = stderr(&out)
        .lines()
        .filter(|l| l.starts_with("note:"))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        notes,
        vec![
            "note: an update from 1.0.0 to 1.1.0 was interrupted after the switch: rolled back \
             to 1.0.0; removed the staging folder it left (0 files)"
                .to_owned()
        ],
        "{}",
        text(&out)
    );
    assert_eq!(env.manifest().version, "1.0.0");
}

/// (j) A corrupt file is not retryable: asking again gives the same answer until someone fixes
/// it.
#[test]
fn a_corrupt_file_is_not_retryable() {
    let api = Api::boot(&[]);
    std::fs::write(api.env.at("app/config/app.json"), "{\"installPath\": ").unwrap();
    let answer = api.rpc("config.getApp", json!({}));
    let e = error(&answer);
    assert_eq!(e.message, "A stored file is corrupt", "{answer}");
    assert!(!e.retryable, "{answer}");
}
