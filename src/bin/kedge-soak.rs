//! `kedge-soak`: the bounded soak of issue 11. Starts a real `kedge run` (HTTP and RPC listeners
//! on loopback) in front of three in-process members, drives the traffic mix of
//! `kedge::soak::plan::RATES` for `--duration` while member m2 is killed and restarted every
//! `--flap-every`, member m3's HTTP side hangs, and the keytab is rolled to a new kvno at one
//! and two thirds of the run; then checks kedge's `/metrics`, its RSS, its stderr and the
//! members' records (`kedge::soak::verdict`), prints the report and exits 1 on any failure.
//! Everything it starts it stops; nothing listens beyond 127.0.0.1.
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use kedge::benchclient::credentials;
use kedge::benchclient::limits::parse_duration;
use kedge::benchclient::tokens::{TokenMinter, TokenSpec, FLAGS_DCE, FLAGS_HTTP};
use kedge::krb::acceptor::Framing;
use kedge::krb::time::unix_secs;
use kedge::soak::members::{Member, Seen};
use kedge::soak::plan::{kedge_config, send_until, ConfigFacts};
use kedge::soak::traffic::{auth_length_reason, Minters, Traffic, HOST};
use kedge::soak::verdict::{judge, parse_exposition, sum, Facts, Sample};

const REALM: &str = "CONTOSO.COM";
const FIRST_KVNO: u32 = 3;
/// The HTTP listener's `max_header_bytes` (the oversized class sends more).
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Users the minters issue tickets to.
const USERS: u32 = 50;

/// A bounded soak of kedge on loopback (see scripts/soak and README "Soak").
#[derive(Parser, Debug)]
#[command(name = "kedge-soak", version, about)]
struct Args {
    /// How long the traffic runs (`10m`, `45s`).
    #[arg(long, default_value = "10m")]
    duration: String,
    /// The kedge binary (default: `kedge` next to this program).
    #[arg(long)]
    kedge: Option<PathBuf>,
    /// Also write the report here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Multiplies every class's rate (plan::RATES, about 55 attempts/s at 1).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Most attempts open at once.
    #[arg(long, default_value_t = 64)]
    max_in_flight: usize,
    /// Kill member m2 this often (it restarts 3 s later). Default: a twelfth of the run, 10–60 s.
    #[arg(long)]
    flap_every: Option<String>,
    /// RSS samples before this are warm-up. Default: a quarter of the run, at most 2 minutes.
    #[arg(long)]
    warmup: Option<String>,
    /// Allowed RSS growth after warm-up, MiB.
    #[arg(long, default_value_t = 32)]
    rss_bound_mib: u64,
    /// Working directory (keytab, config, kedge.log); default a new one under $TMPDIR, removed
    /// when the soak passes.
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Write kedge's pid here (for a caller's cleanup trap).
    #[arg(long)]
    pid_file: Option<PathBuf>,
}

/// The kedge process; killed on drop.
struct Kedge(Child);

impl Drop for Kedge {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match rt.block_on(soak(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("kedge-soak: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn soak(args: Args) -> anyhow::Result<bool> {
    let duration = parse_duration(&args.duration)?;
    let secs = duration.as_secs_f64();
    let flap_every = match &args.flap_every {
        Some(s) => parse_duration(s)?,
        None => Duration::from_secs_f64((secs / 12.0).clamp(10.0, 60.0)),
    };
    let warmup = match &args.warmup {
        Some(s) => parse_duration(s)?,
        None => Duration::from_secs_f64((secs / 4.0).min(120.0)),
    };
    let kedge_bin = match &args.kedge {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("kedge"),
    };
    let dir = match &args.workdir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("kedge-soak.{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let keytab = dir.join("asa.keytab");
    if keytab.exists() {
        std::fs::remove_file(&keytab)?;
    }
    add_key(&kedge_bin, &keytab, FIRST_KVNO)?;

    let seen: Seen = Arc::default();
    let mut members = Vec::new();
    for name in ["m1", "m2", "m3"] {
        members.push(Member::start(name, seen.clone()).await?);
    }
    members[2].set_hang(true);
    let ports: Vec<(String, u16, u16)> = members
        .iter()
        .map(|m| (m.name.clone(), m.http.port(), m.rpc.port()))
        .collect();
    let (http, rpc, admin) = (free_port()?, free_port()?, free_port()?);
    let config = kedge_config(&ConfigFacts {
        keytab: &keytab,
        http,
        rpc,
        admin,
        members: &ports,
        realm: REALM,
        max_header_bytes: MAX_HEADER_BYTES,
    });
    let cfg_path = dir.join("kedge.toml");
    std::fs::write(&cfg_path, &config)?;
    let log_path = dir.join("kedge.log");
    let log = std::fs::File::create(&log_path)?;
    let child = Command::new(&kedge_bin)
        .args(["run", "--config"])
        .arg(&cfg_path)
        .env("RUST_LOG", "warn")
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", kedge_bin.display()))?;
    let mut kedge = Kedge(child);
    let pid = kedge.0.id();
    if let Some(p) = &args.pid_file {
        std::fs::write(p, format!("{pid}\n"))?;
    }
    wait_ready(admin, &mut kedge, &log_path).await?;

    let minters = Minters {
        http: minter(
            &keytab,
            "http",
            FIRST_KVNO,
            Framing::Spnego { legacy_oid: false },
            FLAGS_HTTP,
        )?,
        rpc: minter(&keytab, "exchangeMDB", FIRST_KVNO, Framing::Bare, FLAGS_DCE)?,
        previous: None,
    };
    let traffic = Arc::new(Traffic::new(http, rpc, minters, MAX_HEADER_BYTES));
    let before = scrape(admin).await?;
    let started = Instant::now();
    let until = started + duration;
    eprintln!(
        "kedge-soak: kedge pid {pid}, http {http}, rpc {rpc}, admin {admin}; {secs:.0} s, scale {}, \
         m2 killed every {:.0} s, m3 hangs, warm-up {:.0} s, work dir {}",
        args.scale,
        flap_every.as_secs_f64(),
        warmup.as_secs_f64(),
        dir.display()
    );

    let rss: Arc<Mutex<Vec<(f64, u64)>>> = Arc::default();
    let sampler = tokio::spawn(sample_rss(pid, started, rss.clone()));
    let members = Arc::new(tokio::sync::Mutex::new(members));
    let flapper = tokio::spawn(flap(members.clone(), traffic.clone(), flap_every));
    let roller = tokio::spawn(roll(
        kedge_bin.clone(),
        keytab.clone(),
        admin,
        traffic.clone(),
        duration,
    ));
    let sent = send_until(traffic.clone(), args.scale, until, args.max_in_flight).await;
    flapper.abort();
    let _ = flapper.await;
    let rolls = roller.await.unwrap_or_else(|e| Err(anyhow::anyhow!("{e}")))?;
    let seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = scrape(admin).await?;
    sampler.abort();
    let alive = kedge.0.try_wait()?.is_none();
    stop(&mut kedge);
    let log_text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let panics: Vec<String> = log_text
        .lines()
        .filter(|l| l.contains("panicked"))
        .map(str::to_owned)
        .collect();
    let seen = seen.lock().unwrap().clone();
    let rss = rss.lock().unwrap().clone();
    let kills = traffic.kills.load(std::sync::atomic::Ordering::Relaxed);
    let facts = Facts {
        before: &before,
        after: &after,
        seen: &seen,
        rss: &rss,
        warmup_secs: warmup.as_secs_f64(),
        rss_bound_mib: args.rss_bound_mib,
        panics,
        alive,
        auth_length_reason: auth_length_reason(),
        tokens_sent: (
            traffic.http_tokens.load(std::sync::atomic::Ordering::Relaxed),
            traffic.rpc_tokens.load(std::sync::atomic::Ordering::Relaxed),
        ),
        rolls: &rolls,
        kills,
        seconds,
    };
    let (mut report, fail) = judge(&traffic.ledger, &facts);
    report.insert_str(
        0,
        &format!(
            "kedge soak: {seconds:.0} s, scale {}, {} attempts started, {} skipped (over {} in flight), \
             members seen {} requests\n\n",
            args.scale,
            sent.started,
            sent.skipped,
            args.max_in_flight,
            seen.len()
        ),
    );
    if fail.is_empty() {
        report.push_str("\nPASS\n");
    } else {
        report.push_str(&format!("\nFAIL\n- {}\n", fail.join("\n- ")));
        report.push_str(&format!("(kedge log, config: {})\n", dir.display()));
    }
    print!("{report}");
    std::io::stdout().flush()?;
    if let Some(p) = &args.report {
        std::fs::write(p, &report)?;
    }
    if fail.is_empty() && args.workdir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(fail.is_empty())
}

/// `kedge keytab add` of the soak's throwaway ASA key at `kvno` (SPNs http/ and exchangeMDB/).
fn add_key(kedge: &Path, keytab: &Path, kvno: u32) -> anyhow::Result<()> {
    let mut child = Command::new(kedge)
        .args([
            "keytab",
            "add",
            "--kvno",
            &kvno.to_string(),
            "--account",
            "SOAKASA",
            "--password-stdin",
        ])
        .args(["--principal", &format!("http/{HOST}@{REALM}")])
        .args(["--principal", &format!("exchangeMDB/{HOST}@{REALM}")])
        .arg(keytab)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("running {} keytab add", kedge.display()))?;
    let mut stdin = child.stdin.take().context("stdin")?;
    writeln!(stdin, "kedge-soak-throwaway-{kvno}")?;
    drop(stdin);
    if !child.wait()?.success() {
        bail!("kedge keytab add --kvno {kvno} failed");
    }
    Ok(())
}

fn minter(
    keytab: &Path,
    service: &str,
    kvno: u32,
    framing: Framing,
    flags: u32,
) -> anyhow::Result<Arc<TokenMinter>> {
    let spn = credentials::parse_spn(&format!("{service}/{HOST}@{REALM}"))?;
    let cred = credentials::load(keytab, &spn, Some(kvno), None)?;
    let spec = TokenSpec {
        user_count: USERS,
        framing,
        gss_flags: flags,
        pac_groups: Some(8),
    };
    Ok(Arc::new(TokenMinter::new(
        &cred,
        spec,
        unix_secs(SystemTime::now()),
    )?))
}

fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// One `GET` on the admin listener: status and body.
async fn admin_get(admin: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(admin).await?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await??;
    let out = String::from_utf8_lossy(&out);
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

async fn scrape(admin: SocketAddr) -> anyhow::Result<Vec<Sample>> {
    let (status, body) = admin_get(admin, "/metrics").await?;
    if status != 200 {
        bail!("/metrics answered {status}");
    }
    Ok(parse_exposition(&body))
}

/// Waits (30 s at most) until kedge answers `/readyz` with 200 and both pools are up.
async fn wait_ready(admin: SocketAddr, kedge: &mut Kedge, log: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(st) = kedge.0.try_wait()? {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            bail!("kedge exited ({st}) before it was ready:\n{text}");
        }
        if let Ok((200, _)) = admin_get(admin, "/readyz").await {
            let m = scrape(admin).await?;
            if sum(&m, "kedge_backend_up", &[]) >= 6.0 {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("kedge was not ready within 30 s (log: {})", log.display());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// SIGTERM, then SIGKILL after 15 s.
fn stop(kedge: &mut Kedge) {
    let _ = Command::new("kill")
        .args(["-TERM", &kedge.0.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = kedge.0.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = kedge.0.kill();
}

/// VmRSS of `pid` every 2 s.
async fn sample_rss(pid: u32, started: Instant, out: Arc<Mutex<Vec<(f64, u64)>>>) {
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok());
        if let Some(kib) = kib {
            out.lock().unwrap().push((started.elapsed().as_secs_f64(), kib));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Kills member m2 every `every` and restarts it 3 s later.
async fn flap(members: Arc<tokio::sync::Mutex<Vec<Member>>>, traffic: Arc<Traffic>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        *traffic.last_kill.lock().unwrap() = Some(Instant::now());
        traffic.kills.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        members.lock().await[1].kill();
        tokio::time::sleep(Duration::from_secs(3)).await;
        *traffic.last_kill.lock().unwrap() = Some(Instant::now());
        if let Err(e) = members.lock().await[1].restart().await {
            eprintln!("kedge-soak: restarting m2: {e}");
        }
    }
}

/// Rolls the keytab to a new kvno at one and two thirds of `duration`: adds the key, waits for
/// kedge's `kedge_keytab_kvno{slot="latest"}` to show it, then mints with it (the old minter
/// goes on as the `Previous` class). Returns the rolls done.
async fn roll(
    kedge: PathBuf,
    keytab: PathBuf,
    admin: SocketAddr,
    traffic: Arc<Traffic>,
    duration: Duration,
) -> anyhow::Result<Vec<(u32, u32)>> {
    let started = Instant::now();
    let mut rolls = Vec::new();
    for (i, kvno) in [(1u32, FIRST_KVNO + 1), (2, FIRST_KVNO + 2)] {
        tokio::time::sleep_until((started + duration * i / 3).into()).await;
        add_key(&kedge, &keytab, kvno)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let m = scrape(admin).await?;
            if sum(&m, "kedge_keytab_kvno", &[("slot", "latest")]) == f64::from(kvno) {
                break;
            }
            if Instant::now() > deadline {
                bail!("kedge did not load kvno {kvno} within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let http = minter(
            &keytab,
            "http",
            kvno,
            Framing::Spnego { legacy_oid: false },
            FLAGS_HTTP,
        )?;
        let rpc = minter(&keytab, "exchangeMDB", kvno, Framing::Bare, FLAGS_DCE)?;
        let mut m = traffic.minters.write().unwrap();
        let old = std::mem::replace(&mut m.http, http);
        m.previous = Some(old);
        m.rpc = rpc;
        rolls.push((kvno - 1, kvno));
    }
    Ok(rolls)
}
