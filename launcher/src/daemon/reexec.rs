//! Restarting the daemon on a replaced executable (after a self-update): the same pid, the same
//! arguments; a passphrase goes over a pipe on standard input, never the environment.

use std::io::Write;
use std::path::Path;

use kojibox_secrets::SecretValue;

use crate::error::{Error, Result};

/// Replaces this process with `exe` and the same arguments (`--passphrase-stdin` added when a
/// passphrase is handed over). Returns only if that failed (on unix).
pub(crate) fn reexec(exe: &Path, passphrase: Option<&SecretValue>) -> Result<()> {
    let mut command = std::process::Command::new(exe);
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    command.args(&args);
    if let Some(passphrase) = passphrase {
        if !args.iter().any(|a| a == "--passphrase-stdin") {
            command.arg("--passphrase-stdin");
        }
        let (reader, mut writer) =
            std::io::pipe().map_err(Error::io("pass the passphrase to", exe))?;
        writeln!(writer, "{}", passphrase.expose())
            .map_err(Error::io("pass the passphrase to", exe))?;
        drop(writer);
        command.stdin(reader);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        Err(Error::io("restart as", exe)(command.exec()))
    }
    #[cfg(not(unix))]
    {
        // Untested: a new daemon in a new process; this one exits.
        command.spawn().map_err(Error::io("restart as", exe))?;
        Ok(())
    }
}
