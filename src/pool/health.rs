//! The active health checker of one pool: every `interval`, probe each member concurrently and
//! feed the results to its [`super::health_state::HealthState`]; prune retired members.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::watch;

use super::config::HealthKind;
use super::probe::{self, Probe};
use super::Pool;

/// Runs until `stop` turns true or the pool is closed.
pub(crate) async fn run(pool: Arc<Pool>, mut stop: watch::Receiver<bool>) {
    tracing::debug!(pool = pool.name(), "health checks started");
    loop {
        if *stop.borrow() || pool.is_closed() {
            break;
        }
        let interval = check_round(&pool).await;
        pool.prune();
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => {}
        }
    }
    tracing::debug!(pool = pool.name(), "health checks stopped");
}

/// Probes every member once; returns the interval to wait before the next round.
pub(crate) async fn check_round(pool: &Pool) -> Duration {
    let set = pool.snapshot();
    let hc = &set.cfg.health;
    let interval = Duration::from_millis(hc.interval_ms.max(10));
    let timeout = Duration::from_millis(hc.timeout_ms.max(1));
    if hc.kind == HealthKind::None {
        return interval;
    }
    let checks = set.members.iter().map(|m| {
        let probe = match hc.kind {
            HealthKind::Tcp | HealthKind::None => Probe::Tcp,
            HealthKind::Http => Probe::Http {
                path: hc.path.clone(),
                tls: pool.tls_for(m),
            },
        };
        async move {
            let result = probe::run(&probe, &m.host, m.port, timeout).await;
            let answers = matches!(probe, Probe::Http { .. });
            m.record_check(result.map_err(|e| e.to_string()), hc.rise, hc.fall, answers);
        }
    });
    join_all(checks).await;
    interval
}
