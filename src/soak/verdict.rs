//! The soak's assertions and report: from the ledger, the members' records, kedge's `/metrics`
//! before and after, its RSS samples and its exit state. Pure: everything comes in as values.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::ledger::{quantile, Class, Counter, Ledger, Outcome, CLASSES};
use super::members::Side;

/// One sample of a Prometheus text exposition.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// Parses a Prometheus text exposition (comments skipped; label values unescaped for `\"`
/// and `\\`). Lines that do not parse are skipped.
pub fn parse_exposition(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let (series, value) = line.trim().rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        None => (series, BTreeMap::new()),
        Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)?),
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

fn parse_labels(mut s: &str) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    while !s.is_empty() {
        let (k, rest) = s.split_once("=\"")?;
        let (mut v, mut i, mut esc) = (String::new(), 0, false);
        for (j, c) in rest.char_indices() {
            i = j;
            match (esc, c) {
                (true, 'n') => (v.push('\n'), esc = false).1,
                (true, c) => (v.push(c), esc = false).1,
                (false, '\\') => esc = true,
                (false, '"') => break,
                (false, c) => v.push(c),
            }
        }
        out.insert(k.trim_start_matches(',').to_owned(), v);
        s = rest.get(i + 1..)?.trim_start_matches(',');
    }
    Some(out)
}

/// Sum of the samples of `name` whose labels include every pair.
pub fn sum(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// The value of `counter` in a scrape.
pub fn counter_value(samples: &[Sample], counter: &Counter) -> f64 {
    match counter {
        Counter::Auth {
            protocol,
            result,
            reason,
        } => sum(
            samples,
            "kedge_auth_total",
            &[("protocol", protocol), ("result", result), ("reason", reason)],
        ),
        Counter::Limit { listener, limit } => sum(
            samples,
            "kedge_limit_exceeded_total",
            &[("listener", listener), ("limit", limit)],
        ),
    }
}

/// What the soak measured besides the ledger.
pub struct Facts<'a> {
    /// `/metrics` at the start and at the end.
    pub before: &'a [Sample],
    /// See `before`.
    pub after: &'a [Sample],
    /// Every id a member saw.
    pub seen: &'a [(String, Side, u64)],
    /// kedge's RSS samples: (seconds since start, KiB).
    pub rss: &'a [(f64, u64)],
    /// Samples before this are warm-up.
    pub warmup_secs: f64,
    /// Allowed RSS growth after warm-up, MiB.
    pub rss_bound_mib: u64,
    /// Lines of kedge's stderr containing "panicked".
    pub panics: Vec<String>,
    /// Whether kedge was still running at the end.
    pub alive: bool,
    /// The reason kedge counts for the lying-`auth_length` bind.
    pub auth_length_reason: &'a str,
    /// Tokens valid requests carried (each must count one `ok`): (HTTP, RPC).
    pub tokens_sent: (u64, u64),
    /// Keytab rolls done: (from kvno, to kvno).
    pub rolls: &'a [(u32, u32)],
    /// Member kills done.
    pub kills: u64,
    /// Wall time of the traffic, seconds.
    pub seconds: f64,
}

/// The report and the failed assertions (empty: the soak passed).
pub fn judge(ledger: &Ledger, f: &Facts) -> (String, Vec<String>) {
    let mut fail = Vec::new();
    let mut r = String::new();
    let delta = |c: &Counter| counter_value(f.after, c) - counter_value(f.before, c);
    let _ = writeln!(
        r,
        "| class | sent | passed | failover | refused | unexpected | counter | counter Δ |"
    );
    let _ = writeln!(r, "|---|---:|---:|---:|---:|---:|---|---:|");
    for class in CLASSES {
        let t = ledger.tally(class);
        let unexpected: u64 = t
            .outcomes
            .iter()
            .filter(|(o, _)| matches!(o, Outcome::Unexpected(_)))
            .map(|(_, n)| n)
            .sum();
        let counter = class.counter(f.auth_length_reason);
        let (cname, d) = match &counter {
            Some(c) => (c.to_string(), format!("{}", delta(c))),
            None => ("—".into(), "—".into()),
        };
        let _ = writeln!(
            r,
            "| {} | {} | {} | {} | {} | {} | {cname} | {d} |",
            class.name(),
            t.sent,
            t.count(&Outcome::Passed),
            t.failovers(),
            t.count(&Outcome::Refused),
            unexpected
        );
        if unexpected > 0 {
            fail.push(format!("{}: {unexpected} unexpected outcomes", class.name()));
        }
        if t.sent == 0 {
            fail.push(format!("{}: none sent", class.name()));
        }
        if let Some(c) = &counter {
            let refused = t.count(&Outcome::Refused) as f64;
            if delta(c) != refused {
                fail.push(format!(
                    "{}: {refused} refused but {c} moved by {}",
                    class.name(),
                    delta(c)
                ));
            }
        }
    }
    judge_tokens(&mut r, &mut fail, ledger, f);
    judge_members(&mut fail, ledger, f);
    judge_rss(&mut r, &mut fail, f);
    let lat = ledger.latencies();
    let _ = writeln!(
        r,
        "\nvalid requests passed: {} in {:.0} s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        f.seconds,
        quantile(&lat, 0.5) as f64 / 1000.0,
        quantile(&lat, 0.99) as f64 / 1000.0,
        lat.last().copied().unwrap_or(0) as f64 / 1000.0
    );
    let failovers: Vec<String> = CLASSES
        .iter()
        .flat_map(|c| {
            ledger
                .tally(*c)
                .outcomes
                .into_iter()
                .filter_map(move |(o, n)| match o {
                    Outcome::Failover(why) => Some(format!("{}: {n} × {why}", c.name())),
                    _ => None,
                })
        })
        .collect();
    let _ = writeln!(
        r,
        "failovers (member killed {} times, one member hanging): {}",
        f.kills,
        if failovers.is_empty() {
            "none".into()
        } else {
            failovers.join("; ")
        }
    );
    let rolls: Vec<String> = f.rolls.iter().map(|(a, b)| format!("{a}→{b}")).collect();
    let _ = writeln!(r, "keytab rolls: {}", rolls.join(", "));
    if f.rolls.len() < 2 {
        fail.push(format!("{} keytab rolls done, want 2", f.rolls.len()));
    }
    if !f.alive {
        fail.push("kedge was not running at the end".into());
    }
    let _ = writeln!(
        r,
        "panics: {}; kedge alive at the end: {}",
        f.panics.len(),
        f.alive
    );
    for p in &f.panics {
        fail.push(format!("kedge panicked: {p}"));
    }
    for e in ledger.examples() {
        let _ = writeln!(r, "unexpected: {e}");
    }
    (r, fail)
}

/// Every token of a valid request counted exactly one `ok`.
fn judge_tokens(r: &mut String, fail: &mut Vec<String>, _ledger: &Ledger, f: &Facts) {
    for (protocol, sent) in [("http", f.tokens_sent.0), ("rpc", f.tokens_sent.1)] {
        let ok = Counter::Auth {
            protocol,
            result: "ok",
            reason: "ok".into(),
        };
        let d = counter_value(f.after, &ok) - counter_value(f.before, &ok);
        let _ = writeln!(r, "\n{protocol}: {sent} valid tokens sent, auth ok Δ {d}");
        if d != sent as f64 {
            fail.push(format!(
                "{protocol}: {sent} valid tokens sent but auth ok moved by {d}"
            ));
        }
    }
}

/// No member saw an id the soak did not send as valid.
fn judge_members(fail: &mut Vec<String>, ledger: &Ledger, f: &Facts) {
    let mut bad = 0;
    for (member, side, id) in f.seen {
        match ledger.class_of(*id) {
            Some(c) if c.valid() => {}
            other => {
                bad += 1;
                if bad <= 5 {
                    let what = other.map_or("an unknown id", Class::name);
                    fail.push(format!("member {member} ({side:?}) saw #{id}: {what}"));
                }
            }
        }
    }
    if bad > 5 {
        fail.push(format!("members saw {bad} requests they should not have"));
    }
}

/// RSS after warm-up stays within the bound.
fn judge_rss(r: &mut String, fail: &mut Vec<String>, f: &Facts) {
    let kib = |v: u64| v as f64 / 1024.0;
    let start = f.rss.first().map_or(0, |s| s.1);
    let warm = f.rss.iter().find(|s| s.0 >= f.warmup_secs).map_or(0, |s| s.1);
    let max_after = f
        .rss
        .iter()
        .filter(|s| s.0 >= f.warmup_secs)
        .map(|s| s.1)
        .max()
        .unwrap_or(0);
    let end = f.rss.last().map_or(0, |s| s.1);
    let _ = writeln!(
        r,
        "RSS MiB: start {:.1}, after {:.0} s warm-up {:.1}, max after warm-up {:.1}, end {:.1} \
         (bound: warm-up + {} MiB; {} samples)",
        kib(start),
        f.warmup_secs,
        kib(warm),
        kib(max_after),
        kib(end),
        f.rss_bound_mib,
        f.rss.len()
    );
    if warm == 0 {
        fail.push("no RSS sample after warm-up".into());
    } else if max_after > warm + f.rss_bound_mib * 1024 {
        fail.push(format!(
            "RSS grew {:.1} MiB after warm-up (bound {} MiB)",
            kib(max_after - warm),
            f.rss_bound_mib
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP kedge_auth_total x\n# TYPE kedge_auth_total counter\n\
        kedge_auth_total{protocol=\"http\",service=\"http\",result=\"fail\",reason=\"ntlm\"} 3\n\
        kedge_auth_total{protocol=\"http\",service=\"other\",result=\"fail\",reason=\"ntlm\"} 2\n\
        kedge_limit_exceeded_total{listener=\"soak-http\",limit=\"request_head\"} 4\n\
        kedge_build_info{version=\"a\\\"b\"} 1\n";

    #[test]
    fn exposition_samples_are_summed_over_unnamed_labels() {
        let s = parse_exposition(TEXT);
        assert_eq!(s.len(), 4);
        let ntlm = Counter::Auth {
            protocol: "http",
            result: "fail",
            reason: "ntlm".into(),
        };
        assert_eq!(counter_value(&s, &ntlm), 5.0);
        let head = Counter::Limit {
            listener: "soak-http",
            limit: "request_head",
        };
        assert_eq!(counter_value(&s, &head), 4.0);
        assert_eq!(s[3].labels["version"], "a\"b");
    }

    fn facts<'a>(before: &'a [Sample], after: &'a [Sample], rss: &'a [(f64, u64)]) -> Facts<'a> {
        Facts {
            before,
            after,
            seen: &[],
            rss,
            warmup_secs: 10.0,
            rss_bound_mib: 32,
            panics: Vec::new(),
            alive: true,
            auth_length_reason: "x",
            tokens_sent: (0, 0),
            rolls: &[(3, 4), (4, 5)],
            kills: 0,
            seconds: 1.0,
        }
    }

    #[test]
    fn a_refusal_the_counter_did_not_see_and_rss_growth_fail_the_soak() {
        let l = Ledger::default();
        l.sent(Class::Ntlm, 1);
        l.ended(Class::Ntlm, 1, Outcome::Refused, None);
        let rss = [(0.0, 10_000), (10.0, 20_000), (20.0, 20_000 + 33 * 1024)];
        let (_, fail) = judge(&l, &facts(&[], &[], &rss));
        assert!(
            fail.iter().any(|f| f.contains("http ntlm: 1 refused but")),
            "{fail:?}"
        );
        assert!(fail.iter().any(|f| f.contains("RSS grew 33.0 MiB")), "{fail:?}");
    }

    #[test]
    fn a_member_seeing_a_refused_request_fails_the_soak() {
        let l = Ledger::default();
        l.sent(Class::Replay, 7);
        l.sent(Class::Fresh, 8);
        let seen = [
            ("m1".to_string(), Side::Http, 8),
            ("m2".to_string(), Side::Http, 7),
        ];
        let mut f = facts(&[], &[], &[(10.0, 1)]);
        f.seen = &seen;
        let (_, fail) = judge(&l, &f);
        assert!(
            fail.iter()
                .any(|f| f.contains("member m2 (Http) saw #7: http replay")),
            "{fail:?}"
        );
        assert!(!fail.iter().any(|f| f.contains("#8")), "{fail:?}");
    }
}
