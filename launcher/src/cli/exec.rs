//! `kojibox exec SERVICE -- PROGRAM [ARGS...]`: a program of a service's payload (its client, a
//! tool), run with the service's environment and config, so a user needs nothing installed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use kojibox_home::Home;

use super::passphrase::passphrase_for;

/// Where a bare program name is looked for, inside the payload, in this order.
const PAYLOAD_BIN_DIRS: [&str; 6] = ["bin", "usr/bin", "native/bin", "sbin", "usr/sbin", ""];

/// Runs `program` with `args` and exits with its code.
pub(crate) fn exec(home: &Home, service: &str, program: &str, args: &[String]) -> Result<ExitCode> {
    let def = match kojibox_config::catalog::load_one(home, service) {
        Ok(def) => def,
        Err(kojibox_config::Error::NotFound { .. }) => bail!(
            "{service} is not a service installed in {} (`kojibox status` lists them)",
            home.root().display()
        ),
        Err(e) => return Err(e).context(format!("{service}'s definition")),
    };
    let vault = kojibox_secrets::Vault::new(home.clone(), passphrase_for(home)?);
    let mut secret = |name: &str| vault.resolve(name).map_err(anyhow::Error::from);
    let resolved = def.resolve(&mut secret).with_context(|| {
        if def.generate_secrets.is_empty() {
            format!("{service}'s settings")
        } else {
            format!(
                "{service}'s settings (the secrets it makes, {}, exist after its first start: \
                 `kojibox start {service}`)",
                def.generate_secrets.join(", ")
            )
        }
    })?;
    let payload = def.program.parent().map(Path::to_owned).unwrap_or_default();
    let root = def.payload_dir();
    let path = find(&root, program).with_context(|| {
        format!(
            "{service} has no program `{program}` in its payload {} (looked in {})",
            root.display(),
            PAYLOAD_BIN_DIRS
                .iter()
                .map(|d| if d.is_empty() { "." } else { d })
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (before, client_env) = def.resolve_client(&name, &mut secret)?;
    // The config files as the service's last start rendered them; rendered now if it never ran.
    if !def.config_dir.exists() {
        kojibox_supervisor::render_config(&def, &resolved, None)
            .map_err(anyhow::Error::msg)
            .context("the service's config files")?;
    }
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let dirs: Vec<PathBuf> = PAYLOAD_BIN_DIRS
        .iter()
        .map(|d| root.join(d))
        .filter(|d| d.is_dir())
        .chain([payload])
        .collect();
    let inherited =
        std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    let path_var = std::env::join_paths(
        dirs.iter()
            .cloned()
            .chain(std::env::split_paths(&inherited)),
    )
    .context("PATH")?;
    env.insert("PATH".into(), path_var.to_string_lossy().into_owned());
    for key in ["HOME", "LANG", "LC_ALL", "TZ", "TERM", "USER", "LOGNAME"] {
        if let Ok(value) = std::env::var(key) {
            env.insert(key.into(), value);
        }
    }
    env.extend(resolved.env);
    env.extend(client_env);
    let status = std::process::Command::new(&path)
        .args(before)
        .args(args)
        .env_clear()
        .envs(&env)
        .status()
        .with_context(|| format!("could not run {}", path.display()))?;
    Ok(exit_code(status))
}

/// The program named `program` inside `root`: a path relative to it, or a bare name looked for
/// in [`PAYLOAD_BIN_DIRS`]. It must resolve inside the payload.
fn find(root: &Path, program: &str) -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = if program.contains('/') {
        vec![root.join(program)]
    } else {
        PAYLOAD_BIN_DIRS
            .iter()
            .map(|d| root.join(d).join(program))
            .collect()
    };
    let real_root = std::fs::canonicalize(root).ok()?;
    candidates.into_iter().find(|c| {
        std::fs::canonicalize(c).is_ok_and(|real| real.starts_with(&real_root) && real.is_file())
    })
}

fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    if let Some(code) = status.code() {
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return ExitCode::from(u8::try_from(128 + signal).unwrap_or(1));
        }
    }
    ExitCode::FAILURE
}
