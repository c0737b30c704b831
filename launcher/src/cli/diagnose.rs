//! `kojibox diagnose`: writes a diagnostics zip and prints where it is and what it holds.

use std::process::ExitCode;

use anyhow::Result;
use kojibox_home::Home;
use kojibox_manifests::api::{Empty, methods};
use launcher::client::Client;
use launcher::diagnostics::{self, KEEP, Summary};

/// `kojibox diagnose`: the zip's path, then what it holds (each section's files and size), its
/// size and the summary's notes; `--json` prints the `DiagnosticsBundle`.
pub(crate) fn diagnose(home: &Home, json: bool) -> Result<ExitCode> {
    let client = Client::connect(home)?;
    let bundle = client.call::<methods::DiagnosticsCreate>(&Empty::default())?;
    if json {
        super::print_json(&bundle)?;
        return Ok(ExitCode::SUCCESS);
    }
    let path = home.join(&bundle.path);
    println!("{}", path.display());
    let size = std::fs::metadata(&path).map(|m| m.len()).ok();
    match diagnostics::read_summary(&path) {
        Ok(summary) => print_summary(&summary, size),
        Err(e) => {
            // The zip is there; only its summary could not be shown.
            println!("  holds: {}", bundle.includes.join(", "));
            if let Some(size) = size {
                println!("  size:  {}", human(size));
            }
            eprintln!("kojibox: could not read the zip's summary: {e}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_summary(summary: &Summary, size: Option<u64>) {
    println!("  made:  {}", summary.created_at);
    if let Some(size) = size {
        println!(
            "  size:  {} ({} files)",
            human(size),
            summary.files.len() + 1
        );
    }
    println!("  holds:");
    for section in &summary.includes {
        let files: Vec<_> = summary
            .files
            .iter()
            .filter(|f| f.name.split('/').next() == Some(section.as_str()))
            .collect();
        let bytes: u64 = files.iter().map(|f| f.bytes).sum();
        println!(
            "    {section:<9} {:>3} files  {:>10}  {}",
            files.len(),
            human(bytes),
            about(section)
        );
    }
    let r = &summary.redaction;
    println!(
        "  secrets: none inside; {} values of the secret store ({}) and {} values by their \
         names were redacted",
        r.secret_values, r.secret_store, r.masked_by_name
    );
    for note in &summary.notes {
        println!("  note: {note}");
    }
    println!("  (the newest {KEEP} zips are kept in app/cache/; older ones are removed)");
}

/// What a section holds, in a few words.
fn about(section: &str) -> &'static str {
    match section {
        "logs" => "recent log entries of each service and the daemon",
        "config" => "app, settings, ports, services, projects",
        "manifest" => "installed manifest and versions",
        "services" => "states and definitions (placeholders unexpanded)",
        "ports" => "port registry and who listens",
        "system" => "OS, kernel, CPU, memory, disk, uptime",
        "trust" => "the local CA's trust",
        _ => "",
    }
}

/// `1.2 KiB`, `3.4 MiB`.
fn human(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1 << 20 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / f64::from(1 << 20)),
    }
}
