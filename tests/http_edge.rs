//! The HTTP edge with a scripted validator: connection-bound Negotiate, passthrough pinning,
//! NTLM policy, refusals that never reach the backend.

mod http_common;

use std::sync::Arc;

use http_common::backend::{TestBackend, BACKEND_APREP};
use http_common::bounded;
use http_common::client::{raw, status_of, Conn};
use http_common::fake::{self, FakeAuth};
use http_common::kedge::{start, Kedge, PoolSpec, PASSTHROUGH};

/// kedge with the scripted validator over one scripted member (pool `cas`), and what that
/// member saw.
struct Edge {
    backend: TestBackend,
    kedge: Kedge,
}

impl Edge {
    /// The passthrough routes of [`PASSTHROUGH`].
    async fn start() -> Self {
        Self::with_routes(PASSTHROUGH).await
    }

    /// The routes of `listener_toml`.
    async fn with_routes(listener_toml: &str) -> Self {
        let backend = TestBackend::start().await;
        let kedge = kedge_over(listener_toml, backend.addr).await;
        Self { backend, kedge }
    }

    /// A new client connection.
    async fn conn(&self) -> Conn {
        Conn::plain(self.kedge.addr).await
    }

    /// Requests that reached the member.
    fn reached(&self) -> usize {
        self.backend.seen().len()
    }
}

/// kedge with `listener_toml`'s routes over the member at `member`.
async fn kedge_over(listener_toml: &str, member: std::net::SocketAddr) -> Kedge {
    start(
        listener_toml,
        vec![PoolSpec::plain("cas", member)],
        Arc::new(FakeAuth::default()),
        None,
    )
    .await
}

#[tokio::test]
async fn no_credentials_get_401_with_negotiate_and_no_ntlm() {
    let e = Edge::start().await;
    let r = e.conn().await.get_plain("get", "/mapi/emsmdb/").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.all("www-authenticate"), vec!["Negotiate"]);
    assert_eq!(e.reached(), 0);
}

#[tokio::test]
async fn a_route_passing_ntlm_offers_it_in_the_challenge() {
    let e = Edge::start().await;
    let r = e.conn().await.get_plain("get", "/ntlm/x").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.all("www-authenticate"), vec!["Negotiate", "NTLM"]);
}

#[tokio::test]
async fn anonymous_route_reaches_the_backend_with_forwarding_headers() {
    let e = Edge::start().await;
    let mut c = e.conn().await;
    let r = bounded(
        "get",
        c.get(
            "/OWA/healthcheck.htm",
            &[
                ("x-forwarded-for", "6.6.6.6"),
                ("connection", "keep-alive, x-hop"),
                ("x-hop", "1"),
            ],
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let seen = e.backend.seen();
    assert_eq!(seen.len(), 1);
    let h = &seen[0].headers;
    assert_eq!(h.get("x-forwarded-for").unwrap(), "127.0.0.1");
    assert_eq!(
        h.get("forwarded").unwrap(),
        "for=127.0.0.1;proto=http;host=\"outlook.kedge.test\""
    );
    assert!(
        h.get("x-hop").is_none(),
        "hop-by-hop header named in Connection must go"
    );
    assert!(h.get("connection").is_none());
}

#[tokio::test]
async fn a_valid_token_authenticates_the_connection_for_later_requests() {
    let e = Edge::start().await;
    let mut c = e.conn().await;
    let authz = fake::header("alice", "");
    let r = c.get_with("first", "/ews/exchange.asmx", &authz).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("www-authenticate").as_deref(),
        Some(BACKEND_APREP),
        "backend reply untouched"
    );
    assert_eq!(r.header("persistent-auth").as_deref(), Some("true"));
    for _ in 0..3 {
        let r = c.get_plain("later", "/ews/exchange.asmx").await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body, "conn=1 owner=alice@KEDGE.TEST path=/ews/exchange.asmx");
    }
    let seen = e.backend.seen();
    assert_eq!(seen.len(), 4);
    assert_eq!(
        seen[0].headers.get("authorization").unwrap().to_str().unwrap(),
        authz,
        "Authorization forwarded as sent"
    );
    assert!(seen.iter().all(|s| s.conn == 1));
    assert_eq!(e.backend.connections(), 1);
}

#[tokio::test]
async fn a_refused_token_gets_401_and_is_never_forwarded() {
    let e = Edge::start().await;
    let garbage = fake::negotiate(b"\x60\x82garbage");
    let r = e.conn().await.get_with("get", "/", &garbage).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.all("www-authenticate"), vec!["Negotiate"]);
    assert_eq!(e.reached(), 0);
    assert_eq!(e.backend.connections(), 0);
}

#[tokio::test]
async fn a_replayed_header_is_refused() {
    let e = Edge::start().await;
    let authz = fake::header("alice", "");
    assert_eq!(e.conn().await.get_with("first", "/", &authz).await.status, 200);
    assert_eq!(e.conn().await.get_with("replay", "/", &authz).await.status, 401);
    assert_eq!(e.reached(), 1);
}

#[tokio::test]
async fn a_ticket_for_another_service_is_refused() {
    let e = Edge::start().await;
    let mdb = fake::header("alice", "svc=exchangeMDB");
    assert_eq!(e.conn().await.get_with("get", "/", &mdb).await.status, 401);
    assert_eq!(e.reached(), 0);
}

#[tokio::test]
async fn garbage_authorization_headers_get_4xx_and_never_a_panic() {
    let e = Edge::start().await;
    let cases: &[(&str, u16)] = &[
        ("Negotiate !!!!", 400),
        ("Negotiate YWJj=ZGVm", 400),
        ("Negotiate ====", 400),
        ("Negotiate", 401),
        ("Negotiate    ", 401),
        ("Negotiate YQ", 401),
        ("Basic YTpi", 401),
        ("", 401),
        ("NTLM", 401),
    ];
    for (value, want) in cases {
        let mut c = e.conn().await;
        let r = c.get_with("get", "/", value).await;
        assert_eq!(r.status, *want, "Authorization: {value:?}");
        // The connection survives and still answers.
        assert_eq!(c.get_plain("again", "/").await.status, 401);
    }
    // Non-UTF-8 and control bytes, raw.
    let reply = raw(
        e.kedge.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Negotiate \xff\xfe\x80\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(matches!(status_of(&reply), 400 | 401), "{reply}");
    assert_eq!(e.reached(), 0);
}

#[tokio::test]
async fn an_oversized_token_is_431() {
    let e = Edge::start().await;
    let big = format!("Negotiate {}", "A".repeat(90 * 1024));
    assert_eq!(e.conn().await.get_with("get", "/", &big).await.status, 431);
    assert_eq!(e.reached(), 0);
}

#[tokio::test]
async fn ntlm_is_refused_by_default_in_either_scheme() {
    let e = Edge::start().await;
    for value in [
        "NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAKAGFKAAAADw==",
        "Negotiate TlRMTVNTUAABAAAAB4IIogAAAAA=",
    ] {
        let r = e.conn().await.get_with("get", "/mapi/", value).await;
        assert_eq!(r.status, 401, "{value}");
        assert_eq!(r.all("www-authenticate"), vec!["Negotiate"]);
    }
    assert_eq!(e.reached(), 0);
}

#[tokio::test]
async fn ntlm_passes_through_on_one_pinned_connection_where_allowed() {
    let e = Edge::start().await;
    let mut c = e.conn().await;
    let r = c
        .get_with("type1", "/ntlm/x", "NTLM TlRMTVNTUAABAAAAB4IIogAAAAA=")
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate").as_deref(),
        Some("NTLM TlRMTVNTUAACAAAA"),
        "backend challenge untouched"
    );
    let r = c
        .get_with("type3", "/ntlm/x", "NTLM TlRMTVNTUAADAAAAAAAAAAAA")
        .await;
    assert_eq!(r.status, 200);
    let r = c.get_plain("after", "/ntlm/y").await;
    assert_eq!(r.body, "conn=1 owner=ntlm-user path=/ntlm/y");
    // NTLM does not open Kerberos-only routes.
    assert_eq!(c.get_plain("other", "/mapi/").await.status, 401);
    assert_eq!(e.backend.connections(), 1);
}

#[tokio::test]
async fn a_new_principal_on_the_same_connection_gets_its_own_backend_connection() {
    let e = Edge::start().await;
    let mut c = e.conn().await;
    assert_eq!(c.get_as("alice", "/a", "alice").await.status, 200);
    assert_eq!(
        c.get_plain("alice2", "/a2").await.body,
        "conn=1 owner=alice@KEDGE.TEST path=/a2"
    );
    assert_eq!(c.get_as("bob", "/b", "bob").await.status, 200);
    assert_eq!(
        c.get_plain("bob2", "/b2").await.body,
        "conn=2 owner=bob@KEDGE.TEST path=/b2"
    );
    // The same principal again keeps its connection.
    assert_eq!(c.get_as("bob3", "/b3", "bob").await.status, 200);
    assert_eq!(
        c.get_plain("bob4", "/b4").await.body,
        "conn=2 owner=bob@KEDGE.TEST path=/b4"
    );
    assert_eq!(e.backend.connections(), 2);
}

#[tokio::test]
async fn a_refused_token_on_an_authenticated_connection_unauthenticates_it() {
    let e = Edge::start().await;
    let mut c = e.conn().await;
    assert_eq!(c.get_as("alice", "/", "alice").await.status, 200);
    let bad = fake::negotiate(b"nope");
    assert_eq!(c.get_with("bad", "/", &bad).await.status, 401);
    assert_eq!(c.get_plain("after", "/").await.status, 401);
    assert_eq!(e.reached(), 1);
}

#[tokio::test]
async fn two_users_never_share_a_backend_connection() {
    let e = Edge::start().await;
    let addr = e.kedge.addr;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let user = if i % 2 == 0 { "alice" } else { "bob" };
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::plain(addr).await;
            let r = c
                .get(
                    "/mapi/emsmdb/",
                    &[("authorization", &fake::header(user, "")), ("x-test-user", user)],
                )
                .await;
            assert_eq!(r.status, 200);
            for n in 0..40 {
                let r = c
                    .get(&format!("/mapi/emsmdb/{n}"), &[("x-test-user", user)])
                    .await;
                assert_eq!(r.status, 200);
                assert!(
                    r.body.contains(&format!("owner={user}@KEDGE.TEST")),
                    "{user} got {}",
                    r.body
                );
            }
        }));
    }
    for t in tasks {
        bounded("client", t).await.expect("client task");
    }
    let seen = e.backend.seen();
    assert_eq!(seen.len(), 8 * 41);
    for s in &seen {
        let user = s.headers.get("x-test-user").unwrap().to_str().unwrap();
        assert_eq!(
            s.owner.as_deref(),
            Some(format!("{user}@KEDGE.TEST").as_str()),
            "request of {user} on conn {}",
            s.conn
        );
    }
    assert_eq!(e.backend.connections(), 8);
}

#[tokio::test]
async fn the_backend_closing_its_connection_closes_the_clients() {
    let e = Edge::start().await;
    let mut c = e.conn().await;
    let r = c.get_as("close", "/close", "alice").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    bounded("closed", async {
        while !c.is_closed() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_dead_backend_is_a_5xx() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = dead.local_addr().unwrap();
    drop(dead);
    let kedge = kedge_over(PASSTHROUGH, addr).await;
    let mut c = Conn::plain(kedge.addr).await;
    let r = c.get_plain("get", "/owa/healthcheck.htm").await;
    assert_eq!(r.status, 502);
}

#[tokio::test]
async fn group_rules_refuse_with_403() {
    let cfg = r#"
[[routes]]
prefix = "/ecp/"
pool = "cas"
groups = { allow = ["S-1-5-21-1-512"] }
[[routes]]
prefix = "/"
pool = "cas"
"#;
    let e = Edge::with_routes(cfg).await;
    let user = || fake::header("alice", "groups=S-1-5-21-1-513");
    let mut c = e.conn().await;
    assert_eq!(c.get_with("user", "/ecp/", &user()).await.status, 403);
    // A connection authenticated elsewhere is checked against the route's rules too.
    assert_eq!(c.get_with("owa", "/owa/", &user()).await.status, 200);
    assert_eq!(c.get_plain("ecp", "/ecp/").await.status, 403);
    let admin = fake::header("root", "groups=S-1-5-21-1-512");
    assert_eq!(
        e.conn().await.get_with("admin", "/ecp/", &admin).await.status,
        200
    );
}

#[tokio::test]
async fn paths_that_could_escape_a_route_are_refused() {
    let e = Edge::start().await;
    for p in [
        "/owa/healthcheck.htm/../../ecp/",
        "/owa/healthcheck.htm/%2e%2e/ecp",
        "/owa/healthcheck.htm%2f..%2fecp",
    ] {
        assert_eq!(e.conn().await.get_plain("get", p).await.status, 400, "{p}");
    }
    assert_eq!(e.reached(), 0);
}

#[tokio::test]
async fn a_path_without_a_route_is_404() {
    let e = Edge::with_routes("[[routes]]\nprefix = \"/ews/\"\npool = \"cas\"\n").await;
    assert_eq!(e.conn().await.get_plain("get", "/owa/").await.status, 404);
    assert_eq!(e.reached(), 0);
}

#[tokio::test]
async fn kedge_identity_headers_are_stripped_on_passthrough_routes_too() {
    let e = Edge::start().await;
    let mut c = e.conn().await;
    let h = [
        ("authorization", fake::header("alice", "")),
        ("X-Kedge-Principal", "administrator@KEDGE.TEST".into()),
    ];
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(bounded("get", c.get("/ews/", &h)).await.status, 200);
    assert!(e.backend.seen()[0].headers.get("x-kedge-principal").is_none());
}
