//! Fuzz entry points: one function per untrusted-input decoder, each taking arbitrary bytes and
//! never panicking (ARCHITECTURE.md, "untrusted bytes reach only decoders that return errors").
//!
//! The `fuzz/` cargo-fuzz targets are one line around these, and `tests/fuzz_smoke.rs` runs the
//! same functions on stable Rust over the captured test data with truncations and mutations, so
//! a target that would crash under libFuzzer also fails `cargo test`. Besides "no panic", each
//! entry point checks the cheap invariants a decoder promises (re-encoding round trips,
//! zero-copy results borrowed from the input, size limits kept).
//!
//! The acceptor target validates against the throwaway test keytabs under `tests/testdata/`
//! (compiled in; dead code in the `kedge` binary, which never calls these functions).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use http::header::{HeaderMap, HeaderValue, AUTHORIZATION};

use crate::edge::http::negotiate::{parse_authorization, Credential};
use crate::edge::rpc::admission::Admission;
use crate::edge::rpc::context_policy::{ContextPolicy, Verdict};
use crate::krb::acceptor::{AcceptCtx, Acceptor, AcceptorConfig, ANY_SERVICE};
use crate::krb::ap_req::{ApReqView, AuthenticatorView};
use crate::krb::authz;
use crate::krb::der::TypedSeq;
use crate::krb::enc_ticket::EncTicketView;
use crate::krb::error::AuthError;
use crate::krb::keyset::KeySet;
use crate::krb::keytab::Keytab;
use crate::krb::pac::Pac;
use crate::krb::replay::ReplayCache;
use crate::krb::{gss, spnego};

/// Keys of the real MIT-issued HTTP tokens (`tests/testdata/mit/`, realm `KEDGE.TEST`).
const MIT_KEYTAB: &[u8] = include_bytes!("../tests/testdata/mit/asa.keytab");
/// Capture facts of those tokens (`captured_at`).
const MIT_META: &str = include_str!("../tests/testdata/mit/meta.json");
/// Keys of the real impacket RPC binds (`tests/testdata/rpc/`, realm `CONTOSO.TEST`).
const RPC_KEYTAB: &[u8] = include_bytes!("../tests/testdata/rpc/exchange.keytab");
/// When the RPC binds were made (2026-11-25T13:38:50Z, `tests/testdata/rpc/README.md`).
const RPC_CAPTURED_AT: u64 = 1_795_613_930;
/// The `max_token_bytes` default of the HTTP edge.
const MAX_TOKEN_BYTES: usize = 65_536;
/// The `max_bind_bytes` default of the RPC edge.
const MAX_BIND_BYTES: usize = 65_536;
/// The principal the `rpc_stream` target's admissions "validate".
const STREAM_PRINCIPAL: &str = "alice@CONTOSO.TEST";

/// The acceptor of the `acceptor` target and the `now` it validates at.
pub struct AcceptorHarness {
    /// Both test keytabs merged; any realm; hosts `outlook.contoso.com`.
    pub acceptor: Acceptor,
    /// The same, keeping no opened ticket: every input must get the same verdict from both (a
    /// kept ticket only saves work; it never changes an answer).
    pub opening_every_ticket: Acceptor,
    /// Midway between the two captures (580 s apart), so the authenticators of both lie within
    /// the 300 s skew and every seed token is accepted: mutations start from the deepest path.
    pub now: SystemTime,
}

/// The shared acceptor harness, built on first use.
pub fn acceptor_harness() -> &'static AcceptorHarness {
    static HARNESS: OnceLock<AcceptorHarness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let meta: serde_json::Value = serde_json::from_str(MIT_META).expect("meta.json is JSON");
        let mit_at = meta["captured_at"].as_u64().expect("meta.json has captured_at");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs((mit_at + RPC_CAPTURED_AT) / 2);
        let mut keytab = Keytab::parse(MIT_KEYTAB).expect("the MIT test keytab parses");
        let rpc = Keytab::parse(RPC_KEYTAB).expect("the RPC test keytab parses");
        keytab.entries.extend(rpc.entries);
        let cfg = AcceptorConfig {
            realm: None,
            hosts: vec!["outlook.contoso.com".into()],
            skew: Duration::from_secs(300),
            ..Default::default()
        };
        let keys = KeySet::from_keytab(&keytab, now, "fuzz");
        let uncached = AcceptorConfig {
            ticket_cache_bytes: 0,
            ..cfg.clone()
        };
        AcceptorHarness {
            opening_every_ticket: Acceptor::new(
                uncached,
                KeySet::from_keytab(&keytab, now, "fuzz"),
                Arc::new(ReplayCache::new(1024)),
            ),
            acceptor: Acceptor::new(cfg, keys, Arc::new(ReplayCache::new(1024))),
            now,
        }
    })
}

/// `acceptor` target: a whole initial context token (SPNEGO, GSS krb5 or bare AP-REQ) through
/// [`Acceptor::accept`], replay cache off, and through an acceptor that keeps no opened ticket:
/// both must give the same verdict (a panic otherwise). Returns whether the token was accepted.
pub fn acceptor(data: &[u8]) -> bool {
    let h = acceptor_harness();
    let ctx = AcceptCtx {
        now: h.now,
        service: ANY_SERVICE,
        channel_binding: None,
        groups: None,
        check_replay: false,
    };
    let verdict = |r: Result<crate::krb::acceptor::Accepted, AuthError>| match r {
        Ok(accepted) => Ok(accepted.client.to_string()),
        // Errors are shown in logs and metrics: formatting must not panic either.
        Err(e) => Err((e.to_string(), e.reason())),
    };
    let kept = verdict(h.acceptor.accept(data, &ctx));
    let opened = verdict(h.opening_every_ticket.accept(data, &ctx));
    assert_eq!(kept, opened, "a kept ticket changed the verdict");
    kept.is_ok()
}

/// `ap_req` target: the borrowed AP-REQ and Authenticator readers against rasn, the
/// reference. Whatever they read, rasn reads too, to the same fields (`same_as_rasn` names
/// the one exception); they may refuse what rasn reads (validation then asks rasn). Borrowed
/// fields lie within the input.
pub fn ap_req(data: &[u8]) {
    if let Ok(v) = ApReqView::read_der(data) {
        assert!(is_within(v.ticket.cipher, data) && is_within(v.authenticator.cipher, data));
        let strings = std::iter::once(v.realm).chain(v.sname.components());
        same_as_rasn::<rasn_kerberos::ApReq>("AP-REQ", data, strings, |bytes, r| {
            ApReqView::read_der(bytes).is_ok_and(|v| v.matches(r))
        });
    }
    if let Ok(v) = AuthenticatorView::read_der(data) {
        let strings = std::iter::once(v.crealm).chain(v.cname.components());
        same_as_rasn::<rasn_kerberos::Authenticator>("Authenticator", data, strings, |bytes, a| {
            AuthenticatorView::read_der(bytes).is_ok_and(|v| v.matches(a))
        });
    }
}

/// `enc_ticket` target: the borrowed EncTicketPart reader (a decrypted ticket) against rasn, as
/// `ap_req` does for the AP-REQ: whatever it reads, rasn reads to the same fields (names and
/// realms with bytes rasn refuses excepted, `same_as_rasn`). Borrowed fields lie within the
/// input.
pub fn enc_ticket(data: &[u8]) {
    let Ok(v) = EncTicketView::read_der(data) else {
        // What only rasn reads is read through rasn, and must not panic either.
        let _ = EncTicketView::read(data, &mut None);
        return;
    };
    assert!(is_within(v.key.value, data) && is_within(v.transited.value, data));
    let entries = v.caddr.iter().chain(&v.authorization_data).flat_map(|s| s.iter());
    assert!(entries.into_iter().all(|t| is_within(t.value, data)));
    let strings = std::iter::once(v.crealm).chain(v.cname.components());
    same_as_rasn::<rasn_kerberos::EncTicketPart>("EncTicketPart", data, strings, |bytes, e| {
        EncTicketView::read_der(bytes).is_ok_and(|v| v.matches(e))
    });
    // The PAC lookup walks AD-IF-RELEVANT in place: it finds what rasn finds, or fails alike.
    let ad = v.authorization_data.as_ref();
    let walked = authz::find_pac(ad).map(|p| p.map(|p| p.into_owned()));
    assert_eq!(walked, pac_by_rasn(ad), "the PAC lookups disagree");
}

/// The PAC as kedge found it before the in-place walk: every AD-IF-RELEVANT decoded by rasn.
fn pac_by_rasn(ad: Option<&TypedSeq<'_>>) -> Result<Option<Vec<u8>>, AuthError> {
    let mut found = None;
    for el in ad.iter().flat_map(|ad| ad.iter()) {
        if el.r#type != authz::AD_IF_RELEVANT {
            continue;
        }
        let inner: rasn_kerberos::AuthorizationData = rasn::ber::decode(el.value)
            .map_err(|_| AuthError::malformed("authorization-data", "AD-IF-RELEVANT does not decode"))?;
        for i in inner.into_iter().filter(|i| i.r#type == authz::AD_WIN2K_PAC) {
            if found.replace(i.data.to_vec()).is_some() {
                return Err(AuthError::Pac("ticket carries more than one PAC".into()));
            }
        }
    }
    Ok(found)
}

/// Holds a borrowed reader to rasn on `data`, which it read: rasn decodes it and `agree`s
/// (`agree(bytes, decoded)` reads `bytes` again and compares field for field). The one reason
/// rasn may refuse is a KerberosString (`strings`: the realms and name components read, borrowed
/// from `data`) holding a byte in 0x80..=0xA0, which rasn's GeneralString refuses and the
/// borrowed readers take (UTF-8 names): then those bytes, replaced in place by `x` (no length
/// changes), must make rasn decode and agree. Anything else is a disagreement, and a panic.
fn same_as_rasn<'a, T: rasn::Decode>(
    what: &str,
    data: &[u8],
    strings: impl Iterator<Item = &'a [u8]>,
    agree: impl Fn(&[u8], &T) -> bool,
) {
    let outside: Vec<usize> = strings
        .flat_map(|s| {
            assert!(
                is_within(s, data),
                "a {what} string is not borrowed from the input"
            );
            let at = s.as_ptr() as usize - data.as_ptr() as usize;
            s.iter()
                .enumerate()
                .filter(|(_, b)| (0x80..=0xA0).contains(*b))
                .map(move |(i, _)| at + i)
        })
        .collect();
    match rasn::ber::decode::<T>(data) {
        Ok(decoded) => {
            assert!(
                outside.is_empty(),
                "rasn read a {what} string byte in 0x80..=0xA0"
            );
            assert!(agree(data, &decoded), "the readers disagree on a {what}");
        }
        Err(e) => {
            assert!(
                !outside.is_empty(),
                "rasn refuses a {what} read here, and not for a string byte in 0x80..=0xA0: {e}"
            );
            let mut patched = data.to_vec();
            for at in outside {
                patched[at] = b'x';
            }
            let decoded = rasn::ber::decode::<T>(&patched).unwrap_or_else(|e| {
                panic!("rasn refuses a {what} read here for more than string bytes in 0x80..=0xA0: {e}")
            });
            assert!(
                agree(&patched, &decoded),
                "the readers disagree on a {what} once its string bytes in 0x80..=0xA0 are replaced"
            );
        }
    }
}

/// `spnego` target: [`spnego::inner_token`] on a NegotiationToken body. A Kerberos mechToken
/// is borrowed from the input.
pub fn spnego(data: &[u8]) {
    if let Ok(spnego::SpnegoInner::Kerberos { token, .. }) = spnego::inner_token(data) {
        assert!(is_within(token, data), "mechToken is not borrowed from the input");
    }
}

/// `gss` target: [`gss::unwrap_initial`] (RFC 2743 §3.1 framing) and [`gss::shape`]. The OID and
/// inner token are borrowed from the input.
pub fn gss(data: &[u8]) {
    let _ = gss::shape(data);
    if let Ok((oid, inner)) = gss::unwrap_initial(data) {
        assert!(is_within(oid, data) && is_within(inner, data));
    }
}

/// `pac` target: [`Pac::parse`] (MS-PAC 2.3–2.12) and every accessor of a parsed PAC.
pub fn pac(data: &[u8]) {
    if let Ok(pac) = Pac::parse(data) {
        assert_eq!(pac.as_bytes(), data);
        for b in pac.buffers() {
            let _ = pac.buffer(b.buffer_type);
        }
        if let Some(logon) = pac.logon_info() {
            let _ = format!("{logon:?}");
        }
        let _ = (pac.client_info(), pac.upn_dns_info(), pac.requestor_sid());
        let _ = (pac.server_signature(), pac.kdc_signature());
    }
}

/// `keytab` target: [`Keytab::parse`] (MIT 0x0501/0x0502); a parsed keytab re-encodes to one
/// that parses to the same entries.
pub fn keytab(data: &[u8]) {
    if let Ok(kt) = Keytab::parse(data) {
        let again = Keytab::parse(&kt.to_bytes()).expect("a re-encoded keytab parses");
        assert_eq!(again.entries.len(), kt.entries.len());
        for (a, b) in again.entries.iter().zip(&kt.entries) {
            assert_eq!(
                (&a.principal, a.kvno, a.timestamp),
                (&b.principal, b.kvno, b.timestamp)
            );
            assert_eq!(a.key.etype(), b.key.etype());
            assert!(a.key.expose_bytes() == b.key.expose_bytes(), "key bytes changed");
        }
    }
}

/// `rpc_bind` target: [`crate::rpc::parse_bind`] (C706 12.6.4, MS-RPCE 2.2.2); a parsed bind
/// re-encodes with its token to a PDU that parses to the same bind.
pub fn rpc_bind(data: &[u8]) {
    if let Ok(bind) = crate::rpc::parse_bind(data) {
        let token = bind.token(data).unwrap_or_default();
        let bytes = bind.to_bytes(token).expect("a parsed bind re-encodes");
        let again = crate::rpc::parse_bind(&bytes).expect("a re-encoded bind parses");
        assert_eq!(again.contexts, bind.contexts);
        assert_eq!(again.call_id, bind.call_id);
        assert_eq!(again.token(&bytes).unwrap_or_default(), token);
    }
}

/// `negotiate_header` target: the HTTP edge's `Authorization` parsing
/// ([`parse_authorization`]) with the default 64 KiB token limit.
pub fn negotiate_header(data: &[u8]) {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, value);
    if let Ok(Credential::Negotiate(token)) = parse_authorization(&headers, MAX_TOKEN_BYTES) {
        assert!(!token.is_empty() && token.len() <= MAX_TOKEN_BYTES);
    }
}

/// `proxy_header` target: the PROXY protocol v1/v2 header parser
/// ([`crate::edge::proxy_protocol::header::parse`]) with a 2,048-byte v2 limit: a complete
/// header never claims more bytes than it was given, nor more than the limits allow.
pub fn proxy_header(data: &[u8]) {
    use crate::edge::proxy_protocol::header::{parse, Parsed, V1_MAX};
    const MAX_V2: usize = 2048;
    if let Ok(Parsed::Complete { len, header }) = parse(data, MAX_V2) {
        assert!(len <= data.len() && len <= (16 + MAX_V2).max(V1_MAX));
        assert!(matches!(header.version, 1 | 2));
    }
}

/// `member_reply` target: a member's reply on a passthrough connection, as the forwarder reads
/// it (`edge::http::h1_frame`): the response head (as the answer to a `GET` and to a
/// `HEAD`) and, for a chunked body, the chunked decoder. A head never claims more bytes than it
/// was given or than the limit; a chunked body decodes to the same bytes and the same end
/// whether it arrives whole or in two pieces (split where the input's first byte says), and
/// never to more bytes than it was given.
pub fn member_reply(data: &[u8]) {
    use crate::edge::http::h1_frame::{parse_response_head, BodyFraming, Parsed, MAX_RESPONSE_HEAD};
    for head_request in [false, true] {
        match parse_response_head(data, head_request) {
            Ok(Parsed::Interim(n)) => assert!(n <= data.len()),
            Ok(Parsed::Final(head, n)) => {
                assert!(n <= data.len() && n <= MAX_RESPONSE_HEAD);
                if head_request {
                    assert_eq!(head.framing, BodyFraming::Empty);
                }
                if head.framing == BodyFraming::Chunked {
                    let body = &data[n..];
                    let split = usize::from(data.first().copied().unwrap_or(0)) % (body.len() + 1);
                    let whole = dechunk(&[body]);
                    assert_eq!(whole, dechunk(&[&body[..split], &body[split..]]));
                    if let Ok((out, _)) = &whole {
                        assert!(out.len() <= body.len());
                    }
                }
            }
            Ok(Parsed::Partial) | Err(_) => {}
        }
    }
}

/// A chunked body fed to the HTTP edge's `ChunkedDecoder`
/// in `pieces`: the data it gave and whether it saw the end.
pub fn dechunk(pieces: &[&[u8]]) -> Result<(Vec<u8>, bool), crate::edge::http::h1_frame::FrameError> {
    use crate::edge::http::h1_frame::{ChunkedDecoder, Decoded};
    let mut d = ChunkedDecoder::default();
    let mut buf = bytes::BytesMut::new();
    let mut out = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match d.decode(&mut buf)? {
                Decoded::Data(b) => out.extend_from_slice(&b),
                Decoded::NeedMore => break,
                Decoded::Done => return Ok((out, true)),
            }
        }
    }
    Ok((out, false))
}

/// `rpc_auth3` target: [`crate::rpc::parse_auth3`] (MS-RPCE 2.2.2.10) and
/// [`crate::rpc::parse_auth_verifier`]; a parsed auth3 re-encodes with its token to a PDU that
/// parses to the same context and token.
pub fn rpc_auth3(data: &[u8]) {
    let _ = crate::rpc::parse_auth_verifier(data);
    if let Ok(a) = crate::rpc::parse_auth3(data) {
        let token = a.token(data).expect("the token lies within the PDU");
        let bytes =
            crate::rpc::build_auth3(a.call_id, a.drep, &a.auth, token).expect("a parsed auth3 re-encodes");
        let again = crate::rpc::parse_auth3(&bytes).expect("a re-encoded auth3 parses");
        assert_eq!(
            (again.call_id, again.auth.auth_context_id, again.auth.auth_type),
            (a.call_id, a.auth.auth_context_id, a.auth.auth_type)
        );
        assert_eq!(again.token(&bytes), Some(token));
    }
}

/// `rpc_stream` target: a client's whole byte stream on an RPC connection, as the edge walks it.
/// The first PDU is sized with [`crate::rpc::pdu_length`] and parsed with
/// [`crate::rpc::parse_bind`] (admitted as Kerberos, NTLM passthrough or no-auth by its auth
/// type; Kerberos is not validated here, the `acceptor` target does that); the rest goes through
/// [`crate::rpc::PduScanner`] in uneven reads, and every held bind / alter_context / rpc_auth_3
/// through [`ContextPolicy::inspect`] (which parses it with `parse_bind` / `parse_auth3`), each
/// admission settled as the same principal. Passed and held bytes never exceed the stream.
/// Returns the bytes of held PDUs let through (0 where the first PDU is no bind).
pub fn rpc_stream(data: &[u8]) -> usize {
    let map = crate::rpc::InterfaceMap::default();
    let Some(head) = data.get(..crate::rpc::HEADER_LEN) else {
        return 0;
    };
    let Ok(first_len) = crate::rpc::pdu_length(head, MAX_BIND_BYTES) else {
        return 0;
    };
    let Some(first) = data.get(..first_len) else {
        return 0;
    };
    let Ok(bind) = crate::rpc::parse_bind(first) else {
        return 0;
    };
    let Ok(requirement) = map.required_service(&bind) else {
        return 0;
    };
    let admission = match (&requirement, bind.auth.as_ref().map(|v| v.auth_type)) {
        (crate::rpc::Requirement::NoAuth, _) => Admission::NoAuth,
        (_, Some(crate::rpc::AuthType::Ntlm)) => Admission::NtlmPassthrough,
        _ => Admission::Kerberos {
            principal: STREAM_PRINCIPAL.into(),
        },
    };
    let mut policy = ContextPolicy::new(&bind, &requirement, admission);
    let rest = &data[first_len..];
    let (passed, held) = walk_stream(rest, &mut policy, &map);
    assert!(
        passed + held <= rest.len(),
        "scanner passed bytes it was never given"
    );
    held
}

/// Feeds `stream` to a [`crate::rpc::PduScanner`] in reads of 1..=61 bytes (unscanned tails
/// offered again, as the edge does) and decides every held PDU; returns (passed, held) bytes.
fn walk_stream(stream: &[u8], policy: &mut ContextPolicy, map: &crate::rpc::InterfaceMap) -> (usize, usize) {
    use crate::rpc::Scanned;
    let mut scanner = crate::rpc::PduScanner::new(MAX_BIND_BYTES);
    let (mut pos, mut end, mut passed, mut held) = (0, 0, 0, 0);
    let mut read = 0usize;
    while pos < stream.len() {
        read += 1;
        end = (end + 1 + read * 37 % 61).min(stream.len()).max(end);
        let scanned = match scanner.scan(&stream[pos..end]) {
            Ok(s) => s,
            Err(e) => {
                let _ = (e.to_string(), e.reason());
                return (passed, held);
            }
        };
        match scanned {
            Scanned::All => {
                passed += end - pos;
                pos = end;
            }
            Scanned::PartialHeader { at } => {
                passed += at;
                pos += at;
                if end == stream.len() {
                    return (passed, held);
                }
            }
            Scanned::Hold { at, header } => {
                passed += at;
                pos += at;
                let Some(pdu) = stream.get(pos..pos + usize::from(header.frag_length)) else {
                    return (passed, held);
                };
                match policy.inspect(pdu, map) {
                    Verdict::Forward => {}
                    Verdict::Admit(pending) => {
                        let _ = pending.request(pdu);
                        let admitted = Ok(Admission::Kerberos {
                            principal: STREAM_PRINCIPAL.into(),
                        });
                        if let Err(refusal) = policy.settle(pending, admitted) {
                            let _ = refusal.cause();
                            return (passed, held);
                        }
                    }
                    Verdict::Refuse(refusal) => {
                        let _ = refusal.cause();
                        return (passed, held);
                    }
                }
                held += pdu.len();
                pos += pdu.len();
                end = end.max(pos);
            }
        }
    }
    (passed, held)
}

fn is_within(part: &[u8], whole: &[u8]) -> bool {
    let (p, w) = (part.as_ptr() as usize, whole.as_ptr() as usize);
    p >= w && p + part.len() <= w + whole.len()
}
