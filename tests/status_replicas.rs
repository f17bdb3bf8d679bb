//! `kedge status --admin A,B,C`: one table of every replica's ASA credentials; exit 1 when they
//! disagree or one is unreachable; the Exchange-RollAsa warning where the members validate too.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Output;
use std::sync::Arc;

use kedge::admin::{self, AdminState, Credential, CredentialStatus};
use kedge::pool::Pools;

fn cred(kvno: u32) -> Credential {
    Credential {
        principal: "EXCHASA$@CONTOSO.COM".into(),
        kvno,
        enctypes: vec!["aes256-cts-hmac-sha1-96".into()],
        loaded_at: 1_714_564_800,
    }
}

/// An admin listener whose `/status` reports Latest `latest` and Previous `latest - 1`.
async fn replica(latest: u32, members_validate: &[&str]) -> SocketAddr {
    let pools = Arc::new(Pools::from_config(&BTreeMap::new(), &BTreeMap::new()).unwrap());
    let state = AdminState::new(pools)
        .with_credentials(move || CredentialStatus {
            latest: Some(cred(latest)),
            previous: Some(cred(latest - 1)),
        })
        .with_members_validate(members_validate.iter().map(|s| s.to_string()).collect());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(admin::serve(listener, state, std::future::pending::<()>()));
    addr
}

async fn status(admins: &[String]) -> Output {
    let admins = admins.join(",");
    tokio::process::Command::new(env!("CARGO_BIN_EXE_kedge"))
        .args(["status", "--admin", &admins])
        .output()
        .await
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test]
async fn agreeing_replicas_show_one_table_and_exit_0() {
    let a = replica(7, &[]).await.to_string();
    let b = replica(7, &[]).await.to_string();
    let o = status(&[a.clone(), b.clone()]).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("on 2 replicas") && t.contains(&a) && t.contains(&b),
        "{t}"
    );
    assert!(t.contains("all 2 replicas hold the same credentials"), "{t}");
    assert!(
        !t.contains("Exchange-RollAsa"),
        "assert-only replicas get no warning: {t}"
    );
}

#[tokio::test]
async fn a_stale_and_an_unreachable_replica_exit_1_with_each_named() {
    let a = replica(8, &[]).await.to_string();
    let b = replica(7, &[]).await.to_string();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let c = closed.local_addr().unwrap().to_string();
    drop(closed);
    let o = status(&[a.clone(), b.clone(), c.clone()]).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains(&format!("PROBLEM: Latest differs: {b} has kvno 7")),
        "{t}"
    );
    assert!(t.contains(&format!("PROBLEM: {c} unreachable")), "{t}");
    assert!(t.contains("UNREACHABLE"), "{t}");
}

#[tokio::test]
async fn members_that_validate_bring_the_exchange_roll_asa_warning() {
    let a = replica(7, &["rpc listener \"mdb\""]).await.to_string();
    let o = status(std::slice::from_ref(&a)).await;
    let t = text(&o);
    assert!(
        t.contains("WARNING: the CAS members validate Kerberos too (rpc listener \"mdb\")"),
        "{t}"
    );
    assert!(t.contains("Exchange-RollAsa"), "{t}");
    let b = replica(7, &[]).await.to_string();
    let o = status(&[a, b]).await;
    assert!(text(&o).contains("Exchange-RollAsa"), "{}", text(&o));
}
