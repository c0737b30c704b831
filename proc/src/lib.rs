//! Process hygiene for kojibox's supervisor: start services so that nothing is ever left behind.
//!
//! # Theory of operation
//!
//! - **Spawning** ([`Spawner`]). Every service is forked by one dedicated OS thread that lives as
//!   long as the daemon's `Spawner`. The child gets a clean environment, stdin from `/dev/null`,
//!   piped stdout/stderr and its own process group (pgid == pid), so one signal reaches it and all
//!   its descendants. When the daemon runs as root and a service user is given, std drops the
//!   supplementary groups, then the gid, then the uid; only then does our `pre_exec` step arm
//!   `PR_SET_PDEATHSIG(SIGKILL)` (a credential change would clear it) and check that the parent
//!   is still the daemon (if it died before the death signal was armed, nothing would fire).
//!   The death signal belongs to the forking *thread*, hence the dedicated thread.
//! - **The watchdog** ([`Watchdog`]). A small helper in its own group that the daemon tells each
//!   service group over a pipe; when the pipe closes without a word (the daemon died, even by
//!   SIGKILL), it kills every group it still knows, so a service's own children die too.
//! - **Stopping** ([`terminate_group`]). SIGTERM to the group, wait until none of its processes
//!   runs (zombies do not count: they hold nothing), SIGKILL after the grace period.
//! - **Containment** ([`Containment`], [`terminate_scope`]). A process group is not a boundary: a
//!   double fork plus `setsid` leaves it. Each service also gets a cgroup v2 leaf of its own
//!   (`cgroup.kill` on stop) where the daemon may create cgroups, else the daemon becomes child
//!   subreaper and finds a service's processes by the marker [`MARKER_VAR`] they inherit; the
//!   next daemon ends what an earlier one left, escaped processes included
//!   ([`Containment::reap_escaped`]). See `cgroup.rs` for placement and limits.
//! - **Leftovers** ([`record`], [`reap_leftovers`]). The daemon records each service's pid, pgid
//!   and start time; the next daemon ends those still running, recognising them by pid *and*
//!   start time so a reused pid is never touched. On Linux the death signal normally takes the
//!   leaders down with the daemon, so what is left is a leader whose death signal the kernel
//!   cleared (it exec'd a set-user-ID binary or one with file capabilities) and, reported but left
//!   alone, descendants that outlived their leader: the death signal reaches only the direct
//!   child, and once the leader is gone nothing proves the rest of its group is ours.
//! - **Ports** ([`check_tcp_port`]). Probe-bind `127.0.0.1:port` and read the kernel's listening
//!   sockets; the owner's pid comes from matching socket inodes in `/proc/*/fd`.
//! - **Users** ([`lookup_user`], [`check_traversable`], [`chown_tree`], [`own_service_user`]).
//!   `/etc/passwd` parsed directly; reachability judged from mode bits so the error can name the
//!   folder that blocks; under root, a user of its own for each service (uids [`SERVICE_IDS`]).
//!
//! # Platforms
//!
//! Linux is the target and is tested. macOS and the BSDs have code paths, untested so far: no death
//! signal (children outlive a crashed daemon, and [`reap_leftovers`], which cannot read start
//! times there, reports them as unverifiable without ending them), no port owner, and zombies
//! count as alive. On Windows, spawning, signalling and user switching return "unsupported on
//! this platform" errors; the design there is a job object with
//! `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`, not built yet.

mod cgroup;
mod error;
mod group;
mod leftovers;
pub mod limits;
mod ports;
#[cfg(target_os = "linux")]
mod procfs;
mod service_users;
mod spawn;
pub mod usage;
mod users;
pub mod watchdog;

pub use cgroup::{Containment, MARKER_VAR, Mechanism, NO_CGROUP_VAR, Scope, terminate_scope};
pub use error::Error;
pub use group::{Signal, Termination, is_alive, process_start_time, signal_group, terminate_group};
pub use leftovers::{Leftover, LeftoverOutcome, Record, forget, reap_leftovers, record};
pub use ports::{PortCheck, check_tcp_port, is_tcp_port_free, port_owner};
pub use service_users::{SERVICE_IDS, UserDatabase, own_service_user, own_service_user_in};
pub use spawn::{SpawnSpec, Spawned, Spawner};
pub use users::{
    PASSWD, User, check_traversable, chown_tree, current_is_root, lookup_user, lookup_user_in,
};
pub use watchdog::Watchdog;
