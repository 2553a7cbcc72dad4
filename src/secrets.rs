//! Secrets from a value or a `*_FILE`, never echoed.

use std::path::Path;

use crate::ConfigError;

/// The secret given directly or read from `file` (trailing newline removed). Both given is a
/// configuration error, so nobody wonders which one won.
pub fn resolve(
    name: &str,
    value: Option<&str>,
    file: Option<&Path>,
) -> Result<Option<String>, ConfigError> {
    match (value.filter(|v| !v.is_empty()), file) {
        (Some(_), Some(_)) => Err(ConfigError(format!(
            "{name} is given both directly and as a file; give only one"
        ))),
        (Some(v), None) => Ok(Some(v.to_string())),
        (None, Some(path)) => {
            let content = std::fs::read_to_string(path).map_err(|e| {
                ConfigError(format!("cannot read {name} file {}: {e}", path.display()))
            })?;
            let secret = content.trim_end_matches(['\n', '\r']).to_string();
            if secret.is_empty() {
                return Err(ConfigError(format!(
                    "{name} file {} is empty",
                    path.display()
                )));
            }
            Ok(Some(secret))
        }
        (None, None) => Ok(None),
    }
}

/// A fresh random token: 32 bytes as hex.
pub fn generate_token() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_file_is_read_without_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret\n").unwrap();
        assert_eq!(
            resolve("token", None, Some(&path)).unwrap().as_deref(),
            Some("s3cret")
        );
    }

    #[test]
    fn a_value_and_a_file_together_are_refused() {
        let err = resolve("token", Some("a"), Some(Path::new("/x"))).unwrap_err();
        assert!(err.0.contains("only one"));
    }

    #[test]
    fn an_empty_or_missing_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "\n").unwrap();
        assert!(
            resolve("token", None, Some(&path))
                .unwrap_err()
                .0
                .contains("empty")
        );
        let missing = dir.path().join("missing");
        assert!(
            resolve("token", None, Some(&missing))
                .unwrap_err()
                .0
                .contains("cannot read")
        );
    }
}
