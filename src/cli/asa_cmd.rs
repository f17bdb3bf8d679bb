//! `kedge asa roll`: change the ASA password through kpasswd (RFC 3244) and write the new keys.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;

use crate::asa::{roll, RollOptions};
use crate::krb::ad_account::AccountType;
use crate::krb::principal::Principal;

#[derive(Subcommand, Debug)]
pub enum AsaCmd {
    /// Change the ASA's password (kpasswd) and add the new keys (kvno + 1) to the keytab: at once
    /// (kedge-only deployments), or staged with `prepare` / `commit` where the CAS members
    /// validate too.
    Roll(RollCmd),
}

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct RollCmd {
    #[command(subcommand)]
    step: Option<super::asa_staged::RollStep>,
    #[command(flatten)]
    oneshot: OneShot,
}

/// The one-shot roll's arguments.
#[derive(clap::Args, Debug)]
pub struct OneShot {
    /// The keytab with the current keys; rewritten atomically, old copy kept as <file>.bak-<kvno>.
    #[arg(long, required = true)]
    keytab: Option<PathBuf>,
    /// The ASA principal, e.g. EXCH2010ASA$@CONTOSO.COM or HTTP/outlook.contoso.com@KEDGE.TEST.
    #[arg(long, required = true)]
    principal: Option<String>,
    /// KDC host:port (TCP).
    #[arg(long, required = true)]
    kdc: Option<String>,
    /// kpasswd host:port (default: the KDC's host, port 464).
    #[arg(long)]
    kpasswd: Option<String>,
    /// Realm, when --principal has none.
    #[arg(long)]
    realm: Option<String>,
    /// Salt for the new keys (default: the salt the KDC names in PA-ETYPE-INFO2).
    #[arg(long)]
    salt: Option<String>,
    /// The ASA's AD account type (`computer` or `user`): AD's salt rule for the new keys
    /// when the KDC names no salt.
    #[arg(long)]
    account_type: Option<AccountType>,
    /// Prove the current key with an AS exchange and show what would be done; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the new password (Exchange needs it for -AlternateServiceAccountCredential).
    #[arg(long)]
    show_password: bool,
    /// Wait this long between pre-loading the new key into the keytab and changing the
    /// password, so watching kedge instances hold it first (keep above keytab_poll_ms).
    #[arg(long, default_value_t = 2500)]
    preload_wait_ms: u64,
    /// Timeout per exchange, seconds.
    #[arg(long, default_value_t = 10)]
    timeout_secs: u64,
    /// After the roll, remove `.bak-<kvno>` copies older than the newest N kvnos (the keys
    /// themselves stay: `kedge keytab prune --keep N` removes those).
    #[arg(long, default_value_t = 2)]
    keep_backups: usize,
}

pub fn run(cmd: AsaCmd) -> anyhow::Result<ExitCode> {
    let AsaCmd::Roll(cmd) = cmd;
    if let Some(step) = cmd.step {
        return super::asa_staged::run(step);
    }
    let OneShot {
        keytab,
        principal,
        kdc,
        kpasswd,
        realm,
        salt,
        account_type,
        dry_run,
        show_password,
        timeout_secs,
        preload_wait_ms,
        keep_backups,
    } = cmd.oneshot;
    // Required by clap whenever no step is given; Options only so `prepare`/`commit` parse.
    let (Some(keytab), Some(principal), Some(kdc)) = (keytab, principal, kdc) else {
        anyhow::bail!("give --keytab, --principal and --kdc");
    };
    let p = Principal::parse(&principal, realm.as_deref().unwrap_or(""))
        .with_context(|| format!("--principal {principal:?}"))?;
    if p.realm.is_empty() {
        anyhow::bail!("--principal {principal:?} needs a realm (…@CONTOSO.COM) or --realm");
    }
    let opts = RollOptions {
        keytab,
        principal: p,
        kdc,
        kpasswd,
        dry_run,
        salt,
        account_type,
        timeout: Duration::from_secs(timeout_secs.max(1)),
        preload_wait: Duration::from_millis(preload_wait_ms),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let report = rt.block_on(roll(&opts))?;
    outln!(
        "current key of {} (kvno {}) accepted by the KDC{}",
        report.principal,
        report.old_kvno,
        if report.preauthenticated {
            " (PA-ENC-TIMESTAMP)"
        } else {
            ""
        }
    )?;
    outln!("salt: {} (from {})", report.salt, report.salt_source)?;
    match report.new_kvno {
        None => {
            outln!(
                "dry run: would change the password through kpasswd at {} and add kvno {} ({}) for: {}",
                opts.kpasswd.clone().unwrap_or_else(|| format!(
                    "{}:464",
                    opts.kdc.rsplit_once(':').map(|(h, _)| h).unwrap_or(&opts.kdc)
                )),
                report.old_kvno + 1,
                report.enctypes.join(", "),
                report.principals.join(", ")
            )?;
            outln!("nothing was changed")?;
        }
        Some(kvno) => {
            outln!(
                "password changed; added kvno {kvno} ({}) for: {}",
                report.enctypes.join(", "),
                report.principals.join(", ")
            )?;
            if let Some(b) = &report.backup {
                outln!("previous keytab kept as {}", b.display())?;
            }
            match crate::asa::backups::prune(&opts.keytab, kvno, keep_backups) {
                Ok(gone) => {
                    for b in gone {
                        outln!(
                            "removed old backup {} (keeping {keep_backups} kvnos)",
                            b.path.display()
                        )?;
                    }
                }
                Err(e) => outln!("warning: old backups not removed: {e}")?,
            }
            match &report.verified {
                Some(Ok(())) => outln!("verified: the KDC accepts the new key")?,
                Some(Err(e)) => outln!(
                    "warning: the new key was not accepted yet ({e}); AD replication may lag — check again"
                )?,
                None => {}
            }
            outln!(
                "kedge instances watching this keytab load the new keys by themselves; copy it to the others"
            )?;
            if show_password {
                if let Some(pw) = &report.password {
                    errln!(
                        "WARNING: the ASA password follows; it is a secret. Give it to every CAS member with"
                    );
                    errln!(
                        "  Set-ClientAccessServer <CAS> -AlternateServiceAccountCredential (Get-Credential)"
                    );
                    outln!("new password: {}", pw.as_str())?;
                }
            } else {
                outln!("(password not shown. This one-shot roll is for deployments where only kedge validates; where the CAS members validate too (passthrough routes, RPC), roll with `kedge asa roll prepare` / `commit` so they get the password before AD changes it)")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
