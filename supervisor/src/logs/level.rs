//! The level a service's line announces.

use kojibox_manifests::model::LogLevel;

/// The level a line announces: `ERROR`, `FATAL`, `PANIC`, `CRITICAL` -> error; `WARN`,
/// `WARNING` -> warn; `DEBUG`, `TRACE` -> debug; otherwise info. Only whole words near the start
/// count (`level=error`, `[WARN]`, PostgreSQL's `FATAL:`), so a message that merely mentions an
/// error later on stays info.
pub fn infer_level(line: &str) -> LogLevel {
    // The first 96 characters, read as bytes: a character that is not ASCII is a separator, as
    // each of its bytes is. Nothing is allocated: this runs for every line a service prints.
    let head = line
        .char_indices()
        .nth(96)
        .map_or(line, |(at, _)| &line[..at]);
    for word in head
        .as_bytes()
        .split(|b| !b.is_ascii_alphanumeric())
        .filter(|w| (3..=8).contains(&w.len()))
    {
        let is = |name: &str| word.eq_ignore_ascii_case(name.as_bytes());
        // The first level word wins: it is the line's own level, not something it mentions.
        if [
            "error", "err", "fatal", "panic", "critical", "crit", "emerg", "alert",
        ]
        .into_iter()
        .any(is)
        {
            return LogLevel::Error;
        }
        if is("warn") || is("warning") {
            return LogLevel::Warn;
        }
        if [
            "debug", "trace", "debug1", "debug2", "debug3", "debug4", "debug5",
        ]
        .into_iter()
        .any(is)
        {
            return LogLevel::Debug;
        }
    }
    LogLevel::Info
}
