//! Load while the ASA rolls: clients validate real MIT tokens continuously while the password
//! is rolled twice (kpasswd) and the keytab rewritten; not one authentication may fail.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kedge::asa::KeytabWatcher;
use kedge::krb::keytab::Keytab;
use support::{http_ctx, output_text, watch_keytab, Kdc, Mech};

const KEDGE: &str = env!("CARGO_BIN_EXE_kedge");

fn roll(kdc: &Kdc, keytab: &Path) {
    let out = Command::new(KEDGE)
        .args(["asa", "roll", "--keytab"])
        .arg(keytab)
        .args([
            "--principal",
            &kdc.spn("HTTP"),
            "--kdc",
            &kdc.kdc_addr().to_string(),
        ])
        .args([
            "--kpasswd",
            &kdc.kpasswd_addr().to_string(),
            "--preload-wait-ms",
            "400",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "roll: {}", output_text(&out));
}

fn wait_for(w: &KeytabWatcher, ok: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while w.stats().reloads_ok < ok {
        assert!(Instant::now() < deadline, "no reload: {:?}", w.stats());
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn validations_never_fail_while_the_asa_is_rolled_twice_and_the_keytab_rewritten() {
    let kdc = Kdc::start_with_kadmind();
    let http = kdc.spn("HTTP");
    let dir = tempfile::tempdir().unwrap();
    let keytab = dir.path().join("asa.keytab");
    kdc.export_keytab(&keytab, &[&http]);
    std::fs::set_permissions(&keytab, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let support::Watched {
        acceptor: a,
        watcher: w,
    } = watch_keytab(&keytab, Duration::from_millis(200), 1_000_000);

    let stop = AtomicBool::new(false);
    let (ok, failed) = (AtomicU64::new(0), AtomicU64::new(0));
    let by_kvno: Mutex<BTreeMap<u32, u64>> = Mutex::new(BTreeMap::new());
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let started = Instant::now();
    let started = &started;
    std::thread::scope(|s| {
        for user in ["alice", "bob"] {
            let (kdc, a, stop, ok, failed, by_kvno, failures, http) =
                (&kdc, &a, &stop, &ok, &failed, &by_kvno, &failures, &http);
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for t in kdc.tokens(user, http, Mech::Spnego, 25) {
                        match a.accept(&t, &http_ctx()) {
                            Ok(acc) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                                *by_kvno.lock().unwrap().entry(acc.kvno).or_default() += 1;
                            }
                            Err(e) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                failures
                                    .lock()
                                    .unwrap()
                                    .push(format!("{:?} {e}", started.elapsed()));
                            }
                        }
                    }
                }
            });
        }
        let pause = || std::thread::sleep(Duration::from_millis(1500));
        pause();
        let t0 = started.elapsed();
        roll(&kdc, &keytab);
        let t1 = started.elapsed();
        wait_for(&w, 2);
        eprintln!("roll1 start {t0:?} end {t1:?} loaded {:?}", started.elapsed());
        pause();
        // Rewrite the same keys in another order (a new file, new hash): a reload, no change.
        let kt = Keytab::parse(&std::fs::read(&keytab).unwrap()).unwrap();
        let mut rev = kt.clone();
        rev.entries.reverse();
        let tmp = dir.path().join(".asa.keytab.rewrite");
        std::fs::write(&tmp, rev.to_bytes()).unwrap();
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        std::fs::rename(&tmp, &keytab).unwrap();
        wait_for(&w, 3);
        pause();
        roll(&kdc, &keytab);
        wait_for(&w, 4);
        pause();
        stop.store(true, Ordering::Relaxed);
    });
    let stats = w.stats();
    let (ok, failed) = (ok.into_inner(), failed.into_inner());
    println!(
        "load: {} validations in {:.1}s ({ok} ok, {failed} failed), by kvno {:?}, reloads {} ok / {} refused, kvnos loaded {:?}, MIT kvno {}",
        ok + failed,
        started.elapsed().as_secs_f64(),
        by_kvno.lock().unwrap(),
        stats.reloads_ok,
        stats.reloads_refused,
        stats.kvnos,
        kdc.kvno_of(&http)
    );
    assert_eq!(failed, 0, "failures: {:?}", failures.lock().unwrap());
    assert_eq!(kdc.kvno_of(&http), 3);
    assert_eq!(stats.kvnos, vec![1, 2, 3]);
    assert!(
        by_kvno.lock().unwrap().len() >= 2,
        "tickets of several kvnos were validated"
    );
}
