//! `POST /rpc`: `{"method", "params"}` in, `{"result"}` or `{"error"}` out.
//!
//! Parsing failures answer 400 (`VALIDATION_FAILED`, or `METHOD_NOT_FOUND` for an unknown
//! method) with an envelope naming what is wrong. Once a request parsed, the answer is 200 with
//! either envelope: the envelope, not the HTTP status, says whether the call succeeded.
//! The dispatch below lists every method of the contract without a catch-all, so a method
//! added to the contract does not compile until it is decided how it is served.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use kojibox_manifests::api::{Ack, Request, RequestError};
use kojibox_manifests::error::{ErrorCode, ErrorSource};
use serde_json::Value;

use super::AppState;
use super::guard::{MAX_BODY, envelope, refuse, too_large};
use crate::error::{Error, Result};

/// The handler.
pub async fn rpc(State(state): State<Arc<AppState>>, body: Body) -> Response {
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return too_large();
    };
    let request = match Request::from_slice(&bytes) {
        Ok(request) => request,
        Err(e @ RequestError::UnknownMethod { .. }) => {
            return refuse(
                StatusCode::NOT_FOUND,
                ErrorCode::MethodNotFound,
                "Unknown method",
                e.to_string(),
            );
        }
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                ErrorCode::ValidationFailed,
                "Invalid request",
                e.to_string(),
            );
        }
    };
    let source = source_of(request.method());
    match dispatch(&state, request).await {
        Ok(result) => envelope(StatusCode::OK, &serde_json::json!({ "result": result })),
        Err(e) => envelope(
            StatusCode::OK,
            &kojibox_manifests::Response::<()>::Error(e.to_api(source, crate::clock::now())),
        ),
    }
}

/// The module a method belongs to, for `error.source`.
pub fn source_of(method: &str) -> ErrorSource {
    match method.split('.').next().unwrap_or("") {
        "runtime" => ErrorSource::Runtime,
        "services" => ErrorSource::Services,
        "config" => ErrorSource::Config,
        "secrets" => ErrorSource::Secrets,
        "domains" | "proxy" | "certs" => ErrorSource::Tooling,
        "installer" => ErrorSource::Installer,
        "updater" => ErrorSource::Updater,
        "logs" => ErrorSource::Logs,
        "diagnostics" => ErrorSource::Diagnostics,
        "metrics" => ErrorSource::Metrics,
        _ => ErrorSource::Api,
    }
}

fn json<T: serde::Serialize>(value: T) -> Result<Value> {
    serde_json::to_value(value)
        .map_err(|e| Error::invalid("Could not encode the result", e.to_string()))
}

/// Runs a blocking library call off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::invalid("Internal failure", e.to_string()))?
}

async fn dispatch(state: &Arc<AppState>, request: Request) -> Result<Value> {
    let sup = &state.supervisor;
    let home = state.home.clone();
    match request {
        Request::RuntimeGetManifest(_) => {
            json(blocking(move || crate::runtime::get_manifest(&home)).await?)
        }
        Request::RuntimeEnsureService(p) => json(
            blocking(move || crate::runtime::ensure_service(&home, &p.name, &p.version)).await?,
        ),
        Request::ServicesList(_) => json(sup.list()),
        Request::ServicesStart(p) => json(sup.start_service(&p.id).await?),
        Request::ServicesStop(p) => json(sup.stop_service(&p.id).await?),
        Request::ServicesRestart(p) => json(sup.restart_service(&p.id).await?),
        Request::ServicesLogs(p) => json(sup.logs(&p.id, p.tail)?),
        Request::ServicesHealth(p) => json(sup.health(&p.id)?),
        Request::ServicesDescribe(p) => json(sup.definition(&p.id)?),
        Request::ServicesUp(_) => {
            let mut states = Vec::new();
            for (_, result) in sup.up().await {
                states.push(result?);
            }
            json(states)
        }
        Request::InstallerStatus(_) => json(blocking(move || crate::install::status(&home)).await?),
        Request::InstallerStart(p) => {
            blocking(move || crate::installer::start(&home, p.path.as_deref(), &mut |_| {}))
                .await?;
            json(Ack::Ok)
        }
        request @ (Request::ConfigGetApp(_)
        | Request::ConfigSetApp(_)
        | Request::ConfigGetService(_)
        | Request::ConfigSetService(_)
        | Request::ConfigGetProject(_)
        | Request::ConfigSetProject(_)
        | Request::ConfigListProjects(_)
        | Request::SecretsGet(_)
        | Request::SecretsSet(_)
        | Request::DomainsList(_)
        | Request::DomainsUpsert(_)
        | Request::DomainsRemove(_)
        | Request::ProxyRules(_)
        | Request::ProxyApply(_)
        | Request::CertsGenerate(_)
        | Request::CertsTrust(_)
        | Request::UpdaterCheck(_)
        | Request::UpdaterApply(_)
        | Request::LogsQuery(_)
        | Request::LogsExport(_)
        | Request::DiagnosticsCreate(_)
        | Request::MetricsSnapshot(_)) => Err(Error::Unavailable {
            detail: format!(
                "`{}` is part of the contract but not served by this build yet",
                request.method()
            ),
        }),
    }
}
