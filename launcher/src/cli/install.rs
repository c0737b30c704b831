//! `kojibox install BUNDLE --pubkey KEY.pub`: verify and install a bundle offline, with a
//! progress bar on a terminal and one line per phase otherwise.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use kojibox_home::Home;
use kojibox_runtime::install::{InstallOptions, install};

/// `kojibox install`.
pub(crate) fn run(
    home: &Home,
    bundle: PathBuf,
    pubkey: Option<PathBuf>,
    all_targets: bool,
    allow_downgrade: bool,
    replace: bool,
) -> Result<ExitCode> {
    let options = InstallOptions {
        pubkey,
        all_targets,
        allow_downgrade,
        replace,
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
    let report = install(home, &bundle, &options, &mut |p| {
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
            "bundle {} is already installed in {} (this copy verified byte for byte); nothing to do",
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
    Ok(ExitCode::SUCCESS)
}
