//! Process-wide limits the daemon and the CLI set for themselves at start.
//!
//! - [`raise_open_files`]: the soft `RLIMIT_NOFILE` is raised to the hard limit, so a burst of
//!   connections or services does not run into a low default (1,024 on many systems).
//! - [`forbid_core_dumps`]: `RLIMIT_CORE` 0 and `PR_SET_DUMPABLE` 0, so a crash never writes the
//!   secrets, the passphrase or the API token into a core file, and other processes of the same
//!   user can neither `ptrace` this one nor read its `/proc/<pid>/environ` or memory (the kernel
//!   makes those files root's).
//!
//! Both are inherited across `fork` (services get a clean slate: see `spawn`'s `pre_exec`, which
//! does not touch them, and the service's own exec resets dumpability).

/// Raises the soft open-file limit to the hard one; answers the soft limit now in force
/// (`u64::MAX` when unlimited, 0 when it cannot be read).
pub fn raise_open_files() -> u64 {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        if limit.current != limit.maximum {
            let raised = Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            };
            // macOS refuses more than OPEN_MAX for an unlimited hard limit; keep the old one then.
            let _ = setrlimit(Resource::Nofile, raised);
        }
        open_files()
    }
    #[cfg(not(unix))]
    {
        u64::MAX
    }
}

/// The soft open-file limit in force.
pub fn open_files() -> u64 {
    #[cfg(unix)]
    {
        rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX)
    }
    #[cfg(not(unix))]
    {
        u64::MAX
    }
}

/// Turns core dumps off (the soft `RLIMIT_CORE` 0; the hard limit is kept so a service can still
/// raise its own) and, on Linux, marks the process not dumpable.
pub fn forbid_core_dumps() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let hard = getrlimit(Resource::Core).maximum;
        setrlimit(
            Resource::Core,
            Rlimit {
                current: Some(0),
                maximum: hard,
            },
        )?;
        #[cfg(any(target_os = "linux", target_os = "android"))]
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)?;
    }
    Ok(())
}
