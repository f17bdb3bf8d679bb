//! Files that hold secrets (the ASA keytab, the assert-mode HMAC key, the admin token): one
//! permission rule for reading all of them, and one way of writing them.
//!
//! Reading: a file that group or others may *write* is refused — whoever can write it can put in
//! a key of their own and impersonate anyone. A file that group or others may *read* is used
//! with a warning, since the service account's own deployments often start that way, but anyone
//! who reads it can forge what it protects.
//!
//! Writing ([`write_atomic`], [`write_backup`]): every file is created new (`O_CREAT|O_EXCL`,
//! plus `O_NOFOLLOW`), mode 0600, so a symlink or a file planted under the name is never
//! followed or reused; temporary files get random names in the target's directory and are
//! renamed over the target once written and synced.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

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

/// Creates `path` for writing: it must not exist (not even as a dangling symlink), mode 0600.
pub fn create_private(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// A fresh random name for a temporary file next to `path` (`.<name>.<random>.tmp`).
fn temp_path(path: &Path) -> PathBuf {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    dir.join(format!(
        ".{name}.{:016x}{:016x}.tmp",
        rand::random::<u64>(),
        rand::random::<u64>()
    ))
}

/// Writes `bytes` into a new private file at `path` and syncs it.
fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let written = create_private(path).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if written.is_err() {
        // Only a file this call created can be here: create_new refused anything else.
        if matches!(std::fs::symlink_metadata(path), Ok(m) if m.is_file()) {
            let _ = std::fs::remove_file(path);
        }
    }
    written
}

/// Replaces `path` with `bytes` atomically: a new private file with a random name in the same
/// directory, synced, then renamed over `path` (readers see the old or the new file, never a
/// half-written one; a symlink at `path` is replaced, never followed).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_path(path);
    if let Err(e) = write_new(&tmp, bytes) {
        return Err(std::io::Error::new(e.kind(), format!("{}: {e}", tmp.display())));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // The rename is durable once the directory is synced.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Keeps `bytes` as a backup named `<path><suffix>`, or `<path><suffix>-1`, `-2`, … when that
/// name is taken (by an earlier backup, or by anything planted there, which is left alone).
/// Returns the name written.
pub fn write_backup(path: &Path, suffix: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let base = {
        let mut s = path.as_os_str().to_os_string();
        s.push(suffix);
        PathBuf::from(s)
    };
    for n in 0..100u32 {
        let candidate = if n == 0 {
            base.clone()
        } else {
            let mut s = base.as_os_str().to_os_string();
            s.push(format!("-{n}"));
            PathBuf::from(s)
        };
        match write_new(&candidate, bytes) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("{}: {e}", candidate.display()),
                ))
            }
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        format!("{}: 100 backups of this name exist already", base.display()),
    ))
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

    fn mode_of(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().mode() & 0o7777
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn an_atomic_write_leaves_one_private_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("asa.keytab");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_atomic(&path, b"new keys").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new keys");
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(names_in(dir.path()), vec!["asa.keytab"]);
    }

    #[test]
    fn temporary_names_are_random() {
        let p = Path::new("/etc/kedge/asa.keytab");
        let (a, b) = (temp_path(p), temp_path(p));
        assert_ne!(a, b);
        assert_eq!(a.parent(), p.parent());
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with(".asa.keytab.") && name.ends_with(".tmp") && name.len() > 40,
            "{name}"
        );
    }

    #[test]
    fn a_planted_symlink_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let link = dir.path().join("planted");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let e = create_private(&link).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("would-be-created"), &dangling).unwrap();
        assert!(create_private(&dangling).is_err());
        assert!(
            !dir.path().join("would-be-created").exists(),
            "a dangling link is not followed"
        );
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    }

    #[test]
    fn a_backup_never_overwrites_what_holds_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("asa.keytab");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        // An attacker (or an earlier roll) holds the predictable name.
        std::os::unix::fs::symlink(&victim, dir.path().join("asa.keytab.bak-5")).unwrap();
        let first = write_backup(&path, ".bak-5", b"old keys").unwrap();
        assert_eq!(first, dir.path().join("asa.keytab.bak-5-1"));
        assert_eq!(std::fs::read(&first).unwrap(), b"old keys");
        assert_eq!(mode_of(&first), 0o600);
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        let second = write_backup(&path, ".bak-5", b"old keys").unwrap();
        assert_eq!(second, dir.path().join("asa.keytab.bak-5-2"));
    }
}
