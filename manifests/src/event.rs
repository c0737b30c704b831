//! The events a UI subscribes to (the contract's "Event Contract"; see `docs/api.md`).
//!
//! [`Event`] is the typed payload, tagged by the contract's event name. On the wire (SSE) each event
//! goes out as `event: <name>`, `id: <n>`, `data: <payload JSON>`; [`EventEnvelope`] is the same
//! thing as one JSON object, `{"id": n, "event": "<name>", "data": {...}}`, which is what
//! `kojibox events` prints, one per line.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::Progress;
use crate::model::{LogEntry, RuntimeManifest, ServiceState};

/// An event and its payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", content = "data")]
pub enum Event {
    /// A service changed state.
    #[serde(rename = "service:stateChanged")]
    ServiceStateChanged(ServiceState),
    /// A service printed a line.
    // Shared: the sink's tail and every subscriber hold the same entry (on the wire it is the
    // entry itself).
    #[serde(rename = "service:logLine")]
    ServiceLogLine(Arc<LogEntry>),
    /// A service's health check result changed.
    #[serde(rename = "service:health")]
    ServiceHealth(HealthEvent),
    /// Some configuration was written.
    #[serde(rename = "config:changed")]
    ConfigChanged(ConfigChanged),
    /// A new runtime manifest was switched in (`installer.start`, an update or a rollback, or a
    /// `kojibox install` the daemon noticed within 2 s); the services already follow it.
    #[serde(rename = "runtime:updated")]
    RuntimeUpdated(RuntimeManifest),
    /// `updater.check` found a newer version.
    #[serde(rename = "update:available")]
    UpdateAvailable(UpdateAvailable),
    /// An update moved to a new phase or progress.
    #[serde(rename = "update:progress")]
    UpdateProgress(Progress),
}

impl Event {
    /// Every event name, in the contract's order.
    pub const NAMES: [&'static str; 7] = [
        "service:stateChanged",
        "service:logLine",
        "service:health",
        "config:changed",
        "runtime:updated",
        "update:available",
        "update:progress",
    ];

    /// The contract's name of this event.
    pub fn name(&self) -> &'static str {
        match self {
            Event::ServiceStateChanged(_) => Self::NAMES[0],
            Event::ServiceLogLine(_) => Self::NAMES[1],
            Event::ServiceHealth(_) => Self::NAMES[2],
            Event::ConfigChanged(_) => Self::NAMES[3],
            Event::RuntimeUpdated(_) => Self::NAMES[4],
            Event::UpdateAvailable(_) => Self::NAMES[5],
            Event::UpdateProgress(_) => Self::NAMES[6],
        }
    }

    /// The payload alone, as it goes in an SSE `data:` line.
    pub fn data(&self) -> serde_json::Result<serde_json::Value> {
        match serde_json::to_value(self)? {
            serde_json::Value::Object(mut map) => Ok(map.remove("data").unwrap_or_default()),
            other => Ok(other),
        }
    }

    /// The payload alone as JSON text, serialized straight from the payload (the same text as
    /// [`Event::data`]'s, without the intermediate value: the hub does this once per event).
    pub fn data_json(&self) -> serde_json::Result<String> {
        match self {
            Event::ServiceStateChanged(d) => serde_json::to_string(d),
            Event::ServiceLogLine(d) => serde_json::to_string(d),
            Event::ServiceHealth(d) => serde_json::to_string(d),
            Event::ConfigChanged(d) => serde_json::to_string(d),
            Event::RuntimeUpdated(d) => serde_json::to_string(d),
            Event::UpdateAvailable(d) => serde_json::to_string(d),
            Event::UpdateProgress(d) => serde_json::to_string(d),
        }
    }

    /// Rebuilds an event from its name and payload (an SSE `event:` and `data:`).
    pub fn from_parts(name: &str, data: serde_json::Value) -> serde_json::Result<Event> {
        serde_json::from_value(serde_json::json!({ "event": name, "data": data }))
    }
}

/// An event with its stream id: `{"id": n, "event": "<name>", "data": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventEnvelope {
    /// Increasing id; a reconnecting client sends the last one it saw as `Last-Event-ID`.
    pub id: u64,
    /// The event.
    #[serde(flatten)]
    pub event: Event,
}

/// Payload of `service:health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthEvent {
    /// Service id.
    pub id: String,
    /// The check's verdict.
    pub status: HealthStatus,
}

/// Health verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// The check passes.
    Healthy,
    /// The check fails repeatedly.
    Unhealthy,
    /// Not checked yet, or the service is not running.
    Unknown,
}

/// Payload of `config:changed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigChanged {
    /// What kind of configuration changed.
    pub scope: ConfigScope,
    /// Which one: a service or project id, a domain; `app` for the app scope.
    pub id: String,
}

/// Configuration scopes named by `config:changed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConfigScope {
    /// `config.setApp`.
    App,
    /// `config.setService`.
    Service,
    /// `config.setProject`.
    Project,
    /// `domains.*`.
    Domains,
    /// `proxy.apply`.
    Proxy,
}

/// Payload of `update:available`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateAvailable {
    /// The version on offer.
    pub version: String,
}
