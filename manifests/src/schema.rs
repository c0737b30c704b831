//! JSON Schemas of every model, request, result and event, generated from the types.
//!
//! [`all`] lists each schema with the file it is committed as under `manifests/schema/`. A test
//! regenerates them and fails when the committed copies are stale, so UI authors in any language
//! can rely on the files; `KOJIBOX_UPDATE_SCHEMA=1 cargo test -p kojibox-manifests` rewrites them.

use schemars::{JsonSchema, schema_for};
use serde_json::Value;

use crate::api::{Method, Request, Response};
use crate::error::ApiError;
use crate::event::{ConfigChanged, Event, EventEnvelope, HealthEvent, UpdateAvailable};
use crate::model::*;
use crate::recipe::Recipe;

fn schema<T: JsonSchema>() -> Value {
    schema_for!(T).to_value()
}

macro_rules! method_schemas {
    ($( ($variant:ident, $name:literal, $params:ty, $output:ty, $doc:literal) ),* $(,)?) => {
        fn method_schemas(out: &mut Vec<(String, Value)>) {
            $(
                out.push((
                    format!("methods/{}.params.json", $name),
                    schema::<<crate::api::methods::$variant as Method>::Params>(),
                ));
                out.push((
                    format!("methods/{}.response.json", $name),
                    schema::<Response<<crate::api::methods::$variant as Method>::Output>>(),
                ));
            )*
        }
    };
}
crate::for_each_method!(method_schemas);

/// Every schema with its path relative to `manifests/schema/`, sorted by path.
pub fn all() -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = vec![
        (
            "models/RuntimeManifest.json".into(),
            schema::<RuntimeManifest>(),
        ),
        (
            "models/ServiceBinary.json".into(),
            schema::<ServiceBinary>(),
        ),
        ("models/PortDef.json".into(), schema::<PortDef>()),
        ("models/BundleMeta.json".into(), schema::<BundleMeta>()),
        (
            "models/ServiceDefinition.json".into(),
            schema::<ServiceDefinition>(),
        ),
        ("models/HealthCheck.json".into(), schema::<HealthCheck>()),
        (
            "models/RestartPolicy.json".into(),
            schema::<RestartPolicy>(),
        ),
        ("models/ServiceState.json".into(), schema::<ServiceState>()),
        ("models/LogEntry.json".into(), schema::<LogEntry>()),
        ("models/AppConfig.json".into(), schema::<AppConfig>()),
        (
            "models/ServiceConfig.json".into(),
            schema::<ServiceConfig>(),
        ),
        (
            "models/ProjectConfig.json".into(),
            schema::<ProjectConfig>(),
        ),
        ("models/PortRegistry.json".into(), schema::<PortRegistry>()),
        ("models/SecretRef.json".into(), schema::<SecretRef>()),
        (
            "models/DomainMapping.json".into(),
            schema::<DomainMapping>(),
        ),
        ("models/ProxyRule.json".into(), schema::<ProxyRule>()),
        ("models/CertMeta.json".into(), schema::<CertMeta>()),
        (
            "models/DiagnosticsBundle.json".into(),
            schema::<DiagnosticsBundle>(),
        ),
        (
            "models/MetricsSnapshot.json".into(),
            schema::<MetricsSnapshot>(),
        ),
        ("api/Request.json".into(), schema::<Request>()),
        ("api/ErrorResponse.json".into(), schema::<ErrorResponse>()),
        (
            "events/EventEnvelope.json".into(),
            schema::<EventEnvelope>(),
        ),
        (
            "events/service-stateChanged.json".into(),
            schema::<ServiceState>(),
        ),
        ("events/service-logLine.json".into(), schema::<LogEntry>()),
        ("events/service-health.json".into(), schema::<HealthEvent>()),
        (
            "events/config-changed.json".into(),
            schema::<ConfigChanged>(),
        ),
        (
            "events/runtime-updated.json".into(),
            schema::<RuntimeManifest>(),
        ),
        (
            "events/update-available.json".into(),
            schema::<UpdateAvailable>(),
        ),
        (
            "events/update-progress.json".into(),
            schema::<crate::api::Progress>(),
        ),
        ("recipe/Recipe.json".into(), schema::<Recipe>()),
        (
            "bundle/BundleIndex.json".into(),
            schema::<crate::bundle::BundleIndex>(),
        ),
    ];
    method_schemas(&mut out);
    debug_assert_eq!(Event::NAMES.len(), 7);
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// `{"error": {...}}` on its own, for the schema of failures.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct ErrorResponse {
    error: ApiError,
}
