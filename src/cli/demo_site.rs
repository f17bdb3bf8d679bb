//! `kedge demo --config FILE`: a real site's configuration (`config/exchange2010.toml`,
//! `config/exchange2016.toml`) made to run on loopback, everything else kept — its routes,
//! policies, pools, health checks and RPC listeners: listeners move to 127.0.0.1, members become
//! the demo's CAS members (plain HTTP: pools lose their backend TLS), the shared replay store and
//! the admin token file go, and the keytab, every certificate (self-signed, for its configured
//! names or the array's) and HMAC key file are generated in the demo directory.

use std::path::Path;

use anyhow::Context;

use crate::config::{AdminConfig, Config, TlsConfig};

/// Where the demo listens: the first HTTPS and the first plain HTTP listener on these ports (0:
/// any free one), everything else on a free port.
#[derive(Clone, Copy, Debug)]
pub struct DemoPorts {
    /// The first TLS listener.
    pub https: u16,
    /// The first plain listener.
    pub http: u16,
    /// The admin listener.
    pub admin: u16,
}

/// `cfg` rewritten to run in `dir` with `keytab`, `members` (the demo CAS members' ports: the
/// site's members take them in turn) and `ports`.
pub fn localize(
    mut cfg: Config,
    dir: &Path,
    keytab: &Path,
    members: &[u16],
    ports: DemoPorts,
) -> anyhow::Result<Config> {
    cfg.kerberos.keytab = keytab.to_path_buf();
    cfg.kerberos.replay.store = None;
    cfg.kerberos.replay.ca_file = None;
    cfg.admin = Some(AdminConfig {
        listen: format!("127.0.0.1:{}", ports.admin),
        token_file: None,
    });
    let hosts = cfg.kerberos.array.clone();
    let (mut https_taken, mut http_taken) = (false, false);
    for (i, l) in cfg.http.iter_mut().enumerate() {
        let port = match (&l.tls, https_taken, http_taken) {
            (Some(_), false, _) => {
                https_taken = true;
                ports.https
            }
            (None, _, false) => {
                http_taken = true;
                ports.http
            }
            _ => 0,
        };
        l.listen = format!("127.0.0.1:{port}");
        if let Some(tls) = &l.tls {
            l.tls = Some(demo_certificates(tls, dir, &l.name, &hosts)?);
        }
        for (j, r) in l.routes.iter_mut().enumerate() {
            if let Some(a) = r.assert.as_mut().filter(|a| a.hmac_key_file.is_some()) {
                let path = dir.join(format!("hmac-{i}-{j}.key"));
                super::keytab_cmd::write_atomic(&path, hex::encode(rand::random::<[u8; 32]>()).as_bytes())?;
                a.hmac_key_file = Some(path);
            }
        }
    }
    for l in &mut cfg.rpc {
        l.listen = "127.0.0.1:0".into();
    }
    anyhow::ensure!(!members.is_empty(), "no demo members");
    for (i, m) in cfg.members.values_mut().enumerate() {
        m.address = "127.0.0.1".into();
        let port = members[i % members.len()];
        for p in m.ports.values_mut() {
            *p = port;
        }
    }
    for p in cfg.pools.values_mut() {
        p.tls = None;
    }
    let problems = cfg.validate();
    anyhow::ensure!(
        problems.is_empty(),
        "the demo's version of the config is not valid: {}",
        problems.join("; ")
    );
    Ok(cfg)
}

/// A self-signed certificate and key for each of a listener's certificates, for its configured
/// names or, without any, the array's names.
fn demo_certificates(
    tls: &TlsConfig,
    dir: &Path,
    listener: &str,
    hosts: &[String],
) -> anyhow::Result<TlsConfig> {
    let mut certs = tls.all_certificates();
    for (i, c) in certs.iter_mut().enumerate() {
        let names = if !c.names.is_empty() {
            c.names.clone()
        } else if i == 0 || hosts.len() < 2 {
            hosts.to_vec()
        } else {
            // The site's extra certificates are for its other names (Autodiscover): one each.
            vec![hosts[i % hosts.len()].clone()]
        };
        let stem = names
            .first()
            .cloned()
            .unwrap_or_else(|| format!("{listener}-{i}"));
        c.cert = dir.join(format!("{stem}.pem"));
        c.key = dir.join(format!("{stem}.key"));
        write_certificate(&c.cert, &c.key, names)?;
    }
    let first = certs.remove(0);
    Ok(TlsConfig {
        cert: Some(first.cert),
        key: Some(first.key),
        certificates: certs,
        poll_secs: tls.poll_secs,
    })
}

/// A self-signed certificate for `names` and its key (mode 0600).
pub fn write_certificate(cert: &Path, key: &Path, names: Vec<String>) -> anyhow::Result<()> {
    let ck = rcgen::generate_simple_self_signed(names).context("demo certificate")?;
    std::fs::write(cert, ck.cert.pem()).with_context(|| format!("{}: cannot write", cert.display()))?;
    super::keytab_cmd::write_atomic(key, ck.key_pair.serialize_pem().as_bytes())
}
