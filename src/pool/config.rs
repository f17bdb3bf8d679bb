//! Backend configuration: members and pools (DESIGN.md §3).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A CAS member: one address, a weight and its ports per protocol.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    /// Host name or IP address of the member.
    pub address: String,
    /// Relative weight for selection (default 100; 0 takes no new sessions).
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Ports by protocol key (`https = 443`, `http = 80`, `epm = 135`, `mdb = 6001`, …); a pool
    /// names the key it uses.
    #[serde(default)]
    pub ports: BTreeMap<String, u16>,
    /// Start drained (no new sessions).
    #[serde(default)]
    pub drain: bool,
}

fn default_weight() -> u32 {
    100
}

/// How a pool picks a member.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Rendezvous (highest-random-weight) hashing on the authenticated principal.
    #[default]
    Rendezvous,
    /// Fewest active sessions.
    LeastConn,
}

/// TLS towards the members of a pool.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BackendTlsConfig {
    /// PEM file of CA certificates trusted for the members; absent = the system's are not
    /// used, so this is required for TLS.
    pub ca: String,
    /// Server name to send (SNI) and verify; default the member address.
    #[serde(default)]
    pub sni: Option<String>,
}

/// Active health check of a pool's members.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// `http` (GET `path`, 200 = up) or `tcp` (connect = up).
    #[serde(default = "default_health_kind")]
    pub kind: HealthKind,
    /// Path for HTTP checks, e.g. `/owa/healthcheck.htm`.
    #[serde(default = "default_health_path")]
    pub path: String,
    /// Interval between checks, milliseconds.
    #[serde(
        default = "default_interval_ms",
        deserialize_with = "crate::duration_field::millis"
    )]
    pub interval_ms: u64,
    /// Timeout of one check, milliseconds.
    #[serde(
        default = "default_timeout_ms",
        deserialize_with = "crate::duration_field::millis"
    )]
    pub timeout_ms: u64,
    /// Consecutive successes to mark a member up.
    #[serde(default = "default_rise")]
    pub rise: u32,
    /// Consecutive failures to mark a member down.
    #[serde(default = "default_fall")]
    pub fall: u32,
}

/// Kind of active health check.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HealthKind {
    /// HTTP(S) GET of a health page.
    Http,
    /// TCP connect.
    Tcp,
    /// No active checks (passive ejection only).
    None,
}

fn default_health_kind() -> HealthKind {
    HealthKind::Http
}
fn default_health_path() -> String {
    "/owa/healthcheck.htm".into()
}
fn default_interval_ms() -> u64 {
    5_000
}
fn default_timeout_ms() -> u64 {
    2_000
}
fn default_rise() -> u32 {
    2
}
fn default_fall() -> u32 {
    3
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            kind: default_health_kind(),
            path: default_health_path(),
            interval_ms: default_interval_ms(),
            timeout_ms: default_timeout_ms(),
            rise: default_rise(),
            fall: default_fall(),
        }
    }
}

/// A pool: which members, which of their ports, how to pick and check them.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// Names of members (keys of `[members]`).
    pub members: Vec<String>,
    /// Which port key of each member this pool uses (`https`, `mdb`, …).
    pub port: String,
    /// Selection algorithm.
    #[serde(default)]
    pub balance: Balance,
    /// Keep a principal on one member (rendezvous); off: spread by load.
    #[serde(default = "default_true")]
    pub affinity: bool,
    /// TLS to the members (HTTP pools).
    #[serde(default)]
    pub tls: Option<BackendTlsConfig>,
    /// Active health check.
    #[serde(default)]
    pub health: HealthConfig,
    /// Backend connect timeout (TCP, and the TLS handshake), milliseconds.
    #[serde(
        default = "default_connect_timeout_ms",
        deserialize_with = "crate::duration_field::millis"
    )]
    pub connect_timeout_ms: u64,
    /// From a request's last byte sent to a member until its response head arrives,
    /// milliseconds (default 300,000); an upload still streaming (an Outlook Anywhere
    /// `RPC_IN_DATA` channel) is not timed by it, only by `idle_timeout_secs`. A member that accepts and then hangs gets the request answered with
    /// 504 and is ejected like one refusing connections. Exchange answers heads at once (long
    /// polls stream their bodies), except ActiveSync `Ping`, which holds a request up to its
    /// heartbeat (at most 59 min): a pool serving ActiveSync needs 3,600,000.
    #[serde(
        default = "default_response_header_timeout_ms",
        deserialize_with = "crate::duration_field::millis"
    )]
    pub response_header_timeout_ms: u64,
    /// A backend connection with no byte either way for this long is closed, seconds (default
    /// 1,200, as the client side: above Outlook's 12–15 min keep-alives).
    #[serde(
        default = "default_backend_idle_secs",
        deserialize_with = "crate::duration_field::secs"
    )]
    pub idle_timeout_secs: u64,
    /// Passive ejection: how long a member that refused a connect is left out at first,
    /// milliseconds; doubles on each further failure in a row.
    #[serde(
        default = "default_eject_base_ms",
        deserialize_with = "crate::duration_field::millis"
    )]
    pub eject_base_ms: u64,
    /// Passive ejection: the longest back-off, milliseconds.
    #[serde(
        default = "default_eject_max_ms",
        deserialize_with = "crate::duration_field::millis"
    )]
    pub eject_max_ms: u64,
}

fn default_true() -> bool {
    true
}
fn default_connect_timeout_ms() -> u64 {
    3_000
}
fn default_response_header_timeout_ms() -> u64 {
    300_000
}
fn default_backend_idle_secs() -> u64 {
    1_200
}
fn default_eject_base_ms() -> u64 {
    1_000
}
fn default_eject_max_ms() -> u64 {
    60_000
}
