//! Every request example of the contract (read from the committed copy the manifests crate
//! freezes), sent to the real daemon. Wired methods must answer the contract's typed result with
//! the shape of the contract's response example (the same camelCase keys, JSON types, enum
//! strings and nulls); every other method of the contract must answer `METHOD_NOT_FOUND` naming
//! itself, so that no method answers nothing or something else.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::OnceLock;

use kojibox_manifests::api::{ADDITIONS, METHODS, Method, methods};
use kojibox_manifests::error::ApiError;
use kojibox_manifests::model::{HealthCheckType, LogLevel, PortDef, Protocol, ServiceStatus};
use serde_json::{Value, json};

use super::{Api, WAIT, eventually};

/// What the tests take from the contract.
#[derive(Default)]
pub struct Contract {
    /// The methods of "API Contract (Backend)", in order.
    methods: Vec<String>,
    /// Each method's request and response example.
    requests: BTreeMap<String, Value>,
    responses: BTreeMap<String, Value>,
    /// The data model examples, by model name.
    models: BTreeMap<String, Value>,
    /// Enum fields of the data models and their strings (`state` -> `stopped`, `starting`...).
    enums: BTreeMap<String, BTreeSet<String>>,
    /// The error envelope examples.
    errors: Vec<Value>,
}

/// The contract, parsed once.
pub fn contract() -> &'static Contract {
    static CONTRACT: OnceLock<Contract> = OnceLock::new();
    CONTRACT.get_or_init(parse)
}

fn parse() -> Contract {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/tests/fixtures/contract.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut c = Contract::default();
    let (mut section, mut label, mut method) = ("", "", "");
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some(heading) = line.strip_prefix("## ") {
            section = heading.trim();
        } else if line.trim() == "```json" {
            let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            let json: Value = serde_json::from_str(&block.join("\n")).unwrap();
            match (section, label) {
                ("JSON Payload Examples", model) => {
                    c.models.insert(model.to_owned(), json);
                }
                ("API Request/Response Examples", "Request") => {
                    c.requests.insert(method.to_owned(), json);
                }
                ("API Request/Response Examples", "Response") => {
                    c.responses.insert(method.to_owned(), json);
                }
                ("Error Response Examples", _) => c.errors.push(json),
                other => panic!("an example in an unexpected place: {other:?}"),
            }
        } else if let Some(name) = line.strip_suffix(':') {
            label = name;
            if name != "Request" && name != "Response" {
                method = name;
            }
        } else if let Some(item) = line.strip_prefix("- ") {
            if section == "API Contract (Backend)"
                && let Some((name, _)) = item.split_once('(')
            {
                c.methods.push(name.to_owned());
            }
            if section == "Shared Data Models"
                && let Some((field, kind)) = item.split_once(": ")
                && kind.starts_with('"')
            {
                let values = kind
                    .split('|')
                    .map(|v| v.trim().trim_matches('"').to_owned());
                c.enums.insert(field.to_owned(), values.collect());
            }
        }
    }
    assert_eq!(c.methods.len(), 32, "{:?}", c.methods);
    assert!(c.enums["state"].contains("stopping"), "{:?}", c.enums);
    c
}

/// Keys whose value is a `map<string,string>` in the contract's models.
const MAPS: &[&str] = &["env", "fields", "overrides"];
/// Keys the contract declares `map<string,number>`.
const NUMBER_MAPS: &[&str] = &["ports"];
/// Keys the contract declares `T | null`.
const NULLABLE: &[&str] = &["pid", "lastError"];
/// Documented additions an answer may carry beside the contract's keys (docs/api.md).
const ADDED: &[&str] = &["cursor", "services"];

/// Fails unless `actual` has the shape of the contract's `example`: the same keys at every level
/// (maps aside), the same JSON types, a null only where the contract allows one, and only the
/// contract's strings in enum fields.
fn shape(c: &Contract, path: &str, key: &str, example: &Value, actual: &Value) {
    match (example, actual) {
        (Value::Object(_), Value::Object(map)) if MAPS.contains(&key) => {
            for (k, v) in map {
                assert!(v.is_string(), "{path}.{k}: a map<string,string> holds {v}");
            }
        }
        (Value::Object(e), Value::Object(map))
            if NUMBER_MAPS.contains(&key) && e.values().all(Value::is_number) =>
        {
            for (k, v) in map {
                assert!(v.is_u64(), "{path}.{k}: a map<string,number> holds {v}");
            }
        }
        (Value::Object(e), Value::Object(a)) => {
            let keys =
                |m: &serde_json::Map<String, Value>| m.keys().cloned().collect::<BTreeSet<_>>();
            let answered: BTreeSet<String> = keys(a)
                .into_iter()
                .filter(|k| !ADDED.contains(&k.as_str()) || e.contains_key(k))
                .collect();
            assert_eq!(
                keys(e),
                answered,
                "{path}: not the contract's keys\ncontract: {example}\nanswer:   {actual}"
            );
            for (k, v) in e {
                shape(c, &format!("{path}.{k}"), k, v, &a[k]);
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if let Some(first) = e.first() {
                for (i, v) in a.iter().enumerate() {
                    shape(c, &format!("{path}[{i}]"), key, first, v);
                }
            }
        }
        (Value::Null, _) | (_, Value::Null) if NULLABLE.contains(&key) => {}
        (Value::String(_), Value::String(s)) => {
            if let Some(allowed) = c.enums.get(key) {
                assert!(
                    allowed.contains(s),
                    "{path}: `{s}` is not one of {allowed:?}"
                );
            }
        }
        (Value::Number(_), Value::Number(_)) | (Value::Bool(_), Value::Bool(_)) => {}
        _ => panic!("{path}: the contract has {example}, the answer {actual}"),
    }
}

/// The typed result of an envelope: it must be `{"result": ...}`, parse into the contract's
/// type for `M` and serialize back to the same JSON, and have the shape of `example`.
fn result<M: Method>(c: &Contract, envelope: &Value, example: &Value) -> M::Output {
    assert!(
        envelope
            .as_object()
            .is_some_and(|o| o.len() == 1 && o.contains_key("result")),
        "{}: not a result envelope: {envelope:#}",
        M::NAME
    );
    let typed: kojibox_manifests::Response<M::Output> = serde_json::from_value(envelope.clone())
        .unwrap_or_else(|e| panic!("{}: not the contract's type: {e}\n{envelope:#}", M::NAME));
    assert_eq!(
        &serde_json::to_value(&typed).unwrap(),
        envelope,
        "{}: the answer has fields the contract's type does not",
        M::NAME
    );
    shape(c, M::NAME, "", example, envelope);
    typed.into_result().unwrap()
}

/// The error of an envelope: exactly `{"error": {...}}` with the contract's error fields.
pub fn error(envelope: &Value) -> ApiError {
    let c = contract();
    shape(c, "error", "", &c.errors[0], envelope);
    let typed: kojibox_manifests::Response<Value> = serde_json::from_value(envelope.clone())
        .unwrap_or_else(|e| panic!("not an error envelope: {e}\n{envelope:#}"));
    let error = typed
        .into_result()
        .expect_err("an error envelope, not a result");
    assert!(
        error.ts.parse::<jiff::Timestamp>().is_ok(),
        "ts: {}",
        error.ts
    );
    error
}

/// The contract's request example for `method`, with `postgres` (not installed) renamed `web`.
fn example(c: &Contract, method: &str) -> Value {
    let mut request = c.requests[method].clone();
    if request["params"]["id"] == "postgres" {
        request["params"]["id"] = json!("web");
    }
    request
}

/// `{"result": <the model example>}`: the response shape of the documented additions.
fn model(c: &Contract, name: &str) -> Value {
    json!({ "result": c.models[name] })
}

#[test]
fn every_contract_request_example_gets_the_contract_result() {
    let c = contract();
    let api = Api::boot(&[]);
    let port = api.web_port;
    let repo = api.env.root().join("repo");
    let settings = json!({
        "installSource": api.env.root().join("bundles/fixtures.kbx"),
        "updateSource": repo,
    });
    std::fs::create_dir_all(api.env.at("app/config")).unwrap();
    std::fs::write(api.env.at("app/config/settings.json"), settings.to_string()).unwrap();
    let sent = RefCell::new(Vec::new());
    let send = |request: &Value| {
        sent.borrow_mut()
            .push(request["method"].as_str().unwrap().to_owned());
        api.send(request)
    };

    let m = "runtime.getManifest";
    let manifest = result::<methods::RuntimeGetManifest>(c, &send(&example(c, m)), &c.responses[m]);
    assert_eq!(manifest, api.env.manifest());
    assert_eq!(manifest.version, "1.0.0");
    assert!(
        manifest.bundle.signature.starts_with("ed25519:"),
        "{manifest:?}"
    );

    // The example names php 8.3.2, which is not installed: the contract's own error example.
    let m = "runtime.ensureService";
    let missing = error(&send(&c.requests[m]));
    assert_eq!(
        serde_json::to_value(missing.code).unwrap(),
        "RUNTIME_MISSING",
        "{missing:?}"
    );
    assert_eq!(missing.detail, "php 8.3.2 not present in runtime/bin");
    assert!(missing.retryable);
    assert_eq!(serde_json::to_value(missing.source).unwrap(), "runtime");
    let request = json!({"method": m, "params": {"name": "web", "version": "1.0"}});
    let binary = result::<methods::RuntimeEnsureService>(c, &send(&request), &c.responses[m]);
    assert_eq!(
        Some(&binary),
        manifest.services.iter().find(|s| s.name == "web")
    );
    assert!(
        binary.bin_path.starts_with("runtime/bin/web/1.0/"),
        "{binary:?}"
    );
    assert!(binary.checksum.starts_with("sha256:"), "{binary:?}");
    let http = PortDef {
        name: "http".into(),
        port,
        protocol: Protocol::Tcp,
    };
    assert_eq!(binary.default_ports, std::slice::from_ref(&http));

    let m = "services.list";
    let list = result::<methods::ServicesList>(c, &send(&example(c, m)), &c.responses[m]);
    assert_eq!(
        list.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["web", "worker"]
    );
    for state in &list {
        assert_eq!(
            (state.state, state.pid, &state.last_error),
            (ServiceStatus::Stopped, None, &None)
        );
        assert!(
            state.last_updated.parse::<jiff::Timestamp>().is_ok(),
            "{state:?}"
        );
    }

    let m = "services.health";
    let health = result::<methods::ServicesHealth>(c, &send(&example(c, m)), &c.responses[m]);
    assert_eq!(health.kind, HealthCheckType::Port);
    assert_eq!(
        health.target,
        format!("127.0.0.1:{port}"),
        "placeholders expanded"
    );
    assert_eq!((health.timeout_ms, health.interval_ms), (500, 50));

    let request = json!({"method": "services.describe", "params": {"id": "web"}});
    let definition =
        result::<methods::ServicesDescribe>(c, &send(&request), &model(c, "ServiceDefinition"));
    assert_eq!(definition.id, "web");
    assert_eq!(definition.ports, [http]);
    assert_eq!(definition.health_check, health);
    assert_eq!(definition.env["PORT_HTTP"], port.to_string());
    assert!(definition.depends_on.is_empty());

    let m = "services.start";
    let started = result::<methods::ServicesStart>(c, &send(&example(c, m)), &c.responses[m]);
    assert_eq!(
        (started.id.as_str(), started.state),
        ("web", ServiceStatus::Starting)
    );
    assert_eq!(started.last_error, None);
    let running = api.wait_for("web", ServiceStatus::Running);
    let pid = running.pid.expect("a running service has a pid");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "web listens once running"
    );

    let m = "services.logs";
    let listening = format!("web listening on port {port}");
    let logs = || result::<methods::ServicesLogs>(c, &api.send(&example(c, m)), &c.responses[m]);
    assert!(
        eventually(WAIT, || logs().iter().any(|e| e.message == listening)),
        "{:?}",
        logs()
    );
    sent.borrow_mut().push(m.to_owned());
    let line = logs().into_iter().find(|e| e.message == listening).unwrap();
    assert_eq!((line.service.as_str(), line.level), ("web", LogLevel::Info));
    assert_eq!(line.fields["stream"], "stdout");
    assert_eq!(line.fields["pid"], pid.to_string());
    let one = api.call::<methods::ServicesLogs>(json!({"id": "web", "tail": 1}));
    assert_eq!(one.len(), 1, "tail counts lines");

    let m = "services.restart";
    let restarted = result::<methods::ServicesRestart>(c, &send(&example(c, m)), &c.responses[m]);
    assert_eq!(restarted.id, "web");
    let again = api.wait_for("web", ServiceStatus::Running);
    assert_ne!(again.pid, Some(pid), "a restart runs a new process");
    assert!(
        !kojibox_proc::is_alive(pid),
        "the old process {pid} is gone"
    );

    let m = "services.stop";
    let stopping = result::<methods::ServicesStop>(c, &send(&example(c, m)), &c.responses[m]);
    assert_eq!(stopping.state, ServiceStatus::Stopping, "{stopping:?}");
    assert_eq!(api.wait_for("web", ServiceStatus::Stopped).pid, None);
    assert!(
        eventually(WAIT, || api.processes("web").is_empty()),
        "{:?}",
        api.processes("web")
    );

    let request = json!({"method": "services.up", "params": {}});
    let up = result::<methods::ServicesUp>(c, &send(&request), &c.responses["services.list"]);
    assert_eq!(
        up.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["web", "worker"]
    );
    assert!(
        up.iter().all(|s| s.state == ServiceStatus::Starting),
        "{up:?}"
    );
    let web = api.wait_for("web", ServiceStatus::Running);
    api.wait_for("worker", ServiceStatus::Running);

    let m = "installer.status";
    let status = result::<methods::InstallerStatus>(c, &send(&example(c, m)), &c.responses[m]);
    assert!(status.progress <= 100, "{status:?}");
    let m = "installer.start";
    result::<methods::InstallerStart>(c, &send(&example(c, m)), &c.responses[m]);
    let m = "installer.status";
    let status = result::<methods::InstallerStatus>(c, &send(&example(c, m)), &c.responses[m]);
    assert_eq!((status.phase.as_str(), status.progress), ("done", 100));
    assert_eq!(
        api.state("web").pid,
        web.pid,
        "reinstalling the same bundle disturbs nothing"
    );

    // Configuration. The app's installPath is where the home is: the example's /opt/kojibox
    // is refused (kojibox does not move a home); this home's path is accepted.
    let home = api.env.home_dir().to_string_lossy().into_owned();
    let m = "config.setApp";
    let refused = error(&send(&c.requests[m]));
    assert_eq!(
        serde_json::to_value(refused.code).unwrap(),
        "VALIDATION_FAILED"
    );
    assert!(refused.detail.starts_with("installPath: "), "{refused:?}");
    let mut set_app = c.requests[m].clone();
    set_app["params"]["installPath"] = json!(home);
    set_app["params"]["updateChannel"] = json!("beta");
    result::<methods::ConfigSetApp>(c, &send(&set_app), &c.responses[m]);
    let m = "config.getApp";
    let app = result::<methods::ConfigGetApp>(c, &send(&example(c, m)), &c.responses[m]);
    assert_eq!(app.install_path, home);
    assert_eq!(serde_json::to_value(app.update_channel).unwrap(), "beta");

    // The example names postgres, which is not installed here.
    let m = "config.setService";
    let missing = error(&send(&c.requests[m]));
    assert_eq!(serde_json::to_value(missing.code).unwrap(), "NOT_FOUND");
    let set_worker = json!({"method": m, "params": {"id": "worker", "enabled": false, "ports": {}, "env": {"GREETING": "hi"}, "args": []}});
    result::<methods::ConfigSetService>(c, &send(&set_worker), &c.responses[m]);
    let m = "config.getService";
    let get_worker = json!({"method": m, "params": {"id": "worker"}});
    let worker = result::<methods::ConfigGetService>(c, &send(&get_worker), &c.responses[m]);
    assert_eq!(
        worker,
        serde_json::from_value(set_worker["params"].clone()).unwrap()
    );
    let missing = error(&send(&c.requests[m]));
    assert_eq!(serde_json::to_value(missing.code).unwrap(), "NOT_FOUND");

    // The example's path does not exist here: the contract's own validation error example.
    let m = "config.setProject";
    let invalid = error(&send(&c.requests[m]));
    let expected = c
        .errors
        .iter()
        .find(|e| e["error"]["code"] == "VALIDATION_FAILED")
        .expect("the contract has a validation example");
    assert_eq!(
        (
            invalid.message.as_str(),
            serde_json::to_value(invalid.source).unwrap()
        ),
        (
            expected["error"]["message"].as_str().unwrap(),
            expected["error"]["source"].clone()
        )
    );
    assert!(
        invalid
            .detail
            .contains(expected["error"]["detail"].as_str().unwrap()),
        "{invalid:?}"
    );
    assert!(!invalid.retryable);
    let mut set_project = c.requests[m].clone();
    set_project["params"]["path"] = json!(home);
    result::<methods::ConfigSetProject>(c, &send(&set_project), &c.responses[m]);
    let m = "config.getProject";
    let project = result::<methods::ConfigGetProject>(c, &send(&example(c, m)), &c.responses[m]);
    assert_eq!(project.path, home);
    assert_eq!(project.domain, "my-app.test");
    let m = "config.listProjects";
    let projects = result::<methods::ConfigListProjects>(c, &send(&example(c, m)), &c.responses[m]);
    assert_eq!(projects, std::slice::from_ref(&project));
    let request = json!({"method": "config.removeProject", "params": {"id": project.id}});
    result::<methods::ConfigRemoveProject>(c, &send(&request), &c.responses["config.setProject"]);
    let m = "config.listProjects";
    let projects =
        result::<methods::ConfigListProjects>(c, &api.send(&example(c, m)), &c.responses[m]);
    assert_eq!(projects, [], "a removed project is gone");

    let m = "secrets.get";
    let unknown = error(&send(&c.requests[m]));
    assert_eq!(serde_json::to_value(unknown.code).unwrap(), "NOT_FOUND");
    assert_eq!(serde_json::to_value(unknown.source).unwrap(), "secrets");
    let m = "secrets.set";
    result::<methods::SecretsSet>(c, &send(&c.requests[m]), &c.responses[m]);
    let m = "secrets.get";
    let value = result::<methods::SecretsGet>(c, &send(&c.requests[m]), &c.responses[m]);
    assert_eq!(value, c.responses[m]["result"].as_str().unwrap());
    let request = json!({"method": "secrets.remove", "params": c.requests[m]["params"]});
    result::<methods::SecretsRemove>(c, &send(&request), &c.responses["secrets.set"]);
    let gone = error(&api.send(&c.requests[m]));
    assert_eq!(
        serde_json::to_value(gone.code).unwrap(),
        "NOT_FOUND",
        "a removed secret is gone"
    );

    // Updates: the example's 1.1.0, published to the home's update source.
    let v110 = api.env.fixture_bundle(
        "v110",
        "1.1.0",
        "1.1",
        &crate::support::host(),
        &super::fixtures(port),
    );
    bundler::publish::publish(
        &bundler::publish::Publish {
            bundle: &v110,
            repo: &repo,
            // config.setApp above chose the beta channel.
            channel: "beta",
            expires_in: 600,
            force: false,
        },
        &crate::support::key(1),
    )
    .unwrap();
    let m = "updater.check";
    let check = result::<methods::UpdaterCheck>(c, &send(&example(c, m)), &c.responses[m]);
    assert!(check.available);
    assert_eq!(check.version, "1.1.0");
    let m = "updater.apply";
    result::<methods::UpdaterApply>(c, &send(&c.requests[m]), &c.responses[m]);
    assert_eq!(api.env.manifest().version, "1.1.0");
    api.wait_for("web", ServiceStatus::Running);
    let request = json!({"method": "updater.rollback", "params": {}});
    result::<methods::UpdaterRollback>(c, &send(&request), &c.responses["updater.apply"]);
    assert_eq!(api.env.manifest().version, "1.0.0");

    // Observability: the example's postgres log, queried and exported; metrics; diagnostics.
    let logs = api.env.at("app/logs");
    std::fs::create_dir_all(&logs).unwrap();
    let entry = &c.responses["logs.query"]["result"][0];
    std::fs::write(logs.join("postgres.jsonl"), format!("{entry}\n")).unwrap();
    let m = "logs.query";
    let entries = result::<methods::LogsQuery>(c, &send(&c.requests[m]), &c.responses[m]);
    assert_eq!(entries.len(), 1);
    assert_eq!(serde_json::to_value(&entries[0].entry).unwrap(), *entry);
    let m = "logs.export";
    let path = result::<methods::LogsExport>(c, &send(&c.requests[m]), &c.responses[m]);
    assert!(
        path.starts_with("app/logs/exports/postgres-info-"),
        "{path}"
    );
    assert!(
        std::fs::read_to_string(api.env.at(&path))
            .unwrap()
            .contains("postgres: ready")
    );
    let m = "metrics.snapshot";
    let metrics = result::<methods::MetricsSnapshot>(c, &send(&c.requests[m]), &c.responses[m]);
    assert!(
        !metrics.ports_in_use.is_empty(),
        "the API's own port: {metrics:?}"
    );
    let m = "diagnostics.create";
    let diag = result::<methods::DiagnosticsCreate>(c, &send(&c.requests[m]), &c.responses[m]);
    assert!(api.env.at(&diag.path).is_file(), "{diag:?}");

    // Every other method of the contract is known but not served yet: it must say so.
    for method in &c.methods {
        if sent.borrow().contains(method) {
            continue;
        }
        let answer = error(&send(&c.requests[method]));
        assert_eq!(
            serde_json::to_value(answer.code).unwrap(),
            "METHOD_NOT_FOUND",
            "{method}: {answer:?}"
        );
        assert!(
            answer.detail.contains(&format!("`{method}`")),
            "{method}: {answer:?}"
        );
        let module = match method.split('.').next().unwrap() {
            "domains" | "proxy" | "certs" => "tooling",
            other => other,
        };
        assert_eq!(
            serde_json::to_value(answer.source).unwrap(),
            module,
            "{method}"
        );
    }

    let contract_and_additions: BTreeSet<&str> = c
        .methods
        .iter()
        .map(String::as_str)
        .chain(ADDITIONS.iter().copied())
        .collect();
    assert_eq!(METHODS.len(), contract_and_additions.len());
    assert_eq!(
        METHODS.iter().copied().collect::<BTreeSet<_>>(),
        contract_and_additions,
        "the API's table is the contract's plus the additions"
    );
    let sent = sent.borrow();
    let sent: BTreeSet<&str> = sent.iter().map(String::as_str).collect();
    assert_eq!(sent, contract_and_additions, "every method was sent");
    for method in c.requests.keys() {
        assert!(
            sent.contains(method.as_str()),
            "{method} has an example that was not sent"
        );
    }
}

/// The contract's example answers `services.restart` with `starting`, as `services.start`: the
/// caller learns the service is on its way back, whatever it was doing before.
#[test]
fn services_restart_of_a_running_service_answers_starting_as_the_contract_shows() {
    let c = contract();
    let api = Api::boot(&[]);
    api.call::<methods::ServicesStart>(json!({"id": "worker"}));
    let pid = api.wait_for("worker", ServiceStatus::Running).pid;
    let m = "services.restart";
    let request = json!({"method": m, "params": {"id": "worker"}});
    let restarted = result::<methods::ServicesRestart>(c, &api.send(&request), &c.responses[m]);
    assert_eq!(c.responses[m]["result"]["state"], "starting");
    assert_eq!(
        restarted.state,
        ServiceStatus::Starting,
        "services.restart must answer `starting` as the contract's example does: {restarted:?}"
    );
    assert_ne!(api.wait_for("worker", ServiceStatus::Running).pid, pid);
}
