//! RPC edge load figures (DESIGN §7), loopback only, bounded in count and time:
//!
//! 1. Kerberos-authenticated binds per second, a new TCP connection for each: auth-16 binds
//!    (bare AP-REQ, GSS flags 0x103e) minted up front with the exchangeMDB key of
//!    `tests/testdata/rpc/exchange.keytab`, sent through kedge's `serve_rpc` (in-process, its own
//!    2-worker runtime, metrics recorder installed) to a trivial bind_ack backend. Reports
//!    binds/s and latency percentiles (connect → bind_ack received).
//! 2. Spliced throughput of a bulk upload (bind, then `--bulk-mib` MiB of 4,280-byte request
//!    PDUs per stream, which kedge inspects header by header) through kedge and through HAProxy in TCP mode (`haproxy` on PATH, a temporary config), same run,
//!    alternating rounds; reports MiB/s of each and the ratio.
//!
//! `cargo bench --bench rpc_load -- [--binds N] [--concurrency C] [--seconds S] [--bulk-mib M]
//! [--streams K] [--rounds R] [--no-haproxy]`; `scripts/bench-rpc` runs it with the load average.
//! Each phase also prints the share of the machine's CPU the hypervisor took meanwhile (the
//! `steal` of /proc/stat): on a shared virtual machine a figure measured while it took more than
//! a few percent is the host's.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// The allocator of the `kedge` binary (src/main.rs), so the figure is what kedge runs.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod haproxy;
mod procstat;

use haproxy::start_haproxy;
use procstat::{loadavg, machine_ticks, num_cpus, steal_pct, thread_cpu_secs, KEDGE_THREADS};

use hdrhistogram::Histogram;
use kedge::config::{NtlmPolicy, RpcListenerConfig};
use kedge::edge::rpc::{serve_rpc, RpcEdgeContext};
use kedge::edge::workers::Workers;
use kedge::krb::acceptor::{Acceptor, AcceptorConfig, Framing};
use kedge::krb::crypto::EncType;
use kedge::krb::keyset::KeySet;
use kedge::krb::keytab::Keytab;
use kedge::krb::mint::{mint, MintRequest};
use kedge::krb::principal::Principal;
use kedge::krb::replay::ReplayCache;
use kedge::pool::{Balance, HealthConfig, HealthKind, MemberConfig, Pool, PoolConfig};
use kedge::rpc::{
    AckResult, AuthLevel, AuthType, AuthVerifier, BindAck, BindInfo, ContextResult, Drep, PacketType,
    PresentationContext, SyntaxId, EMSMDB,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const KEYTAB: &[u8] = include_bytes!("../../tests/testdata/rpc/exchange.keytab");
const REALM: &str = "CONTOSO.TEST";
const FQDN: &str = "outlook.contoso.com";
const CHUNK: usize = 64 * 1024;

struct Args {
    binds: usize,
    concurrency: usize,
    seconds: u64,
    bulk_mib: usize,
    streams: usize,
    rounds: usize,
    haproxy: bool,
}

fn args() -> Args {
    let mut a = Args {
        binds: 60_000,
        concurrency: 64,
        seconds: 20,
        bulk_mib: 512,
        streams: 4,
        rounds: 3,
        haproxy: true,
    };
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it:
    // then only a small smoke run (bounded, no HAProxy) checks that the whole path works.
    let bench = std::env::args().any(|a| a == "--bench");
    if !bench {
        a = Args {
            binds: 300,
            concurrency: 8,
            seconds: 10,
            bulk_mib: 4,
            streams: 2,
            rounds: 1,
            haproxy: false,
        };
    }
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut num = || {
            it.next()
                .and_then(|v| v.parse::<usize>().ok())
                .expect("numeric value")
        };
        match k.as_str() {
            "--binds" => a.binds = num(),
            "--concurrency" => a.concurrency = num(),
            "--seconds" => a.seconds = num() as u64,
            "--bulk-mib" => a.bulk_mib = num(),
            "--streams" => a.streams = num(),
            "--rounds" => a.rounds = num(),
            "--no-haproxy" => a.haproxy = false,
            "--bench" => {}
            other if bench => panic!("unknown argument {other}"),
            _ => {} // libtest arguments `cargo test` passes along
        }
    }
    a
}

fn bind_info(auth: bool) -> BindInfo {
    BindInfo {
        ptype: PacketType::Bind,
        rpc_vers_minor: 0,
        pfc_flags: 0x03,
        call_id: 1,
        drep: Drep::LITTLE_ENDIAN,
        max_xmit_frag: 4280,
        max_recv_frag: 4280,
        assoc_group_id: 0,
        contexts: vec![PresentationContext {
            context_id: 0,
            abstract_syntax: SyntaxId {
                uuid: EMSMDB,
                major: 0,
                minor: 81,
            },
            transfer_syntaxes: vec![SyntaxId::NDR],
        }],
        auth: auth.then_some(AuthVerifier {
            auth_type: AuthType::Krb5,
            auth_level: AuthLevel::PktPrivacy,
            auth_pad_length: 0,
            auth_reserved: 0,
            auth_context_id: 79231,
            token_range: 0..0,
        }),
    }
}

fn bind_ack() -> Vec<u8> {
    BindAck {
        ptype: PacketType::BindAck,
        pfc_flags: 0x03,
        call_id: 1,
        drep: Drep::LITTLE_ENDIAN,
        max_xmit_frag: 4280,
        max_recv_frag: 4280,
        assoc_group_id: 0x5eed,
        secondary_address: b"49152\0".to_vec(),
        results: vec![ContextResult {
            result: AckResult::Acceptance,
            reason: 0,
            transfer_syntax: SyntaxId::NDR,
        }],
        auth: None,
    }
    .to_bytes(&[])
    .unwrap()
}

async fn read_pdu(s: &mut TcpStream) -> std::io::Result<usize> {
    let mut head = [0u8; 16];
    s.read_exact(&mut head).await?;
    let len = usize::from(u16::from_le_bytes([head[8], head[9]]));
    let mut rest = vec![0u8; len.saturating_sub(16)];
    s.read_exact(&mut rest).await?;
    Ok(len)
}

/// The trivial backend: answers the bind with a bind_ack; in `bulk` mode then counts bytes to
/// EOF and answers the count (8 bytes), otherwise closes at once.
async fn backend(listener: TcpListener, bulk: bool) {
    let ack = Arc::new(bind_ack());
    while let Ok((mut s, _)) = listener.accept().await {
        let ack = ack.clone();
        tokio::spawn(async move {
            let _ = s.set_nodelay(true);
            if read_pdu(&mut s).await.is_err() || s.write_all(&ack).await.is_err() {
                return;
            }
            if bulk {
                let mut buf = vec![0u8; CHUNK];
                let mut n = 0u64;
                while let Ok(k) = s.read(&mut buf).await {
                    if k == 0 {
                        break;
                    }
                    n += k as u64;
                }
                let _ = s.write_all(&n.to_le_bytes()).await;
            }
        });
    }
}

fn runtime(threads: usize, name: &str) -> tokio::runtime::Runtime {
    if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(name)
            .enable_all()
            .build()
            .unwrap()
    }
}

/// Starts a listener of `make` on its own thread and runtime; returns its address.
fn spawn_server<F, Fut>(name: &str, threads: usize, make: F) -> SocketAddr
where
    F: FnOnce(TcpListener) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    let name = name.to_owned();
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let rt = runtime(threads, &name);
            rt.block_on(async move {
                let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(l.local_addr().unwrap()).unwrap();
                make(l).await;
            });
        })
        .unwrap();
    rx.recv().unwrap()
}

fn start_kedge(name: &str, backend: SocketAddr, acceptor: Arc<Acceptor>) -> SocketAddr {
    let members = BTreeMap::from([(
        "cas1".to_owned(),
        MemberConfig {
            address: "127.0.0.1".into(),
            weight: 100,
            ports: BTreeMap::from([("mdb".to_owned(), backend.port())]),
            drain: false,
        },
    )]);
    let pool_cfg = PoolConfig {
        members: vec!["cas1".into()],
        port: "mdb".into(),
        balance: Balance::Rendezvous,
        affinity: true,
        tls: None,
        health: HealthConfig {
            kind: HealthKind::None,
            ..Default::default()
        },
        connect_timeout_ms: 3_000,
        response_header_timeout_ms: 300_000,
        idle_timeout_secs: 1_200,
        eject_base_ms: 10,
        eject_max_ms: 100,
    };
    let pool = Arc::new(Pool::new(name, &pool_cfg, &members).unwrap());
    let cfg = RpcListenerConfig {
        name: name.into(),
        listen: "127.0.0.1:0".into(),
        pool: name.into(),
        ntlm: NtlmPolicy::Reject,
        // The bulk streams open with an unauthenticated endpoint-mapper bind.
        endpoint_mapper: true,
        allow_unauthenticated_epm: None,
        interfaces: BTreeMap::new(),
        max_bind_bytes: 64 * 1024,
        bind_timeout_ms: 10_000,
        idle_timeout_secs: 600,
        groups: None,
        max_connections: 20_000,
        // One load generator on one address.
        per_source: kedge::config::SourceLimitsConfig::off(),
        shutdown_grace_secs: 1,
        proxy_protocol: None,
    };
    // As `kedge run` does: per-core workers (2) serve the connections, one thread accepts;
    // KEDGE_SCHEDULER=work-stealing runs everything on a 2-thread work-stealing runtime instead.
    let mut ctx = RpcEdgeContext::new(acceptor, pool, &cfg).unwrap();
    let accept_threads = if std::env::var("KEDGE_SCHEDULER").as_deref() == Ok("work-stealing") {
        2
    } else {
        ctx = ctx.with_workers(Workers::start(2).unwrap());
        1
    };
    let ctx = Arc::new(ctx);
    spawn_server(name, accept_threads, move |l| {
        serve_rpc(l, Arc::new(cfg), ctx, std::future::pending::<()>())
    })
}

/// Mints `n` distinct auth-16 binds (bare AP-REQ, flags 0x103e) with the keytab's
/// exchangeMDB aes256 key, and returns them with an acceptor over the same keytab.
fn binds_and_acceptor(n: usize) -> (Vec<Vec<u8>>, Arc<Acceptor>) {
    let kt = Keytab::parse(KEYTAB).unwrap();
    let spn = format!("exchangeMDB/{FQDN}@{REALM}");
    let entry = kt
        .entries
        .iter()
        .find(|e| e.principal.to_string() == spn && e.key.etype() == EncType::Aes256CtsHmacSha196)
        .expect("exchangeMDB aes256 key in the keytab");
    let now = SystemTime::now();
    let acceptor = Arc::new(Acceptor::new(
        AcceptorConfig {
            realm: Some(REALM.into()),
            hosts: vec![FQDN.into()],
            ..Default::default()
        },
        KeySet::from_keytab(&kt, now, "bench"),
        Arc::new(ReplayCache::new(n + 100_000)),
    ));
    let unix = now.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let service = entry.principal.clone();
    let info = bind_info(true);
    let binds = (0..n)
        .map(|i| {
            let client = Principal::parse(&format!("user{:05}@{REALM}", i % 5000), REALM).unwrap();
            let token = mint(&MintRequest {
                client: &client,
                service: &service,
                service_key: &entry.key,
                kvno: entry.kvno,
                now: unix,
                cusec: (i % 1_000_000) as u32,
                lifetime: 36_000,
                framing: Framing::Bare,
                gss_flags: 0x103e,
                channel_binding: None,
                pac: None,
            })
            .token;
            info.to_bytes(&token).unwrap()
        })
        .collect();
    (binds, acceptor)
}

struct BindRun {
    ok: usize,
    failed: usize,
    elapsed: Duration,
    hist: Histogram<u64>,
}

/// One bind per connection: connect, send, read the bind_ack, wait for the close.
async fn one_bind(addr: SocketAddr, bind: &[u8]) -> Option<Duration> {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(addr).await.ok()?;
    let _ = s.set_nodelay(true);
    s.write_all(bind).await.ok()?;
    let mut head = [0u8; 16];
    s.read_exact(&mut head).await.ok()?;
    if head[2] != 12 {
        return None;
    }
    let len = usize::from(u16::from_le_bytes([head[8], head[9]]));
    let mut rest = vec![0u8; len.saturating_sub(16)];
    s.read_exact(&mut rest).await.ok()?;
    let took = t0.elapsed();
    // The backend closes first, so TIME_WAIT lands on the listening sides, not on our ports.
    let mut sink = [0u8; 64];
    while let Ok(n) = s.read(&mut sink).await {
        if n == 0 {
            break;
        }
    }
    Some(took)
}

fn run_binds(
    addr: SocketAddr,
    binds: Arc<Vec<Vec<u8>>>,
    range: std::ops::Range<usize>,
    conc: usize,
    limit: Duration,
) -> BindRun {
    let rt = runtime(2, "load");
    rt.block_on(async move {
        let next = Arc::new(AtomicUsize::new(range.start));
        let started = Instant::now();
        let deadline = started + limit;
        let mut tasks = Vec::new();
        for _ in 0..conc {
            let (next, binds, end) = (next.clone(), binds.clone(), range.end);
            tasks.push(tokio::spawn(async move {
                let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
                let (mut ok, mut failed) = (0, 0);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= end || Instant::now() >= deadline {
                        break;
                    }
                    match one_bind(addr, &binds[i]).await {
                        Some(d) => {
                            ok += 1;
                            let _ = hist.record(d.as_micros().max(1) as u64);
                        }
                        None => failed += 1,
                    }
                }
                (ok, failed, hist)
            }));
        }
        let mut run = BindRun {
            ok: 0,
            failed: 0,
            elapsed: Duration::ZERO,
            hist: Histogram::new_with_bounds(1, 60_000_000, 3).unwrap(),
        };
        for t in tasks {
            let (ok, failed, h) = t.await.unwrap();
            run.ok += ok;
            run.failed += failed;
            run.hist.add(h).unwrap();
        }
        run.elapsed = started.elapsed();
        run
    })
}

/// Request PDUs (C706 12.6.4.9) of `frag_length` 4,280 (the max_xmit_frag the binds offer),
/// enough to fill one `CHUNK`-sized write: the upload is a stream of real PDUs, which kedge walks
/// header by header (HAProxy in TCP mode just copies them).
fn request_chunk() -> Vec<u8> {
    const FRAG: usize = 4280;
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut call_id = 2u32;
    while chunk.len() + FRAG <= CHUNK {
        chunk.extend_from_slice(&[5, 0, 0, 3, 0x10, 0, 0, 0]);
        chunk.extend_from_slice(&(FRAG as u16).to_le_bytes());
        chunk.extend_from_slice(&[0, 0]);
        chunk.extend_from_slice(&call_id.to_le_bytes());
        chunk.extend_from_slice(&((FRAG - 24) as u32).to_le_bytes()); // alloc_hint
        chunk.extend_from_slice(&[0, 0, 0, 0]); // p_cont_id, opnum
        chunk.resize(chunk.len() + FRAG - 24, 0x5a);
        call_id += 1;
    }
    chunk
}

/// `streams` parallel uploads of `mib` MiB each after a bind; returns MiB/s.
fn run_bulk(addr: SocketAddr, bind: Arc<Vec<u8>>, streams: usize, mib: usize) -> f64 {
    let rt = runtime(2, "bulk");
    let chunk = Arc::new(request_chunk());
    rt.block_on(async move {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..streams {
            let (bind, chunk) = (bind.clone(), chunk.clone());
            tasks.push(tokio::spawn(async move {
                let mut s = TcpStream::connect(addr).await.unwrap();
                s.write_all(&bind).await.unwrap();
                read_pdu(&mut s).await.unwrap();
                let total = mib * 1024 * 1024;
                let mut sent = 0;
                while sent < total {
                    s.write_all(&chunk).await.unwrap();
                    sent += chunk.len();
                }
                s.shutdown().await.unwrap();
                let mut count = [0u8; 8];
                s.read_exact(&mut count).await.unwrap();
                assert_eq!(u64::from_le_bytes(count), sent as u64, "backend got every byte");
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        (streams * mib) as f64 / started.elapsed().as_secs_f64()
    })
}

fn main() {
    let a = args();
    println!(
        "rpc_load: {} cores, load average at start {}",
        num_cpus(),
        loadavg()
    );
    kedge::observe::install();
    let t = Instant::now();
    let warmup = 2_000.min(a.binds / 10);
    let (binds, acceptor) = binds_and_acceptor(a.binds + warmup);
    println!(
        "minted {} auth-16 binds ({} bytes each) in {:.1?}",
        binds.len(),
        binds[0].len(),
        t.elapsed()
    );
    let binds = Arc::new(binds);

    let ack_backend = spawn_server("ack-backend", 1, |l| backend(l, false));
    let bulk_backend = spawn_server("bulk-backend", 1, |l| backend(l, true));
    let kedge_binds = start_kedge("bench-binds", ack_backend, acceptor.clone());
    let kedge_bulk = start_kedge("bench-bulk", bulk_backend, acceptor);

    // 1. Binds.
    let _ = run_binds(
        kedge_binds,
        binds.clone(),
        0..warmup,
        a.concurrency,
        Duration::from_secs(a.seconds),
    );
    let cpu0 = thread_cpu_secs(KEDGE_THREADS);
    let host0 = machine_ticks();
    let r = run_binds(
        kedge_binds,
        binds.clone(),
        warmup..binds.len(),
        a.concurrency,
        Duration::from_secs(a.seconds),
    );
    let kedge_cpu = thread_cpu_secs(KEDGE_THREADS) - cpu0;
    let stolen = steal_pct(host0, machine_ticks());
    let q = |p: f64| r.hist.value_at_quantile(p) as f64 / 1000.0;
    println!(
        "binds: {} ok, {} failed in {:.2?} = {:.0} binds/s (concurrency {}), latency ms p50 {:.2} p90 {:.2} \
         p99 {:.2} p99.9 {:.2} max {:.2}; load average {}; the host took {stolen:.1}% of the CPU",
        r.ok,
        r.failed,
        r.elapsed,
        r.ok as f64 / r.elapsed.as_secs_f64(),
        a.concurrency,
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        r.hist.max() as f64 / 1000.0,
        loadavg()
    );
    let per_bind_us = kedge_cpu * 1e6 / r.ok.max(1) as f64;
    println!(
        "kedge threads used {kedge_cpu:.2} CPU s = {per_bind_us:.0} us CPU per bind (accept, read, validate, \
         backend connect, splice, close) -> {:.0} binds/s per core of kedge alone",
        1e6 / per_bind_us.max(1e-9)
    );

    // 2. Bulk throughput, kedge vs HAProxy, alternating rounds. The same unauthenticated
    //    endpoint-mapper bind opens every stream (a Kerberos bind could be used once only: the
    //    replay cache refuses it the second time), then the upload is spliced.
    let haproxy = if a.haproxy {
        start_haproxy(bulk_backend)
    } else {
        None
    };
    if a.haproxy && haproxy.is_none() {
        println!("haproxy: not found or did not start; kedge figure only");
    }
    let epm = {
        let mut b = bind_info(false);
        b.contexts[0].abstract_syntax = SyntaxId {
            uuid: kedge::rpc::EPM,
            major: 3,
            minor: 0,
        };
        Arc::new(b.to_bytes(&[]).unwrap())
    };
    let (mut k_best, mut h_best) = (0f64, 0f64);
    for round in 1..=a.rounds {
        let host0 = machine_ticks();
        let k = run_bulk(kedge_bulk, epm.clone(), a.streams, a.bulk_mib);
        k_best = k_best.max(k);
        let h = haproxy
            .as_ref()
            .map(|hp| run_bulk(hp.addr, epm.clone(), a.streams, a.bulk_mib))
            .unwrap_or(0.0);
        h_best = h_best.max(h);
        let stolen = steal_pct(host0, machine_ticks());
        println!("bulk round {round}: kedge {k:.0} MiB/s, haproxy {h:.0} MiB/s; the host took {stolen:.1}% of the CPU");
    }
    if h_best > 0.0 {
        println!(
            "bulk: {} streams x {} MiB, best of {}: kedge {:.0} MiB/s, haproxy (mode tcp) {:.0} MiB/s, \
             kedge/haproxy = {:.0}%; load average {}",
            a.streams,
            a.bulk_mib,
            a.rounds,
            k_best,
            h_best,
            100.0 * k_best / h_best,
            loadavg()
        );
    }
    drop(haproxy);
    std::process::exit(0);
}
