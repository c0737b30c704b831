//! Async helpers shared by the API and the updater.

use crate::error::{Error, Result};

/// Runs a blocking library call (files, locks, hashing) off the async workers.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::invalid("Internal failure", e.to_string()))?
}
