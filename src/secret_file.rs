//! Files that hold secrets (the ASA keytab, the assert-mode HMAC key): one permission rule for
//! all of them. A file that group or others may *write* is refused — whoever can write it can
//! put in a key of their own and impersonate anyone. A file that group or others may *read* is
//! used with a warning, since the service account's own deployments often start that way, but
//! anyone who reads it can forge what it protects.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use zeroize::Zeroizing;

/// Mode bits that let group or others write.
const WRITABLE_BY_OTHERS: u32 = 0o022;
/// Mode bits that let group or others read.
const READABLE_BY_OTHERS: u32 = 0o044;

/// Whether a file of permission bits `mode` may not be trusted at all (group/other-writable).
pub fn writable_by_others(mode: u32) -> bool {
    mode & WRITABLE_BY_OTHERS != 0
}

/// Whether a file of permission bits `mode` leaks its secret (group/other-readable).
pub fn readable_by_others(mode: u32) -> bool {
    mode & READABLE_BY_OTHERS != 0
}

/// A secret file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    /// Missing, unreadable, not a file.
    #[error("{path}: {reason}")]
    Unreadable {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// Group or others may write it.
    #[error(
        "{path}: group or others may write it (mode {mode:04o}); chmod 0600 and chown it to kedge's user"
    )]
    InsecureWritable {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// Nothing in it (after trailing whitespace).
    #[error("{path}: empty")]
    Empty {
        /// The file.
        path: String,
    },
}

/// Reads a secret file under the permission rule; trailing whitespace (a newline from `echo`)
/// is trimmed. `what` names the secret in the warning for a group/other-readable file.
pub fn read_secret(path: &Path, what: &str) -> Result<Zeroizing<Vec<u8>>, SecretFileError> {
    let shown = path.display().to_string();
    let unreadable = |e: std::io::Error| SecretFileError::Unreadable {
        path: shown.clone(),
        reason: e.to_string(),
    };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    if !meta.is_file() {
        return Err(SecretFileError::Unreadable {
            path: shown,
            reason: "not a regular file".into(),
        });
    }
    let mode = meta.mode() & 0o7777;
    if writable_by_others(mode) {
        return Err(SecretFileError::InsecureWritable { path: shown, mode });
    }
    if readable_by_others(mode) {
        tracing::warn!(file = %shown, mode = format!("{mode:04o}"),
            "{what} is readable by group or others: anyone who reads it can forge what it protects; chmod 0600");
    }
    let mut bytes = Zeroizing::new(std::fs::read(path).map_err(unreadable)?);
    while bytes.last().is_some_and(|b| b.is_ascii_whitespace()) {
        bytes.pop();
    }
    if bytes.is_empty() {
        return Err(SecretFileError::Empty { path: shown });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn file(mode: u32, content: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("secret");
        std::fs::write(&path, content).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        (dir, path)
    }

    #[test]
    fn private_file_is_read_and_trimmed() {
        let (_d, p) = file(0o600, "s3cret\n");
        assert_eq!(&read_secret(&p, "key").expect("read")[..], b"s3cret");
    }

    #[test]
    fn group_or_world_writable_file_is_refused() {
        for mode in [0o620, 0o602, 0o666] {
            let (_d, p) = file(mode, "s3cret");
            let e = read_secret(&p, "key").unwrap_err();
            assert!(
                matches!(e, SecretFileError::InsecureWritable { .. }),
                "{mode:o}: {e}"
            );
            assert!(e.to_string().contains("chmod 0600"), "{e}");
        }
    }

    #[test]
    fn readable_file_is_used_with_a_warning() {
        let (_d, p) = file(0o644, "s3cret");
        assert!(read_secret(&p, "key").is_ok());
    }

    #[test]
    fn empty_and_missing_files_are_named() {
        let (_d, p) = file(0o600, " \n");
        assert!(matches!(
            read_secret(&p, "key"),
            Err(SecretFileError::Empty { .. })
        ));
        let e = read_secret(Path::new("/nonexistent/kedge-key"), "key").unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent/kedge-key: "), "{e}");
    }
}
