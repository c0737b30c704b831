//! The API: request envelope `{"method", "params"}`, typed params and results for every method of
//! the contract, and the response envelope `{"result"}` | `{"error"}`.
//!
//! One table, [`for_each_method!`](crate::for_each_method), lists every method with its wire name,
//! params type and result type. It generates the [`Request`] enum (one variant per method), the
//! marker types in [`methods`] (each implements [`Method`], so a client can write
//! `call::<methods::ServicesList>(Empty {})` and get a typed result), and [`METHODS`]. Other crates
//! can run the same table through a macro of their own (the launcher builds its dispatcher so), so
//! a method added here cannot be forgotten elsewhere.
//!
//! Parsing a request goes in two steps, so every failure says what is wrong: the envelope first
//! (malformed JSON, a missing `method`), then the params for that method, with the path of the
//! offending field (`ports.db`). Missing or `null` params mean `{}`.
//!
//! Documented additions to the contract: the methods `services.describe` (a service's
//! definition), `services.up` (start every enabled service), `config.removeProject` (`{id}`),
//! `secrets.remove` (`{key, scope}`) and `updater.rollback`; `services.logs` takes `tail` as optional (default chosen
//! by the server); `installer.start` takes an optional `path`; `logs.query`/`logs.export` filters
//! also accept `since`, `until` and `contains`.

use std::fmt;

use schemars::JsonSchema;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::ApiError;
use crate::model::{LogEntry, LogLevel, ProxyRule, SecretScope};

/// An API method: its wire name, params and result types.
pub trait Method {
    /// The wire name (`services.list`).
    const NAME: &'static str;
    /// What `params` holds.
    type Params: Serialize + DeserializeOwned + JsonSchema;
    /// What `result` holds.
    type Output: Serialize + DeserializeOwned + JsonSchema;
}

/// Calls `$callback!` with the table of every API method:
/// `(Variant, "wire.name", ParamsType, ResultType, "doc")`, comma-separated.
#[macro_export]
macro_rules! for_each_method {
    ($callback:ident) => {
        $callback! {
            (RuntimeGetManifest, "runtime.getManifest", $crate::api::Empty, $crate::model::RuntimeManifest, "The installed manifest."),
            (RuntimeEnsureService, "runtime.ensureService", $crate::api::EnsureServiceParams, $crate::model::ServiceBinary, "The host's payload of a service version, re-verified on disk."),
            (ServicesList, "services.list", $crate::api::Empty, ::std::vec::Vec<$crate::model::ServiceState>, "Every service's state."),
            (ServicesStart, "services.start", $crate::api::IdParams, $crate::model::ServiceState, "Starts a service; answers at once with `starting`."),
            (ServicesStop, "services.stop", $crate::api::IdParams, $crate::model::ServiceState, "Stops a service."),
            (ServicesRestart, "services.restart", $crate::api::IdParams, $crate::model::ServiceState, "Restarts a service."),
            (ServicesLogs, "services.logs", $crate::api::LogsParams, ::std::vec::Vec<$crate::model::LogEntry>, "The last lines of a service's log."),
            (ServicesHealth, "services.health", $crate::api::IdParams, $crate::model::HealthCheck, "A service's configured health check."),
            (ServicesDescribe, "services.describe", $crate::api::IdParams, $crate::model::ServiceDefinition, "Addition: the definition a service runs with (ports, args, env, health check, placeholders expanded)."),
            (ServicesUp, "services.up", $crate::api::Empty, ::std::vec::Vec<$crate::model::ServiceState>, "Addition: starts every enabled service, dependencies first; answers with every one's state, a service that could not start with its `lastError` (a partial result, not an error)."),
            (ConfigGetApp, "config.getApp", $crate::api::Empty, $crate::model::AppConfig, "The app settings."),
            (ConfigSetApp, "config.setApp", $crate::model::AppConfig, $crate::api::Ack, "Replaces the app settings."),
            (ConfigGetService, "config.getService", $crate::api::IdParams, $crate::model::ServiceConfig, "A service's settings."),
            (ConfigSetService, "config.setService", $crate::model::ServiceConfig, $crate::api::Ack, "Replaces a service's settings (its `id` names it)."),
            (ConfigGetProject, "config.getProject", $crate::api::IdParams, $crate::model::ProjectConfig, "A project."),
            (ConfigSetProject, "config.setProject", $crate::model::ProjectConfig, $crate::api::Ack, "Creates or replaces a project (its `id` names it)."),
            (ConfigListProjects, "config.listProjects", $crate::api::Empty, ::std::vec::Vec<$crate::model::ProjectConfig>, "Every project."),
            (ConfigRemoveProject, "config.removeProject", $crate::api::IdParams, $crate::api::Ack, "Addition: deletes a project's settings (not its folder) and announces `config:changed`; an unknown id is `NOT_FOUND`."),
            (SecretsGet, "secrets.get", $crate::model::SecretRef, ::std::string::String, "A secret's value."),
            (SecretsSet, "secrets.set", $crate::api::SecretSetParams, $crate::api::Ack, "Stores a secret."),
            (SecretsRemove, "secrets.remove", $crate::model::SecretRef, $crate::api::Ack, "Addition: deletes a secret from its scope; an unknown one is `NOT_FOUND`."),
            (DomainsList, "domains.list", $crate::api::Empty, ::std::vec::Vec<$crate::model::DomainMapping>, "Every domain mapping."),
            (DomainsUpsert, "domains.upsert", $crate::model::DomainMapping, $crate::api::Ack, "Adds or replaces a domain mapping."),
            (DomainsRemove, "domains.remove", $crate::api::DomainParams, $crate::api::Ack, "Removes a domain mapping."),
            (ProxyRules, "proxy.rules", $crate::api::Empty, ::std::vec::Vec<$crate::model::ProxyRule>, "The reverse proxy's rules."),
            (ProxyApply, "proxy.apply", $crate::api::ProxyApplyParams, $crate::api::Ack, "Replaces the reverse proxy's rules."),
            (CertsGenerate, "certs.generate", $crate::api::DomainParams, $crate::model::CertMeta, "Issues a local certificate for a domain."),
            (CertsTrust, "certs.trust", $crate::api::DomainParams, $crate::api::Ack, "Trusts the local CA for a domain's certificate."),
            (InstallerStatus, "installer.status", $crate::api::Empty, $crate::api::Progress, "The installer's phase and progress."),
            (InstallerStart, "installer.start", $crate::api::InstallerStartParams, $crate::api::Ack, "Installs a bundle. The daemon supervises the services it adds (stopped) and stops and drops those it no longer has before answering, then announces `runtime:updated`."),
            (UpdaterCheck, "updater.check", $crate::api::Empty, $crate::api::UpdateCheck, "Looks for an update on the configured channel."),
            (UpdaterApply, "updater.apply", $crate::api::VersionParams, $crate::api::Ack, "Applies an update; answers when it is done."),
            (UpdaterRollback, "updater.rollback", $crate::api::Empty, $crate::api::Ack, "Goes back to the version before the last update (an addition)."),
            (LogsQuery, "logs.query", $crate::api::LogFilter, ::std::vec::Vec<$crate::api::LogHit>, "Log entries matching a filter: the newest `limit` (default 100, at most 10 000), oldest first, several services merged by time. Addition: each entry has a `cursor`; `before` pages back from one."),
            (LogsExport, "logs.export", $crate::api::LogFilter, ::std::string::String, "Writes matching entries to a file under `app/logs/exports/` (0600; without `limit`, every match); answers its home-relative path. Addition: `format` `jsonl` writes JSON lines."),
            (DiagnosticsCreate, "diagnostics.create", $crate::api::Empty, $crate::model::DiagnosticsBundle, "Builds a diagnostics archive."),
            (MetricsSnapshot, "metrics.snapshot", $crate::api::Empty, $crate::model::MetricsSnapshot, "Current resource use."),
        }
    };
}

macro_rules! define_api {
    ($( ($variant:ident, $name:literal, $params:ty, $output:ty, $doc:literal) ),* $(,)?) => {
        /// Marker types, one per method, implementing [`Method`].
        pub mod methods {
            $(
                #[doc = concat!("`", $name, "`: ", $doc)]
                #[derive(Debug, Clone, Copy, PartialEq, Eq)]
                pub struct $variant;

                impl super::Method for $variant {
                    const NAME: &'static str = $name;
                    type Params = $params;
                    type Output = $output;
                }
            )*
        }

        /// Every method's wire name: the contract's, in its order, and the documented
        /// [`ADDITIONS`].
        pub const METHODS: &[&str] = &[$($name),*];

        /// A request: `{"method": "...", "params": {...}}`.
        #[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
        #[serde(tag = "method", content = "params")]
        pub enum Request {
            $(
                #[doc = concat!("`", $name, "`: ", $doc)]
                #[serde(rename = $name)]
                $variant($params),
            )*
        }

        impl Request {
            /// The method's wire name.
            pub fn method(&self) -> &'static str {
                match self {
                    $(Request::$variant(_) => $name,)*
                }
            }

            /// Builds a request from a method name and its params (`null` means `{}`).
            pub fn from_parts(
                method: &str,
                params: serde_json::Value,
            ) -> Result<Request, RequestError> {
                let params = match params {
                    serde_json::Value::Null => serde_json::Value::Object(Default::default()),
                    other => other,
                };
                let params = match method {
                    "config.setService" => split_form("config.setService", params)?,
                    "config.setProject" => split_form("config.setProject", params)?,
                    _ => params,
                };
                match method {
                    $($name => parse_params::<$params>($name, params).map(Request::$variant),)*
                    _ => Err(RequestError::UnknownMethod { method: method.to_owned() }),
                }
            }
        }
    };
}

for_each_method!(define_api);

/// Methods this implementation adds to the contract (documented in the README).
/// Additions to existing methods are documented where they are parsed (see `split_form`).
pub const ADDITIONS: &[&str] = &[
    "services.describe",
    "services.up",
    "config.removeProject",
    "secrets.remove",
    "updater.rollback",
];

impl Request {
    /// Parses a request body, naming what is wrong when it cannot; an object with a key twice
    /// is refused (see [`crate::strict`]).
    pub fn from_slice(body: &[u8]) -> Result<Request, RequestError> {
        let value =
            crate::strict::from_slice(body).map_err(|e| RequestError::Malformed(e.to_string()))?;
        Request::from_value(value)
    }

    /// Builds a request from a JSON value, which must be an object (serde would otherwise also
    /// take an array, matching fields by position).
    pub fn from_value(value: serde_json::Value) -> Result<Request, RequestError> {
        if !value.is_object() {
            return Err(RequestError::Malformed(
                "the body is not a JSON object".into(),
            ));
        }
        let raw: RawRequest =
            serde_json::from_value(value).map_err(|e| RequestError::Malformed(e.to_string()))?;
        Request::from_parts(&raw.method, raw.params)
    }
}

impl<'de> Deserialize<'de> for Request {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Request::from_value(value).map_err(D::Error::custom)
    }
}

/// The request envelope before its params are typed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    method: String,
    #[serde(default)]
    params: serde_json::Value,
}

/// `config.setService` and `config.setProject` take the object itself as params (the
/// contract's examples). Following their signatures (`setService(id, ServiceConfig)`), they
/// also take `{"id": ..., "config": {...}}` (a documented addition): the two ids must agree (an
/// absent body id takes the params'), and the body is then parsed as usual.
fn split_form(
    method: &'static str,
    params: serde_json::Value,
) -> Result<serde_json::Value, RequestError> {
    let serde_json::Value::Object(mut outer) = params else {
        return Ok(params);
    };
    let split = outer
        .get("config")
        .is_some_and(serde_json::Value::is_object)
        && outer.keys().all(|k| k == "id" || k == "config");
    if !split {
        return Ok(serde_json::Value::Object(outer));
    }
    let invalid = |message: String| RequestError::InvalidParams {
        method,
        field: Some("id".into()),
        message,
    };
    let Some(serde_json::Value::Object(mut body)) = outer.remove("config") else {
        return Ok(serde_json::Value::Object(outer));
    };
    match (outer.remove("id"), body.get("id")) {
        (Some(serde_json::Value::String(id)), Some(serde_json::Value::String(inner))) => {
            if &id != inner {
                return Err(invalid(format!(
                    "the params name `{id}` but the body's id is `{inner}`"
                )));
            }
        }
        (Some(serde_json::Value::String(id)), None) => {
            body.insert("id".into(), serde_json::Value::String(id));
        }
        (Some(other), _) => {
            return Err(invalid(format!("expected a string, found {other}")));
        }
        (None, _) => {}
    }
    Ok(serde_json::Value::Object(body))
}

fn parse_params<T: DeserializeOwned + JsonSchema>(
    method: &'static str,
    params: serde_json::Value,
) -> Result<T, RequestError> {
    let schema = || schemars::schema_for!(T).to_value();
    if !params.is_object() {
        // serde would take an array, matching fields by position, and speak of `struct T`.
        return Err(RequestError::InvalidParams {
            method,
            field: None,
            message: format!(
                "params must be an object: {}, not {}",
                shape(&schema(), &schema()),
                kind_of(&params)
            ),
        });
    }
    serde_path_to_error::deserialize(params).map_err(|e| {
        let path = e.path().to_string();
        let message = if method == "secrets.set" {
            // serde quotes the offending value, which may be the secret itself.
            "does not fit (details withheld: this request carries a secret)".to_owned()
        } else {
            in_words(&e.into_inner().to_string(), &schema())
        };
        RequestError::InvalidParams {
            method,
            field: if path == "." { None } else { Some(path) },
            message,
        }
    })
}

/// A serde message with its Rust type names (`expected struct ProxyRule`, `invalid type:
/// sequence`) put in the words of the wire: the expected object's fields and their types.
fn in_words(message: &str, root: &serde_json::Value) -> String {
    let mut out = String::new();
    let mut rest = message;
    while let Some(at) = rest.find("struct ") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "struct ".len()..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let name = &after[..end];
        let mut tail = &after[end..];
        // `with 1 element` counts the fields serde would match by position.
        if let Some(t) = tail.strip_prefix(" with ")
            && let Some(stop) = t.find(" element")
            && t[..stop].chars().all(|c| c.is_ascii_digit())
        {
            let t = &t[stop + " element".len()..];
            tail = t.strip_prefix('s').unwrap_or(t);
        }
        let schema = if root.get("title").and_then(serde_json::Value::as_str) == Some(name) {
            Some(root)
        } else {
            root.get("$defs").and_then(|d| d.get(name))
        };
        match schema {
            Some(schema) => out.push_str(&shape(schema, root)),
            None => out.push_str("an object"),
        }
        rest = tail;
    }
    out.push_str(rest);
    out.replace("invalid type: sequence", "invalid type: an array")
        .replace("invalid type: map", "invalid type: an object")
}

/// `an object {"id": string, "tail"?: integer}` for an object schema; a type word otherwise.
fn shape(schema: &serde_json::Value, root: &serde_json::Value) -> String {
    let Some(properties) = schema
        .get("properties")
        .and_then(serde_json::Value::as_object)
    else {
        return type_word(schema, root);
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(serde_json::Value::as_array)
        .map(|r| r.iter().filter_map(serde_json::Value::as_str).collect())
        .unwrap_or_default();
    let fields: Vec<String> = properties
        .iter()
        .map(|(name, field)| {
            let optional = if required.contains(&name.as_str()) {
                ""
            } else {
                "?"
            };
            format!("\"{name}\"{optional}: {}", type_word(field, root))
        })
        .collect();
    if fields.is_empty() {
        "an empty object {}".to_owned()
    } else {
        format!("an object {{{}}}", fields.join(", "))
    }
}

/// A field's type in a word: `string`, `integer`, `"stable" | "beta"`, `array of object`.
fn type_word(schema: &serde_json::Value, root: &serde_json::Value) -> String {
    if let Some(reference) = schema.get("$ref").and_then(serde_json::Value::as_str) {
        let name = reference.rsplit('/').next().unwrap_or_default();
        return match root.get("$defs").and_then(|d| d.get(name)) {
            Some(def) if def.get("properties").is_none() => type_word(def, root),
            _ => "object".to_owned(),
        };
    }
    let values: Vec<String> = schema
        .get("enum")
        .and_then(serde_json::Value::as_array)
        .map(|v| v.iter().map(ToString::to_string).collect())
        .or_else(|| {
            schema
                .get("oneOf")
                .and_then(serde_json::Value::as_array)
                .map(|v| {
                    v.iter()
                        .filter_map(|o| o.get("const").or_else(|| o.get("enum")?.get(0)))
                        .map(ToString::to_string)
                        .collect()
                })
        })
        .unwrap_or_default();
    if !values.is_empty() {
        return values.join(" | ");
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(serde_json::Value::String(t)) => vec![t.as_str()],
        Some(serde_json::Value::Array(ts)) => ts
            .iter()
            .filter_map(serde_json::Value::as_str)
            .filter(|t| *t != "null")
            .collect(),
        _ => vec![],
    };
    match types.first().copied() {
        Some("array") => match schema.get("items") {
            Some(items) => format!("array of {}", type_word(items, root)),
            None => "array".to_owned(),
        },
        Some(t) => t.to_owned(),
        None => "any value".to_owned(),
    }
}

/// `an array`, `a string`, ... for a JSON value.
fn kind_of(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Why a request could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The body is not a JSON object with a string `method`.
    #[error("malformed request: {0} (expected {{\"method\": \"...\", \"params\": {{...}}}})")]
    Malformed(String),
    /// No method of that name.
    #[error("unknown method `{method}`{}", suggest(method))]
    UnknownMethod {
        /// The name that was sent.
        method: String,
    },
    /// The params do not fit the method.
    #[error("invalid params for {method}: {}{message}", field.as_ref().map(|f| format!("field `{f}`: ")).unwrap_or_default())]
    InvalidParams {
        /// The method.
        method: &'static str,
        /// The offending field's path (`ports.db`), when one is to blame.
        field: Option<String>,
        /// What is wrong with it.
        message: String,
    },
}

/// " (did you mean `x`?)" when a known method is close to `method`.
fn suggest(method: &str) -> String {
    METHODS
        .iter()
        .map(|known| (edit_distance(method, known), known))
        .min()
        .filter(|(distance, _)| *distance <= 3)
        .map(|(_, known)| format!(" (did you mean `{known}`?)"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// A response: `{"result": ...}` or `{"error": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Response<T> {
    /// Success.
    Result(T),
    /// Failure.
    Error(ApiError),
}

impl<T> Response<T> {
    /// Converts to a `Result`.
    pub fn into_result(self) -> Result<T, ApiError> {
        match self {
            Response::Result(value) => Ok(value),
            Response::Error(error) => Err(error),
        }
    }
}

impl<T> From<Result<T, ApiError>> for Response<T> {
    fn from(result: Result<T, ApiError>) -> Self {
        match result {
            Ok(value) => Response::Result(value),
            Err(error) => Response::Error(error),
        }
    }
}

/// No params: `{}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// The result of a method the contract declares `void`: the string `"ok"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Ack {
    /// Done.
    #[default]
    #[serde(rename = "ok")]
    Ok,
}

/// Params naming an object by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdParams {
    /// The id.
    pub id: String,
}

/// Params of `runtime.ensureService`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnsureServiceParams {
    /// Service name.
    pub name: String,
    /// Service version.
    pub version: String,
}

/// Params of `services.logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsParams {
    /// Service id.
    pub id: String,
    /// How many of the newest lines (optional: an addition; the server picks a default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<u32>,
}

/// Params of `secrets.set`. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretSetParams {
    /// The secret's key.
    pub key: String,
    /// Its scope.
    pub scope: SecretScope,
    /// Its value.
    pub value: String,
}

impl fmt::Debug for SecretSetParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretSetParams")
            .field("key", &self.key)
            .field("scope", &self.scope)
            .field("value", &"<redacted>")
            .finish()
    }
}

/// Params naming a domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainParams {
    /// The domain (`my-app.test`).
    pub domain: String,
}

/// Params of `proxy.apply`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxyApplyParams {
    /// The complete new rule set.
    pub rules: Vec<ProxyRule>,
}

/// Params of `installer.start`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallerStartParams {
    /// The bundle to install (an addition); by default the settings' `installSource`, else the
    /// newest `*.kbx` beside the executable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Params naming a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionParams {
    /// The version (`1.1.0`).
    pub version: String,
}

/// A log filter, for `logs.query` and `logs.export`. Every field is optional; an unknown key is
/// refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogFilter {
    /// Only this service's entries (addition: or these services', as a list; `kojibox` is the
    /// daemon's own log). Absent: every service, merged by time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<OneOrMany>,
    /// Only entries at this level or above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<LogLevel>,
    /// At most this many of the newest entries (1 to 10 000; default 100 for `logs.query`,
    /// every match for `logs.export`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Addition: only entries at or after this time: RFC 3339 (`2025-01-01T00:00:00Z`) or a
    /// duration before now (`90s`, `15m`, `1h30m`, `2d`, `1w`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Addition: only entries before this time (same forms as `since`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Addition: only entries whose message contains this text (plain text, any case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    /// Addition: only entries older than the one this cursor (a `cursor` of an earlier answer)
    /// names: the next page back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// Addition, `logs.export` only: `text` (default; one readable line per entry) or `jsonl`
    /// (one `LogEntry` JSON per line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ExportFormat>,
}

/// One value or a list of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The values.
    pub fn values(&self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one.clone()],
            OneOrMany::Many(many) => many.clone(),
        }
    }
}

/// How `logs.export` writes entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// `2025-01-01T00:00:12.000Z INFO  postgres  ready`, one line per entry (`.log`).
    #[default]
    Text,
    /// One `LogEntry` as JSON per line (`.jsonl`).
    Jsonl,
}

/// An entry `logs.query` answers: a `LogEntry` and, as an addition, where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LogHit {
    /// The entry.
    #[serde(flatten)]
    pub entry: LogEntry,
    /// Addition: this entry's place in the store; pass it as `before` for the entries older
    /// than it. Opaque; stays valid while the entry is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// A phase and a 0–100 progress: `installer.status` and the `update:progress` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// The phase (`idle`, `verify`, `extract`, `finalize`, `done`, ...).
    pub phase: String,
    /// Percent done, 0 to 100.
    pub progress: u8,
}

/// The result of `updater.check`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateCheck {
    /// Whether a newer version is on the channel.
    pub available: bool,
    /// The channel's version (the installed one when nothing newer is available).
    pub version: String,
}
