//! Is a TCP port free for a service, and if not, which process holds it?
//!
//! The check does what the service will do: bind `127.0.0.1:port` (a socket that is bound, never
//! listening, so no client can connect to the probe). On Linux the probe sets `SO_REUSEADDR`, like
//! servers do, so connections lingering in TIME_WAIT do not count, and then the kernel's table of
//! listening sockets (`/proc/net/tcp` and `tcp6`, state `0A`) is read too, so a listener on any
//! address, `0.0.0.0`, `[::]` or an IPv6-only one, also makes the port busy. The owner is found by
//! matching the listening socket's inode against the `socket:[inode]` links in `/proc/*/fd`
//! (processes whose folder cannot be read, e.g. other users' when not root, are skipped).
//!
//! On other Unix systems the probe binds without `SO_REUSEADDR` (which there would let it share a
//! port with a wildcard listener) and the owner is unknown; on Windows `std` binds the probe.

use std::collections::HashSet;

/// The answer of [`check_tcp_port`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortCheck {
    /// A service can bind it.
    Free,
    /// Something holds it; `owner` is its pid when it could be found.
    Busy {
        /// The pid of the process listening on the port.
        owner: Option<u32>,
    },
}

/// Checks whether TCP `port` is free on loopback (see the module docs).
pub fn check_tcp_port(port: u16) -> PortCheck {
    let busy = probe_in_use(port) || !listening_inodes(port).is_empty();
    if busy {
        PortCheck::Busy {
            owner: port_owner(port),
        }
    } else {
        PortCheck::Free
    }
}

/// [`check_tcp_port`] without looking for the owner: cheap enough to scan a range of ports.
pub fn is_tcp_port_free(port: u16) -> bool {
    !probe_in_use(port) && listening_inodes(port).is_empty()
}

/// The pid of a process with a socket listening on TCP `port` (any address), if it can be found.
/// When several processes share the socket (a server and its forked workers), the lowest pid,
/// usually the parent, is returned. Linux only; `None` elsewhere.
pub fn port_owner(port: u16) -> Option<u32> {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return None;
    }
    #[cfg(target_os = "linux")]
    {
        crate::procfs::pids()
            .into_iter()
            .filter(|&pid| holds_any(pid, &inodes))
            .min()
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// Whether binding the probe to `127.0.0.1:port` fails because the address is in use.
#[cfg(unix)]
fn probe_in_use(port: u16) -> bool {
    use rustix::net::{AddressFamily, SocketType};
    let address = std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port);
    #[cfg(target_os = "linux")]
    let socket = rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    );
    #[cfg(not(target_os = "linux"))]
    let socket = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None);
    let Ok(socket) = socket else {
        return false;
    };
    #[cfg(target_os = "linux")]
    let _ = rustix::net::sockopt::set_socket_reuseaddr(&socket, true);
    rustix::net::bind(&socket, &address) == Err(rustix::io::Errno::ADDRINUSE)
}

#[cfg(not(unix))]
fn probe_in_use(port: u16) -> bool {
    std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port))
        .is_err_and(|e| e.kind() == std::io::ErrorKind::AddrInUse)
}

/// Inodes of the sockets listening on `port`, from `/proc/net/tcp` and `/proc/net/tcp6`.
fn listening_inodes(port: u16) -> HashSet<u64> {
    listening_sockets()
        .into_iter()
        .filter(|&(p, _)| p == port)
        .map(|(_, inode)| inode)
        .collect()
}

/// Every TCP socket in state LISTEN, as (port, inode), from one read of `/proc/net/tcp` and
/// `/proc/net/tcp6` (empty on other systems).
pub(crate) fn listening_sockets() -> Vec<(u16, u64)> {
    let mut sockets = Vec::new();
    if cfg!(target_os = "linux") {
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            if let Ok(text) = std::fs::read_to_string(table) {
                sockets.extend(text.lines().filter_map(listener));
            }
        }
    }
    sockets
}

/// The port and inode of a `/proc/net/tcp{,6}` line when it is a LISTEN socket.
fn listener(line: &str) -> Option<(u16, u64)> {
    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
    let fields: Vec<&str> = line.split_ascii_whitespace().collect();
    let local = fields.get(1)?;
    let local_port = u16::from_str_radix(&local[local.rfind(':')? + 1..], 16).ok()?;
    if *fields.get(3)? != "0A" {
        return None;
    }
    let inode = fields.get(9)?.parse().ok().filter(|&inode| inode != 0)?;
    Some((local_port, inode))
}

/// The inodes of the sockets among `pid`'s file descriptors (its `socket:[inode]` links); empty
/// when its `/proc/<pid>/fd` cannot be read (gone, or another user's when not root).
#[cfg(target_os = "linux")]
pub(crate) fn socket_inodes(pid: u32) -> impl Iterator<Item = u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .filter_map(|fd| {
            let target = std::fs::read_link(fd.ok()?.path()).ok()?;
            target
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse::<u64>()
                .ok()
        })
}

/// Whether one of `pid`'s file descriptors is one of the sockets `inodes`.
#[cfg(target_os = "linux")]
fn holds_any(pid: u32, inodes: &HashSet<u64>) -> bool {
    socket_inodes(pid).any(|inode| inodes.contains(&inode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_lines() {
        let v4 = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  \
                  1000        0 123456 1 0000000000000000 100 0 0 10 0";
        assert_eq!(listener(v4), Some((8080, 123456)));
        let established = v4.replace(" 0A ", " 01 ");
        assert_eq!(listener(&established), None);
        let unbound = v4.replace(" 123456 ", " 0 ");
        assert_eq!(listener(&unbound), None);
        let v6 = "   1: 00000000000000000000000000000000:1538 00000000000000000000000000000000:0000 \
                  0A 00000000:00000000 00:00000000 00000000   113        0 777 1 0 100 0 0 10 0";
        assert_eq!(listener(v6), Some((5432, 777)));
        assert_eq!(
            listener("  sl  local_address rem_address   st tx_queue"),
            None
        );
        assert_eq!(listener(""), None);
    }
}
