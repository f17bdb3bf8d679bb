//! `kedge asa roll`: change the ASA's password through the Kerberos change-password protocol
//! and write the new keys next to the old ones.
//!
//! 1. Read the keytab; take the keys of the principal at its highest kvno.
//! 2. AS exchange for `kadmin/changepw` with those keys (proves them; learns the salt the KDC
//!    uses from PA-ETYPE-INFO2). `--dry-run` stops here.
//! 3. Generate a password, derive the new keys (same enctypes, the KDC's salt, kvno + 1) for
//!    every principal of the keytab that shares the current key (one ASA, many SPN names).
//! 4. Pre-load: keep the old file as `<file>.bak-<kvno>` (`-1`, `-2`, … when that name is
//!    taken) and put the new keytab (old keys plus the new kvno) in place *before* the password
//!    changes (every file created new, 0600, never through a symlink, the new keytab under a
//!    random temporary name first: [`crate::secret_file`]), then wait `preload_wait` so running
//!    watchers hold the new key before the KDC issues a single ticket in it (otherwise tickets
//!    issued between the change and the reload would fail). Unused until then, the extra key
//!    is harmless; a failed write here changes nothing.
//! 5. kpasswd (RFC 3244). On failure the previous keytab is put back. On success the new key is
//!    checked with a second AS exchange.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use zeroize::Zeroizing;

use super::kdc_io::{self, KdcIoError};
use super::kpasswd_io::{self, ChangeError};
use super::password;
use crate::krb::ad_account::{AccountType, AdAccount};
use crate::krb::crypto::{string_to_key, CryptoError, EncType, Key};
use crate::krb::kdc_client::as_req::{AsError, AsExchange, AsStep, AsTicket};
use crate::krb::kdc_client::changepw_principal;
use crate::krb::kdc_client::kpasswd::KpasswdError;
use crate::krb::keyset::principal_matches;
use crate::krb::keytab::{default_salt, Keytab, KeytabEntry, KeytabError};
use crate::krb::principal::Principal;
use crate::secret_file;

/// What to roll and where.
#[derive(Clone, Debug)]
pub struct RollOptions {
    /// The keytab holding the current keys (rewritten in place).
    pub keytab: PathBuf,
    /// The ASA principal whose password changes (realm included).
    pub principal: Principal,
    /// KDC `host:port` for the AS exchange.
    pub kdc: String,
    /// kpasswd `host:port`; default: the KDC's host, port 464.
    pub kpasswd: Option<String>,
    /// Only prove the current key; change nothing.
    pub dry_run: bool,
    /// Salt override (default: the one the KDC names, else AD's rule for the account type).
    pub salt: Option<String>,
    /// The ASA's AD account type, for the salt when the KDC names none (default: the
    /// principal's default salt, which is AD's user-account rule).
    pub account_type: Option<AccountType>,
    /// Per-exchange timeout.
    pub timeout: Duration,
    /// How long to wait between installing the pre-loaded keytab and changing the password
    /// (longer than the watchers' `keytab_poll_ms`).
    pub preload_wait: Duration,
}

/// What a roll did. `password` is set only after a successful change; never log it.
#[derive(Debug)]
pub struct RollReport {
    /// The principal rolled.
    pub principal: String,
    /// The kvno whose key proved itself.
    pub old_kvno: u32,
    /// The kvno written (`None` on a dry run).
    pub new_kvno: Option<u32>,
    /// Principals that got the new keys (all those sharing the old key).
    pub principals: Vec<String>,
    /// Enctypes derived.
    pub enctypes: Vec<&'static str>,
    /// The salt used (or that would be used).
    pub salt: String,
    /// Where the salt came from: `kdc`, `option` or `default`.
    pub salt_source: &'static str,
    /// Whether the KDC required pre-authentication (PA-ENC-TIMESTAMP was sent).
    pub preauthenticated: bool,
    /// Copy of the previous keytab.
    pub backup: Option<PathBuf>,
    /// Whether an AS exchange with the new key succeeded afterwards.
    pub verified: Option<Result<(), String>>,
    /// The new password (for `Set-ClientAccessServer -AlternateServiceAccountCredential`).
    pub password: Option<Zeroizing<String>>,
}

/// Why a roll failed. No variant carries a password or key bytes.
#[derive(Debug, thiserror::Error)]
pub enum RollError {
    /// The keytab cannot be read or parsed.
    #[error("{path}: {reason}")]
    Keytab { path: String, reason: String },
    /// The keytab has no key for the principal.
    #[error("{path} holds no key for {principal} (it has: {have})")]
    NoKeys {
        path: String,
        principal: String,
        have: String,
    },
    /// The AS exchange failed (wrong key, unknown principal, …).
    #[error(transparent)]
    As(#[from] AsError),
    /// Network.
    #[error(transparent)]
    Io(#[from] KdcIoError),
    /// Key derivation.
    #[error("deriving the new keys: {0}")]
    Crypto(#[from] CryptoError),
    /// kpasswd refused or failed: the password did NOT change.
    #[error("{0} (the password was not changed; the previous keytab was put back)")]
    Kpasswd(#[from] KpasswdError),
    /// Writing the new keytab failed before the password changed.
    #[error("{path}: cannot install the new keytab: {reason} (the password was not changed)")]
    Stage { path: String, reason: String },
    /// kpasswd failed and the previous keytab could not be put back.
    #[error("{error}; and restoring {path} from {backup} failed: {reason} — restore it by hand")]
    Restore {
        error: Box<RollError>,
        path: String,
        backup: String,
        reason: String,
    },
}

fn read(path: &Path) -> Result<Keytab, RollError> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| RollError::Keytab {
        path: path.display().to_string(),
        reason: format!("cannot read: {e}"),
    })?);
    Keytab::parse(&bytes).map_err(|e: KeytabError| RollError::Keytab {
        path: path.display().to_string(),
        reason: format!("not a valid keytab: {e}"),
    })
}

/// Strongest first: the KDC picks from our list in order.
fn strength(e: EncType) -> u8 {
    match e {
        EncType::Aes256CtsHmacSha384192 => 0,
        EncType::Aes256CtsHmacSha196 => 1,
        EncType::Aes128CtsHmacSha256128 => 2,
        EncType::Aes128CtsHmacSha196 => 3,
        EncType::Rc4Hmac => 4,
    }
}

async fn as_exchange(opts: &RollOptions, keys: Vec<Key>) -> Result<AsTicket, RollError> {
    let server = changepw_principal(&opts.principal.realm);
    let mut ex = AsExchange::new(opts.principal.clone(), server, keys, rand::random());
    let mut msg = ex.first_request(SystemTime::now());
    for _ in 0..3 {
        let (reply, _) = kdc_io::exchange(&opts.kdc, &msg, opts.timeout).await?;
        match ex.handle_reply(&reply, SystemTime::now())? {
            AsStep::Retry(m) => msg = m,
            AsStep::Done(t) => return Ok(*t),
        }
    }
    Err(AsError::PreauthLoop.into())
}

/// The salt AD's rules give when the KDC names none: the account type's, else the default.
fn fallback_salt(opts: &RollOptions) -> (String, &'static str) {
    let p = &opts.principal;
    match (opts.account_type, p.components.as_slice()) {
        (Some(kind), [name]) => match AdAccount::new(kind, name, &p.realm) {
            Ok(a) => (a.salt(), kind.as_str()),
            Err(_) => (default_salt(p), "default"),
        },
        _ => (default_salt(p), "default"),
    }
}

fn kpasswd_addr(opts: &RollOptions) -> String {
    kpasswd_io::kpasswd_addr(opts.kpasswd.as_deref(), &opts.kdc)
}

/// Runs a roll (or a dry run). See the module documentation for the steps.
pub async fn roll(opts: &RollOptions) -> Result<RollReport, RollError> {
    let shown = opts.keytab.display().to_string();
    let kt = read(&opts.keytab)?;
    let mine = |e: &&KeytabEntry| principal_matches(&e.principal, &opts.principal);
    let old_kvno = kt
        .entries
        .iter()
        .filter(mine)
        .map(|e| e.kvno)
        .max()
        .ok_or_else(|| {
            let mut have: Vec<String> = kt
                .entries
                .iter()
                .map(|e| format!("{} kvno {}", e.principal, e.kvno))
                .collect();
            have.sort();
            have.dedup();
            RollError::NoKeys {
                path: shown.clone(),
                principal: opts.principal.to_string(),
                have: if have.is_empty() {
                    "nothing".into()
                } else {
                    have.join(", ")
                },
            }
        })?;
    let mut current: Vec<&KeytabEntry> = kt
        .entries
        .iter()
        .filter(mine)
        .filter(|e| e.kvno == old_kvno)
        .collect();
    current.sort_by_key(|e| strength(e.key.etype()));
    current.dedup_by_key(|e| e.key.etype());
    let keys: Vec<Key> = current.iter().map(|e| e.key.clone()).collect();
    let enctypes: Vec<EncType> = keys.iter().map(Key::etype).collect();

    let tkt = as_exchange(opts, keys).await?;
    let etype0 = enctypes[0];
    let (salt, salt_source) = match (&opts.salt, tkt.salt_for(etype0)) {
        (Some(s), _) => (s.clone(), "option"),
        (None, Some(s)) => (s.to_string(), "kdc"),
        (None, None) => fallback_salt(opts),
    };
    // Every principal that holds the same key at the same kvno is the same account.
    let mut principals: Vec<Principal> = kt
        .entries
        .iter()
        .filter(|e| e.kvno == old_kvno)
        .filter(|e| {
            current
                .iter()
                .any(|c| c.key.etype() == e.key.etype() && c.key.expose_bytes() == e.key.expose_bytes())
        })
        .map(|e| e.principal.clone())
        .collect();
    principals.sort();
    principals.dedup();
    let mut report = RollReport {
        principal: opts.principal.to_string(),
        old_kvno,
        new_kvno: None,
        principals: principals.iter().map(ToString::to_string).collect(),
        enctypes: enctypes.iter().map(|e| e.name()).collect(),
        salt: salt.clone(),
        salt_source,
        preauthenticated: tkt.preauthenticated,
        backup: None,
        verified: None,
        password: None,
    };
    if opts.dry_run {
        return Ok(report);
    }

    let new_kvno = old_kvno.wrapping_add(1).max(1);
    let password = password::generate();
    let mut new_keys = Vec::new();
    for &et in &enctypes {
        new_keys.push(string_to_key(
            et,
            password.as_bytes(),
            salt.as_bytes(),
            tkt.iterations_for(et),
        )?);
    }
    let timestamp = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0);
    let mut next = kt.clone();
    next.entries
        .retain(|e| !(e.kvno == new_kvno && principals.iter().any(|p| p == &e.principal)));
    for p in &principals {
        for k in &new_keys {
            next.entries.push(KeytabEntry {
                principal: p.clone(),
                timestamp,
                kvno: new_kvno,
                key: k.clone(),
            });
        }
    }
    let bytes = Zeroizing::new(next.to_bytes());
    let stage_err = |e: std::io::Error| RollError::Stage {
        path: opts.keytab.display().to_string(),
        reason: e.to_string(),
    };
    let old = Zeroizing::new(std::fs::read(&opts.keytab).map_err(stage_err)?);
    let backup =
        secret_file::write_backup(&opts.keytab, &format!(".bak-{old_kvno}"), &old).map_err(stage_err)?;
    secret_file::write_atomic(&opts.keytab, &bytes).map_err(stage_err)?;
    tokio::time::sleep(opts.preload_wait).await;

    if let Err(e) = change_password(opts, &tkt, password.as_bytes()).await {
        let restore = secret_file::write_atomic(&opts.keytab, &old);
        return Err(match restore {
            Ok(()) => e,
            Err(r) => RollError::Restore {
                error: Box::new(e),
                path: shown,
                backup: backup.display().to_string(),
                reason: r.to_string(),
            },
        });
    }
    report.new_kvno = Some(new_kvno);
    report.password = Some(password);
    report.backup = Some(backup);
    let verify_opts = RollOptions {
        dry_run: true,
        ..opts.clone()
    };
    let check = as_exchange(&verify_opts, new_keys).await;
    report.verified = Some(check.map(|_| ()).map_err(|e| e.to_string()));
    Ok(report)
}

/// The kpasswd exchange of `kpasswd_io`, its failure as a roll's.
async fn change_password(opts: &RollOptions, tkt: &AsTicket, password: &[u8]) -> Result<(), RollError> {
    kpasswd_io::change_password(&kpasswd_addr(opts), opts.timeout, tkt, password)
        .await
        .map_err(|e| match e {
            ChangeError::Io(e) => RollError::Io(e),
            ChangeError::Kpasswd(e) => RollError::Kpasswd(e),
        })
}
