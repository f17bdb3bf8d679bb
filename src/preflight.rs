//! `kedge run --check`: every step of a start except binding ports, with the messages a start
//! would print — the keytab under its permission rule, TLS certificates and keys, pools and their
//! backend CAs, each listener's routes (assert headers, HMAC key files) and RPC interface maps,
//! the access log's file —
//! plus what a start cannot notice by itself: a keytab of another realm than `[kerberos] realm`,
//! and array SPNs no key is filed under. So `ExecStartPre=kedge run --check` fails exactly when
//! the start would.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::asa::{KeytabWatcher, WatchConfig};
use crate::config::Config;
use crate::edge::http::{check_routes, EdgeContext, ServerTls};
use crate::edge::rpc::RpcEdgeContext;
use crate::krb::acceptor::Acceptor;
use crate::krb::keyset::KeySet;
use crate::krb::replay::ReplayCache;
use crate::pool::Pools;
use crate::replay_store::ReplayStore;
use crate::serve::{acceptor_config, ServeError};

/// What a check found.
#[derive(Debug, Default)]
pub struct Preflight {
    /// Problems a start would fail on (or that would refuse every ticket).
    pub problems: Vec<String>,
    /// Things worth a look that do not stop a start.
    pub warnings: Vec<String>,
    /// Keys loaded, for the summary line.
    pub keys: usize,
}

impl Preflight {
    /// Whether a start would succeed.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Runs every start step but binding on an already validated `cfg`.
pub fn check(cfg: &Config) -> Preflight {
    let mut out = Preflight::default();
    let acceptor = Arc::new(Acceptor::new(
        acceptor_config(cfg),
        KeySet::default(),
        Arc::new(ReplayCache::new(16)),
    ));
    match KeytabWatcher::load(WatchConfig::from_config(&cfg.kerberos), acceptor.clone()) {
        Ok(_) => keytab_coverage(cfg, &acceptor.keys(), &mut out),
        Err(e) => out.problems.push(ServeError::Keytab(e.to_string()).to_string()),
    }
    // The shared replay store's client as a start builds it (its CA file read); no connection:
    // a start does not wait for the store either.
    if let Err(e) = ReplayStore::from_config(&cfg.kerberos.replay, std::time::Duration::from_secs(1)) {
        out.problems
            .push(ServeError::ReplayStore(e.to_string()).to_string());
    }
    if let Err(e) = cfg.access_log.check_file() {
        out.problems.push(e);
    }
    let pools = match Pools::from_config(&cfg.members, &cfg.pools) {
        Ok(p) => p,
        Err(e) => {
            out.problems.push(ServeError::Pool(e.to_string()).to_string());
            return out;
        }
    };
    let pool_map: BTreeMap<_, _> = pools
        .all()
        .into_iter()
        .map(|p| (p.name().to_string(), p))
        .collect();
    for l in &cfg.http {
        let mut ctx = EdgeContext::new(acceptor.clone(), pool_map.clone());
        if let Some(t) = &l.tls {
            match ServerTls::load(&l.name, t) {
                Ok(tls) => {
                    out.warnings.extend(tls.warnings(std::time::SystemTime::now()));
                    ctx = ctx.with_tls(tls);
                }
                Err(e) => out.problems.push(
                    ServeError::Tls {
                        name: l.name.clone(),
                        msg: e.to_string(),
                    }
                    .to_string(),
                ),
            }
        }
        if let Err(e) = check_routes(l, &ctx) {
            out.problems.push(
                ServeError::Listener {
                    name: l.name.clone(),
                    msg: e.to_string(),
                }
                .to_string(),
            );
        }
    }
    for l in &cfg.rpc {
        let Some(pool) = pools.get(&l.pool) else { continue };
        if let Err(e) = RpcEdgeContext::new(acceptor.clone(), pool, l) {
            out.problems.push(
                ServeError::Listener {
                    name: l.name.clone(),
                    msg: e.to_string(),
                }
                .to_string(),
            );
        }
    }
    out
}

/// The keytab against the config: its realm, and a key under every SPN the listeners need.
fn keytab_coverage(cfg: &Config, keys: &KeySet, out: &mut Preflight) {
    out.keys = keys.keys().len();
    let realms: BTreeSet<String> = keys
        .keys()
        .iter()
        .map(|k| k.principal.realm.to_ascii_uppercase())
        .collect();
    if let Some(want) = &cfg.kerberos.realm {
        if !realms.contains(&want.to_ascii_uppercase()) {
            out.problems.push(format!(
                "kerberos.realm: {want} but keytab {} holds keys of {} only: every ticket would be refused",
                cfg.kerberos.keytab.display(),
                realms.into_iter().collect::<Vec<_>>().join(", ")
            ));
            return;
        }
    }
    let mut services: BTreeSet<String> = cfg
        .http
        .iter()
        .flat_map(|l| &l.routes)
        .filter(|r| !r.anonymous)
        .map(|r| r.service.to_ascii_lowercase())
        .collect();
    if !cfg.rpc.is_empty() {
        services.extend(["exchangemdb", "exchangeab", "exchangerfr"].map(String::from));
    }
    let filed: BTreeSet<String> = keys
        .keys()
        .iter()
        .map(|k| k.principal.name().to_ascii_lowercase())
        .collect();
    for host in &cfg.kerberos.array {
        for svc in &services {
            let spn = format!("{svc}/{}", host.to_ascii_lowercase());
            if !filed.contains(&spn) {
                out.warnings.push(format!(
                    "no key is filed under {spn}: tickets for it are tried with the other keys of \
                     the keytab (right only if they are the ASA's); see `kedge spn check`"
                ));
            }
        }
    }
}
