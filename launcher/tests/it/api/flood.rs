//! Taking the daemon down without the token, as a local attacker would try: hundreds of idle
//! and half-sent connections against a daemon under a low `ulimit -n`. The API keeps
//! answering the CLI, the services stay healthy (same pid, never restarted), and connections
//! that send no whole request are closed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use kojibox_manifests::model::ServiceStatus;

use super::{Api, WAIT};

/// The daemon's open-file limit in these tests (soft and hard): four times fewer than the
/// connections the attacker opens.
const LIMIT: u32 = 256;

/// Opens `n` connections; every other one sends half a request head and stops. They come from
/// 127.0.0.2, so their thousand ephemeral ports never collide with the ports other tests bind
/// on 127.0.0.1 meanwhile.
fn flood(port: u16, n: usize) -> Vec<TcpStream> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    (0..n)
        .filter_map(|i| {
            let socket = tokio::net::TcpSocket::new_v4().ok()?;
            socket.bind(([127, 0, 0, 2], 0).into()).ok()?;
            let stream = runtime.block_on(socket.connect(target)).ok()?;
            let mut stream = stream.into_std().ok()?;
            stream.set_nonblocking(false).ok()?;
            if i % 2 == 1 {
                let _ = stream.write_all(
                    format!("POST /rpc HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Slow: ").as_bytes(),
                );
            }
            Some(stream)
        })
        .collect()
}

/// `services.list` over a connection whose connect and reads are bounded by [`WAIT`] (a
/// daemon out of descriptors leaves a client in the listen backlog, never accepted).
fn bounded_list(api: &Api) -> serde_json::Value {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], api.port));
    let mut stream = TcpStream::connect_timeout(&address, WAIT).expect("connected in time");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut lines = vec!["POST /rpc HTTP/1.1".to_owned()];
    lines.extend(api.auth());
    stream
        .write_all(&super::request(
            &lines,
            br#"{"method": "services.list", "params": {}}"#,
        ))
        .unwrap();
    let reply = super::read_reply(stream);
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.json()["result"].clone()
}

/// Whether the server has closed `stream` (EOF or reset), waiting up to `limit`.
fn closed_by_server(stream: &mut TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut byte = [0u8; 256];
    loop {
        match stream.read(&mut byte) {
            Ok(0) => return true,
            Ok(_) => continue, // an error answer before the close
            Err(e) if matches!(e.kind(), std::io::ErrorKind::ConnectionReset) => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn a_thousand_idle_and_half_sent_connections_take_neither_the_api_nor_a_service_down() {
    let mut api = Api::home(&[]);
    // `ulimit -n` sets both limits: the daemon cannot raise it back.
    api.prelude = Some(format!("ulimit -n {LIMIT}"));
    api.serve(&["--up"]);
    let web = api.wait_for("web", ServiceStatus::Running);
    api.wait_for("worker", ServiceStatus::Running);

    let mut attack = flood(api.port, 1000);
    assert!(
        attack.len() > 900,
        "the attacker's connections: {}",
        attack.len()
    );

    // The CLI still gets in, repeatedly, while the attacker holds its sockets.
    for _ in 0..5 {
        let states = bounded_list(&api);
        assert_eq!(states.as_array().map(Vec::len), Some(2), "{states}");
        let out = api.env.kojibox(&["status"], None);
        assert!(out.status.success(), "{}", crate::support::text(&out));
        std::thread::sleep(Duration::from_millis(300));
    }
    // Meanwhile the port check of `web` ran about 30 times: still the same healthy process.
    let now = api.state("web");
    assert_eq!(
        (now.state, now.pid),
        (ServiceStatus::Running, web.pid),
        "{now:?}"
    );
    assert_eq!(now.last_error, None, "{now:?}");

    // The daemon closed the oldest unauthenticated connections to make room: at most a
    // quarter of its descriptors stay with the attacker.
    let kept = attack
        .iter_mut()
        .map(|s| closed_by_server(s, Duration::from_millis(20)))
        .filter(|closed| !closed)
        .count();
    assert!(
        kept <= (LIMIT / 4) as usize,
        "{kept} attacker connections still open"
    );
    drop(attack);
    let after = api.state("web");
    assert_eq!(after.pid, web.pid, "{after:?}");
}

#[test]
fn a_connection_that_never_finishes_its_request_head_is_closed() {
    let api = Api::boot(&[]);
    let mut idle = TcpStream::connect(("127.0.0.1", api.port)).unwrap();
    let mut slow = TcpStream::connect(("127.0.0.1", api.port)).unwrap();
    slow.write_all(format!("GET /events HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n", api.port).as_bytes())
        .unwrap();
    // Slowloris: a byte every second keeps no connection alive beyond the head timeout.
    let dripping = std::thread::spawn(move || {
        for _ in 0..30 {
            if slow.write_all(b"X").is_err() {
                return (true, slow);
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        (false, slow)
    });
    assert!(
        closed_by_server(&mut idle, Duration::from_secs(20)),
        "an idle connection stays open"
    );
    let (refused, mut slow) = dripping.join().unwrap();
    assert!(
        refused || closed_by_server(&mut slow, Duration::from_secs(1)),
        "a dripping request head stays open"
    );
    // A keep-alive connection that finished its request is closed once idle, too.
    let mut kept = TcpStream::connect(("127.0.0.1", api.port)).unwrap();
    let body = br#"{"method": "services.list", "params": {}}"#;
    write!(
        kept,
        "POST /rpc HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\n\r\n",
        api.port,
        api.token,
        body.len()
    )
    .unwrap();
    kept.write_all(body).unwrap();
    assert!(
        closed_by_server(&mut kept, Duration::from_secs(20)),
        "an idle keep-alive connection stays open"
    );
}
