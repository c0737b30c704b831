//! An update channel's signed index (`<repo>/channels/<channel>.json`), written by
//! `kojibox-bundle publish` and read by the launcher's updater.
//!
//! The file is `{"index": ChannelIndex, "signature": "ed25519:<key id>:<base64>"}`. The signature
//! covers [`ChannelIndex::message`]: a fixed prefix (so no other kojibox signature, such as a
//! bundle's, can pass for one) followed by the index serialized compactly in its field order.
//! A verifier re-serializes the index it parsed, so whitespace does not matter but every value
//! does; an index with fields this version does not know is refused.

use serde::{Deserialize, Serialize};

/// What a channel offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChannelIndex {
    /// The channel (`stable`, `beta`).
    pub channel: String,
    /// The newest version of the channel (semver).
    pub version: String,
    /// The bundle, relative to the repository (`bundles/kojibox-1.1.0.kbx`).
    pub bundle: String,
    /// The bundle's sha256 (lowercase hex).
    pub sha256: String,
    /// The bundle's size in bytes.
    pub size: u64,
    /// When it was published (RFC 3339).
    pub published_at: String,
    /// When this index stops being trusted (RFC 3339).
    pub expires_at: String,
}

/// The channel file: the index and its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedChannel {
    /// What is signed.
    pub index: ChannelIndex,
    /// `ed25519:<key id>:<base64>` over [`ChannelIndex::message`].
    pub signature: String,
}

/// The prefix of every signed channel message.
pub const MESSAGE_PREFIX: &[u8] = b"kojibox channel index v1\n";

/// The largest channel file a reader accepts.
pub const MAX_CHANNEL_FILE: u64 = 64 << 10;

impl ChannelIndex {
    /// The bytes the signature covers.
    pub fn message(&self) -> Vec<u8> {
        let mut out = MESSAGE_PREFIX.to_vec();
        // A struct of strings and integers always serializes.
        out.extend(serde_json::to_vec(self).unwrap_or_default());
        out
    }
}

/// Parses a duration such as `30d`, `12h`, `90m`, `45s` (one number, one unit) into seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit: use s, m, h or d (e.g. 30d)"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}`: expected a number then a unit (e.g. 30d)"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => {
            return Err(format!(
                "`{text}`: unknown unit `{other}` (use s, m, h or d)"
            ));
        }
    };
    number
        .checked_mul(scale)
        .filter(|s| *s > 0)
        .ok_or_else(|| format!("`{text}` is not a usable duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d"), Ok(30 * 86_400));
        assert_eq!(parse_duration("12h"), Ok(12 * 3600));
        assert_eq!(parse_duration("1s"), Ok(1));
        assert_eq!(parse_duration("90m"), Ok(5400));
        for bad in ["", "30", "d", "3x", "0s", "-1d", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_message_covers_every_field_and_is_prefixed() {
        let index = ChannelIndex {
            channel: "stable".into(),
            version: "1.1.0".into(),
            bundle: "bundles/kojibox-1.1.0.kbx".into(),
            sha256: "ab".repeat(32),
            size: 10,
            published_at: "2026-01-01T00:00:00Z".into(),
            expires_at: "2026-02-01T00:00:00Z".into(),
        };
        let message = index.message();
        assert!(message.starts_with(MESSAGE_PREFIX));
        let mut edited = index.clone();
        edited.size = 11;
        assert_ne!(edited.message(), message);
        let mut edited = index;
        edited.version = "1.1.1".into();
        assert_ne!(edited.message(), message);
    }
}
