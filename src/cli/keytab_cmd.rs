//! `kedge keytab list|add`: the administrator's view of an ASA keytab. Never prints key bytes.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Subcommand;

use crate::krb::crypto::{string_to_key, EncType};
use crate::krb::keytab::{ad_computer_salt, default_salt, Keytab, KeytabEntry};
use crate::krb::principal::Principal;

#[derive(Subcommand, Debug)]
pub enum KeytabCmd {
    /// List entries: principal, kvno, enctype, timestamp (never key bytes).
    List {
        /// Keytab file.
        file: PathBuf,
    },
    /// Add keys derived from a password (read from stdin) with the AD salt.
    Add {
        /// Keytab file (created if missing; written atomically, mode 0600).
        file: PathBuf,
        /// Principal, e.g. `http/outlook.contoso.com@CONTOSO.COM` or `EXCH2010ASA$@CONTOSO.COM`.
        #[arg(long)]
        principal: String,
        /// Key version number (AD's msDS-KeyVersionNumber of the ASA).
        #[arg(long)]
        kvno: u32,
        /// The ASA's account name (sAMAccountName, with or without `$`) for the AD computer salt.
        #[arg(long)]
        account: Option<String>,
        /// Explicit salt (overrides --account).
        #[arg(long)]
        salt: Option<String>,
        /// Enctypes (comma-separated MIT names).
        #[arg(
            long,
            default_value = "aes256-cts-hmac-sha1-96,aes128-cts-hmac-sha1-96",
            value_delimiter = ','
        )]
        enctypes: Vec<String>,
        /// Read the password from the first line of stdin (required: passwords never go on the command line).
        #[arg(long)]
        password_stdin: bool,
    },
}

pub fn run(cmd: KeytabCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        KeytabCmd::List { file } => list(&file),
        KeytabCmd::Add {
            file,
            principal,
            kvno,
            account,
            salt,
            enctypes,
            password_stdin,
        } => {
            if !password_stdin {
                bail!("pass --password-stdin and give the password on standard input");
            }
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password from stdin")?;
            let password = zeroize::Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string());
            if password.is_empty() {
                bail!("empty password on stdin");
            }
            add(
                &file,
                &principal,
                kvno,
                account.as_deref(),
                salt.as_deref(),
                &enctypes,
                password.as_bytes(),
            )
        }
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

fn add(
    path: &Path,
    principal: &str,
    kvno: u32,
    account: Option<&str>,
    salt: Option<&str>,
    enctypes: &[String],
    password: &[u8],
) -> anyhow::Result<ExitCode> {
    let p = Principal::parse(principal, "").with_context(|| format!("--principal {principal:?}"))?;
    if p.realm.is_empty() {
        bail!("--principal {principal:?} needs a realm (…@CONTOSO.COM)");
    }
    let salt = match (salt, account) {
        (Some(s), _) => s.to_string(),
        (None, Some(a)) => ad_computer_salt(&p.realm, a),
        (None, None) if p.components.len() == 1 && p.components[0].ends_with('$') => {
            ad_computer_salt(&p.realm, &p.components[0])
        }
        (None, None) if p.components.len() == 1 => default_salt(&p),
        (None, None) => bail!(
            "{principal} is an SPN: its keys are the ASA account's, salted with the account name; \
             pass --account <ASA sAMAccountName> (or --salt)"
        ),
    };
    let mut kt = if path.exists() {
        read_keytab(path)?
    } else {
        Keytab::default()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0);
    for name in enctypes {
        let et = EncType::from_name(name).with_context(|| format!("unknown or refused enctype {name:?}"))?;
        let key = string_to_key(et, password, salt.as_bytes(), None)?;
        kt.entries
            .retain(|e| !(e.principal == p && e.kvno == kvno && e.key.etype() == et));
        kt.entries.push(KeytabEntry {
            principal: p.clone(),
            timestamp: now,
            kvno,
            key,
        });
        println!("added {p} kvno {kvno} {}", et.name());
    }
    write_atomic(path, &kt.to_bytes())?;
    println!("salt used: {salt}");
    Ok(ExitCode::SUCCESS)
}

/// Writes `bytes` to `path` through a new private file with a random name in the same
/// directory and a rename ([`crate::secret_file::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    crate::secret_file::write_atomic(path, bytes).with_context(|| format!("{}: cannot write", path.display()))
}
