//! Failover on refused connects, passive ejection, draining and reconfiguration.

mod pool_support;

use kedge::pool::{HealthKind, Pool, PoolError};
use pool_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A principal whose first choice in `pool` is `member`.
fn user_of(pool: &Pool, member: &str) -> String {
    principals(10_000)
        .into_iter()
        .find(|u| pool.candidates(Some(u))[0].name == member)
        .unwrap()
}

/// Sends a request on a backend stream and returns the body (the backend's name).
async fn ask(stream: &mut tokio::net::TcpStream) -> String {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 256];
    let n = stream.read(&mut buf).await.unwrap();
    let reply = String::from_utf8_lossy(&buf[..n]).to_string();
    reply.rsplit("\r\n\r\n").next().unwrap().to_owned()
}

#[tokio::test]
async fn refused_connect_fails_over_without_error_and_counts_a_failover() {
    kedge::observe::install();
    let live = Backend::start("live").await;
    let mut members = table(&[&live]);
    members.insert("dead".into(), member(closed_port(), 100));
    let cfg = pool_config(&["dead", "live"], health(HealthKind::None, 1, 1, 1_000));
    let pool = Pool::new("failover", &cfg, &members).unwrap();
    let user = user_of(&pool, "dead");

    let before = kedge::observe::tally().snapshot().backend_failovers;
    let mut conn = pool
        .connect(Some(&user))
        .await
        .expect("failover hides the refused member");
    assert_eq!(conn.lease.member().name, "live");
    assert_eq!(conn.addr, live.addr);
    assert_eq!(ask(&mut conn.stream).await, "live");
    assert!(kedge::observe::tally().snapshot().backend_failovers > before);
    let metrics = kedge::observe::render();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("kedge_backend_failovers_total{pool=\"failover\"}")),
        "{metrics}"
    );

    // The refused member is ejected: it moves to the back of the line for a while.
    let dead = pool.member("dead").unwrap();
    assert!(dead.ejected_for(std::time::Instant::now()).is_some());
    let order: Vec<_> = pool
        .candidates(Some(&user))
        .iter()
        .map(|m| m.name.clone())
        .collect();
    assert_eq!(order, ["live", "dead"]);
    assert_eq!(pool.preferred(Some(&user)).unwrap().name, "live");
}

#[tokio::test]
async fn every_member_refusing_is_an_error() {
    let members = [
        ("a".to_owned(), member(closed_port(), 100)),
        ("b".to_owned(), member(closed_port(), 100)),
    ]
    .into();
    let cfg = pool_config(&["a", "b"], health(HealthKind::None, 1, 1, 1_000));
    let pool = Pool::new("dead", &cfg, &members).unwrap();
    match pool.connect(Some("alice@CONTOSO.COM")).await {
        Err(PoolError::AllFailed { tried: 2, .. }) => {}
        other => panic!("expected AllFailed, got {other:?}"),
    }
    // Both ejected, still tried (nothing better to do), still failing.
    assert_eq!(pool.candidates(None).len(), 2);
}

#[tokio::test]
async fn drained_member_gets_no_new_session_while_an_existing_lease_still_works() {
    let (a, b) = (Backend::start("cas1").await, Backend::start("cas2").await);
    let cfg = pool_config(&["cas1", "cas2"], health(HealthKind::None, 1, 1, 1_000));
    let pool = Pool::new("owa", &cfg, &table(&[&a, &b])).unwrap();
    let user = user_of(&pool, "cas1");
    let mut old = pool.connect(Some(&user)).await.unwrap();
    assert_eq!(old.lease.member().name, "cas1");

    pool.drain("cas1", true).unwrap();
    let cas1 = pool.member("cas1").unwrap();
    for _ in 0..5 {
        let new = pool.connect(Some(&user)).await.unwrap();
        assert_eq!(new.lease.member().name, "cas2");
    }
    assert_eq!(
        ask(&mut old.stream).await,
        "cas1",
        "the open session keeps working"
    );
    assert_eq!(cas1.active(), 1);
    drop(old);
    assert_eq!(cas1.active(), 0);

    pool.drain("cas1", false).unwrap();
    assert_eq!(
        pool.connect(Some(&user)).await.unwrap().lease.member().name,
        "cas1"
    );
    assert!(matches!(
        pool.drain("nope", true),
        Err(PoolError::UnknownMember { .. })
    ));
}

#[tokio::test]
async fn reconfigure_drains_a_removed_member_and_keeps_the_others_health() {
    let (a, b, c) = (
        Backend::start("cas1").await,
        Backend::start("cas2").await,
        Backend::start("cas3").await,
    );
    let members = table(&[&a, &b, &c]);
    let cfg = pool_config(&["cas1", "cas2"], health(HealthKind::Http, 1, 1, 1_000));
    let pool = Pool::new("owa", &cfg, &members).unwrap();
    pool.check_now().await;
    let user = user_of(&pool, "cas1");
    let mut old = pool.connect(Some(&user)).await.unwrap();
    let cas2 = pool.member("cas2").unwrap();

    pool.reconfigure(
        &pool_config(&["cas2", "cas3"], health(HealthKind::Http, 1, 1, 1_000)),
        &members,
    )
    .unwrap();

    let cas1 = pool
        .member("cas1")
        .expect("a removed member with sessions lingers");
    assert!(cas1.is_retiring() && cas1.is_draining());
    assert!(
        std::sync::Arc::ptr_eq(&cas2, &pool.member("cas2").unwrap()),
        "cas2 kept as it was"
    );
    assert!(cas2.health().is_checked(), "cas2 kept its health state");
    assert!(!pool.member("cas3").unwrap().health().is_checked());
    for u in principals(200) {
        assert!(pool.candidates(Some(&u)).iter().all(|m| m.name != "cas1"));
        assert_ne!(pool.preferred(Some(&u)).unwrap().name, "cas1");
    }
    assert_ne!(
        pool.connect(Some(&user)).await.unwrap().lease.member().name,
        "cas1"
    );
    assert_eq!(
        ask(&mut old.stream).await,
        "cas1",
        "the open session keeps working"
    );

    pool.prune();
    assert!(pool.member("cas1").is_some());
    drop(old);
    pool.prune();
    assert!(pool.member("cas1").is_none(), "gone after its last session");
    let names: Vec<_> = pool.members().iter().map(|m| m.name.clone()).collect();
    assert_eq!(names, ["cas2", "cas3"]);
}

#[tokio::test]
async fn pool_with_every_member_down_says_so() {
    let a = Backend::start("cas1").await;
    a.set_health(503);
    let cfg = pool_config(&["cas1"], health(HealthKind::Http, 1, 1, 1_000));
    let pool = Pool::new("owa", &cfg, &table(&[&a])).unwrap();
    pool.check_now().await;
    assert!(matches!(
        pool.connect(None).await,
        Err(PoolError::NoHealthyMember { .. })
    ));
}
