//! Where and how the fetch layer works: the cache folder, the recipe folder, download options.

use std::path::PathBuf;
use std::time::Duration;

/// Where and how sources are fetched.
#[derive(Debug, Clone)]
pub struct FetchContext {
    /// Content-addressed cache root (created if missing).
    pub cache_dir: PathBuf,
    /// Base folder for relative `path` sources (the recipe's folder).
    pub recipe_dir: PathBuf,
    /// Timeouts, retries and size cap of downloads.
    pub http: HttpOptions,
    /// When set, passed to npm as `--registry` (tests use a loopback registry).
    pub npm_registry: Option<String>,
}

impl FetchContext {
    /// A context with default HTTP options and npm's configured registry.
    pub fn new(cache_dir: impl Into<PathBuf>, recipe_dir: impl Into<PathBuf>) -> Self {
        FetchContext {
            cache_dir: cache_dir.into(),
            recipe_dir: recipe_dir.into(),
            http: HttpOptions::default(),
            npm_registry: None,
        }
    }

    /// `$KOJIBOX_CACHE`, else `$XDG_CACHE_HOME/kojibox-bundle`, else `~/.cache/kojibox-bundle`
    /// (relative to the current folder when no home folder is known).
    pub fn default_cache_dir() -> PathBuf {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        if let Some(dir) = var("KOJIBOX_CACHE") {
            return PathBuf::from(dir);
        }
        // The XDG spec says to ignore a relative value.
        if let Some(dir) = var("XDG_CACHE_HOME").map(PathBuf::from)
            && dir.is_absolute()
        {
            return dir.join("kojibox-bundle");
        }
        std::env::home_dir()
            .unwrap_or_default()
            .join(".cache")
            .join("kojibox-bundle")
    }
}

/// How downloads behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpOptions {
    /// Time allowed to establish a connection.
    pub connect_timeout: Duration,
    /// Time allowed for the response headers and for each read of the body (a stall).
    pub read_timeout: Duration,
    /// Extra attempts after a connection error, a timeout, a dropped body or a 5xx. Attempts
    /// that received new bytes do not count, so a slow but progressing download completes.
    pub retries: u32,
    /// The first pause before a retry; it doubles after each failed attempt.
    pub backoff: Duration,
    /// Largest artifact accepted, in bytes.
    pub max_size: u64,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            retries: 4,
            backoff: Duration::from_millis(250),
            max_size: 4 << 30,
        }
    }
}
