//! A running keytab watcher refuses corrupt, truncated, empty, key-less and group-writable
//! files with their reason, keeps the old keys working, and picks up a good file again.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kedge::asa::{KeytabWatcher, WatchConfig};
use kedge::krb::acceptor::{Acceptor, AcceptorConfig};
use kedge::krb::keyset::KeySet;
use kedge::krb::replay::ReplayCache;
use support::{http_ctx, watch_keytab, Kdc, Mech};

fn write_atomically(path: &Path, bytes: &[u8], mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn wait_for(w: &KeytabWatcher, what: &str, f: impl Fn(&kedge::asa::WatchStats) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f(&w.stats()) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:?}",
            w.stats()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_keytabs_are_refused_with_their_reason_and_old_keys_keep_working() {
    let kdc = Kdc::shared();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("asa.keytab");
    let good = std::fs::read(kdc.keytab_path()).unwrap();
    write_atomically(&path, &good, 0o600);
    let support::Watched {
        acceptor: a,
        watcher: w,
    } = watch_keytab(&path, Duration::from_millis(100), 10_000);
    assert_eq!(w.stats().reloads_ok, 1);
    let tokens = kdc.tokens("alice", "HTTP@outlook.contoso.com", Mech::Spnego, 8);
    let mut tokens = tokens.into_iter();

    let cases: [(&str, Vec<u8>, u32, &str); 5] = [
        ("corrupt", b"not a keytab at all".to_vec(), 0o600, "corrupt"),
        ("truncated", good[..good.len() - 7].to_vec(), 0o600, "truncated"),
        ("empty", Vec::new(), 0o600, "empty"),
        ("header only", vec![5, 2], 0o600, "no_keys"),
        ("group-writable", good.clone(), 0o660, "insecure"),
    ];
    for (i, (name, bytes, mode, reason)) in cases.into_iter().enumerate() {
        write_atomically(&path, &bytes, mode);
        wait_for(&w, name, |s| s.reloads_refused == i as u64 + 1);
        let s = w.stats();
        assert_eq!(s.last_reason, Some(reason), "{name}: {s:?}");
        let msg = s.last_error.unwrap();
        assert!(
            msg.contains(&path.display().to_string()),
            "{name}: error names the file: {msg}"
        );
        println!("{name}: refused: {msg}");
        a.accept(&tokens.next().unwrap(), &http_ctx())
            .unwrap_or_else(|e| panic!("old keys stopped working after {name}: {e}"));
    }
    // A world-readable (but not writable) good file loads, with a warning.
    write_atomically(&path, &good, 0o644);
    wait_for(&w, "reload of the good file", |s| s.reloads_ok == 2);
    assert!(w.stats().insecure_permissions);
    a.accept(&tokens.next().unwrap(), &http_ctx()).unwrap();
    // Written in place (not renamed), half then whole: refused, then loaded.
    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    wait_for(&w, "half-written refusal", |s| s.reloads_refused == 6);
    std::fs::write(&path, &good).unwrap();
    wait_for(&w, "completed write", |s| s.reloads_ok == 3);
    assert!(!w.stats().insecure_permissions);
    a.accept(&tokens.next().unwrap(), &http_ctx()).unwrap();
    let (latest, _) = w.credential_status();
    assert_eq!(latest.unwrap().kvno, 1);
}

#[test]
fn missing_keytab_is_an_error_at_start() {
    let a = Arc::new(Acceptor::new(
        AcceptorConfig::default(),
        KeySet::default(),
        Arc::new(ReplayCache::new(10)),
    ));
    let err = KeytabWatcher::load(
        WatchConfig {
            path: "/nonexistent/kedge/asa.keytab".into(),
            previous_key_retire: Duration::from_secs(1),
            poll_interval: Duration::from_millis(100),
        },
        a,
    )
    .unwrap_err();
    assert_eq!(err.reason(), "unreadable");
    assert!(err.to_string().contains("/nonexistent/kedge/asa.keytab"));
}
