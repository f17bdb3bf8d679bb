//! Rendezvous selection: stickiness, minimal movement, weights, agreement between replicas.

mod pool_support;

use std::collections::BTreeMap;

use kedge::pool::{HealthKind, Pool};
use pool_support::*;

/// Each user's first member; `Pool::preferred` (which assert routes ask) must name the same.
fn first_choice(pool: &Pool, users: &[String]) -> Vec<String> {
    users
        .iter()
        .map(|u| {
            let first = pool.candidates(Some(u))[0].name.clone();
            let preferred = pool.preferred(Some(u)).map(|m| m.name.clone());
            assert_eq!(preferred.as_ref(), Some(&first), "{u}");
            first
        })
        .collect()
}

#[tokio::test]
async fn users_stay_on_their_member_while_the_pool_is_unchanged() {
    let b = [
        Backend::start("cas1").await,
        Backend::start("cas2").await,
        Backend::start("cas3").await,
    ];
    let refs: Vec<&Backend> = b.iter().collect();
    let cfg = pool_config(&["cas1", "cas2", "cas3"], health(HealthKind::Http, 1, 1, 50));
    let pool = Pool::new("owa", &cfg, &table(&refs)).unwrap();
    let users = principals(1_000);
    let before = first_choice(&pool, &users);
    pool.check_now().await;
    assert_eq!(first_choice(&pool, &users), before);
    for (u, m) in users.iter().zip(&before).take(20) {
        let conn = pool.connect(Some(u)).await.unwrap();
        assert_eq!(&conn.lease.member().name, m);
    }
    assert_eq!(first_choice(&pool, &users), before);
}

#[tokio::test]
async fn when_one_of_four_members_goes_down_only_its_users_move() {
    let names = ["cas1", "cas2", "cas3", "cas4"];
    let mut b = Vec::new();
    for n in names {
        b.push(Backend::start(n).await);
    }
    let refs: Vec<&Backend> = b.iter().collect();
    let cfg = pool_config(&names, health(HealthKind::Http, 1, 1, 50));
    let pool = Pool::new("owa", &cfg, &table(&refs)).unwrap();
    pool.check_now().await;
    let users = principals(10_000);
    let before = first_choice(&pool, &users);

    b[1].set_health(503);
    pool.check_now().await;
    assert_eq!(pool.up_count(), 3, "cas2 should be down");
    let after = first_choice(&pool, &users);

    let mut moved = 0;
    for (was, is) in before.iter().zip(&after) {
        if was == "cas2" {
            assert_ne!(is, "cas2");
            moved += 1;
        } else {
            assert_eq!(was, is, "a user of a healthy member moved");
        }
    }
    let share = f64::from(moved) / users.len() as f64;
    assert!(
        (share - 0.25).abs() <= 0.02,
        "moved share {share} is not cas2's 25% share"
    );
    // The moved users spread over the three survivors.
    for n in ["cas1", "cas3", "cas4"] {
        let got = before
            .iter()
            .zip(&after)
            .filter(|(w, i)| *w == "cas2" && *i == n)
            .count();
        assert!(
            got > moved as usize / 6,
            "{n} took only {got} of {moved} moved users"
        );
    }

    b[1].set_health(200);
    pool.check_now().await;
    assert_eq!(
        first_choice(&pool, &users),
        before,
        "users return when the member is back"
    );
}

#[tokio::test]
async fn a_weight_200_member_gets_twice_the_users_of_a_weight_100_one() {
    let members = BTreeMap::from([
        ("heavy".to_owned(), member(closed_port(), 200)),
        ("light".to_owned(), member(closed_port(), 100)),
        ("other".to_owned(), member(closed_port(), 100)),
    ]);
    let cfg = pool_config(
        &["heavy", "light", "other"],
        health(HealthKind::None, 1, 1, 1_000),
    );
    let pool = Pool::new("owa", &cfg, &members).unwrap();
    let users = principals(10_000);
    let chosen = first_choice(&pool, &users);
    let count = |n: &str| chosen.iter().filter(|c| *c == n).count() as f64 / users.len() as f64;
    let (heavy, light, other) = (count("heavy"), count("light"), count("other"));
    assert!((heavy - 0.50).abs() <= 0.02, "heavy got {heavy}");
    assert!((light - 0.25).abs() <= 0.02, "light got {light}");
    assert!((other - 0.25).abs() <= 0.02, "other got {other}");
}

#[tokio::test]
async fn weight_zero_member_takes_no_users() {
    let members = BTreeMap::from([
        ("a".to_owned(), member(closed_port(), 100)),
        ("b".to_owned(), member(closed_port(), 0)),
    ]);
    let cfg = pool_config(&["a", "b"], health(HealthKind::None, 1, 1, 1_000));
    let pool = Pool::new("owa", &cfg, &members).unwrap();
    for u in principals(500) {
        let c = pool.candidates(Some(&u));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].name, "a");
    }
}

#[tokio::test]
async fn two_independent_pools_pick_the_same_member_for_each_principal() {
    let members: BTreeMap<_, _> = ["cas1", "cas2", "cas3", "cas4", "cas5"]
        .iter()
        .map(|n| ((*n).to_owned(), member(closed_port(), 100)))
        .collect();
    let health = || health(HealthKind::None, 1, 1, 1_000);
    // A second replica whose config lists the members in another order.
    let a = Pool::new(
        "owa",
        &pool_config(&["cas1", "cas2", "cas3", "cas4", "cas5"], health()),
        &members,
    )
    .unwrap();
    let b = Pool::new(
        "mapi",
        &pool_config(&["cas5", "cas3", "cas1", "cas4", "cas2"], health()),
        &members,
    )
    .unwrap();
    let users = principals(10_000);
    for u in &users {
        let (ca, cb) = (a.candidates(Some(u)), b.candidates(Some(u)));
        let na: Vec<_> = ca.iter().map(|m| &m.name).collect();
        let nb: Vec<_> = cb.iter().map(|m| &m.name).collect();
        assert_eq!(na, nb, "replicas disagree for {u}");
    }
    // Principal case does not matter.
    assert_eq!(
        a.candidates(Some("ALICE@contoso.com"))[0].name,
        b.candidates(Some("alice@CONTOSO.COM"))[0].name
    );
}

#[tokio::test]
async fn without_affinity_sessions_spread_by_load() {
    let b = [Backend::start("cas1").await, Backend::start("cas2").await];
    let refs: Vec<&Backend> = b.iter().collect();
    let mut cfg = pool_config(&["cas1", "cas2"], health(HealthKind::None, 1, 1, 1_000));
    cfg.affinity = false;
    let pool = Pool::new("ews", &cfg, &table(&refs)).unwrap();
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(pool.connect(Some("alice@CONTOSO.COM")).await.unwrap());
    }
    let on = |n: &str| held.iter().filter(|c| c.lease.member().name == n).count();
    assert_eq!((on("cas1"), on("cas2")), (5, 5));
}
