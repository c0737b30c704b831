//! Bad input fails with an error that names what is wrong.

use kojibox_manifests::api::{Request, RequestError};
use kojibox_manifests::model::{RuntimeManifest, ServiceState};
use kojibox_manifests::{DecodeError, from_json_slice};

#[test]
fn unknown_method_is_named_with_a_suggestion() {
    let err = Request::from_slice(br#"{"method": "services.lsit", "params": {}}"#).unwrap_err();
    assert_eq!(
        err,
        RequestError::UnknownMethod {
            method: "services.lsit".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "unknown method `services.lsit` (did you mean `services.list`?)"
    );
    let err = Request::from_slice(br#"{"method": "zzz", "params": {}}"#).unwrap_err();
    assert_eq!(err.to_string(), "unknown method `zzz`");
}

#[test]
fn missing_required_param_is_named() {
    let err = Request::from_slice(br#"{"method": "services.start", "params": {}}"#).unwrap_err();
    let RequestError::InvalidParams {
        method, message, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*method, "services.start");
    assert!(message.contains("missing field `id`"), "{message}");
    let err =
        Request::from_slice(br#"{"method": "runtime.ensureService", "params": {"name": "php"}}"#)
            .unwrap_err();
    assert!(err.to_string().contains("missing field `version`"), "{err}");
}

#[test]
fn wrong_enum_string_names_the_field() {
    let err = Request::from_slice(
        br#"{"method": "secrets.get", "params": {"key": "k", "scope": "global"}}"#,
    )
    .unwrap_err();
    let RequestError::InvalidParams { field, message, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(field.as_deref(), Some("scope"));
    assert!(message.contains("unknown variant `global`"), "{message}");
    assert!(err.to_string().contains("field `scope`"), "{err}");

    let err = Request::from_slice(
        br#"{"method": "proxy.apply", "params": {"rules": [{"host": "a.test", "path": "/", "target": "http://127.0.0.1:1", "tls": "yes"}]}}"#,
    )
    .unwrap_err();
    let RequestError::InvalidParams { field, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(field.as_deref(), Some("rules[0].tls"));
}

#[test]
fn models_name_the_bad_field() {
    let err: DecodeError = from_json_slice::<ServiceState>(
        br#"{"id": "pg", "state": "paused", "pid": null, "lastError": null, "lastUpdated": "x"}"#,
    )
    .unwrap_err();
    assert_eq!(err.path, "state");
    assert!(err.message.contains("unknown variant `paused`"), "{err}");

    let manifest = br#"{"version": "1", "services": [{"name": "pg", "version": "1", "os": "linux",
        "arch": "x64", "checksum": "sha256:0", "size": 1, "binPath": "x",
        "defaultPorts": [{"name": "db", "port": 5432, "protocol": "sctp"}], "env": {}, "args": []}],
        "bundle": {"createdAt": "t", "source": "s", "signature": "sig"}}"#;
    let err = from_json_slice::<RuntimeManifest>(manifest).unwrap_err();
    assert_eq!(err.path, "services[0].defaultPorts[0].protocol");
    assert!(
        err.to_string().starts_with(
            "field `services[0].defaultPorts[0].protocol`: unknown variant `sctp`, expected `tcp` or `udp` at line 3"
        ),
        "{err}"
    );

    let err = from_json_slice::<ServiceState>(br#"{"id": "pg", "state": "running"}"#).unwrap_err();
    assert!(err.message.contains("missing field `lastUpdated`"), "{err}");
}

#[test]
fn malformed_envelopes_say_what_is_expected() {
    for body in [
        &b"not json"[..],
        br#"{"params": {}}"#,
        br#"[1, 2]"#,
        br#"{"method": 3}"#,
    ] {
        let err = Request::from_slice(body).unwrap_err();
        assert!(matches!(err, RequestError::Malformed(_)), "{err:?}");
        assert!(
            err.to_string()
                .contains(r#"expected {"method": "...", "params": {...}}"#),
            "{err}"
        );
    }
    let err = Request::from_slice(br#"{"method": "services.list", "parms": {}}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field `parms`"), "{err}");
}

#[test]
fn missing_or_null_params_mean_empty() {
    for body in [
        &br#"{"method": "services.list"}"#[..],
        br#"{"method": "services.list", "params": null}"#,
    ] {
        let request = Request::from_slice(body).unwrap();
        assert_eq!(request.method(), "services.list");
    }
    // ...but not for a method that needs params.
    assert!(Request::from_slice(br#"{"method": "services.stop"}"#).is_err());
}

#[test]
fn unknown_params_are_refused_and_secret_values_are_redacted() {
    let err =
        Request::from_slice(br#"{"method": "services.logs", "params": {"id": "pg", "tial": 5}}"#)
            .unwrap_err();
    assert!(err.to_string().contains("unknown field `tial`"), "{err}");

    let request = Request::from_slice(
        br#"{"method": "secrets.set", "params": {"key": "k", "scope": "app", "value": "hunter2-canary"}}"#,
    )
    .unwrap();
    let debug = format!("{request:?}");
    assert!(!debug.contains("hunter2-canary"), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
}

#[test]
fn an_unknown_update_channel_and_an_out_of_range_port_name_their_field() {
    let err = Request::from_slice(
        br#"{"method": "config.setApp", "params": {"installPath": "/h", "updateChannel": "nightly", "telemetryOptIn": false}}"#,
    )
    .unwrap_err();
    let RequestError::InvalidParams { field, message, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(field.as_deref(), Some("updateChannel"));
    assert!(message.contains("unknown variant `nightly`"), "{message}");

    let err = Request::from_slice(
        br#"{"method": "config.setService", "params": {"id": "postgres", "enabled": true, "ports": {"db": 70000}, "env": {}, "args": []}}"#,
    )
    .unwrap_err();
    let RequestError::InvalidParams { field, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(field.as_deref(), Some("ports.db"), "{err}");
}

#[test]
fn set_service_and_set_project_take_the_split_form_whose_ids_must_agree() {
    let flat = Request::from_slice(
        br#"{"method": "config.setService", "params": {"id": "postgres", "enabled": true, "ports": {"db": 5432}, "env": {}, "args": []}}"#,
    )
    .unwrap();
    let split = Request::from_slice(
        br#"{"method": "config.setService", "params": {"id": "postgres", "config": {"enabled": true, "ports": {"db": 5432}, "env": {}, "args": []}}}"#,
    )
    .unwrap();
    assert_eq!(flat, split, "an absent body id takes the params' id");

    let err = Request::from_slice(
        br#"{"method": "config.setProject", "params": {"id": "proj-1", "config": {"id": "proj-2", "name": "a", "path": "/", "domain": "a.test", "stack": "php", "overrides": {}}}}"#,
    )
    .unwrap_err();
    let RequestError::InvalidParams { field, message, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(field.as_deref(), Some("id"));
    assert!(
        message.contains("`proj-1`") && message.contains("`proj-2`"),
        "{message}"
    );
}

#[test]
fn a_bad_secrets_set_never_echoes_a_value() {
    for body in [
        r#"{"method": "secrets.set", "params": {"key": "k", "scope": "app", "value": 731962}}"#,
        r#"{"method": "secrets.set", "params": {"key": "k", "scope": "731962", "value": "v"}}"#,
        r#"{"method": "secrets.set", "params": {"key": "k", "scope": ["731962"], "value": "v"}}"#,
    ] {
        let err = Request::from_slice(body.as_bytes()).unwrap_err();
        assert!(!err.to_string().contains("731962"), "{err}");
        assert!(err.to_string().contains("secrets.set"), "{err}");
    }
}

/// Issue 14, item 9: params that do not fit say, in the wire's words, what was expected; no
/// Rust type name (`struct IdParams with 1 element`) reaches the message.
#[test]
fn params_of_the_wrong_shape_say_what_was_expected_in_words() {
    let err = Request::from_slice(br#"{"method": "services.start", "params": []}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"invalid params for services.start: params must be an object: an object {"id": string}, not an array"#
    );
    let err = Request::from_slice(br#"{"method": "services.logs", "params": "web"}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"invalid params for services.logs: params must be an object: an object {"id": string, "tail"?: integer}, not a string"#
    );
    // An array of the right length is refused too (serde would match fields by position).
    let err =
        Request::from_slice(br#"{"method": "services.start", "params": ["web"]}"#).unwrap_err();
    assert!(err.to_string().contains("not an array"), "{err}");
    let err =
        Request::from_slice(br#"{"method": "proxy.apply", "params": {"rules": ["my-app.test"]}}"#)
            .unwrap_err();
    let text = err.to_string();
    assert_eq!(
        text,
        r#"invalid params for proxy.apply: field `rules[0]`: invalid type: string "my-app.test", expected an object {"host": string, "path": string, "target": string, "tls": boolean}"#
    );
    assert!(!text.contains("struct"), "{text}");
}
