//! The API's own accept loop: HTTP/1.1 over loopback TCP with bounded connections.
//!
//! # Theory of operation
//!
//! A local user without the token must not be able to take the daemon down by opening sockets.
//! So every connection is admitted into a [`Connections`] table of at most `cap` entries (see
//! [`cap_for`]: a quarter of the open-file limit, between 8 and 512, so the rest stays in reserve
//! for the supervisor's pipes, logs and probes). When the table is full, the oldest connection
//! that has not yet presented a valid credential is closed to make room; when every connection
//! is authenticated, the newcomer is closed instead. A connection becomes authenticated when the
//! guard accepts its token (it finds the [`Admitted`] mark in the request's extensions).
//!
//! hyper's header-read timeout ([`HEADER_TIMEOUT`]) closes a connection that does not send a
//! whole request head in time, half-sent ones (slowloris) and idle keep-alive ones alike: hyper
//! starts that timer whenever it waits for a head, including between requests. A request in
//! progress (an event stream, an update that takes minutes) is never cut.
//!
//! Accept errors for lack of descriptors (`EMFILE`, `ENFILE`) pause the loop briefly instead of
//! spinning; the kernel's backlog holds the waiting clients.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;

/// How long a client may take to send a whole request head, or stay idle between requests.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The most connections one listener keeps, whatever the open-file limit.
pub const MAX_CONNECTIONS: usize = 512;
/// The fewest, however low the limit.
pub const MIN_CONNECTIONS: usize = 8;
/// The largest request head accepted (start line and headers).
pub const MAX_HEAD: usize = 64 * 1024;

/// How many connections a listener keeps when the process may open `open_files` descriptors.
pub fn cap_for(open_files: u64) -> usize {
    usize::try_from(open_files / 4)
        .unwrap_or(MAX_CONNECTIONS)
        .clamp(MIN_CONNECTIONS, MAX_CONNECTIONS)
}

/// The mark a request carries: which connection it came on.
#[derive(Clone, Debug)]
pub struct Admitted {
    authenticated: Arc<AtomicBool>,
}

impl Admitted {
    /// Called by the guard once the request presented a valid credential: from now on the
    /// connection is among the last to be closed when the table is full.
    pub fn authenticate(&self) {
        self.authenticated.store(true, Ordering::Relaxed);
    }
}

/// One admitted connection, as the table sees it.
#[derive(Debug)]
struct Entry {
    authenticated: Arc<AtomicBool>,
    close: CancellationToken,
}

/// The connections of one listener, oldest first (ids increase).
#[derive(Debug)]
pub struct Connections {
    cap: usize,
    next: AtomicU64,
    open: Mutex<BTreeMap<u64, Entry>>,
}

/// A place in the table; leaving it (drop) frees the place.
#[derive(Debug)]
pub struct Ticket {
    id: u64,
    table: Arc<Connections>,
    mark: Admitted,
    close: CancellationToken,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.table.lock().remove(&self.id);
    }
}

impl Connections {
    /// A table of at most `cap` connections.
    pub fn new(cap: usize) -> Arc<Connections> {
        Arc::new(Connections {
            cap: cap.max(1),
            next: AtomicU64::new(0),
            open: Mutex::new(BTreeMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Entry>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many connections are open.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Admits a new connection, closing the oldest unauthenticated one when the table is full;
    /// `None` when every place is held by an authenticated connection.
    pub fn admit(self: &Arc<Self>) -> Option<Ticket> {
        let mut open = self.lock();
        if open.len() >= self.cap {
            let victim = open
                .iter()
                .find(|(_, e)| !e.authenticated.load(Ordering::Relaxed))
                .map(|(id, _)| *id)?;
            if let Some(entry) = open.remove(&victim) {
                entry.close.cancel();
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let authenticated = Arc::new(AtomicBool::new(false));
        let close = CancellationToken::new();
        open.insert(
            id,
            Entry {
                authenticated: Arc::clone(&authenticated),
                close: close.clone(),
            },
        );
        Some(Ticket {
            id,
            table: Arc::clone(self),
            mark: Admitted { authenticated },
            close,
        })
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled; then every connection finishes
/// the request it is serving and closes (the caller bounds how long it waits).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    table: Arc<Connections>,
    shutdown: CancellationToken,
) {
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, _peer) = match accepted {
            Ok(pair) => pair,
            Err(e) if out_of_descriptors(&e) => {
                // The backlog keeps the waiting clients; try again once a descriptor is free.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(_) => continue,
        };
        let Some(ticket) = table.admit() else {
            drop(stream);
            continue;
        };
        connections.spawn(connection(stream, router.clone(), ticket, shutdown.clone()));
    }
    connections.close();
    connections.wait().await;
}

/// Serves one connection until it ends, is closed to make room, or the daemon stops.
async fn connection(
    stream: TcpStream,
    router: Router,
    ticket: Ticket,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let mark = ticket.mark.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(mark.clone());
        let mut router = router.clone();
        async move { router.call(request).await }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = ticket.close.cancelled() => {}
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Whether an accept failed because this process or the system has no descriptor left.
pub fn out_of_descriptors(e: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(
            e.raw_os_error(),
            Some(code) if code == rustix::io::Errno::MFILE.raw_os_error()
                || code == rustix::io::Errno::NFILE.raw_os_error()
        )
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_follows_the_open_file_limit_within_bounds() {
        assert_eq!(cap_for(16), MIN_CONNECTIONS);
        assert_eq!(cap_for(256), 64);
        assert_eq!(cap_for(1024), 256);
        assert_eq!(cap_for(1 << 20), MAX_CONNECTIONS);
    }

    #[test]
    fn a_full_table_closes_the_oldest_unauthenticated_connection_first() {
        let table = Connections::new(3);
        let first = table.admit().unwrap();
        let second = table.admit().unwrap();
        let third = table.admit().unwrap();
        first.mark.authenticate();
        let fourth = table.admit().unwrap();
        assert!(!first.close.is_cancelled(), "authenticated: kept");
        assert!(
            second.close.is_cancelled(),
            "oldest unauthenticated: closed"
        );
        assert!(!third.close.is_cancelled());
        assert_eq!(table.len(), 3);
        third.mark.authenticate();
        fourth.mark.authenticate();
        assert!(
            table.admit().is_none(),
            "all authenticated: the newcomer is refused"
        );
        drop(first);
        assert_eq!(table.len(), 2);
        assert!(table.admit().is_some());
    }
}
