//! Telling how a process ended, and spreading restarts apart.

use std::time::Duration;

/// `exited with status 1`, `killed by signal 9 (SIGKILL)`.
pub(crate) fn describe(status: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            let name = match signal {
                9 => " (SIGKILL)",
                15 => " (SIGTERM)",
                6 => " (SIGABRT)",
                11 => " (SIGSEGV)",
                2 => " (SIGINT)",
                _ => "",
            };
            return format!("killed by signal {signal}{name}");
        }
    }
    match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => "exited".to_owned(),
    }
}

/// ±10% of `delay`, so services that failed together do not restart in lockstep.
pub(crate) fn jitter(delay: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let spread = delay / 10;
    let offset = spread.mul_f64(f64::from(nanos % 2000) / 1000.0);
    (delay - spread) + offset
}
