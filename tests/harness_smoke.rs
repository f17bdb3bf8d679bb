//! The test harness itself works: a real MIT KDC issues tickets for every ASA SPN, real GSS
//! initiators turn them into SPNEGO and raw krb5 tokens, and MIT's own acceptor takes them with
//! the exported keytab. No kedge code is involved.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use support::{Kdc, Mech, Secret, Step, TokenSpec, ARRAY_FQDN, ASA_SERVICES, REALM};

const SPNEGO_OID_DER: &[u8] = &[0x06, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02];
const KRB5_OID_DER: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02];
const MS_KRB5_OID_DER: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x82, 0xf7, 0x12, 0x01, 0x02, 0x02];

/// The bytes after a GSS initial-context-token header (`60 len`), RFC 2743 §3.1.
fn after_gss_header(token: &[u8]) -> &[u8] {
    assert_eq!(token[0], 0x60, "not a GSS initial context token");
    match token[1] {
        n if n < 0x80 => &token[2..],
        n => &token[2 + usize::from(n & 0x7f)..],
    }
}

fn assert_raw_krb5(token: &[u8], oid: &[u8]) {
    let body = after_gss_header(token);
    assert!(body.starts_with(oid), "unexpected mech OID");
    let rest = &body[oid.len()..];
    assert_eq!(
        &rest[..3],
        &[0x01, 0x00, 0x6e],
        "want TOK_ID 01 00 then an AP-REQ (6e)"
    );
}

fn assert_spnego(token: &[u8]) {
    assert!(after_gss_header(token).starts_with(SPNEGO_OID_DER), "not SPNEGO");
}

#[test]
fn kdc_issues_spnego_and_krb5_tokens_for_every_asa_spn_that_mit_accepts() {
    let kdc = Kdc::shared();
    let mut all = Vec::new();
    for service in ASA_SERVICES {
        let hostbased = format!("{service}@{ARRAY_FQDN}");
        let principal = kdc.spn(service);
        let spnego = kdc.tokens("alice", &hostbased, Mech::Spnego, 2);
        let krb5 = kdc.tokens("bob", &principal, Mech::Krb5, 2);
        assert_ne!(spnego[0], spnego[1], "each token must come from a fresh context");
        spnego.iter().for_each(|t| assert_spnego(t));
        krb5.iter().for_each(|t| assert_raw_krb5(t, KRB5_OID_DER));
        all.push(("alice", spnego[0].clone()));
        all.push(("bob", krb5[0].clone()));
    }
    let tokens: Vec<Vec<u8>> = all.iter().map(|(_, t)| t.clone()).collect();
    for ((user, _), result) in all.iter().zip(kdc.mit_accept_all(&tokens)) {
        let accepted = result.expect("MIT refused a harness token");
        assert!(accepted.complete);
        assert_eq!(accepted.initiator, format!("{user}@{REALM}"));
        assert_eq!(accepted.mech, "1.2.840.113554.1.2.2");
    }
}

#[test]
fn legacy_microsoft_krb5_oid_token_is_accepted_by_mit() {
    let kdc = Kdc::shared();
    let token = &kdc.tokens("alice", &kdc.spn("HTTP"), Mech::MsKrb5, 1)[0];
    assert_raw_krb5(token, MS_KRB5_OID_DER);
    let accepted = kdc.mit_accept(token).expect("MIT refused the MS-OID token");
    assert_eq!(accepted.mech, "1.2.840.48018.1.2.2");
}

#[test]
fn mit_acceptor_refuses_a_replayed_token() {
    let kdc = Kdc::shared();
    let token = kdc
        .tokens("alice", "exchangeMDB@outlook.contoso.com", Mech::Krb5, 1)
        .remove(0);
    kdc.mit_accept(&token).expect("first use is accepted");
    let err = kdc.mit_accept(&token).expect_err("a replay must be refused");
    assert!(err.contains("replay"), "unexpected error: {err}");
}

#[test]
fn flags_and_channel_bindings_reach_the_token() {
    let kdc = Kdc::shared();
    let cb = b"tls-server-end-point:0123456789abcdef0123456789abcdef";
    let spec = TokenSpec::new("HTTP@outlook.contoso.com", Mech::Krb5)
        .flags("mutual,replay,sequence,conf,integ")
        .channel_binding(cb);
    let token = kdc.tokens_for("bob", &spec, 1).remove(0);
    // MIT checks bindings only when the acceptor supplies some; without, the token is fine.
    kdc.mit_accept(&token).expect("MIT refused a channel-bound token");
}

#[test]
fn interactive_initiator_completes_with_mit_ap_rep() {
    let kdc = Kdc::shared();
    for mech in [Mech::Spnego, Mech::Krb5] {
        let mut initiator = kdc.initiator("alice");
        let token = initiator.init("HTTP@outlook.contoso.com", mech, "mutual");
        let reply = kdc
            .mit_accept(&token)
            .unwrap()
            .output_token
            .expect("mutual auth needs an AP-REP");
        match initiator
            .step_full(&reply)
            .expect("initiator refused MIT's AP-REP")
        {
            Step::Complete(_) => {}
            other => panic!("{mech:?}: context not complete: {other:?}"),
        }
        // A second, fresh context on the same initiator process; garbage is refused.
        initiator.init("exchangeRFR/outlook.contoso.com@KEDGE.TEST", mech, "mutual");
        let err = initiator
            .step(b"\x6f\x03garbage")
            .expect_err("garbage AP-REP must fail");
        assert!(!err.is_empty());
    }
}

#[test]
fn dce_style_krb5_is_a_bare_ap_req_and_takes_three_legs_with_mit() {
    let kdc = Kdc::shared();
    let mut initiator = kdc.initiator("bob");
    let spec = TokenSpec::new("exchangeMDB/outlook.contoso.com@KEDGE.TEST", Mech::Krb5)
        .flags("mutual,dce,integ,conf,replay,sequence");
    let token = initiator.try_init(&spec).unwrap();
    assert_eq!(
        token[0], 0x6e,
        "MIT sends DCE-style krb5 as a bare AP-REQ, no GSS header"
    );
    let first = kdc.mit_accept(&token).expect("MIT takes the DCE AP-REQ");
    assert!(!first.complete, "DCE style waits for the third leg");
    let ap_rep = first.output_token.expect("AP-REP");
    match initiator.step_full(&ap_rep).unwrap() {
        Step::Complete(Some(third_leg)) => assert_eq!(third_leg[0], 0x6f, "client's AP-REP"),
        other => panic!("want a third-leg AP-REP, got {other:?}"),
    }
}

#[test]
fn kvno_bump_makes_old_keytab_stale_and_new_export_accepts() {
    let t0 = Instant::now();
    let kdc = Kdc::start();
    eprintln!("Kdc::start() took {:?}", t0.elapsed());
    let http = kdc.spn("HTTP");
    assert_eq!(kdc.kvno_of(&http), 1);
    let before = kdc.tokens("alice", &http, Mech::Krb5, 1).remove(0);

    assert_eq!(kdc.randkey(&http), 2);
    let after = kdc.tokens("alice", &http, Mech::Krb5, 1).remove(0);
    let old_keytab = kdc.keytab_path();
    let err = kdc
        .mit_accept_with_keytab(&old_keytab, &[&after])
        .remove(0)
        .expect_err("stale keytab");
    assert!(
        err.to_lowercase().contains("kvno") || err.contains("key version"),
        "unexpected error: {err}"
    );

    let new_keytab = kdc.dir().join("kvno2.keytab");
    kdc.export_keytab(&new_keytab, &[&http]);
    let klist = kdc.command("klist").arg("-k").arg(&new_keytab).output().unwrap();
    assert!(String::from_utf8_lossy(&klist.stdout).contains(&format!("   2 {http}")));
    kdc.mit_accept_with_keytab(&new_keytab, &[after])
        .remove(0)
        .expect("kvno 2 keytab accepts");

    // A keytab with both kvnos takes the old ticket too (Latest + Previous).
    let both = kdc.dir().join("both.keytab");
    std::fs::copy(&old_keytab, &both).unwrap();
    kdc.export_keytab(&both, &[&http]);
    kdc.mit_accept_with_keytab(&both, &[before])
        .remove(0)
        .expect("kvno 1 from a two-kvno keytab");

    kdc.add_principal("carol", Secret::Random);
    let carol = kdc
        .tokens("carol", "HTTP@outlook.contoso.com", Mech::Spnego, 1)
        .remove(0);
    let got = kdc
        .mit_accept_with_keytab(&new_keytab, &[carol])
        .remove(0)
        .unwrap();
    assert_eq!(got.initiator, "carol@KEDGE.TEST");
}

#[test]
fn kadmind_serves_kpasswd_and_kadmin() {
    let kdc = Kdc::start_with_kadmind();
    let addr = kdc.kpasswd_addr();
    assert!(TcpStream::connect(addr).is_ok());

    // MIT's own kpasswd client (RFC 3244 through kpasswd_server) changes alice's password.
    let mut child = kdc
        .command("kpasswd")
        .arg("alice")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Alice-Pa55w0rd\nAlice-New-Pa55\nAlice-New-Pa55\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("Password changed"),
        "kpasswd: {text}\n{}",
        kdc.logs()
    );
    assert_eq!(kdc.kvno_of("alice"), 2);
    kdc.remember_password("alice", "Alice-New-Pa55");
    kdc.kinit("alice");

    // kadmin over the network as admin/admin.
    let out = kdc
        .command("kadmin")
        .args([
            "-p",
            "admin/admin",
            "-w",
            "Admin-Pa55w0rd",
            "-q",
            "getprinc exchangeMDB/outlook.contoso.com",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Key: vno 1, aes256-cts-hmac-sha1-96"),
        "kadmin: {stdout}"
    );
}

#[test]
fn curl_negotiate_sends_a_token_mit_accepts() {
    let kdc = Kdc::shared();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::scope(|s| {
        let server = s.spawn(|| serve_negotiate_once(kdc, &listener));
        let out = kdc
            .curl_cmd("bob")
            .arg("--resolve")
            .arg(format!("{ARRAY_FQDN}:{port}:127.0.0.1"))
            .arg(format!("http://{ARRAY_FQDN}:{port}/mapi/emsmdb"))
            .output()
            .unwrap();
        let initiator = server.join().unwrap();
        assert_eq!(initiator, "bob@KEDGE.TEST");
        assert!(
            out.status.success(),
            "curl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hello bob@KEDGE.TEST");
    });
}

/// A minimal HTTP Negotiate server: 401 until a Negotiate token arrives, then MIT accepts it.
fn serve_negotiate_once(kdc: &Kdc, listener: &TcpListener) -> String {
    loop {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut stream = stream;
        loop {
            let mut auth = None;
            let mut length = 0usize;
            let mut line = String::new();
            let mut first = true;
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap() == 0 {
                    break;
                }
                if line == "\r\n" {
                    break;
                }
                first = false;
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("authorization: negotiate ") {
                    auth = Some(line[line.len() - v.len()..].trim().to_string());
                } else if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            if first {
                break; // connection closed
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let Some(b64) = auth else {
                stream
                    .write_all(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Negotiate\r\nContent-Length: 0\r\n\r\n")
                    .unwrap();
                continue;
            };
            use base64::Engine as _;
            let token = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
            let accepted = kdc.mit_accept(&token).expect("MIT refused curl's token");
            let body = format!("hello {}", accepted.initiator);
            let mutual = accepted
                .output_token
                .map(|t| {
                    format!(
                        "WWW-Authenticate: Negotiate {}\r\n",
                        base64::engine::general_purpose::STANDARD.encode(t)
                    )
                })
                .unwrap_or_default();
            let resp = format!(
                "HTTP/1.1 200 OK\r\n{mutual}Content-Length: {}\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(resp.as_bytes()).unwrap();
            return accepted.initiator;
        }
    }
}

fn alive(pid: u32) -> bool {
    // A SIGKILLed daemon is reaped by its supervisor, so /proc/<pid> disappears.
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn drop_kills_every_process_and_removes_the_realm_dir() {
    let kdc = Kdc::start_with_kadmind();
    let pids = kdc.pids();
    let dir = kdc.dir().to_path_buf();
    assert_eq!(pids.len(), 2);
    for pid in &pids {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
        assert!(
            ["krb5kdc\n", "kadmind\n"].contains(&comm.as_str()),
            "pid {pid} is {comm}"
        );
    }
    let initiator = kdc.initiator("alice");
    drop(initiator);
    drop(kdc);
    for pid in pids {
        assert!(!alive(pid), "daemon {pid} survived drop");
    }
    assert!(!dir.exists(), "realm dir {} survived drop", dir.display());
}

#[test]
fn kdc_dies_when_the_test_process_dies_even_on_panic() {
    // Run this test binary again, as a child, with a test that panics holding a KDC.
    if std::env::var_os("KEDGE_HARNESS_PANIC_CHILD").is_some() {
        let kdc = Kdc::start();
        let shared = Kdc::shared();
        println!("PIDS {:?}", [kdc.pids(), shared.pids()].concat());
        std::io::stdout().flush().unwrap();
        panic!("deliberate panic while holding a KDC");
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .env("KEDGE_HARNESS_PANIC_CHILD", "1")
        .args([
            "--exact",
            "kdc_dies_when_the_test_process_dies_even_on_panic",
            "--nocapture",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the child test should have panicked");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        // Anywhere in a line: run with one test thread, libtest prints "test <name> ... " first.
        .find_map(|l| l.split_once("PIDS ").map(|(_, pids)| pids))
        .expect("child printed no pids");
    let pids: Vec<u32> = line
        .trim_matches(|c| c == '[' || c == ']')
        .split(", ")
        .map(|p| p.parse().unwrap())
        .collect();
    // The shared KDC (never dropped) dies through its supervisor when the pipe closes.
    std::thread::sleep(std::time::Duration::from_millis(300));
    for pid in pids {
        assert!(!alive(pid), "krb5kdc {pid} outlived its panicking test");
    }
}

#[test]
fn service_ticket_ccache_is_readable_by_impacket() {
    let kdc = Kdc::shared();
    let spn = kdc.spn("exchangeMDB");
    let cc = kdc.service_ticket("alice", &spn);
    // impacket (RPC tests) reads the ccache and must find the service ticket without a KDC trip.
    let script = "import sys\nfrom impacket.krb5.ccache import CCache\n\
                  cc = CCache.loadFile(sys.argv[1])\n\
                  print(cc.principal.prettyPrint().decode())\n\
                  print(cc.getCredential(sys.argv[2]) is not None)";
    let out = kdc
        .command(support::PYTHON)
        .args(["-c", script])
        .arg(&cc.path)
        .arg(&spn)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "impacket: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "alice@KEDGE.TEST\nTrue\n");
}
