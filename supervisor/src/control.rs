//! What an actor can be asked ([`Control`]), and asking it ([`ask`]).

use kojibox_manifests::model::ServiceState;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};

/// What an actor can be asked.
pub(crate) enum Control {
    /// `services.start`.
    Start(oneshot::Sender<Result<ServiceState>>),
    /// `services.stop`.
    Stop(oneshot::Sender<ServiceState>),
    /// `services.restart`.
    Restart(oneshot::Sender<Result<ServiceState>>),
    /// Stop, wait until stopped, then end the actor.
    Shutdown(oneshot::Sender<()>),
    /// Could not start for a reason found outside the actor (a dependency refused to start):
    /// from stopped or error, go to `error` with this `lastError`.
    Fail(String, oneshot::Sender<ServiceState>),
}

/// Sends a control message and waits for the answer; an actor that is gone (the supervisor is
/// stopping) is [`Error::ShuttingDown`].
pub(crate) async fn ask<T>(
    tx: &mpsc::Sender<Control>,
    make: impl FnOnce(oneshot::Sender<T>) -> Control,
) -> Result<T> {
    let (reply, answer) = oneshot::channel();
    tx.send(make(reply))
        .await
        .map_err(|_| Error::ShuttingDown)?;
    answer.await.map_err(|_| Error::ShuttingDown)
}
