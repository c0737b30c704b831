//! Getting a service ready to run and spawning it: waiting for its dependencies, checking its
//! ports, expanding its secrets, creating its data folder and running its one-time setup, then
//! the spawn itself (from the spawner thread, in its own process group, as the service user).

use std::sync::Arc;

use kojibox_config::definition::{Definition, Resolved};
use kojibox_manifests::model::{LogLevel, ServiceStatus};
use kojibox_proc::{SpawnSpec, Spawned};
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::error::Error;
use crate::exit::describe;
use crate::logs::LogSink;

/// What preparing a spawn came to.
pub(crate) enum Prepared {
    Spawned(Spawned),
    SpawnFailed(String),
    DependencyFailed(String),
    /// Stopped meanwhile; a process spawned in the last moment is ended.
    Cancelled(Option<Spawned>),
}

/// Runs short blocking work (settings files, the registry lock, the secret store) from the
/// actor: on a multi-threaded runtime the worker is handed over meanwhile, so other tasks go on.
pub(crate) fn off_the_workers<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// Waits for dependencies, checks ports, runs one-time setup, then spawns.
pub(crate) async fn prepare(
    def: Arc<Definition>,
    ctx: Arc<Context>,
    logs: Arc<LogSink>,
    cancel: CancellationToken,
) -> Prepared {
    for dep in &def.contract.depends_on {
        let Some(mut rx) = ctx.state_of(dep) else {
            return Prepared::DependencyFailed(format!("dependency {dep} is not installed"));
        };
        loop {
            let state = rx.borrow_and_update().clone();
            match state.state {
                ServiceStatus::Running => break,
                ServiceStatus::Error => {
                    return Prepared::DependencyFailed(format!(
                        "dependency {dep} failed: {}",
                        state.last_error.unwrap_or_default()
                    ));
                }
                ServiceStatus::Stopped | ServiceStatus::Stopping => {
                    return Prepared::DependencyFailed(format!("dependency {dep} is not running"));
                }
                ServiceStatus::Starting => {}
            }
            tokio::select! {
                () = cancel.cancelled() => return Prepared::Cancelled(None),
                changed = rx.changed() => if changed.is_err() {
                    return Prepared::DependencyFailed(format!("dependency {dep} is gone"));
                },
            }
        }
    }
    if cancel.is_cancelled() {
        return Prepared::Cancelled(None);
    }
    if let Some(conflict) = port_conflict(&def) {
        return Prepared::SpawnFailed(conflict);
    }
    // Nothing runs that differs from what was signed: the manifest and template match the
    // signed index (no `binPath` of `/bin/sh`), the program lies inside its payload, and the
    // payload keeps its signed modes (re-hashed instead where the file system has none).
    match off_the_workers(|| kojibox_runtime::verify::check_spawnable(&ctx.home, def.id())) {
        Ok(None) => {}
        Ok(Some(note)) => logs.note(kojibox_manifests::model::LogLevel::Warn, note),
        Err(e) => return Prepared::SpawnFailed(e.to_string()),
    }
    let user = match off_the_workers(|| ctx.user_for(def.id())) {
        Ok(user) => user,
        Err(why) => return Prepared::SpawnFailed(why),
    };
    let resolved = {
        let vault = &ctx.vault;
        match off_the_workers(|| {
            generate_secrets(&def, vault)?;
            def.resolve(&mut |name| vault.resolve(name).map_err(Error::from))
        }) {
            Ok(resolved) => resolved,
            Err(e) => return Prepared::SpawnFailed(e.to_string()),
        }
    };
    logs.redact(resolved.secrets.clone());
    if let Err(why) = prepare_data(&def, &resolved, &ctx, user.as_ref(), &logs, &cancel).await {
        return if cancel.is_cancelled() {
            Prepared::Cancelled(None)
        } else {
            Prepared::SpawnFailed(why)
        };
    }
    let spec = spawn_spec(
        &resolved,
        &def,
        user.clone(),
        def.program.clone(),
        resolved.args.clone(),
    );
    match ctx.spawner.spawn(spec).await {
        Ok(spawned) if cancel.is_cancelled() => Prepared::Cancelled(Some(spawned)),
        Ok(spawned) => Prepared::Spawned(spawned),
        Err(e) => Prepared::SpawnFailed(e.to_string()),
    }
}

/// What to spawn for `def`: `program` with `args`, in its environment, folder and user.
fn spawn_spec(
    resolved: &Resolved,
    def: &Definition,
    user: Option<kojibox_proc::User>,
    program: std::path::PathBuf,
    args: Vec<String>,
) -> SpawnSpec {
    SpawnSpec {
        program,
        args,
        env: resolved
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        cwd: def.contract.cwd.clone().into(),
        user,
        scope: Some(def.id().to_owned()),
    }
}

/// Makes the template's `generateSecrets` that are not set yet (scope `service`).
pub(crate) fn generate_secrets(
    def: &Definition,
    vault: &kojibox_secrets::Vault,
) -> std::result::Result<(), Error> {
    use kojibox_manifests::model::SecretScope;
    if def.generate_secrets.is_empty() {
        return Ok(());
    }
    let store = vault.store()?;
    for key in &def.generate_secrets {
        match store.get(SecretScope::Service, key) {
            Ok(_) => {}
            Err(kojibox_secrets::Error::NotFound { .. }) => {
                store.set(
                    SecretScope::Service,
                    key,
                    &kojibox_secrets::SecretValue::generate()?,
                )?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Creates the data folder (mode 0700, owned by the service user: given to it again when it is
/// not, e.g. after a move from a shared user) and runs the setup steps when it is empty: their
/// output goes to the service log; `${secretfile.*}` files exist while they run.
async fn prepare_data(
    def: &Definition,
    resolved: &Resolved,
    ctx: &Context,
    user: Option<&kojibox_proc::User>,
    logs: &Arc<LogSink>,
    cancel: &CancellationToken,
) -> std::result::Result<(), String> {
    let dir = &def.data_dir;
    // A folder left by a daemon that died during setup.
    remove_secret_files(def)?;
    let fresh = std::fs::read_dir(dir).map_or(true, |mut entries| entries.next().is_none());
    if fresh {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("could not create {}: {e}", dir.display()))?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("could not make {} private (0700): {e}", dir.display()))?;
        let owned = |user: &kojibox_proc::User| {
            std::fs::symlink_metadata(dir).is_ok_and(|m| m.uid() == user.uid && m.gid() == user.gid)
        };
        if let Some(user) = user.filter(|u| fresh || !owned(u)) {
            if !fresh {
                logs.note(
                    LogLevel::Info,
                    format!(
                        "giving {} to {} (uid {})",
                        dir.display(),
                        user.name,
                        user.uid
                    ),
                );
            }
            kojibox_proc::chown_tree(dir, user).map_err(|e| {
                format!(
                    "could not give {} to user {}: {e}",
                    dir.display(),
                    user.name
                )
            })?;
        }
    }
    render_config(def, resolved, user)?;
    if !fresh || resolved.setup.is_empty() {
        return Ok(());
    }
    let _files = SecretFiles::write(def, resolved, user)?;
    for (n, argv) in resolved.setup.iter().enumerate() {
        // Named as written (placeholders, not secret values).
        let written = def.setup.get(n).unwrap_or(argv);
        let step = format!("setup step {} ({})", n + 1, written.join(" "));
        logs.note(LogLevel::Info, format!("running {step}"));
        let program = std::path::Path::new(&argv[0]);
        let program = if program.is_absolute() {
            program.to_owned()
        } else {
            ctx.home.join(program)
        };
        let spec = spawn_spec(resolved, def, user.cloned(), program, argv[1..].to_vec());
        let spawned = ctx
            .spawner
            .spawn(spec)
            .await
            .map_err(|e| format!("{step}: {e}"))?;
        let Spawned { mut child, pid, .. } = spawned;
        let out = child.stdout.take().map(|o| {
            ctx.tasks
                .spawn(crate::logs::pump(o, "stdout", pid, Arc::clone(logs)))
        });
        let err = child.stderr.take().map(|e| {
            ctx.tasks
                .spawn(crate::logs::pump(e, "stderr", pid, Arc::clone(logs)))
        });
        let status = tokio::select! {
            status = child.wait() => status,
            () = cancel.cancelled() => {
                let scope = ctx.spawner.scope(def.id());
                kojibox_proc::terminate_scope(pid, scope.as_ref(), def.stop_timeout).await;
                let _ = child.wait().await;
                return Err(format!("{step}: cancelled"));
            }
        };
        for pump in [out, err].into_iter().flatten() {
            let _ = pump.await;
        }
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => {
                let failed = format!("{step} {}: {}", describe(s), logs.last_lines(pid, 3));
                // The half-made folder is kept for inspection, out of the way, so the next
                // start finds no data folder and runs setup again.
                return Err(match move_aside(&def.data_dir) {
                    Ok(aside) => {
                        let note =
                            format!("the half-made data folder is kept as {}", aside.display());
                        logs.note(LogLevel::Warn, note.clone());
                        format!("{failed} ({note})")
                    }
                    Err(e) => format!(
                        "{failed} (the half-made data folder {} could not be moved aside: {e}; \
                         move it away before the next start)",
                        def.data_dir.display()
                    ),
                });
            }
            Err(e) => return Err(format!("{step}: {e}")),
        }
    }
    Ok(())
}

/// Writes the service's config files into [`Definition::config_dir`] (0700), each 0600 and
/// both owned by `user` when given, replacing each file whole (a temporary file renamed over
/// it), and removes the files there that the template no longer names.
pub fn render_config(
    def: &Definition,
    resolved: &Resolved,
    user: Option<&kojibox_proc::User>,
) -> std::result::Result<(), String> {
    let dir = &def.config_dir;
    let fail = |what: &std::path::Path, e: std::io::Error| {
        format!("could not render the config file {}: {e}", what.display())
    };
    if resolved.config_files.is_empty() {
        return match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(fail(dir, e)),
            _ => Ok(()),
        };
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| fail(dir, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| fail(dir, e))?;
    }
    let named = |p: &std::path::Path| resolved.config_files.iter().any(|(f, _)| f == p);
    for entry in std::fs::read_dir(dir).map_err(|e| fail(dir, e))?.flatten() {
        let path = entry.path();
        if !named(&path) {
            let removed = if path.is_dir() && !path.is_symlink() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(|e| fail(&path, e))?;
        }
    }
    for (path, text) in &resolved.config_files {
        use std::io::Write;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let tmp = dir.join(format!(".{name}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).map_err(|e| fail(path, e))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| fail(path, e))?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(|e| fail(path, e))?;
    }
    // Each path given by itself, never a walk: the folder is the service user's, who could
    // swap an entry for a link into a folder of root's between a listing and a walk.
    // `lchown` changes a link, never what it points to.
    #[cfg(unix)]
    if let Some(user) = user {
        let give = |p: &std::path::Path| {
            std::os::unix::fs::lchown(p, Some(user.uid), Some(user.gid)).map_err(|e| fail(p, e))
        };
        give(dir)?;
        for (path, _) in &resolved.config_files {
            give(path)?;
        }
    }
    #[cfg(not(unix))]
    let _ = user;
    Ok(())
}

/// The setup commands' `${secretfile.*}` files, removed (folder and all) when dropped.
struct SecretFiles<'a>(&'a Definition);

impl<'a> SecretFiles<'a> {
    /// Writes each file 0400 into a fresh 0700 folder, both owned by `user` when given.
    fn write(
        def: &'a Definition,
        resolved: &Resolved,
        user: Option<&kojibox_proc::User>,
    ) -> std::result::Result<Option<SecretFiles<'a>>, String> {
        if resolved.secret_files.is_empty() {
            return Ok(None);
        }
        let dir = def.secret_files_dir();
        let guard = SecretFiles(def);
        let fail = |what: &std::path::Path, e: std::io::Error| {
            format!("could not write the secret file {}: {e}", what.display())
        };
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&dir).map_err(|e| fail(&dir, e))?;
        for (path, value) in &resolved.secret_files {
            use std::io::Write;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o400);
            let mut file = options.open(path).map_err(|e| fail(path, e))?;
            file.write_all(value.as_bytes())
                .map_err(|e| fail(path, e))?;
        }
        if let Some(user) = user {
            kojibox_proc::chown_tree(&dir, user).map_err(|e| fail(&dir, e))?;
        }
        Ok(Some(guard))
    }
}

impl Drop for SecretFiles<'_> {
    fn drop(&mut self) {
        let _ = remove_secret_files(self.0);
    }
}

/// Removes the `${secretfile.*}` folder of `def`, if there is one.
fn remove_secret_files(def: &Definition) -> std::result::Result<(), String> {
    let dir = def.secret_files_dir();
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!(
            "could not remove the secret files in {}: {e}; remove that folder",
            dir.display()
        )),
        _ => Ok(()),
    }
}

/// Renames `dir` to `<dir>.failed-<UTC time>` (with `-2`, `-3`, … when that exists) and
/// answers the new path.
fn move_aside(dir: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    let name = dir
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    for n in 1..100 {
        let suffix = if n == 1 {
            String::new()
        } else {
            format!("-{n}")
        };
        let aside = dir.with_file_name(format!("{name}.failed-{stamp}{suffix}"));
        if std::fs::symlink_metadata(&aside).is_ok() {
            continue;
        }
        std::fs::rename(dir, &aside)?;
        return Ok(aside);
    }
    Err(std::io::Error::other(
        "too many folders of failed setups beside it",
    ))
}

/// `Some(detail)` when one of the service's ports is taken, naming it and its owner.
pub(crate) fn port_conflict(def: &Definition) -> Option<String> {
    def.contract.ports.iter().find_map(|p| {
        kojibox_config::ports::describe_busy(
            def.id(),
            &p.name,
            p.port,
            kojibox_proc::check_tcp_port(p.port),
        )
    })
}
