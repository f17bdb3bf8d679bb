//! kedge — a Kerberos-validating load balancer for Microsoft Exchange Client Access arrays.
//!
//! See `ARCHITECTURE.md` for the code map. The protocol cores (`krb`, `rpc`) are pure: bytes and
//! `now` in, values or typed errors out. The async edge (`edge`, `pool`, `admin`) owns sockets.
#![forbid(unsafe_code)]

pub mod admin;
pub mod asa;
pub mod cli;
pub mod config;
pub mod edge;
pub mod krb;
pub mod observe;
pub mod pool;
pub mod rpc;
pub mod serve;

/// Starts the RPC listeners (none until the RPC edge is wired).
pub(crate) fn serve_rpc_listeners(
    cfg: &config::Config,
    listeners: Vec<tokio::net::TcpListener>,
    _acceptor: &std::sync::Arc<krb::acceptor::Acceptor>,
    _pools: &std::sync::Arc<pool::Pools>,
    _shutdown: &tokio::sync::watch::Receiver<bool>,
    _tasks: &mut tokio::task::JoinSet<()>,
) -> Result<(), serve::ServeError> {
    if let (Some(l), false) = (cfg.rpc.first(), listeners.is_empty()) {
        return Err(serve::ServeError::Listener {
            name: l.name.clone(),
            msg: "rpc listeners are not available in this build".into(),
        });
    }
    Ok(())
}
