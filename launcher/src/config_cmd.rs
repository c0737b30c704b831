//! `kojibox config`, `kojibox projects` and `kojibox secrets`: through the running daemon when
//! there is one (so the dashboard hears `config:changed`), else on the home's files directly,
//! with the same validation and locks.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use kojibox_manifests::api::{Empty, IdParams, SecretSetParams, methods};
use kojibox_manifests::model::{
    AppConfig, ProjectConfig, SecretRef, SecretScope, ServiceConfig, UpdateChannel,
};
use launcher::Home;
use launcher::client::Client;
use launcher::secrets::{SecretStore, SecretValue};

/// `kojibox config ...`.
#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Show the app settings, or change them.
    App {
        /// The update channel to follow.
        #[arg(long, value_enum)]
        update_channel: Option<Channel>,
        /// Whether telemetry is allowed (kojibox sends none today).
        #[arg(long, value_name = "true|false")]
        telemetry: Option<bool>,
    },
    /// Show a service's settings, or change them (they take effect at its next start).
    Service(ServiceArgs),
    /// Show the port registry: the port each service was given (app/config/ports.json).
    Ports,
}

/// Update channels, for clap.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Channel {
    /// Released versions.
    Stable,
    /// Pre-releases.
    Beta,
}

/// `kojibox config service ID [changes]`.
#[derive(Args)]
pub struct ServiceArgs {
    /// The service id.
    id: String,
    /// Let `up` start it.
    #[arg(long, conflicts_with = "disable")]
    enable: bool,
    /// Keep `up` from starting it.
    #[arg(long)]
    disable: bool,
    /// Give a port: NAME=PORT (e.g. db=5433). Refused when another service has it or another
    /// process holds it.
    #[arg(long = "port", value_name = "NAME=PORT")]
    ports: Vec<String>,
    /// Go back to the registry's port for NAME.
    #[arg(long = "unset-port", value_name = "NAME")]
    unset_ports: Vec<String>,
    /// Set an environment variable: KEY=VALUE. ${secret.KEY} expands at spawn time.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Remove an environment override.
    #[arg(long = "unset-env", value_name = "KEY")]
    unset_env: Vec<String>,
    /// Replace the arguments (repeat for each; `--arg=-D`, for values starting with `-`).
    #[arg(long = "arg", value_name = "ARG", allow_hyphen_values = true)]
    args: Vec<String>,
    /// Go back to the bundle's arguments.
    #[arg(long, conflicts_with = "args")]
    default_args: bool,
}

/// `kojibox projects ...`.
#[derive(Subcommand)]
pub enum ProjectsCommand {
    /// List the projects.
    List,
    /// Show one project.
    Show {
        /// The project id.
        id: String,
    },
    /// Create a project or change one (only the fields given change).
    Set(ProjectArgs),
}

/// `kojibox projects set ID [fields]`.
#[derive(Args)]
pub struct ProjectArgs {
    /// The project id (a-z, 0-9, `-`, `_`).
    id: String,
    /// Display name (default: the id).
    #[arg(long)]
    name: Option<String>,
    /// The project's folder (made absolute; it must exist).
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

/// `kojibox secrets ...`.
#[derive(Subcommand)]
pub enum SecretsCommand {
    /// Store a secret. The value is read from standard input (all of it, one trailing newline
    /// removed) or, on a terminal, from a prompt that does not echo; never from the command line.
    Set {
        /// The secret's key (e.g. db-password).
        key: String,
        /// Its scope.
        #[arg(long, value_enum, default_value = "app")]
        scope: Scope,
    },
    /// Print a secret's value.
    Get {
        /// The secret's key.
        key: String,
        /// Its scope.
        #[arg(long, value_enum, default_value = "app")]
        scope: Scope,
    },
    /// Protect the store's key with a passphrase (for a stick that may be lost), change it, or
    /// remove it. The daemon then needs the passphrase to start services that use secrets:
    /// `kojibox up` asks for it; `serve` takes --passphrase-stdin or KOJIBOX_PASSPHRASE.
    Passphrase {
        /// Remove the passphrase (the key goes back to a 0600 key file).
        #[arg(long, conflicts_with = "stdin")]
        remove: bool,
        /// Read the new passphrase from the first line of standard input instead of a prompt
        /// (the current one, if any, comes from KOJIBOX_PASSPHRASE or a prompt).
        #[arg(long)]
        stdin: bool,
    },
}

/// Secret scopes, for clap.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Scope {
    /// Application-wide.
    App,
    /// Projects'.
    Project,
    /// Services'.
    Service,
}

impl From<Scope> for SecretScope {
    fn from(scope: Scope) -> SecretScope {
        match scope {
            Scope::App => SecretScope::App,
            Scope::Project => SecretScope::Project,
            Scope::Service => SecretScope::Service,
        }
    }
}

/// Where the settings are read and written.
enum Backend {
    Daemon(Client),
    Files(Home),
}

impl Backend {
    fn open(home: &Home) -> Backend {
        match Client::connect(home) {
            Ok(client) => Backend::Daemon(client),
            Err(_) => Backend::Files(home.clone()),
        }
    }

    fn get_app(&self) -> Result<AppConfig> {
        Ok(match self {
            Backend::Daemon(c) => c.call::<methods::ConfigGetApp>(&Empty::default())?,
            Backend::Files(h) => launcher::config::get_app(h)?,
        })
    }

    fn set_app(&self, app: &AppConfig) -> Result<()> {
        match self {
            Backend::Daemon(c) => drop(c.call::<methods::ConfigSetApp>(app)?),
            Backend::Files(h) => launcher::config::set_app(h, app)?,
        }
        Ok(())
    }

    fn get_service(&self, id: &str) -> Result<ServiceConfig> {
        Ok(match self {
            Backend::Daemon(c) => {
                c.call::<methods::ConfigGetService>(&IdParams { id: id.to_owned() })?
            }
            Backend::Files(h) => launcher::config::get_service(h, id)?,
        })
    }

    fn set_service(&self, config: &ServiceConfig) -> Result<()> {
        match self {
            Backend::Daemon(c) => drop(c.call::<methods::ConfigSetService>(config)?),
            Backend::Files(h) => launcher::config::set_service(h, config)?,
        }
        Ok(())
    }

    fn get_project(&self, id: &str) -> Result<Option<ProjectConfig>> {
        let result = match self {
            Backend::Daemon(c) => c
                .call::<methods::ConfigGetProject>(&IdParams { id: id.to_owned() })
                .map_err(|e| match e {
                    launcher::client::CallError::Api(api)
                        if api.code == kojibox_manifests::error::ErrorCode::NotFound =>
                    {
                        None
                    }
                    other => Some(anyhow::Error::from(other)),
                }),
            Backend::Files(h) => launcher::config::get_project(h, id).map_err(|e| match e {
                launcher::Error::NotFound { .. } => None,
                other => Some(anyhow::Error::from(other)),
            }),
        };
        match result {
            Ok(project) => Ok(Some(project)),
            Err(None) => Ok(None),
            Err(Some(e)) => Err(e),
        }
    }

    fn set_project(&self, project: &ProjectConfig) -> Result<()> {
        match self {
            Backend::Daemon(c) => drop(c.call::<methods::ConfigSetProject>(project)?),
            Backend::Files(h) => launcher::config::set_project(h, project)?,
        }
        Ok(())
    }

    fn list_projects(&self) -> Result<Vec<ProjectConfig>> {
        Ok(match self {
            Backend::Daemon(c) => c.call::<methods::ConfigListProjects>(&Empty::default())?,
            Backend::Files(h) => launcher::config::list_projects(h)?,
        })
    }

    fn secret_get(&self, scope: SecretScope, key: &str) -> Result<SecretValue> {
        Ok(match self {
            Backend::Daemon(c) => SecretValue::new(c.call::<methods::SecretsGet>(&SecretRef {
                key: key.to_owned(),
                scope,
            })?),
            Backend::Files(h) => {
                launcher::secrets::check_key(key)?;
                open_store(h)?.get(scope, key)?
            }
        })
    }

    fn secret_set(&self, scope: SecretScope, key: &str, value: SecretValue) -> Result<()> {
        match self {
            Backend::Daemon(c) => drop(c.call::<methods::SecretsSet>(&SecretSetParams {
                key: key.to_owned(),
                scope,
                value: value.expose().to_owned(),
            })?),
            Backend::Files(h) => {
                launcher::secrets::check_key(key)?;
                open_store(h)?.set(scope, key, &value)?;
            }
        }
        Ok(())
    }

    fn saved(&self, what: &str) {
        match self {
            Backend::Daemon(c) => println!("saved {what} (daemon pid {})", c.pid()),
            Backend::Files(h) => {
                println!("saved {what} in {} (no daemon runs)", h.root().display());
            }
        }
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `kojibox config ...`.
pub fn config(home: &Home, command: ConfigCommand) -> Result<ExitCode> {
    let backend = Backend::open(home);
    match command {
        ConfigCommand::App {
            update_channel,
            telemetry,
        } => {
            let mut app = backend.get_app()?;
            if update_channel.is_none() && telemetry.is_none() {
                print_json(&app)?;
                return Ok(ExitCode::SUCCESS);
            }
            if let Some(channel) = update_channel {
                app.update_channel = match channel {
                    Channel::Stable => UpdateChannel::Stable,
                    Channel::Beta => UpdateChannel::Beta,
                };
            }
            if let Some(telemetry) = telemetry {
                app.telemetry_opt_in = telemetry;
            }
            backend.set_app(&app)?;
            backend.saved("the app settings");
        }
        ConfigCommand::Service(args) => {
            let _edit = edit_lock(home, "service", &args.id)?;
            let mut config = backend.get_service(&args.id)?;
            let before = config.clone();
            if args.enable {
                config.enabled = true;
            }
            if args.disable {
                config.enabled = false;
            }
            for (name, port) in pairs(&args.ports, "--port", "NAME=PORT")? {
                let port: u16 = port
                    .parse()
                    .ok()
                    .filter(|p| *p != 0)
                    .with_context(|| format!("--port {name}={port}: a port is 1 to 65535"))?;
                config.ports.insert(name, port);
            }
            for name in &args.unset_ports {
                config.ports.remove(name);
            }
            config.env.extend(pairs(&args.env, "--env", "KEY=VALUE")?);
            for key in &args.unset_env {
                config.env.remove(key);
            }
            if !args.args.is_empty() {
                config.args.clone_from(&args.args);
            }
            if args.default_args {
                config.args.clear();
            }
            if config == before {
                print_json(&config)?;
                return Ok(ExitCode::SUCCESS);
            }
            backend.set_service(&config)?;
            backend.saved(&format!("{}'s settings", config.id));
            println!(
                "they take effect at its next start (`kojibox restart {}` if it runs)",
                config.id
            );
        }
        ConfigCommand::Ports => {
            print_json(&launcher::ports::load(home)?)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `kojibox projects ...`.
pub fn projects(home: &Home, command: ProjectsCommand, json: bool) -> Result<ExitCode> {
    let backend = Backend::open(home);
    match command {
        ProjectsCommand::List => {
            let projects = backend.list_projects()?;
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
            let _edit = edit_lock(home, "project", &args.id)?;
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
                project.path = std::path::absolute(&path)
                    .with_context(|| format!("--path {}", path.display()))?
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
            backend.set_project(&project)?;
            backend.saved(&format!(
                "project {}{}",
                project.id,
                if created { " (new)" } else { "" }
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `kojibox secrets ...`.
pub fn secrets(home: &Home, command: SecretsCommand) -> Result<ExitCode> {
    match command {
        SecretsCommand::Set { key, scope } => {
            let backend = Backend::open(home);
            let value = read_secret(&format!("value of {key}: "))?;
            backend.secret_set(scope.into(), &key, value)?;
            backend.saved(&format!("secret {key}"));
        }
        SecretsCommand::Get { key, scope } => {
            let value = Backend::open(home).secret_get(scope.into(), &key)?;
            println!("{}", value.expose());
        }
        SecretsCommand::Passphrase { remove, stdin } => {
            let store = open_store(home)?;
            if remove {
                store.set_passphrase(None)?;
                println!("removed the passphrase: the store's key is in a 0600 key file again");
            } else {
                let first = if stdin {
                    passphrase_from_stdin()?
                } else {
                    let first = prompt("new passphrase: ")?;
                    let again = prompt("again: ")?;
                    if first.expose() != again.expose() {
                        bail!("the two passphrases differ; nothing changed");
                    }
                    first
                };
                if first.expose().is_empty() {
                    bail!("an empty passphrase protects nothing; nothing changed");
                }
                store.set_passphrase(Some(&first))?;
                println!(
                    "the secret store now needs this passphrase: `kojibox up` asks for it; \
                     `kojibox serve` takes --passphrase-stdin or KOJIBOX_PASSPHRASE"
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens the store of `home` from this process, asking for the passphrase when it has one.
fn open_store(home: &Home) -> Result<SecretStore> {
    let passphrase = if SecretStore::is_locked(home) {
        passphrase_for(home)?
    } else {
        None
    };
    Ok(SecretStore::open(home, passphrase.as_ref())?)
}

/// The passphrase of a protected store: `KOJIBOX_PASSPHRASE`, else a prompt on a terminal,
/// else none.
pub fn passphrase_for(home: &Home) -> Result<Option<SecretValue>> {
    if !SecretStore::is_locked(home) {
        return Ok(None);
    }
    if let Ok(value) = std::env::var("KOJIBOX_PASSPHRASE") {
        return Ok(Some(SecretValue::new(value)));
    }
    if std::io::stdin().is_terminal() {
        return Ok(Some(prompt("passphrase of the secret store: ")?));
    }
    Ok(None)
}

/// A passphrase from the first line of standard input (its line ending removed).
pub fn passphrase_from_stdin() -> Result<SecretValue> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("could not read the passphrase from standard input")?;
    Ok(SecretValue::new(
        line.trim_end_matches(['\n', '\r']).to_owned(),
    ))
}

fn prompt(label: &str) -> Result<SecretValue> {
    Ok(SecretValue::new(
        rpassword::prompt_password(label).context("could not read from the terminal")?,
    ))
}

/// A secret value from a prompt (terminal) or all of standard input (one trailing newline
/// removed).
fn read_secret(label: &str) -> Result<SecretValue> {
    if std::io::stdin().is_terminal() {
        return prompt(label);
    }
    let mut value = String::new();
    std::io::stdin()
        .read_to_string(&mut value)
        .context("could not read the value from standard input")?;
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    if value.is_empty() {
        bail!("the value on standard input is empty; nothing stored");
    }
    Ok(SecretValue::new(value))
}

/// Held while a command reads, changes and writes back one object, so two such commands on
/// the same object do not lose each other's change (the last write wins whole, never half).
fn edit_lock(home: &Home, kind: &str, id: &str) -> Result<Option<launcher::home::Lock>> {
    if !kojibox_manifests::recipe::is_service_id(id) {
        return Ok(None); // refused by validation, with a message naming the id
    }
    Ok(Some(home.lock_wait(&format!("edit-{kind}-{id}"))?))
}

/// Splits `KEY=VALUE` arguments.
fn pairs(items: &[String], flag: &str, form: &str) -> Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => bail!("{flag} {item}: expected {form}"),
        })
        .collect()
}
