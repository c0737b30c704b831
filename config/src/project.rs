//! `config.getProject`, `config.setProject`, `config.listProjects`, `config.removeProject`:
//! `app/config/projects/<id>.json`.

use std::path::{Path, PathBuf};

use kojibox_home::fs::{read_config, read_json, write_json};
use kojibox_home::{Home, LockName};
use kojibox_manifests::model::ProjectConfig;
use kojibox_manifests::recipe::is_service_id;

use crate::error::{Error, Result};
use crate::user::{mode_of, readable_by};
use crate::validate::{STACKS, check_domain, check_folder, check_id, invalid};

/// `config.getProject`.
pub fn get_project(home: &Home, id: &str) -> Result<ProjectConfig> {
    check_id("id", id)?;
    read_project(home, &home.project_config(id), id)?.ok_or_else(|| Error::NotFound {
        detail: format!("no project `{id}` (see config.listProjects)"),
    })
}

/// `config.listProjects`, by id: the projects that read well. A file that does not (corrupt,
/// or its `id` is not its name) is left out rather than failing the list; [`check_projects`]
/// names it, and `config.getProject` of it answers its error.
pub fn list_projects(home: &Home) -> Result<Vec<ProjectConfig>> {
    Ok(check_projects(home)?.0)
}

/// Every project that reads well, by id, and beside them the error of each project file that
/// does not (what is wrong and how to fix it, naming the file).
pub fn check_projects(home: &Home) -> Result<(Vec<ProjectConfig>, Vec<Error>)> {
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for path in project_files(home)? {
        let id = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        match read_project(home, &path, &id) {
            Ok(Some(project)) => good.push(project),
            Ok(None) => {}
            Err(e) => bad.push(e),
        }
    }
    Ok((good, bad))
}

/// Reads the project file `path` of project `id`: corrupt = an error naming it (a copy is kept
/// aside); an `id` other than its name is refused, naming both.
fn read_project(home: &Home, path: &Path, id: &str) -> Result<Option<ProjectConfig>> {
    let Some(project) = read_config::<ProjectConfig>(home, path)? else {
        return Ok(None);
    };
    if project.id != id {
        return Err(invalid(
            "id",
            format!(
                "{} holds project `{}` but is named for `{id}`: set its \"id\" to \"{id}\", \
                 or rename it to {}.json",
                path.display(),
                project.id,
                project.id
            ),
        ));
    }
    Ok(Some(project))
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
    if project.stack.is_empty() {
        return Err(invalid(
            "stack",
            format!(
                "is empty: give the project's stack, one of {}",
                STACKS.join(", ")
            ),
        ));
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
    Ok(write_json(
        home,
        &home.project_config(&project.id),
        project,
    )?)
}

/// `config.removeProject` (an addition): deletes `app/config/projects/<id>.json` under the
/// projects lock; an unknown id is [`Error::NotFound`].
///
/// Not yet checked: that no domain mapping uses the project (issue 14, item 11). Domain
/// mappings have no store yet (`domains.*` is not served, issue 17); once they do, a project a
/// mapping uses must be refused here, under this lock, naming the domain.
pub fn remove_project(home: &Home, id: &str) -> Result<()> {
    check_id("id", id)?;
    let _lock = home.lock_wait(LockName::Projects)?;
    let path = home.project_config(id);
    // The folder must be the home's own, not a link planted to delete elsewhere.
    kojibox_home::fs::create_dir(home, &home.projects())?;
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NotFound {
                detail: format!("no project `{id}` to remove (see config.listProjects)"),
            });
        }
        Err(e) => return Err(Error::io("remove", &path)(e)),
    }
    if let Some(dir) = path.parent() {
        kojibox_home::fs::sync_dir(dir)?;
    }
    Ok(())
}

fn check_project_path(home: &Home, path: &str) -> Result<()> {
    let refuse = |why: String| Error::Invalid {
        message: "Invalid project path".into(),
        detail: format!("path: {why}"),
    };
    let p = Path::new(path);
    // Absolute, normalized, not `/` nor a system folder: said with this error's message.
    check_folder("path", path).map_err(|e| match e {
        Error::Invalid { detail, .. } => Error::Invalid {
            message: "Invalid project path".into(),
            detail,
        },
        other => other,
    })?;
    match std::fs::metadata(p) {
        Ok(meta) if !meta.is_dir() => Err(refuse(format!("{path} is not a folder"))),
        Ok(meta) => {
            std::fs::read_dir(p).map(drop).map_err(|e| {
                refuse(format!(
                    "Path does not exist or is not readable ({path}: {e})"
                ))
            })?;
            // Where it really is: a link to a system folder is that folder.
            if let Ok(real) = std::fs::canonicalize(p) {
                let real_text = real.to_string_lossy();
                if real_text != path
                    && let Err(Error::Invalid { detail, .. }) = check_folder("path", &real_text)
                {
                    let why = detail.trim_start_matches("path: ");
                    return Err(refuse(format!("`{path}` leads to {why}")));
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use kojibox_home::ToApi;
    use kojibox_manifests::error::ErrorCode;

    fn project(id: &str, path: &str, stack: &str) -> ProjectConfig {
        ProjectConfig {
            id: id.into(),
            name: "My app".into(),
            path: path.into(),
            domain: String::new(),
            stack: stack.into(),
            overrides: Default::default(),
        }
    }

    /// A home and, beside it, a project folder anyone may read (services may run as `nobody`).
    fn setup() -> (tempfile::TempDir, Home, String) {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(&dir.path().join("home")).unwrap();
        std::fs::create_dir_all(home.root()).unwrap();
        let app = dir.path().join("app");
        std::fs::create_dir(&app).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for p in [dir.path(), app.as_path()] {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
        let app = app.to_string_lossy().into_owned();
        (dir, home, app)
    }

    fn refused(home: &Home, p: &ProjectConfig, field: &str, says: &str) {
        let err = set_project(home, p).unwrap_err();
        assert_eq!(err.code(), ErrorCode::ValidationFailed, "{err}");
        let detail = err.detail();
        assert!(
            detail.starts_with(&format!("{field}: ")) && detail.contains(says),
            "{p:?}: {detail}"
        );
        assert!(
            !home.project_config(&p.id).exists(),
            "a refused project was written"
        );
    }

    #[test]
    fn a_good_project_is_saved() {
        let (_dir, home, app) = setup();
        set_project(&home, &project("app", &app, "php")).unwrap();
        assert_eq!(get_project(&home, "app").unwrap().path, app);
    }

    #[test]
    fn a_file_whose_id_is_not_its_name_is_refused_naming_both() {
        let (_dir, home, app) = setup();
        set_project(&home, &project("app", &app, "php")).unwrap();
        let text = std::fs::read_to_string(home.project_config("app"))
            .unwrap()
            .replace("\"app\"", "\"other\"");
        std::fs::write(home.project_config("app"), text).unwrap();
        let err = get_project(&home, "app").unwrap_err();
        assert_eq!(err.code(), ErrorCode::ValidationFailed, "{err}");
        let detail = err.detail();
        assert!(
            detail.starts_with("id: ")
                && detail.contains("app.json holds project `other` but is named for `app`")
                && detail.contains("rename it to other.json"),
            "{detail}"
        );
    }

    #[test]
    fn one_bad_project_file_does_not_hide_the_good_ones() {
        let (_dir, home, app) = setup();
        for id in ["a", "b", "c"] {
            set_project(&home, &project(id, &app, "php")).unwrap();
        }
        std::fs::write(home.project_config("b"), "{not json").unwrap();
        let text = std::fs::read_to_string(home.project_config("c"))
            .unwrap()
            .replace("\"c\"", "\"d\"");
        std::fs::write(home.project_config("c"), text).unwrap();
        let ids: Vec<String> = list_projects(&home)
            .unwrap()
            .into_iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(ids, ["a"]);
        let (good, bad) = check_projects(&home).unwrap();
        assert_eq!(good.len(), 1);
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(
            bad[0].to_string().contains("b.json is corrupt"),
            "{}",
            bad[0]
        );
        assert!(bad[1].to_string().contains("named for `c`"), "{}", bad[1]);
    }

    #[test]
    fn a_removed_project_is_gone_and_an_unknown_one_is_not_found() {
        let (_dir, home, app) = setup();
        set_project(&home, &project("app", &app, "php")).unwrap();
        set_project(&home, &project("blog", &app, "php")).unwrap();
        remove_project(&home, "app").unwrap();
        assert!(!home.project_config("app").exists());
        assert!(matches!(
            get_project(&home, "app"),
            Err(Error::NotFound { .. })
        ));
        assert_eq!(
            get_project(&home, "blog").unwrap().id,
            "blog",
            "others stay"
        );
        let err = remove_project(&home, "app").unwrap_err();
        assert_eq!(err.code(), ErrorCode::NotFound, "{err}");
        assert!(err.detail().contains("no project `app`"), "{err}");
        assert!(matches!(
            remove_project(&home, "../x"),
            Err(Error::Invalid { .. })
        ));
    }

    #[test]
    fn an_empty_stack_is_refused() {
        let (_dir, home, app) = setup();
        refused(&home, &project("app", &app, ""), "stack", "is empty");
    }

    #[test]
    fn a_windows_device_name_is_not_a_project_id() {
        let (_dir, home, app) = setup();
        for id in ["con", "nul", "aux", "prn", "com1", "lpt9"] {
            refused(&home, &project(id, &app, "php"), "id", "device name");
        }
        assert!(matches!(
            get_project(&home, "con"),
            Err(Error::Invalid { .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn dangerous_or_unnormalized_paths_are_refused() {
        let (dir, home, app) = setup();
        let up = format!("{app}/../app");
        let dot = format!("{app}/./");
        for (path, says) in [
            ("/", "root of the file system"),
            ("/etc", "system folder /etc"),
            ("/proc", "system folder /proc"),
            ("/sys", "system folder /sys"),
            ("/dev", "system folder /dev"),
            ("/usr", "system folder /usr"),
            ("/bin", "system folder /bin"),
            ("/boot", "system folder /boot"),
            ("/var", "shared folder /var"),
            ("relative/app", "not absolute"),
            (up.as_str(), "`..` component"),
            (dot.as_str(), "`.` component"),
        ] {
            let err = set_project(&home, &project("app", path, "php")).unwrap_err();
            assert_eq!(err.code(), ErrorCode::ValidationFailed, "{path}: {err}");
            assert_eq!(err.message(), "Invalid project path");
            let detail = err.detail();
            assert!(
                detail.starts_with("path: ") && detail.contains(says),
                "{path}: {detail}"
            );
        }
        // A link to a system folder is that folder.
        let link = dir.path().join("etc-link");
        std::os::unix::fs::symlink("/etc", &link).unwrap();
        refused(
            &home,
            &project("app", &link.to_string_lossy(), "php"),
            "path",
            "system folder /etc",
        );
    }
}
