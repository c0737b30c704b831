//! `config.getApp` and `config.setApp`: `app/config/app.json`.

use std::path::Path;

use kojibox_home::fs::{read_config, write_json};
use kojibox_home::{Home, LockName};
use kojibox_manifests::model::{AppConfig, UpdateChannel};

use crate::error::Result;
use crate::validate::invalid;

/// `config.getApp`.
pub fn get_app(home: &Home) -> Result<AppConfig> {
    let stored: Option<AppConfig> = read_config(home, &home.app_config())?;
    let mut app = stored.unwrap_or(AppConfig {
        install_path: String::new(),
        update_channel: UpdateChannel::Stable,
        telemetry_opt_in: false,
    });
    app.install_path = home.root().to_string_lossy().into_owned();
    Ok(app)
}

/// `config.setApp`.
pub fn set_app(home: &Home, app: &AppConfig) -> Result<()> {
    if !app.install_path.is_empty() && !same_place(Path::new(&app.install_path), home.root()) {
        return Err(invalid(
            "installPath",
            format!(
                "this home is at {}; kojibox does not move a home: move the folder yourself and \
                 start kojibox with --home NEW (or KOJIBOX_HOME=NEW)",
                home.root().display()
            ),
        ));
    }
    let app = AppConfig {
        install_path: home.root().to_string_lossy().into_owned(),
        ..app.clone()
    };
    let _lock = home.lock_wait(LockName::Config)?;
    Ok(write_json(home, &home.app_config(), &app)?)
}

/// Whether two paths name the same folder (resolving links when both exist).
fn same_place(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => std::path::absolute(a).is_ok_and(|a| a.components().eq(b.components())),
    }
}
