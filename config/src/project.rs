//! `config.getProject`, `config.setProject`, `config.listProjects`: `app/config/projects/<id>.json`.

use std::path::{Path, PathBuf};

use kojibox_home::fs::{read_config, read_json, write_json};
use kojibox_home::{Home, LockName};
use kojibox_manifests::model::ProjectConfig;
use kojibox_manifests::recipe::is_service_id;

use crate::error::{Error, Result};
use crate::user::{mode_of, readable_by};
use crate::validate::{STACKS, check_domain, check_id, invalid};

/// `config.getProject`.
pub fn get_project(home: &Home, id: &str) -> Result<ProjectConfig> {
    check_id("id", id)?;
    read_config(&home.project_config(id))?.ok_or_else(|| Error::NotFound {
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
    let dir = home.projects();
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
    let _lock = home.lock_wait(LockName::Projects)?;
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
    Ok(write_json(&home.project_config(&project.id), project)?)
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
            if let Ok((Some(user), _)) = crate::user::service_user(home) {
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
