//! `kojibox events`: the daemon's event stream as JSON lines.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use kojibox_home::Home;
use launcher::client::Client;

/// `kojibox events [--filter NAME...]`: one JSON line per event, until interrupted.
pub(crate) fn events(home: &Home, filters: &[String], last_id: Option<u64>) -> Result<ExitCode> {
    let client = Client::connect(home)?;
    let stdout = std::io::stdout();
    client.events(last_id, |envelope| {
        let name = envelope.event.name();
        if !filters.is_empty() && !filters.iter().any(|f| matches_filter(f, name)) {
            return true;
        }
        let mut out = stdout.lock();
        serde_json::to_writer(&mut out, &envelope).is_ok()
            && writeln!(out).is_ok()
            && out.flush().is_ok()
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `service:*` matches every service event; otherwise the exact name.
pub(crate) fn matches_filter(filter: &str, name: &str) -> bool {
    match filter.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => filter == name,
    }
}
