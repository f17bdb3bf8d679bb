//! Keeping the store's one connection open: connect, watch it (a failed call or a failed
//! periodic `PING` means it is gone), and reconnect with jittered exponential backoff, all in
//! one background task on the main runtime. Callers never wait for a connect: while there is no
//! connection they get [`StoreError::Down`](super::StoreError::Down) at once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::AsyncConnectionConfig;

use super::store::{Link, ReplayStore};
use crate::observe;

/// Bound of one connection attempt (TCP, TLS and the client's handshake).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// First retry delay after a failed connect; doubled per failure up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Longest retry delay.
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How often an idle connection is checked.
const PING_EVERY: Duration = Duration::from_secs(1);
/// Commands queued towards the connection's writer before callers wait for room.
const PIPELINE_BUFFER: usize = 4096;

impl ReplayStore {
    /// Keeps a connection to the store open until `shutdown` completes: connects, checks it
    /// every second, and reconnects with backoff when a call or a check finds it gone. Spawn it
    /// once, on a runtime that lives as long as the process serves (the connection's driver
    /// runs there too).
    pub async fn maintain(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut backoff = BACKOFF_MIN;
        let mut generation = 0u64;
        loop {
            let attempt = tokio::select! {
                res = self.connect() => res,
                _ = &mut shutdown => break,
            };
            match attempt {
                Ok(conn) => {
                    generation += 1;
                    self.link.store(Some(Arc::new(Link { generation, conn })));
                    self.mark_up();
                    backoff = BACKOFF_MIN;
                    let why = tokio::select! {
                        why = self.watch(generation) => why,
                        _ = &mut shutdown => break,
                    };
                    self.connection_lost(generation);
                    self.mark_down(why);
                }
                Err(why) => {
                    self.mark_down(why);
                    tokio::select! {
                        _ = tokio::time::sleep(jittered(backoff)) => {}
                        _ = &mut shutdown => break,
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        self.link.store(None);
        observe::replay_store_up(false);
    }

    async fn connect(&self) -> Result<redis::aio::MultiplexedConnection, String> {
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            // Calls are bounded by the store's own timeout (`ReplayStore::check`).
            .set_response_timeout(None)
            .set_pipeline_buffer_size(PIPELINE_BUFFER);
        let connecting = self.client.get_multiplexed_async_connection_with_config(&cfg);
        match tokio::time::timeout(CONNECT_TIMEOUT + Duration::from_millis(100), connecting).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(format!("connect: {:?} ({})", e.kind(), e.category())),
            Err(_) => Err(format!(
                "connect: no answer within {} ms",
                CONNECT_TIMEOUT.as_millis()
            )),
        }
    }

    /// Returns why the connection of `generation` is no longer usable.
    async fn watch(&self, generation: u64) -> String {
        loop {
            // A wake-up may be left over from an older connection: the check below sorts it out.
            tokio::select! {
                _ = self.lost.notified() => {}
                _ = tokio::time::sleep(PING_EVERY) => {}
            }
            let Some(link) = self.link.load_full().filter(|l| l.generation == generation) else {
                return "connection lost".into();
            };
            let mut conn = link.conn.clone();
            let limit = self.timeout().max(Duration::from_millis(500));
            let ping = redis::cmd("PING");
            match tokio::time::timeout(limit, conn.send_packed_command(&ping)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return format!("ping: {:?} ({})", e.kind(), e.category()),
                Err(_) => return format!("ping: no answer within {} ms", limit.as_millis()),
            }
        }
    }

    fn mark_up(&self) {
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        h.up = true;
        h.since = crate::admin::unix_now();
        h.connects += 1;
        drop(h);
        observe::replay_store_up(true);
        tracing::info!(store = %self.target(), "replay store connected");
    }

    fn mark_down(&self, why: String) {
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        let was_up = std::mem::replace(&mut h.up, false);
        let first = h.since == 0;
        if was_up || first {
            h.since = crate::admin::unix_now();
        }
        h.last_error = Some(why.clone());
        drop(h);
        observe::replay_store_up(false);
        if was_up || first {
            tracing::warn!(store = %self.target(), fail = self.fail_policy().as_str(), error = %why,
                "replay store unreachable; reconnecting in the background");
        } else {
            tracing::debug!(store = %self.target(), error = %why, "replay store still unreachable");
        }
    }
}

/// `base` ± 20 %, so replicas that lost the store together do not reconnect in step.
fn jittered(base: Duration) -> Duration {
    let f = 0.8 + rand::random::<f64>() * 0.4;
    base.mul_f64(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_fifth() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_millis(1000));
            assert!(
                d >= Duration::from_millis(800) && d <= Duration::from_millis(1200),
                "{d:?}"
            );
        }
    }
}
