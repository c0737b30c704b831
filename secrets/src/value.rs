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
