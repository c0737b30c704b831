//! The level a service's line announces.

use kojibox_manifests::model::LogLevel;

/// The level a line announces: `ERROR`, `FATAL`, `PANIC`, `CRITICAL` -> error; `WARN`,
/// `WARNING` -> warn; `DEBUG`, `TRACE` -> debug; otherwise info. Only whole words near the start
/// count (`level=error`, `[WARN]`, PostgreSQL's `FATAL:`), so a message that merely mentions an
/// error later on stays info.
pub fn infer_level(line: &str) -> LogLevel {
    let head: String = line
        .chars()
        .take(96)
        .collect::<String>()
        .to_ascii_lowercase();
    let mut level = LogLevel::Info;
    for word in head
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let found = match word {
            "error" | "err" | "fatal" | "panic" | "critical" | "crit" | "emerg" | "alert" => {
                LogLevel::Error
            }
            "warn" | "warning" => LogLevel::Warn,
            "debug" | "trace" | "debug1" | "debug2" | "debug3" | "debug4" | "debug5" => {
                LogLevel::Debug
            }
            _ => continue,
        };
        // The first level word wins: it is the line's own level, not something it mentions.
        level = found;
        break;
    }
    level
}
