//! [`SecretValue`]: a secret's value, which never formats and is zeroized when dropped.

use std::fmt;

use zeroize::Zeroizing;

/// A secret's value. `Debug` and `Display` print `<redacted>`; the memory is zeroized on drop.
#[derive(Clone)]
pub struct SecretValue(pub(crate) Zeroizing<String>);

impl SecretValue {
    /// Wraps a value.
    pub fn new(value: String) -> SecretValue {
        SecretValue(Zeroizing::new(value))
    }

    /// A new random value for a generated secret (a password): 32 letters and digits from the
    /// OS's random source, about 190 bits, safe in a URL, a command line or a config file.
    pub fn generate() -> crate::Result<SecretValue> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut value = Zeroizing::new(String::with_capacity(32));
        while value.len() < 32 {
            let mut bytes = Zeroizing::new([0u8; 64]);
            getrandom::fill(&mut bytes[..]).map_err(|e| {
                crate::Error::io("generate", "a random secret")(std::io::Error::other(e))
            })?;
            for b in bytes.iter() {
                // 248 = 4 * 62: below it, `b % 62` is uniform.
                if *b < 248 && value.len() < 32 {
                    value.push(char::from(ALPHABET[usize::from(*b % 62)]));
                }
            }
        }
        Ok(SecretValue(value))
    }

    /// The value itself: for the one place that needs it (an env var, a config file), never a
    /// log line.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}
