//! `kedge keytab list|add|remove|prune`: the administrator's view of an ASA keytab. Never prints key bytes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::krb::keytab::Keytab;

#[derive(Subcommand, Debug)]
pub enum KeytabCmd {
    /// List entries: principal, kvno, enctype, timestamp (never key bytes).
    List {
        /// Keytab file.
        file: PathBuf,
    },
    /// Add keys derived from a password (read from stdin) with AD's salt for the account type,
    /// under the given SPNs and the account principal.
    Add(super::keytab_add::AddArgs),
    /// Remove the entries of one kvno and/or one principal.
    Remove(super::keytab_prune::RemoveArgs),
    /// Keep only the newest N kvnos of each principal, and remove `.bak-<kvno>` copies older than them.
    Prune(super::keytab_prune::PruneArgs),
}

pub fn run(cmd: KeytabCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        KeytabCmd::List { file } => list(&file),
        KeytabCmd::Add(a) => super::keytab_add::run(a),
        KeytabCmd::Remove(a) => super::keytab_prune::remove(a),
        KeytabCmd::Prune(a) => super::keytab_prune::prune(a),
    }
}

/// Reads and parses a keytab, naming the file in every error.
pub fn read_keytab(path: &Path) -> anyhow::Result<Keytab> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    Keytab::parse(&bytes).with_context(|| format!("{}: not a valid keytab", path.display()))
}

fn list(path: &Path) -> anyhow::Result<ExitCode> {
    let kt = read_keytab(path)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "Keytab: {}", path.display())?;
    writeln!(
        out,
        "{:>5}  {:<20}  {:<28}  PRINCIPAL",
        "KVNO", "TIMESTAMP (UTC)", "ENCTYPE"
    )?;
    for e in &kt.entries {
        let ts = chrono::DateTime::from_timestamp(e.timestamp as i64, 0)
            .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|| e.timestamp.to_string());
        writeln!(
            out,
            "{:>5}  {:<20}  {:<28}  {}",
            e.kvno,
            ts,
            e.key.etype().name(),
            e.principal
        )?;
    }
    if kt.skipped_unsupported > 0 {
        writeln!(
            out,
            "({} entries with unsupported enctypes (DES, …) skipped)",
            kt.skipped_unsupported
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `bytes` to `path` through a new private file with a random name in the same
/// directory and a rename ([`crate::secret_file::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    crate::secret_file::write_atomic(path, bytes).with_context(|| format!("{}: cannot write", path.display()))
}
