//! The shared data models of the contract ("Models" in `docs/api.md`; the user's
//! contract is committed verbatim as `manifests/tests/fixtures/contract.md`).
//!
//! Every type here serializes exactly as the contract shows: camelCase keys, the contract's enum
//! strings, and `null` for the nullable fields. Maps are `BTreeMap`s so that anything written from
//! them (the manifest inside a bundle, config files) has a stable order. Timestamps are RFC 3339
//! strings in UTC (`2025-01-01T00:00:00Z`), kept as strings so they round-trip byte for byte.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A string-to-string map, as the contract's `map<string,string>`.
pub type StringMap = BTreeMap<String, String>;

/// The table of contents of an installed bundle (`runtime/manifest.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeManifest {
    /// The bundle's version, compared by semver (e.g. `1.1.0`).
    pub version: String,
    /// One entry per service and target the bundle carries.
    pub services: Vec<ServiceBinary>,
    /// Where the bundle came from and its signature.
    pub bundle: BundleMeta,
}

/// One service's payload for one OS/arch target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceBinary {
    /// Service name, also its id (`postgres`).
    pub name: String,
    /// The service's own version (`16.2`).
    pub version: String,
    /// Target operating system: `linux`, `darwin` or `windows`.
    pub os: String,
    /// Target architecture: `x64` or `arm64`.
    pub arch: String,
    /// `sha256:<hex>` over the whole installed payload (see the bundle format).
    pub checksum: String,
    /// Total bytes of the payload's regular files.
    pub size: u64,
    /// The executable, relative to the home (`runtime/bin/<name>/<version>/<os>-<arch>/...`).
    pub bin_path: String,
    /// Ports the service listens on by default.
    pub default_ports: Vec<PortDef>,
    /// Default environment.
    pub env: StringMap,
    /// Default arguments.
    pub args: Vec<String>,
}

impl ServiceBinary {
    /// The target it is for: `<os>-<arch>` (`linux-x64`).
    pub fn target(&self) -> String {
        format!("{}-{}", self.os, self.arch)
    }

    /// How messages name it: `<name> <version> <os>-<arch>` (`postgres 16.14 linux-x64`).
    pub fn label(&self) -> String {
        format!("{} {} {}-{}", self.name, self.version, self.os, self.arch)
    }

    /// Its home-relative payload folder (`runtime/bin/<name>/<version>/<os>-<arch>`).
    pub fn payload_root(&self) -> String {
        payload_root(&self.name, &self.version, &self.os, &self.arch)
    }
}

/// The home-relative payload folder of a service target: `runtime/bin/<name>/<version>/<os>-<arch>`
/// (the bundle format's layout; [`crate::bundle`] re-exports it).
pub fn payload_root(name: &str, version: &str, os: &str, arch: &str) -> String {
    format!("runtime/bin/{name}/{version}/{os}-{arch}")
}

/// A named port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortDef {
    /// The port's name within its service (`db`, `http`).
    pub name: String,
    /// The port number.
    pub port: u16,
    /// Transport protocol.
    pub protocol: Protocol,
}

/// Transport protocol of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// Provenance and signature of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BundleMeta {
    /// When the bundle was built (RFC 3339, UTC).
    pub created_at: String,
    /// Who built it (`official`, a team name, ...).
    pub source: String,
    /// `ed25519:<keyid>:<base64>` over the bundle's signed content.
    pub signature: String,
}

/// A service as the supervisor runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceDefinition {
    /// Service id (the recipe's service name).
    pub id: String,
    /// Display name.
    pub name: String,
    /// The executable, relative to the home or absolute.
    pub binary: String,
    /// Arguments.
    pub args: Vec<String>,
    /// Environment added to the service's process.
    pub env: StringMap,
    /// Working directory, relative to the home.
    pub cwd: String,
    /// Ports the service listens on.
    pub ports: Vec<PortDef>,
    /// Ids of services that must be running before this one starts.
    pub depends_on: Vec<String>,
    /// How readiness and liveness are checked.
    pub health_check: HealthCheck,
    /// What happens when the service exits unexpectedly.
    pub restart_policy: RestartPolicy,
}

/// A readiness/liveness check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// The kind of check.
    #[serde(rename = "type")]
    pub kind: HealthCheckType,
    /// What is checked: empty for `pid`, `host:port` for `port`, a URL for `http`.
    pub target: String,
    /// How long one probe may take.
    pub timeout_ms: u64,
    /// Time between probes.
    pub interval_ms: u64,
}

/// The kinds of health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthCheckType {
    /// The process is alive.
    Pid,
    /// A TCP connect to `target` succeeds.
    Port,
    /// A GET of `target` answers 2xx or 3xx.
    Http,
}

/// Restart policy for unexpected exits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestartPolicy {
    /// Restarts allowed after the first failure, in a row (N + 1 spawns), before `error`.
    pub max_retries: u32,
    /// First backoff delay (at least 250 ms, whatever is given); doubles per consecutive failure
    /// up to 30 s.
    pub backoff_ms: u64,
}

/// The live state of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceState {
    /// Service id.
    pub id: String,
    /// Lifecycle state.
    pub state: ServiceStatus,
    /// The main process id while one exists.
    pub pid: Option<u32>,
    /// Why the service last failed, if it did.
    pub last_error: Option<String>,
    /// When `state` last changed (RFC 3339, UTC).
    pub last_updated: String,
    /// Addition: restarts after failures in a row, without a stable run between them (reset
    /// after 30 s of health, and by a manual start). Left out while 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub restarts: u32,
    /// Addition: the service keeps failing and being restarted (3 or more restarts in a row):
    /// a UI shows it as crash-looping rather than starting. Left out while false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub flapping: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The lifecycle states: `stopped → starting → running → stopping → stopped`, `error` on failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ServiceStatus {
    /// Not running.
    Stopped,
    /// Spawned (or waiting for dependencies); the health check has not passed yet.
    Starting,
    /// Healthy.
    Running,
    /// Being stopped.
    Stopping,
    /// Failed; see `lastError`.
    Error,
}

impl ServiceStatus {
    /// The wire name (`running`).
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceStatus::Stopped => "stopped",
            ServiceStatus::Starting => "starting",
            ServiceStatus::Running => "running",
            ServiceStatus::Stopping => "stopping",
            ServiceStatus::Error => "error",
        }
    }
}

/// One line of a service's output, or a launcher message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    /// When the line was read (RFC 3339, UTC).
    pub ts: String,
    /// Severity, inferred from the line.
    pub level: LogLevel,
    /// Service id.
    pub service: String,
    /// The line, without its trailing newline.
    pub message: String,
    /// Structured extras (`pid`, `stream`).
    pub fields: StringMap,
}

/// Log severities, in increasing order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
}

impl LogLevel {
    /// The wire name (`warn`).
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// Application-wide settings (`app/config/app.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppConfig {
    /// Where the home is.
    pub install_path: String,
    /// Which update channel to follow.
    pub update_channel: UpdateChannel,
    /// Whether the user allows telemetry (kojibox sends none today).
    pub telemetry_opt_in: bool,
}

/// Update channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UpdateChannel {
    /// Released versions.
    Stable,
    /// Pre-releases.
    Beta,
}

impl UpdateChannel {
    /// The wire name (`stable`), also the channel file's name in an update repository.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateChannel::Stable => "stable",
            UpdateChannel::Beta => "beta",
        }
    }
}

/// The user's settings for one service (`app/config/services/<id>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceConfig {
    /// Service id.
    pub id: String,
    /// Whether `up` starts it.
    pub enabled: bool,
    /// Port overrides by port name.
    pub ports: BTreeMap<String, u16>,
    /// Environment overrides.
    pub env: StringMap,
    /// Arguments; when non-empty they replace the defaults.
    pub args: Vec<String>,
}

/// A user project (`app/config/projects/<id>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectConfig {
    /// Project id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The project's folder (absolute).
    pub path: String,
    /// Its local domain (`my-app.test`).
    pub domain: String,
    /// Its stack: `php`, `node` or `static`.
    pub stack: String,
    /// Free-form overrides (`PHP_VERSION`).
    pub overrides: StringMap,
}

/// Which port each service was given, and the range it may take one from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortRegistry {
    /// Assigned port by service id.
    pub assigned: BTreeMap<String, u16>,
    /// Allowed range by service id.
    pub ranges: BTreeMap<String, PortRange>,
}

/// An inclusive port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortRange {
    /// First port of the range.
    pub from: u16,
    /// Last port of the range (inclusive).
    pub to: u16,
}

/// Names a secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// The secret's key (`db-password`).
    pub key: String,
    /// Its scope.
    pub scope: SecretScope,
}

/// Secret scopes, ordered as they are listed (app, project, service).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum SecretScope {
    /// Application-wide.
    App,
    /// One project's.
    Project,
    /// One service's.
    Service,
}

impl SecretScope {
    /// The wire name (`app`), also the scope's prefix in `${secret.<scope>.<key>}`.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretScope::App => "app",
            SecretScope::Project => "project",
            SecretScope::Service => "service",
        }
    }
}

/// A local domain routed to a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DomainMapping {
    /// The domain (`my-app.test`).
    pub domain: String,
    /// The project it belongs to.
    pub project_id: String,
    /// The local port it forwards to.
    pub target_port: u16,
}

/// A reverse-proxy rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProxyRule {
    /// The Host to match.
    pub host: String,
    /// The path prefix to match.
    pub path: String,
    /// Upstream URL.
    pub target: String,
    /// Whether the host is served over TLS with a local certificate.
    pub tls: bool,
}

/// A generated certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertMeta {
    /// The certificate's name (its domain).
    pub name: String,
    /// Its PEM file, relative to the home.
    pub path: String,
    /// When it expires (RFC 3339, UTC).
    pub expires_at: String,
}

/// A diagnostics archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiagnosticsBundle {
    /// The archive, relative to the home.
    pub path: String,
    /// When it was made (RFC 3339, UTC).
    pub created_at: String,
    /// What it holds (`logs`, `config`, `manifest`).
    pub includes: Vec<String>,
}

/// A point-in-time view of the launcher's resource use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSnapshot {
    /// When it was taken (RFC 3339, UTC).
    pub ts: String,
    /// Seconds since the daemon started.
    pub uptime_sec: u64,
    /// Ports held by supervised services, the proxy and the API, sorted, each once.
    pub ports_in_use: Vec<u16>,
    /// CPU use of the daemon and its services, in percent of the whole machine (all CPUs: a
    /// service busy on one core of four reads 25).
    pub cpu_percent: f64,
    /// Resident memory of the daemon and its services, in MiB.
    #[serde(rename = "memMB")]
    pub mem_mb: u64,
    /// Addition: the figures of each supervised service (a stopped one with no pid and zeros);
    /// with the daemon's own share they add up to the totals above. Left out when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceMetrics>,
}

/// Addition: one service's share of a `MetricsSnapshot`: its main process and descendants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMetrics {
    /// Service id.
    pub id: String,
    /// The main process id while one exists.
    pub pid: Option<u32>,
    /// CPU use of the service's processes, in percent of the whole machine.
    pub cpu_percent: f64,
    /// Resident memory of the service's processes, in MiB (rounded up).
    #[serde(rename = "memMB")]
    pub mem_mb: u64,
    /// TCP ports its processes listen on, sorted.
    pub ports: Vec<u16>,
}
