//! `kedge asa roll prepare|commit`: the staged roll for sites whose CAS members validate too
//! (`crate::asa::staged_roll`): prepare pre-loads kvno + 1 everywhere and prints the
//! `Set-ClientAccessServer` lines; commit changes AD's password once the members hold it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use crate::asa::cas_commands::{self, ExchangeVersion};
use crate::asa::staged_roll::{self, StagedOptions};
use crate::asa::{backups, replicas};
use crate::krb::ad_account::{AccountType, AdAccount};
use crate::krb::principal::Principal;

#[derive(Subcommand, Debug)]
pub enum RollStep {
    /// Prove the current key, put the new password in --password-file (generated unless the
    /// file exists), pre-load its kvno + 1 keys into the keytab, print the lines that give it to
    /// the CAS members. AD's password does not change yet.
    Prepare(PrepareArgs),
    /// Change AD's password to the prepared one (kpasswd), prove the new key, destroy the
    /// password file.
    Commit(CommitArgs),
}

/// What both steps take.
#[derive(Args, Debug)]
pub struct Common {
    /// The keytab kedge loads.
    #[arg(long)]
    keytab: PathBuf,
    /// The ASA's account principal, e.g. EXCH2010ASA$@CONTOSO.COM (or give --account and --realm).
    #[arg(long)]
    principal: Option<String>,
    /// The ASA's sAMAccountName (instead of --principal).
    #[arg(long)]
    account: Option<String>,
    /// The ASA's AD account type.
    #[arg(long)]
    account_type: Option<AccountType>,
    /// The realm (with --account, or when --principal has none).
    #[arg(long)]
    realm: Option<String>,
    /// KDC host:port (TCP).
    #[arg(long)]
    kdc: String,
    /// kpasswd host:port (default: the KDC's host, port 464).
    #[arg(long)]
    kpasswd: Option<String>,
    /// Salt for the new keys (default: the KDC's, else AD's rule for the account type).
    #[arg(long)]
    salt: Option<String>,
    /// The file holding the new password between prepare and commit (created 0600 by prepare
    /// unless it exists; destroyed by commit).
    #[arg(long)]
    password_file: PathBuf,
    /// Timeout per KDC exchange, seconds.
    #[arg(long, default_value_t = 10)]
    timeout_secs: u64,
}

#[derive(Args, Debug)]
pub struct PrepareArgs {
    #[command(flatten)]
    common: Common,
    /// CAS members to give the password to (comma-separated or repeated; default: every CAS).
    #[arg(long, value_delimiter = ',')]
    member: Vec<String>,
    /// The members' Exchange version: 2010/2013 (Set-ClientAccessServer) or 2016/2019/SE
    /// (Set-ClientAccessService).
    #[arg(long, default_value = "2010")]
    exchange: ExchangeVersion,
    /// NetBIOS domain for the credential (default: the realm's first label).
    #[arg(long)]
    domain: Option<String>,
    /// kedge replicas' admin addresses (comma-separated): wait until each reports the new kvno
    /// as its Latest credential.
    #[arg(long, value_delimiter = ',')]
    wait_replicas: Vec<String>,
    /// How long to wait for the replicas, seconds.
    #[arg(long, default_value_t = 120)]
    wait_secs: u64,
}

#[derive(Args, Debug)]
pub struct CommitArgs {
    #[command(flatten)]
    common: Common,
    /// kedge replicas' admin addresses (comma-separated; a name resolving to several addresses,
    /// such as a headless Service, means each): commit only once every one reports the staged
    /// kvno as Latest.
    #[arg(long, value_delimiter = ',')]
    wait_replicas: Vec<String>,
    /// How long to wait for the replicas, seconds.
    #[arg(long, default_value_t = 120)]
    wait_secs: u64,
    /// After the commit, remove `.bak-<kvno>` copies older than the newest N kvnos.
    #[arg(long, default_value_t = 2)]
    keep_backups: usize,
}

fn options(c: &Common) -> anyhow::Result<StagedOptions> {
    let principal = match (&c.principal, &c.account) {
        (Some(p), None) => {
            let p = Principal::parse(p, c.realm.as_deref().unwrap_or(""))
                .with_context(|| format!("--principal {p:?}"))?;
            if p.realm.is_empty() {
                bail!("--principal needs a realm (…@CONTOSO.COM) or --realm");
            }
            p
        }
        (None, Some(a)) => {
            let realm = c.realm.as_deref().context("--account needs --realm")?;
            AdAccount::new(c.account_type.unwrap_or(AccountType::Computer), a, realm)?.principal()
        }
        _ => bail!("give the ASA as --principal NAME@REALM or --account NAME --realm REALM"),
    };
    Ok(StagedOptions {
        keytab: c.keytab.clone(),
        principal,
        kdc: c.kdc.clone(),
        kpasswd: c.kpasswd.clone(),
        salt: c.salt.clone(),
        account_type: c.account_type,
        password_file: c.password_file.clone(),
        timeout: Duration::from_secs(c.timeout_secs.max(1)),
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

pub fn run(step: RollStep) -> anyhow::Result<ExitCode> {
    match step {
        RollStep::Prepare(a) => prepare(a),
        RollStep::Commit(a) => commit(a),
    }
}

fn prepare(a: PrepareArgs) -> anyhow::Result<ExitCode> {
    let opts = options(&a.common)?;
    let rt = runtime()?;
    let p = rt.block_on(staged_roll::prepare(&opts))?;
    outln!(
        "current key of {} (kvno {}) accepted by the KDC",
        opts.principal,
        p.old_kvno
    )?;
    outln!("salt: {} (from {})", p.salt.0, p.salt.1)?;
    outln!(
        "staged kvno {} ({}) beside kvno {} for: {}",
        p.new_kvno,
        p.enctypes.join(", "),
        p.old_kvno,
        p.principals.join(", ")
    )?;
    outln!("previous keytab kept as {}", p.backup.display())?;
    outln!(
        "new password {} {} (mode 0600; never printed)",
        if p.generated {
            "generated into"
        } else {
            "read from"
        },
        opts.password_file.display()
    )?;
    outln!(
        "AD's password is unchanged: tickets of kvno {} keep working everywhere",
        p.old_kvno
    )?;
    if !a.wait_replicas.is_empty() {
        outln!(
            "waiting up to {} s for {} replica(s) to load kvno {} …",
            a.wait_secs,
            a.wait_replicas.len(),
            p.new_kvno
        )?;
        let waited = rt.block_on(replicas::wait_for_kvno(
            &a.wait_replicas,
            p.new_kvno,
            Duration::from_secs(a.wait_secs),
            Duration::from_millis(250),
        ));
        match waited {
            Ok(all) => {
                out!("{}", replicas::render(&all))?;
                outln!("every replica holds kvno {} as Latest", p.new_kvno)?;
            }
            Err(behind) => {
                outln!(
                    "NOT READY: kvno {} is staged, but these replicas do not hold it: {}",
                    p.new_kvno,
                    behind.join("; ")
                )?;
                outln!(
                    "copy {} to them (or fix their keytab reload), check with `kedge status --admin {}`, and commit only when they agree",
                    opts.keytab.display(),
                    a.wait_replicas.join(",")
                )?;
                return Ok(ExitCode::from(1));
            }
        }
    }
    let realm = &opts.principal.realm;
    let domain = a
        .domain
        .clone()
        .unwrap_or_else(|| crate::asa::spn::netbios_from_realm(realm));
    let down_level = format!("{}\\{}", domain.to_ascii_uppercase(), opts.principal.name());
    let file_name = opts
        .password_file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("asa.password");
    outln!()?;
    outln!(
        "Next: copy {} to an Exchange server over a protected channel, and in the",
        opts.password_file.display()
    )?;
    outln!("Exchange Management Shell give every CAS member the new password (Latest; the old one stays Previous):")?;
    outln!()?;
    out!(
        "{}",
        cas_commands::render(&down_level, file_name, &a.member, a.exchange)
    )?;
    outln!()?;
    outln!("When every member shows it as Latest (and every kedge replica holds kvno {}), delete the copy and run:", p.new_kvno)?;
    outln!(
        "kedge asa roll commit --keytab {} --principal {} --kdc {} --password-file {}",
        opts.keytab.display(),
        opts.principal,
        opts.kdc,
        opts.password_file.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

fn commit(a: CommitArgs) -> anyhow::Result<ExitCode> {
    let opts = options(&a.common)?;
    let rt = runtime()?;
    if !a.wait_replicas.is_empty() {
        let kt = super::keytab_cmd::read_keytab(&opts.keytab)?;
        let staged = crate::asa::key_proof::newest_entries(&kt, &opts.principal)
            .first()
            .map(|e| e.kvno)
            .with_context(|| format!("{} holds no key for {}", opts.keytab.display(), opts.principal))?;
        outln!(
            "waiting up to {} s for the replicas to hold kvno {staged} …",
            a.wait_secs
        )?;
        let waited = rt.block_on(replicas::wait_for_kvno(
            &a.wait_replicas,
            staged,
            Duration::from_secs(a.wait_secs),
            Duration::from_millis(250),
        ));
        match waited {
            Ok(all) => out!("{}", replicas::render(&all))?,
            Err(behind) => {
                outln!(
                    "NOT COMMITTED: these replicas do not hold kvno {staged}: {}; AD's password was not changed",
                    behind.join("; ")
                )?;
                return Ok(ExitCode::from(1));
            }
        }
    }
    let c = rt.block_on(staged_roll::commit(&opts))?;
    if c.already {
        outln!(
            "the KDC already accepts kvno {} of {}: the password was changed before; nothing to do",
            c.new_kvno,
            opts.principal
        )?;
    } else {
        outln!(
            "password of {} changed through kpasswd: kvno {} → {}",
            opts.principal,
            c.old_kvno,
            c.new_kvno
        )?;
        outln!("verified: the KDC accepts the kvno {} key", c.new_kvno)?;
    }
    outln!("{} destroyed", opts.password_file.display())?;
    match backups::prune(&opts.keytab, c.new_kvno, a.keep_backups) {
        Ok(gone) => {
            for b in gone {
                outln!("removed old backup {}", b.path.display())?;
            }
        }
        Err(e) => outln!("warning: old backups not removed: {e}")?,
    }
    outln!(
        "kvno {} stays loaded as Previous for tickets issued before the change; \
         `kedge keytab prune --keep 2` removes older keys",
        c.old_kvno
    )?;
    Ok(ExitCode::SUCCESS)
}
