//! Events: names, payloads and the JSON envelope.

use kojibox_manifests::api::Progress;
use kojibox_manifests::event::{
    ConfigChanged, ConfigScope, Event, EventEnvelope, HealthEvent, HealthStatus,
};
use serde_json::json;

#[test]
fn envelope_round_trips_for_every_event() {
    let payloads = [
        json!({"id": "postgres", "state": "running", "pid": 12345, "lastError": null, "lastUpdated": "2025-01-01T00:00:10Z"}),
        json!({"ts": "2025-01-01T00:00:12Z", "level": "info", "service": "postgres", "message": "ready", "fields": {"pid": "1"}}),
        json!({"id": "postgres", "status": "unhealthy"}),
        json!({"scope": "project", "id": "proj-1"}),
        json!({"version": "1", "services": [], "bundle": {"createdAt": "2025-01-01T00:00:00Z", "source": "official", "signature": "sig"}}),
        json!({"version": "1.1.0"}),
        json!({"phase": "download", "progress": 40}),
    ];
    for (i, (name, data)) in Event::NAMES.iter().zip(payloads).enumerate() {
        let wire = json!({"id": i, "event": name, "data": data});
        let envelope: EventEnvelope =
            serde_json::from_value(wire.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(envelope.event.name(), *name);
        assert_eq!(envelope.id, i as u64);
        assert_eq!(serde_json::to_value(&envelope).unwrap(), wire);
        assert_eq!(envelope.event.data().unwrap(), data);
        // The hub's text form is byte for byte the text of `data`'s value.
        let text = envelope.event.data_json().unwrap();
        assert_eq!(text, envelope.event.data().unwrap().to_string(), "{name}");
        assert_eq!(
            Event::from_parts(name, data.clone()).unwrap(),
            envelope.event
        );
    }
}

#[test]
fn payload_shapes_are_the_contracts() {
    let event = Event::ServiceHealth(HealthEvent {
        id: "pg".into(),
        status: HealthStatus::Healthy,
    });
    assert_eq!(
        event.data().unwrap(),
        json!({"id": "pg", "status": "healthy"})
    );
    let event = Event::ConfigChanged(ConfigChanged {
        scope: ConfigScope::App,
        id: "app".into(),
    });
    assert_eq!(event.data().unwrap(), json!({"scope": "app", "id": "app"}));
    let event = Event::UpdateProgress(Progress {
        phase: "verify".into(),
        progress: 100,
    });
    assert_eq!(
        serde_json::to_value(&event).unwrap(),
        json!({"event": "update:progress", "data": {"phase": "verify", "progress": 100}})
    );
}

#[test]
fn unknown_event_and_bad_payload_fail() {
    assert!(Event::from_parts("service:exploded", json!({})).is_err());
    let err =
        Event::from_parts("service:health", json!({"id": "pg", "status": "sick"})).unwrap_err();
    assert!(err.to_string().contains("unknown variant `sick`"), "{err}");
}
