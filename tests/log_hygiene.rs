//! What an attacker can do to kedge's logs through the real HTTP edge: text from the wire (a
//! ticket's cleartext `sname`, the path) is escaped before it reaches a line, so it cannot forge
//! a record.
//!
//! The subscriber is process-global (connections run on worker threads), so each test finds its
//! own lines by a marker of its own.

mod access_log_file;
mod http_common;

use access_log_file::AccessLogFile;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_common::backend::TestBackend;
use http_common::client::Conn;
use http_common::kedge::{start, start_logged, Kedge, PoolSpec};
use http_common::{bounded, fake};
use kedge::config::LoggingConfig;
use kedge::krb::acceptor::{Acceptor, AcceptorConfig, Framing};
use kedge::krb::crypto::{EncType, Key};
use kedge::krb::keyset::{KeySet, ServiceKey};
use kedge::krb::mint::{mint, MintRequest};
use kedge::krb::principal::Principal;
use kedge::krb::replay::ReplayCache;
use kedge::observe::logging::{self, LogFormat};
use tracing_subscriber::EnvFilter;

const REALM: &str = "CONTOSO.COM";
const ARRAY: &str = "outlook.contoso.com";

/// Every log line of this test process.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// Full lines per reason per interval in these tests.
const BURST: u32 = 3;
/// The summary interval in these tests.
const INTERVAL_SECS: u64 = 2;

/// Installs (once) kedge's own subscriber at DEBUG, writing into a buffer.
fn logs() -> Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let cfg = LoggingConfig {
            refusal_interval_secs: INTERVAL_SECS,
            refusal_burst: BURST,
        };
        let subscriber = logging::subscriber(
            &cfg,
            EnvFilter::new("debug"),
            LogFormat::Text { ansi: false },
            move || writer.clone(),
        );
        tracing::subscriber::set_global_default(subscriber).expect("first subscriber");
        captured
    })
    .clone()
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The array's acceptor over one random ASA key filed under `http/<array>`.
fn acceptor(key: &Key) -> Arc<Acceptor> {
    let spn = Principal::parse(&format!("http/{ARRAY}@{REALM}"), REALM).unwrap();
    let cfg = AcceptorConfig {
        realm: Some(REALM.into()),
        hosts: vec![ARRAY.into()],
        skew: Duration::from_secs(300),
        ..Default::default()
    };
    Arc::new(Acceptor::new(
        cfg,
        KeySet::from_keys(
            vec![ServiceKey::new(spn, 3, key.clone(), 0)],
            SystemTime::now(),
            "test",
        ),
        Arc::new(ReplayCache::new(10_000)),
    ))
}

/// A valid token (encrypted in the ASA key) whose ticket names `sname` in clear.
fn token_for(key: &Key, sname: &Principal) -> Vec<u8> {
    let client = Principal::parse(&format!("alice@{REALM}"), REALM).unwrap();
    mint(&MintRequest {
        client: &client,
        service: sname,
        service_key: key,
        kvno: 3,
        now: now_secs(),
        cusec: 1,
        lifetime: 3600,
        framing: Framing::Spnego { legacy_oid: false },
        gss_flags: 0x3e,
        channel_binding: None,
        pac: None,
    })
    .token
}

async fn edge(auth: Arc<Acceptor>) -> (Kedge, TestBackend) {
    edge_named("https", auth).await
}

/// The edge as listener `name` (its log lines say `listener=<name>`).
async fn edge_named(name: &str, auth: Arc<Acceptor>) -> (Kedge, TestBackend) {
    let backend = TestBackend::start().await;
    let routes = format!("name = \"{name}\"\n[[routes]]\nprefix = \"/\"\npool = \"cas\"\n");
    let kedge = start(&routes, vec![PoolSpec::plain("cas", backend.addr)], auth, None).await;
    (kedge, backend)
}

/// Waits until some captured line contains `marker` (log lines are written as the request
/// completes, on a worker thread).
async fn lines_with(logs: &Captured, marker: &str) -> Vec<String> {
    bounded("log line", async {
        loop {
            let found: Vec<String> = logs.lines().into_iter().filter(|l| l.contains(marker)).collect();
            if !found.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
                return logs.lines().into_iter().filter(|l| l.contains(marker)).collect();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newline_in_a_tickets_sname_cannot_forge_a_log_line() {
    let logs = logs();
    let key = Key::random(EncType::Aes256CtsHmacSha196);
    let (kedge, backend) = edge(acceptor(&key)).await;
    let forged = "2030-01-01T00:00:00.000000Z DEBUG kedge::edge::http::handler: Negotiate token accepted \
                  listener=https peer=127.0.0.1:1 principal=administrator@CONTOSO.COM service=http";
    let sname = Principal {
        name_type: 2,
        components: vec![
            "http".into(),
            format!("{ARRAY}.sname-marker\n{forged}\r\u{1b}[2K"),
        ],
        realm: REALM.into(),
    };
    let token = token_for(&key, &sname);
    let mut c = Conn::plain(kedge.addr).await;
    let r = bounded(
        "get",
        c.get("/ews/", &[("authorization", &fake::negotiate(&token))]),
    )
    .await;
    assert_eq!(r.status, 401, "{r:?}");
    assert!(
        backend.seen().is_empty(),
        "a refused token never reaches a member"
    );

    let marked = lines_with(&logs, "sname-marker").await;
    let all = logs.lines();
    assert!(
        all.iter().all(|l| !l.starts_with("2030-01-01")),
        "a forged line appeared:\n{}",
        all.join("\n")
    );
    for line in &marked {
        assert!(
            line.contains("sname-marker\\\\n2030-01-01") || line.contains("sname-marker\\n2030-01-01"),
            "the newline is escaped: {line}"
        );
        assert!(
            line.contains("\\\\r\\\\u{1b}[2K") || line.contains("\\r\\u{1b}[2K"),
            "{line}"
        );
        assert!(!line.contains('\u{1b}'), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_ascii_in_a_path_and_a_scheme_is_escaped() {
    let logs = logs();
    let key = Key::random(EncType::Aes256CtsHmacSha196);
    let (kedge, _backend) = edge(acceptor(&key)).await;
    // A raw request: the path and header bytes hyper lets through (UTF-8 in the path,
    // obs-text in a header value) must not reach a line as they are.
    let reply = http_common::client::raw(
        kedge.addr,
        b"GET /path-marker/\xe2\x80\xae/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
          Authorization: Be\xe2\x80\xaearer\"q y\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 401"), "{reply}");
    let lines = lines_with(&logs, "path-marker").await;
    for line in &lines {
        assert!(
            !line.contains('\u{202e}'),
            "a bidi override reached the log: {line}"
        );
    }
    assert!(
        lines.iter().any(|l| l.contains("Be\\u{202e}arer\\\"q")),
        "the scheme is named, escaped: {lines:?}"
    );
}

/// Refusal lines of listener `name` and summary lines of `reason`, once a summary of
/// `reason` has appeared.
async fn after_summary(logs: &Captured, name: &str, reason: &str) -> (Vec<String>, Vec<String>) {
    let summary = format!("reason=\"{reason}\" ");
    let listener = format!("listener={name} ");
    bounded("summary line", async {
        loop {
            let lines = logs.lines();
            let summaries: Vec<String> = lines
                .iter()
                .filter(|l| l.contains(&summary) && l.contains("more in the last"))
                .cloned()
                .collect();
            if !summaries.is_empty() {
                let refusals = lines
                    .into_iter()
                    .filter(|l| l.contains(&listener) && l.contains("request refused"))
                    .collect();
                return (refusals, summaries);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

/// The count a summary line reports.
fn suppressed(line: &str) -> u64 {
    let v = line.split("suppressed=").nth(1).expect("suppressed field");
    v.split(' ').next().unwrap().parse().expect("a count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_refusals_is_logged_in_full_up_to_the_burst_then_summarized() {
    let logs = logs();
    let key = Key::random(EncType::Aes256CtsHmacSha196);
    let (kedge, backend) = edge_named("https-flood", acceptor(&key)).await;
    const SENT: u64 = 20;
    let mut c = Conn::plain(kedge.addr).await;
    for _ in 0..SENT {
        let r = bounded(
            "get",
            c.get("/", &[("authorization", "Negotiate !!not-base64!!")]),
        )
        .await;
        assert_eq!(r.status, 400);
        c = Conn::plain(kedge.addr).await;
    }
    assert!(backend.seen().is_empty());
    let (full, summaries) = after_summary(&logs, "https-flood", "bad_base64").await;
    // An interval may end while the flood is sent: at most two intervals' bursts in full.
    assert!(
        (1..=2 * BURST as usize).contains(&full.len()),
        "{} full lines: {full:#?}",
        full.len()
    );
    assert!(
        full.iter().all(|l| l.contains("reason=\"bad_base64\"")),
        "{full:#?}"
    );
    // Wait for every interval the flood touched to be summarized, then the books balance.
    tokio::time::sleep(Duration::from_secs(INTERVAL_SECS + 1)).await;
    let (full, summaries_now) = after_summary(&logs, "https-flood", "bad_base64").await;
    let counted: u64 = summaries_now.iter().map(|l| suppressed(l)).sum();
    assert_eq!(full.len() as u64 + counted, SENT, "{full:#?}\n{summaries_now:#?}");
    assert!(
        summaries[0].contains(&format!(
            "bad_base64: {} more in the last {INTERVAL_SECS} s",
            suppressed(&summaries[0])
        )),
        "{summaries:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_one_diagnostic_line_and_one_access_line() {
    let logs = logs();
    let access = AccessLogFile::json();
    let key = Key::random(EncType::Aes256CtsHmacSha196);
    let backend = TestBackend::start().await;
    let routes = "name = \"https-once\"\n[[routes]]\nprefix = \"/\"\npool = \"cas\"\n";
    let pools = vec![PoolSpec::plain("cas", backend.addr)];
    let kedge = start_logged(routes, pools, acceptor(&key), access.log.clone()).await;
    // A token for the array's SPN in another key: KRB_AP_ERR_MODIFIED.
    let other = Key::random(EncType::Aes256CtsHmacSha196);
    let spn = Principal::parse(&format!("http/{ARRAY}@{REALM}"), REALM).unwrap();
    let token = token_for(&other, &spn);
    let mut c = Conn::plain(kedge.addr).await;
    let r = bounded(
        "get",
        c.get("/ews/", &[("authorization", &fake::negotiate(&token))]),
    )
    .await;
    assert_eq!(r.status, 401);
    lines_with(&logs, "listener=https-once ").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lines: Vec<String> = logs
        .lines()
        .into_iter()
        .filter(|l| l.contains("listener=https-once ") && l.contains("KRB_AP_ERR_MODIFIED"))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let access = access.wait_for(1).await;
    assert_eq!(access.len(), 1, "{access:#?}");
    assert_eq!(
        (access[0]["status"].as_u64(), access[0]["reason"].as_str()),
        (Some(401), Some("KRB_AP_ERR_MODIFIED"))
    );
}
