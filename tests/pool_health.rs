//! Active health checks: fall and rise thresholds, the background checker and its shutdown.

mod pool_support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use kedge::pool::{HealthKind, Pool, Pools};
use pool_support::*;

#[tokio::test]
async fn member_whose_health_page_fails_leaves_after_fall_checks_and_returns_after_rise() {
    let (a, b) = (Backend::start("cas1").await, Backend::start("cas2").await);
    let cfg = pool_config(&["cas1", "cas2"], health(HealthKind::Http, 2, 3, 1_000));
    let pool = Pool::new("owa", &cfg, &table(&[&a, &b])).unwrap();
    pool.check_now().await;
    let cas1 = pool.member("cas1").unwrap();
    assert!(cas1.is_healthy() && cas1.health().is_checked());

    a.set_health(503);
    for round in 1..=2 {
        pool.check_now().await;
        assert!(cas1.is_healthy(), "down after only {round} failed checks");
    }
    pool.check_now().await;
    assert!(!cas1.is_healthy(), "still up after fall = 3 failed checks");
    assert_eq!(cas1.last_error().as_deref(), Some("status 503"));
    assert!(pool
        .candidates(Some("alice@CONTOSO.COM"))
        .iter()
        .all(|m| m.name != "cas1"));
    assert_eq!(pool.up_count(), 1);

    a.set_health(200);
    pool.check_now().await;
    assert!(!cas1.is_healthy(), "up after only one passing check");
    pool.check_now().await;
    assert!(cas1.is_healthy(), "still down after rise = 2 passing checks");
    assert_eq!(pool.up_count(), 2);
}

#[tokio::test]
async fn health_page_timeout_and_refused_connect_count_as_failures() {
    let a = Backend::start("cas1").await;
    let mut members = table(&[&a]);
    members.insert("gone".into(), member(closed_port(), 100));
    let cfg = pool_config(&["cas1", "gone"], health(HealthKind::Http, 1, 1, 1_000));
    let pool = Pool::new("owa", &cfg, &members).unwrap();
    pool.check_now().await;
    let gone = pool.member("gone").unwrap();
    assert!(!gone.is_healthy());
    assert!(gone.last_error().unwrap().starts_with("connect"));

    // A server that accepts but never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut members = table(&[&a]);
    members.insert("silent".into(), member(silent.local_addr().unwrap().port(), 100));
    let mut cfg = pool_config(&["cas1", "silent"], health(HealthKind::Http, 1, 1, 1_000));
    cfg.health.timeout_ms = 100;
    let pool = Pool::new("owa", &cfg, &members).unwrap();
    pool.check_now().await;
    let m = pool.member("silent").unwrap();
    assert!(!m.is_healthy());
    assert_eq!(m.last_error().as_deref(), Some("timed out"));
}

#[tokio::test]
async fn tcp_check_passes_on_connect() {
    let a = Backend::start("cas1").await;
    let mut members = table(&[&a]);
    members.insert("gone".into(), member(closed_port(), 100));
    let cfg = pool_config(&["cas1", "gone"], health(HealthKind::Tcp, 1, 1, 1_000));
    let pool = Pool::new("mdb", &cfg, &members).unwrap();
    pool.check_now().await;
    assert!(pool.member("cas1").unwrap().is_healthy());
    assert!(!pool.member("gone").unwrap().is_healthy());
    assert_eq!(
        a.health_hits.load(Ordering::SeqCst),
        0,
        "a TCP check sends no request"
    );
}

#[tokio::test]
async fn background_checks_follow_the_health_page_and_stop_on_shutdown() {
    let (a, b) = (Backend::start("cas1").await, Backend::start("cas2").await);
    let cfg = pool_config(&["cas1", "cas2"], health(HealthKind::Http, 2, 2, 10));
    let pools = Pools::from_config(&table(&[&a, &b]), &[("owa".to_owned(), cfg)].into()).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let checks = pools.spawn_health_checks(async move {
        let _ = stop_rx.await;
    });
    let pool = pools.get("owa").unwrap();
    let cas2 = pool.member("cas2").unwrap();

    eventually("first check of cas2", || cas2.health().is_checked()).await;
    b.set_health(500);
    eventually("cas2 down", || !cas2.is_healthy()).await;
    assert!(
        b.health_failures.load(Ordering::SeqCst) >= 2,
        "fall = 2 failures needed"
    );
    b.set_health(200);
    eventually("cas2 up", || cas2.is_healthy()).await;

    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), checks.join())
        .await
        .expect("checkers stop on shutdown");
    let hits = a.health_hits.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let later = a.health_hits.load(Ordering::SeqCst);
    assert_eq!(later, hits, "no check after shutdown");
}
