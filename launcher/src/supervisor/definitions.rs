//! What the supervisor runs: one [`Definition`] per installed service, made from the installed
//! manifest (this machine's payload), the bundle's service template and the user's
//! `ServiceConfig` (`app/config/services/<id>.json`), with placeholders expanded.
//!
//! Placeholders (DESIGN.md): `${home}`, `${bin}` (the payload folder), `${data}`
//! (`runtime/data/<name>`) expand to absolute paths; `${port.<name>}` to the service's port of
//! that name. They expand in args, env, the health target and setup commands. An unknown
//! placeholder is an error naming it. The default working folder is the home, so relative paths
//! in args and env are relative to the home.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use kojibox_manifests::model::{PortDef, ServiceBinary, ServiceConfig, ServiceDefinition};
use kojibox_manifests::recipe::ServiceTemplate;

use crate::error::{Error, Result};
use crate::fsutil::read_json;
use crate::home::Home;

/// The default stop timeout (SIGTERM to SIGKILL).
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A service, ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    /// The contract's view (placeholders expanded; paths absolute).
    pub contract: ServiceDefinition,
    /// The executable (absolute).
    pub program: PathBuf,
    /// One-time setup commands (argv, expanded), run when the data folder is empty.
    pub setup: Vec<Vec<String>>,
    /// SIGTERM to SIGKILL.
    pub stop_timeout: Duration,
    /// `runtime/data/<name>` (absolute).
    pub data_dir: PathBuf,
    /// Whether `up` starts it.
    pub enabled: bool,
}

impl Definition {
    /// The service id.
    pub fn id(&self) -> &str {
        &self.contract.id
    }
}

/// Loads every installed service for this machine. Nothing installed = no services.
pub fn load(home: &Home) -> Result<Vec<Definition>> {
    let Some(manifest) = read_json::<kojibox_manifests::model::RuntimeManifest>(&home.manifest())?
    else {
        return Ok(vec![]);
    };
    let host = kojibox_kbx::paths::host_target();
    let mut out = Vec::new();
    for binary in manifest
        .services
        .iter()
        .filter(|s| host.as_deref() == Some(format!("{}-{}", s.os, s.arch).as_str()))
    {
        let template: ServiceTemplate =
            read_json(&home.services().join(format!("{}.json", binary.name)))?.unwrap_or_default();
        let config: Option<ServiceConfig> = read_json(
            &home
                .config()
                .join("services")
                .join(format!("{}.json", binary.name)),
        )?;
        out.push(define(home, binary, &template, config.as_ref())?);
    }
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
    for d in &out {
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
    Ok(out)
}

/// Builds one definition.
pub fn define(
    home: &Home,
    binary: &ServiceBinary,
    template: &ServiceTemplate,
    config: Option<&ServiceConfig>,
) -> Result<Definition> {
    let id = binary.name.clone();
    let bin = home.join(kojibox_kbx::paths::payload_root(
        &binary.name,
        &binary.version,
        &binary.os,
        &binary.arch,
    ));
    let data_dir = home.join("runtime/data").join(&id);
    let ports: Vec<PortDef> = binary
        .default_ports
        .iter()
        .map(|p| PortDef {
            port: config
                .and_then(|c| c.ports.get(&p.name).copied())
                .unwrap_or(p.port),
            ..p.clone()
        })
        .collect();
    let mut vars = BTreeMap::from([
        (
            "home".to_owned(),
            home.root().to_string_lossy().into_owned(),
        ),
        ("bin".to_owned(), bin.to_string_lossy().into_owned()),
        ("data".to_owned(), data_dir.to_string_lossy().into_owned()),
    ]);
    for p in &ports {
        vars.insert(format!("port.{}", p.name), p.port.to_string());
    }
    let expand = |value: &str, what: &str| {
        expand(value, &vars)
            .map_err(|e| Error::invalid("Invalid service definition", format!("{id} {what}: {e}")))
    };
    let args_source = match config {
        Some(c) if !c.args.is_empty() => &c.args,
        _ => &binary.args,
    };
    let args = args_source
        .iter()
        .map(|a| expand(a, "args"))
        .collect::<Result<Vec<_>>>()?;
    let mut env = binary.env.clone();
    if let Some(c) = config {
        env.extend(c.env.clone());
    }
    let env = env
        .into_iter()
        .map(|(k, v)| Ok((k, expand(&v, "env")?)))
        .collect::<Result<BTreeMap<_, _>>>()?;
    let mut health = template.health_check_or_default();
    health.target = expand(&health.target, "healthCheck.target")?;
    let setup = template
        .setup
        .iter()
        .map(|argv| {
            argv.iter()
                .map(|a| expand(a, "setup"))
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    let cwd = template
        .cwd
        .as_deref()
        .map_or_else(|| home.root().to_owned(), |c| home.join(c));
    let program = home.join(&binary.bin_path);
    Ok(Definition {
        contract: ServiceDefinition {
            id: id.clone(),
            name: template.display_name.clone().unwrap_or_else(|| id.clone()),
            binary: program.to_string_lossy().into_owned(),
            args,
            env,
            cwd: cwd.to_string_lossy().into_owned(),
            ports,
            depends_on: template.depends_on.clone(),
            health_check: health,
            restart_policy: template.restart_policy_or_default(),
        },
        program,
        setup,
        stop_timeout: template
            .stop_timeout_ms
            .map_or(DEFAULT_STOP_TIMEOUT, Duration::from_millis),
        data_dir,
        enabled: config.is_none_or(|c| c.enabled),
    })
}

/// Expands `${name}` placeholders; an unknown one is an error naming it. `$$` is a literal `$`.
pub fn expand(value: &str, vars: &BTreeMap<String, String>) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(body) = rest.strip_prefix("${") {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unclosed placeholder in `{value}`"))?;
            let name = &body[..end];
            match vars.get(name) {
                Some(v) => out.push_str(v),
                None if name.starts_with("secret.") => {
                    return Err(format!(
                        "`${{{name}}}`: secrets are not available in this build yet"
                    ));
                }
                None => {
                    let known: Vec<String> = vars.keys().map(|k| format!("${{{k}}}")).collect();
                    return Err(format!(
                        "unknown placeholder `${{{name}}}` (known: {})",
                        known.join(", ")
                    ));
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_expand_and_unknown_ones_are_named() {
        let vars = BTreeMap::from([
            ("data".to_owned(), "/h/runtime/data/pg".to_owned()),
            ("port.db".to_owned(), "5433".to_owned()),
        ]);
        assert_eq!(
            expand("-D ${data} -p ${port.db}", &vars).unwrap(),
            "-D /h/runtime/data/pg -p 5433"
        );
        assert_eq!(expand("cost $$5 and $x", &vars).unwrap(), "cost $5 and $x");
        let err = expand("${port.http}", &vars).unwrap_err();
        assert!(
            err.starts_with("unknown placeholder `${port.http}` (known: ${data}, ${port.db})"),
            "{err}"
        );
        assert!(expand("${data", &vars).unwrap_err().contains("unclosed"));
    }
}
