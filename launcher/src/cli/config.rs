//! `kojibox config app|service|ports`: through the running daemon when there is one (so the
//! dashboard hears `config:changed`), else on the home's files, with the same validation and
//! locks.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use kojibox_home::{EditKind, Home};
use kojibox_manifests::api::{Empty, IdParams, methods};
use kojibox_manifests::model::UpdateChannel;

use super::backend::Backend;
use super::{edit_lock, pairs, print_json};

/// `kojibox config ...`.
#[derive(Subcommand)]
pub(crate) enum ConfigCommand {
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
pub(crate) enum Channel {
    /// Released versions.
    Stable,
    /// Pre-releases.
    Beta,
}

/// `kojibox config service ID [changes]`.
#[derive(Args)]
pub(crate) struct ServiceArgs {
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

/// `kojibox config ...`.
pub(crate) fn config(home: &Home, command: ConfigCommand) -> Result<ExitCode> {
    // A typo in settings.json (`updateSoruce`) is ignored, but said.
    for warning in kojibox_home::Settings::warnings(home) {
        eprintln!("warning: {warning}");
    }
    let backend = Backend::open(home);
    match command {
        ConfigCommand::App {
            update_channel,
            telemetry,
        } => {
            let mut app = backend.call::<methods::ConfigGetApp>(&Empty::default())?;
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
            backend.call::<methods::ConfigSetApp>(&app)?;
            backend.saved("the app settings");
        }
        ConfigCommand::Service(args) => {
            let _edit = edit_lock(home, EditKind::Service, &args.id)?;
            let mut config = backend.call::<methods::ConfigGetService>(&IdParams {
                id: args.id.clone(),
            })?;
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
            backend.call::<methods::ConfigSetService>(&config)?;
            backend.saved(&format!("{}'s settings", config.id));
            println!(
                "they take effect at its next start (`kojibox restart {}` if it runs)",
                config.id
            );
        }
        ConfigCommand::Ports => {
            print_json(&kojibox_config::ports::load(home)?)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
