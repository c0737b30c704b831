//! `POST /rpc`: `{"method", "params"}` in, `{"result"}` or `{"error"}` out.
//!
//! Parsing failures answer 400 `VALIDATION_FAILED` (404 `METHOD_NOT_FOUND` for an unknown
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
use kojibox_manifests::event::{ConfigChanged, Event};
use serde_json::Value;

use kojibox_home::ToApi;
use kojibox_home::task::{blocking, detached};
use kojibox_runtime::update::Emit;

use super::guard::{MAX_BODY, envelope, refuse, too_large};
use super::state::AppState;
use crate::error::{Error, Result};
use crate::local::{self, json};

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
        Err(e @ RequestError::InvalidParams { method, .. }) => {
            // The method is known: its module refuses its params.
            let error = kojibox_manifests::ApiError::new(
                ErrorCode::ValidationFailed,
                source_of(method),
                "Invalid request",
                e.to_string(),
                kojibox_home::clock::now(),
            );
            return envelope(
                StatusCode::BAD_REQUEST,
                &kojibox_manifests::Response::<()>::Error(error),
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
            &kojibox_manifests::Response::<()>::Error(e.to_api(source, kojibox_home::clock::now())),
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

/// Says in the daemon's log that a read of the log store skipped lines that are not entries.
fn skipped(state: &AppState, skipped: u64) {
    if skipped > 0 {
        state.journal.note(
            kojibox_manifests::model::LogLevel::Warn,
            format!(
                "reading app/logs/ skipped {skipped} line(s) that are not log entries (a torn \
                 write or a hand edit)"
            ),
        );
    }
}

/// Restarts the daemon on the (replaced) executable once the answer is out.
fn restart_soon(state: &AppState) {
    let restart = state.restart.clone();
    state.tasks.spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        restart.cancel();
    });
}

/// Sends events (update progress) to the daemon's bus.
fn emitter(state: &AppState) -> Emit {
    let events = state.events.clone();
    Arc::new(move |event| {
        let _ = events.send(event);
    })
}

/// The app's update channel (`AppConfig.updateChannel`), read now.
async fn channel(home: &kojibox_home::Home) -> Result<kojibox_manifests::model::UpdateChannel> {
    let home = home.clone();
    blocking(move || Ok::<_, Error>(kojibox_config::get_app(&home)?.update_channel)).await
}

async fn dispatch(state: &Arc<AppState>, request: Request) -> Result<Value> {
    let sup = &state.supervisor;
    let home = state.home.clone();
    match request {
        Request::RuntimeGetManifest(_) => {
            json(blocking(move || kojibox_runtime::installed::get_manifest(&home)).await?)
        }
        Request::RuntimeEnsureService(p) => json(
            blocking(move || {
                kojibox_runtime::installed::ensure_service(&home, &p.name, &p.version)
            })
            .await?,
        ),
        Request::ServicesList(_) => json(sup.list()),
        Request::ServicesStart(p) => json(sup.start_service(&p.id).await?),
        Request::ServicesStop(p) => json(sup.stop_service(&p.id).await?),
        Request::ServicesRestart(p) => json(sup.restart_service(&p.id).await?),
        Request::ServicesLogs(p) => json(sup.logs(&p.id, p.tail)?),
        Request::ServicesHealth(p) => json(sup.health(&p.id)?),
        Request::ServicesDescribe(p) => json(sup.definition(&p.id)?),
        Request::ServicesUp(_) => {
            // A partial result, not a failure: every service's state, a refused one with why.
            let mut states = Vec::new();
            for (id, result) in sup.up().await {
                match result {
                    Ok(state) => states.push(state),
                    Err(kojibox_supervisor::Error::ShuttingDown) => {
                        return Err(kojibox_supervisor::Error::ShuttingDown.into());
                    }
                    Err(e) => {
                        let mut state = sup.state(&id)?;
                        state.last_error = Some(e.to_string());
                        states.push(state);
                    }
                }
            }
            json(states)
        }
        Request::InstallerStatus(_) => {
            json(blocking(move || kojibox_runtime::install::status(&home)).await?)
        }
        Request::InstallerStart(p) => {
            let h = home.clone();
            let report = blocking(move || {
                kojibox_runtime::installer::start(&h, p.path.as_deref(), &mut |_| {})
            })
            .await?;
            if report.changed {
                // At once, not at the next daemon start: new services are supervised, dropped
                // ones stopped, and every client hears of the new runtime.
                sup.reload().await?;
                let manifest =
                    blocking(move || kojibox_runtime::installed::get_manifest(&home)).await?;
                let _ = state.events.send(Event::RuntimeUpdated(manifest));
            }
            json(Ack::Ok)
        }
        request @ (Request::ConfigGetApp(_)
        | Request::ConfigSetApp(_)
        | Request::ConfigGetService(_)
        | Request::ConfigSetService(_)
        | Request::ConfigGetProject(_)
        | Request::ConfigSetProject(_)
        | Request::ConfigListProjects(_)
        | Request::ConfigRemoveProject(_)
        | Request::SecretsGet(_)
        | Request::SecretsSet(_)
        | Request::SecretsRemove(_)) => {
            let change = local::change(&request);
            let vault = Arc::clone(&state.vault);
            let value = blocking(move || local::dispatch(&home, &vault, request)).await?;
            if let Some((scope, id)) = change {
                let _ = state
                    .events
                    .send(Event::ConfigChanged(ConfigChanged { scope, id }));
            }
            Ok(value)
        }
        Request::UpdaterCheck(_) => {
            let channel = channel(&home).await?;
            json(
                kojibox_runtime::update::check_and_announce(&home, channel, &emitter(state))
                    .await?,
            )
        }
        Request::UpdaterApply(p) => {
            let channel = channel(&home).await?;
            // Its own task: a client that goes away does not cut an update in half.
            let (sup, emit) = (Arc::clone(sup), emitter(state));
            let stopping = Arc::clone(&state.stopping);
            let applied = detached(&state.tasks, async move {
                kojibox_runtime::update::apply_until(
                    &home, channel, &p.version, &*sup, &emit, stopping,
                )
                .await
            })
            .await?;
            if applied.self_updated {
                restart_soon(state);
            }
            json(Ack::Ok)
        }
        Request::UpdaterRollback(_) => {
            let (sup, emit) = (Arc::clone(sup), emitter(state));
            let rolled = detached(&state.tasks, async move {
                kojibox_runtime::update::rollback(&home, &*sup, &emit).await
            })
            .await?;
            if rolled.self_updated {
                restart_soon(state);
            }
            json(Ack::Ok)
        }
        Request::LogsQuery(filter) => {
            let known = sup.ids();
            let page = blocking(move || crate::logs::query(&home, &filter, &known)).await?;
            skipped(state, page.skipped);
            json(page.hits)
        }
        Request::LogsExport(filter) => {
            let known = sup.ids();
            let export = blocking(move || crate::logs::export(&home, &filter, &known)).await?;
            skipped(state, export.skipped);
            json(export.path)
        }
        Request::DiagnosticsCreate(_) => json(crate::diagnostics::create(state).await?),
        Request::MetricsSnapshot(_) => json(crate::metrics::snapshot(&state.metrics, sup)?),
        request @ (Request::DomainsList(_)
        | Request::DomainsUpsert(_)
        | Request::DomainsRemove(_)
        | Request::ProxyRules(_)
        | Request::ProxyApply(_)
        | Request::CertsGenerate(_)
        | Request::CertsTrust(_)) => Err(Error::Unavailable {
            detail: format!(
                "`{}` is part of the contract but not served by this build yet",
                request.method()
            ),
        }),
    }
}
