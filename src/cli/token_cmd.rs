//! `kedge token verify`: validate one token exactly as the proxy would and say why it fails —
//! the tool for "Outlook says credentials rejected".

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use base64::Engine;
use clap::Subcommand;

use crate::krb::acceptor::{AcceptCtx, Acceptor, AcceptorConfig, ANY_SERVICE};
use crate::krb::keyset::KeySet;
use crate::krb::principal::Principal;
use crate::krb::replay::ReplayCache;

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Read a token (base64, or a whole `Authorization: Negotiate …` line) from stdin and validate it.
    Verify {
        /// The ASA keytab.
        #[arg(long)]
        keytab: PathBuf,
        /// The SPN the token must be for (`http/outlook.contoso.com`); default: any.
        #[arg(long)]
        spn: Option<String>,
        /// Allowed clock skew in seconds.
        #[arg(long, default_value_t = 300)]
        skew: u64,
        /// Required realm.
        #[arg(long)]
        realm: Option<String>,
        /// Validate as of this Unix time instead of now (for captured tokens).
        #[arg(long)]
        now: Option<i64>,
    },
}

pub fn run(cmd: TokenCmd) -> anyhow::Result<ExitCode> {
    let TokenCmd::Verify {
        keytab,
        spn,
        skew,
        realm,
        now,
    } = cmd;
    let kt = super::keytab_cmd::read_keytab(&keytab)?;
    let keys = KeySet::from_keytab(&kt, SystemTime::now(), &keytab.display().to_string());
    let (service, hosts) = match &spn {
        Some(s) => {
            let p = Principal::parse(s, "").with_context(|| format!("--spn {s:?}"))?;
            match (p.service(), p.host()) {
                (Some(svc), Some(h)) => (svc.to_string(), vec![h.to_ascii_lowercase()]),
                _ => bail!("--spn {s:?} must look like service/host"),
            }
        }
        None => (ANY_SERVICE.to_string(), vec![]),
    };
    let cfg = AcceptorConfig {
        realm,
        hosts,
        skew: Duration::from_secs(skew),
        ..Default::default()
    };
    let acceptor = Acceptor::new(cfg, keys, Arc::new(ReplayCache::new(16)));
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading stdin")?;
    let token = decode_token_text(&input)?;
    let now = now
        .map(crate::krb::time::system_time)
        .unwrap_or_else(SystemTime::now);
    let ctx = AcceptCtx {
        now,
        service: &service,
        channel_binding: None,
        groups: None,
        check_replay: false,
    };
    match acceptor.accept(&token, &ctx) {
        Ok(a) => {
            let t = |s: i64| {
                chrono::DateTime::from_timestamp(s, 0)
                    .map(|d| d.to_rfc3339())
                    .unwrap_or_else(|| s.to_string())
            };
            outln!("OK")?;
            outln!("principal:  {}", a.client)?;
            outln!("realm:      {}", a.client.realm)?;
            outln!("spn:        {}", a.service)?;
            outln!("enctype:    {}", a.etype.name())?;
            outln!("kvno:       {}", a.kvno)?;
            outln!("authtime:   {}", t(a.authtime))?;
            outln!("starttime:  {}", t(a.starttime))?;
            outln!("endtime:    {}", t(a.endtime))?;
            outln!("framing:    {:?}", a.framing)?;
            outln!(
                "gss flags:  0x{:x}{}",
                a.gss_flags,
                if a.dce_style { " (DCE style)" } else { "" }
            )?;
            match &a.pac {
                Some(p) => {
                    outln!(
                        "pac:        server signature {}",
                        if p.server_signature_verified {
                            "verified"
                        } else {
                            "not checked"
                        }
                    )?;
                    if let Some(s) = p.user_sid() {
                        outln!("user sid:   {s}")?;
                    }
                    for g in p.group_sids() {
                        outln!("group:      {g}")?;
                    }
                }
                None => outln!("pac:        none")?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            outln!("REJECTED: {e}")?;
            outln!("reason:   {}", e.reason())?;
            Ok(ExitCode::from(1))
        }
    }
}

/// Accepts bare base64, `Negotiate <b64>`, or a whole `Authorization: Negotiate <b64>` header line.
pub fn decode_token_text(input: &str) -> anyhow::Result<Vec<u8>> {
    let mut s = input.trim();
    if let Some((name, rest)) = s.split_once(':') {
        if name.trim().eq_ignore_ascii_case("authorization")
            || name.trim().eq_ignore_ascii_case("www-authenticate")
        {
            s = rest.trim();
        }
    }
    if let Some((scheme, rest)) = s.split_once(char::is_whitespace) {
        if scheme.eq_ignore_ascii_case("negotiate") || scheme.eq_ignore_ascii_case("kerberos") {
            s = rest.trim();
        } else if scheme.eq_ignore_ascii_case("ntlm") {
            bail!("that is an NTLM header, not Kerberos");
        }
    }
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() {
        bail!("no token on stdin");
    }
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .context("token is not valid base64")
}
