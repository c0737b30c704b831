//! `kojibox update check|apply|rollback`: through the running daemon (which restarts the
//! services and checks their health), else on the home directly (nothing runs, so nothing is
//! restarted).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Subcommand;
use kojibox_home::{Home, LockName};
use kojibox_manifests::api::{Empty, VersionParams, methods};
use kojibox_manifests::event::Event;
use kojibox_runtime::journal::recover_interrupted;
use kojibox_runtime::update::{Emit, NoServices};
use launcher::client::Client;

/// `kojibox update ...`.
#[derive(Subcommand)]
pub(crate) enum UpdateCommand {
    /// Look for a newer version on the app's channel (settings `updateSource`).
    Check,
    /// Download, verify and install a version (default: the channel's), restart the services
    /// it changes and wait until they are healthy; roll back by itself if they are not.
    Apply {
        /// The version to apply (must be the channel's).
        version: Option<String>,
    },
    /// Go back to the version before the last update.
    Rollback,
}

/// `kojibox update ...`.
pub(crate) fn update(home: &Home, command: UpdateCommand, json: bool) -> Result<ExitCode> {
    if let Some(note) = launcher::daemon::self_update_undone(home) {
        eprintln!("note: {note}");
    }
    let daemon = Client::connect(home).ok();
    match command {
        UpdateCommand::Check => {
            let check = match &daemon {
                Some(c) => c.call::<methods::UpdaterCheck>(&Empty::default())?,
                None => {
                    for note in recover_interrupted(home)? {
                        eprintln!("note: {note}");
                    }
                    kojibox_runtime::update::check(home, channel(home)?)?.to_check()
                }
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&check)?);
            } else if check.available {
                println!(
                    "{} is available: apply it with `kojibox update apply {}`",
                    check.version, check.version
                );
            } else {
                println!("up to date: the channel's version is {}", check.version);
            }
        }
        UpdateCommand::Apply { version } => {
            let version = match version {
                Some(v) => v,
                None => match &daemon {
                    Some(c) => c.call::<methods::UpdaterCheck>(&Empty::default())?.version,
                    None => {
                        kojibox_runtime::update::check(home, channel(home)?)?
                            .index
                            .version
                    }
                },
            };
            match &daemon {
                Some(c) => {
                    eprintln!(
                        "applying {version} through the daemon (pid {}): it restarts the changed \
                         services and waits until they are healthy...",
                        c.pid()
                    );
                    c.call::<methods::UpdaterApply>(&VersionParams {
                        version: version.clone(),
                    })?;
                }
                None => {
                    let _daemon = no_daemon(home)?;
                    // A daemon recovers at its start; without one, recover here.
                    for note in recover_interrupted(home)? {
                        eprintln!("note: {note}");
                    }
                    let channel = channel(home)?;
                    let runtime = runtime()?;
                    let applied = runtime.block_on(kojibox_runtime::update::apply(
                        home,
                        channel,
                        &version,
                        &NoServices,
                        &printer(),
                    ))?;
                    if applied.self_updated {
                        println!("kojibox itself was replaced by the bundle's");
                    }
                }
            }
            println!("updated to {version}");
        }
        UpdateCommand::Rollback => {
            let to = match &daemon {
                Some(c) => {
                    c.call::<methods::UpdaterRollback>(&Empty::default())?;
                    c.call::<methods::RuntimeGetManifest>(&Empty::default())?
                        .version
                }
                None => {
                    let _daemon = no_daemon(home)?;
                    let rolled = runtime()?.block_on(kojibox_runtime::update::rollback(
                        home,
                        &NoServices,
                        &printer(),
                    ))?;
                    if rolled.self_updated {
                        println!("kojibox itself is the one from before the update again");
                    }
                    rolled.version
                }
            };
            println!("rolled back to {to}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Holds the daemon lock while the home is updated directly, so no daemon starts meanwhile (and
/// a daemon that runs but could not be reached is not worked around).
fn no_daemon(home: &Home) -> Result<kojibox_home::Lock> {
    home.lock(LockName::Daemon)
        .context("a daemon runs for this home but could not be reached; update through it (or stop it with `kojibox down`)")
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the runtime")
}

/// Prints update phases on stderr.
/// The app's update channel (`kojibox config app --update-channel`).
fn channel(home: &Home) -> Result<kojibox_manifests::model::UpdateChannel> {
    Ok(kojibox_config::get_app(home)?.update_channel)
}

fn printer() -> Emit {
    let last = std::sync::Mutex::new(String::new());
    Arc::new(move |event| {
        if let Event::UpdateProgress(p) = event {
            let mut last = last
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if *last != p.phase || p.progress % 10 == 0 {
                eprintln!("{:<9} {:>3}%", p.phase, p.progress);
                last.clone_from(&p.phase);
            }
        }
    })
}
