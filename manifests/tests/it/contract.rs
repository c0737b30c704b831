//! Every JSON example of the user's contract parses into its typed model and serializes back to an
//! equal JSON value. The examples are read from a verbatim copy of the contract committed as a
//! fixture (checked against `../shared/spec/contract.md` when that is present), so they cannot
//! drift from the document.

use kojibox_manifests::api::{ADDITIONS, METHODS, Method, Request, Response};
use kojibox_manifests::model::*;
use pretty_assertions::assert_eq;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// One example: the section it is in, the label before it, and the JSON.
struct Example {
    section: String,
    label: String,
    json: Value,
}

fn contract_text() -> String {
    std::fs::read_to_string(super::crate_dir().join("tests/fixtures/contract.md"))
        .expect("read the committed copy of the contract")
}

/// Extracts every fenced `json` block with the `Label:` line before it and the `## Section` it is
/// in. Request/response blocks are labelled `method.name Request` / `method.name Response`.
fn examples(text: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let (mut section, mut label, mut method) = (String::new(), String::new(), String::new());
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some(heading) = line.strip_prefix("## ") {
            section = heading.trim().to_owned();
        } else if line.trim() == "```json" {
            let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            let json = serde_json::from_str(&block.join("\n"))
                .unwrap_or_else(|e| panic!("example `{label}` is not JSON: {e}"));
            out.push(Example {
                section: section.clone(),
                label: label.clone(),
                json,
            });
        } else if let Some(name) = line.strip_suffix(':') {
            if name == "Request" || name == "Response" {
                label = format!("{method} {name}");
            } else {
                method = name.to_owned();
                label = name.to_owned();
            }
        }
    }
    out
}

fn roundtrip<T: DeserializeOwned + Serialize>(what: &str, json: &Value) {
    let typed: T = serde_json::from_value(json.clone())
        .unwrap_or_else(|e| panic!("{what}: does not parse: {e}\n{json:#}"));
    let back = serde_json::to_value(&typed).expect("serialize");
    assert_eq!(&back, json, "{what}: does not round-trip");
}

fn roundtrip_model(name: &str, json: &Value) {
    match name {
        "RuntimeManifest" => roundtrip::<RuntimeManifest>(name, json),
        "ServiceBinary" => roundtrip::<ServiceBinary>(name, json),
        "PortDef" => roundtrip::<PortDef>(name, json),
        "BundleMeta" => roundtrip::<BundleMeta>(name, json),
        "ServiceDefinition" => roundtrip::<ServiceDefinition>(name, json),
        "HealthCheck" => roundtrip::<HealthCheck>(name, json),
        "RestartPolicy" => roundtrip::<RestartPolicy>(name, json),
        "ServiceState" => roundtrip::<ServiceState>(name, json),
        "LogEntry" => roundtrip::<LogEntry>(name, json),
        "AppConfig" => roundtrip::<AppConfig>(name, json),
        "ServiceConfig" => roundtrip::<ServiceConfig>(name, json),
        "ProjectConfig" => roundtrip::<ProjectConfig>(name, json),
        "PortRegistry" => roundtrip::<PortRegistry>(name, json),
        "SecretRef" => roundtrip::<SecretRef>(name, json),
        "DomainMapping" => roundtrip::<DomainMapping>(name, json),
        "ProxyRule" => roundtrip::<ProxyRule>(name, json),
        "CertMeta" => roundtrip::<CertMeta>(name, json),
        "DiagnosticsBundle" => roundtrip::<DiagnosticsBundle>(name, json),
        "MetricsSnapshot" => roundtrip::<MetricsSnapshot>(name, json),
        other => panic!("the contract has a model example `{other}` with no type here"),
    }
}

macro_rules! response_roundtrip {
    ($( ($variant:ident, $name:literal, $params:ty, $output:ty, $doc:literal) ),* $(,)?) => {
        fn roundtrip_response(method: &str, json: &Value) {
            match method {
                $($name => roundtrip::<Response<<kojibox_manifests::api::methods::$variant as Method>::Output>>(
                    &format!("{method} response"), json),)*
                other => panic!("response example for unknown method `{other}`"),
            }
        }
    };
}
kojibox_manifests::for_each_method!(response_roundtrip);

#[test]
fn fixture_is_the_current_contract() {
    let shared = super::crate_dir().join("../../shared/spec/contract.md");
    match std::fs::read_to_string(&shared) {
        Ok(current) => assert_eq!(
            contract_text(),
            current,
            "tests/fixtures/contract.md differs from {}: copy it over and fix what breaks",
            shared.display()
        ),
        Err(_) => eprintln!("{} not present; using the committed copy", shared.display()),
    }
}

#[test]
fn every_model_example_round_trips() {
    let text = contract_text();
    let models: Vec<Example> = examples(&text)
        .into_iter()
        .filter(|e| e.section == "JSON Payload Examples")
        .collect();
    assert_eq!(models.len(), 19, "the contract has 19 model examples");
    for example in &models {
        roundtrip_model(&example.label, &example.json);
    }
}

#[test]
fn every_request_and_response_example_round_trips() {
    let text = contract_text();
    let api: Vec<Example> = examples(&text)
        .into_iter()
        .filter(|e| e.section == "API Request/Response Examples")
        .collect();
    let mut requests = Vec::new();
    for example in &api {
        let (method, kind) = example
            .label
            .split_once(' ')
            .expect("labelled Request/Response");
        match kind {
            "Request" => {
                let typed: Request = serde_json::from_value(example.json.clone())
                    .unwrap_or_else(|e| panic!("{method} request does not parse: {e}"));
                assert_eq!(typed.method(), method);
                assert_eq!(
                    serde_json::to_value(&typed).unwrap(),
                    example.json,
                    "{method} request"
                );
                requests.push(method.to_owned());
            }
            "Response" => roundtrip_response(method, &example.json),
            other => panic!("unexpected label {other}"),
        }
    }
    // Every method of the contract has its example, in the contract's order; the only other
    // methods are the documented additions.
    let contract: Vec<&str> = METHODS
        .iter()
        .copied()
        .filter(|m| !ADDITIONS.contains(m))
        .collect();
    assert_eq!(requests, contract, "request examples and METHODS differ");
    assert_eq!(contract.len(), 32);
    assert_eq!(api.len(), contract.len() * 2);
}

#[test]
fn every_error_example_round_trips() {
    let text = contract_text();
    let errors: Vec<Example> = examples(&text)
        .into_iter()
        .filter(|e| e.section == "Error Response Examples")
        .collect();
    assert_eq!(errors.len(), 5);
    for example in &errors {
        roundtrip::<Response<Value>>(&example.label, &example.json);
        let parsed: Response<Value> = serde_json::from_value(example.json.clone()).unwrap();
        assert!(
            matches!(parsed, Response::Error(_)),
            "{} is an error",
            example.label
        );
    }
}

#[test]
fn nullable_fields_serialize_as_null() {
    let state = ServiceState {
        id: "redis".into(),
        state: ServiceStatus::Stopped,
        pid: None,
        last_error: None,
        last_updated: "2025-01-01T00:00:00Z".into(),
        restarts: 0,
        flapping: false,
    };
    let json = serde_json::to_value(&state).unwrap();
    assert_eq!(json["pid"], Value::Null);
    assert_eq!(json["lastError"], Value::Null);
    assert!(json.as_object().unwrap().contains_key("pid"));
}

#[test]
fn enum_strings_are_the_contracts() {
    let strings = |values: Vec<Value>| -> Vec<String> {
        values
            .into_iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    let to = |v: &dyn erased::Ser| v.to_value();
    assert_eq!(
        strings(vec![to(&Protocol::Tcp), to(&Protocol::Udp)]),
        ["tcp", "udp"]
    );
    assert_eq!(
        strings(vec![
            to(&HealthCheckType::Pid),
            to(&HealthCheckType::Port),
            to(&HealthCheckType::Http)
        ]),
        ["pid", "port", "http"]
    );
    assert_eq!(
        strings(vec![
            to(&ServiceStatus::Stopped),
            to(&ServiceStatus::Starting),
            to(&ServiceStatus::Running),
            to(&ServiceStatus::Stopping),
            to(&ServiceStatus::Error)
        ]),
        ["stopped", "starting", "running", "stopping", "error"]
    );
    assert_eq!(
        strings(vec![
            to(&LogLevel::Debug),
            to(&LogLevel::Info),
            to(&LogLevel::Warn),
            to(&LogLevel::Error)
        ]),
        ["debug", "info", "warn", "error"]
    );
    assert_eq!(
        strings(vec![
            to(&SecretScope::App),
            to(&SecretScope::Project),
            to(&SecretScope::Service)
        ]),
        ["app", "project", "service"]
    );
    assert_eq!(
        strings(vec![to(&UpdateChannel::Stable), to(&UpdateChannel::Beta)]),
        ["stable", "beta"]
    );
}

/// A tiny object-safe serialize, so the enum test can list values of different types.
mod erased {
    pub trait Ser {
        fn to_value(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Ser for T {
        fn to_value(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap()
        }
    }
}

/// `as_str()` spells every enum value as serde puts it on the wire, and the payload helpers of
/// `ServiceBinary` agree with the bundle format.
#[test]
fn as_str_is_the_wire_name_and_payload_paths_follow_the_bundle_format() {
    fn wire<T: Serialize>(value: T) -> String {
        serde_json::to_value(value)
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    }
    use ServiceStatus::*;
    for s in [Stopped, Starting, Running, Stopping, Error] {
        assert_eq!(s.as_str(), wire(s));
    }
    for l in [
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Warn,
        LogLevel::Error,
    ] {
        assert_eq!(l.as_str(), wire(l));
    }
    for c in [UpdateChannel::Stable, UpdateChannel::Beta] {
        assert_eq!(c.as_str(), wire(c));
    }
    let scopes = [SecretScope::Service, SecretScope::App, SecretScope::Project];
    for s in scopes {
        assert_eq!(s.as_str(), wire(s));
    }
    let mut sorted = scopes;
    sorted.sort();
    assert_eq!(
        sorted,
        [SecretScope::App, SecretScope::Project, SecretScope::Service]
    );

    let binary = ServiceBinary {
        name: "postgres".into(),
        version: "16.14".into(),
        os: "linux".into(),
        arch: "x64".into(),
        checksum: String::new(),
        size: 0,
        bin_path: String::new(),
        default_ports: vec![],
        env: Default::default(),
        args: vec![],
    };
    assert_eq!(binary.target(), "linux-x64");
    assert_eq!(binary.label(), "postgres 16.14 linux-x64");
    assert_eq!(
        binary.payload_root(),
        "runtime/bin/postgres/16.14/linux-x64"
    );
}
