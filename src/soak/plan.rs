//! How much of each class the soak sends, the loop that sends it (bounded in rate and in
//! connections), and the kedge config it runs against.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::ledger::Class;
use super::traffic::Traffic;

/// Attempts per second of each class at `--scale 1` (a session is 4 requests).
pub const RATES: [(Class, f64); 16] = [
    (Class::Fresh, 20.0),
    (Class::Session, 4.0),
    (Class::Previous, 4.0),
    (Class::Replay, 2.0),
    (Class::Mutated, 2.0),
    (Class::Truncated, 2.0),
    (Class::Ntlm, 2.0),
    (Class::Slowloris, 1.0),
    (Class::Oversized, 1.0),
    (Class::RpcBind, 10.0),
    (Class::RpcReplay, 1.0),
    (Class::RpcMutated, 1.0),
    (Class::RpcNtlm, 1.0),
    (Class::RpcOverLength, 1.0),
    (Class::RpcShortSend, 1.0),
    (Class::RpcAuthLength, 1.0),
];

/// Counts of the send loop.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sent {
    /// Attempts started.
    pub started: u64,
    /// Attempts skipped because `max_in_flight` were open.
    pub skipped: u64,
}

/// Sends every class at `RATES × scale` per second until `until`, at most `max_in_flight`
/// attempts open at once; then waits (at most 40 s) for the open ones to end.
pub async fn send_until(traffic: Arc<Traffic>, scale: f64, until: Instant, max_in_flight: usize) -> Sent {
    let permits = Arc::new(Semaphore::new(max_in_flight));
    let mut tasks = JoinSet::new();
    let mut credit = [0.0f64; RATES.len()];
    let mut sent = Sent::default();
    let tick = Duration::from_millis(20);
    let mut last = Instant::now();
    while Instant::now() < until {
        tokio::time::sleep(tick).await;
        let dt = last.elapsed().as_secs_f64();
        last = Instant::now();
        for (i, (class, rate)) in RATES.iter().enumerate() {
            credit[i] += rate * scale * dt;
            while credit[i] >= 1.0 {
                credit[i] -= 1.0;
                if !traffic.ready(*class) {
                    continue;
                }
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    sent.skipped += 1;
                    continue;
                };
                sent.started += 1;
                let t = traffic.clone();
                let class = *class;
                tasks.spawn(async move {
                    t.run(class).await;
                    drop(permit);
                });
            }
        }
        while tasks.try_join_next().is_some() {}
    }
    let _ = tokio::time::timeout(Duration::from_secs(40), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    sent
}

/// Ports and files the kedge config names.
pub struct ConfigFacts<'a> {
    /// The ASA keytab.
    pub keytab: &'a Path,
    /// kedge's HTTP, RPC and admin listeners.
    pub http: SocketAddr,
    /// See `http`.
    pub rpc: SocketAddr,
    /// See `http`.
    pub admin: SocketAddr,
    /// (name, HTTP port, RPC port) of each member.
    pub members: &'a [(String, u16, u16)],
    /// The realm.
    pub realm: &'a str,
    /// The HTTP listener's `max_header_bytes`.
    pub max_header_bytes: usize,
}

/// The kedge config of the soak: one HTTP listener (`soak-http`, passthrough to pool `web`) and
/// one RPC listener (`soak-rpc`, pool `mapi`), short timeouts so refusals and ejections happen
/// within the run, per-source limits off (every client is 127.0.0.1).
pub fn kedge_config(f: &ConfigFacts) -> String {
    let names: Vec<String> = f.members.iter().map(|(n, _, _)| format!("\"{n}\"")).collect();
    let names = names.join(", ");
    let mut c = format!(
        r#"[kerberos]
keytab = "{keytab}"
realm = "{realm}"
array = ["{host}"]
keytab_poll_ms = 500
previous_key_retire_secs = 86400

[admin]
listen = "{admin}"

[[http]]
name = "soak-http"
listen = "{http}"
limits = {{ max_header_bytes = {mhb}, header_timeout_ms = 2000, per_source = {{ max_connections = 0, rate_per_sec = 0 }} }}

[[http.routes]]
prefix = "/"
pool = "web"

[[rpc]]
name = "soak-rpc"
listen = "{rpc}"
pool = "mapi"
max_bind_bytes = 16384
bind_timeout_ms = 2000
per_source = {{ max_connections = 0, rate_per_sec = 0 }}

[pools.web]
members = [{names}]
port = "http"
health = {{ kind = "tcp", interval_ms = 500, timeout_ms = 500, rise = 1, fall = 1 }}
connect_timeout_ms = 1000
response_header_timeout_ms = 1500
eject_base_ms = 1000
eject_max_ms = 8000

[pools.mapi]
members = [{names}]
port = "mdb"
health = {{ kind = "tcp", interval_ms = 500, timeout_ms = 500, rise = 1, fall = 1 }}
connect_timeout_ms = 1000
"#,
        keytab = f.keytab.display(),
        realm = f.realm,
        host = super::traffic::HOST,
        admin = f.admin,
        http = f.http,
        rpc = f.rpc,
        mhb = f.max_header_bytes,
    );
    for (name, http, rpc) in f.members {
        c.push_str(&format!(
            "\n[members.{name}]\naddress = \"127.0.0.1\"\nports = {{ http = {http}, mdb = {rpc} }}\n"
        ));
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_has_a_rate() {
        for c in super::super::ledger::CLASSES {
            assert!(RATES.iter().any(|(r, n)| *r == c && *n > 0.0), "{}", c.name());
        }
    }

    #[test]
    fn the_config_names_every_member_in_both_pools() {
        let a = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let members = [("m1".to_string(), 10, 11), ("m2".to_string(), 20, 21)];
        let c = kedge_config(&ConfigFacts {
            keytab: Path::new("/k"),
            http: a(1),
            rpc: a(2),
            admin: a(3),
            members: &members,
            realm: "R",
            max_header_bytes: 16 * 1024,
        });
        if let Err(e) = crate::config::Config::from_toml(&c, "soak") {
            panic!("{e}\n{c}");
        }
        let v: toml::Value = toml::from_str(&c).unwrap();
        assert_eq!(v["pools"]["web"]["members"].as_array().unwrap().len(), 2);
        assert_eq!(v["members"]["m2"]["ports"]["mdb"].as_integer(), Some(21));
    }
}
