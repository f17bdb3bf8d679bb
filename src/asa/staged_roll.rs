//! The staged ASA roll for sites where the CAS members validate too (passthrough routes, RPC):
//! the new password is known and its keys are held everywhere *before* AD's password changes,
//! so no ticket of either kvno ever fails anywhere.
//!
//! `prepare`: prove the current key (AS exchange, learning AD's salt), take the new password
//! from the password file or generate one into it (created exclusively, mode 0600), derive the
//! kvno + 1 keys and install the keytab with them beside the current ones (backup kept). Then
//! the members get the password (`Set-ClientAccessServer -AlternateServiceAccountCredential`)
//! and hold it as Latest, the old one as Previous; every kedge replica hot-loads kvno + 1.
//!
//! `commit`: check the password file still matches the pre-loaded keys, prove the current key
//! again, change the password through kpasswd (RFC 3244), prove the new key, destroy the file.
//! A commit that finds the change already made (the new key is accepted) only destroys the file.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use zeroize::Zeroizing;

use super::key_proof::{as_exchange, newest_entries, ProofError};
use super::kpasswd_io::{change_password, kpasswd_addr, ChangeError};
use super::password;
use super::secret_write;
use crate::krb::ad_account::{AccountType, AdAccount};
use crate::krb::crypto::{string_to_key, CryptoError, EncType, Key};
use crate::krb::kdc_client::as_req::{AsError, AsTicket};
use crate::krb::kdc_client::changepw_principal;
use crate::krb::keyset::principal_matches;
use crate::krb::keytab::{default_salt, Keytab, KeytabEntry};
use crate::krb::principal::Principal;

/// What both steps need.
#[derive(Clone, Debug)]
pub struct StagedOptions {
    /// The keytab kedge loads (rewritten in place by prepare).
    pub keytab: PathBuf,
    /// The ASA's account principal (`EXCH2010ASA$@CONTOSO.COM`).
    pub principal: Principal,
    /// KDC `host:port`.
    pub kdc: String,
    /// kpasswd `host:port` (default: the KDC's host, port 464).
    pub kpasswd: Option<String>,
    /// Salt override (default: the KDC's, else AD's rule for `account_type`).
    pub salt: Option<String>,
    /// The ASA's AD account type.
    pub account_type: Option<AccountType>,
    /// The file holding the new password between prepare and commit (mode 0600).
    pub password_file: PathBuf,
    /// Per-exchange timeout.
    pub timeout: Duration,
}

/// What prepare did.
#[derive(Debug)]
pub struct Prepared {
    /// The kvno whose key the KDC accepted.
    pub old_kvno: u32,
    /// The kvno pre-loaded.
    pub new_kvno: u32,
    /// Principals that got kvno + 1 (all that share the current key).
    pub principals: Vec<String>,
    /// Enctypes derived.
    pub enctypes: Vec<&'static str>,
    /// Salt used and where it came from (`kdc`, `option`, `computer`, `user`, `default`).
    pub salt: (String, &'static str),
    /// Whether the password was generated (else read from the file).
    pub generated: bool,
    /// Copy of the keytab before.
    pub backup: PathBuf,
}

/// What commit did.
#[derive(Debug)]
pub struct Committed {
    /// The kvno before.
    pub old_kvno: u32,
    /// The kvno now current in AD.
    pub new_kvno: u32,
    /// The change had been made already (only the password file was destroyed).
    pub already: bool,
}

/// Why a step failed. No variant carries a password or key bytes.
#[derive(Debug, thiserror::Error)]
pub enum StagedRollError {
    /// The keytab cannot be read or parsed.
    #[error("{path}: {reason}")]
    Keytab { path: String, reason: String },
    /// Nothing for the principal.
    #[error("{path} holds no key for {principal}")]
    NoKeys { path: String, principal: String },
    /// The KDC refused the current key, or the network failed.
    #[error("proving the current key: {0}")]
    Proof(#[from] ProofError),
    /// Key derivation.
    #[error("deriving the new keys: {0}")]
    Crypto(#[from] CryptoError),
    /// The password file.
    #[error("{path}: {reason}")]
    PasswordFile { path: String, reason: String },
    /// Writing the keytab failed (nothing changed in AD).
    #[error("{path}: cannot install the new keytab: {reason} (AD's password was not changed)")]
    Stage { path: String, reason: String },
    /// Commit without a prepared kvno + 1 matching the password file.
    #[error("{0}")]
    NotPrepared(String),
    /// kpasswd refused or failed: the password did not change.
    #[error(
        "{0} (AD's password was NOT changed; the password file is kept: fix the cause and commit again)"
    )]
    Change(#[from] ChangeError),
    /// The change went through but the new key is not accepted yet.
    #[error("the password was changed but the KDC does not accept the kvno {kvno} key yet ({reason}); AD replication may lag: run commit again to re-check (it then only verifies)")]
    Unverified { kvno: u32, reason: String },
}

fn read_keytab(path: &Path) -> Result<Keytab, StagedRollError> {
    let err = |reason: String| StagedRollError::Keytab {
        path: path.display().to_string(),
        reason,
    };
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| err(format!("cannot read: {e}")))?);
    Keytab::parse(&bytes).map_err(|e| err(format!("not a valid keytab: {e}")))
}

fn changepw(opts: &StagedOptions) -> Principal {
    changepw_principal(&opts.principal.realm)
}

async fn prove_kvno(opts: &StagedOptions, keys: Vec<Key>) -> Result<AsTicket, ProofError> {
    as_exchange(&opts.kdc, &opts.principal, changepw(opts), keys, opts.timeout).await
}

fn salt_of(opts: &StagedOptions, tkt: &AsTicket, etype: EncType) -> (String, &'static str) {
    if let Some(s) = &opts.salt {
        return (s.clone(), "option");
    }
    if let Some(s) = tkt.salt_for(etype) {
        return (s.to_string(), "kdc");
    }
    let p = &opts.principal;
    match (opts.account_type, p.components.as_slice()) {
        (Some(kind), [name]) => match AdAccount::new(kind, name, &p.realm) {
            Ok(a) => (a.salt(), kind.as_str()),
            Err(_) => (default_salt(p), "default"),
        },
        _ => (default_salt(p), "default"),
    }
}

fn derive(
    password: &[u8],
    salt: &str,
    tkt: &AsTicket,
    enctypes: &[EncType],
) -> Result<Vec<Key>, CryptoError> {
    enctypes
        .iter()
        .map(|&et| string_to_key(et, password, salt.as_bytes(), tkt.iterations_for(et)))
        .collect()
}

fn keys_of(es: &[&KeytabEntry]) -> (Vec<Key>, Vec<EncType>) {
    (
        es.iter().map(|e| e.key.clone()).collect(),
        es.iter().map(|e| e.key.etype()).collect(),
    )
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Step one. See the module documentation.
pub async fn prepare(opts: &StagedOptions) -> Result<Prepared, StagedRollError> {
    let kt = read_keytab(&opts.keytab)?;
    let current = newest_entries(&kt, &opts.principal);
    let Some(first) = current.first() else {
        return Err(StagedRollError::NoKeys {
            path: opts.keytab.display().to_string(),
            principal: opts.principal.to_string(),
        });
    };
    let old_kvno = first.kvno;
    let (keys, enctypes) = keys_of(&current);
    let tkt = prove_kvno(opts, keys).await?;
    let salt = salt_of(opts, &tkt, enctypes[0]);

    let pw_err = |reason: String| StagedRollError::PasswordFile {
        path: opts.password_file.display().to_string(),
        reason,
    };
    let (password, generated) = match secret_write::read_password_file(&opts.password_file) {
        Ok(Some(pw)) => (pw, false),
        Ok(None) => (password::generate(), true),
        Err(e) => return Err(pw_err(e)),
    };
    let new_keys = derive(password.as_bytes(), &salt.0, &tkt, &enctypes)?;

    // Every principal holding the current key at its kvno is the same account.
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
    let new_kvno = old_kvno.wrapping_add(1).max(1);
    let timestamp = crate::krb::time::unix_secs(SystemTime::now()) as u32;
    let mut next = kt.clone();
    next.entries
        .retain(|e| !(e.kvno == new_kvno && principals.iter().any(|p| principal_matches(p, &e.principal))));
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
    if generated {
        secret_write::create_password_file(&opts.password_file, password.as_bytes())
            .map_err(|e| pw_err(e.to_string()))?;
    }
    let backup = with_suffix(&opts.keytab, &format!(".bak-{old_kvno}"));
    let installed = secret_write::copy_private(&opts.keytab, &backup)
        .and_then(|_| secret_write::replace_file(&opts.keytab, &Zeroizing::new(next.to_bytes())));
    if let Err(e) = installed {
        if generated {
            let _ = secret_write::destroy(&opts.password_file);
        }
        return Err(StagedRollError::Stage {
            path: opts.keytab.display().to_string(),
            reason: e.to_string(),
        });
    }
    Ok(Prepared {
        old_kvno,
        new_kvno,
        principals: principals.iter().map(ToString::to_string).collect(),
        enctypes: enctypes.iter().map(|e| e.name()).collect(),
        salt,
        generated,
        backup,
    })
}

/// Step two. See the module documentation.
pub async fn commit(opts: &StagedOptions) -> Result<Committed, StagedRollError> {
    let pw_err = |reason: String| StagedRollError::PasswordFile {
        path: opts.password_file.display().to_string(),
        reason,
    };
    let password = match secret_write::read_password_file(&opts.password_file) {
        Ok(Some(pw)) => pw,
        Ok(None) => return Err(pw_err("missing: run `kedge asa roll prepare` first".into())),
        Err(e) => return Err(pw_err(e)),
    };
    let kt = read_keytab(&opts.keytab)?;
    let staged = newest_entries(&kt, &opts.principal);
    let Some(first) = staged.first() else {
        return Err(StagedRollError::NoKeys {
            path: opts.keytab.display().to_string(),
            principal: opts.principal.to_string(),
        });
    };
    let new_kvno = first.kvno;
    let (staged_keys, enctypes) = keys_of(&staged);
    let mut older = kt.clone();
    older.entries.retain(|e| e.kvno < new_kvno);
    let current = newest_entries(&older, &opts.principal);
    let old_kvno = current.first().map(|e| e.kvno).ok_or_else(|| {
        StagedRollError::NotPrepared(format!(
            "{} holds only kvno {new_kvno} for {}: nothing is staged beside the current key (run prepare)",
            opts.keytab.display(),
            opts.principal
        ))
    })?;
    let (current_keys, _) = keys_of(&current);

    let tkt = match prove_kvno(opts, current_keys).await {
        Ok(t) => t,
        Err(ProofError::As(AsError::WrongKey { .. })) => {
            // Already committed? Then the staged key is the KDC's.
            if prove_kvno(opts, staged_keys.clone()).await.is_ok() {
                secret_write::destroy(&opts.password_file).map_err(|e| pw_err(e.to_string()))?;
                return Ok(Committed {
                    old_kvno,
                    new_kvno,
                    already: true,
                });
            }
            return Err(StagedRollError::NotPrepared(format!(
                "the KDC accepts neither kvno {old_kvno} nor kvno {new_kvno} of {}: the password changed \
                 elsewhere (Exchange-RollAsa?); get AD's password and rebuild the keytab",
                opts.principal
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let salt = salt_of(opts, &tkt, enctypes[0]);
    let derived = derive(password.as_bytes(), &salt.0, &tkt, &enctypes)?;
    let matches = derived
        .iter()
        .zip(&staged_keys)
        .all(|(d, s)| d.expose_bytes() == s.expose_bytes());
    if !matches {
        return Err(StagedRollError::NotPrepared(format!(
            "{} does not hold the password whose keys are staged as kvno {new_kvno} in {} (salt {}): \
             nothing was changed; remove kvno {new_kvno} (kedge keytab remove --kvno {new_kvno}) and prepare again",
            opts.password_file.display(),
            opts.keytab.display(),
            salt.0
        )));
    }
    let addr = kpasswd_addr(opts.kpasswd.as_deref(), &opts.kdc);
    change_password(&addr, opts.timeout, &tkt, password.as_bytes()).await?;
    drop(password);
    let mut last = String::new();
    for attempt in 0..5 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        match prove_kvno(opts, staged_keys.clone()).await {
            Ok(_) => {
                secret_write::destroy(&opts.password_file).map_err(|e| pw_err(e.to_string()))?;
                return Ok(Committed {
                    old_kvno,
                    new_kvno,
                    already: false,
                });
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(StagedRollError::Unverified {
        kvno: new_kvno,
        reason: last,
    })
}
