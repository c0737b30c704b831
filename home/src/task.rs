//! Async helpers: run blocking library calls off the runtime's workers, and run work that must
//! not be cut short as a tracked task of its own.

use tokio_util::task::TaskTracker;

use crate::error::Error;

/// Runs a blocking library call (files, locks, hashing) off the async workers. A panic in it is
/// [`Error::Internal`], never a validation error.
pub async fn blocking<T, E>(work: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, E>
where
    T: Send + 'static,
    E: From<Error> + Send + 'static,
{
    joined(tokio::task::spawn_blocking(work).await)
}

/// Runs `work` as its own task on `tasks` and waits for it: dropping the caller (a client that
/// went away) does not cut it short, and whoever owns `tasks` waits for it before shutting down.
pub async fn detached<T, E>(
    tasks: &TaskTracker,
    work: impl std::future::Future<Output = Result<T, E>> + Send + 'static,
) -> Result<T, E>
where
    T: Send + 'static,
    E: From<Error> + Send + 'static,
{
    joined(tasks.spawn(work).await)
}

fn joined<T, E: From<Error>>(
    outcome: std::result::Result<Result<T, E>, tokio::task::JoinError>,
) -> Result<T, E> {
    outcome.map_err(|e| {
        E::from(Error::Internal {
            detail: format!("a background task failed: {e}"),
        })
    })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ToApi;
    use kojibox_manifests::error::ErrorCode;

    #[tokio::test]
    async fn a_panicking_task_is_an_internal_error() {
        let err = blocking::<(), Error>(|| panic!("boom")).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::Internal, "{err}");
        let tasks = TaskTracker::new();
        let err = detached::<(), Error>(&tasks, async { panic!("boom") })
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::Internal, "{err}");
        assert!(
            err.to_string().contains("a background task failed"),
            "{err}"
        );
    }
}
