//! What the supervisor runs: one [`Definition`] per installed service, made from the installed
//! manifest (this machine's payload), the bundle's service template and the user's
//! `ServiceConfig` (`app/config/services/<id>.json`), with placeholders expanded. Pure: the
//! loading is [`crate::catalog`]'s.
//!
//! Placeholders (see `docs/design.md`): `${home}`, `${bin}` (the payload folder), `${data}`
//! (`runtime/data/<name>`) expand to absolute paths; `${port.<name>}` to the service's port of
//! that name (from the port registry, [`crate::ports`]). They expand in args, env, the health
//! target and setup commands. An unknown placeholder is an error naming it. The default working
//! folder is the home, so relative paths in args and env are relative to the home.
//!
//! `${secret.<key>}` (and `${secret.<scope>.<key>}`) expand only at spawn time
//! ([`Definition::resolve`]): the definition, `services.describe` and every file keep the
//! placeholder, never the value.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use kojibox_manifests::model::{PortDef, ServiceBinary, ServiceConfig, ServiceDefinition};
use kojibox_manifests::recipe::ServiceTemplate;

use kojibox_home::Home;

use crate::error::{Error, Result};

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
    /// Args, env and setup before expansion, with the values of the placeholders other than
    /// secrets: [`Definition::resolve`] expands them again, secrets included, at spawn time.
    raw: Raw,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Raw {
    args: Vec<String>,
    env: BTreeMap<String, String>,
    setup: Vec<Vec<String>>,
    vars: BTreeMap<String, String>,
}

/// What a spawn uses: args, env and setup with every placeholder expanded, secrets included.
/// Its `Debug` shows no value.
pub struct Resolved {
    /// The arguments.
    pub args: Vec<String>,
    /// The environment.
    pub env: BTreeMap<String, String>,
    /// The setup commands.
    pub setup: Vec<Vec<String>>,
    /// The secret values used, for the log to redact.
    pub secrets: Vec<String>,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolved")
            .field("secrets", &self.secrets.len())
            .finish_non_exhaustive()
    }
}

impl Definition {
    /// The service id.
    pub fn id(&self) -> &str {
        &self.contract.id
    }

    /// Whether args, env or setup use a secret.
    pub fn uses_secrets(&self) -> bool {
        let uses = |v: &String| v.contains("${secret.");
        self.raw.args.iter().any(uses)
            || self.raw.env.values().any(uses)
            || self.raw.setup.iter().flatten().any(uses)
    }

    /// Expands args, env and setup for a spawn; `secret` gives a secret's value by the name
    /// after `secret.` (`None`: no such secret). Errors name the placeholder, never a value.
    pub fn resolve<E: From<Error>>(
        &self,
        secret: &mut dyn FnMut(&str) -> std::result::Result<Option<String>, E>,
    ) -> std::result::Result<Resolved, E> {
        let mut used = Vec::new();
        let mut failure: Option<E> = None;
        let mut lookup = |name: &str| match secret(name) {
            Ok(Some(value)) => {
                if !used.contains(&value) {
                    used.push(value.clone());
                }
                Some(value)
            }
            Ok(None) => {
                failure.get_or_insert(
                    Error::NotFound {
                        detail: format!(
                            "{}: secret `{name}` is not set (set it with `kojibox secrets set`)",
                            self.id()
                        ),
                    }
                    .into(),
                );
                None
            }
            Err(e) => {
                failure.get_or_insert(e);
                None
            }
        };
        let vars = &self.raw.vars;
        let mut one = |value: &str, what: &str| {
            expand_with(value, vars, &mut lookup).map_err(|e| {
                Error::invalid(
                    "Invalid service definition",
                    format!("{} {what}: {e}", self.id()),
                )
            })
        };
        let args = self
            .raw
            .args
            .iter()
            .map(|a| one(a, "args"))
            .collect::<Result<Vec<_>>>();
        let env = self
            .raw
            .env
            .iter()
            .map(|(k, v)| Ok((k.clone(), one(v, "env")?)))
            .collect::<Result<BTreeMap<_, _>>>();
        let setup = self
            .raw
            .setup
            .iter()
            .map(|argv| argv.iter().map(|a| one(a, "setup")).collect())
            .collect::<Result<Vec<_>>>();
        if let Some(e) = failure {
            return Err(e);
        }
        let (args, env, setup) = (args?, env?, setup?);
        Ok(Resolved {
            args,
            env,
            setup,
            secrets: used,
        })
    }
}

/// Builds one definition. `ports`: the ports the registry gave (default: the configured ones,
/// else the defaults).
pub fn define(
    home: &Home,
    binary: &ServiceBinary,
    template: &ServiceTemplate,
    config: Option<&ServiceConfig>,
    ports: Option<&[PortDef]>,
) -> Result<Definition> {
    let id = binary.name.clone();
    let bin = home.payload(binary);
    let data_dir = home.data_dir(&id);
    let ports: Vec<PortDef> = match ports {
        Some(ports) => ports.to_vec(),
        None => binary
            .default_ports
            .iter()
            .map(|p| PortDef {
                port: config
                    .and_then(|c| c.ports.get(&p.name).copied())
                    .unwrap_or(p.port),
                ..p.clone()
            })
            .collect(),
    };
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
    // Secrets keep their placeholder here (checked for syntax); they expand at spawn time.
    let expand = |value: &str, what: &str| {
        expand_with(value, &vars, &mut |name| {
            Some(format!("${{secret.{name}}}"))
        })
        .map_err(|e| Error::invalid("Invalid service definition", format!("{id} {what}: {e}")))
    };
    let raw_args = match config {
        Some(c) if !c.args.is_empty() => c.args.clone(),
        _ => binary.args.clone(),
    };
    let args = raw_args
        .iter()
        .map(|a| expand(a, "args"))
        .collect::<Result<Vec<_>>>()?;
    let mut raw_env = binary.env.clone();
    if let Some(c) = config {
        raw_env.extend(c.env.clone());
    }
    let env = raw_env
        .iter()
        .map(|(k, v)| Ok((k.clone(), expand(v, "env")?)))
        .collect::<Result<BTreeMap<_, _>>>()?;
    let mut health = template.health_check_or_default();
    health.target = expand_with(&health.target, &vars, &mut |_| None).map_err(|e| {
        Error::invalid(
            "Invalid service definition",
            format!("{id} healthCheck.target: {e} (secrets are not expanded there)"),
        )
    })?;
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
        raw: Raw {
            args: raw_args,
            env: raw_env,
            setup: template.setup.clone(),
            vars,
        },
    })
}

/// Expands `${name}` placeholders; an unknown one is an error naming it. `$$` is a literal `$`.
/// Secrets are unknown here.
pub fn expand(value: &str, vars: &BTreeMap<String, String>) -> std::result::Result<String, String> {
    expand_with(value, vars, &mut |_| None)
}

/// [`expand`], with `secret` giving the value of `${secret.<name>}` (by `<name>`); `None`
/// refuses it. A secret name is checked before `secret` is asked.
pub fn expand_with(
    value: &str,
    vars: &BTreeMap<String, String>,
    secret: &mut dyn FnMut(&str) -> Option<String>,
) -> std::result::Result<String, String> {
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
                    let key = &name["secret.".len()..];
                    if !is_secret_name(key) {
                        return Err(format!(
                            "`${{{name}}}` does not name a secret: use ${{secret.KEY}} or \
                             ${{secret.SCOPE.KEY}} (scope app, project or service)"
                        ));
                    }
                    match secret(key) {
                        Some(v) => out.push_str(&v),
                        None => return Err(format!("secret `{key}` is not available here")),
                    }
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

/// `KEY` or `SCOPE.KEY`: the name in `${secret.<name>}`.
fn is_secret_name(name: &str) -> bool {
    let key = ["app.", "project.", "service."]
        .iter()
        .find_map(|scope| name.strip_prefix(scope))
        .unwrap_or(name);
    !key.is_empty()
        && key.len() <= 128
        && !key.starts_with('.')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
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

    #[test]
    fn secrets_expand_only_through_the_resolver_and_bad_names_are_refused() {
        let vars = BTreeMap::from([("data".to_owned(), "/d".to_owned())]);
        let mut asked = Vec::new();
        let out = expand_with(
            "${data}:${secret.pw}:${secret.app.pw}",
            &vars,
            &mut |name| {
                asked.push(name.to_owned());
                Some(format!("<{name}>"))
            },
        )
        .unwrap();
        assert_eq!(out, "/d:<pw>:<app.pw>");
        assert_eq!(asked, ["pw", "app.pw"]);
        let err = expand("${secret.pw}", &vars).unwrap_err();
        assert!(err.contains("secret `pw` is not available"), "{err}");
        for bad in [
            "${secret.}",
            "${secret.a b}",
            "${secret.app.}",
            "${secret..x}",
        ] {
            let err = expand_with(bad, &vars, &mut |_| Some(String::new())).unwrap_err();
            assert!(err.contains("does not name a secret"), "{bad}: {err}");
        }
        // `$$` escapes a placeholder, secrets included.
        assert_eq!(
            expand_with("$${secret.pw}", &vars, &mut |_| Some("x".into())).unwrap(),
            "${secret.pw}"
        );
    }
}
