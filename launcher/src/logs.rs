//! `logs.query` and `logs.export`: the filter checked, the services it names known, then the
//! store read. The API serves them, and `kojibox logs` calls the same functions on the home's
//! files when no daemon runs, so stored logs can be read after a crash.

use kojibox_home::Home;
use kojibox_manifests::api::LogFilter;
use kojibox_supervisor::logs::{DAEMON_LOG, query, store};

use crate::error::Result;

/// The filter as a query, every service it names known: supervised (`known`), the daemon's own
/// log, or with a log in the store. An unknown one is `NOT_FOUND` naming those there are.
fn checked(
    home: &Home,
    filter: &LogFilter,
    known: &[String],
    export: bool,
) -> Result<query::Query> {
    let query = query::Query::parse(filter, jiff::Timestamp::now(), export)?;
    if let Some(ids) = &query.services {
        let stored = store::ids(home);
        for id in ids {
            if id != DAEMON_LOG && !known.contains(id) && !stored.contains(id) {
                let mut there: Vec<String> = known.iter().chain(&stored).cloned().collect();
                there.push(DAEMON_LOG.to_owned());
                there.sort();
                there.dedup();
                return Err(kojibox_supervisor::Error::NotFound {
                    detail: format!(
                        "no service `{id}` and no log of it in app/logs/ (logs: {})",
                        there.join(", ")
                    ),
                }
                .into());
            }
        }
    }
    Ok(query)
}

/// `logs.query` on `home` (blocking: reads files). `known`: the supervised services.
pub fn query(home: &Home, filter: &LogFilter, known: &[String]) -> Result<query::Page> {
    let q = checked(home, filter, known, false)?;
    Ok(query::query(home, &q)?)
}

/// `logs.export` on `home` (blocking: reads and writes files), dated today (UTC).
pub fn export(home: &Home, filter: &LogFilter, known: &[String]) -> Result<query::Export> {
    let q = checked(home, filter, known, true)?;
    let date = jiff::Timestamp::now().strftime("%Y-%m-%d").to_string();
    Ok(query::export(
        home,
        &q,
        filter.format.unwrap_or_default(),
        &date,
    )?)
}
