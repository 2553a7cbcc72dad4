//! [`SecretKey`]: the Scaleway API secret, which never prints.
//!
//! The key is only reachable through [`SecretKey::expose_secret`], which the client calls once
//! when it builds the `X-Auth-Token` header (itself marked sensitive so that `reqwest`/`hyper`
//! debug output hides it). `Debug` and `Display` print `[redacted]`, so a config struct holding
//! the key can derive `Debug` safely.

use std::fmt;
use std::str::FromStr;

/// A Scaleway secret key (`X-Auth-Token`). `Debug`/`Display` print `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(String);

impl SecretKey {
    /// Wraps a key. Surrounding whitespace (a trailing newline from a `*_FILE`) is removed.
    pub fn new(key: impl Into<String>) -> Self {
        let key = key.into();
        let trimmed = key.trim();
        if trimmed.len() == key.len() {
            Self(key)
        } else {
            Self(trimmed.to_string())
        }
    }

    /// The key itself. Call sites are the header builder and the simulator's comparison.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// True when the key is empty (after trimming).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time comparison with a presented token (no early exit on the first mismatch).
    pub fn matches(&self, presented: &str) -> bool {
        let a = self.0.as_bytes();
        let b = presented.as_bytes();
        let mut diff = a.len() ^ b.len();
        for i in 0..a.len().max(b.len()) {
            let x = a.get(i).copied().unwrap_or(0);
            let y = b.get(i).copied().unwrap_or(0);
            diff |= usize::from(x ^ y);
        }
        diff == 0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Error of [`SecretKey::from_str`]: the key was empty.
#[derive(Debug, thiserror::Error)]
#[error("the secret key is empty")]
pub struct EmptySecretKey;

impl FromStr for SecretKey {
    type Err = EmptySecretKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key = Self::new(s);
        if key.is_empty() {
            Err(EmptySecretKey)
        } else {
            Ok(key)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_key() {
        let key = SecretKey::new("scw-very-secret-1234");
        assert_eq!(format!("{key:?}"), "[redacted]");
        assert_eq!(key.to_string(), "[redacted]");
        assert_eq!(key.expose_secret(), "scw-very-secret-1234");
    }

    #[test]
    fn trims_and_rejects_empty() {
        assert_eq!(SecretKey::new(" abc\n").expose_secret(), "abc");
        assert!("  \n".parse::<SecretKey>().is_err());
        assert!("k".parse::<SecretKey>().is_ok());
    }

    #[test]
    fn compares_exactly() {
        let key = SecretKey::new("abc");
        assert!(key.matches("abc"));
        assert!(!key.matches("abd"));
        assert!(!key.matches("ab"));
        assert!(!key.matches("abcd"));
        assert!(!key.matches(""));
    }
}
