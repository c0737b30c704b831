//! The [`Signature`] type and its text form `ed25519:<key id>:<base64 of 64 bytes>`.
//!
//! Parsing is strict (exact scheme, canonical key id, padded standard base64, exact length, no
//! surrounding whitespace) so that one signature has one spelling, and each way a string can be
//! wrong gets its own [`SignatureProblem`].

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::SIGNATURE_LENGTH;

use crate::text::excerpt;
use crate::{Error, KeyId, Result, SignatureProblem};

/// An Ed25519 signature together with the id of the key that made it.
///
/// `Display` and `FromStr` use the form `ed25519:<key id>:<base64 of the 64 bytes>`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Signature {
    key_id: KeyId,
    bytes: [u8; SIGNATURE_LENGTH],
}

impl Signature {
    /// The scheme word that starts a signature string.
    pub const SCHEME: &'static str = "ed25519";

    /// A signature from its parts. Nothing is checked here; [`crate::PublicKey::verify`] does.
    pub fn from_parts(key_id: KeyId, bytes: [u8; SIGNATURE_LENGTH]) -> Self {
        Signature { key_id, bytes }
    }

    /// The id of the key that made this signature (as the signature claims it).
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The 64 raw signature bytes.
    pub fn to_bytes(&self) -> [u8; SIGNATURE_LENGTH] {
        self.bytes
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            Self::SCHEME,
            self.key_id,
            BASE64.encode(self.bytes)
        )
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({self})")
    }
}

impl FromStr for Signature {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let malformed = |problem| Error::MalformedSignature {
            input: excerpt(s),
            problem,
        };
        let parts: Vec<&str> = s.split(':').collect();
        if parts[0] != Self::SCHEME {
            return Err(malformed(SignatureProblem::WrongScheme {
                found: excerpt(parts[0]),
            }));
        }
        let [_, key_id, encoded] = parts[..] else {
            return Err(malformed(SignatureProblem::WrongPartCount {
                found: parts.len(),
            }));
        };
        let key_id = key_id.parse::<KeyId>().map_err(|_| {
            malformed(SignatureProblem::BadKeyId {
                found: excerpt(key_id),
            })
        })?;
        let decoded = BASE64.decode(encoded).map_err(|err| {
            malformed(SignatureProblem::BadBase64 {
                detail: err.to_string(),
            })
        })?;
        let bytes: [u8; SIGNATURE_LENGTH] = decoded.as_slice().try_into().map_err(|_| {
            malformed(SignatureProblem::WrongLength {
                actual: decoded.len(),
            })
        })?;
        Ok(Signature { key_id, bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips() {
        let id: KeyId = "0123456789abcdef".parse().unwrap();
        let sig = Signature::from_parts(id, [0xa5; 64]);
        let text = sig.to_string();
        assert!(text.starts_with("ed25519:0123456789abcdef:pa"), "{text}");
        assert_eq!(text.parse::<Signature>().unwrap(), sig);
        assert_eq!(format!("{sig:?}"), format!("Signature({text})"));
    }

    #[test]
    fn long_garbage_is_quoted_shortened() {
        let input = "x".repeat(10_000);
        let msg = input.parse::<Signature>().unwrap_err().to_string();
        assert!(msg.len() < 600, "{} bytes", msg.len());
    }
}
