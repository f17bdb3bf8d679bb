//! The `<keytab>.bak-<kvno>` copies `kedge asa roll` leaves beside the keytab (the file as it was
//! before kvno + 1 was added), removed by the same keep policy as the keys: with `keep` N and
//! newest kvno K, a backup of kvno K - N or older holds only keys that are gone.

use std::path::{Path, PathBuf};

/// One backup file and the kvno its name carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backup {
    /// The file.
    pub path: PathBuf,
    /// The newest kvno it held (the `<kvno>` of `.bak-<kvno>`).
    pub kvno: u32,
}

/// The backups of `keytab` in its directory, oldest first.
pub fn list(keytab: &Path) -> std::io::Result<Vec<Backup>> {
    let dir = keytab
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Some(name) = keytab.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{name}.bak-");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file = entry.file_name();
        let Some(kvno) = file
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|k| k.parse::<u32>().ok())
        else {
            continue;
        };
        if entry.file_type()?.is_file() {
            out.push(Backup {
                path: dir.join(&file),
                kvno,
            });
        }
    }
    out.sort_by_key(|b| b.kvno);
    Ok(out)
}

/// The backups the keep policy drops: those of kvno `newest - keep` or older.
pub fn expired(backups: &[Backup], newest: u32, keep: usize) -> Vec<Backup> {
    let keep = u32::try_from(keep.max(1)).unwrap_or(u32::MAX);
    backups
        .iter()
        .filter(|b| b.kvno.saturating_add(keep) <= newest)
        .cloned()
        .collect()
}

/// Removes the expired backups of `keytab`; returns what was removed.
pub fn prune(keytab: &Path, newest: u32, keep: usize) -> std::io::Result<Vec<Backup>> {
    let gone = expired(&list(keytab)?, newest, keep);
    for b in &gone {
        std::fs::remove_file(&b.path)?;
    }
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backups_older_than_the_kept_kvnos_are_removed_others_stay() {
        let dir = tempfile::tempdir().unwrap();
        let kt = dir.path().join("asa.keytab");
        for f in [
            "asa.keytab",
            "asa.keytab.bak-3",
            "asa.keytab.bak-4",
            "asa.keytab.bak-5",
            "asa.keytab.bak-x",
            "other.bak-1",
        ] {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        let all = list(&kt).unwrap();
        assert_eq!(all.iter().map(|b| b.kvno).collect::<Vec<_>>(), [3, 4, 5]);
        // Keytab now at kvno 6, keeping 2 (5 and 6): .bak-5 (state before 6) stays.
        let gone = prune(&kt, 6, 2).unwrap();
        assert_eq!(gone.iter().map(|b| b.kvno).collect::<Vec<_>>(), [3, 4]);
        assert!(dir.path().join("asa.keytab.bak-5").exists());
        assert!(dir.path().join("asa.keytab.bak-x").exists());
        assert!(dir.path().join("other.bak-1").exists());
    }
}
