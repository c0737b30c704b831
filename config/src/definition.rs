//! What the supervisor runs: one [`Definition`] per installed service, made from the installed
//! manifest (this machine's payload), the bundle's service template and the user's
//! `ServiceConfig` (`app/config/services/<id>.json`), with placeholders expanded. Pure: the
//! loading is [`crate::catalog`]'s.
//!
//! Placeholders (see `docs/design.md`): `${home}`, `${bin}` (the payload folder), `${data}`
//! (`runtime/data/<name>`) and `${config}` (`runtime/data/.<name>.config`, where the template's
//! config files are rendered before each start) expand to absolute paths; `${port.<name>}` to
//! the service's port of that name (from the port registry, [`crate::ports`]). They expand in
//! args, env, the health target, setup commands and config files. An unknown placeholder is an
//! error naming it. The default working folder is the home, so relative paths in args and env
//! are relative to the home.
//!
//! `${secret.<key>}` (and `${secret.<scope>.<key>}`) expand only at spawn time
//! ([`Definition::resolve`]): the definition, `services.describe` and every file keep the
//! placeholder, never the value.
//!
//! `${secretfile.<name>}` (setup commands only, for programs that read a password from a file,
//! such as `initdb --pwfile`) expands to the path of a file holding that secret:
//! `runtime/data/.<id>.secrets/<name>` ([`Definition::secret_files_dir`]). The supervisor writes
//! it (0400 in a 0700 folder, both owned by the service's user) just before the setup commands
//! run and removes the folder when they end, whatever the outcome, and at the next start if the
//! daemon died meanwhile. Elsewhere it is an error: a running service would find no file.

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
    /// Secrets (scope `service`) made at the first start when missing (the template's
    /// `generateSecrets`).
    pub generate_secrets: Vec<String>,
    /// `runtime/data/.<name>.config` (absolute): where [`Resolved::config_files`] go.
    pub config_dir: PathBuf,
    /// Args, env and setup before expansion, with the values of the placeholders other than
    /// secrets: [`Definition::resolve`] expands them again, secrets included, at spawn time.
    raw: Raw,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Raw {
    args: Vec<String>,
    env: BTreeMap<String, String>,
    setup: Vec<Vec<String>>,
    config_files: BTreeMap<String, String>,
    client_env: BTreeMap<String, String>,
    client_args: BTreeMap<String, Vec<String>>,
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
    /// The files `${secretfile.*}` in setup names, with their contents: written for the setup
    /// commands and removed after them.
    pub secret_files: Vec<(PathBuf, String)>,
    /// The rendered config files (path in [`Definition::config_dir`], contents), written
    /// before every start.
    pub config_files: Vec<(PathBuf, String)>,
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
        let uses = |v: &String| v.contains("${secret.") || v.contains("${secretfile.");
        self.raw.args.iter().any(uses)
            || self.raw.env.values().any(uses)
            || self.raw.setup.iter().flatten().any(uses)
            || self.raw.config_files.values().any(uses)
    }

    /// Where the setup commands' `${secretfile.*}` files are: `runtime/data/.<id>.secrets`
    /// (beside the data folder, which `initdb` and the like want empty; no id starts with `.`).
    pub fn secret_files_dir(&self) -> PathBuf {
        self.data_dir
            .with_file_name(format!(".{}.secrets", self.id()))
    }

    /// Expands args, env and setup for a spawn; `secret` gives a secret's value by the name
    /// after `secret.` (`None`: no such secret). Errors name the placeholder, never a value.
    pub fn resolve<E: From<Error>>(
        &self,
        secret: &mut dyn FnMut(&str) -> std::result::Result<Option<String>, E>,
    ) -> std::result::Result<Resolved, E> {
        let mut used = Vec::new();
        let mut files: Vec<(PathBuf, String)> = Vec::new();
        let files_dir = self.secret_files_dir();
        let mut failure: Option<E> = None;
        let mut lookup = |name: &str| match secret(name) {
            Ok(Some(value)) => {
                if !used.contains(&value) {
                    used.push(value.clone());
                }
                Some(value)
            }
            Ok(None) => {
                failure.get_or_insert(secret_not_set(self.id(), name).into());
                None
            }
            Err(e) => {
                failure.get_or_insert(e);
                None
            }
        };
        let vars = &self.raw.vars;
        let id = self.id();
        let mut one = |value: &str, what: &str| {
            let in_setup = what == "setup";
            expand_secrets(value, vars, &mut |kind, name| {
                let value = lookup(name)?;
                match kind {
                    SecretUse::Value => Some(value),
                    SecretUse::File if in_setup => {
                        let path = files_dir.join(name);
                        if !files.iter().any(|(p, _)| p == &path) {
                            files.push((path.clone(), value));
                        }
                        Some(path.to_string_lossy().into_owned())
                    }
                    SecretUse::File => None,
                }
            })
            .map_err(|e| Error::invalid("Invalid service definition", format!("{id} {what}: {e}")))
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
        let config_files = self
            .raw
            .config_files
            .iter()
            .map(|(name, text)| Ok((self.config_dir.join(name), one(text, "config file")?)))
            .collect::<Result<Vec<_>>>();
        if let Some(e) = failure {
            return Err(e);
        }
        let (args, env, setup, config_files) = (args?, env?, setup?, config_files?);
        Ok(Resolved {
            args,
            env,
            setup,
            secrets: used,
            secret_files: files,
            config_files,
        })
    }
}

/// The error for a `${secret.<name>}` of service `id` that the store does not have.
fn secret_not_set(id: &str, name: &str) -> Error {
    Error::NotFound {
        detail: format!("{id}: secret `{name}` is not set (set it with `kojibox secrets set`)"),
    }
}

impl Definition {
    /// The payload folder (`${bin}`, absolute).
    pub fn payload_dir(&self) -> PathBuf {
        PathBuf::from(&self.raw.vars["bin"])
    }

    /// For `kojibox exec PROGRAM`: the arguments the template puts before the user's for
    /// `program` (by file name) and the environment its clients get besides the service's,
    /// expanded, secrets included (`secret` as in [`Definition::resolve`]).
    pub fn resolve_client<E: From<Error>>(
        &self,
        program: &str,
        secret: &mut dyn FnMut(&str) -> std::result::Result<Option<String>, E>,
    ) -> std::result::Result<(Vec<String>, BTreeMap<String, String>), E> {
        let id = self.id();
        let mut one = |value: &str, what: &str| -> std::result::Result<String, E> {
            let mut failure: Option<E> = None;
            let expanded = expand_secrets(value, &self.raw.vars, &mut |kind, name| {
                if kind == SecretUse::File {
                    return None;
                }
                match secret(name) {
                    Ok(Some(v)) => Some(v),
                    Ok(None) => {
                        failure.get_or_insert(secret_not_set(id, name).into());
                        None
                    }
                    Err(e) => {
                        failure.get_or_insert(e);
                        None
                    }
                }
            });
            if let Some(e) = failure {
                return Err(e);
            }
            expanded.map_err(|e| {
                Error::invalid("Invalid service definition", format!("{id} {what}: {e}")).into()
            })
        };
        let args = self
            .raw
            .client_args
            .get(program)
            .into_iter()
            .flatten()
            .map(|a| one(a, "clientArgs"))
            .collect::<std::result::Result<Vec<_>, E>>()?;
        let env = self
            .raw
            .client_env
            .iter()
            .map(|(k, v)| Ok((k.clone(), one(v, "clientEnv")?)))
            .collect::<std::result::Result<BTreeMap<_, _>, E>>()?;
        Ok((args, env))
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
    let config_dir = home.rendered_config(&id);
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
        (
            "config".to_owned(),
            config_dir.to_string_lossy().into_owned(),
        ),
    ]);
    for p in &ports {
        vars.insert(format!("port.{}", p.name), p.port.to_string());
    }
    // Secrets keep their placeholder here (checked for syntax); they expand at spawn time.
    // Secret files exist only while setup runs.
    let expand = |value: &str, what: &str| {
        expand_secrets(value, &vars, &mut |kind, name| match kind {
            SecretUse::Value => Some(format!("${{secret.{name}}}")),
            SecretUse::File if what == "setup" => Some(format!("${{secretfile.{name}}}")),
            SecretUse::File => None,
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
    // Checked here (placeholders known, secret syntax) so a bad file is refused before a start.
    for (name, text) in &template.config_files {
        expand(text, &format!("config file {name}"))?;
    }
    for value in template.client_env.values() {
        expand(value, "clientEnv")?;
    }
    for arg in template.client_args.values().flatten() {
        expand(arg, "clientArgs")?;
    }
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
        generate_secrets: template.generate_secrets.clone(),
        config_dir,
        raw: Raw {
            args: raw_args,
            env: raw_env,
            setup: template.setup.clone(),
            config_files: template.config_files.clone(),
            client_env: template.client_env.clone(),
            client_args: template.client_args.clone(),
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
/// refuses it. A secret name is checked before `secret` is asked. `${secretfile.<name>}` is
/// refused.
pub fn expand_with(
    value: &str,
    vars: &BTreeMap<String, String>,
    secret: &mut dyn FnMut(&str) -> Option<String>,
) -> std::result::Result<String, String> {
    expand_secrets(value, vars, &mut |kind, name| match kind {
        SecretUse::Value => secret(name),
        SecretUse::File => None,
    })
}

/// How a placeholder uses a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretUse {
    /// `${secret.<name>}`: its value.
    Value,
    /// `${secretfile.<name>}`: the path of a file holding it (setup commands only).
    File,
}

/// [`expand_with`] for both kinds of secret placeholder: `secret` gives what
/// `${secret.<name>}` or `${secretfile.<name>}` becomes; `None` refuses it (a refused secret
/// file is named as allowed in setup commands only).
pub fn expand_secrets(
    value: &str,
    vars: &BTreeMap<String, String>,
    secret: &mut dyn FnMut(SecretUse, &str) -> Option<String>,
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
            let secret_use = [
                ("secret.", SecretUse::Value),
                ("secretfile.", SecretUse::File),
            ]
            .into_iter()
            .find_map(|(prefix, kind)| Some((name.strip_prefix(prefix)?, kind)));
            match (vars.get(name), secret_use) {
                (Some(v), _) => out.push_str(v),
                (None, Some((key, kind))) => {
                    let prefix = &name[..name.len() - key.len()];
                    if !is_secret_name(key) {
                        return Err(format!(
                            "`${{{name}}}` does not name a secret: use ${{{prefix}KEY}} or \
                             ${{{prefix}SCOPE.KEY}} (scope app, project or service)"
                        ));
                    }
                    match (secret(kind, key), kind) {
                        (Some(v), _) => out.push_str(&v),
                        (None, SecretUse::Value) => {
                            return Err(format!("secret `{key}` is not available here"));
                        }
                        (None, SecretUse::File) => {
                            return Err(format!(
                                "`${{{name}}}` is allowed in setup commands only (the file \
                                 exists while they run): use ${{secret.{key}}} here"
                            ));
                        }
                    }
                }
                (None, None) => {
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

    #[test]
    fn secret_files_are_for_setup_only() {
        let vars = BTreeMap::new();
        let mut asked = Vec::new();
        let out = expand_secrets(
            "--pwfile=${secretfile.service.pw}",
            &vars,
            &mut |kind, name| {
                asked.push((kind, name.to_owned()));
                Some("/f".into())
            },
        )
        .unwrap();
        assert_eq!(out, "--pwfile=/f");
        assert_eq!(asked, [(SecretUse::File, "service.pw".to_owned())]);
        // Anywhere else (args, env, health): refused, naming the fix.
        let err = expand_with("${secretfile.pw}", &vars, &mut |_| Some("x".into())).unwrap_err();
        assert!(
            err.contains("setup commands only") && err.contains("${secret.pw}"),
            "{err}"
        );
        let err = expand_secrets("${secretfile.a b}", &vars, &mut |_, _| Some(String::new()))
            .unwrap_err();
        assert!(
            err.contains("does not name a secret") && err.contains("secretfile."),
            "{err}"
        );
    }

    #[test]
    fn a_setup_secret_file_resolves_beside_the_data_folder_and_args_refuse_it() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path()).unwrap();
        let binary = ServiceBinary {
            name: "pg".into(),
            version: "1".into(),
            os: "linux".into(),
            arch: "x64".into(),
            checksum: String::new(),
            size: 0,
            bin_path: "runtime/bin/pg/1/bin/pg".into(),
            default_ports: vec![],
            env: BTreeMap::new(),
            args: vec![],
        };
        let template = ServiceTemplate {
            setup: vec![vec![
                "${bin}/initdb".into(),
                "--pwfile=${secretfile.pw}".into(),
                "${secretfile.pw}".into(),
            ]],
            generate_secrets: vec!["pw".into()],
            ..ServiceTemplate::default()
        };
        let def = define(&home, &binary, &template, None, None).unwrap();
        assert_eq!(def.generate_secrets, ["pw"]);
        assert!(def.uses_secrets());
        assert_eq!(
            def.setup[0][1], "--pwfile=${secretfile.pw}",
            "kept as written"
        );
        let resolved = def
            .resolve::<Error>(&mut |name| Ok((name == "pw").then(|| "hunter2".to_owned())))
            .unwrap();
        let file = home.join("runtime/data/.pg.secrets/pw");
        assert_eq!(resolved.setup[0][1], format!("--pwfile={}", file.display()));
        assert_eq!(
            resolved.secret_files,
            [(file, "hunter2".to_owned())],
            "listed once"
        );
        assert_eq!(resolved.secrets, ["hunter2"]);

        let mut bad = binary.clone();
        bad.args = vec!["--pwfile=${secretfile.pw}".into()];
        let err = define(&home, &bad, &template, None, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("pg args") && err.contains("setup commands only"),
            "{err}"
        );
    }
}
