//! AP-REQ validation throughput on one core, every check on (replay cache and PAC signature
//! included), on captured real MIT tokens (`tests/testdata/mit/`) and on AD-sized minted tokens
//! (Windows-like PAC, ~1.4 KB). Compare with MIT's own acceptor on the same tokens:
//! `scripts/bench-validate` runs both side by side.

// The allocator of the `kedge` binary (src/main.rs), so the figure is what kedge runs.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kedge::edge::http::negotiate::parse_authorization;
use kedge::krb::acceptor::{AcceptCtx, Acceptor, AcceptorConfig, Framing};
use kedge::krb::crypto::{EncType, Key};
use kedge::krb::keyset::{KeySet, ServiceKey};
use kedge::krb::keytab::Keytab;
use kedge::krb::mint::{mint, MintRequest};
use kedge::krb::pac::{PacBuilder, Sid};
use kedge::krb::principal::Principal;
use kedge::krb::replay::ReplayCache;
use kedge::krb::time::system_time;

const MIT_KEYTAB: &[u8] = include_bytes!("../tests/testdata/mit/asa.keytab");
const MIT_SPNEGO: &str = include_str!("../tests/testdata/mit/spnego.b64");
const MIT_META: &str = include_str!("../tests/testdata/mit/meta.json");

fn mit_tokens() -> (Vec<Vec<u8>>, i64) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let toks = MIT_SPNEGO
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| b64.decode(l).unwrap())
        .collect();
    let meta: serde_json::Value = serde_json::from_str(MIT_META).unwrap();
    (toks, meta["captured_end"].as_i64().unwrap())
}

/// The ticket-cache budgets measured: none (every ticket opened, the `_full` runs), the
/// default (a client's next token around its ticket, `_kept_ticket`), and one so small that
/// every ticket misses and is kept in place of another (`_churn`: the cost of keeping).
const NO_CACHE: usize = 0;
const DEFAULT_CACHE: usize = kedge::krb::acceptor::DEFAULT_TICKET_CACHE_BYTES;
const CHURN_CACHE: usize = 64 << 10;

fn mit_acceptor(ticket_cache_bytes: usize) -> Acceptor {
    let kt = Keytab::parse(MIT_KEYTAB).unwrap();
    let cfg = AcceptorConfig {
        realm: Some("KEDGE.TEST".into()),
        hosts: vec!["outlook.contoso.com".into()],
        ticket_cache_bytes,
        ..Default::default()
    };
    Acceptor::new(
        cfg,
        KeySet::from_keytab(&kt, std::time::SystemTime::now(), "mit"),
        Arc::new(ReplayCache::new(2_000_000)),
    )
}

const AD_NOW: i64 = 1_790_000_000;

/// 2,000 tokens as an AD DC would issue them for the array: aes256, a Windows-like PAC with 30
/// groups signed with the ASA key, SPNEGO framed with the Microsoft OID first.
fn ad_tokens() -> (Vec<Vec<u8>>, KeySet) {
    let key = Key::random(EncType::Aes256CtsHmacSha196);
    let krbtgt = Key::random(EncType::Aes256CtsHmacSha196);
    let spn = Principal::parse("http/outlook.contoso.com@CONTOSO.COM", "").unwrap();
    let domain: Sid = "S-1-5-21-3623811015-3361044348-30300820".parse().unwrap();
    let mut toks = Vec::new();
    for i in 0..2000u32 {
        let user = format!("user{i:04}");
        let client = Principal::parse(&format!("{user}@CONTOSO.COM"), "").unwrap();
        let pac = PacBuilder::windows_like(&user, "CONTOSO.COM", domain.clone(), 1100 + i, 30)
            .logon_time(AD_NOW)
            .build(&key, &krbtgt)
            .unwrap();
        let m = mint(&MintRequest {
            client: &client,
            service: &spn,
            service_key: &key,
            kvno: 7,
            now: AD_NOW,
            cusec: i,
            lifetime: 36_000,
            framing: Framing::Spnego { legacy_oid: true },
            gss_flags: 0x3e,
            channel_binding: None,
            pac: Some(pac),
        });
        toks.push(m.token);
    }
    let ks = KeySet::from_keys(vec![ServiceKey::new(spn, 7, key, 0)], system_time(AD_NOW), "ad");
    (toks, ks)
}

fn ad_acceptor(keys: &KeySet, ticket_cache_bytes: usize) -> Acceptor {
    let cfg = AcceptorConfig {
        realm: Some("CONTOSO.COM".into()),
        hosts: vec!["outlook.contoso.com".into()],
        ticket_cache_bytes,
        ..Default::default()
    };
    let sks = keys
        .keys()
        .iter()
        .map(|k| ServiceKey::new(k.principal.clone(), k.kvno, k.key.clone(), 0))
        .collect();
    let ks = KeySet::from_keys(sks, system_time(AD_NOW), "ad");
    Acceptor::new(cfg, ks, Arc::new(ReplayCache::new(2_000_000)))
}

/// Validates every token in turn; the replay cache is cleared when the set wraps (its cost is
/// part of the measurement), so each validation inserts into a live cache.
fn run(acc: &Acceptor, toks: &[Vec<u8>], now: i64, iters: u64) -> Duration {
    let ctx = AcceptCtx {
        now: system_time(now),
        service: "http",
        channel_binding: None,
        groups: None,
        check_replay: true,
    };
    let start = Instant::now();
    let mut i = 0usize;
    for _ in 0..iters {
        if i == toks.len() {
            i = 0;
            acc.replay_cache().clear();
        }
        let r = acc.accept(&toks[i], &ctx);
        assert!(r.is_ok(), "token {i}: {:?}", r.err());
        i += 1;
    }
    let d = start.elapsed();
    acc.replay_cache().clear();
    d
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("validate");
    g.throughput(Throughput::Elements(1));
    let (mit, now) = mit_tokens();
    let acc = mit_acceptor(NO_CACHE);
    assert!(acc
        .accept(
            &mit[0],
            &AcceptCtx {
                now: system_time(now),
                service: "http",
                channel_binding: None,
                groups: None,
                check_replay: false
            }
        )
        .unwrap()
        .pac
        .is_some());
    g.bench_function("mit_spnego_full", |b| {
        b.iter_custom(|iters| run(&acc, &mit, now, iters))
    });
    let kept = mit_acceptor(DEFAULT_CACHE);
    g.bench_function("mit_spnego_kept_ticket", |b| {
        b.iter_custom(|iters| run(&kept, &mit, now, iters))
    });
    let (ad, keys) = ad_tokens();
    let avg = ad.iter().map(Vec::len).sum::<usize>() / ad.len();
    eprintln!("AD-sized tokens: {avg} bytes on average");
    for (name, budget) in [
        ("ad_sized_spnego_full", NO_CACHE),
        ("ad_sized_spnego_kept_ticket", DEFAULT_CACHE),
        ("ad_sized_spnego_churn", CHURN_CACHE),
    ] {
        let acc = ad_acceptor(&keys, budget);
        g.bench_function(name, |b| b.iter_custom(|iters| run(&acc, &ad, AD_NOW, iters)));
    }
    g.finish();

    // What every authenticated HTTP request pays before validation: the Authorization header's
    // scheme and base64 (an AD-sized token is ~2.5 KB of text).
    let mut g = c.benchmark_group("authorization_header");
    g.throughput(Throughput::Elements(1));
    let value = format!(
        "Negotiate {}",
        base64::engine::general_purpose::STANDARD.encode(&ad[0])
    );
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::AUTHORIZATION, value.parse().unwrap());
    g.bench_function("ad_sized_negotiate", |b| {
        b.iter(|| parse_authorization(std::hint::black_box(&headers), 64 * 1024).unwrap())
    });
    g.finish();

    // What a mutually authenticated request pays after validation: the AP-REP in its SPNEGO
    // NegTokenResp (gss_flags 0x3e asks for mutual authentication).
    let acc = ad_acceptor(&keys, DEFAULT_CACHE);
    let ctx = AcceptCtx {
        now: system_time(AD_NOW),
        service: "http",
        channel_binding: None,
        groups: None,
        check_replay: false,
    };
    let accepted = acc.accept(&ad[0], &ctx).expect("accepted");
    assert!(accepted.response_token().is_some(), "mutual authentication asked");
    let mut g = c.benchmark_group("ap_rep");
    g.throughput(Throughput::Elements(1));
    g.bench_function("ad_sized_response_token", |b| {
        b.iter(|| std::hint::black_box(&accepted).response_token())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
