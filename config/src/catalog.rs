//! Loading what the supervisor runs: every installed service of this machine, its template and
//! settings read together under the port registry's lock, given its ports, and checked as a
//! whole (no dependency cycle, no unknown dependency).

use std::collections::BTreeMap;

use kojibox_home::fs::read_json;
use kojibox_home::{Home, LockName};
use kojibox_manifests::model::RuntimeManifest;
use kojibox_manifests::recipe::ServiceTemplate;

use crate::definition::Definition;
use crate::error::{Error, Result};

/// How [`gather`] treats what it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Every file must read; ports are assigned and recorded.
    Load,
    /// Every file must read; nothing is recorded (ports as the registry has them, else the
    /// defaults) and no port is probed.
    Check,
    /// Only one service's files must read (another service's broken file does not stop it);
    /// ports are assigned and recorded.
    One,
}

/// Loads every installed service for this machine, assigning ports in the registry. Nothing
/// installed = no services.
pub fn load(home: &Home) -> Result<Vec<Definition>> {
    let out = gather(home, Mode::Load, None)?;
    check_dependencies(&out)?;
    Ok(out)
}

/// Validates every installed service's definition (dependencies included) without recording
/// anything: no port is assigned for good.
pub fn check(home: &Home) -> Result<()> {
    check_dependencies(&gather(home, Mode::Check, None)?)
}

/// Loads one service's definition as it is now (for a start or restart): another service's
/// corrupt settings do not stop it.
pub fn load_one(home: &Home, id: &str) -> Result<Definition> {
    let mut out = gather(home, Mode::One, Some(id))?;
    let Some(at) = out.iter().position(|d| d.id() == id) else {
        return Err(Error::NotFound {
            detail: format!("{id} is no longer installed"),
        });
    };
    let def = out.swap_remove(at);
    let installed: Vec<String> = out.iter().map(|d| d.id().to_owned()).collect();
    if let Some(missing) = def
        .contract
        .depends_on
        .iter()
        .find(|dep| !installed.contains(dep))
    {
        return Err(Error::invalid(
            "Unknown dependency",
            format!("{id} depends on `{missing}`, which is not installed"),
        ));
    }
    Ok(def)
}

/// Reads the installed services, their templates and settings, and gives them their ports.
/// In `Mode::One`, only `only`'s definition is built strictly; the others are read leniently
/// (for their ports) and built when they can be.
fn gather(home: &Home, mode: Mode, only: Option<&str>) -> Result<Vec<Definition>> {
    let Some(manifest) = read_json::<RuntimeManifest>(&home.manifest())? else {
        return Ok(vec![]);
    };
    let strict = |name: &str| only.is_none_or(|id| id == name);
    // Settings are read under the registry's lock, so a concurrent config.setService is seen
    // whole (its file and its registry entry) or not at all.
    let _lock = home.lock_wait(LockName::Ports)?;
    let mut found = Vec::new();
    for binary in kojibox_runtime::installed::host_services(&manifest) {
        let template = read_json::<ServiceTemplate>(&home.service_template(&binary.name));
        let config = crate::service::stored_service(home, &binary.name);
        let (template, config) = if strict(&binary.name) {
            (template?.unwrap_or_default(), config?)
        } else {
            (
                template.ok().flatten().unwrap_or_default(),
                config.ok().flatten(),
            )
        };
        found.push((binary, template, config));
    }
    let none = BTreeMap::new();
    let wanted: Vec<crate::ports::Wanted<'_>> = found
        .iter()
        .map(|(binary, _, config)| crate::ports::Wanted {
            id: &binary.name,
            defaults: &binary.default_ports,
            configured: config.as_ref().map_or(&none, |c| &c.ports),
        })
        .collect();
    let ports = if mode == Mode::Check {
        let mut registry = crate::ports::load(home)?;
        crate::ports::assign_in(&mut registry, &wanted, |_| true)
    } else {
        crate::ports::assign(home, &wanted)?
    };
    let mut out = Vec::new();
    for (binary, template, config) in &found {
        let ports = ports.get(&binary.name).map(Vec::as_slice);
        match crate::definition::define(home, binary, template, config.as_ref(), ports) {
            Ok(def) => out.push(def),
            Err(e) if strict(&binary.name) => return Err(e),
            Err(_) => {}
        }
    }
    Ok(out)
}

fn check_dependencies(out: &[Definition]) -> Result<()> {
    let deps: BTreeMap<&str, &[String]> = out
        .iter()
        .map(|d| (d.id(), d.contract.depends_on.as_slice()))
        .collect();
    if let Some(cycle) = kojibox_manifests::recipe::dependency_cycle(&deps) {
        return Err(Error::invalid(
            "Dependency cycle",
            format!("dependsOn has a cycle: {}", cycle.join(" -> ")),
        ));
    }
    for d in out {
        if let Some(missing) = d
            .contract
            .depends_on
            .iter()
            .find(|dep| !deps.contains_key(dep.as_str()))
        {
            return Err(Error::invalid(
                "Unknown dependency",
                format!("{} depends on `{missing}`, which is not installed", d.id()),
            ));
        }
    }
    Ok(())
}

/// Orders definitions so that every service comes after its dependencies (cycles were refused
/// when they were loaded); otherwise keeps their order.
pub fn topological(mut pending: Vec<Definition>) -> Vec<Definition> {
    let mut out: Vec<Definition> = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .position(|d| {
                d.contract
                    .depends_on
                    .iter()
                    .all(|dep| out.iter().any(|o| o.id() == dep))
            })
            .unwrap_or(0);
        out.push(pending.remove(ready));
    }
    out
}
