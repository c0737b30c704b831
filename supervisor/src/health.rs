//! Health probes: `pid` (the process is alive), `port` (a TCP connect succeeds), `http` (a GET
//! answers 2xx or 3xx). Each probe is bounded by the check's `timeoutMs`.

use std::time::Duration;

use kojibox_manifests::model::{HealthCheck, HealthCheckType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Runs one probe; `Err` says why it failed.
pub async fn probe(check: &HealthCheck, alive: bool) -> Result<(), String> {
    let timeout = Duration::from_millis(check.timeout_ms.max(1));
    match check.kind {
        HealthCheckType::Pid => {
            if alive {
                Ok(())
            } else {
                Err("the process is not running".into())
            }
        }
        HealthCheckType::Port => {
            match tokio::time::timeout(timeout, TcpStream::connect(check.target.as_str())).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("connect to {}: {e}", check.target)),
                Err(_) => Err(format!(
                    "connect to {} timed out after {} ms",
                    check.target, check.timeout_ms
                )),
            }
        }
        HealthCheckType::Http => match tokio::time::timeout(timeout, http_get(&check.target)).await
        {
            Ok(Ok(status)) if (200..400).contains(&status) => Ok(()),
            Ok(Ok(status)) => Err(format!("GET {} answered {status}", check.target)),
            Ok(Err(e)) => Err(format!("GET {}: {e}", check.target)),
            Err(_) => Err(format!(
                "GET {} timed out after {} ms",
                check.target, check.timeout_ms
            )),
        },
    }
}

/// A minimal HTTP/1.1 GET over plain TCP (health targets are local); returns the status code.
async fn http_get(url: &str) -> Result<u16, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// health URLs are supported")?;
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let address = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let mut stream = TcpStream::connect(&address)
        .await
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: kojibox-health\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut head = [0u8; 64];
    let mut filled = 0;
    while filled < 12 {
        let n = stream
            .read(&mut head[filled..])
            .await
            .map_err(|e| e.to_string())?;
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
            format!(
                "not an HTTP answer: {:?}",
                line.lines().next().unwrap_or("")
            )
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
        assert!(err.contains("answered 503"), "{err}");
        server.await.unwrap();
        // The listener is gone now: the port is closed.
        let err = probe(
            &check(HealthCheckType::Port, format!("127.0.0.1:{port}")),
            true,
        )
        .await
        .unwrap_err();
        assert!(err.contains("connect to"), "{err}");
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
