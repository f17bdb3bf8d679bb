//! kedge's configuration file (TOML): parsed with `deny_unknown_fields`, validated once at load,
//! every problem reported with its path (`pools.cas.members[2]: …`) before anything starts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::krb::acceptor::{ChannelBindingPolicy, GroupRules};
use crate::pool::config::{MemberConfig, PoolConfig};

mod http_limits;
mod rpc_listener;
mod tls;

pub use http_limits::{HttpLimits, SourceLimitsConfig};
pub use rpc_listener::RpcListenerConfig;
pub use tls::{TlsCertificateConfig, TlsConfig};

/// The whole configuration.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Kerberos acceptor settings (realm, array names, keytab, skew, replay cache).
    pub kerberos: KerberosConfig,
    /// Admin listener (metrics, health, status).
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    /// HTTPS/HTTP listeners.
    #[serde(default)]
    pub http: Vec<HttpListenerConfig>,
    /// MS-RPC/TCP listeners.
    #[serde(default)]
    pub rpc: Vec<RpcListenerConfig>,
    /// CAS members by name.
    #[serde(default)]
    pub members: BTreeMap<String, MemberConfig>,
    /// Pools by name.
    #[serde(default)]
    pub pools: BTreeMap<String, PoolConfig>,
    /// Threads and scheduling.
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// Logging (refusal summaries).
    #[serde(default)]
    pub logging: LoggingConfig,
    /// `[access_log]`: one line per HTTP request and RPC connection (off by default).
    #[serde(default)]
    pub access_log: crate::observe::access_log::AccessLogConfig,
}

/// Logging (`[logging]`). The filter comes from `RUST_LOG` (default `info`), the format from
/// `KEDGE_LOG_FORMAT` (`json` or text).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// Refusals (401s, bind_naks, connections over a limit) are logged in full up to
    /// `refusal_burst` times per reason and call site per interval; one summary line per reason
    /// counts the rest at the interval's end. Seconds, default 60.
    #[serde(
        default = "default_refusal_interval",
        deserialize_with = "crate::duration_field::secs"
    )]
    pub refusal_interval_secs: u64,
    /// Full lines per reason per interval (default 10; 0 logs summaries only).
    #[serde(default = "default_refusal_burst")]
    pub refusal_burst: u32,
}

fn default_refusal_interval() -> u64 {
    60
}
fn default_refusal_burst() -> u32 {
    10
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            refusal_interval_secs: default_refusal_interval(),
            refusal_burst: default_refusal_burst(),
        }
    }
}

/// How client connections are scheduled on threads.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Scheduler {
    /// One current-thread runtime per worker thread; each connection stays on one worker for
    /// its life (no work stealing, no cross-thread wakeups per request). The default.
    #[default]
    PerCore,
    /// tokio's work-stealing multi-thread scheduler for everything.
    WorkStealing,
}

/// Threads and scheduling (`[runtime]`).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// `per-core` (default) or `work-stealing`.
    #[serde(default)]
    pub scheduler: Scheduler,
    /// Worker threads for connections; 0 (default) means one per CPU.
    #[serde(default)]
    pub workers: usize,
}

impl RuntimeConfig {
    /// Worker threads to start: `workers`, or the number of CPUs when that is 0.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// Kerberos acceptor settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KerberosConfig {
    /// Path of the ASA keytab (MIT format).
    pub keytab: PathBuf,
    /// The AD realm (uppercase DNS name of the domain); tickets of other realms are refused.
    #[serde(default)]
    pub realm: Option<String>,
    /// The array FQDNs (e.g. `outlook.contoso.com`) the SPNs must name.
    #[serde(default)]
    pub array: Vec<String>,
    /// Allowed clock skew, seconds (default 300).
    #[serde(default = "default_skew", deserialize_with = "crate::duration_field::secs")]
    pub skew_secs: u64,
    /// Extended Protection (channel binding) policy.
    #[serde(default)]
    pub channel_binding: ChannelBindingPolicy,
    /// Refuse tickets without a PAC.
    #[serde(default)]
    pub require_pac: bool,
    /// Realms whose users may log on (the client realm of the decrypted ticket): the own realm
    /// and the trusted realms whose users use this array, every one listed. Empty (the default):
    /// only `realm` (or, without it, the keytab's realm).
    #[serde(default)]
    pub allowed_client_realms: Vec<String>,
    /// Maximum live replay-cache entries (default 2,000,000, about 120 MB at most).
    #[serde(default = "default_replay_max")]
    pub replay_max_entries: usize,
    /// Bytes of opened service tickets kept, so that a client's next token around the same
    /// ticket is not decrypted and PAC-verified again (default 64 MiB, some 8,000 AD tickets
    /// with a 30-group PAC; 0 keeps none). Everything time- or request-bound is still checked
    /// on every token; a keytab reload empties it.
    #[serde(default = "default_ticket_cache_bytes")]
    pub ticket_cache_bytes: usize,
    /// `[kerberos.replay]`: the replay store shared by replicas (none by default).
    #[serde(default)]
    pub replay: crate::replay_store::ReplayConfig,
    /// The share of the replay cache one client principal may hold (default 0.01: 20,000
    /// entries of the default 2,000,000, ~33 fresh authenticators per second sustained over the
    /// 600 s window). Beyond it that principal's new authenticators are refused and counted
    /// (`reason="replay_principal_share"`), so one user cannot fill the cache for everyone.
    #[serde(default = "default_replay_principal_share")]
    pub replay_principal_share: f64,
    /// Keys of a previous kvno stay valid this many seconds after a newer kvno is loaded
    /// (default 7 days, like AD's ticket lifetime ceiling with margin).
    #[serde(default = "default_retire", deserialize_with = "crate::duration_field::secs")]
    pub previous_key_retire_secs: u64,
    /// Poll interval for keytab changes, milliseconds (file events are used too).
    #[serde(default = "default_poll", deserialize_with = "crate::duration_field::millis")]
    pub keytab_poll_ms: u64,
}

fn default_skew() -> u64 {
    300
}
fn default_replay_max() -> usize {
    2_000_000
}
fn default_ticket_cache_bytes() -> usize {
    crate::krb::acceptor::DEFAULT_TICKET_CACHE_BYTES
}
fn default_replay_principal_share() -> f64 {
    0.01
}
fn default_retire() -> u64 {
    7 * 24 * 3600
}
fn default_poll() -> u64 {
    2_000
}

/// Admin listener.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address to listen on (keep it private: `127.0.0.1:9180`; kedge warns at start when it
    /// is not on loopback).
    pub listen: String,
    /// File holding the bearer token the mutating endpoints (`POST /drain/…`) require, under
    /// the secret-file rule (refused when group or others may write it). Absent: those
    /// endpoints are off; drain members in the config and reload instead.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

/// What to do with NTLM on a route or listener.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NtlmPolicy {
    /// Refuse (401 / bind_nak) and count it.
    #[default]
    Reject,
    /// Forward to the backend untouched (it does its own NTLM, with its own DC round-trips).
    Passthrough,
}

/// What to do with a credential kedge does not check itself — HTTP Basic (a password) or an
/// OAuth `Bearer` token — on a route.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SchemePolicy {
    /// Never forwarded: refused with 401 on an authenticated route, removed on an anonymous one
    /// (no password spraying through the edge).
    #[default]
    Reject,
    /// Forwarded untouched on a passthrough route, for the member to check (Exchange 2010
    /// Outlook Anywhere and ActiveSync use Basic; Exchange 2013+ hybrid modern authentication
    /// sends OAuth bearer tokens to EWS, ActiveSync, Autodiscover and OAB).
    Passthrough,
}

/// Forwarding mode of an HTTP route.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RouteMode {
    /// Validated request goes byte for byte to a dedicated backend connection.
    #[default]
    Passthrough,
    /// kedge completes the handshake and asserts the identity in headers over pooled connections.
    Assert,
}

/// Identity headers of an assert-mode route.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AssertConfig {
    /// Header carrying `user@REALM`.
    #[serde(default = "default_principal_header")]
    pub principal_header: String,
    /// Header carrying the group SIDs (comma-separated); absent = not sent.
    #[serde(default)]
    pub groups_header: Option<String>,
    /// Header carrying an HMAC-SHA256 over the identity headers and a timestamp; absent = unsigned.
    #[serde(default)]
    pub signature_header: Option<String>,
    /// File holding the HMAC secret (required with `signature_header`).
    #[serde(default)]
    pub hmac_key_file: Option<PathBuf>,
    /// Header carrying the Unix time the signature covers (sent with `signature_header`).
    #[serde(default = "default_timestamp_header")]
    pub timestamp_header: String,
}

fn default_principal_header() -> String {
    "X-Kedge-Principal".into()
}
fn default_timestamp_header() -> String {
    "X-Kedge-Timestamp".into()
}

impl Default for AssertConfig {
    fn default() -> Self {
        Self {
            principal_header: default_principal_header(),
            groups_header: None,
            signature_header: None,
            hmac_key_file: None,
            timestamp_header: default_timestamp_header(),
        }
    }
}

/// A route of an HTTP listener, chosen by path prefix (longest match wins).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Path prefix (`/rpc/`, `/mapi/`, `/ews/`, …, `/` for the catch-all).
    pub prefix: String,
    /// Pool to forward to.
    pub pool: String,
    /// Forwarding mode.
    #[serde(default)]
    pub mode: RouteMode,
    /// SPN service the ticket must name (default `http`).
    #[serde(default = "default_http_service")]
    pub service: String,
    /// NTLM policy.
    #[serde(default)]
    pub ntlm: NtlmPolicy,
    /// Basic policy (default `reject`; `passthrough` needs `mode = "passthrough"`).
    #[serde(default)]
    pub basic: SchemePolicy,
    /// OAuth `Bearer` policy (default `reject`; `passthrough` needs `mode = "passthrough"`).
    #[serde(default)]
    pub bearer: SchemePolicy,
    /// PAC group rules.
    #[serde(default)]
    pub groups: Option<GroupRules>,
    /// Assert-mode headers.
    #[serde(default)]
    pub assert: Option<AssertConfig>,
    /// Forward without authentication (health pages, anonymous Autodiscover); default false.
    #[serde(default)]
    pub anonymous: bool,
}

fn default_http_service() -> String {
    "http".into()
}

/// An HTTP(S) listener.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpListenerConfig {
    /// Name used in metrics and status.
    #[serde(default = "default_http_name")]
    pub name: String,
    /// Address to listen on.
    pub listen: String,
    /// TLS (absent = plain HTTP, for TLS offloaded elsewhere or tests).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Limits.
    #[serde(default)]
    pub limits: HttpLimits,
    /// Routes.
    pub routes: Vec<RouteConfig>,
    /// Inbound PROXY protocol (v1/v2) from trusted balancers, read before the TLS handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<crate::edge::proxy_protocol::ProxyProtocolConfig>,
}

fn default_http_name() -> String {
    "https".into()
}

/// A configuration that could not be loaded: every problem with its path.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// TOML syntax or schema error (serde's message names line and column).
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    /// Semantic problems found by `validate`.
    #[error("{path}: invalid configuration:\n  {}", problems.join("\n  "))]
    Invalid { path: String, problems: Vec<String> },
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parses and validates TOML text; `origin` names the source in messages.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.into(),
            message: e.to_string(),
        })?;
        let problems = cfg.validate();
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Invalid {
                path: origin.into(),
                problems,
            })
        }
    }

    /// Every semantic problem, with its path.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.runtime.workers > 1024 {
            p.push(format!(
                "runtime.workers: {} is more than 1024",
                self.runtime.workers
            ));
        }
        if !(1..=86_400).contains(&self.logging.refusal_interval_secs) {
            p.push(format!(
                "logging.refusal_interval_secs: {} is not between 1 and 86400",
                self.logging.refusal_interval_secs
            ));
        }
        if self.kerberos.skew_secs > 3600 {
            p.push(format!(
                "kerberos.skew_secs: {} is more than an hour",
                self.kerberos.skew_secs
            ));
        }
        for (i, r) in self.kerberos.allowed_client_realms.iter().enumerate() {
            if r.is_empty() || r.contains(['@', '/', ' ']) {
                p.push(format!(
                    "kerberos.allowed_client_realms[{i}]: {r:?} is not a realm name"
                ));
            }
        }
        if self.kerberos.replay_max_entries == 0 {
            p.push("kerberos.replay_max_entries: must be at least 1".into());
        }
        self.kerberos.replay.validate("kerberos.replay", &mut p);
        self.access_log.validate(&mut p);
        let share = self.kerberos.replay_principal_share;
        if !(share > 0.0 && share <= 1.0) {
            p.push(format!(
                "kerberos.replay_principal_share: {share} is not in (0, 1]"
            ));
        }
        for (name, pool) in &self.pools {
            if pool.members.is_empty() {
                p.push(format!("pools.{name}.members: empty"));
            }
            for (i, m) in pool.members.iter().enumerate() {
                match self.members.get(m) {
                    None => p.push(format!("pools.{name}.members[{i}]: no member named {m:?}")),
                    Some(mc) if !mc.ports.contains_key(&pool.port) => p.push(format!(
                        "pools.{name}.members[{i}]: member {m:?} has no port {:?}",
                        pool.port
                    )),
                    _ => {}
                }
            }
            if pool.health.rise == 0 || pool.health.fall == 0 {
                p.push(format!("pools.{name}.health: rise and fall must be at least 1"));
            }
        }
        for (i, l) in self.http.iter().enumerate() {
            if l.listen.parse::<std::net::SocketAddr>().is_err() {
                p.push(format!("http[{i}].listen: {:?} is not an address:port", l.listen));
            }
            if l.routes.is_empty() {
                p.push(format!("http[{i}].routes: empty"));
            }
            if l.limits.max_header_bytes < 16 * 1024 {
                p.push(format!(
                    "http[{i}].limits.max_header_bytes: below 16 KiB breaks Kerberos"
                ));
            }
            if let Some(t) = &l.tls {
                t.validate(&format!("http[{i}].tls"), &mut p);
            }
            if let Some(pp) = &l.proxy_protocol {
                pp.validate(&format!("http[{i}].proxy_protocol"), &mut p);
            }
            for (j, r) in l.routes.iter().enumerate() {
                if !r.prefix.starts_with('/') {
                    p.push(format!("http[{i}].routes[{j}].prefix: must start with '/'"));
                }
                if !self.pools.contains_key(&r.pool) {
                    p.push(format!("http[{i}].routes[{j}].pool: no pool named {:?}", r.pool));
                }
                for (field, policy) in [("basic", r.basic), ("bearer", r.bearer)] {
                    if policy == SchemePolicy::Passthrough && r.mode == RouteMode::Assert {
                        p.push(format!(
                            "http[{i}].routes[{j}].{field}: \"passthrough\" needs mode = \"passthrough\" (an assert route states identity itself)"
                        ));
                    }
                }
                if let Some(a) = &r.assert {
                    if a.signature_header.is_some() && a.hmac_key_file.is_none() {
                        p.push(format!(
                            "http[{i}].routes[{j}].assert: signature_header needs hmac_key_file"
                        ));
                    }
                }
            }
        }
        for (i, l) in self.rpc.iter().enumerate() {
            if l.listen.parse::<std::net::SocketAddr>().is_err() {
                p.push(format!("rpc[{i}].listen: {:?} is not an address:port", l.listen));
            }
            if !self.pools.contains_key(&l.pool) {
                p.push(format!("rpc[{i}].pool: no pool named {:?}", l.pool));
            }
            if let Some(pp) = &l.proxy_protocol {
                pp.validate(&format!("rpc[{i}].proxy_protocol"), &mut p);
            }
        }
        if let Some(a) = &self.admin {
            if a.listen.parse::<std::net::SocketAddr>().is_err() {
                p.push(format!("admin.listen: {:?} is not an address:port", a.listen));
            }
        }
        p.extend(self.address_conflicts());
        p
    }

    /// Listeners that would take the same socket: one port on the same address, or on any
    /// address where one of them listens on all of them (`0.0.0.0`, `::`). Port 0 (a free port
    /// chosen at bind) conflicts with nothing.
    fn address_conflicts(&self) -> Vec<String> {
        let mut seen: Vec<(String, std::net::SocketAddr)> = Vec::new();
        let admin = self.admin.iter().map(|a| ("admin.listen".to_string(), &a.listen));
        let http = self
            .http
            .iter()
            .enumerate()
            .map(|(i, l)| (format!("http[{i}].listen"), &l.listen));
        let rpc = self
            .rpc
            .iter()
            .enumerate()
            .map(|(i, l)| (format!("rpc[{i}].listen"), &l.listen));
        let mut problems = Vec::new();
        for (path, listen) in http.chain(rpc).chain(admin) {
            let Ok(addr) = listen.parse::<std::net::SocketAddr>() else {
                continue;
            };
            if addr.port() == 0 {
                continue;
            }
            let clash = seen.iter().find(|(_, o)| {
                o.port() == addr.port()
                    && (o.ip() == addr.ip() || o.ip().is_unspecified() || addr.ip().is_unspecified())
            });
            if let Some((other, o)) = clash {
                problems.push(format!(
                    "{path}: {addr} overlaps {other} ({o}): both cannot listen"
                ));
            }
            seen.push((path, addr));
        }
        problems
    }
}
