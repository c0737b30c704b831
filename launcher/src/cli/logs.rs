//! `kojibox logs ID [-n N] [-f]`: a service's recent lines, then new ones as they come.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use kojibox_home::Home;
use kojibox_manifests::api::{LogsParams, methods};
use kojibox_manifests::event::Event;
use kojibox_manifests::model::LogEntry;
use launcher::client::Client;

/// `kojibox logs ID [-n N] [-f]`.
pub(crate) fn logs(home: &Home, id: &str, tail: u32, follow: bool, json: bool) -> Result<ExitCode> {
    let client = Client::connect(home)?;
    let entries = client.call::<methods::ServicesLogs>(&LogsParams {
        id: id.to_owned(),
        tail: Some(tail),
    })?;
    let print = |entry: &LogEntry| {
        if json {
            println!("{}", serde_json::to_string(entry).unwrap_or_default());
        } else {
            let level = entry.level.as_str().to_uppercase();
            println!("{} {level:<5} {}", entry.ts, entry.message);
        }
    };
    entries.iter().for_each(print);
    if follow {
        let last = entries.last().map(|e| e.ts.clone());
        client.events(None, |envelope| {
            if let Event::ServiceLogLine(entry) = envelope.event
                && entry.service == id
                && last.as_ref().is_none_or(|ts| entry.ts > *ts)
            {
                print(&entry);
                let _ = std::io::stdout().flush();
            }
            true
        })?;
    }
    Ok(ExitCode::SUCCESS)
}
