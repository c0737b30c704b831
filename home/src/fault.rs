//! Crash points for tests: `KOJIBOX_FAULT=<name>` makes the process abort at that point, as a
//! `kill -9` would stop it (no destructors, no cleanup). Unset, these cost one environment read.

/// Whether `name` is armed.
pub fn armed(name: &str) -> bool {
    std::env::var("KOJIBOX_FAULT").is_ok_and(|v| v == name)
}

/// Aborts the process now. (The one message a library prints: there is no caller left to
/// return it to.)
#[allow(clippy::print_stderr)]
pub fn fire(name: &str) -> ! {
    eprintln!("kojibox: fault point {name} reached (KOJIBOX_FAULT); aborting");
    std::process::abort()
}

/// Aborts here when `name` is armed.
pub fn point(name: &str) {
    if armed(name) {
        fire(name);
    }
}
