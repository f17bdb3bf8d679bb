//! `[[rpc]]`: an MS-RPC/TCP listener (endpoint mapper or a static RPC port) and its bounds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::http_limits::{default_max_connections, default_shutdown_grace_secs};
use super::{NtlmPolicy, SourceLimitsConfig};
use crate::krb::acceptor::GroupRules;

/// An MS-RPC/TCP listener (endpoint mapper or a static RPC port).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RpcListenerConfig {
    /// Name used in metrics and status.
    pub name: String,
    /// Address to listen on.
    pub listen: String,
    /// Pool to forward to.
    pub pool: String,
    /// NTLM policy.
    #[serde(default)]
    pub ntlm: NtlmPolicy,
    /// This listener is the endpoint mapper (port 135): it alone lets the endpoint mapper
    /// interface bind without authentication unless `allow_unauthenticated_epm` says otherwise
    /// (default false).
    #[serde(default)]
    pub endpoint_mapper: bool,
    /// Let the endpoint mapper interface bind without authentication; such a connection may then
    /// bind the endpoint mapper only. Unset: the value of `endpoint_mapper`, so only the listener
    /// declared the endpoint mapper allows it. Read it through
    /// [`RpcListenerConfig::allows_unauthenticated_epm`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_unauthenticated_epm: Option<bool>,
    /// Extra interface → SPN service mappings (`uuid = "exchangeMDB"`, or `"no-auth"`).
    #[serde(default)]
    pub interfaces: BTreeMap<String, String>,
    /// Maximum bytes of the first bind PDU (default 64 KiB).
    #[serde(default = "default_max_pdu")]
    pub max_bind_bytes: usize,
    /// Time allowed for the first bind, milliseconds.
    #[serde(
        default = "default_bind_timeout_ms",
        deserialize_with = "crate::duration_field::millis"
    )]
    pub bind_timeout_ms: u64,
    /// Idle time before a spliced connection is closed, seconds (default 2 h).
    #[serde(
        default = "default_rpc_idle_secs",
        deserialize_with = "crate::duration_field::secs"
    )]
    pub idle_timeout_secs: u64,
    /// PAC group rules.
    #[serde(default)]
    pub groups: Option<GroupRules>,
    /// Maximum concurrent client connections on the listener (default 20,000); beyond it new
    /// connections are closed at once and counted (`limit="max_connections"`).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Per-source-address connection limits.
    #[serde(default)]
    pub per_source: SourceLimitsConfig,
    /// On shutdown, how long spliced connections may run on before they are cut, seconds
    /// (default 30).
    #[serde(
        default = "default_shutdown_grace_secs",
        deserialize_with = "crate::duration_field::secs"
    )]
    pub shutdown_grace_secs: u64,
    /// Inbound PROXY protocol (v1/v2) from trusted balancers, read within `bind_timeout_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<crate::edge::proxy_protocol::ProxyProtocolConfig>,
}

impl RpcListenerConfig {
    /// Whether an unauthenticated endpoint-mapper bind is admitted: `allow_unauthenticated_epm`
    /// where set, else `endpoint_mapper`.
    pub fn allows_unauthenticated_epm(&self) -> bool {
        self.allow_unauthenticated_epm.unwrap_or(self.endpoint_mapper)
    }
}

fn default_max_pdu() -> usize {
    64 * 1024
}
fn default_bind_timeout_ms() -> u64 {
    10_000
}
fn default_rpc_idle_secs() -> u64 {
    7_200
}
