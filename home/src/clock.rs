//! Timestamps as the contract writes them: RFC 3339, UTC, millisecond precision.

/// Now, as `2026-01-01T00:00:00.000Z`.
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}
