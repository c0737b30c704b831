//! `config.getService` and `config.setService`: `app/config/services/<id>.json`, validated against
//! the installed service and the port registry.
//!
//! Every write is atomic and durable (temporary file, fsync, rename, fsync of the folder) and
//! runs under a lock, so concurrent writers never tear or lose a file and a crash leaves the old
//! file or the new one. A corrupt file is an error naming it, with a copy kept aside; it is
//! never silently reset. Everything is validated before anything is written, and a refusal names
//! the field (`VALIDATION_FAILED`) or the port's holder (`PORT_CONFLICT`).
//!
//! Changes to a service's settings take effect at its next start or restart.

use std::collections::BTreeMap;

use kojibox_home::fs::{read_config, read_json, write_json};
use kojibox_home::{Home, LockName};
use kojibox_manifests::model::{RuntimeManifest, ServiceBinary, ServiceConfig};
use kojibox_manifests::recipe::ServiceTemplate;

use crate::error::{Error, Result};
use crate::validate::{check_id, invalid};

/// A service's stored settings, if any.
pub fn stored_service(home: &Home, id: &str) -> Result<Option<ServiceConfig>> {
    Ok(read_config(home, &home.service_config(id))?)
}

/// `config.getService`: the stored settings, or the defaults of an installed service.
pub fn get_service(home: &Home, id: &str) -> Result<ServiceConfig> {
    check_id("id", id)?;
    if let Some(config) = stored_service(home, id)? {
        return Ok(config);
    }
    installed(home, id)?;
    Ok(ServiceConfig {
        id: id.to_owned(),
        enabled: true,
        ports: BTreeMap::new(),
        env: BTreeMap::new(),
        args: Vec::new(),
    })
}

/// `config.setService`: validates (the service is installed, its ports exist and are free, its
/// env and args expand), then writes the settings and records its ports in the registry.
pub fn set_service(home: &Home, config: &ServiceConfig) -> Result<()> {
    let id = config.id.as_str();
    check_id("id", id)?;
    let (binary, template) = installed(home, id)?;
    for (name, &port) in &config.ports {
        if !binary.default_ports.iter().any(|p| &p.name == name) {
            let known: Vec<&str> = binary
                .default_ports
                .iter()
                .map(|p| p.name.as_str())
                .collect();
            return Err(invalid(
                &format!("ports.{name}"),
                format!(
                    "{id} has no port named `{name}` (its ports: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
        if port == 0 {
            return Err(invalid(
                &format!("ports.{name}"),
                "0 is not a port: use 1 to 65535",
            ));
        }
    }
    for (key, value) in &config.env {
        if key.is_empty() || key.contains(['=', '\0']) {
            return Err(invalid(
                &format!("env.{key}"),
                "a variable name must be non-empty, without `=` or NUL",
            ));
        }
        if value.contains('\0') {
            return Err(invalid(
                &format!("env.{key}"),
                "a value must not contain NUL",
            ));
        }
    }
    if let Some(at) = config.args.iter().position(|a| a.contains('\0')) {
        return Err(invalid(
            &format!("args[{at}]"),
            "an argument must not contain NUL",
        ));
    }
    // The same expansion the supervisor does (ports as configured): an unknown placeholder is
    // refused now rather than at the next start.
    crate::definition::define(home, &binary, &template, Some(config), None).map_err(
        |e| match e {
            Error::Invalid { detail, .. } => invalid("env/args", detail),
            other => other,
        },
    )?;

    let _lock = home.lock_wait(LockName::Ports)?;
    let mut registry = crate::ports::load(home)?;
    // A port no longer configured goes back to the registry: it is given again (default if
    // free, else the next free one) at the next start.
    let before = stored_service(home, id).ok().flatten();
    for (index, def) in binary.default_ports.iter().enumerate() {
        let unset = before
            .as_ref()
            .is_some_and(|b| b.ports.contains_key(&def.name))
            && !config.ports.contains_key(&def.name);
        if unset {
            registry
                .assigned
                .remove(&crate::ports::key(id, index, &def.name));
        }
    }
    // The service's ports as they will be (configured, else the registry's): no two may be the
    // same, whether both are in this request or one is already given.
    let mut taken: BTreeMap<u16, &str> = BTreeMap::new();
    for (index, def) in binary.default_ports.iter().enumerate() {
        let port = config.ports.get(&def.name).copied().or_else(|| {
            registry
                .assigned
                .get(&crate::ports::key(id, index, &def.name))
                .copied()
        });
        if let Some(port) = port
            && let Some(other) = taken.insert(port, &def.name)
        {
            let field = if config.ports.contains_key(&def.name) {
                &def.name
            } else {
                other
            };
            return Err(invalid(
                &format!("ports.{field}"),
                format!(
                    "port {port} would be both {id}'s `{other}` and `{}` port",
                    def.name
                ),
            ));
        }
    }
    for (index, def) in binary.default_ports.iter().enumerate() {
        let Some(&port) = config.ports.get(&def.name) else {
            continue;
        };
        if let Some(other) = crate::ports::given_to_other(&registry, id, port) {
            return Err(Error::PortConflict {
                detail: format!(
                    "{id} {} port {port} is already given to {}",
                    def.name,
                    crate::ports::owner(other)
                ),
            });
        }
        let key = crate::ports::key(id, index, &def.name);
        // A port the service already has may well be held by the service itself.
        if registry.assigned.get(&key) != Some(&port)
            && let Some(detail) =
                crate::ports::describe_busy(id, &def.name, port, kojibox_proc::check_tcp_port(port))
        {
            return Err(Error::PortConflict { detail });
        }
        registry.assigned.insert(key, port);
    }
    write_json(home, &home.service_config(id), config)?;
    crate::ports::save(home, &registry)
}

/// The installed service `id` (this machine's payload) and its template, or `NOT_FOUND`.
fn installed(home: &Home, id: &str) -> Result<(ServiceBinary, ServiceTemplate)> {
    let manifest: Option<RuntimeManifest> = read_json(&home.manifest())?;
    let services: Vec<ServiceBinary> = manifest
        .as_ref()
        .map(|m| {
            kojibox_runtime::installed::host_services(m)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let Some(binary) = services.iter().find(|s| s.name == id).cloned() else {
        return Err(not_installed(id, services.iter().map(|s| s.name.as_str())));
    };
    let template: ServiceTemplate = read_json(&home.service_template(id))?.unwrap_or_default();
    Ok((binary, template))
}

/// `NOT_FOUND`: "no service `x` is installed (installed: a, b)".
pub fn not_installed<'a>(id: &str, installed: impl Iterator<Item = &'a str>) -> Error {
    let names: Vec<&str> = installed.collect();
    Error::NotFound {
        detail: format!(
            "no service `{id}` is installed ({})",
            if names.is_empty() {
                "nothing is installed".to_owned()
            } else {
                format!("installed: {}", names.join(", "))
            }
        ),
    }
}
