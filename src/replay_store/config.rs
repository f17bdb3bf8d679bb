//! `[kerberos.replay]`: the replay store shared by replicas, and what happens when it cannot
//! answer.
//!
//! ```toml
//! [kerberos.replay]
//! store = "redis://10.0.0.5:6379/0"   # also rediss:// (TLS) and redis+unix:///path?db=0
//! fail = "closed"                     # closed (default) | local
//! timeout_ms = 200
//! key_prefix = "kedge:replay:"
//! # ca_file = "/etc/kedge/redis-ca.pem"  # rediss:// with a private CA
//! ```

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What an authentication does when the shared store is unreachable or too slow.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FailPolicy {
    /// Refuse the authentication (HTTP 503, RPC bind_nak `local_limit_exceeded`): a token
    /// captured here can never be replayed to another replica. The default.
    #[default]
    Closed,
    /// Accept on this process's replay cache alone: service continues, but while the store is
    /// down a token could be replayed once to each other replica within the skew window.
    Local,
}

impl FailPolicy {
    /// The label used in metrics, logs and `/status`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailPolicy::Closed => "closed",
            FailPolicy::Local => "local",
        }
    }
}

/// `[kerberos.replay]`. Without `store`, every replica keeps its own replay cache only.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReplayConfig {
    /// The shared store: `redis://host:port/db`, `rediss://host:port/db` (TLS, system roots),
    /// or `redis+unix:///path/to/socket?db=N`; a password goes in the URL
    /// (`redis://:secret@host:6379/0`) and is never shown by `/status` or logs.
    #[serde(default)]
    pub store: Option<String>,
    /// `closed` (default) or `local`.
    #[serde(default)]
    pub fail: FailPolicy,
    /// How long one store call may take before it counts as a failure, milliseconds.
    #[serde(
        default = "default_timeout_ms",
        deserialize_with = "crate::duration_field::millis"
    )]
    pub timeout_ms: u64,
    /// Prefix of the store's keys (`<prefix><32 hex digits>`).
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// PEM CA certificate(s) a `rediss://` store's certificate must chain to, instead of the
    /// system's roots (a store behind a private CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_timeout_ms() -> u64 {
    200
}
fn default_key_prefix() -> String {
    "kedge:replay:".into()
}

impl Default for ReplayConfig {
    fn default() -> Self {
        Self {
            store: None,
            fail: FailPolicy::default(),
            timeout_ms: default_timeout_ms(),
            key_prefix: default_key_prefix(),
            ca_file: None,
        }
    }
}

/// The largest `timeout_ms`: a store slower than this would hold every logon for longer than
/// clients wait.
pub const MAX_TIMEOUT_MS: u64 = 10_000;

impl ReplayConfig {
    /// Adds every problem of this section to `problems`, each prefixed with `path`
    /// (`kerberos.replay`).
    pub fn validate(&self, path: &str, problems: &mut Vec<String>) {
        let mut tls = false;
        if let Some(url) = &self.store {
            match parse_store(url) {
                Ok(info) => tls = matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. }),
                Err(why) => problems.push(format!("{path}.store: {why}")),
            }
        }
        if self.ca_file.is_some() && !tls {
            problems.push(format!("{path}.ca_file: only used with a rediss:// store"));
        }
        if self.timeout_ms == 0 || self.timeout_ms > MAX_TIMEOUT_MS {
            problems.push(format!(
                "{path}.timeout_ms: {} is not between 1 and {MAX_TIMEOUT_MS}",
                self.timeout_ms
            ));
        }
        let p = &self.key_prefix;
        if p.is_empty() || p.len() > 64 || p.chars().any(|c| c.is_whitespace() || c.is_control()) {
            problems.push(format!(
                "{path}.key_prefix: {p:?} must be 1 to 64 characters without spaces or control characters"
            ));
        }
    }
}

/// Parses a store URL into the client's connection settings, refusing what kedge does not use:
/// schemes other than `redis`, `rediss`, `redis+unix` (and their `valkey` spellings), and TLS
/// without certificate checks (`#insecure`). Messages never repeat the URL (it may hold a
/// password).
pub fn parse_store(url: &str) -> Result<redis::ConnectionInfo, String> {
    let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
    let known = [
        "redis",
        "rediss",
        "redis+unix",
        "unix",
        "valkey",
        "valkeys",
        "valkey+unix",
    ];
    if !known.contains(&scheme) {
        return Err(format!(
            "scheme {:?} is not redis://, rediss:// or redis+unix://",
            scheme.chars().take(16).collect::<String>()
        ));
    }
    let info = redis::IntoConnectionInfo::into_connection_info(url)
        // The error's kind only: its detail may echo the URL.
        .map_err(|e| format!("not a usable store URL ({:?})", e.kind()))?;
    match info.addr() {
        redis::ConnectionAddr::Tcp(host, port) | redis::ConnectionAddr::TcpTls { host, port, .. }
            if host.is_empty() || *port == 0 =>
        {
            return Err("names no host or port".into())
        }
        redis::ConnectionAddr::TcpTls { insecure: true, .. } => {
            return Err("TLS without certificate checks (#insecure) is not allowed".into())
        }
        _ => {}
    }
    if info.redis_settings().db() < 0 {
        return Err("database number is negative".into());
    }
    Ok(info)
}

/// The store's address without credentials, for `/status` and logs:
/// `redis://host:port/db`, `rediss://host:port/db` or `redis+unix:///path?db=N`.
pub fn describe(info: &redis::ConnectionInfo) -> String {
    let db = info.redis_settings().db();
    match info.addr() {
        redis::ConnectionAddr::Tcp(host, port) => format!("redis://{}/{db}", host_port(host, *port)),
        redis::ConnectionAddr::TcpTls { host, port, .. } => {
            format!("rediss://{}/{db}", host_port(host, *port))
        }
        redis::ConnectionAddr::Unix(path) => format!("redis+unix://{}?db={db}", path.display()),
        _ => "redis (unknown address kind)".into(),
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(toml_text: &str) -> Vec<String> {
        let cfg: ReplayConfig = toml::from_str(toml_text).expect("parses");
        let mut p = Vec::new();
        cfg.validate("kerberos.replay", &mut p);
        p
    }

    #[test]
    fn defaults_are_closed_200ms_and_the_kedge_prefix() {
        let cfg: ReplayConfig = toml::from_str("").unwrap();
        assert_eq!(cfg, ReplayConfig::default());
        assert_eq!(cfg.store, None);
        assert_eq!(cfg.fail, FailPolicy::Closed);
        assert_eq!(cfg.timeout_ms, 200);
        assert_eq!(cfg.key_prefix, "kedge:replay:");
        assert!(problems("").is_empty());
    }

    #[test]
    fn accepts_tcp_tls_and_unix_stores() {
        for url in [
            "redis://127.0.0.1:6379/0",
            "redis://:s3cret@cache.contoso.com:6380/2",
            "rediss://cache.contoso.com:6380/0",
            "redis+unix:///run/redis/redis.sock?db=1",
            "valkey://[::1]:6379",
        ] {
            let p = problems(&format!("store = {url:?}\nfail = \"local\"\ntimeout_ms = 50"));
            assert!(p.is_empty(), "{url}: {p:?}");
        }
    }

    #[test]
    fn bad_urls_are_problems_with_their_path_and_no_secret() {
        for (url, why) in [
            ("http://127.0.0.1:6379", "scheme"),
            ("127.0.0.1:6379", "scheme"),
            ("redis://:hunter2@/0", "not a usable store URL"),
            ("redis://:hunter2@127.0.0.1:6379/x", "not a usable store URL"),
            ("rediss://127.0.0.1:6380/#insecure", "#insecure"),
        ] {
            let p = problems(&format!("store = {url:?}"));
            assert_eq!(p.len(), 1, "{url}: {p:?}");
            assert!(p[0].starts_with("kerberos.replay.store: "), "{p:?}");
            assert!(p[0].contains(why), "{url}: {p:?}");
            assert!(!p[0].contains("hunter2"), "{p:?}");
        }
    }

    #[test]
    fn timeout_and_prefix_are_bounded() {
        assert_eq!(
            problems("timeout_ms = 0"),
            ["kerberos.replay.timeout_ms: 0 is not between 1 and 10000"]
        );
        assert_eq!(problems("timeout_ms = 10001").len(), 1);
        assert!(problems("key_prefix = \"\"")[0].starts_with("kerberos.replay.key_prefix: "));
        assert_eq!(problems("key_prefix = \"a b\"").len(), 1);
        assert!(problems("key_prefix = \"eu-west:kedge:\"").is_empty());
    }

    #[test]
    fn a_ca_file_needs_a_tls_store() {
        assert!(problems("store = \"rediss://cache:6380/0\"\nca_file = \"/etc/kedge/ca.pem\"").is_empty());
        assert_eq!(
            problems("store = \"redis://cache:6379/0\"\nca_file = \"/etc/kedge/ca.pem\""),
            ["kerberos.replay.ca_file: only used with a rediss:// store"]
        );
    }

    #[test]
    fn unknown_fields_and_policies_do_not_parse() {
        assert!(toml::from_str::<ReplayConfig>("fail = \"open\"").is_err());
        assert!(toml::from_str::<ReplayConfig>("stor = \"redis://x:1\"").is_err());
    }

    #[test]
    fn described_addresses_carry_no_credentials() {
        let d = |u: &str| describe(&parse_store(u).unwrap());
        assert_eq!(d("redis://:hunter2@127.0.0.1:6379/3"), "redis://127.0.0.1:6379/3");
        assert_eq!(d("redis://user:pw@cache:6379"), "redis://cache:6379/0");
        assert_eq!(
            d("rediss://cache.contoso.com:6380/1"),
            "rediss://cache.contoso.com:6380/1"
        );
        assert_eq!(
            d("redis+unix:///run/r.sock?db=2"),
            "redis+unix:///run/r.sock?db=2"
        );
    }
}
