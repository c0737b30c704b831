//! `kojibox logs [SERVICE...] [-n N] [--since T] [--until T] [--level L] [--grep TEXT] [-f]
//! [--export]`: stored log entries (every service merged by time unless some are named), then
//! new ones as they come. Without a daemon the store is read directly.

use std::collections::HashSet;
use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use kojibox_home::Home;
use kojibox_manifests::api::{ExportFormat, LogFilter, LogHit, OneOrMany, methods};
use kojibox_manifests::event::Event;
use kojibox_manifests::model::{LogEntry, LogLevel};
use kojibox_supervisor::logs::query::text_line;
use launcher::client::{Client, ClientError};

/// What `kojibox logs` was asked.
#[derive(clap::Args)]
pub(crate) struct LogsArgs {
    /// The services (default: all of them).
    #[arg(value_name = "SERVICE")]
    pub(crate) services: Vec<String>,
    /// How many of the newest matching entries (default 100, at most 10000; an export
    /// takes every match unless this is given).
    #[arg(short = 'n', long = "lines", value_name = "N")]
    pub(crate) lines: Option<u32>,
    /// Only entries at or after this time.
    #[arg(long, value_name = "TIME")]
    pub(crate) since: Option<String>,
    /// Only entries before this time.
    #[arg(long, value_name = "TIME")]
    pub(crate) until: Option<String>,
    /// Only entries at this level or above.
    #[arg(long, value_parser = parse_level, value_name = "debug|info|warn|error")]
    pub(crate) level: Option<LogLevel>,
    /// Only entries whose message contains this text (any case).
    #[arg(long, value_name = "TEXT")]
    pub(crate) grep: Option<String>,
    /// After the stored entries, keep printing new ones as they come (needs the daemon).
    #[arg(short, long, conflicts_with = "export")]
    pub(crate) follow: bool,
    /// Write the matching entries to a file in app/logs/exports/ (0600) and print its path
    /// (with --json: JSON lines).
    #[arg(long)]
    pub(crate) export: bool,
}

/// A log level as `--level` takes it.
fn parse_level(text: &str) -> Result<LogLevel, String> {
    serde_json::from_value(serde_json::Value::String(text.to_lowercase()))
        .map_err(|_| format!("`{text}` is not a level: use debug, info, warn or error"))
}

impl LogsArgs {
    fn filter(&self, json: bool) -> LogFilter {
        LogFilter {
            service: match self.services.len() {
                0 => None,
                1 => Some(OneOrMany::One(self.services[0].clone())),
                _ => Some(OneOrMany::Many(self.services.clone())),
            },
            level: self.level,
            limit: self.lines,
            since: self.since.clone(),
            until: self.until.clone(),
            contains: self.grep.clone(),
            before: None,
            format: (self.export && json).then_some(ExportFormat::Jsonl),
        }
    }
}

/// `kojibox logs`.
pub(crate) fn logs(home: &Home, args: &LogsArgs, json: bool) -> Result<ExitCode> {
    let filter = args.filter(json);
    let client = match Client::connect(home) {
        Ok(client) => Some(client),
        Err(ClientError::NoDaemon { .. }) if !args.follow => None,
        Err(e) => return Err(e.into()),
    };
    if args.export {
        let path = match &client {
            Some(client) => client.call::<methods::LogsExport>(&filter)?,
            None => launcher::logs::export(home, &filter, &[])?.path,
        };
        if json {
            println!("{}", serde_json::to_string(&path)?);
        } else {
            println!("{}", home.join(&path).display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let print = |entry: &LogEntry| {
        if json {
            println!("{}", serde_json::to_string(entry).unwrap_or_default());
        } else {
            println!("{}", text_line(entry));
        }
    };
    let Some(client) = client else {
        let page = launcher::logs::query(home, &filter, &[])?;
        page.hits.iter().for_each(|hit| print(&hit.entry));
        if page.skipped > 0 {
            eprintln!(
                "note: {} line(s) of app/logs/ are not log entries and were skipped",
                page.skipped
            );
        }
        if !json {
            eprintln!("(no daemon runs: read from {})", home.logs_dir().display());
        }
        return Ok(ExitCode::SUCCESS);
    };
    // Subscribed before the stored entries are read: nothing written in between is missed.
    let live = args.follow.then(|| client.subscribe(None)).transpose()?;
    let hits: Vec<LogHit> = client.call::<methods::LogsQuery>(&filter)?;
    hits.iter().for_each(|hit| print(&hit.entry));
    let Some(live) = live else {
        return Ok(ExitCode::SUCCESS);
    };
    let _ = std::io::stdout().flush();
    // Entries both stored and on the stream are printed once.
    let last = hits.last().map(|h| h.entry.ts.clone());
    let at_last: HashSet<(String, String)> = hits
        .iter()
        .filter(|h| Some(&h.entry.ts) == last.as_ref())
        .map(|h| (h.entry.service.clone(), h.entry.message.clone()))
        .collect();
    let contains = args.grep.as_ref().map(|g| g.to_lowercase());
    for envelope in live {
        let Event::ServiceLogLine(entry) = envelope?.event else {
            continue;
        };
        let wanted = (args.services.is_empty() || args.services.contains(&entry.service))
            && args.level.is_none_or(|l| entry.level >= l)
            && contains
                .as_ref()
                .is_none_or(|c| entry.message.to_lowercase().contains(c.as_str()));
        let seen = last.as_ref().is_some_and(|ts| {
            entry.ts < *ts
                || (entry.ts == *ts
                    && at_last.contains(&(entry.service.clone(), entry.message.clone())))
        });
        if wanted && !seen {
            print(&entry);
            let _ = std::io::stdout().flush();
        }
    }
    Ok(ExitCode::SUCCESS)
}
