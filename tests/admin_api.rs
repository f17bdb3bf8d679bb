//! The admin listener: metrics exposition, health and readiness, status, drain API.

mod pool_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kedge::admin::{self, AdminState, Credential, CredentialStatus, ListenerStatus, Status};
use kedge::pool::{HealthKind, Pools};
use pool_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

struct Admin {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Admin {
    async fn start(state: AdminState) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(admin::serve(listener, state, async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            stop: Some(tx),
            task,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("admin stops")
            .unwrap();
    }

    async fn request(&self, method: &str, path: &str) -> (u16, String) {
        let (code, _, body) = self.request_with(method, path, &[]).await;
        (code, body)
    }

    /// A request with extra header lines; the status, the head and the body.
    async fn request_with(&self, method: &str, path: &str, headers: &[&str]) -> (u16, String, String) {
        let mut s = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: admin\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8(buf).unwrap();
        let code = text[9..12].parse().unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (code, head.to_ascii_lowercase(), body.to_owned())
    }

    async fn get(&self, path: &str) -> (u16, String) {
        self.request("GET", path).await
    }
}

/// The admin token the drain tests use.
const TOKEN: &[u8] = b"t0ken-for-the-admin-api";
const AUTH: &str = "Authorization: Bearer t0ken-for-the-admin-api";

/// A token file (mode 0600) holding [`TOKEN`].
fn token_file() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin.token");
    std::fs::write(&path, [TOKEN, b"\n"].concat()).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    (dir, path)
}

fn credentials() -> CredentialStatus {
    CredentialStatus {
        latest: Some(Credential {
            principal: "EXCHASA$@CONTOSO.COM".into(),
            kvno: 7,
            enctypes: vec!["aes256-cts-hmac-sha1-96".into(), "aes128-cts-hmac-sha1-96".into()],
            loaded_at: 1_714_564_800,
        }),
        previous: Some(Credential {
            principal: "EXCHASA$@CONTOSO.COM".into(),
            kvno: 6,
            enctypes: vec!["aes256-cts-hmac-sha1-96".into()],
            loaded_at: 1_712_000_000,
        }),
    }
}

async fn pools_of(backends: &[&Backend], kind: HealthKind) -> Arc<Pools> {
    pools_named("owa", backends, kind).await
}

/// Metrics are process-global and the tests of this file run in parallel: a test that asserts
/// on a pool's gauges gives its pool a name no other test uses.
async fn pools_named(pool: &str, backends: &[&Backend], kind: HealthKind) -> Arc<Pools> {
    let names: Vec<&str> = backends.iter().map(|b| b.name.as_str()).collect();
    let cfg = pool_config(&names, health(kind, 1, 1, 1_000));
    let pools = Pools::from_config(&table(backends), &[(pool.to_owned(), cfg)].into()).unwrap();
    for p in pools.all() {
        p.check_now().await;
    }
    Arc::new(pools)
}

#[tokio::test]
async fn metrics_expose_recorded_auth_attempts_in_valid_prometheus_text() {
    kedge::observe::install();
    for _ in 0..3 {
        kedge::observe::auth_attempt("metrics-test", "http", "ok", "ok", Some(0.000_012));
    }
    kedge::observe::auth_attempt("metrics-test", "http", "fail", "KRB_AP_ERR_SKEW", Some(0.000_02));
    // Refused before any validation ran (NTLM by policy): counted, kept out of the histogram.
    kedge::observe::auth_attempt("metrics-prevalidation", "http", "fail", "ntlm", None);
    kedge::observe::auth_attempt(
        "metrics-test",
        "exchangeMDB",
        "fail",
        "KRB_AP_ERR_MODIFIED",
        Some(0.003),
    );
    kedge::observe::ntlm_rejected("metrics-test");
    let _conn = kedge::observe::connection_opened("metrics-test");
    kedge::observe::keytab_kvno(kedge::observe::KvnoSlot::Latest, Some(7));

    let a = Backend::start("cas1").await;
    let pools = pools_named("metrics-owa", &[&a], HealthKind::Http).await;
    let admin = Admin::start(AdminState::new(pools)).await;
    let (code, body) = admin.get("/metrics").await;
    assert_eq!(code, 200);
    let scrape =
        prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("valid exposition");

    let value = |name: &str, labels: &[(&str, &str)]| -> Option<f64> {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
                prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    };
    let auth = "kedge_auth_total";
    let ok = [
        ("protocol", "metrics-test"),
        ("service", "http"),
        ("result", "ok"),
        ("reason", "ok"),
    ];
    assert_eq!(value(auth, &ok), Some(3.0));
    let skew = [
        ("protocol", "metrics-test"),
        ("result", "fail"),
        ("reason", "KRB_AP_ERR_SKEW"),
    ];
    assert_eq!(value(auth, &skew), Some(1.0));
    let mdb = [("service", "exchangeMDB"), ("reason", "KRB_AP_ERR_MODIFIED")];
    assert_eq!(value(auth, &mdb), Some(1.0));
    assert_eq!(
        value("kedge_ntlm_rejected_total", &[("protocol", "metrics-test")]),
        Some(1.0)
    );
    assert_eq!(
        value("kedge_connections_active", &[("listener", "metrics-test")]),
        Some(1.0)
    );
    assert_eq!(value("kedge_keytab_kvno", &[("slot", "latest")]), Some(7.0));
    assert_eq!(
        value("kedge_backend_up", &[("pool", "metrics-owa"), ("member", "cas1")]),
        Some(1.0)
    );

    let hist = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "kedge_auth_duration_seconds" && s.labels.get("protocol") == Some("metrics-test")
        })
        .expect("auth latency histogram");
    match &hist.value {
        prometheus_parse::Value::Histogram(buckets) => {
            let le = |b: f64| {
                buckets
                    .iter()
                    .find(|c| (c.less_than - b).abs() < 1e-12)
                    .map(|c| c.count)
            };
            assert_eq!(le(0.000_005), Some(0.0));
            assert_eq!(le(0.000_025), Some(4.0));
            assert_eq!(le(0.005), Some(5.0));
        }
        other => panic!("kedge_auth_duration_seconds is not a histogram: {other:?}"),
    }
    let pre = [("protocol", "metrics-prevalidation"), ("reason", "ntlm")];
    assert_eq!(value(auth, &pre), Some(1.0));
    assert!(
        !scrape
            .samples
            .iter()
            .any(|s| s.metric == "kedge_auth_duration_seconds"
                && s.labels.get("protocol") == Some("metrics-prevalidation")),
        "a refusal before validation is not a latency sample"
    );
    assert!(scrape.docs.contains_key("kedge_auth_total"), "help text present");
    assert!(!body.contains("alice"), "no principal in labels");
    admin.stop().await;
}

#[tokio::test]
async fn healthz_answers_while_running_and_unknown_paths_are_404() {
    let admin = Admin::start(AdminState::new(Arc::new(
        Pools::from_config(&[].into(), &[].into()).unwrap(),
    )))
    .await;
    assert_eq!(admin.get("/healthz").await, (200, "ok\n".into()));
    assert_eq!(admin.get("/nope").await.0, 404);
    assert_eq!(admin.request("POST", "/status").await.0, 405);
    admin.stop().await;
}

#[tokio::test]
async fn readyz_flips_with_pool_health_and_key_presence() {
    let a = Backend::start("cas1").await;
    let pools = pools_of(&[&a], HealthKind::Http).await;
    let admin = Admin::start(AdminState::new(pools.clone()).with_credentials(credentials)).await;
    assert_eq!(admin.get("/readyz").await.0, 200);

    a.set_health(503);
    pools.get("owa").unwrap().check_now().await;
    let (code, body) = admin.get("/readyz").await;
    assert_eq!(code, 503);
    assert!(body.contains("pool owa: no member up"), "{body}");

    a.set_health(200);
    pools.get("owa").unwrap().check_now().await;
    assert_eq!(admin.get("/readyz").await.0, 200);
    admin.stop().await;

    let keyless = Admin::start(AdminState::new(pools)).await;
    let (code, body) = keyless.get("/readyz").await;
    assert_eq!(code, 503);
    assert!(body.contains("no keys loaded"), "{body}");
    keyless.stop().await;
}

#[tokio::test]
async fn a_dead_rpc_pool_leaves_the_https_listener_ready() {
    let (web, rfr) = (Backend::start("cas1").await, Backend::start("cas2").await);
    rfr.set_health(503);
    let cfg = |m: &str| pool_config(&[m], health(HealthKind::Http, 1, 1, 1_000));
    let pools = Pools::from_config(
        &table(&[&web, &rfr]),
        &[
            ("ready-web".to_owned(), cfg("cas1")),
            ("ready-rfr".to_owned(), cfg("cas2")),
        ]
        .into(),
    )
    .unwrap();
    for p in pools.all() {
        p.check_now().await;
    }
    let listener = |name: &str, kind: &str, pool: &str| ListenerStatus {
        name: name.into(),
        kind: kind.into(),
        pools: vec![pool.into()],
        ..Default::default()
    };
    let state = AdminState::new(Arc::new(pools))
        .with_credentials(credentials)
        .with_listeners(move || {
            vec![
                listener("https", "https", "ready-web"),
                listener("rfr", "rpc", "ready-rfr"),
            ]
        });
    let admin = Admin::start(state).await;
    assert_eq!(
        admin.get("/readyz").await,
        (200, "ready\n".into()),
        "port 443 stays in"
    );
    assert_eq!(admin.get("/readyz/https").await.0, 200);
    let (code, body) = admin.get("/readyz/rfr").await;
    assert_eq!(code, 503);
    assert!(body.contains("pool ready-rfr: no member up"), "{body}");
    assert_eq!(admin.get("/readyz/nope").await.0, 404);
    let status: Status = admin::fetch_status(&admin.addr.to_string()).await.unwrap();
    assert!(status.ready);
    let rfr_status = status.listeners.iter().find(|l| l.name == "rfr").unwrap();
    assert!(!rfr_status.ready && rfr_status.not_ready[0].contains("ready-rfr"));
    admin.stop().await;
}

#[tokio::test]
async fn healthz_needs_every_connection_worker_to_answer() {
    let workers = kedge::edge::workers::Workers::start(2).unwrap();
    let state = AdminState::new(Arc::new(Pools::from_config(&[].into(), &[].into()).unwrap()))
        .with_workers(workers.clone());
    let admin = Admin::start(state).await;
    assert_eq!(admin.get("/healthz").await, (200, "ok\n".into()));
    // A worker stuck in blocking code does not run the probe's task.
    workers
        .spawn_on(1, async { std::thread::sleep(Duration::from_secs(3)) })
        .expect("worker 1");
    let (code, body) = admin.get("/healthz").await;
    assert_eq!(code, 503);
    assert!(body.contains("worker 1 did not answer"), "{body}");
    admin.stop().await;
}

#[tokio::test]
async fn status_json_round_trips_and_shows_pools_credentials_and_listeners() {
    let (a, b) = (Backend::start("cas1").await, Backend::start("cas2").await);
    b.set_health(503);
    let pools = pools_of(&[&a, &b], HealthKind::Http).await;
    let state = AdminState::new(pools)
        .with_credentials(credentials)
        .with_listeners(|| {
            vec![ListenerStatus {
                name: "https".into(),
                kind: "https".into(),
                listen: "0.0.0.0:443".into(),
                tls: true,
                connections_active: 3,
                top_talkers: vec![kedge::admin::Talker {
                    source: "192.0.2.7".into(),
                    open: 3,
                    accepted: 9,
                    refused: 4,
                }],
                ..Default::default()
            }]
        });
    let admin = Admin::start(state).await;
    let status: Status = admin::fetch_status(&admin.addr.to_string()).await.unwrap();

    let json = serde_json::to_string(&status).unwrap();
    assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), status);
    assert_eq!(status.version, env!("CARGO_PKG_VERSION"));
    assert!(status.ready);
    assert_eq!(status.credentials, credentials());
    assert_eq!(status.listeners[0].name, "https");
    assert_eq!(status.listeners[0].top_talkers[0].refused, 4);
    let owa = &status.pools[0];
    assert_eq!((owa.name.as_str(), owa.members_up), ("owa", 1));
    let m = |n: &str| owa.members.iter().find(|m| m.name == n).unwrap();
    assert_eq!((m("cas1").health.as_str(), m("cas1").up), ("up", true));
    assert_eq!((m("cas2").health.as_str(), m("cas2").up), ("down", false));
    assert_eq!(m("cas2").last_error.as_deref(), Some("status 503"));
    assert_eq!(m("cas1").weight, 100);
    admin.stop().await;
}

#[tokio::test]
async fn drain_and_undrain_through_the_api() {
    let (a, b) = (Backend::start("cas1").await, Backend::start("cas2").await);
    let pools = pools_of(&[&a, &b], HealthKind::Http).await;
    let (_dir, token) = token_file();
    let admin = Admin::start(
        AdminState::new(pools.clone())
            .with_credentials(credentials)
            .with_token_file(Some(token)),
    )
    .await;
    let addr = admin.addr.to_string();

    let m = admin::drain_member(&addr, "owa", "cas1", true, Some(TOKEN))
        .await
        .unwrap();
    assert!(m.draining && !m.up);
    let pool = pools.get("owa").unwrap();
    assert!(pool
        .candidates(Some("alice@CONTOSO.COM"))
        .iter()
        .all(|m| m.name != "cas1"));
    let status = admin::fetch_status(&addr).await.unwrap();
    assert!(
        status.pools[0]
            .members
            .iter()
            .find(|m| m.name == "cas1")
            .unwrap()
            .draining
    );

    let m = admin::drain_member(&addr, "owa", "cas1", false, Some(TOKEN))
        .await
        .unwrap();
    assert!(!m.draining && m.up);
    assert_eq!(
        admin.request_with("POST", "/drain/owa/nope", &[AUTH]).await.0,
        404
    );
    assert_eq!(
        admin.request_with("POST", "/drain/nopool/cas1", &[AUTH]).await.0,
        404
    );
    assert_eq!(admin.get("/drain/owa/cas1").await.0, 405);
    admin.stop().await;
}

#[tokio::test]
async fn status_table_lists_credentials_and_members_with_health() {
    let (a, b) = (Backend::start("cas1").await, Backend::start("cas2").await);
    b.set_health(503);
    let pools = pools_of(&[&a, &b], HealthKind::Http).await;
    pools.get("owa").unwrap().drain("cas1", true).unwrap();
    let status = AdminState::new(pools).with_credentials(credentials).status();
    let table = admin::render_status_table(&status);
    println!("{table}");
    for needle in [
        "Latest",
        "Previous",
        "EXCHASA$@CONTOSO.COM",
        "2024-05-01 12:00:00Z",
        "owa",
        "cas1",
        "cas2",
        "draining",
        "down",
        "status 503",
        "NOT READY",
    ] {
        assert!(table.contains(needle), "missing {needle:?} in\n{table}");
    }
    let cas2 = table.lines().find(|l| l.contains("cas2")).unwrap();
    assert!(cas2.contains("down"), "{cas2}");
    let latest = table
        .lines()
        .find(|l| l.trim_start().starts_with("Latest"))
        .unwrap();
    assert!(latest.contains(" 7 "), "{latest}");
}

/// Whether `member` of pool `owa` is draining.
fn draining(pools: &Pools, member: &str) -> bool {
    pools.get("owa").unwrap().member(member).unwrap().is_draining()
}

#[tokio::test]
async fn mutating_endpoints_need_the_bearer_token_of_the_token_file() {
    let a = Backend::start("cas1").await;
    let pools = pools_of(&[&a], HealthKind::Http).await;
    let (_dir, token) = token_file();
    let admin = Admin::start(AdminState::new(pools.clone()).with_token_file(Some(token))).await;

    let (code, head, _) = admin.request_with("POST", "/drain/owa/cas1", &[]).await;
    assert_eq!(code, 401);
    assert!(head.contains("www-authenticate: bearer"), "{head}");
    let wrong = admin
        .request_with("POST", "/drain/owa/cas1", &["Authorization: Bearer guess"])
        .await;
    assert_eq!(wrong.0, 401);
    assert!(!draining(&pools, "cas1"), "nothing changed without the token");
    let err = admin::drain_member(&admin.addr.to_string(), "owa", "cas1", true, None)
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("401"), "{err}");

    assert_eq!(
        admin.request_with("POST", "/drain/owa/cas1", &[AUTH]).await.0,
        200
    );
    assert!(draining(&pools, "cas1"));
    // Read-only endpoints stay open for probes and Prometheus.
    assert_eq!(admin.get("/status").await.0, 200);
    admin.stop().await;
}

#[tokio::test]
async fn cross_site_requests_are_refused_and_no_cors_is_offered() {
    let a = Backend::start("cas1").await;
    let pools = pools_of(&[&a], HealthKind::Http).await;
    let (_dir, token) = token_file();
    let admin = Admin::start(AdminState::new(pools.clone()).with_token_file(Some(token))).await;
    for browser in [
        "Origin: https://evil.example",
        "Sec-Fetch-Site: cross-site",
        "Origin: null",
    ] {
        let (code, head, _) = admin
            .request_with("POST", "/drain/owa/cas1", &[AUTH, browser])
            .await;
        assert_eq!(code, 403, "{browser}");
        assert!(!head.contains("access-control-"), "{head}");
    }
    assert!(!draining(&pools, "cas1"));
    let (code, head, _) = admin
        .request_with(
            "OPTIONS",
            "/drain/owa/cas1",
            &[
                "Origin: https://evil.example",
                "Access-Control-Request-Method: POST",
            ],
        )
        .await;
    assert_eq!(code, 405, "no preflight succeeds");
    assert!(!head.contains("access-control-"), "{head}");
    admin.stop().await;
}

#[tokio::test]
async fn without_a_token_file_mutating_endpoints_are_off() {
    let a = Backend::start("cas1").await;
    let pools = pools_of(&[&a], HealthKind::Http).await;
    let admin = Admin::start(AdminState::new(pools.clone())).await;
    let (code, _, body) = admin.request_with("POST", "/drain/owa/cas1", &[AUTH]).await;
    assert_eq!(code, 403);
    assert!(body.contains("admin.token_file"), "{body}");
    assert!(!draining(&pools, "cas1"));
    admin.stop().await;
}

#[test]
fn an_admin_listener_off_loopback_is_warned_about() {
    let warn = admin::exposure_warning("0.0.0.0:9180".parse().unwrap(), false).unwrap();
    assert!(
        warn.contains("not on loopback") && warn.contains("admin.token_file"),
        "{warn}"
    );
    assert!(admin::exposure_warning("127.0.0.1:9180".parse().unwrap(), true).is_none());
    assert!(admin::exposure_warning("[::1]:9180".parse().unwrap(), true).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kedge_drain_sends_the_token_from_its_file() {
    let a = Backend::start("cas1").await;
    let pools = pools_of(&[&a], HealthKind::Http).await;
    let (_dir, token) = token_file();
    let admin = Admin::start(AdminState::new(pools.clone()).with_token_file(Some(token.clone()))).await;
    let addr = admin.addr.to_string();
    let run = move |extra: &'static [&'static str]| {
        let (addr, token) = (addr.clone(), token.clone());
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_kedge"))
                .args(["drain", "owa", "cas1", "--admin", &addr, "--token-file"])
                .arg(&token)
                .args(extra)
                .output()
                .unwrap()
        })
    };
    let out = run(&[]).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("owa/cas1: draining"));
    assert!(draining(&pools, "cas1"));
    let out = run(&["--undo"]).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!draining(&pools, "cas1"));
    admin.stop().await;
}
