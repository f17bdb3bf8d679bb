//! Replay-cache memory with 1,000,000 live entries (DESIGN §7 target: ≤ 100 MB), measured as the
//! growth of this process's resident set. Also times the inserts, and the slowest one (a
//! shard's table growing under its lock is a pause every request on that shard waits out). Run:
//! `cargo bench --bench replay_memory`.

use std::time::Instant;

use kedge::krb::principal::Principal;
use kedge::krb::replay::{ReplayCache, ReplayKey, ReplayVerdict};

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    // `cargo test --benches` runs this with no arguments too: keep it quick there.
    let n: usize = if std::env::args().any(|a| a == "--bench") {
        1_000_000
    } else {
        50_000
    };
    let before = rss_kib();
    let cache = ReplayCache::new(2_000_000);
    // An authenticator's ciphertext as MIT and Windows clients send it (~200 bytes with the
    // GSS checksum): the key hashes it whole.
    let authenticator = [7u8; 200];
    let clients: Vec<Principal> = (0..1000)
        .map(|i| Principal::parse(&format!("user{i}@CONTOSO.COM"), "CONTOSO.COM").unwrap())
        .collect();
    let start = Instant::now();
    let (mut slowest, mut over_100us) = (std::time::Duration::ZERO, 0usize);
    for i in 0..n {
        let one = Instant::now();
        let key = ReplayKey {
            client: &clients[i % clients.len()],
            ctime: 1_790_000_000 + (i / 1000) as i64 % 300,
            cusec: (i % 1_000_000) as u32,
            authenticator: &authenticator,
        };
        assert_eq!(
            cache.check_and_insert(&key, 1_790_000_000, 600),
            ReplayVerdict::Fresh
        );
        let t = one.elapsed();
        slowest = slowest.max(t);
        over_100us += usize::from(t.as_micros() > 100);
    }
    let took = start.elapsed();
    let after = rss_kib();
    let grown = after.saturating_sub(before);
    println!(
        "replay cache: {} live entries, RSS +{:.1} MiB ({:.0} bytes/entry), inserts {:.0} ns each, \
         slowest {:.0} µs, {} over 100 µs",
        cache.len(),
        grown as f64 / 1024.0,
        grown as f64 * 1024.0 / n as f64,
        took.as_nanos() as f64 / n as f64,
        slowest.as_secs_f64() * 1e6,
        over_100us
    );
}
