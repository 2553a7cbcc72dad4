//! The worker token, kept in the state dir (mode 0600) so that a restarted agent goes on
//! heartbeating without the one-time bootstrap token.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What the agent keeps across restarts. `Debug` does not print the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub instance_id: Uuid,
    pub install_attempt: u32,
    pub worker_token: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("instance_id", &self.instance_id)
            .field("install_attempt", &self.install_attempt)
            .field("worker_token", &"<redacted>")
            .finish()
    }
}

fn path(dir: &Path) -> PathBuf {
    dir.join("worker-token")
}

/// The saved credentials of `instance_id`, if any (another instance's are ignored).
pub fn load(dir: &Path, instance_id: Uuid) -> Option<Credentials> {
    let text = std::fs::read_to_string(path(dir)).ok()?;
    let c: Credentials = serde_json::from_str(&text).ok()?;
    (c.instance_id == instance_id).then_some(c)
}

/// Saves `c` atomically with mode 0600 (written to a temporary file, then renamed).
pub fn save(dir: &Path, c: &Credentials) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(".worker-token.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(serde_json::to_string(c)?.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path(dir))
}

/// Forgets the saved token (the control plane no longer knows it).
pub fn forget(dir: &Path) {
    let _ = std::fs::remove_file(path(dir));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_saved_private_and_read_back_for_their_instance_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let id = Uuid::now_v7();
        let c = Credentials {
            instance_id: id,
            install_attempt: 2,
            worker_token: "wk_secret".into(),
        };
        save(dir.path(), &c).unwrap();
        let mode = std::fs::metadata(path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load(dir.path(), id), Some(c.clone()));
        assert_eq!(load(dir.path(), Uuid::now_v7()), None);
        assert!(!format!("{c:?}").contains("wk_secret"));
        forget(dir.path());
        assert_eq!(load(dir.path(), id), None);
    }
}
