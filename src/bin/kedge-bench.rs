//! `kedge-bench`: load generator for kedge — HTTP Negotiate and MS-RPC binds with tokens minted
//! locally with the ASA key, and a token minter for curl demos. Arguments and printing only; the
//! logic lives in `kedge::benchclient`.
#![forbid(unsafe_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use base64::Engine;
use clap::{Args, Parser, Subcommand};

use kedge::benchclient::credentials::{self, ServiceCredential};
use kedge::benchclient::http::{self, AuthMode, HttpOptions, HttpTokens, UserPer};
use kedge::benchclient::limits::{parse_duration, Limits, DEFAULT_MAX_TIME};
use kedge::benchclient::rpc::{self, Interface, RpcAuth, RpcOptions};
use kedge::benchclient::stats::Report;
use kedge::benchclient::tls::Trust;
use kedge::benchclient::tokens::{self, TokenMinter, TokenSpec, FLAGS_HTTP};
use kedge::krb::crypto::EncType;
use kedge::krb::principal::Principal;
use kedge::krb::time::unix_secs;
use kedge::rpc::AuthLevel;

/// Load generator for kedge: HTTP Negotiate and MS-RPC bind load with locally minted Kerberos tokens.
#[derive(Parser, Debug)]
#[command(name = "kedge-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Keep-alive HTTP/1.1 load with Negotiate tokens.
    Http(HttpArgs),
    /// MS-RPC binds, each on a new TCP connection.
    Rpc(RpcArgs),
    /// Print freshly minted tokens, base64, one per line.
    Mint(MintArgs),
}

/// The ASA key to mint with.
#[derive(Args, Debug)]
struct KeyArgs {
    /// The ASA keytab (MIT format).
    #[arg(long)]
    keytab: PathBuf,
    /// The SPN tickets are for, with realm (`http/outlook.contoso.com@CONTOSO.COM`).
    #[arg(long)]
    spn: String,
    /// Key version to use (default: the highest in the keytab).
    #[arg(long)]
    kvno: Option<u32>,
    /// Enctype to use (default: aes256, then aes128, …).
    #[arg(long)]
    enctype: Option<String>,
}

impl KeyArgs {
    fn load(&self) -> anyhow::Result<ServiceCredential> {
        let spn = credentials::parse_spn(&self.spn)?;
        let etype = match &self.enctype {
            Some(e) => Some(EncType::from_name(e).with_context(|| format!("--enctype {e:?}"))?),
            None => None,
        };
        Ok(credentials::load(&self.keytab, &spn, self.kvno, etype)?)
    }
}

/// How long a run lasts and how it is reported.
#[derive(Args, Debug)]
struct RunArgs {
    /// Concurrent connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Run for this long (`10s`, `500ms`, `1m`); default 10s unless a count is given.
    #[arg(long)]
    duration: Option<String>,
    /// Hard cap on the run's wall time, whatever else is set.
    #[arg(long, default_value = "600s")]
    max_time: String,
    /// Paced (open-loop) load: this many requests (binds) per second in all, at fixed intervals;
    /// a request sent late because the previous one was slow counts from its scheduled time.
    /// Default: as fast as possible.
    #[arg(long)]
    rate: Option<f64>,
    /// Per-request (per-bind) timeout.
    #[arg(long, default_value = "10s")]
    timeout: String,
    /// Distinct users to mint tokens for (one ticket each).
    #[arg(long, default_value_t = 1000)]
    user_count: u32,
    /// A Windows-like PAC with this many groups in every ticket (AD-sized tokens); 0: no PAC.
    #[arg(long, default_value_t = 0)]
    pac_groups: u32,
    /// Mint threads feeding ready tokens where any user will do (rpc, http --users-per request;
    /// 0: mint inline in the load loops). A connection's own user's tokens are minted inline.
    #[arg(long, default_value_t = 1)]
    mint_threads: usize,
    /// Verify the AP-REP that completes mutual authentication.
    #[arg(long)]
    mutual: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

impl RunArgs {
    fn limits(&self, count: Option<u64>) -> anyhow::Result<Limits> {
        let duration = match (&self.duration, count) {
            (Some(d), _) => Some(parse_duration(d)?),
            (None, Some(_)) => None,
            (None, None) => Some(Duration::from_secs(10)),
        };
        Ok(Limits {
            duration,
            count,
            max_time: if self.max_time.is_empty() {
                DEFAULT_MAX_TIME
            } else {
                parse_duration(&self.max_time)?
            },
            rate: self.rate,
        })
    }

    fn minter(
        &self,
        cred: &ServiceCredential,
        framing: kedge::krb::acceptor::Framing,
        flags: u32,
    ) -> anyhow::Result<Arc<TokenMinter>> {
        let spec = TokenSpec {
            user_count: self.user_count,
            framing,
            gss_flags: flags,
            pac_groups: (self.pac_groups > 0).then_some(self.pac_groups),
        };
        Ok(Arc::new(TokenMinter::new(
            cred,
            spec,
            unix_secs(SystemTime::now()),
        )?))
    }
}

#[derive(Args, Debug)]
struct HttpArgs {
    /// The URL to request (`https://outlook.contoso.com:8443/mapi/emsmdb`).
    #[arg(long)]
    url: String,
    /// The ASA keytab (MIT format); not needed with --mode none.
    #[arg(long)]
    keytab: Option<PathBuf>,
    /// The SPN tickets are for, with realm (`http/outlook.contoso.com@CONTOSO.COM`).
    #[arg(long)]
    spn: Option<String>,
    /// Key version to use (default: the highest in the keytab).
    #[arg(long)]
    kvno: Option<u32>,
    /// Enctype to use (default: aes256, then aes128, …).
    #[arg(long)]
    enctype: Option<String>,
    #[command(flatten)]
    run: RunArgs,
    /// Total requests (instead of, or bounded by, --duration).
    #[arg(long)]
    requests: Option<u64>,
    /// fresh-token (a token on every request), per-connection (one per connection) or none.
    #[arg(long, default_value = "fresh-token")]
    mode: String,
    /// CA certificate(s) (PEM) to trust for https.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Accept any server certificate.
    #[arg(long)]
    insecure: bool,
    /// HOST:IP or HOST:PORT:IP — connect there for HOST (like curl --resolve).
    #[arg(long)]
    resolve: Option<String>,
    /// Token framing: spnego (Microsoft OID first, as Windows), spnego-mit, gss.
    #[arg(long, default_value = "spnego")]
    framing: String,
    /// The status that counts as success.
    #[arg(long, default_value_t = 200)]
    expect_status: u16,
    /// connection: each connection is one user (as Outlook); request: every request is the next
    /// user (forces a pinning proxy to switch backend connections).
    #[arg(long, default_value = "connection")]
    users_per: String,
}

#[derive(Args, Debug)]
struct RpcArgs {
    /// The RPC endpoint (`127.0.0.1:6001`).
    #[arg(long)]
    addr: std::net::SocketAddr,
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    run: RunArgs,
    /// Total binds (instead of, or bounded by, --duration).
    #[arg(long)]
    binds: Option<u64>,
    /// RPC auth type: 16 (Kerberos, bare AP-REQ) or 9 (SPNEGO).
    #[arg(long, default_value = "16")]
    auth: String,
    /// RPC auth level: 2 (connect, as tools) or 6 (privacy, as Outlook).
    #[arg(long, default_value_t = 2)]
    level: u8,
    /// Interface: emsmdb, nspi or rfr.
    #[arg(long, default_value = "emsmdb")]
    interface: String,
}

#[derive(Args, Debug)]
struct MintArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// The client principal (`alice@CONTOSO.COM`).
    #[arg(long)]
    user: String,
    /// spnego (Microsoft OID first), spnego-mit, gss or bare.
    #[arg(long, default_value = "spnego")]
    framing: String,
    /// How many tokens.
    #[arg(long, default_value_t = 1)]
    count: u32,
    /// GSS checksum flags (hex with 0x, or decimal); 0x103e for DCE-style RPC.
    #[arg(long, default_value = "0x3e")]
    flags: String,
    /// A Windows-like PAC with this many groups; 0: no PAC.
    #[arg(long, default_value_t = 0)]
    pac_groups: u32,
    /// How many service tickets the tokens are spread over, round robin. 1 (the default) is
    /// one real client: it keeps its ticket and sends each token with a new authenticator;
    /// `--tickets` equal to `--count` gives every token a ticket of its own (the worst case
    /// for an acceptor, which then opens a ticket per token).
    #[arg(long, default_value_t = 1)]
    tickets: u32,
}

/// Writes the report to stdout (an error, not a panic, when its reader has gone).
fn print(report: &Report, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(report)?)?;
    } else {
        write!(out, "{report}")?;
    }
    out.flush()?;
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

fn run_http(a: HttpArgs) -> anyhow::Result<ExitCode> {
    let mode = AuthMode::parse(&a.mode)?;
    let limits = a.run.limits(a.requests)?;
    let feed = match mode {
        AuthMode::None => None,
        _ => {
            let (Some(keytab), Some(spn)) = (&a.keytab, &a.spn) else {
                bail!("--mode {} needs --keytab and --spn", mode.name());
            };
            let key = KeyArgs {
                keytab: keytab.clone(),
                spn: spn.clone(),
                kvno: a.kvno,
                enctype: a.enctype.clone(),
            };
            let cred = key.load()?;
            let minter = a
                .run
                .minter(&cred, tokens::parse_framing(&a.framing)?, FLAGS_HTTP)?;
            let per = UserPer::parse(&a.users_per)?;
            Some(Arc::new(HttpTokens::new(minter, per, a.run.mint_threads)))
        }
    };
    let trust = match (&a.ca, a.insecure) {
        (_, true) => Some(Trust::Insecure),
        (Some(ca), false) => Some(Trust::Ca(ca.clone())),
        (None, false) => None,
    };
    let opts = HttpOptions {
        url: a.url.clone(),
        resolve: a.resolve.clone(),
        trust,
        connections: a.run.connections,
        limits,
        mode,
        expect_status: a.expect_status,
        mutual: a.run.mutual,
        request_timeout: parse_duration(&a.run.timeout)?,
    };
    let report = runtime()?.block_on(http::run(opts, feed.clone()))?;
    if let Some(f) = feed {
        f.stop();
    }
    print(&report, a.run.json)?;
    Ok(if report.errors == 0 && report.completed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn run_rpc(a: RpcArgs) -> anyhow::Result<ExitCode> {
    let auth = RpcAuth::parse(&a.auth)?;
    let interface = Interface::parse(&a.interface)?;
    let level = AuthLevel::from_code(a.level);
    let limits = a.run.limits(a.binds)?;
    let cred = a.key.load()?;
    let minter = a.run.minter(&cred, auth.framing(), auth.gss_flags())?;
    let feed = Arc::new(rpc::bind_feed(minter, interface, auth, level, a.run.mint_threads));
    let opts = RpcOptions {
        addr: a.addr,
        auth,
        level,
        interface,
        connections: a.run.connections,
        limits,
        mutual: a.run.mutual,
        timeout: parse_duration(&a.run.timeout)?,
    };
    let report = runtime()?.block_on(rpc::run(opts, feed.clone()))?;
    feed.stop();
    print(&report, a.run.json)?;
    Ok(if report.errors == 0 && report.completed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn run_mint(a: MintArgs) -> anyhow::Result<ExitCode> {
    let cred = a.key.load()?;
    let user = Principal::parse(&a.user, &cred.spn.realm).with_context(|| format!("--user {:?}", a.user))?;
    let flags = match a.flags.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => a.flags.parse(),
    }
    .with_context(|| format!("--flags {:?}", a.flags))?;
    let framing = tokens::parse_framing(&a.framing)?;
    let toks = tokens::mint_for_user(
        &cred,
        &user,
        framing,
        flags,
        (a.pac_groups > 0).then_some(a.pac_groups),
        a.count,
        a.tickets,
    )?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = std::io::stdout().lock();
    for t in toks {
        writeln!(out, "{}", b64.encode(t))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Http(a) => run_http(a),
        Command::Rpc(a) => run_rpc(a),
        Command::Mint(a) => run_mint(a),
    };
    match result {
        Ok(code) => code,
        // `kedge-bench mint … | head`: the reader has what it wanted.
        Err(e) if kedge::cli::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kedge-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}
