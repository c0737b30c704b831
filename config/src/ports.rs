//! The port registry (`app/config/ports.json`, the contract's `PortRegistry`): which port each
//! service was given, and the range it may take one from.
//!
//! Keys: a service's first port (in its `defaultPorts` order) is registered under the service
//! id (`"postgres": 5432`, as in the contract's example); any further port under
//! `<id>.<port name>`. `ranges` uses the same keys; without one, a port's range is its default
//! and the 99 ports after it.
//!
//! A port is, in order: the one configured in `ServiceConfig.ports`, else the one the registry
//! already gave (ports are sticky: a busy port at start is a `PORT_CONFLICT`, never a silent
//! move), else, when first assigned, the default if it is free, else the next free port of the
//! range. "Free" means given to no other service and not held by any process. When the whole
//! range is taken the default is used without being recorded, so that starting the service
//! reports the conflict.
//!
//! Every read-modify-write runs under the `ports` lock, so concurrent writers (the daemon, a
//! CLI) never lose an assignment.

use std::collections::{BTreeMap, BTreeSet};

use kojibox_manifests::model::{PortDef, PortRange, PortRegistry};

use kojibox_home::Home;
use kojibox_home::fs::{read_config, write_json};
use kojibox_proc::PortCheck;

use crate::error::{Error, Result};

/// How many ports a default range spans (the default port and the ones after it).
pub const DEFAULT_RANGE_SPAN: u16 = 100;

/// The registry key of a service's `index`-th port named `name`.
pub fn key(id: &str, index: usize, name: &str) -> String {
    if index == 0 {
        id.to_owned()
    } else {
        format!("{id}.{name}")
    }
}

/// The service id a registry key belongs to.
pub fn owner(key: &str) -> &str {
    key.split_once('.').map_or(key, |(id, _)| id)
}

/// Reads the registry; none yet = empty; corrupt = an error naming it (a copy is kept aside);
/// a port that is not one (0, above 65535, not a whole number) or an inverted range is refused
/// (`VALIDATION_FAILED` naming the file, the entry and the fix), never used.
pub fn load(home: &Home) -> Result<PortRegistry> {
    let path = home.port_registry();
    let Some(value) = read_config::<serde_json::Value>(home, &path)? else {
        return Ok(PortRegistry::default());
    };
    check(&value).map_err(|why| {
        Error::invalid(
            "Invalid port registry",
            format!(
                "{}: {why}; fix or delete the entry (a port is 1 to 65535; a service without \
                 an entry is given its port again at its next start)",
                path.display()
            ),
        )
    })?;
    serde_json::from_value(value).map_err(|e| {
        Error::Home(kojibox_home::Error::Corrupt {
            path,
            detail: e.to_string(),
        })
    })
}

/// What is wrong with a registry's entries, the first found: `assigned.web: 0 is not a port`,
/// `ranges.web: from 5499 is above to 5400`.
fn check(value: &serde_json::Value) -> std::result::Result<(), String> {
    let port = |at: &str, v: &serde_json::Value| match v.as_u64() {
        Some(p @ 1..=65535) => Ok(p),
        _ => Err(format!("{at}: {v} is not a port")),
    };
    if let Some(assigned) = value.get("assigned").and_then(|v| v.as_object()) {
        for (key, v) in assigned {
            port(&format!("assigned.{key}"), v)?;
        }
    }
    if let Some(ranges) = value.get("ranges").and_then(|v| v.as_object()) {
        for (key, range) in ranges {
            let at = format!("ranges.{key}");
            let end = |name: &str| match range.get(name) {
                Some(v) => port(&format!("{at}.{name}"), v),
                None => Err(format!("{at}: `{name}` is missing")),
            };
            let (from, to) = (end("from")?, end("to")?);
            if from > to {
                return Err(format!(
                    "{at}: from {from} is above to {to} (an inverted range)"
                ));
            }
        }
    }
    Ok(())
}

/// Writes the registry atomically (callers hold the `ports` lock).
pub fn save(home: &Home, registry: &PortRegistry) -> Result<()> {
    Ok(write_json(home, &home.port_registry(), registry)?)
}

/// The range a registry key may take a port from.
pub fn range(registry: &PortRegistry, key: &str, default: u16) -> PortRange {
    registry.ranges.get(key).copied().unwrap_or(PortRange {
        from: default,
        to: default.saturating_add(DEFAULT_RANGE_SPAN - 1),
    })
}

/// One service asking for its ports.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    /// The service id.
    pub id: &'a str,
    /// Its ports with their defaults (the manifest's `defaultPorts`).
    pub defaults: &'a [PortDef],
    /// The user's `ServiceConfig.ports` (by port name).
    pub configured: &'a BTreeMap<String, u16>,
}

/// Gives every port of `services` (every installed service) its port (see the module
/// documentation), records first assignments and configured ports in the registry, forgets
/// entries of services or ports that are no longer installed, and returns each service's
/// ports. Callers hold the `ports` lock.
pub fn assign(home: &Home, services: &[Wanted<'_>]) -> Result<BTreeMap<String, Vec<PortDef>>> {
    let mut registry = load(home)?;
    let before = registry.clone();
    let keys: BTreeSet<String> = services
        .iter()
        .flat_map(|w| {
            w.defaults
                .iter()
                .enumerate()
                .map(|(index, def)| key(w.id, index, &def.name))
        })
        .collect();
    registry.assigned.retain(|k, _| keys.contains(k));
    let out = assign_in(&mut registry, services, kojibox_proc::is_tcp_port_free);
    if registry != before {
        save(home, &registry)?;
    }
    Ok(out)
}

/// [`assign`] on a registry in memory; `free` says whether no process holds a port.
pub fn assign_in(
    registry: &mut PortRegistry,
    services: &[Wanted<'_>],
    free: impl Fn(u16) -> bool,
) -> BTreeMap<String, Vec<PortDef>> {
    // Configured ports first: they are the user's word, and no other service may take them.
    for wanted in services {
        for (index, def) in wanted.defaults.iter().enumerate() {
            if let Some(&port) = wanted.configured.get(&def.name) {
                registry
                    .assigned
                    .insert(key(wanted.id, index, &def.name), port);
            }
        }
    }
    let mut out = BTreeMap::new();
    for wanted in services {
        let mut ports = Vec::new();
        for (index, def) in wanted.defaults.iter().enumerate() {
            let key = key(wanted.id, index, &def.name);
            let port = match registry.assigned.get(&key) {
                Some(&port) => port,
                None => {
                    let taken: BTreeSet<u16> = registry
                        .assigned
                        .iter()
                        .filter(|(k, _)| **k != key)
                        .map(|(_, p)| *p)
                        .collect();
                    let range = range(registry, &key, def.port);
                    let candidates = std::iter::once(def.port)
                        .chain((range.from..=range.to).filter(|p| *p != def.port));
                    match candidates
                        .into_iter()
                        .find(|p| *p != 0 && !taken.contains(p) && free(*p))
                    {
                        Some(port) => {
                            registry.assigned.insert(key, port);
                            port
                        }
                        None => def.port,
                    }
                }
            };
            ports.push(PortDef {
                port,
                ..def.clone()
            });
        }
        out.insert(wanted.id.to_owned(), ports);
    }
    out
}

/// `Some(detail)` when `check` found `id`'s port `name` busy: "`id` `name` port N is occupied
/// by process P" (or "by another process" when its owner cannot be found).
pub fn describe_busy(id: &str, name: &str, port: u16, check: PortCheck) -> Option<String> {
    match check {
        PortCheck::Free => None,
        PortCheck::Busy { owner: Some(pid) } => Some(format!(
            "{id} {name} port {port} is occupied by process {pid}"
        )),
        PortCheck::Busy { owner: None } => Some(format!(
            "{id} {name} port {port} is occupied by another process"
        )),
    }
}

/// The service (and registry key) another than `id` that holds `port` in the registry.
pub fn given_to_other<'r>(registry: &'r PortRegistry, id: &str, port: u16) -> Option<&'r str> {
    registry
        .assigned
        .iter()
        .find(|(k, p)| **p == port && owner(k) != id)
        .map(|(k, _)| k.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kojibox_manifests::model::Protocol;

    fn port(name: &str, port: u16) -> PortDef {
        PortDef {
            name: name.into(),
            port,
            protocol: Protocol::Tcp,
        }
    }

    #[test]
    fn default_then_next_free_in_range_and_then_sticky() {
        let none = BTreeMap::new();
        let pg = [port("db", 5432)];
        let web = [port("http", 8080), port("admin", 8081)];
        let mut registry = PortRegistry::default();
        registry.ranges.insert(
            "postgres".into(),
            PortRange {
                from: 5400,
                to: 5499,
            },
        );
        // 5432 is held by some process: postgres gets the first free port of its range.
        let out = assign_in(
            &mut registry,
            &[
                Wanted {
                    id: "postgres",
                    defaults: &pg,
                    configured: &none,
                },
                Wanted {
                    id: "web",
                    defaults: &web,
                    configured: &none,
                },
            ],
            |p| p != 5432,
        );
        assert_eq!(out["postgres"][0].port, 5400);
        assert_eq!(out["web"][0].port, 8080);
        assert_eq!(out["web"][1].port, 8081);
        assert_eq!(registry.assigned["postgres"], 5400);
        assert_eq!(registry.assigned["web.admin"], 8081);

        // Sticky: once given, a port stays even if it is busy now.
        let out = assign_in(
            &mut registry,
            &[Wanted {
                id: "postgres",
                defaults: &pg,
                configured: &none,
            }],
            |_| false,
        );
        assert_eq!(out["postgres"][0].port, 5400);
    }

    #[test]
    fn another_services_port_is_never_given_and_configured_ports_win() {
        let none = BTreeMap::new();
        let mut registry = PortRegistry::default();
        registry.assigned.insert("mariadb".into(), 3306);
        let a = [port("db", 3306)];
        let out = assign_in(
            &mut registry,
            &[Wanted {
                id: "mysql",
                defaults: &a,
                configured: &none,
            }],
            |_| true,
        );
        assert_eq!(out["mysql"][0].port, 3307, "3306 belongs to mariadb");

        let configured = BTreeMap::from([("db".to_owned(), 4000)]);
        let out = assign_in(
            &mut registry,
            &[Wanted {
                id: "mysql",
                defaults: &a,
                configured: &configured,
            }],
            |_| true,
        );
        assert_eq!(out["mysql"][0].port, 4000);
        assert_eq!(registry.assigned["mysql"], 4000, "recorded");
        assert_eq!(given_to_other(&registry, "web", 4000), Some("mysql"));
        assert_eq!(given_to_other(&registry, "mysql", 4000), None);
    }

    #[test]
    fn a_full_range_falls_back_to_the_default_unrecorded() {
        let none = BTreeMap::new();
        let mut registry = PortRegistry::default();
        registry
            .ranges
            .insert("x".into(), PortRange { from: 10, to: 11 });
        let defs = [port("p", 10)];
        let out = assign_in(
            &mut registry,
            &[Wanted {
                id: "x",
                defaults: &defs,
                configured: &none,
            }],
            |_| false,
        );
        assert_eq!(out["x"][0].port, 10);
        assert!(registry.assigned.is_empty());
    }

    #[test]
    fn a_bad_registry_is_refused_naming_the_file_the_entry_and_the_fix() {
        use kojibox_home::ToApi;
        use kojibox_manifests::error::ErrorCode;
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path()).unwrap();
        std::fs::create_dir_all(home.port_registry().parent().unwrap()).unwrap();
        for (text, says) in [
            (
                r#"{"assigned": {"web": 0}, "ranges": {}}"#,
                "assigned.web: 0 is not a port",
            ),
            (
                r#"{"assigned": {"web": 70000}, "ranges": {}}"#,
                "assigned.web: 70000 is not a port",
            ),
            (
                r#"{"assigned": {}, "ranges": {"web": {"from": 0, "to": 10}}}"#,
                "ranges.web.from: 0 is not a port",
            ),
            (
                r#"{"assigned": {}, "ranges": {"web": {"from": 5499, "to": 5400}}}"#,
                "ranges.web: from 5499 is above to 5400 (an inverted range)",
            ),
        ] {
            std::fs::write(home.port_registry(), text).unwrap();
            let err = load(&home).unwrap_err();
            assert_eq!(err.code(), ErrorCode::ValidationFailed, "{text}: {err}");
            let detail = err.detail();
            assert!(
                detail.contains("ports.json: ")
                    && detail.contains(says)
                    && detail.contains("fix or delete the entry"),
                "{text}: {detail}"
            );
            // Never used: assigning refuses too, and writes nothing.
            assert!(assign(&home, &[]).is_err());
            assert_eq!(std::fs::read_to_string(home.port_registry()).unwrap(), text);
        }
        std::fs::write(
            home.port_registry(),
            r#"{"assigned": {"web": 8080}, "ranges": {"web": {"from": 8080, "to": 8080}}}"#,
        )
        .unwrap();
        assert_eq!(load(&home).unwrap().assigned["web"], 8080);
    }
}
