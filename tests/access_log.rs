//! The access log of the HTTP edge (scripted validator, recording backend): one flat JSON line
//! per request naming who, which route and member, the status and bytes — refusals always,
//! successes as sampled.

mod access_log_file;
mod http_common;

use access_log_file::AccessLogFile;
use http_common::backend::TestBackend;
use http_common::bounded;
use http_common::client::Conn;
use http_common::fake;
use http_common::kedge::{logged, Kedge, PASSTHROUGH};

async fn setup(log: &AccessLogFile) -> (TestBackend, Kedge) {
    logged(PASSTHROUGH, log.log.clone()).await
}

#[tokio::test]
async fn a_served_request_is_one_flat_line_with_principal_member_status_and_bytes() {
    let log = AccessLogFile::json();
    let (backend, kedge) = setup(&log).await;
    let mut c = Conn::plain(kedge.addr).await;
    let authz = fake::header("alice", "");
    let ua = "Microsoft Office/16.0 (\"MAPI\")";
    let r = bounded(
        "get",
        c.get(
            "/mapi/emsmdb/?MailboxId=x",
            &[("authorization", &authz), ("user-agent", ua)],
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(backend.seen().len(), 1);

    let lines = log.wait_for(1).await;
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let l = lines[0].as_object().expect("an object");
    assert!(l.values().all(|v| !v.is_object() && !v.is_array()), "flat: {l:?}");
    assert_eq!(l["kind"], "http");
    assert_eq!(l["listener"], "https");
    assert_eq!(l["peer"], "127.0.0.1");
    assert_eq!(l["route"], "/");
    assert_eq!(l["method"], "GET");
    assert_eq!(l["path"], "/mapi/emsmdb/", "no query string");
    assert_eq!(l["auth"], "kerberos");
    assert_eq!(l["principal"], "alice@KEDGE.TEST");
    assert_eq!(l["member"], "cas-m1");
    assert_eq!(l["status"], 200);
    assert_eq!(l["user_agent"], ua);
    assert!(!l.contains_key("reason"), "a success has no reason");
    assert!(
        l["bytes_in"].as_u64().unwrap() > authz.len() as u64,
        "the head was counted"
    );
    assert_eq!(l["bytes_out"].as_u64(), Some(r.body.len() as u64));
    assert!(l["duration_ms"].as_f64().unwrap() > 0.0);
    assert!(l["time"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn a_refused_token_is_one_line_with_its_reason_and_no_member() {
    let log = AccessLogFile::json();
    let (backend, kedge) = setup(&log).await;
    let mut c = Conn::plain(kedge.addr).await;
    let r = bounded(
        "get",
        c.get(
            "/ews/",
            &[("authorization", &fake::negotiate(b"not a fake token"))],
        ),
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(backend.seen().is_empty());

    let lines = log.wait_for(1).await;
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let l = &lines[0];
    assert_eq!(l["status"], 401);
    assert_eq!(l["reason"], "malformed", "the acceptor's reason label");
    assert_eq!(l["path"], "/ews/");
    assert!(l.get("principal").is_none() && l.get("member").is_none(), "{l}");
}

#[tokio::test]
async fn successes_are_sampled_but_refusals_and_errors_are_always_logged() {
    let log = AccessLogFile::sampled(0.0);
    let (_backend, kedge) = setup(&log).await;
    let mut c = Conn::plain(kedge.addr).await;
    for _ in 0..3 {
        assert_eq!(c.get_as("ok", "/owa/", "bob").await.status, 200);
    }
    // A new connection: the first one is authenticated (connection-bound Negotiate).
    let mut anon = Conn::plain(kedge.addr).await;
    assert_eq!(anon.get_plain("no credentials", "/owa/").await.status, 401);
    let lines = log.wait_for(1).await;
    let statuses: Vec<_> = lines.iter().map(|l| l["status"].clone()).collect();
    assert_eq!(statuses, vec![401], "{lines:#?}");
    assert_eq!(lines[0]["reason"], "no_credentials");
}

#[tokio::test]
async fn a_path_no_route_matches_is_logged_under_route_dash() {
    let log = AccessLogFile::json();
    let toml = "name = \"narrow\"\n[[routes]]\nprefix = \"/owa/\"\npool = \"cas\"\n";
    let (_backend, kedge) = logged(toml, log.log.clone()).await;
    let mut c = Conn::plain(kedge.addr).await;
    assert_eq!(c.get_plain("get", "/nowhere").await.status, 404);
    let lines = log.wait_for(1).await;
    assert_eq!(lines.len(), 1);
    assert_eq!(
        (lines[0]["route"].as_str(), lines[0]["listener"].as_str()),
        (Some("-"), Some("narrow"))
    );
    assert_eq!(lines[0]["reason"], "no_route");
}

#[tokio::test]
async fn an_assert_route_logs_the_member_of_the_pooled_connection() {
    let log = AccessLogFile::json();
    let toml = "name = \"assert\"\n[[routes]]\nprefix = \"/ews/\"\npool = \"cas\"\nmode = \"assert\"\n";
    let (_backend, kedge) = logged(toml, log.log.clone()).await;
    let mut c = Conn::plain(kedge.addr).await;
    assert_eq!(c.get_as("get", "/ews/exchange.asmx", "grace").await.status, 200);
    let lines = log.wait_for(1).await;
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(lines[0]["member"], "cas-m1");
    assert_eq!(lines[0]["principal"], "grace@KEDGE.TEST");
    assert_eq!(lines[0]["route"], "/ews/");
}
