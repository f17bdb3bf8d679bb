//! The shared replay store: one `SET <prefix><hex id> 1 NX PX <2 × skew>` per accepted
//! authenticator over one multiplexed connection, bounded by a per-call timeout; its verdict,
//! counts and health.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use redis::aio::MultiplexedConnection;
use redis::Value;
use tokio::sync::Notify;

use super::config::{describe, parse_store, FailPolicy, ReplayConfig};
use crate::admin::status::{ReplayStoreCalls, ReplayStoreStatus};
use crate::krb::replay::ReplayId;
use crate::observe;

/// What the store says about an authenticator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Not seen by any replica within the window: now recorded.
    Fresh,
    /// Already recorded by some replica (this one included) within the window.
    Replay,
}

/// Why the store gave no verdict. Carries no key, token or URL.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// No connection to the store right now (it is being re-established in the background).
    #[error("not connected to the replay store")]
    Down,
    /// The store did not answer within the call timeout.
    #[error("replay store gave no answer within {0} ms")]
    Timeout(u64),
    /// The client or the server reported an error.
    #[error("replay store error: {0}")]
    Failed(String),
    /// The server answered something `SET … NX` never answers.
    #[error("replay store answered {0}, not OK or nil")]
    Unexpected(String),
}

impl StoreError {
    /// The `result` label of `kedge_replay_store_calls_total`.
    pub fn label(&self) -> &'static str {
        match self {
            StoreError::Timeout(_) => "timeout",
            _ => "error",
        }
    }
}

/// Maps the reply to `SET key 1 NX PX ttl`: `OK` means the key was set (first sighting), nil
/// means it existed (a replay); anything else is an error.
pub fn verdict(reply: Value) -> Result<Seen, StoreError> {
    match reply {
        Value::Okay => Ok(Seen::Fresh),
        Value::SimpleString(s) if s == "OK" => Ok(Seen::Fresh),
        Value::Nil => Ok(Seen::Replay),
        Value::ServerError(e) => Err(StoreError::Failed(e.to_string())),
        other => Err(StoreError::Unexpected(
            format!("{other:?}").chars().take(40).collect(),
        )),
    }
}

/// The store's key for an authenticator: the prefix and the id in lowercase hex.
pub fn key(prefix: &str, id: &ReplayId) -> String {
    let mut k = String::with_capacity(prefix.len() + 32);
    k.push_str(prefix);
    k.push_str(&hex::encode(id));
    k
}

/// The current connection and the number that tells it from earlier ones.
pub(super) struct Link {
    pub(super) generation: u64,
    pub(super) conn: MultiplexedConnection,
}

#[derive(Debug, Default)]
pub(super) struct Health {
    pub(super) up: bool,
    pub(super) since: u64,
    pub(super) last_error: Option<String>,
    pub(super) connects: u64,
}

#[derive(Default)]
struct Calls {
    fresh: AtomicU64,
    replay: AtomicU64,
    error: AtomicU64,
    timeout: AtomicU64,
}

/// A replay store shared by the replicas of one array (Redis or Valkey). Cheap to call from any
/// thread or runtime: calls go over one multiplexed connection (pipelined, never a connection
/// per call) that [`ReplayStore::maintain`] keeps open and re-opens with backoff.
pub struct ReplayStore {
    pub(super) client: redis::Client,
    target: String,
    fail: FailPolicy,
    timeout: Duration,
    prefix: String,
    ttl_ms: u64,
    pub(super) link: ArcSwapOption<Link>,
    pub(super) lost: Notify,
    pub(super) health: Mutex<Health>,
    calls: Calls,
}

/// A store that could not be set up from its config (the config check catches most first).
#[derive(Debug, thiserror::Error)]
pub enum StoreSetupError {
    /// The URL or the client's settings are unusable (never repeats the URL).
    #[error("kerberos.replay.store: {0}")]
    Store(String),
    /// The CA file could not be read.
    #[error("kerberos.replay.ca_file: {path}: {source}")]
    CaFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl std::fmt::Debug for ReplayStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayStore")
            .field("target", &self.target)
            .field("fail", &self.fail)
            .finish_non_exhaustive()
    }
}

impl ReplayStore {
    /// A store for `cfg` whose entries live `window` (2 × skew, as in the local cache).
    /// `None` when no store is configured. Connects only once [`ReplayStore::maintain`] runs.
    pub fn from_config(cfg: &ReplayConfig, window: Duration) -> Result<Option<Arc<Self>>, StoreSetupError> {
        let Some(url) = &cfg.store else {
            return Ok(None);
        };
        let info = parse_store(url).map_err(StoreSetupError::Store)?;
        let target = describe(&info);
        let client = match &cfg.ca_file {
            None => redis::Client::open(info),
            Some(path) => {
                let pem = std::fs::read(path).map_err(|source| StoreSetupError::CaFile {
                    path: path.clone(),
                    source,
                })?;
                let certs = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                };
                redis::Client::build_with_tls(info, certs)
            }
        }
        .map_err(|e| StoreSetupError::Store(format!("{:?} ({})", e.kind(), e.category())))?;
        Ok(Some(Arc::new(Self {
            client,
            target,
            fail: cfg.fail,
            timeout: Duration::from_millis(cfg.timeout_ms),
            prefix: cfg.key_prefix.clone(),
            ttl_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1),
            link: ArcSwapOption::empty(),
            lost: Notify::new(),
            health: Mutex::new(Health::default()),
            calls: Calls::default(),
        })))
    }

    /// What an authentication does when the store gives no verdict.
    pub fn fail_policy(&self) -> FailPolicy {
        self.fail
    }

    /// The store's address without credentials.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The per-call timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether a connection is open.
    pub fn is_up(&self) -> bool {
        self.link.load().is_some()
    }

    /// Records `id` unless some replica recorded it within the window. Never waits longer than
    /// the call timeout; answers [`StoreError::Down`] at once while the store is unreachable.
    /// Counted by result, timed when a call was made.
    pub async fn check(&self, id: &ReplayId) -> Result<Seen, StoreError> {
        let Some(link) = self.link.load_full() else {
            self.count("error");
            observe::replay_store_call("error", None);
            return Err(StoreError::Down);
        };
        let started = Instant::now();
        let res = self.call(&link, id).await;
        let label = match &res {
            Ok(Seen::Fresh) => "fresh",
            Ok(Seen::Replay) => "replay",
            Err(e) => e.label(),
        };
        self.count(label);
        observe::replay_store_call(label, Some(started.elapsed().as_secs_f64()));
        res
    }

    async fn call(&self, link: &Link, id: &ReplayId) -> Result<Seen, StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key(&self.prefix, id))
            .arg(1u8)
            .arg("NX")
            .arg("PX")
            .arg(self.ttl_ms);
        let mut conn = link.conn.clone();
        match tokio::time::timeout(self.timeout, conn.send_packed_command(&cmd)).await {
            Err(_) => Err(StoreError::Timeout(self.timeout_ms())),
            Ok(Ok(reply)) => verdict(reply),
            Ok(Err(e)) if e.is_timeout() => Err(StoreError::Timeout(self.timeout_ms())),
            Ok(Err(e)) => {
                if e.is_connection_dropped() || e.is_io_error() || e.is_unrecoverable_error() {
                    self.connection_lost(link.generation);
                }
                Err(StoreError::Failed(format!("{:?}", e.kind())))
            }
        }
    }

    fn timeout_ms(&self) -> u64 {
        u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX)
    }

    /// The connection of `generation` failed: drop it (later calls fail fast) and wake the
    /// maintainer to reconnect. A failure of an older connection changes nothing.
    pub(super) fn connection_lost(&self, generation: u64) {
        let current = self.link.load().as_ref().map(|l| l.generation);
        if current == Some(generation) {
            self.link.store(None);
            self.lost.notify_one();
        }
    }

    fn count(&self, label: &str) {
        let c = &self.calls;
        let counter = match label {
            "fresh" => &c.fresh,
            "replay" => &c.replay,
            "timeout" => &c.timeout,
            _ => &c.error,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The store's state for `/status`.
    pub fn status(&self) -> ReplayStoreStatus {
        let h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        let c = &self.calls;
        ReplayStoreStatus {
            store: self.target.clone(),
            state: if self.is_up() { "up" } else { "down" }.into(),
            since: h.since,
            fail: self.fail.as_str().into(),
            timeout_ms: self.timeout_ms(),
            key_prefix: self.prefix.clone(),
            window_secs: self.ttl_ms / 1000,
            connects: h.connects,
            last_error: h.last_error.clone(),
            calls: ReplayStoreCalls {
                fresh: c.fresh.load(Ordering::Relaxed),
                replay: c.replay.load(Ordering::Relaxed),
                error: c.error.load(Ordering::Relaxed),
                timeout: c.timeout.load(Ordering::Relaxed),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_is_fresh_and_nil_is_a_replay() {
        assert_eq!(verdict(Value::Okay), Ok(Seen::Fresh));
        assert_eq!(verdict(Value::SimpleString("OK".into())), Ok(Seen::Fresh));
        assert_eq!(verdict(Value::Nil), Ok(Seen::Replay));
    }

    #[test]
    fn other_replies_are_errors_not_verdicts() {
        assert!(matches!(verdict(Value::Int(1)), Err(StoreError::Unexpected(_))));
        assert!(matches!(
            verdict(Value::SimpleString("QUEUED".into())),
            Err(StoreError::Unexpected(_))
        ));
        let e = verdict(Value::BulkString(vec![b'x'; 500])).unwrap_err();
        assert!(e.to_string().len() < 100, "replies are not echoed whole: {e}");
        assert_eq!(e.label(), "error");
        assert_eq!(StoreError::Timeout(200).label(), "timeout");
        assert_eq!(StoreError::Down.label(), "error");
    }

    #[test]
    fn keys_are_prefix_and_32_hex_digits() {
        let id = [0xabu8; 16];
        let k = key("kedge:replay:", &id);
        assert_eq!(k, format!("kedge:replay:{}", "ab".repeat(16)));
    }

    #[test]
    fn entries_live_the_local_window_and_start_down() {
        let cfg = ReplayConfig {
            store: Some("redis://:pw@127.0.0.1:1/0".into()),
            ..ReplayConfig::default()
        };
        let s = ReplayStore::from_config(&cfg, Duration::from_secs(600))
            .unwrap()
            .unwrap();
        assert_eq!(s.ttl_ms, 600_000);
        assert!(!s.is_up());
        let st = s.status();
        assert_eq!((st.state.as_str(), st.fail.as_str()), ("down", "closed"));
        assert_eq!(st.store, "redis://127.0.0.1:1/0");
        assert!(
            ReplayStore::from_config(&ReplayConfig::default(), Duration::from_secs(1))
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_store_that_is_down_answers_at_once() {
        let cfg = ReplayConfig {
            store: Some("redis://127.0.0.1:1/0".into()),
            ..ReplayConfig::default()
        };
        let s = ReplayStore::from_config(&cfg, Duration::from_secs(600))
            .unwrap()
            .unwrap();
        let started = Instant::now();
        assert_eq!(s.check(&[1; 16]).await, Err(StoreError::Down));
        assert!(started.elapsed() < Duration::from_millis(50));
        assert_eq!(s.status().calls.error, 1);
    }
}
