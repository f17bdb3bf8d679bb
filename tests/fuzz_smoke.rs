//! The `fuzz/` targets on stable Rust: every entry point of `kedge::fuzzing` over the captured
//! test data (the same seeds `fuzz/seed` puts in the cargo-fuzz corpora), every truncation of
//! each seed, and 2,000 deterministic mutations per seed. A panic here is a crash libFuzzer
//! would find; the real fuzzing runs with `cargo +nightly fuzz run <target>` (fuzz/README.md).
//!
//! `KEDGE_FUZZ_SECONDS=N` keeps each target mutating (the same deterministic sequence, further
//! on) until it has run N seconds: the bounded stable fuzzing where no nightly toolchain is.

use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

use base64::Engine;
use kedge::fuzzing;
use kedge::rpc::{build_auth3, parse_bind, PacketType};

const MUTATIONS_PER_SEED: usize = 2_000;

fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata")
        .join(rel)
}

fn files(dir: &str, ext: &str) -> Vec<Vec<u8>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(testdata(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no .{ext} files in tests/testdata/{dir}");
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// The first `n` tokens of a one-base64-per-line capture file.
fn b64_tokens(rel: &str, n: usize) -> Vec<Vec<u8>> {
    std::fs::read_to_string(testdata(rel))
        .unwrap()
        .lines()
        .take(n)
        .map(|l| {
            base64::engine::general_purpose::STANDARD
                .decode(l.trim())
                .unwrap()
        })
        .collect()
}

fn rpc_binds() -> Vec<Vec<u8>> {
    files("rpc", "bin")
}

/// The Kerberos tokens of the RPC binds (auth 9 SPNEGO, auth 16 bare and GSS-wrapped).
fn rpc_kerberos_tokens() -> Vec<Vec<u8>> {
    rpc_binds()
        .iter()
        .filter_map(|pdu| {
            let bind = kedge::rpc::parse_bind(pdu).unwrap();
            bind.token(pdu)
                .filter(|t| !t.starts_with(b"NTLMSSP"))
                .map(<[u8]>::to_vec)
        })
        .collect()
}

/// An rpc_auth_3 on the security context of each authenticated bind, carrying its token.
fn auth3_seeds() -> Vec<Vec<u8>> {
    rpc_binds()
        .iter()
        .filter_map(|pdu| {
            let bind = parse_bind(pdu).unwrap();
            let auth = bind.auth.as_ref()?;
            Some(build_auth3(4, bind.drep, auth, bind.token(pdu).unwrap()).unwrap())
        })
        .collect()
}

/// A request PDU (C706 12.6.4.9, little-endian, no auth verifier) with a `body`.
fn request_pdu(call_id: u32, body: &[u8]) -> Vec<u8> {
    let frag = u16::try_from(24 + body.len()).unwrap();
    let mut p = vec![5, 0, 0, 3, 0x10, 0, 0, 0];
    p.extend_from_slice(&frag.to_le_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&call_id.to_le_bytes());
    p.extend_from_slice(&u32::try_from(body.len()).unwrap().to_le_bytes());
    p.extend_from_slice(&[1, 0, 0, 0]);
    p.extend_from_slice(body);
    p
}

/// Client streams: each captured bind, a request, the bind again as an alter_context, an auth3
/// on its security context and another request (what `fuzz/seed` puts in corpus/rpc_stream).
fn stream_seeds() -> Vec<Vec<u8>> {
    rpc_binds()
        .iter()
        .map(|pdu| {
            let mut bind = parse_bind(pdu).unwrap();
            let token = bind.token(pdu).unwrap_or_default().to_vec();
            let mut s = pdu.clone();
            s.extend(request_pdu(3, b"kedge-fuzz"));
            bind.ptype = PacketType::AlterContext;
            s.extend(bind.to_bytes(&token).unwrap());
            if let Some(auth) = &bind.auth {
                s.extend(build_auth3(4, bind.drep, auth, &token).unwrap());
            }
            s.extend(request_pdu(5, &[0; 16]));
            s
        })
        .collect()
}

fn acceptor_seeds() -> Vec<Vec<u8>> {
    let mut seeds = b64_tokens("mit/spnego.b64", 3);
    seeds.extend(b64_tokens("mit/krb5.b64", 3));
    seeds.extend(b64_tokens("mit/mdb.b64", 2));
    seeds.extend(rpc_kerberos_tokens());
    seeds
}

fn gss_seeds() -> Vec<Vec<u8>> {
    acceptor_seeds()
        .into_iter()
        .filter(|t| t.first() == Some(&0x60))
        .collect()
}

/// NegotiationToken bodies: the inside of the GSS frame of every SPNEGO token.
fn spnego_seeds() -> Vec<Vec<u8>> {
    gss_seeds()
        .iter()
        .filter_map(|t| {
            let (oid, body) = kedge::krb::gss::unwrap_initial(t).unwrap();
            (oid == kedge::krb::gss::OID_SPNEGO).then(|| body.to_vec())
        })
        .collect()
}

/// `der` with its only `from` replaced by `to` of the same length (no DER length changes): how
/// seeds get names with bytes rasn's GeneralString cannot hold (0x80..=0xA0).
fn replaced(der: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len(), "{from} and {to}");
    let at = der
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .unwrap_or_else(|| panic!("{from} in the seed"));
    let mut out = der.to_vec();
    out[at..at + to.len()].copy_from_slice(to.as_bytes());
    out
}

/// Every seed token's AP-REQ, and Authenticators as rasn encodes them (with and without the
/// optional fields), and one of each with UTF-8 in a name or realm (`ß` is C3 9F).
fn ap_req_seeds() -> Vec<Vec<u8>> {
    use rasn_kerberos::{Authenticator, Checksum, EncryptionKey, KerberosString, PrincipalName};
    let mut seeds: Vec<Vec<u8>> = acceptor_seeds()
        .iter()
        .filter_map(|t| {
            kedge::krb::framing::unframe(t)
                .ok()
                .map(|(ap_req, _)| ap_req.to_vec())
        })
        .collect();
    assert!(seeds.len() >= 8, "the seed tokens unframe to AP-REQs");
    for full in [false, true] {
        let a = Authenticator {
            authenticator_vno: 5.into(),
            crealm: KerberosString::from_bytes(b"CONTOSO.COM").unwrap(),
            cname: PrincipalName {
                r#type: 1,
                string: vec![KerberosString::from_bytes(b"alice").unwrap()],
            },
            cksum: full.then(|| Checksum {
                r#type: 0x8003,
                checksum: vec![0x10; 24].into(),
            }),
            cusec: 123_456.into(),
            ctime: kedge::krb::time::krb_time(1_790_000_000),
            subkey: full.then(|| EncryptionKey {
                r#type: 18,
                value: vec![0x42; 32].into(),
            }),
            seq_number: full.then_some(7),
            authorization_data: None,
        };
        seeds.push(rasn::der::encode(&a).unwrap());
    }
    let utf8 = replaced(seeds.last().unwrap(), "alice", "weiß");
    assert!(
        rasn::ber::decode::<Authenticator>(&utf8).is_err(),
        "rasn refuses C3 9F"
    );
    seeds.push(utf8);
    let utf8_realm = replaced(&seeds[0], "KEDGE.TEST", "KEDGE.ßß");
    assert!(rasn::ber::decode::<rasn_kerberos::ApReq>(&utf8_realm).is_err());
    seeds.push(utf8_realm);
    seeds
}

/// The decrypted real tickets of `tests/testdata/enc_ticket` (what `fuzz/seed` puts in
/// corpus/enc_ticket), one with a UTF-8 client name, plus a Cyrillic name and realm made here.
fn enc_ticket_seeds() -> Vec<Vec<u8>> {
    let mut seeds = files("enc_ticket", "der");
    let mit = std::fs::read(testdata("enc_ticket/mit_http.der")).unwrap();
    // р is D1 80, я D1 8F: the realm renamed in place ("рябов" is 10 bytes, like KEDGE.TEST).
    seeds.push(replaced(&mit, "KEDGE.TEST", "рябов"));
    seeds
}

fn header_seeds() -> Vec<Vec<u8>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut seeds: Vec<Vec<u8>> = b64_tokens("mit/spnego.b64", 2)
        .iter()
        .chain(&b64_tokens("mit/krb5.b64", 1))
        .map(|t| format!("Negotiate {}", b64.encode(t)).into_bytes())
        .collect();
    seeds.push(b"Negotiate TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAKAGFKAAAADw==".to_vec());
    seeds.push(b"NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAKAGFKAAAADw".to_vec());
    seeds.push(b"Basic YWxpY2U6c2VjcmV0".to_vec());
    seeds.push(b"Negotiate".to_vec());
    seeds
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Values that sit on DER, length and offset boundaries.
const INTERESTING: &[u8] = &[
    0x00, 0x01, 0x7f, 0x80, 0x81, 0x82, 0x84, 0x88, 0xff, 0x30, 0x60, 0xa0,
];

/// One to four libFuzzer-style edits: bit flip, random or boundary byte, insert, delete,
/// truncate, duplicate a chunk.
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut m = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        if m.is_empty() {
            m.push(rng.next() as u8);
            continue;
        }
        let i = rng.below(m.len());
        match rng.below(7) {
            0 => m[i] ^= 1 << rng.below(8),
            1 => m[i] = rng.next() as u8,
            2 => m[i] = INTERESTING[rng.below(INTERESTING.len())],
            3 => m.insert(i, rng.next() as u8),
            4 => {
                m.remove(i);
            }
            5 => m.truncate(i),
            _ => {
                let len = 1 + rng.below((m.len() - i).min(64));
                let chunk = m[i..i + len].to_vec();
                let at = rng.below(m.len() + 1);
                m.splice(at..at, chunk);
            }
        }
    }
    m
}
fn member_reply_seeds() -> Vec<Vec<u8>> {
    [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nWWW-Authenticate: Negotiate oYG3\r\n\r\nhello"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n \r\n0\r\nX-T: 1\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    ]
    .map(<[u8]>::to_vec)
    .to_vec()
}
fn proxy_header_seeds() -> Vec<Vec<u8>> {
    use kedge::edge::proxy_protocol::header::encode_v2;
    let (v4, v6) = (
        "203.0.113.7:40000".parse().unwrap(),
        "[2001:db8::7]:40000".parse().unwrap(),
    );
    let to: std::net::SocketAddr = "10.0.0.1:443".parse().unwrap();
    vec![
        encode_v2(v4, to, &[0x04, 0x00, 0x03, b'v', b'p', b'c']),
        encode_v2(v6, "[2001:db8::1]:443".parse().unwrap(), &[]),
        b"PROXY TCP4 203.0.113.7 10.0.0.1 40000 443\r\nGET / HTTP/1.1\r\n".to_vec(),
        b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 443\r\n".to_vec(),
        b"PROXY UNKNOWN\r\n".to_vec(),
    ]
}

/// The time budget per target from `KEDGE_FUZZ_SECONDS` (none: the fixed mutation count only).
fn time_budget() -> Option<Duration> {
    let v = std::env::var("KEDGE_FUZZ_SECONDS").ok()?;
    let secs: u64 = v
        .parse()
        .unwrap_or_else(|_| panic!("KEDGE_FUZZ_SECONDS={v:?} is not a whole number of seconds"));
    Some(Duration::from_secs(secs))
}

/// Runs `target` on one input; a panic names the target and the input in hex.
fn run_one<R>(name: &str, input: &[u8], target: &impl Fn(&[u8]) -> R) {
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        target(input);
    }));
    if caught.is_err() {
        panic!("{name} panicked on {} bytes: {}", input.len(), hex::encode(input));
    }
}

/// Runs `target` over every seed, every truncation of it and [`MUTATIONS_PER_SEED`] mutations
/// of it, then, under `KEDGE_FUZZ_SECONDS`, more rounds of mutations (of the seeds and of
/// mutants, for depth) until the budget is spent; returns how many inputs ran.
fn hammer<R>(name: &str, seeds: &[Vec<u8>], target: impl Fn(&[u8]) -> R) -> usize {
    assert!(!seeds.is_empty(), "{name}: no seeds");
    let started = Instant::now();
    let mut rng = Rng(0x6b65_6467_655f_667a ^ name.len() as u64);
    let mut runs = 0;
    for seed in seeds {
        for end in 0..=seed.len() {
            run_one(name, &seed[..end], &target);
            runs += 1;
        }
        for _ in 0..MUTATIONS_PER_SEED {
            run_one(name, &mutate(seed, &mut rng), &target);
            runs += 1;
        }
    }
    let Some(budget) = time_budget() else {
        return runs;
    };
    while started.elapsed() < budget {
        for seed in seeds {
            let mut input = mutate(seed, &mut rng);
            for _ in 0..1 + rng.below(8) {
                run_one(name, &input, &target);
                input = mutate(&input, &mut rng);
                runs += 1;
            }
        }
    }
    eprintln!(
        "{name}: {runs} inputs in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    runs
}

#[test]
fn every_acceptor_seed_is_accepted_so_mutations_start_from_the_deepest_path() {
    let seeds = acceptor_seeds();
    assert!(seeds.len() >= 15, "{} seeds", seeds.len());
    for (i, t) in seeds.iter().enumerate() {
        assert!(
            fuzzing::acceptor(t),
            "seed {i} of the acceptor target was refused"
        );
    }
}

#[test]
fn acceptor_survives_truncated_and_mutated_tokens() {
    hammer("acceptor", &acceptor_seeds(), fuzzing::acceptor);
}

#[test]
fn ap_req_readers_agree_with_rasn_on_truncated_and_mutated_input() {
    hammer("ap_req", &ap_req_seeds(), fuzzing::ap_req);
}

#[test]
fn enc_ticket_reader_agrees_with_rasn_on_truncated_and_mutated_tickets() {
    hammer("enc_ticket", &enc_ticket_seeds(), fuzzing::enc_ticket);
}

#[test]
fn spnego_survives_truncated_and_mutated_bodies() {
    hammer("spnego", &spnego_seeds(), fuzzing::spnego);
}

#[test]
fn gss_survives_truncated_and_mutated_tokens() {
    hammer("gss", &gss_seeds(), fuzzing::gss);
}

#[test]
fn pac_survives_truncated_and_mutated_pacs() {
    hammer("pac", &files("pac", "bin"), fuzzing::pac);
}

#[test]
fn keytab_survives_truncated_and_mutated_keytabs_and_round_trips() {
    let mut seeds = files("keytab", "keytab");
    seeds.push(std::fs::read(testdata("mit/asa.keytab")).unwrap());
    seeds.push(std::fs::read(testdata("rpc/exchange.keytab")).unwrap());
    hammer("keytab", &seeds, fuzzing::keytab);
}

#[test]
fn rpc_bind_survives_truncated_and_mutated_pdus_and_round_trips() {
    hammer("rpc_bind", &rpc_binds(), fuzzing::rpc_bind);
}

#[test]
fn negotiate_header_survives_truncated_and_mutated_headers() {
    hammer("negotiate_header", &header_seeds(), fuzzing::negotiate_header);
}

#[test]
fn member_reply_survives_truncated_and_mutated_replies() {
    hammer("member_reply", &member_reply_seeds(), fuzzing::member_reply);
}

#[test]
fn proxy_header_survives_truncated_and_mutated_headers() {
    hammer("proxy_header", &proxy_header_seeds(), fuzzing::proxy_header);
}

#[test]
fn rpc_auth3_survives_truncated_and_mutated_pdus_and_round_trips() {
    let seeds = auth3_seeds();
    assert!(seeds.len() >= 8, "{} auth3 seeds", seeds.len());
    hammer("rpc_auth3", &seeds, fuzzing::rpc_auth3);
}

#[test]
fn every_stream_seed_gets_its_alter_context_and_auth3_through_the_policy() {
    for (i, s) in stream_seeds().iter().enumerate() {
        let first = parse_bind(s).unwrap();
        let held = fuzzing::rpc_stream(s);
        let want = if first.auth.is_some() { 2 } else { 1 };
        assert!(held > 0, "stream seed {i}: no held PDU let through");
        assert_eq!(
            held,
            held_len(s, want),
            "stream seed {i}: not every held PDU let through"
        );
    }
}

/// Bytes of the `n` held PDUs after the first bind and request of a stream seed.
fn held_len(stream: &[u8], n: usize) -> usize {
    let frag = |at: usize| usize::from(u16::from_le_bytes([stream[at + 8], stream[at + 9]]));
    let mut at = frag(0);
    at += frag(at);
    (0..n)
        .map(|_| {
            let l = frag(at);
            at += l;
            l
        })
        .sum()
}

#[test]
fn rpc_stream_survives_truncated_and_mutated_client_streams() {
    hammer("rpc_stream", &stream_seeds(), fuzzing::rpc_stream);
}
