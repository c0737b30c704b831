//! How a CLI finds the running daemon: `app/state/api.json` (`{"url", "pid"}`) and
//! `app/state/api-token` (the bearer token, mode 0600, new at each start). The daemon writes
//! them once it listens and removes them when it stops.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::layout::Home;

/// `app/state/api.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The daemon's pid.
    pub pid: u32,
}

/// A fresh random token (32 bytes, hex).
pub fn new_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::io("generate", "the API token")(std::io::Error::other(e)))?;
    Ok(hex::encode(bytes))
}

/// Writes `api-token` then `api.json`, each atomically. The token file is mode 0600 from its
/// creation (a temporary file is created 0600, then renamed): it is never readable by others.
pub fn write(home: &Home, endpoint: &Endpoint, token: &str) -> Result<()> {
    crate::fs::write_atomic(home, &home.token_file(), token.as_bytes())?;
    crate::fs::write_json(home, &home.endpoint_file(), endpoint)
}

/// Reads `api.json`, if there is one.
pub fn read(home: &Home) -> Result<Option<Endpoint>> {
    crate::fs::read_json(&home.endpoint_file())
}

/// Reads `api-token`, if there is one.
pub fn read_token(home: &Home) -> Option<String> {
    std::fs::read_to_string(home.token_file())
        .ok()
        .map(|t| t.trim().to_owned())
}

/// Removes `api.json` and `api-token` (the daemon is stopping).
pub fn remove(home: &Home) {
    let _ = std::fs::remove_file(home.endpoint_file());
    let _ = std::fs::remove_file(home.token_file());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_private_and_both_files_come_and_go() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path()).unwrap();
        let token = new_token().unwrap();
        assert_eq!(token.len(), 64);
        let endpoint = Endpoint {
            url: "http://127.0.0.1:1".into(),
            pid: 7,
        };
        write(&home, &endpoint, &token).unwrap();
        assert_eq!(read(&home).unwrap(), Some(endpoint));
        assert_eq!(read_token(&home).as_deref(), Some(token.as_str()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(home.token_file())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        remove(&home);
        assert_eq!(read(&home).unwrap(), None);
        assert_eq!(read_token(&home), None);
    }
}
