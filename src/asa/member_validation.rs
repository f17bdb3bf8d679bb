//! Whether the CAS members validate the same Kerberos tickets as kedge (DESIGN.md §4): on a
//! passthrough route the member completes its own logon with the ASA key, and behind an RPC
//! listener it completes the bind. Then the ASA password must reach the members before AD's
//! changes (the staged roll), and Exchange's own `Exchange-RollAsa` task must not run.

use crate::config::{Config, RouteMode};

/// Each place in `cfg` that makes the members validate tickets, named for the administrator
/// (`http listener "https" route /mapi/ (passthrough)`, `rpc listener "mdb"`); empty when kedge
/// is the only verifier (assert routes, no RPC).
pub fn reasons(cfg: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for l in &cfg.http {
        for r in &l.routes {
            if r.mode == RouteMode::Passthrough && !r.anonymous {
                out.push(format!(
                    "http listener {:?} route {} (passthrough)",
                    l.name, r.prefix
                ));
            }
        }
    }
    for l in &cfg.rpc {
        out.push(format!("rpc listener {:?}", l.name));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_configs_name_their_passthrough_routes_and_rpc_listeners() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config/");
        let cfg2010 = std::fs::read_to_string(format!("{dir}exchange2010.toml")).unwrap();
        let cfg = toml::from_str::<Config>(&cfg2010).unwrap();
        let why = reasons(&cfg);
        assert!(why.iter().any(|w| w.starts_with("rpc listener")), "{why:?}");
    }
}
