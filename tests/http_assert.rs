//! Assert mode: kedge's own AP-REP on the response, identity headers (spoof-proof) instead of
//! Authorization, optional HMAC signature, pooled backend connections.

mod http_common;

use std::sync::Arc;

use http_common::backend::{Seen, TestBackend};
use http_common::bounded;
use http_common::client::{Conn, Reply};
use http_common::fake::{self, FakeAuth, APREP};
use http_common::kedge::{start, Kedge, PoolSpec};
use kedge::edge::http::{assert_signature, AssertSigned};

const ASSERT: &str = r#"
[[routes]]
prefix = "/"
pool = "cas"
mode = "assert"
assert = { groups_header = "X-Kedge-Groups", signature_header = "X-Kedge-Signature", hmac_key_file = "KEYFILE" }
[[routes]]
prefix = "/owa/healthcheck.htm"
pool = "cas"
mode = "assert"
anonymous = true
"#;

async fn setup() -> (TestBackend, Kedge, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("hmac.key");
    std::fs::write(&key, "kedge-test-secret\n").unwrap();
    let backend = TestBackend::start().await;
    let cfg = ASSERT.replace("KEYFILE", &key.display().to_string());
    let kedge = start(
        &cfg,
        vec![PoolSpec::plain("cas", backend.addr)],
        Arc::new(FakeAuth::default()),
        None,
    )
    .await;
    (backend, kedge, dir)
}

#[tokio::test]
async fn mutual_auth_gets_kedges_ap_rep_and_the_backend_gets_identity_not_authorization() {
    let (backend, kedge, _dir) = setup().await;
    let mut c = Conn::plain(kedge.addr).await;
    let r = bounded(
        "auth",
        c.get(
            "/ews/",
            &[(
                "authorization",
                &fake::header("alice", "mutual groups=S-1-5-21-1-513,S-1-5-21-1-512"),
            )],
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("www-authenticate"), Some(fake::negotiate(APREP)));
    // Later requests on the connection need no header and carry no AP-REP.
    let r = bounded("later", c.get("/ews/2", &[])).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("www-authenticate"), None);

    let seen = backend.seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_signed_identity(s);
    }
}

/// What the member got for one of alice's requests: no Authorization, her identity, and a
/// signature over that very request (method, target and Host) and its timestamp.
fn assert_signed_identity(s: &Seen) -> (u64, String) {
    assert_signed_as(s, "alice@KEDGE.TEST", Some("S-1-5-21-1-513,S-1-5-21-1-512"))
}

/// What the member got for one request of `principal` (stated as its bytes) with `groups`
/// (`None`: no PAC, no groups header): no Authorization, the identity, and a signature over
/// that very request (method, target and Host) and its timestamp; the timestamp and signature.
fn assert_signed_as(s: &Seen, principal: &str, groups: Option<&str>) -> (u64, String) {
    assert!(
        s.headers.get("authorization").is_none(),
        "Authorization never reaches an assert backend"
    );
    assert_eq!(
        s.headers.get("x-kedge-principal").unwrap().as_bytes(),
        principal.as_bytes()
    );
    assert_eq!(
        s.headers.get("x-kedge-groups").map(|g| g.as_bytes()),
        groups.map(str::as_bytes)
    );
    let ts: u64 = s
        .headers
        .get("x-kedge-timestamp")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let host = s.headers.get("host").map_or(&b""[..], |h| h.as_bytes());
    let signed = AssertSigned {
        method: s.method.as_str().as_bytes(),
        target: s.path.as_bytes(),
        host,
        principal,
        groups: groups.unwrap_or("").as_bytes(),
        timestamp: ts,
    };
    let got = s.headers.get("x-kedge-signature").unwrap().to_str().unwrap();
    assert_eq!(
        got,
        assert_signature(b"kedge-test-secret", &signed),
        "{} {}",
        s.method,
        s.path
    );
    let elsewhere = AssertSigned {
        target: b"/ecp/",
        ..signed
    };
    assert_ne!(got, assert_signature(b"kedge-test-secret", &elsewhere));
    (ts, got.to_owned())
}

#[tokio::test]
async fn repeated_requests_on_a_connection_are_each_signed_for_themselves() {
    let (backend, kedge, _dir) = setup().await;
    let mut c = Conn::plain(kedge.addr).await;
    let alice = fake::header("alice", "groups=S-1-5-21-1-513,S-1-5-21-1-512");
    let auth = [("authorization", alice.as_str())];
    assert_eq!(bounded("auth", c.get("/mapi/emsmdb/", &auth)).await.status, 200);
    // The same request again and again (the connection's memo may answer), then others
    // between them: each signature is the one for its own request.
    for path in [
        "/mapi/emsmdb/",
        "/mapi/emsmdb/",
        "/mapi/nspi/",
        "/mapi/emsmdb/",
        "/mapi/emsmdb/x",
    ] {
        assert_eq!(bounded(path, c.get(path, &[])).await.status, 200);
    }
    let seen = backend.seen();
    assert_eq!(seen.len(), 6);
    let signed: Vec<(u64, String)> = seen.iter().map(assert_signed_identity).collect();
    // Within one second, one request's signature is the same bytes each time; another
    // request's is different.
    for (i, a) in seen.iter().enumerate() {
        for (j, b) in seen.iter().enumerate() {
            if signed[i].0 == signed[j].0 {
                assert_eq!(
                    a.path == b.path,
                    signed[i].1 == signed[j].1,
                    "{} {}",
                    a.path,
                    b.path
                );
            }
        }
    }
}

/// Fresh tokens on one connection: of one kept ticket (kedge keeps the identity it made for
/// it), of another user, of a renewed ticket with other groups, without a PAC. Each request
/// reaches the member with its own token's identity, signed for it.
#[tokio::test]
async fn each_fresh_token_on_a_connection_states_its_own_identity() {
    let (backend, kedge, _dir) = setup().await;
    let mut c = Conn::plain(kedge.addr).await;
    const TWO: &str = "S-1-5-21-1-513,S-1-5-21-1-512";
    let steps: [(&str, &str, Option<&str>); 7] = [
        ("alice", "ticket=1", Some(TWO)),
        ("alice", "ticket=1", Some(TWO)),
        ("bob", "ticket=1", Some("S-1-5-21-1-513")),
        ("alice", "ticket=1", Some(TWO)),
        ("alice", "ticket=2", Some("S-1-5-21-1-1107")),
        ("alice", "ticket=2", Some("S-1-5-21-1-1107")),
        ("alice", "", None),
    ];
    for (user, ticket, groups) in steps {
        let extra = groups.map_or(String::new(), |g| format!("{ticket} groups={g}"));
        let auth = fake::header(user, &extra);
        let r = bounded(user, c.get("/ews/", &[("authorization", &auth)])).await;
        assert_eq!(r.status, 200, "{user} {extra}");
    }
    let seen = backend.seen();
    assert_eq!(seen.len(), steps.len());
    for (s, (user, ticket, groups)) in seen.iter().zip(steps) {
        let principal = format!("{user}@{}", fake::REALM);
        assert_eq!(
            s.headers.get_all("x-kedge-principal").iter().count(),
            1,
            "{user} {ticket}"
        );
        assert_signed_as(s, &principal, groups);
    }
}

/// `GET /ews/` on `c` with a (fake) Negotiate token of `user`, no mutual auth and no PAC.
async fn get_as(c: &mut Conn, user: &str) -> Reply {
    bounded(
        "get",
        c.get("/ews/", &[("authorization", &fake::header(user, ""))]),
    )
    .await
}

#[tokio::test]
async fn without_mutual_auth_no_ap_rep_is_sent() {
    let (_backend, kedge, _dir) = setup().await;
    let mut c = Conn::plain(kedge.addr).await;
    let r = get_as(&mut c, "alice").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("www-authenticate"), None);
}

#[tokio::test]
async fn spoofed_identity_headers_never_arrive() {
    let (backend, kedge, _dir) = setup().await;
    let mut c = Conn::plain(kedge.addr).await;
    // Exact names in any case, and look-alikes that IIS/CGI stacks read as the same variable
    // (`HTTP_X_KEDGE_PRINCIPAL`).
    let spoof = [
        ("X-KEDGE-PRINCIPAL", "administrator@KEDGE.TEST"),
        ("X_Kedge_Principal", "administrator@KEDGE.TEST"),
        ("x.kedge.groups", "S-1-5-32-544"),
        ("x-kedge-groups", "S-1-5-32-544"),
        ("X-Kedge-Signature", "00"),
        ("x-kedge-timestamp", "1"),
    ];
    let mut headers = vec![("authorization", fake::header("alice", ""))];
    headers.extend(spoof.iter().map(|(k, v)| (*k, v.to_string())));
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(bounded("auth", c.get("/ews/", &h)).await.status, 200);
    // And on an anonymous route: stripped, nothing stated.
    let mut anon = Conn::plain(kedge.addr).await;
    let h: Vec<(&str, &str)> = spoof.to_vec();
    assert_eq!(
        bounded("anon", anon.get("/owa/healthcheck.htm", &h)).await.status,
        200
    );

    let seen = backend.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0]
            .headers
            .get_all("x-kedge-principal")
            .iter()
            .collect::<Vec<_>>(),
        vec!["alice@KEDGE.TEST"]
    );
    assert!(
        seen[0].headers.get("x-kedge-groups").is_none(),
        "no PAC, no groups"
    );
    assert_ne!(seen[0].headers.get("x-kedge-signature").unwrap(), "00");
    for name in ["x_kedge_principal", "x.kedge.groups"] {
        assert!(seen[0].headers.get(name).is_none(), "look-alike {name} arrived");
    }
    for name in [
        "x-kedge-principal",
        "x_kedge_principal",
        "x.kedge.groups",
        "x-kedge-groups",
        "x-kedge-signature",
        "x-kedge-timestamp",
    ] {
        assert!(
            seen[1].headers.get(name).is_none(),
            "{name} on an anonymous request"
        );
    }
}

#[tokio::test]
async fn a_refused_token_in_assert_mode_is_401_and_never_forwarded() {
    let (backend, kedge, _dir) = setup().await;
    let mut c = Conn::plain(kedge.addr).await;
    assert_eq!(
        bounded(
            "bad",
            c.get("/ews/", &[("authorization", &fake::negotiate(b"junk"))])
        )
        .await
        .status,
        401
    );
    assert_eq!(
        bounded(
            "ntlm",
            c.get("/ews/", &[("authorization", "NTLM TlRMTVNTUAABAAAA")])
        )
        .await
        .status,
        401
    );
    assert_eq!(backend.seen().len(), 0);
}

#[tokio::test]
async fn assert_mode_pools_backend_connections_across_clients() {
    let (backend, kedge, _dir) = setup().await;
    for user in ["alice", "bob", "carol"] {
        let mut c = Conn::plain(kedge.addr).await;
        for _ in 0..3 {
            let r = get_as(&mut c, user).await;
            assert_eq!(r.status, 200);
        }
    }
    // Pooled connections are kept per worker thread (the harness runs 2, as `kedge run` on two
    // cores): nine sequential requests of three clients reuse at most one connection per worker.
    let opened = backend.connections();
    assert!(
        (1..=2).contains(&opened),
        "sequential asserted requests reuse one pooled connection per worker: {opened} opened"
    );
    let principals: Vec<String> = backend
        .seen()
        .iter()
        .map(|s| {
            s.headers
                .get("x-kedge-principal")
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(principals.len(), 9);
    assert_eq!(principals[0], "alice@KEDGE.TEST");
    assert_eq!(principals[8], "carol@KEDGE.TEST");
}

#[tokio::test]
async fn a_utf8_principal_is_stated_as_its_bytes_and_signed_as_them() {
    let (backend, kedge, _dir) = setup().await;
    let mut c = Conn::plain(kedge.addr).await;
    let r = get_as(&mut c, "Weiß").await;
    assert_eq!(r.status, 200);
    // Stated in the one canonical form (case folded per character), as UTF-8 bytes, and
    // signed as them.
    assert_signed_as(&backend.seen()[0], "weiß@KEDGE.TEST", None);
}

/// A name the KDC issued with a control character cannot be a header value: the request is
/// refused (403, counted as `principal_unstatable`), never forwarded without its identity or with
/// the name's bytes raw (a header injection).
#[tokio::test]
async fn a_principal_with_a_control_character_is_refused_and_never_forwarded() {
    let (backend, kedge, _dir) = setup().await;
    for user in ["eve\r\nx-kedge-groups:S-1-5-32-544", "eve\u{1}", "eve\u{7f}"] {
        let mut c = Conn::plain(kedge.addr).await;
        let r = get_as(&mut c, user).await;
        assert_eq!(r.status, 403, "{user:?}");
    }
    assert_eq!(backend.seen().len(), 0);
}
