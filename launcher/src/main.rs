//! `kojibox`: installs runtime bundles offline, supervises services and serves the API.

mod commands;
mod config_cmd;
mod update_cmd;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use launcher::Home;
use launcher::install::{InstallOptions, install};

/// Install kojibox runtime bundles offline and run your local development stack.
#[derive(Parser)]
#[command(name = "kojibox", version, about, long_about = None)]
struct Cli {
    /// The home folder. Default: $KOJIBOX_HOME, else the executable's folder when a
    /// `kojibox.portable` file is beside it, else the user data folder (~/.local/share/kojibox).
    #[arg(long, global = true, value_name = "DIR")]
    home: Option<PathBuf>,
    /// Print JSON for scripts (status, start, stop, restart, logs, up, verify, projects list,
    /// update check; settings always print as JSON).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Verify a bundle's signature and install it, offline.
    ///
    /// The first install pins the key given with --pubkey in app/keys/; later installs must be
    /// signed by a pinned key (--pubkey pins another one). Only this machine's payloads are
    /// installed unless --all-targets. Installing the same bundle again does nothing.
    Install {
        /// The bundle (.kbx).
        bundle: PathBuf,
        /// The publisher's public key (required for the first install).
        #[arg(long, value_name = "KEY.pub")]
        pubkey: Option<PathBuf>,
        /// Install the payloads of every OS/arch (a USB stick that works anywhere).
        #[arg(long)]
        all_targets: bool,
        /// Allow installing a bundle older than the installed one.
        #[arg(long)]
        allow_downgrade: bool,
    },
    /// Run the daemon in the foreground: supervise the installed services until Ctrl-C.
    ///
    /// Stops every service (in reverse dependency order) on SIGINT or SIGTERM. Services die with
    /// the daemon even if it is killed, and a new daemon ends any a previous one left behind.
    Serve {
        /// Start every enabled service at once.
        #[arg(long)]
        up: bool,
        /// Where the API listens (a loopback address:port). Default: settings `listen`, else
        /// 127.0.0.1:0 (any free port; the CLI finds it in app/state/api.json).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Read the secret store's passphrase from the first line of standard input (else
        /// KOJIBOX_PASSPHRASE, else a prompt on a terminal).
        #[arg(long)]
        passphrase_stdin: bool,
    },
    /// Show or change the app's and the services' settings.
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// List, show, create or change projects.
    #[command(subcommand)]
    Projects(config_cmd::ProjectsCommand),
    /// Store and read secrets (encrypted at rest; `${secret.KEY}` in a service's env or args).
    #[command(subcommand)]
    Secrets(config_cmd::SecretsCommand),
    /// Check for, apply or roll back a signed update (settings `updateSource`).
    #[command(subcommand)]
    Update(update_cmd::UpdateCommand),
    /// Re-hash every installed payload against its signed index and report any drift.
    ///
    /// Exits 0 when everything is intact, 1 otherwise.
    Verify,
    /// Start the daemon in the background if none runs, then every enabled service; wait until
    /// they are running.
    Up,
    /// Stop every service and the daemon.
    Down,
    /// Show the services: state, pid, ports, uptime.
    Status,
    /// Start a service (its dependencies first).
    Start {
        /// The service id.
        id: String,
        /// Wait until it is running (or failed).
        #[arg(long)]
        wait: bool,
    },
    /// Stop a service.
    Stop {
        /// The service id.
        id: String,
        /// Wait until it is stopped.
        #[arg(long)]
        wait: bool,
    },
    /// Restart a service.
    Restart {
        /// The service id.
        id: String,
        /// Wait until it is running again (or failed).
        #[arg(long)]
        wait: bool,
    },
    /// Print a service's recent log lines.
    Logs {
        /// The service id.
        id: String,
        /// How many lines.
        #[arg(short = 'n', long = "lines", default_value_t = 100)]
        lines: u32,
        /// Keep printing new lines as they come.
        #[arg(short, long)]
        follow: bool,
    },
    /// Print the daemon's events as JSON lines until interrupted.
    Events {
        /// Only events with this name (`service:stateChanged`) or prefix (`service:*`); repeat
        /// for more.
        #[arg(long = "filter", value_name = "NAME")]
        filters: Vec<String>,
        /// Replay buffered events after this id first.
        #[arg(long, value_name = "ID")]
        since: Option<u64>,
    },
    /// Internal: the daemon's watchdog (ends service groups if the daemon dies).
    #[command(name = "__watchdog", hide = true)]
    Watchdog,
    /// Call any API method and print the answer's envelope; exit 1 on an error envelope.
    Rpc {
        /// The method, e.g. services.list.
        method: String,
        /// Its params as JSON, e.g. '{"id": "postgres"}'. Default: {}.
        params: Option<String>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    if let Command::Watchdog = cli.command {
        launcher::watchdog::run();
        return Ok(ExitCode::SUCCESS);
    }
    let (home, _) = Home::resolve(cli.home.as_deref())?;
    match cli.command {
        Command::Install {
            bundle,
            pubkey,
            all_targets,
            allow_downgrade,
        } => {
            let options = InstallOptions {
                pubkey,
                all_targets,
                allow_downgrade,
                defer_watermark: false,
            };
            let interactive = std::io::stderr().is_terminal();
            let bar = if interactive {
                ProgressBar::new(100)
            } else {
                ProgressBar::hidden()
            };
            bar.set_style(
                ProgressStyle::with_template("{msg:<9} {bar:40} {pos:>3}%")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let mut last_phase = String::new();
            let report = install(&home, &bundle, &options, &mut |p| {
                bar.set_message(p.phase.clone());
                bar.set_position(u64::from(p.progress));
                if !interactive && p.phase != last_phase {
                    eprintln!("{} {}%", p.phase, p.progress);
                    last_phase.clone_from(&p.phase);
                }
            });
            bar.finish_and_clear();
            let report = report?;
            for line in &report.recovered {
                eprintln!("note: {line}");
            }
            if !report.changed {
                println!(
                    "bundle {} is already installed in {}; nothing to do",
                    report.version,
                    home.root().display()
                );
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "installed bundle {} into {} (signed by key {})",
                report.version,
                home.root().display(),
                report.key_id
            );
            for label in &report.installed {
                println!("  + {label}");
            }
            for label in &report.kept {
                println!("  = {label} (already installed)");
            }
            if report.pinned {
                println!(
                    "pinned key {} in {}: later installs and updates must be signed by a pinned key",
                    report.key_id,
                    home.keys().display()
                );
            }
        }
        Command::Serve {
            up,
            listen,
            passphrase_stdin,
        } => {
            let passphrase = if passphrase_stdin {
                Some(config_cmd::passphrase_from_stdin()?)
            } else {
                config_cmd::passphrase_for(&home)?
            };
            let options = launcher::daemon::ServeOptions {
                up,
                listen,
                passphrase,
            };
            launcher::daemon::serve(&home, &options)?;
        }
        Command::Config(command) => return config_cmd::config(&home, command),
        Command::Projects(command) => return config_cmd::projects(&home, command, cli.json),
        Command::Secrets(command) => return config_cmd::secrets(&home, command),
        Command::Update(command) => return update_cmd::update(&home, command, cli.json),
        // Handled before the home is resolved.
        Command::Watchdog => {}
        Command::Up => return commands::up(&home, cli.json),
        Command::Down => return commands::down(&home),
        Command::Status => return commands::status(&home, cli.json),
        Command::Start { id, wait } => {
            return commands::control(&home, commands::Action::Start, &id, wait, cli.json);
        }
        Command::Stop { id, wait } => {
            return commands::control(&home, commands::Action::Stop, &id, wait, cli.json);
        }
        Command::Restart { id, wait } => {
            return commands::control(&home, commands::Action::Restart, &id, wait, cli.json);
        }
        Command::Logs { id, lines, follow } => {
            return commands::logs(&home, &id, lines, follow, cli.json);
        }
        Command::Events { filters, since } => return commands::events(&home, &filters, since),
        Command::Rpc { method, params } => return commands::rpc(&home, &method, params.as_deref()),
        Command::Verify => {
            let json = cli.json;
            for line in launcher::install::recover_if_idle(&home)? {
                eprintln!("note: {line}");
            }
            launcher::runtime::get_manifest(&home)?;
            let report = launcher::runtime::verify_installed(&home)?;
            if json {
                let payloads: Vec<_> = report.payloads.iter().map(|p| serde_json::json!({"payload": p.label, "root": p.root, "intact": p.drift.is_empty(), "drift": p.drift})).collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"clean": report.is_clean(), "payloads": payloads, "problems": report.problems})
                    )?
                );
            } else {
                for problem in &report.problems {
                    println!("PROBLEM  {problem}");
                }
                for p in &report.payloads {
                    if p.drift.is_empty() {
                        println!("ok       {}", p.label);
                    } else {
                        println!("DRIFTED  {} ({} difference(s))", p.label, p.drift.len());
                        for d in &p.drift {
                            println!("           {d}");
                        }
                    }
                }
            }
            if !report.is_clean() {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
