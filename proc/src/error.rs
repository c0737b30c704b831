//! The crate's one error type: every variant names the program, user or path involved and says
//! what to do about it, so the supervisor can put it in `lastError` as is.

use std::path::PathBuf;

/// Why a spawn, a user lookup or a reachability check failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The program does not exist (or, for a script, its interpreter does not).
    #[error(
        "program {program} not found{searched}: is the runtime installed for this platform? \
         (for a script, also check the interpreter named on its #! line)",
        program = .program.display(),
        searched = match .path_var { Some(p) => format!(" in PATH={p}"), None => String::new() }
    )]
    ProgramNotFound {
        /// The program as asked for.
        program: PathBuf,
        /// The PATH searched, when the program was a bare name.
        path_var: Option<String>,
    },

    /// The program exists but cannot be executed at all.
    #[error("program {program} is not executable: {reason}", program = .program.display())]
    NotExecutable {
        /// The program.
        program: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// The program (or a folder on its way) cannot be read or executed by the user it runs as.
    #[error(
        "permission denied running {program} as {user}: {reason}",
        program = .program.display()
    )]
    PermissionDenied {
        /// The program.
        program: PathBuf,
        /// The user the service was to run as.
        user: String,
        /// What blocks and how to fix it.
        reason: String,
    },

    /// The working directory is missing or not a directory.
    #[error(
        "working directory {cwd} for {program} is unusable: {source}",
        cwd = .cwd.display(), program = .program.display()
    )]
    Cwd {
        /// The program.
        program: PathBuf,
        /// The working directory.
        cwd: PathBuf,
        /// Why it is unusable.
        source: std::io::Error,
    },

    /// Running a service as another user needs the daemon to run as root.
    #[error(
        "cannot run {program} as {user}: switching users requires running kojibox as root \
         (unset serviceUser, or start the daemon as root)",
        program = .program.display()
    )]
    NotRoot {
        /// The program.
        program: PathBuf,
        /// The user asked for.
        user: String,
    },

    /// `user` cannot reach `path` because the folder `blocking` is not searchable by it.
    #[error(
        "user {user} cannot reach {path}: folder {blocking} is not searchable (x) by it; \
         run `chmod o+x {blocking}` or choose a home elsewhere (e.g. under /srv or /opt)",
        path = .path.display(), blocking = .blocking.display()
    )]
    NotTraversable {
        /// The path that must be reachable.
        path: PathBuf,
        /// The user.
        user: String,
        /// The first folder on the way that the user cannot search.
        blocking: PathBuf,
    },

    /// No such user in the user database.
    #[error(
        "user {name} not found in {database}: create it (e.g. `useradd --system {name}`) \
         or set serviceUser to an existing user",
        database = .database.display()
    )]
    UnknownUser {
        /// The name looked up.
        name: String,
        /// Where it was looked up (`/etc/passwd`).
        database: PathBuf,
    },

    /// Every uid kojibox gives its services is taken.
    #[error(
        "every uid kojibox gives its services ({first}-{last}) is taken in {passwd} or {group} \
         or by a running process; remove homes that are no longer used, or set `serviceUser` in \
         app/config/settings.json to run every service as one existing user",
        passwd = .passwd.display(), group = .group.display()
    )]
    NoFreeServiceId {
        /// The range's first uid.
        first: u32,
        /// The range's last uid.
        last: u32,
        /// The user database.
        passwd: PathBuf,
        /// The group database.
        group: PathBuf,
    },

    /// A file could not be read or inspected.
    #[error("could not read {path}: {source}", path = .path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// Any other failure to start the program.
    #[error("could not start {program}: {source}", program = .program.display())]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// The spawner thread is gone (it panicked); no more children can be started.
    #[error("the process spawner thread has stopped; restart the daemon")]
    SpawnerGone,

    /// The operation has no implementation on this platform.
    #[error("{what} is unsupported on this platform")]
    Unsupported {
        /// What was asked for.
        what: &'static str,
    },
}

impl Error {
    /// True for errors caused by permissions or privileges (the contract's `PERMISSION_DENIED`).
    pub fn is_permission(&self) -> bool {
        matches!(
            self,
            Error::PermissionDenied { .. } | Error::NotRoot { .. } | Error::NotTraversable { .. }
        )
    }
}
