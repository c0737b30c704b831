//! `kojibox`: installs runtime bundles offline, supervises services and serves the API.
//!
//! This file parses the command line and dispatches to `cli/`, one file per command family.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use kojibox_home::Home;

/// Install kojibox runtime bundles offline and run your local development stack.
#[derive(Parser)]
#[command(
    name = "kojibox",
    version,
    about = "kojibox: installs runtime bundles offline, supervises services, serves the API",
    long_about = None
)]
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
    /// installed unless --all-targets. Installing the same bundle again reads and verifies it
    /// whole, then does nothing.
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
        /// Allow a bundle whose version is installed already from another signed index (a
        /// rebuild that kept its version); without it, such a bundle is refused, naming what
        /// would change.
        #[arg(long)]
        replace: bool,
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
    Config(cli::config::ConfigCommand),
    /// List, show, create, change or remove projects.
    #[command(subcommand)]
    Projects(cli::projects::ProjectsCommand),
    /// Store, read and remove secrets (encrypted at rest; `${secret.KEY}` in a service's env or
    /// args).
    #[command(subcommand)]
    Secrets(cli::secrets::SecretsCommand),
    /// Check for, apply or roll back a signed update (settings `updateSource`).
    #[command(subcommand)]
    Update(cli::update::UpdateCommand),
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
    /// Print stored log entries: every service's merged by time, or the named ones'.
    ///
    /// Reads the log store (app/logs/), also when no daemon runs. `kojibox` names the daemon's
    /// own log. Times are RFC 3339 (2026-12-02T09:00:00Z) or durations before now (90s, 15m,
    /// 1h30m, 2d). Examples: `kojibox logs postgres --since 1h --level warn`,
    /// `kojibox logs --grep timeout -f`, `kojibox logs web --export`.
    Logs(cli::logs::LogsArgs),
    /// Show CPU (percent of the whole machine), memory (MiB) and listening ports of each service
    /// (with its child processes) and of the daemon, and the daemon's uptime.
    Metrics {
        /// Refresh every second until interrupted (with --json: one snapshot per line).
        #[arg(long)]
        watch: bool,
    },
    /// Write a diagnostics zip for support and print where it is and what it holds: recent
    /// logs, configuration, installed versions, service states and definitions, ports, system
    /// facts; never secret values, keys or the API token (`app/cache/diag-<time>.zip`, 0600;
    /// the newest 5 are kept). A running daemon makes it.
    Diagnose,
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
    /// Open the daemon's page in the browser, signed in with a one-time login.
    ///
    /// The address carries a code that works once, for two minutes; the page trades it for a
    /// session of its own (the API token never reaches the browser).
    Dashboard {
        /// Print the address instead of opening a browser (scripts, remote shells).
        #[arg(long)]
        print_url: bool,
    },
    /// Internal: the daemon's watchdog (ends service groups if the daemon dies).
    #[command(name = "__watchdog", hide = true)]
    Watchdog,
    /// Internal: waits for a daemon restarted on a new kojibox to prove itself, else puts the
    /// previous kojibox back and starts it.
    #[command(name = "__prove-self-update", hide = true)]
    ProveSelfUpdate {
        /// The restarted daemon.
        #[arg(long)]
        pid: u32,
        /// Where kojibox runs from.
        #[arg(long)]
        exe: PathBuf,
        /// The services that must run again, comma-separated.
        #[arg(long, value_delimiter = ',')]
        services: Vec<String>,
        /// The daemon's arguments, to start the previous kojibox with.
        #[arg(last = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Run a program of a service's payload with the service's environment, config, port and
    /// credentials, and exit with its code; no daemon needed.
    ///
    /// A bare PROGRAM is looked for in the payload's bin, usr/bin, native/bin, sbin, usr/sbin
    /// and top folders (a path is relative to the payload); the service's template may put
    /// arguments before yours (`--defaults-file=...` for mariadb) and add variables (a
    /// password). Examples: `kojibox exec postgres -- pg_ctl --version`; with a bundle that
    /// carries them, `kojibox exec redis -- redis-cli PING`, `kojibox exec mariadb -- mariadb
    /// -e 'SELECT 1'`.
    Exec {
        /// The service id.
        service: String,
        /// The program, then its arguments (after `--`).
        #[arg(last = true, required = true, num_args = 1.., value_name = "PROGRAM [ARGS]")]
        command: Vec<String>,
    },
    /// Call any API method and print the answer's envelope; exit 1 on an error envelope.
    Rpc {
        /// The method, e.g. services.list.
        method: String,
        /// Its params as JSON, e.g. '{"id": "postgres"}'. Default: {}.
        params: Option<String>,
    },
}

fn main() -> ExitCode {
    // Before anything holds a key, a token or a passphrase, and before any thread exists.
    if let Err(e) = kojibox_proc::limits::forbid_core_dumps() {
        eprintln!("warning: could not turn core dumps off: {e}");
    }
    cli::passphrase::take_from_environment();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    if let Command::Watchdog = cli.command {
        kojibox_proc::watchdog::run();
        return Ok(ExitCode::SUCCESS);
    }
    let (home, _) = Home::resolve(cli.home.as_deref())?;
    let json = cli.json;
    match cli.command {
        Command::Install {
            bundle,
            pubkey,
            all_targets,
            allow_downgrade,
            replace,
        } => cli::install::run(&home, bundle, pubkey, all_targets, allow_downgrade, replace),
        Command::Serve {
            up,
            listen,
            passphrase_stdin,
        } => cli::daemon::serve(&home, up, listen, passphrase_stdin),
        Command::Config(command) => cli::config::config(&home, command),
        Command::Projects(command) => cli::projects::projects(&home, command, json),
        Command::Secrets(command) => cli::secrets::secrets(&home, command),
        Command::Update(command) => cli::update::update(&home, command, json),
        // Handled before the home is resolved.
        Command::Watchdog => Ok(ExitCode::SUCCESS),
        Command::ProveSelfUpdate {
            pid,
            exe,
            services,
            args,
        } => {
            // None ran: `--services ""`.
            let services: Vec<String> = services.into_iter().filter(|s| !s.is_empty()).collect();
            launcher::daemon::prove_self_update(&home, pid, &exe, &args, &services, &|line| {
                eprintln!("{line}");
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Up => cli::daemon::up(&home, json),
        Command::Down => cli::daemon::down(&home),
        Command::Status => cli::service::status(&home, json),
        Command::Start { id, wait } => {
            cli::service::control(&home, cli::service::Action::Start, &id, wait, json)
        }
        Command::Stop { id, wait } => {
            cli::service::control(&home, cli::service::Action::Stop, &id, wait, json)
        }
        Command::Restart { id, wait } => {
            cli::service::control(&home, cli::service::Action::Restart, &id, wait, json)
        }
        Command::Logs(args) => cli::logs::logs(&home, &args, json),
        Command::Metrics { watch } => cli::metrics::metrics(&home, watch, json),
        Command::Diagnose => cli::diagnose::diagnose(&home, json),
        Command::Events { filters, since } => cli::events::events(&home, &filters, since),
        Command::Exec { service, command } => {
            cli::exec::exec(&home, &service, &command[0], &command[1..])
        }
        Command::Rpc { method, params } => cli::rpc::rpc(&home, &method, params.as_deref()),
        Command::Verify => cli::verify::run(&home, json),
        Command::Dashboard { print_url } => cli::dashboard::dashboard(&home, print_url, json),
    }
}

/// The error and its causes, `: `-separated, each cause left out when the message before it
/// already says it (most errors quote their source).
fn chain(e: &anyhow::Error) -> String {
    e.chain().skip(1).fold(e.to_string(), |text, cause| {
        let cause = cause.to_string();
        if text.contains(&cause) {
            text
        } else {
            format!("{text}: {cause}")
        }
    })
}
