//! The contract's configuration (`config.*`): the app settings, each service's settings and the
//! user's projects, stored as JSON under `app/config/` (`app.json`, `services/<id>.json`,
//! `projects/<id>.json`).
//!
//! Every write is atomic and durable (temporary file, fsync, rename, fsync of the folder) and
//! runs under a lock, so concurrent writers never tear or lose a file and a crash leaves the old
//! file or the new one. A corrupt file is an error naming it, with a copy kept aside; it is
//! never silently reset. Everything is validated before anything is written, and a refusal names
//! the field (`VALIDATION_FAILED`) or the port's holder (`PORT_CONFLICT`).
//!
//! `AppConfig.installPath` is where the home is. It is reported, never stored: `config.setApp`
//! refuses any other path (kojibox does not move a home; move the folder and start kojibox with
//! `--home NEW`), and accepts this home's path or an empty string.
//!
//! Changes to a service's settings take effect at its next start or restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kojibox_manifests::model::{
    AppConfig, ProjectConfig, RuntimeManifest, ServiceBinary, ServiceConfig, UpdateChannel,
};
use kojibox_manifests::recipe::{ServiceTemplate, is_service_id};
use kojibox_proc::PortCheck;

use crate::error::{Error, Result};
use crate::fsutil::{read_config, read_json, write_json};
use crate::home::Home;

/// The stacks a project can have.
pub const STACKS: &[&str] = &["php", "node", "static"];

/// The top-level domains a project's domain may use (the local CA signs only these).
pub const LOCAL_SUFFIXES: &[&str] = &[".test", ".localhost"];

/// `app/config/app.json`.
pub fn app_path(home: &Home) -> PathBuf {
    home.config().join("app.json")
}

/// `app/config/services/<id>.json`.
pub fn service_path(home: &Home, id: &str) -> PathBuf {
    home.config().join("services").join(format!("{id}.json"))
}

/// `app/config/projects/<id>.json`.
pub fn project_path(home: &Home, id: &str) -> PathBuf {
    home.config().join("projects").join(format!("{id}.json"))
}

/// `config.getApp`.
pub fn get_app(home: &Home) -> Result<AppConfig> {
    let stored: Option<AppConfig> = read_config(&app_path(home))?;
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
    let _lock = home.lock_wait("config")?;
    write_json(&app_path(home), &app)
}

/// Whether two paths name the same folder (resolving links when both exist).
fn same_place(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => std::path::absolute(a).is_ok_and(|a| a.components().eq(b.components())),
    }
}

/// A service's stored settings, if any.
pub fn stored_service(home: &Home, id: &str) -> Result<Option<ServiceConfig>> {
    read_config(&service_path(home, id))
}

/// `config.getService`: the stored settings, or the defaults of an installed service.
pub fn get_service(home: &Home, id: &str) -> Result<ServiceConfig> {
    check_id("id", id)?;
    if let Some(config) = stored_service(home, id)? {
        return Ok(config);
    }
    installed(home, id)?;
    Ok(ServiceConfig {
        id: id.to_owned(),
        enabled: true,
        ports: BTreeMap::new(),
        env: BTreeMap::new(),
        args: Vec::new(),
    })
}

/// `config.setService`: validates (the service is installed, its ports exist and are free, its
/// env and args expand), then writes the settings and records its ports in the registry.
pub fn set_service(home: &Home, config: &ServiceConfig) -> Result<()> {
    let id = config.id.as_str();
    check_id("id", id)?;
    let (binary, template) = installed(home, id)?;
    for (name, &port) in &config.ports {
        if !binary.default_ports.iter().any(|p| &p.name == name) {
            let known: Vec<&str> = binary
                .default_ports
                .iter()
                .map(|p| p.name.as_str())
                .collect();
            return Err(invalid(
                &format!("ports.{name}"),
                format!(
                    "{id} has no port named `{name}` (its ports: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
        if port == 0 {
            return Err(invalid(
                &format!("ports.{name}"),
                "0 is not a port: use 1 to 65535",
            ));
        }
    }
    for (key, value) in &config.env {
        if key.is_empty() || key.contains(['=', '\0']) {
            return Err(invalid(
                &format!("env.{key}"),
                "a variable name must be non-empty, without `=` or NUL",
            ));
        }
        if value.contains('\0') {
            return Err(invalid(
                &format!("env.{key}"),
                "a value must not contain NUL",
            ));
        }
    }
    if let Some(at) = config.args.iter().position(|a| a.contains('\0')) {
        return Err(invalid(
            &format!("args[{at}]"),
            "an argument must not contain NUL",
        ));
    }
    // The same expansion the supervisor does (ports as configured): an unknown placeholder is
    // refused now rather than at the next start.
    crate::supervisor::definitions::define(home, &binary, &template, Some(config), None).map_err(
        |e| match e {
            Error::Invalid { detail, .. } => invalid("env/args", detail),
            other => other,
        },
    )?;

    let _lock = home.lock_wait("ports")?;
    let mut registry = crate::ports::load(home)?;
    // A port no longer configured goes back to the registry: it is given again (default if
    // free, else the next free one) at the next start.
    let before = stored_service(home, id).ok().flatten();
    for (index, def) in binary.default_ports.iter().enumerate() {
        let unset = before
            .as_ref()
            .is_some_and(|b| b.ports.contains_key(&def.name))
            && !config.ports.contains_key(&def.name);
        if unset {
            registry
                .assigned
                .remove(&crate::ports::key(id, index, &def.name));
        }
    }
    // The service's ports as they will be (configured, else the registry's): no two may be the
    // same, whether both are in this request or one is already given.
    let mut taken: BTreeMap<u16, &str> = BTreeMap::new();
    for (index, def) in binary.default_ports.iter().enumerate() {
        let port = config.ports.get(&def.name).copied().or_else(|| {
            registry
                .assigned
                .get(&crate::ports::key(id, index, &def.name))
                .copied()
        });
        if let Some(port) = port
            && let Some(other) = taken.insert(port, &def.name)
        {
            let field = if config.ports.contains_key(&def.name) {
                &def.name
            } else {
                other
            };
            return Err(invalid(
                &format!("ports.{field}"),
                format!(
                    "port {port} would be both {id}'s `{other}` and `{}` port",
                    def.name
                ),
            ));
        }
    }
    for (index, def) in binary.default_ports.iter().enumerate() {
        let Some(&port) = config.ports.get(&def.name) else {
            continue;
        };
        if let Some(other) = crate::ports::given_to_other(&registry, id, port) {
            return Err(Error::PortConflict {
                detail: format!(
                    "{id} {} port {port} is already given to {}",
                    def.name,
                    crate::ports::owner(other)
                ),
            });
        }
        let key = crate::ports::key(id, index, &def.name);
        // A port the service already has may well be held by the service itself.
        if registry.assigned.get(&key) != Some(&port)
            && let PortCheck::Busy { owner } = kojibox_proc::check_tcp_port(port)
        {
            return Err(Error::PortConflict {
                detail: match owner {
                    Some(pid) => {
                        format!("{id} {} port {port} is occupied by process {pid}", def.name)
                    }
                    None => format!(
                        "{id} {} port {port} is occupied by another process",
                        def.name
                    ),
                },
            });
        }
        registry.assigned.insert(key, port);
    }
    write_json(&service_path(home, id), config)?;
    crate::ports::save(home, &registry)
}

/// The installed service `id` (this machine's payload) and its template, or `NOT_FOUND`.
fn installed(home: &Home, id: &str) -> Result<(ServiceBinary, ServiceTemplate)> {
    let manifest: Option<RuntimeManifest> = read_json(&home.manifest())?;
    let services: Vec<ServiceBinary> = manifest
        .as_ref()
        .map(|m| crate::runtime::host_services(m).cloned().collect())
        .unwrap_or_default();
    let Some(binary) = services.iter().find(|s| s.name == id).cloned() else {
        let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
        return Err(Error::NotFound {
            detail: format!(
                "no service `{id}` is installed ({})",
                if names.is_empty() {
                    "nothing is installed".to_owned()
                } else {
                    format!("installed: {}", names.join(", "))
                }
            ),
        });
    };
    let template: ServiceTemplate =
        read_json(&home.services().join(format!("{id}.json")))?.unwrap_or_default();
    Ok((binary, template))
}

/// `config.getProject`.
pub fn get_project(home: &Home, id: &str) -> Result<ProjectConfig> {
    check_id("id", id)?;
    read_config(&project_path(home, id))?.ok_or_else(|| Error::NotFound {
        detail: format!("no project `{id}` (see config.listProjects)"),
    })
}

/// `config.listProjects`, by id.
pub fn list_projects(home: &Home) -> Result<Vec<ProjectConfig>> {
    let mut out = Vec::new();
    for path in project_files(home)? {
        if let Some(project) = read_config(&path)? {
            out.push(project);
        }
    }
    Ok(out)
}

/// `app/config/projects/<id>.json`, by id.
fn project_files(home: &Home) -> Result<Vec<PathBuf>> {
    let dir = home.config().join("projects");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(Error::io("read", &dir)(e)),
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json")
                && p.file_stem()
                    .is_some_and(|s| is_service_id(&s.to_string_lossy()))
        })
        .collect();
    paths.sort();
    Ok(paths)
}

/// `config.setProject`: creates or replaces a project after validating every field.
pub fn set_project(home: &Home, project: &ProjectConfig) -> Result<()> {
    check_id("id", &project.id)?;
    if project.name.trim().is_empty() || project.name.chars().any(char::is_control) {
        return Err(invalid(
            "name",
            "a name must be non-empty, without control characters",
        ));
    }
    check_project_path(home, &project.path)?;
    if !project.domain.is_empty() {
        check_domain(&project.domain)?;
    }
    if !STACKS.contains(&project.stack.as_str()) {
        return Err(invalid(
            "stack",
            format!(
                "unknown stack `{}` (known: {})",
                project.stack,
                STACKS.join(", ")
            ),
        ));
    }
    if let Some(key) = project
        .overrides
        .keys()
        .find(|k| k.is_empty() || k.contains(['=', '\0']))
    {
        return Err(invalid(
            &format!("overrides.{key}"),
            "a name must be non-empty, without `=` or NUL",
        ));
    }
    let _lock = home.lock_wait("projects")?;
    // A corrupt project file is reported where it is read; it does not block other projects.
    if !project.domain.is_empty()
        && let Some(other) = project_files(home)?
            .iter()
            .filter_map(|path| read_json::<ProjectConfig>(path).ok().flatten())
            .find(|p| p.id != project.id && p.domain == project.domain)
    {
        return Err(invalid(
            "domain",
            format!(
                "{} is already the domain of project `{}`",
                project.domain, other.id
            ),
        ));
    }
    write_json(&project_path(home, &project.id), project)
}

fn check_project_path(home: &Home, path: &str) -> Result<()> {
    let refuse = |why: String| Error::Invalid {
        message: "Invalid project path".into(),
        detail: format!("path: {why}"),
    };
    let p = Path::new(path);
    if !p.is_absolute() {
        return Err(refuse(format!(
            "`{path}` is not absolute: give the project's full path"
        )));
    }
    match std::fs::metadata(p) {
        Ok(meta) if !meta.is_dir() => Err(refuse(format!("{path} is not a folder"))),
        Ok(meta) => {
            std::fs::read_dir(p).map(drop).map_err(|e| {
                refuse(format!(
                    "Path does not exist or is not readable ({path}: {e})"
                ))
            })?;
            // Under root, services run as the service user: it must read the project too.
            if let Ok((Some(user), _)) = crate::supervisor::service_user(home) {
                let why = kojibox_proc::check_traversable(p, &user)
                    .err()
                    .map(|e| e.to_string())
                    .or_else(|| {
                        (!readable_by(&meta, &user))
                            .then(|| format!("{path} has mode {:o}", mode_of(&meta)))
                    });
                if let Some(why) = why {
                    return Err(refuse(format!(
                        "Path does not exist or is not readable (by {}, who runs the services: {why})",
                        user.name
                    )));
                }
            }
            Ok(())
        }
        Err(e) => Err(refuse(format!(
            "Path does not exist or is not readable ({path}: {e})"
        ))),
    }
}

/// Whether the mode bits let `user` list a folder (read and search).
fn readable_by(meta: &std::fs::Metadata, user: &kojibox_proc::User) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let mode = meta.mode();
        let bits = if meta.uid() == user.uid {
            mode >> 6
        } else if meta.gid() == user.gid {
            mode >> 3
        } else {
            mode
        };
        user.uid == 0 || bits & 0o5 == 0o5
    }
    #[cfg(not(unix))]
    {
        let _ = (meta, user);
        true
    }
}

fn mode_of(meta: &std::fs::Metadata) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        meta.mode() & 0o7777
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        0
    }
}

/// A lowercase DNS name under a local top-level domain (`my-app.test`).
pub fn check_domain(domain: &str) -> Result<()> {
    let refuse = |why: String| invalid("domain", format!("`{domain}` {why}"));
    if domain.len() > 253 {
        return Err(refuse("is longer than 253 characters".into()));
    }
    for label in domain.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(refuse(
                "is not a domain name: each dot-separated label has 1 to 63 characters".into(),
            ));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(refuse(format!(
                "is not a domain name: label `{label}` may hold only a-z, 0-9 and inner `-`"
            )));
        }
    }
    if !LOCAL_SUFFIXES
        .iter()
        .any(|s| domain.ends_with(s) && domain.len() > s.len())
    {
        return Err(refuse(format!(
            "is not a local name: use a name ending in {} (kojibox routes and certifies local \
             names only)",
            LOCAL_SUFFIXES.join(" or ")
        )));
    }
    Ok(())
}

fn check_id(field: &str, id: &str) -> Result<()> {
    if is_service_id(id) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!(
                "`{id}` is not an id: use 1 to 64 of a-z, 0-9, `-`, `_`, not starting with `-`"
            ),
        ))
    }
}

fn invalid(field: &str, why: impl std::fmt::Display) -> Error {
    Error::Invalid {
        message: "Invalid configuration".into(),
        detail: format!("{field}: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        for ok in ["my-app.test", "a.b.localhost", "x1.test"] {
            check_domain(ok).unwrap();
        }
        for bad in [
            "test",
            ".test",
            "my_app.test",
            "My-App.test",
            "-a.test",
            "a-.test",
            "a..test",
            "example.com",
            "a.test.",
        ] {
            let err = check_domain(bad).unwrap_err().to_string();
            assert!(err.contains("domain:"), "{bad}: {err}");
        }
    }
}
