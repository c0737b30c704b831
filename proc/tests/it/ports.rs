//! Port checks against listeners this test opens on 127.0.0.1, 0.0.0.0 and [::].

use std::net::TcpListener;

use kojibox_proc::{PortCheck, check_tcp_port, port_owner};

#[test]
fn a_loopback_listener_is_busy_and_owned_by_this_process() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let me = Some(std::process::id());
    assert_eq!(check_tcp_port(port), PortCheck::Busy { owner: me });
    assert_eq!(port_owner(port), me);
}

#[test]
fn a_released_port_is_free() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    assert_eq!(check_tcp_port(port), PortCheck::Free);
    assert_eq!(port_owner(port), None);
}

#[test]
fn wildcard_listeners_are_busy() {
    let v4 = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = v4.local_addr().unwrap().port();
    assert_eq!(
        check_tcp_port(port),
        PortCheck::Busy {
            owner: Some(std::process::id())
        }
    );

    match TcpListener::bind("[::]:0") {
        Ok(v6) => {
            let port = v6.local_addr().unwrap().port();
            assert!(
                matches!(check_tcp_port(port), PortCheck::Busy { .. }),
                "[::]:{port}"
            );
        }
        Err(e) => eprintln!("skipping the [::] listener: no IPv6 here ({e})"),
    }
}
