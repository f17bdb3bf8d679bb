//! What the soak sent and what came back, per traffic class, and the counter each refusal must
//! move in kedge's `/metrics`. Pure bookkeeping: the judging is in [`super::verdict`].

use std::collections::BTreeMap;
use std::sync::Mutex;

/// A kind of traffic the soak sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// HTTP: a fresh token on a new connection.
    Fresh,
    /// HTTP: one token, then requests without one on the same connection (connection-bound).
    Session,
    /// HTTP: a fresh token minted with the kvno before the last roll.
    Previous,
    /// HTTP: a token kedge already accepted, again on a new connection.
    Replay,
    /// HTTP: a fresh token with its last byte (the authenticator's checksum) flipped.
    Mutated,
    /// HTTP: the first half of a fresh token.
    Truncated,
    /// HTTP: an NTLM NEGOTIATE on a route that refuses NTLM.
    Ntlm,
    /// HTTP: a head sent a line every half second, never finished.
    Slowloris,
    /// HTTP: a head over `max_header_bytes`.
    Oversized,
    /// RPC: a bind with a fresh auth-16 token.
    RpcBind,
    /// RPC: a bind kedge already admitted, again.
    RpcReplay,
    /// RPC: a bind whose token's last byte is flipped.
    RpcMutated,
    /// RPC: an NTLM bind on a listener that refuses NTLM.
    RpcNtlm,
    /// RPC: a bind whose `frag_length` says more than `max_bind_bytes`.
    RpcOverLength,
    /// RPC: a bind whose `frag_length` says more than is ever sent.
    RpcShortSend,
    /// RPC: a bind whose `auth_length` says more than the PDU holds. Its header does not check
    /// out, so kedge has no `call_id` to answer a bind_nak with: it closes the connection.
    RpcAuthLength,
}

/// Every class, in report order.
pub const CLASSES: [Class; 16] = [
    Class::Fresh,
    Class::Session,
    Class::Previous,
    Class::Replay,
    Class::Mutated,
    Class::Truncated,
    Class::Ntlm,
    Class::Slowloris,
    Class::Oversized,
    Class::RpcBind,
    Class::RpcReplay,
    Class::RpcMutated,
    Class::RpcNtlm,
    Class::RpcOverLength,
    Class::RpcShortSend,
    Class::RpcAuthLength,
];

/// The `/metrics` counter a refused class moves, once per attempt.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Counter {
    /// `kedge_auth_total{protocol, result, reason}` (summed over services).
    Auth {
        /// `http` or `rpc`.
        protocol: &'static str,
        /// `fail` (every refusal; `ok` for an accepted token).
        result: &'static str,
        /// The refusal reason.
        reason: String,
    },
    /// `kedge_limit_exceeded_total{listener, limit}`.
    Limit {
        /// The listener name.
        listener: &'static str,
        /// The limit.
        limit: &'static str,
    },
}

impl std::fmt::Display for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Counter::Auth {
                protocol,
                result,
                reason,
            } => write!(f, "auth{{{protocol},{result},{reason}}}"),
            Counter::Limit { listener, limit } => write!(f, "limit{{{listener},{limit}}}"),
        }
    }
}

impl Class {
    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Class::Fresh => "http fresh token",
            Class::Session => "http session (per connection)",
            Class::Previous => "http previous kvno",
            Class::Replay => "http replay",
            Class::Mutated => "http mutated token",
            Class::Truncated => "http truncated token",
            Class::Ntlm => "http ntlm",
            Class::Slowloris => "http slowloris",
            Class::Oversized => "http oversized head",
            Class::RpcBind => "rpc bind",
            Class::RpcReplay => "rpc replayed bind",
            Class::RpcMutated => "rpc mutated token",
            Class::RpcNtlm => "rpc ntlm bind",
            Class::RpcOverLength => "rpc frag_length > max",
            Class::RpcShortSend => "rpc frag_length > sent",
            Class::RpcAuthLength => "rpc auth_length lies",
        }
    }

    /// Whether kedge must let it through.
    pub fn valid(self) -> bool {
        matches!(
            self,
            Class::Fresh | Class::Session | Class::Previous | Class::RpcBind
        )
    }

    /// The counter a refusal of this class moves (`None` for valid classes). `auth_length_reason`
    /// is the `RpcError::reason` kedge gives the lying `auth_length` bind.
    pub fn counter(self, auth_length_reason: &str) -> Option<Counter> {
        let http = |reason: &str| Counter::Auth {
            protocol: "http",
            result: "fail",
            reason: reason.into(),
        };
        let rpc = |reason: &str| Counter::Auth {
            protocol: "rpc",
            result: "fail",
            reason: reason.into(),
        };
        let limit = |listener, limit| Counter::Limit { listener, limit };
        Some(match self {
            Class::Fresh | Class::Session | Class::Previous | Class::RpcBind => return None,
            Class::Replay => http("KRB_AP_ERR_REPEAT"),
            Class::Mutated => http("KRB_AP_ERR_MODIFIED"),
            Class::Truncated => http("malformed"),
            Class::Ntlm => http("ntlm"),
            Class::Slowloris => limit("soak-http", "header_timeout"),
            Class::Oversized => limit("soak-http", "request_head"),
            Class::RpcReplay => rpc("KRB_AP_ERR_REPEAT"),
            Class::RpcMutated => rpc("KRB_AP_ERR_MODIFIED"),
            Class::RpcNtlm => rpc("ntlm"),
            Class::RpcOverLength => limit("soak-rpc", "max_bind_bytes"),
            Class::RpcShortSend => limit("soak-rpc", "bind_timeout"),
            Class::RpcAuthLength => rpc(auth_length_reason),
        })
    }
}

/// How one attempt ended, as the client saw it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// 2xx, or a bind_ack from the member.
    Passed,
    /// A documented failover answer to a valid request: `502`/`503`/`504`, or an RPC
    /// association closed before the bind_ack while a member was being killed.
    Failover(String),
    /// The refusal the class expects (401, 431, a close, a bind_nak; a close for a bind whose
    /// header lies about its auth verifier).
    Refused,
    /// Anything else: an assertion failure.
    Unexpected(String),
}

/// Counts of one class.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Attempts made (requests; a session counts each of its requests).
    pub sent: u64,
    /// Outcomes.
    pub outcomes: BTreeMap<Outcome, u64>,
}

impl Tally {
    /// Attempts that ended as `o`.
    pub fn count(&self, o: &Outcome) -> u64 {
        self.outcomes.get(o).copied().unwrap_or(0)
    }

    /// Failover answers, all reasons.
    pub fn failovers(&self) -> u64 {
        self.outcomes
            .iter()
            .filter(|(o, _)| matches!(o, Outcome::Failover(_)))
            .map(|(_, n)| n)
            .sum()
    }
}

/// Everything the traffic tasks record; shared between them.
#[derive(Default)]
pub struct Ledger {
    inner: Mutex<LedgerInner>,
}

#[derive(Default)]
struct LedgerInner {
    tallies: BTreeMap<Class, Tally>,
    /// Class of every id sent (ids are unique across classes).
    ids: BTreeMap<u64, Class>,
    /// Latency of passed valid requests, microseconds.
    latencies: Vec<u64>,
    /// Up to 20 examples of unexpected outcomes.
    examples: Vec<String>,
}

impl Ledger {
    /// Notes that attempt `id` of `class` is about to be sent.
    pub fn sent(&self, class: Class, id: u64) {
        let mut g = self.inner.lock().unwrap();
        g.tallies.entry(class).or_default().sent += 1;
        g.ids.insert(id, class);
    }

    /// Records how attempt `id` of `class` ended, and the latency of a passed one.
    pub fn ended(&self, class: Class, id: u64, outcome: Outcome, micros: Option<u64>) {
        let mut g = self.inner.lock().unwrap();
        if let (Outcome::Passed, Some(us)) = (&outcome, micros) {
            g.latencies.push(us);
        }
        if let Outcome::Unexpected(what) = &outcome {
            if g.examples.len() < 20 {
                let line = format!("{} #{id}: {what}", class.name());
                g.examples.push(line);
            }
        }
        *g.tallies
            .entry(class)
            .or_default()
            .outcomes
            .entry(outcome)
            .or_default() += 1;
    }

    /// The class id `id` was sent as.
    pub fn class_of(&self, id: u64) -> Option<Class> {
        self.inner.lock().unwrap().ids.get(&id).copied()
    }

    /// The tally of `class`.
    pub fn tally(&self, class: Class) -> Tally {
        let g = self.inner.lock().unwrap();
        g.tallies.get(&class).cloned().unwrap_or_default()
    }

    /// Latencies of passed valid requests, sorted (microseconds).
    pub fn latencies(&self) -> Vec<u64> {
        let mut v = self.inner.lock().unwrap().latencies.clone();
        v.sort_unstable();
        v
    }

    /// The recorded examples of unexpected outcomes.
    pub fn examples(&self) -> Vec<String> {
        self.inner.lock().unwrap().examples.clone()
    }
}

/// The `p`-quantile (0..=1) of sorted `v` (0 when empty).
pub fn quantile(v: &[u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i.min(v.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_classes_move_no_refusal_counter_and_every_invalid_one_does() {
        for c in CLASSES {
            assert_eq!(c.valid(), c.counter("x").is_none(), "{}", c.name());
        }
    }

    #[test]
    fn the_ledger_keeps_ids_outcomes_and_latencies_of_passed_requests() {
        let l = Ledger::default();
        l.sent(Class::Fresh, 1);
        l.ended(Class::Fresh, 1, Outcome::Passed, Some(900));
        l.sent(Class::Fresh, 2);
        l.ended(Class::Fresh, 2, Outcome::Failover("504".into()), Some(5));
        l.sent(Class::Replay, 3);
        l.ended(Class::Replay, 3, Outcome::Unexpected("200".into()), None);
        let t = l.tally(Class::Fresh);
        assert_eq!((t.sent, t.count(&Outcome::Passed), t.failovers()), (2, 1, 1));
        assert_eq!(l.class_of(3), Some(Class::Replay));
        assert_eq!(l.latencies(), vec![900]);
        assert_eq!(l.examples(), vec!["http replay #3: 200".to_string()]);
    }

    #[test]
    fn quantiles_pick_from_the_sorted_values() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!((quantile(&v, 0.5), quantile(&v, 0.99)), (51, 99));
        assert_eq!(quantile(&[], 0.5), 0);
    }
}
