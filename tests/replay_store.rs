//! Replicas sharing replay state through a real `redis-server`: real `kedge run` processes in
//! assert mode with real MIT tokens (HTTP), and two in-process RPC listeners with their own
//! acceptors (RPC). A token one replica accepted is a replay on another; with the store killed,
//! `fail = "closed"` refuses and `fail = "local"` serves, each counted; a restarted store is
//! found again without help. Concurrent calls share one pipelined connection; a stalled server
//! times calls out; a TLS store is trusted through a private CA.

mod kedge_process;
#[path = "http_common/pki.rs"]
#[allow(dead_code)]
mod pki;
mod support;
mod support_rpc;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use kedge::edge::rpc::{serve_rpc, RpcEdgeContext};
use kedge::krb::acceptor::{Acceptor, AcceptorConfig};
use kedge::krb::keyset::KeySet;
use kedge::krb::keytab::Keytab;
use kedge::krb::replay::ReplayCache;
use kedge::replay_store::{FailPolicy, ReplayConfig, ReplayStore, Seen, StoreError};
use kedge::rpc::{AuthType, RejectReason, EMSMDB};
use kedge_process::{backend, get, metric, start, terminate, Running};
use support::{Kdc, Mech, RedisServer, ARRAY_FQDN, REALM};
use support_rpc::{
    alter_context_pdu, emsmdb_bind, exchange, expect_fault, expect_nak, listener_config, pool_to, send_bind,
    RecordingBackend, Reply,
};

const HTTP_SPN: &str = "HTTP@outlook.contoso.com";

/// `n` fresh SPNEGO tokens of alice for HTTP, base64 for the Authorization header.
fn http_tokens(kdc: &Kdc, n: usize) -> Vec<String> {
    kdc.tokens("alice", HTTP_SPN, Mech::Spnego, n)
        .iter()
        .map(|t| base64::engine::general_purpose::STANDARD.encode(t))
        .collect()
}

/// A `kedge run` replica in assert mode in front of `cas`, sharing replay state through `store`.
fn replica(dir: &Path, name: &str, store: &str, fail: &str, cas: SocketAddr) -> Running {
    let kdc = Kdc::shared();
    let cfg = format!(
        "[kerberos]\nkeytab = \"{keytab}\"\nrealm = \"{REALM}\"\narray = [\"{ARRAY_FQDN}\"]\n\n\
         [kerberos.replay]\nstore = \"{store}\"\nfail = \"{fail}\"\ntimeout_ms = 200\n\n\
         [runtime]\nworkers = 2\n\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n\n\
         [[http]]\nname = \"http\"\nlisten = \"127.0.0.1:0\"\n\
         routes = [{{ prefix = \"/\", pool = \"web\", mode = \"assert\" }}]\n\n\
         [members.cas1]\naddress = \"127.0.0.1\"\nports = {{ http = {port} }}\n\n\
         [pools.web]\nmembers = [\"cas1\"]\nport = \"http\"\n\
         health = {{ kind = \"http\", path = \"/owa/healthcheck.htm\", interval_ms = 200, rise = 1, fall = 1 }}\n",
        keytab = kdc.keytab_path().display(),
        port = cas.port(),
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, cfg).unwrap();
    start(&path)
}

/// Waits (10 s at most) until the replica's store gauge says `up`.
fn wait_store(k: &Running, up: bool) {
    let want = if up { 1.0 } else { 0.0 };
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(k.admin, "kedge_replay_store_up", &[]) != want {
        assert!(
            Instant::now() < deadline,
            "replay store never became {}",
            if up { "up" } else { "down" }
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn status(k: &Running) -> serde_json::Value {
    serde_json::from_str(&get(k.admin, "/status", None).1).expect("/status is JSON")
}

#[test]
fn a_token_accepted_by_one_replica_is_refused_by_another() {
    let kdc = Kdc::shared();
    let redis = RedisServer::start();
    let cas = backend("cas1");
    let dir = tempfile::tempdir().unwrap();
    let a = replica(dir.path(), "a", &redis.url(), "closed", cas);
    let b = replica(dir.path(), "b", &redis.url(), "closed", cas);
    wait_store(&a, true);
    wait_store(&b, true);
    let t = http_tokens(kdc, 2);

    // Accepted by A, a replay on B: 401, counted on B like a local replay.
    assert_eq!(get(a.http, "/owa/", Some(&t[0])), (200, "cas1\n".to_owned()));
    let (code, _) = get(b.http, "/owa/", Some(&t[0]));
    assert_eq!(code, 401, "a token captured on A is refused by B");
    assert_eq!(
        metric(b.admin, "kedge_replay_rejected_total", &[("protocol", "http")]),
        1.0
    );
    let repeat = [("protocol", "http"), ("reason", "KRB_AP_ERR_REPEAT")];
    assert_eq!(metric(b.admin, "kedge_auth_total", &repeat), 1.0);
    assert_eq!(
        metric(b.admin, "kedge_replay_store_calls_total", &[("result", "replay")]),
        1.0
    );
    assert_eq!(
        metric(a.admin, "kedge_replay_store_calls_total", &[("result", "fresh")]),
        1.0
    );

    // The other way round.
    assert_eq!(get(b.http, "/owa/", Some(&t[1])).0, 200);
    assert_eq!(get(a.http, "/owa/", Some(&t[1])).0, 401);

    // A replay on the replica that accepted it is the local cache's: the store is not asked.
    let calls = |k: &Running| metric(k.admin, "kedge_replay_store_calls_total", &[]);
    let before = calls(&a);
    assert_eq!(get(a.http, "/owa/", Some(&t[0])).0, 401);
    assert_eq!(calls(&a), before, "local replays never reach the store");
    assert_eq!(
        metric(a.admin, "kedge_replay_rejected_total", &[("protocol", "http")]),
        2.0
    );

    // The store holds one 128-bit digest per authenticator, expiring after 2 × skew.
    let mut con = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
    keys.sort();
    assert_eq!(keys.len(), 2, "{keys:?}");
    for k in &keys {
        let hex = k.strip_prefix("kedge:replay:").expect("the default prefix");
        assert!(
            hex.len() == 32 && hex.bytes().all(|c| c.is_ascii_hexdigit()),
            "{k}"
        );
        let ttl: i64 = redis::cmd("PTTL").arg(k).query(&mut con).unwrap();
        assert!((590_000..=600_000).contains(&ttl), "{k}: {ttl} ms");
    }

    let st = status(&b)["replay_store"].clone();
    assert_eq!(st["state"], "up", "{st}");
    assert_eq!(st["store"], redis.url(), "{st}");
    assert_eq!(st["fail"], "closed", "{st}");
    assert_eq!(st["calls"]["replay"], 1, "{st}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kedge"))
        .args(["status", "--admin", &b.admin.to_string()])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    let row = table
        .lines()
        .find(|l| l.contains(&redis.url()))
        .unwrap_or_default();
    assert!(
        table.contains("Shared replay store") && row.contains(" up ") && row.contains("1/1/0/0"),
        "{table}"
    );
    terminate(a);
    terminate(b);
}

#[test]
fn without_the_store_closed_refuses_local_serves_and_both_reconnect() {
    let kdc = Kdc::shared();
    let mut redis = RedisServer::start();
    let cas = backend("cas1");
    let dir = tempfile::tempdir().unwrap();
    let closed = replica(dir.path(), "closed", &redis.url(), "closed", cas);
    let local = replica(dir.path(), "local", &redis.url(), "local", cas);
    wait_store(&closed, true);
    wait_store(&local, true);
    let t = http_tokens(kdc, 4);

    redis.kill();
    wait_store(&closed, false);
    wait_store(&local, false);
    assert_eq!(status(&closed)["replay_store"]["state"], "down");

    // fail = closed: 503 with the reason, counted as a degraded refusal.
    let (code, body) = get(closed.http, "/owa/", Some(&t[0]));
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("replay store"), "{body}");
    let degraded = |k: &Running, fail| {
        metric(
            k.admin,
            "kedge_replay_store_degraded_total",
            &[("protocol", "http"), ("fail", fail)],
        )
    };
    assert_eq!(degraded(&closed, "closed"), 1.0);
    let unavailable = [("protocol", "http"), ("reason", "replay_store_unavailable")];
    assert_eq!(metric(closed.admin, "kedge_auth_total", &unavailable), 1.0);

    // fail = local: served on the local cache's verdict, counted; local replays still refused.
    assert_eq!(get(local.http, "/owa/", Some(&t[1])), (200, "cas1\n".to_owned()));
    assert_eq!(degraded(&local, "local"), 1.0);
    assert_eq!(get(local.http, "/owa/", Some(&t[1])).0, 401);
    assert_eq!(degraded(&local, "local"), 1.0, "a local replay needs no store");

    // The store comes back (empty): both replicas reconnect by themselves and share again.
    redis.restart();
    wait_store(&closed, true);
    wait_store(&local, true);
    assert_eq!(get(local.http, "/owa/", Some(&t[2])).0, 200);
    assert_eq!(
        get(closed.http, "/owa/", Some(&t[2])).0,
        401,
        "replay refused again"
    );
    assert_eq!(get(closed.http, "/owa/", Some(&t[3])).0, 200);
    assert_eq!(get(local.http, "/owa/", Some(&t[3])).0, 401);
    let st = status(&closed)["replay_store"].clone();
    assert_eq!(st["state"], "up", "{st}");
    assert!(st["connects"].as_u64().unwrap() >= 2, "{st}");
    terminate(closed);
    terminate(local);
}

/// An RPC replica: its own acceptor and replay cache, its own store client, on 127.0.0.1:0.
struct RpcReplica {
    addr: SocketAddr,
    store: Arc<ReplayStore>,
    /// Dropping it stops the listener and the store's maintainer.
    stop: Option<tokio::sync::watch::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RpcReplica {
    async fn start(name: &str, store_url: &str, fail: FailPolicy, backend: SocketAddr) -> RpcReplica {
        kedge::observe::install();
        let kdc = Kdc::shared();
        let kt = Keytab::parse(&std::fs::read(kdc.keytab_path()).unwrap()).unwrap();
        let acceptor = Arc::new(Acceptor::new(
            AcceptorConfig {
                realm: Some(REALM.into()),
                hosts: vec![ARRAY_FQDN.into()],
                shared_replay: true,
                ..Default::default()
            },
            KeySet::from_keytab(&kt, SystemTime::now(), "test"),
            Arc::new(ReplayCache::new(10_000)),
        ));
        let cfg = ReplayConfig {
            store: Some(store_url.into()),
            fail,
            ..ReplayConfig::default()
        };
        let store = ReplayStore::from_config(&cfg, Duration::from_secs(600))
            .unwrap()
            .unwrap();
        let (tx, rx) = tokio::sync::watch::channel(());
        let lcfg = listener_config(name);
        let ctx = RpcEdgeContext::new(acceptor, pool_to(name, backend), &lcfg)
            .unwrap()
            .with_replay_store(store.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tasks = vec![
            tokio::spawn(store.clone().maintain(sender_dropped(rx.clone()))),
            tokio::spawn(serve_rpc(
                listener,
                Arc::new(lcfg),
                Arc::new(ctx),
                sender_dropped(rx),
            )),
        ];
        let deadline = Instant::now() + Duration::from_secs(10);
        while !store.is_up() {
            assert!(Instant::now() < deadline, "{name}: store never came up");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        RpcReplica {
            addr,
            store,
            stop: Some(tx),
            tasks,
        }
    }

    async fn stop(mut self) {
        drop(self.stop.take());
        for t in self.tasks.drain(..) {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("replica did not stop")
                .unwrap();
        }
    }
}

/// Completes when the channel's sender is dropped.
async fn sender_dropped(mut rx: tokio::sync::watch::Receiver<()>) {
    while rx.changed().await.is_ok() {}
}

#[tokio::test]
async fn rpc_binds_and_later_contexts_share_replay_state_and_fail_closed_with_local_limit_exceeded() {
    let kdc = Kdc::shared();
    let mut redis = RedisServer::start();
    let backend = RecordingBackend::start().await;
    let a = RpcReplica::start("t-store-a", &redis.url(), FailPolicy::Closed, backend.addr).await;
    let b = RpcReplica::start("t-store-b", &redis.url(), FailPolicy::Closed, backend.addr).await;
    let tokens = kdc.dce_tokens("alice", "exchangeMDB", 4);
    let replays = || support_rpc::metric("kedge_replay_rejected_total", &[("protocol", "rpc")]);

    // A first bind admitted by A is a replay on B: bind_nak, counted as a replay.
    let bind = emsmdb_bind(AuthType::Krb5, &tokens[0]);
    let (reply, _sa) = send_bind(a.addr, &bind).await;
    assert!(matches!(reply, Reply::Ack(_)), "{reply:?}");
    let before = replays();
    expect_nak(send_bind(b.addr, &bind).await.0, RejectReason::InvalidChecksum);
    support_rpc::metric_moved("kedge_replay_rejected_total", &[("protocol", "rpc")], before).await;
    assert_eq!(b.store.status().calls.replay, 1);

    // So is a token A admitted opening a second security context on a connection B admitted
    // (B's own cache never saw it: the store decides).
    let (reply, _sa2) = send_bind(a.addr, &emsmdb_bind(AuthType::Krb5, &tokens[2])).await;
    assert!(matches!(reply, Reply::Ack(_)), "{reply:?}");
    let (reply, mut sb) = send_bind(b.addr, &emsmdb_bind(AuthType::Krb5, &tokens[1])).await;
    assert!(matches!(reply, Reply::Ack(_)), "{reply:?}");
    let before = replays();
    let alter = alter_context_pdu(2, EMSMDB, (0, 81), Some((AuthType::Krb5, 2)), &tokens[2]);
    expect_fault(exchange(&mut sb, &alter).await, 2);
    support_rpc::metric_moved("kedge_replay_rejected_total", &[("protocol", "rpc")], before).await;
    assert_eq!(b.store.status().calls.replay, 2);
    let seen: Vec<Vec<u8>> = backend.connections().into_iter().flatten().collect();
    assert!(
        !seen.contains(&alter),
        "the replayed context never reached a backend"
    );
    assert_eq!(
        seen.iter().filter(|p| **p == bind).count(),
        1,
        "nor the replayed bind"
    );

    // Store gone, fail = closed: a fresh bind gets local_limit_exceeded.
    redis.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.store.is_up() {
        assert!(Instant::now() < deadline, "A never noticed the store is gone");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let fresh = emsmdb_bind(AuthType::Krb5, &tokens[3]);
    expect_nak(
        send_bind(a.addr, &fresh).await.0,
        RejectReason::LocalLimitExceeded,
    );
    let seen: Vec<Vec<u8>> = backend.connections().into_iter().flatten().collect();
    assert!(!seen.contains(&fresh));
    a.stop().await;
    b.stop().await;
}

/// A store client for `redis` with `timeout_ms`, maintained until the returned sender drops.
async fn store_client(
    redis: &RedisServer,
    timeout_ms: u64,
) -> (Arc<ReplayStore>, tokio::sync::watch::Sender<()>) {
    let cfg = ReplayConfig {
        store: Some(redis.url()),
        timeout_ms,
        ..ReplayConfig::default()
    };
    let store = ReplayStore::from_config(&cfg, Duration::from_secs(600))
        .unwrap()
        .unwrap();
    let (tx, rx) = tokio::sync::watch::channel(());
    tokio::spawn(store.clone().maintain(sender_dropped(rx)));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !store.is_up() {
        assert!(Instant::now() < deadline, "store never came up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (store, tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_are_pipelined_over_one_connection() {
    kedge::observe::install();
    let redis = RedisServer::start();
    let (store, _stop) = store_client(&redis, 1_000).await;
    let calls: Vec<_> = (0..500u32)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut id = [0u8; 16];
                id[..4].copy_from_slice(&i.to_be_bytes());
                (store.check(&id).await, store.check(&id).await)
            })
        })
        .collect();
    for c in calls {
        let (first, again) = c.await.unwrap();
        assert_eq!((first, again), (Ok(Seen::Fresh), Ok(Seen::Replay)));
    }
    let mut con = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut con).unwrap();
    assert_eq!(
        clients.lines().count(),
        2,
        "the store's one connection and ours:\n{clients}"
    );
    let st = store.status();
    assert_eq!((st.calls.fresh, st.calls.replay, st.connects), (500, 500, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_times_calls_out_and_the_store_recovers() {
    kedge::observe::install();
    let redis = RedisServer::start();
    let (store, _stop) = store_client(&redis, 100).await;
    assert_eq!(store.check(&[1; 16]).await, Ok(Seen::Fresh));

    // The server stops answering for 1.5 s: a call gives up after its 100 ms.
    let url = redis.url();
    let stall = std::thread::spawn(move || {
        let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
        redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg("1.5")
            .query::<()>(&mut con)
            .unwrap();
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    assert_eq!(store.check(&[2; 16]).await, Err(StoreError::Timeout(100)));
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(store.status().calls.timeout, 1);
    stall.join().unwrap();

    // Once the server answers again, so does the store (reconnecting if its check gave up).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.check(&[1; 16]).await {
            Ok(seen) => {
                assert_eq!(seen, Seen::Replay, "entries outlive a stall");
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "store did not recover: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_store_is_reached_with_a_private_ca() {
    kedge::observe::install();
    let pki = pki::generate();
    let redis = RedisServer::start_tls(&pki.cert_pem, &pki.key_pem);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let cfg = ReplayConfig {
        store: Some(redis.url()),
        ca_file: Some(ca_file),
        ..ReplayConfig::default()
    };
    let mut problems = Vec::new();
    cfg.validate("kerberos.replay", &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    let store = ReplayStore::from_config(&cfg, Duration::from_secs(600))
        .unwrap()
        .unwrap();
    let (tx, rx) = tokio::sync::watch::channel(());
    tokio::spawn(store.clone().maintain(sender_dropped(rx)));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !store.is_up() {
        assert!(
            Instant::now() < deadline,
            "no TLS connection: {:?}",
            store.status().last_error
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(store.check(&[9; 16]).await, Ok(Seen::Fresh));
    assert_eq!(store.check(&[9; 16]).await, Ok(Seen::Replay));
    assert!(
        store.target().starts_with("rediss://127.0.0.1:"),
        "{}",
        store.target()
    );
    drop(tx);

    // Without the private CA the server's certificate is not trusted: never up.
    let untrusted = ReplayStore::from_config(
        &ReplayConfig {
            store: Some(redis.url()),
            ..ReplayConfig::default()
        },
        Duration::from_secs(600),
    )
    .unwrap()
    .unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(());
    tokio::spawn(untrusted.clone().maintain(sender_dropped(rx)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!untrusted.is_up());
    assert!(untrusted.status().last_error.is_some());
    assert_eq!(untrusted.check(&[9; 16]).await, Err(StoreError::Down));
}
