//! kedge's HTTP edge on `127.0.0.1:0`, with pools pointing at test backends.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use kedge::config::HttpListenerConfig;
use kedge::edge::http::ServerTls;
use kedge::edge::workers::Workers;
use kedge::edge::{serve_http, Authenticate, EdgeContext, ServeError};
use kedge::observe::access_log::AccessLog;
use kedge::pool::{BackendTlsConfig, MemberConfig, Pool, PoolConfig};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A backend pool for the test: a name, one member's address, TLS to it or not.
pub struct PoolSpec {
    /// Pool name (what routes say).
    pub name: &'static str,
    /// The member.
    pub addr: SocketAddr,
    /// TLS to the member.
    pub tls: Option<BackendTlsConfig>,
}

impl PoolSpec {
    /// A plain-HTTP pool of one member.
    pub fn plain(name: &'static str, addr: SocketAddr) -> Self {
        Self {
            name,
            addr,
            tls: None,
        }
    }
}

/// A running listener.
pub struct Kedge {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), ServeError>>>,
}

/// Starts a listener from TOML (the `listen` line is filled in) over `pools`.
pub async fn start(
    listener_toml: &str,
    pools: Vec<PoolSpec>,
    auth: Arc<dyn Authenticate>,
    tls: Option<ServerTls>,
) -> Kedge {
    start_over(listener_toml, build_pools(pools), auth, tls).await
}

/// One-member pools from specs.
fn build_pools(pools: Vec<PoolSpec>) -> BTreeMap<String, Arc<Pool>> {
    let mut built = BTreeMap::new();
    for spec in pools {
        let members = [(format!("{}-m1", spec.name), spec.addr)];
        built.insert(
            spec.name.to_string(),
            build_pool(spec.name, &members, spec.tls, ""),
        );
    }
    built
}

/// A plain-HTTP pool `name` of several members (`(member name, address)`, in that order):
/// weight 100 each, no active health check, rendezvous affinity on the principal. The test keeps
/// the `Arc` to drain members while kedge uses the pool.
pub fn multi_member_pool(name: &str, members: &[(&str, SocketAddr)]) -> Arc<Pool> {
    let members: Vec<(String, SocketAddr)> = members.iter().map(|(m, a)| (m.to_string(), *a)).collect();
    build_pool(name, &members, None, "")
}

/// [`multi_member_pool`] with `extra` pool settings (TOML lines: timeouts, ejection back-off).
pub fn multi_member_pool_with(name: &str, members: &[(&str, SocketAddr)], extra: &str) -> Arc<Pool> {
    let members: Vec<(String, SocketAddr)> = members.iter().map(|(m, a)| (m.to_string(), *a)).collect();
    build_pool(name, &members, None, extra)
}

fn build_pool(
    name: &str,
    members: &[(String, SocketAddr)],
    tls: Option<BackendTlsConfig>,
    extra: &str,
) -> Arc<Pool> {
    let table: BTreeMap<String, MemberConfig> = members
        .iter()
        .map(|(m, addr)| {
            let mc = MemberConfig {
                address: addr.ip().to_string(),
                weight: 100,
                ports: [("http".to_string(), addr.port())].into_iter().collect(),
                drain: false,
            };
            (m.clone(), mc)
        })
        .collect();
    let names: Vec<String> = members.iter().map(|(m, _)| format!("{m:?}")).collect();
    let pc: PoolConfig = toml::from_str(&format!(
        "members = [{}]\nport = \"http\"\n{extra}\n[health]\nkind = \"none\"\n",
        names.join(", ")
    ))
    .expect("pool config");
    let pc = PoolConfig { tls, ..pc };
    Arc::new(Pool::new(name, &pc, &table).expect("pool"))
}

/// [`start`] with an access log.
pub async fn start_logged(
    listener_toml: &str,
    pools: Vec<PoolSpec>,
    auth: Arc<dyn Authenticate>,
    log: Arc<AccessLog>,
) -> Kedge {
    let (cfg, ctx) = listener(listener_toml, build_pools(pools), auth);
    start_with(cfg, ctx.with_access_log(log)).await
}

/// A [`TestBackend`](super::backend::TestBackend) as pool `cas` behind a listener from TOML
/// with the scripted validator, writing its access log to `log`.
pub async fn logged(listener_toml: &str, log: Arc<AccessLog>) -> (super::backend::TestBackend, Kedge) {
    let backend = super::backend::TestBackend::start().await;
    let pools = vec![PoolSpec::plain("cas", backend.addr)];
    let auth = Arc::new(super::fake::FakeAuth::default());
    let kedge = start_logged(listener_toml, pools, auth, log).await;
    (backend, kedge)
}

/// The config and context [`start_over`] serves.
fn listener(
    listener_toml: &str,
    pools: BTreeMap<String, Arc<Pool>>,
    auth: Arc<dyn Authenticate>,
) -> (HttpListenerConfig, EdgeContext) {
    let cfg: HttpListenerConfig =
        toml::from_str(&format!("listen = \"127.0.0.1:0\"\n{listener_toml}")).expect("listener config");
    // Connections run on per-core workers, as `kedge run` does by default.
    let workers = Workers::start(2).expect("worker threads");
    (cfg, EdgeContext::new(auth, pools).with_workers(workers))
}

/// Starts a listener from TOML (the `listen` line is filled in) over pools already built (see
/// [`multi_member_pool`]).
pub async fn start_over(
    listener_toml: &str,
    pools: BTreeMap<String, Arc<Pool>>,
    auth: Arc<dyn Authenticate>,
    tls: Option<ServerTls>,
) -> Kedge {
    let (cfg, mut ctx) = listener(listener_toml, pools, auth);
    if let Some(t) = tls {
        ctx = ctx.with_tls(t);
    }
    start_with(cfg, ctx).await
}

/// Starts a listener with a ready context.
pub async fn start_with(cfg: HttpListenerConfig, ctx: EdgeContext) -> Kedge {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_http(listener, Arc::new(cfg), Arc::new(ctx), async move {
        let _ = rx.await;
    }));
    Kedge {
        addr,
        stop: Some(tx),
        task: Some(task),
    }
}

impl Kedge {
    /// Signals shutdown and waits for the listener to finish draining.
    pub async fn stop(mut self) -> Result<(), ServeError> {
        let _ = self.stop.take().expect("running").send(());
        let task = self.task.take().expect("running");
        super::bounded("kedge shutdown", task).await.expect("join")
    }
}

impl Drop for Kedge {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

/// The usual listener: an authenticated catch-all in passthrough mode to pool `cas`, with an
/// anonymous health page and an NTLM-passthrough prefix.
pub const PASSTHROUGH: &str = r#"
name = "https"
[[routes]]
prefix = "/"
pool = "cas"
[[routes]]
prefix = "/owa/healthcheck.htm"
pool = "cas"
anonymous = true
[[routes]]
prefix = "/stream-anon"
pool = "cas"
anonymous = true
[[routes]]
prefix = "/ntlm/"
pool = "cas"
ntlm = "passthrough"
"#;
