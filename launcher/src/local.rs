//! The methods that need no daemon: `config.*` and `secrets.*`. The API serves them through
//! [`dispatch`], and the CLI calls the same function on the home's files when no daemon runs, so
//! the two paths validate, lock and answer alike.

use kojibox_home::Home;
use kojibox_manifests::api::{Ack, Request};
use kojibox_manifests::event::ConfigScope;
use kojibox_secrets::{SecretValue, Vault};
use serde_json::Value;

use crate::error::{Error, Result};

/// The `config:changed` a successful `request` announces: its scope and id.
pub fn change(request: &Request) -> Option<(ConfigScope, String)> {
    match request {
        Request::ConfigSetApp(_) => Some((ConfigScope::App, "app".to_owned())),
        Request::ConfigSetService(config) => Some((ConfigScope::Service, config.id.clone())),
        Request::ConfigSetProject(project) => Some((ConfigScope::Project, project.id.clone())),
        Request::ConfigRemoveProject(p) => Some((ConfigScope::Project, p.id.clone())),
        _ => None,
    }
}

/// Serves a `config.*` or `secrets.*` request on `home` (blocking: files, locks, argon2id).
/// Any other method is [`Error::Unavailable`] here.
pub fn dispatch(home: &Home, vault: &Vault, request: Request) -> Result<Value> {
    match request {
        Request::ConfigGetApp(_) => json(kojibox_config::get_app(home)?),
        Request::ConfigSetApp(app) => {
            kojibox_config::set_app(home, &app)?;
            json(Ack::Ok)
        }
        Request::ConfigGetService(p) => json(kojibox_config::get_service(home, &p.id)?),
        Request::ConfigSetService(config) => {
            kojibox_config::set_service(home, &config)?;
            json(Ack::Ok)
        }
        Request::ConfigGetProject(p) => json(kojibox_config::get_project(home, &p.id)?),
        Request::ConfigSetProject(project) => {
            kojibox_config::set_project(home, &project)?;
            json(Ack::Ok)
        }
        Request::ConfigListProjects(_) => json(kojibox_config::list_projects(home)?),
        Request::ConfigRemoveProject(p) => {
            // Issue 14 wants a project a domain mapping uses refused, naming the domain; there
            // is no domain store yet (issue 17), so nothing can use a project and none is.
            kojibox_config::remove_project(home, &p.id)?;
            json(Ack::Ok)
        }
        Request::SecretsGet(r) => {
            kojibox_secrets::check_key(&r.key)?;
            let value = vault.store()?.get(r.scope, &r.key)?;
            Ok(Value::String(value.expose().to_owned()))
        }
        Request::SecretsSet(p) => {
            kojibox_secrets::check_key(&p.key)?;
            let value = SecretValue::new(p.value);
            vault.store()?.set(p.scope, &p.key, &value)?;
            json(Ack::Ok)
        }
        Request::SecretsRemove(r) => {
            kojibox_secrets::check_key(&r.key)?;
            if !vault.store()?.remove(r.scope, &r.key)? {
                return Err(kojibox_secrets::Error::NotFound {
                    detail: format!(
                        "no secret `{}` in scope `{}` to remove (a secret's scope is the one it \
                         was set with: app, project or service)",
                        r.key,
                        r.scope.as_str()
                    ),
                }
                .into());
            }
            json(Ack::Ok)
        }
        other => Err(Error::Unavailable {
            detail: format!("`{}` needs the daemon", other.method()),
        }),
    }
}

/// A result as JSON.
pub(crate) fn json<T: serde::Serialize>(value: T) -> Result<Value> {
    serde_json::to_value(value).map_err(|e| Error::Internal {
        detail: e.to_string(),
    })
}
