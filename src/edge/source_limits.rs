//! Per-source-address limits of a listener: concurrent connections and new connections per
//! second (a token bucket), so one address cannot take the listener's whole connection budget.
//! A connection over a limit is closed at once (no TLS handshake, no byte read) and counted.
//!
//! IPv6 sources are grouped by their /64 (one host usually holds a whole /64, and counting
//! single addresses would let it open 2^64 "sources"); IPv4-mapped addresses count as IPv4.
//!
//! The table holds an entry per source with an open connection or a bucket still refilling, so
//! its size is bounded by the listener's `max_connections` plus the sources seen within one
//! bucket refill time; [`top_talkers`] serves `/status`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::config::SourceLimitsConfig;

/// Why a connection was refused at the door.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceRefusal {
    /// The source already holds `max_connections` open connections.
    Connections,
    /// The source opened connections faster than `rate_per_sec` (after its `burst`).
    Rate,
}

impl SourceRefusal {
    /// The `limit` label of `kedge_limit_exceeded_total` and the log reason.
    pub fn label(self) -> &'static str {
        match self {
            Self::Connections => "per_source_connections",
            Self::Rate => "per_source_rate",
        }
    }
}

#[derive(Debug)]
struct Source {
    open: u32,
    tokens: f64,
    refilled: Instant,
    accepted: u64,
    refused: u64,
}

/// The per-source table of one listener.
#[derive(Debug)]
pub struct SourceLimits {
    cfg: SourceLimitsConfig,
    table: Mutex<Table>,
}

#[derive(Debug)]
struct Table {
    sources: HashMap<IpAddr, Source>,
    /// Quiet sources are swept when the table grows past this (then twice what is left), so
    /// sweeping costs O(1) per admission on average.
    sweep_above: usize,
}

const MIN_SWEEP: usize = 64;

/// One source's share, for `/status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Talker {
    /// The address (an IPv6 source as its /64).
    pub source: String,
    /// Open connections.
    pub open: u64,
    /// Connections accepted since the source's entry was made.
    pub accepted: u64,
    /// Connections refused since the source's entry was made.
    pub refused: u64,
}

/// Holds one open connection's place in its source's count; frees it when dropped.
#[derive(Debug)]
pub struct SourceGuard {
    limits: Option<Arc<SourceLimits>>,
    key: IpAddr,
}

impl Drop for SourceGuard {
    fn drop(&mut self) {
        if let Some(l) = &self.limits {
            l.release(self.key);
        }
    }
}

/// The key a source is counted under.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl SourceLimits {
    /// A table enforcing `cfg` (a zero field turns that limit off).
    pub fn new(cfg: SourceLimitsConfig) -> Arc<Self> {
        Arc::new(Self {
            cfg,
            table: Mutex::new(Table {
                sources: HashMap::new(),
                sweep_above: MIN_SWEEP,
            }),
        })
    }

    /// Whether every limit is off.
    fn off(&self) -> bool {
        self.cfg.max_connections == 0 && self.cfg.rate_per_sec == 0
    }

    /// Admits a new connection from `ip` at `now`, or says which limit refuses it.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<SourceGuard, SourceRefusal> {
        let key = source_key(ip);
        if self.off() {
            return Ok(SourceGuard { limits: None, key });
        }
        let burst = f64::from(self.cfg.burst.max(1));
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if table.sources.len() >= table.sweep_above {
            self.forget_quiet(&mut table.sources, now);
            table.sweep_above = (2 * table.sources.len()).max(MIN_SWEEP);
        }
        let s = table.sources.entry(key).or_insert(Source {
            open: 0,
            tokens: burst,
            refilled: now,
            accepted: 0,
            refused: 0,
        });
        if self.cfg.max_connections != 0 && s.open as usize >= self.cfg.max_connections {
            s.refused += 1;
            return Err(SourceRefusal::Connections);
        }
        if self.cfg.rate_per_sec != 0 {
            let elapsed = now.saturating_duration_since(s.refilled).as_secs_f64();
            s.tokens = (s.tokens + elapsed * f64::from(self.cfg.rate_per_sec)).min(burst);
            s.refilled = now;
            if s.tokens < 1.0 {
                s.refused += 1;
                return Err(SourceRefusal::Rate);
            }
            s.tokens -= 1.0;
        }
        s.open += 1;
        s.accepted += 1;
        Ok(SourceGuard {
            limits: Some(self.clone()),
            key,
        })
    }

    fn release(&self, key: IpAddr) {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = table.sources.get_mut(&key) {
            s.open = s.open.saturating_sub(1);
        }
    }

    fn forget_quiet(&self, table: &mut HashMap<IpAddr, Source>, now: Instant) {
        let burst = f64::from(self.cfg.burst.max(1));
        let rate = f64::from(self.cfg.rate_per_sec);
        table.retain(|_, s| {
            let refilled = rate == 0.0
                || s.tokens + now.saturating_duration_since(s.refilled).as_secs_f64() * rate >= burst;
            s.open > 0 || !refilled
        });
    }

    /// Sources tracked now.
    pub fn sources(&self) -> usize {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).sources.len()
    }

    /// The `n` sources with the most open connections (then the most refused).
    pub fn top(&self, n: usize) -> Vec<Talker> {
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<(&IpAddr, &Source)> = table.sources.iter().collect();
        all.sort_by_key(|(_, s)| std::cmp::Reverse((s.open, s.refused)));
        all.into_iter()
            .take(n)
            .map(|(ip, s)| Talker {
                source: match ip {
                    IpAddr::V6(v6) => format!("{v6}/64"),
                    v4 => v4.to_string(),
                },
                open: u64::from(s.open),
                accepted: s.accepted,
                refused: s.refused,
            })
            .collect()
    }
}

/// Listener name and its table, while the listener runs.
type Registered = (String, Weak<SourceLimits>);

/// Every live listener's table by listener name, for `/status`.
fn registry() -> &'static Mutex<Vec<Registered>> {
    static REGISTRY: OnceLock<Mutex<Vec<Registered>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// Makes `limits` the table `/status` shows for `listener` (until it is dropped).
pub fn register(listener: &str, limits: &Arc<SourceLimits>) {
    let mut r = registry().lock().unwrap_or_else(|p| p.into_inner());
    r.retain(|(name, w)| w.strong_count() > 0 && name != listener);
    r.push((listener.to_owned(), Arc::downgrade(limits)));
}

/// The `n` top talkers of `listener`, empty when it has no table.
pub fn top_talkers(listener: &str, n: usize) -> Vec<Talker> {
    let r = registry().lock().unwrap_or_else(|p| p.into_inner());
    r.iter()
        .filter(|(name, _)| name == listener)
        .find_map(|(_, w)| w.upgrade())
        .map(|l| l.top(n))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(max_connections: usize, rate_per_sec: u32, burst: u32) -> Arc<SourceLimits> {
        SourceLimits::new(SourceLimitsConfig {
            max_connections,
            rate_per_sec,
            burst,
        })
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn a_source_holds_at_most_its_share_of_open_connections() {
        let l = limits(2, 0, 0);
        let now = Instant::now();
        let g1 = l.admit(A, now).unwrap();
        let _g2 = l.admit(A, now).unwrap();
        assert_eq!(l.admit(A, now).unwrap_err(), SourceRefusal::Connections);
        assert!(l.admit(B, now).is_ok(), "another source has its own share");
        drop(g1);
        assert!(l.admit(A, now).is_ok(), "a closed connection frees its place");
    }

    #[test]
    fn new_connections_beyond_the_burst_wait_for_the_rate() {
        let l = limits(0, 2, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            drop(l.admit(A, t0).unwrap());
        }
        assert_eq!(l.admit(A, t0).unwrap_err(), SourceRefusal::Rate);
        assert_eq!(
            l.admit(A, t0 + Duration::from_millis(400)).unwrap_err(),
            SourceRefusal::Rate,
            "0.8 of a token"
        );
        assert!(
            l.admit(A, t0 + Duration::from_millis(500)).is_ok(),
            "one token after 0.5 s"
        );
        assert_eq!(l.top(1)[0].refused, 2);
    }

    #[test]
    fn an_ipv6_host_counts_as_its_64() {
        let l = limits(1, 0, 0);
        let now = Instant::now();
        let _g = l.admit("2001:db8:1:2::1".parse().unwrap(), now).unwrap();
        assert!(l.admit("2001:db8:1:2:ffff::9".parse().unwrap(), now).is_err());
        assert!(l.admit("2001:db8:1:3::1".parse().unwrap(), now).is_ok());
        let _mapped = l.admit("::ffff:192.0.2.1".parse().unwrap(), now).unwrap();
        assert!(l.admit(A, now).is_err(), "IPv4-mapped is the IPv4 source");
    }

    #[test]
    fn zero_turns_the_limits_off() {
        let l = limits(0, 0, 0);
        let now = Instant::now();
        let guards: Vec<_> = (0..1000).map(|_| l.admit(A, now).unwrap()).collect();
        assert_eq!(guards.len(), 1000);
        assert_eq!(l.sources(), 0, "nothing tracked");
    }

    #[test]
    fn quiet_sources_are_forgotten() {
        let l = limits(10, 0, 0);
        let now = Instant::now();
        for i in 0..200u32 {
            drop(l.admit(IpAddr::V4(i.into()), now).unwrap());
        }
        assert!(l.sources() < 200, "{} sources kept", l.sources());
    }

    #[test]
    fn top_talkers_lead_with_the_most_open_connections() {
        let l = limits(10, 0, 0);
        let now = Instant::now();
        let _a: Vec<_> = (0..3).map(|_| l.admit(A, now).unwrap()).collect();
        let _b = l.admit(B, now).unwrap();
        register("top-talkers-test", &l);
        let top = top_talkers("top-talkers-test", 5);
        assert_eq!(top[0].source, "192.0.2.1");
        assert_eq!((top[0].open, top[1].open), (3, 1));
    }
}
