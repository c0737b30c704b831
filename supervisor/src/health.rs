//! Health probes: `pid` (the process is alive), `port` (a TCP connect succeeds), `http` (a GET
//! answers 2xx or 3xx). Each probe is bounded by the check's `timeoutMs`.
//!
//! A probe that cannot even be tried for a reason on kojibox's side (no descriptor left:
//! `EMFILE`, `ENFILE`; no memory or buffer; no local port) is a [`Failure::Local`]: the service's
//! health is then `unknown`, never counted against it, so exhausting the daemon's descriptors
//! cannot make it stop a healthy service.

use std::time::Duration;

use kojibox_manifests::model::{HealthCheck, HealthCheckType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why a probe did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The service did not answer as it should.
    Service(String),
    /// The probe could not be made, for a reason on this side (`EMFILE`…): says nothing about
    /// the service.
    Local(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Service(why) | Failure::Local(why) => f.write_str(why),
        }
    }
}

/// Whether an I/O error comes from this process or machine running short, not from the peer.
pub fn is_local(e: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        use rustix::io::Errno;
        let Some(code) = e.raw_os_error() else {
            return false;
        };
        [
            Errno::MFILE,
            Errno::NFILE,
            Errno::NOBUFS,
            Errno::NOMEM,
            Errno::ADDRNOTAVAIL,
        ]
        .iter()
        .any(|errno| errno.raw_os_error() == code)
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

/// Runs one probe; `Err` says why it failed and whose fault that is.
pub async fn probe(check: &HealthCheck, alive: bool) -> Result<(), Failure> {
    let local_or_service = |e: std::io::Error, what: String| {
        if is_local(&e) {
            Failure::Local(format!("{what}: {e} (on kojibox's side: health unknown)"))
        } else {
            Failure::Service(format!("{what}: {e}"))
        }
    };
    let timeout = Duration::from_millis(check.timeout_ms.max(1));
    match check.kind {
        HealthCheckType::Pid => {
            if alive {
                Ok(())
            } else {
                Err(Failure::Service("the process is not running".into()))
            }
        }
        HealthCheckType::Port => {
            match tokio::time::timeout(timeout, TcpStream::connect(check.target.as_str())).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(local_or_service(e, format!("connect to {}", check.target))),
                Err(_) => Err(Failure::Service(format!(
                    "connect to {} timed out after {} ms",
                    check.target, check.timeout_ms
                ))),
            }
        }
        HealthCheckType::Http => match tokio::time::timeout(timeout, http_get(&check.target)).await
        {
            Ok(Ok(status)) if (200..400).contains(&status) => Ok(()),
            Ok(Ok(status)) => Err(Failure::Service(format!(
                "GET {} answered {status}",
                check.target
            ))),
            Ok(Err(HttpError::Io(e))) => Err(local_or_service(e, format!("GET {}", check.target))),
            Ok(Err(HttpError::Other(why))) => {
                Err(Failure::Service(format!("GET {}: {why}", check.target)))
            }
            Err(_) => Err(Failure::Service(format!(
                "GET {} timed out after {} ms",
                check.target, check.timeout_ms
            ))),
        },
    }
}

enum HttpError {
    Io(std::io::Error),
    Other(String),
}

impl From<std::io::Error> for HttpError {
    fn from(e: std::io::Error) -> Self {
        HttpError::Io(e)
    }
}

/// A minimal HTTP/1.1 GET over plain TCP (health targets are local); returns the status code.
async fn http_get(url: &str) -> Result<u16, HttpError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| HttpError::Other("only http:// health URLs are supported".into()))?;
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let address = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let mut stream = TcpStream::connect(&address).await?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: kojibox-health\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = [0u8; 64];
    let mut filled = 0;
    while filled < 12 {
        let n = stream.read(&mut head[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    let line = String::from_utf8_lossy(&head[..filled]);
    line.strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            HttpError::Other(format!(
                "not an HTTP answer: {:?}",
                line.lines().next().unwrap_or("")
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    fn check(kind: HealthCheckType, target: String) -> HealthCheck {
        HealthCheck {
            kind,
            target,
            timeout_ms: 500,
            interval_ms: 100,
        }
    }

    #[tokio::test]
    async fn port_and_http_probes_against_real_listeners() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            for status in ["200 OK", "503 Service Unavailable"] {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await.unwrap();
                socket
                    .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
            }
        });
        let url = format!("http://127.0.0.1:{port}/health");
        assert_eq!(
            probe(&check(HealthCheckType::Http, url.clone()), true).await,
            Ok(())
        );
        let err = probe(&check(HealthCheckType::Http, url.clone()), true)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Failure::Service(why) if why.contains("answered 503")),
            "{err}"
        );
        server.await.unwrap();
        // The listener is gone now: the port is closed.
        let err = probe(
            &check(HealthCheckType::Port, format!("127.0.0.1:{port}")),
            true,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, Failure::Service(why) if why.contains("connect to")),
            "{err}"
        );
    }

    #[test]
    fn running_out_of_descriptors_is_a_local_failure_not_the_service() {
        use rustix::io::Errno;
        for local in [
            Errno::MFILE,
            Errno::NFILE,
            Errno::NOBUFS,
            Errno::ADDRNOTAVAIL,
        ] {
            let e = std::io::Error::from_raw_os_error(local.raw_os_error());
            assert!(is_local(&e), "{e}");
        }
        for service in [Errno::CONNREFUSED, Errno::CONNRESET, Errno::TIMEDOUT] {
            let e = std::io::Error::from_raw_os_error(service.raw_os_error());
            assert!(!is_local(&e), "{e}");
        }
        assert!(!is_local(&std::io::Error::other("no code")));
    }

    #[tokio::test]
    async fn pid_probe_follows_the_process() {
        assert!(
            probe(&check(HealthCheckType::Pid, String::new()), true)
                .await
                .is_ok()
        );
        assert!(
            probe(&check(HealthCheckType::Pid, String::new()), false)
                .await
                .is_err()
        );
    }
}
