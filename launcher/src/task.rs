//! Async helpers shared by the API and the updater.

use crate::error::{Error, Result};

/// Runs a blocking library call (files, locks, hashing) off the async workers.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    joined(tokio::task::spawn_blocking(work).await)
}

/// Runs `work` as its own task and waits for it: dropping the caller (a client that went
/// away) does not cut it short.
pub async fn detached<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    joined(tokio::spawn(work).await)
}

fn joined<T>(outcome: std::result::Result<Result<T>, tokio::task::JoinError>) -> Result<T> {
    outcome.map_err(|e| Error::invalid("Internal failure", e.to_string()))?
}
