//! Parsing real first binds (python3-impacket captures, tests/testdata/rpc/) and deciding which
//! SPN service they need: the per-connection work `src/rpc` adds before the Kerberos check.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use kedge::rpc::{parse_bind, pdu_length, InterfaceMap};

const CAPTURES: [(&str, &[u8]); 5] = [
    (
        "emsmdb_spnego_privacy",
        include_bytes!("../tests/testdata/rpc/emsmdb_spnego_privacy.bin"),
    ),
    (
        "emsmdb_krb5_bare_privacy",
        include_bytes!("../tests/testdata/rpc/emsmdb_krb5_bare_privacy.bin"),
    ),
    (
        "nspi_spnego_connect",
        include_bytes!("../tests/testdata/rpc/nspi_spnego_connect.bin"),
    ),
    (
        "emsmdb_ntlm_connect",
        include_bytes!("../tests/testdata/rpc/emsmdb_ntlm_connect.bin"),
    ),
    (
        "epm_noauth",
        include_bytes!("../tests/testdata/rpc/epm_noauth.bin"),
    ),
];

fn bench(c: &mut Criterion) {
    let map = InterfaceMap::default();
    let mut g = c.benchmark_group("rpc_bind");
    g.throughput(Throughput::Elements(1));
    for (name, pdu) in CAPTURES {
        g.bench_function(format!("parse+required_service/{name}"), |b| {
            b.iter(|| {
                let pdu = black_box(pdu);
                let len = pdu_length(&pdu[..16], 65_535).unwrap();
                let bind = parse_bind(&pdu[..len]).unwrap();
                let need = map.required_service(&bind).unwrap();
                black_box((bind.token(pdu).map(<[u8]>::len), need))
            })
        });
    }
    let (_, pdu) = CAPTURES[0];
    g.bench_function("parse_only/emsmdb_spnego_privacy", |b| {
        b.iter(|| parse_bind(black_box(pdu)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
