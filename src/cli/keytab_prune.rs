//! `kedge keytab remove|prune`: taking old kvnos (or a principal) out of an ASA keytab, and the
//! `.bak-<kvno>` copies `asa roll` left with them. The file is rewritten atomically (mode 0600)
//! and running kedge instances hot-load the smaller key set. Never prints key bytes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;

use super::keytab_cmd::{read_keytab, write_atomic};
use crate::asa::backups;
use crate::krb::keytab::{Keytab, Removed};
use crate::krb::principal::Principal;

#[derive(Args, Debug)]
pub struct RemoveArgs {
    /// Keytab file.
    pub file: PathBuf,
    /// Remove every entry of this key version number.
    #[arg(long)]
    pub kvno: Option<u32>,
    /// Remove the entries of this principal (with --kvno: only at that kvno).
    #[arg(long)]
    pub principal: Option<String>,
    /// Show what would be removed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Keytab file.
    pub file: PathBuf,
    /// How many kvnos of each principal to keep, newest first (2 = Latest and Previous).
    #[arg(long, default_value_t = 2)]
    pub keep: usize,
    /// Show what would be removed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

fn show(removed: &[Removed], dry_run: bool) -> std::io::Result<()> {
    let verb = if dry_run { "would remove" } else { "removed" };
    for r in removed {
        outln!("{verb} {} kvno {} ({} entries)", r.principal, r.kvno, r.entries)?;
    }
    Ok(())
}

fn save(path: &std::path::Path, kt: &Keytab, dry_run: bool) -> anyhow::Result<()> {
    if dry_run {
        outln!("dry run: nothing was changed")?;
        return Ok(());
    }
    write_atomic(path, &zeroize::Zeroizing::new(kt.to_bytes()))
}

pub fn remove(a: RemoveArgs) -> anyhow::Result<ExitCode> {
    if a.kvno.is_none() && a.principal.is_none() {
        bail!("say what to remove: --kvno N and/or --principal NAME@REALM");
    }
    let principal = a
        .principal
        .as_deref()
        .map(|p| Principal::parse(p, "").with_context(|| format!("--principal {p:?}")))
        .transpose()?;
    let mut kt = read_keytab(&a.file)?;
    let removed = kt.remove(a.kvno, principal.as_ref());
    if removed.is_empty() {
        outln!("{}: no entry matches; nothing was changed", a.file.display())?;
        return Ok(ExitCode::from(1));
    }
    if kt.entries.is_empty() {
        bail!(
            "{}: that would remove every key (kedge would refuse the empty keytab); nothing was changed",
            a.file.display()
        );
    }
    show(&removed, a.dry_run)?;
    save(&a.file, &kt, a.dry_run)?;
    Ok(ExitCode::SUCCESS)
}

pub fn prune(a: PruneArgs) -> anyhow::Result<ExitCode> {
    if a.keep == 0 {
        bail!("--keep must be at least 1");
    }
    let mut kt = read_keytab(&a.file)?;
    let removed = kt.prune(a.keep);
    show(&removed, a.dry_run)?;
    if !removed.is_empty() {
        save(&a.file, &kt, a.dry_run)?;
    }
    let newest = kt.entries.iter().map(|e| e.kvno).max().unwrap_or(0);
    let all = backups::list(&a.file).with_context(|| format!("{}: listing backups", a.file.display()))?;
    let expired = backups::expired(&all, newest, a.keep);
    for b in &expired {
        if a.dry_run {
            outln!("would remove backup {}", b.path.display())?;
        } else {
            std::fs::remove_file(&b.path).with_context(|| format!("{}: cannot remove", b.path.display()))?;
            outln!("removed backup {}", b.path.display())?;
        }
    }
    if removed.is_empty() && expired.is_empty() {
        outln!(
            "{}: nothing older than the newest {} kvno(s) of each principal",
            a.file.display(),
            a.keep
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
