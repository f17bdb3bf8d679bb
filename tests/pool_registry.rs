//! The pool registry: reloads apply to every pool at once, and new pools get health checks.

mod pool_support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use kedge::pool::{HealthKind, Pools};
use pool_support::*;

#[tokio::test]
async fn reload_adds_checked_pools_closes_removed_ones_and_is_all_or_nothing() {
    let (a, b) = (Backend::start("cas1").await, Backend::start("cas2").await);
    let members = table(&[&a, &b]);
    let owa = pool_config(&["cas1"], health(HealthKind::Http, 1, 1, 10));
    let pools = Pools::from_config(&members, &[("owa".to_owned(), owa.clone())].into()).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let checks = pools.spawn_health_checks(async move {
        let _ = stop_rx.await;
    });
    let old_owa = pools.get("owa").unwrap();

    // A bad reload (unknown member) changes nothing.
    let bad = [
        ("owa".to_owned(), owa.clone()),
        ("ews".to_owned(), pool_config(&["ghost"], owa.health.clone())),
    ];
    assert!(pools.reconfigure(&members, &bad.into()).is_err());
    assert!(pools.get("ews").is_none());

    // A good one: `owa` is replaced by `mapi` on cas2.
    let mapi = pool_config(&["cas2"], health(HealthKind::Http, 1, 1, 10));
    pools
        .reconfigure(&members, &[("mapi".to_owned(), mapi)].into())
        .unwrap();
    assert!(pools.get("owa").is_none());
    assert!(old_owa.member("cas1").is_none_or(|m| m.is_retiring()));
    let before = b.health_hits.load(Ordering::SeqCst);
    eventually("the new pool is health-checked", || {
        b.health_hits.load(Ordering::SeqCst) > before + 2
    })
    .await;

    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), checks.join())
        .await
        .expect("checkers stop");
}
