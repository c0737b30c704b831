//! `kojibox projects list|show|set|remove`: through the daemon when there is one, else on the files.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use kojibox_home::{EditKind, Home};
use kojibox_manifests::api::{Empty, IdParams, methods};
use kojibox_manifests::model::ProjectConfig;

use super::backend::Backend;
use super::{edit_lock, pairs, print_json};

/// `kojibox projects ...`.
#[derive(Subcommand)]
pub(crate) enum ProjectsCommand {
    /// List the projects.
    List,
    /// Show one project.
    Show {
        /// The project id.
        id: String,
    },
    /// Create a project or change one (only the fields given change).
    Set(ProjectArgs),
    /// Delete a project's settings (its folder and files are left alone).
    Remove {
        /// The project id (see `kojibox projects list`).
        id: String,
    },
}

/// `kojibox projects set ID [fields]`.
#[derive(Args)]
pub(crate) struct ProjectArgs {
    /// The project id (a-z, 0-9, `-`, `_`).
    id: String,
    /// Display name (default: the id).
    #[arg(long)]
    name: Option<String>,
    /// The project's folder (made absolute and canonical; it must exist).
    #[arg(long)]
    path: Option<std::path::PathBuf>,
    /// Its local domain, ending in .test or .localhost (empty: none).
    #[arg(long)]
    domain: Option<String>,
    /// Its stack: php, node or static.
    #[arg(long)]
    stack: Option<String>,
    /// Set an override: KEY=VALUE (e.g. PHP_VERSION=8.3.2).
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Remove an override.
    #[arg(long = "unset-override", value_name = "KEY")]
    unset_overrides: Vec<String>,
}

/// `kojibox projects ...`.
pub(crate) fn projects(home: &Home, command: ProjectsCommand, json: bool) -> Result<ExitCode> {
    let backend = Backend::open(home);
    match command {
        ProjectsCommand::List => {
            let projects = backend.call::<methods::ConfigListProjects>(&Empty::default())?;
            // The list has the projects that read well; each file that does not is named here
            // (the files are this user's, whether or not a daemon answered).
            if let Ok((_, bad)) = kojibox_config::project::check_projects(home) {
                for e in bad {
                    eprintln!("warning: a project is not listed: {e}");
                }
            }
            if json {
                print_json(&projects)?;
            } else if projects.is_empty() {
                println!(
                    "no projects yet: add one with `kojibox projects set ID --path DIR --stack php`"
                );
            } else {
                for p in &projects {
                    println!(
                        "{:<20} {:<7} {:<24} {}",
                        p.id,
                        p.stack,
                        if p.domain.is_empty() { "-" } else { &p.domain },
                        p.path
                    );
                }
            }
        }
        ProjectsCommand::Show { id } => match backend.get_project(&id)? {
            Some(project) => print_json(&project)?,
            None => bail!("no project `{id}` (see `kojibox projects list`)"),
        },
        ProjectsCommand::Set(args) => {
            let _edit = edit_lock(home, EditKind::Project, &args.id)?;
            let existing = backend.get_project(&args.id)?;
            let created = existing.is_none();
            let mut project = match existing {
                Some(project) => project,
                None => ProjectConfig {
                    id: args.id.clone(),
                    name: args.id.clone(),
                    path: String::new(),
                    domain: String::new(),
                    stack: String::new(),
                    overrides: BTreeMap::new(),
                },
            };
            if created && (args.path.is_none() || args.stack.is_none()) {
                bail!(
                    "a new project needs --path DIR and --stack (php, node or static), e.g. \
                     `kojibox projects set {} --path . --stack php`",
                    args.id
                );
            }
            if let Some(name) = args.name {
                project.name = name;
            }
            if let Some(path) = args.path {
                // Canonical: `.` and `..` resolved (a stored path must be normalized).
                project.path = std::fs::canonicalize(&path)
                    .with_context(|| format!("--path {}: the folder must exist", path.display()))?
                    .to_string_lossy()
                    .into_owned();
            }
            if let Some(domain) = args.domain {
                project.domain = domain;
            }
            if let Some(stack) = args.stack {
                project.stack = stack;
            }
            project
                .overrides
                .extend(pairs(&args.overrides, "--override", "KEY=VALUE")?);
            for key in &args.unset_overrides {
                project.overrides.remove(key);
            }
            backend.call::<methods::ConfigSetProject>(&project)?;
            backend.saved(&format!(
                "project {}{}",
                project.id,
                if created { " (new)" } else { "" }
            ));
        }
        ProjectsCommand::Remove { id } => {
            let _edit = edit_lock(home, EditKind::Project, &id)?;
            match backend.call::<methods::ConfigRemoveProject>(&IdParams { id: id.clone() }) {
                Ok(_) => backend.removed(&format!("project {id}")),
                Err(e) if e.is_not_found() => {
                    bail!("no project `{id}` (see `kojibox projects list`); nothing removed")
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
