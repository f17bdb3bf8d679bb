//! Writing the ASA's secrets during a staged roll: the password file (created exclusively,
//! mode 0600, never over an existing file or a symlink; overwritten with zeros before it is
//! removed) and the keytab (a new file under a random name beside it, mode 0600, then renamed
//! over the old one, so a watcher never sees half a keytab).

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::secret_file::{readable_by_others, writable_by_others};

/// The password in `path`, `None` when there is no such file. Refused when group or others may
/// read or write it, or when it is empty.
pub fn read_password_file(path: &Path) -> Result<Option<Zeroizing<String>>, String> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if !meta.file_type().is_file() {
        return Err("not a regular file (symlinks are refused)".into());
    }
    let mode = meta.mode() & 0o7777;
    if readable_by_others(mode) || writable_by_others(mode) {
        return Err(format!(
            "group or others may read or write it (mode {mode:04o}); chmod 0600"
        ));
    }
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| e.to_string())?);
    let text = std::str::from_utf8(&bytes).map_err(|_| "not UTF-8 text".to_string())?;
    let pw = text.trim_end_matches(['\r', '\n']);
    if pw.is_empty() {
        return Err("empty".into());
    }
    Ok(Some(Zeroizing::new(pw.to_string())))
}

/// Creates `path` holding `password` and a newline, mode 0600; fails if anything exists there.
pub fn create_password_file(path: &Path, password: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    let mut bytes = Zeroizing::new(password.to_vec());
    bytes.push(b'\n');
    f.write_all(&bytes)?;
    f.sync_all()
}

/// Overwrites the password file with zeros, then removes it.
pub fn destroy(path: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_file() {
        let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.write_all(&vec![0u8; meta.len() as usize])?;
        f.sync_all()?;
    }
    std::fs::remove_file(path)
}

fn temp_beside(path: &Path) -> PathBuf {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("keytab");
    dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()))
}

/// Puts `bytes` at `path` atomically: a fresh file (exclusive, 0600) under a random name in the
/// same directory, synced, then renamed over `path`.
pub fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_beside(path);
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    match written.and_then(|_| std::fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Copies `from` to `to` (replacing it) with mode 0600.
pub fn copy_private(from: &Path, to: &Path) -> std::io::Result<()> {
    let bytes = Zeroizing::new(std::fs::read(from)?);
    replace_file(to, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_file_is_created_once_private_and_destroyed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("asa.password");
        assert_eq!(read_password_file(&p).unwrap(), None);
        create_password_file(&p, b"S3cret!").unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        assert!(
            create_password_file(&p, b"other").is_err(),
            "never over an existing file"
        );
        assert_eq!(read_password_file(&p).unwrap().unwrap().as_str(), "S3cret!");
        destroy(&p).unwrap();
        assert!(!p.exists());
    }

    #[test]
    fn readable_password_file_and_symlinks_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "x\n").unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        assert!(read_password_file(&p).unwrap_err().contains("0644"));
        let l = dir.path().join("link");
        std::os::unix::fs::symlink(&p, &l).unwrap();
        assert!(read_password_file(&l).unwrap_err().contains("symlink"));
        assert!(
            create_password_file(&l, b"x").is_err(),
            "no write through a symlink"
        );
    }

    #[test]
    fn replace_file_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("asa.keytab");
        replace_file(&p, b"one").unwrap();
        replace_file(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
