//! `kedge status`: the status as a readable table, in the spirit of Exchange's
//! `Get-ClientAccessServer -IncludeAlternateServiceAccountCredentialStatus`.

use std::fmt::Write;

use super::status::{Credential, MemberStatus, Status};

/// Left-aligned columns sized to their widest cell.
struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(header: &[&str]) -> Self {
        Self {
            rows: vec![header.iter().map(|s| (*s).to_owned()).collect()],
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self, out: &mut String) {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in &self.rows {
            let mut line = String::from("  ");
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    let _ = write!(line, "{cell:<w$}  ", w = widths[c]);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
}

/// `YYYY-MM-DD HH:MM:SSZ` for seconds since the Unix epoch (UTC).
pub fn format_unix_time(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn format_duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

fn credential_row(slot: &str, c: Option<&Credential>) -> Vec<String> {
    match c {
        Some(c) => vec![
            slot.into(),
            c.principal.clone(),
            c.kvno.to_string(),
            c.enctypes.join(","),
            format_unix_time(c.loaded_at),
        ],
        None => vec![slot.into(), "(none)".into(), "-".into(), "-".into(), "-".into()],
    }
}

fn member_state(m: &MemberStatus) -> String {
    let mut s = Vec::new();
    if m.retiring {
        s.push("retiring".to_owned());
    } else if m.draining {
        s.push("draining".to_owned());
    }
    if m.weight == 0 {
        s.push("weight 0".to_owned());
    }
    if let Some(ms) = m.ejected_ms {
        s.push(format!("ejected {:.1}s", ms as f64 / 1000.0));
    }
    if s.is_empty() {
        s.push(if m.up { "serving" } else { "-" }.to_owned());
    }
    s.join(", ")
}

/// Renders the status as plain-text tables: process, ASA credentials (Latest/Previous with kvno
/// and load time), listeners, then every pool member with its health.
pub fn render_status_table(s: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "kedge {}  started {}  (up {})  {}",
        s.version,
        format_unix_time(s.started_at),
        format_duration(s.now.saturating_sub(s.started_at)),
        if s.ready {
            "READY".to_owned()
        } else {
            format!("NOT READY: {}", s.not_ready.join("; "))
        }
    );

    out.push_str("\nAlternate service account credentials\n");
    let mut t = Table::new(&["Slot", "Principal", "Kvno", "Enctypes", "Loaded"]);
    t.row(credential_row("Latest", s.credentials.latest.as_ref()));
    t.row(credential_row("Previous", s.credentials.previous.as_ref()));
    t.render(&mut out);

    if !s.listeners.is_empty() {
        out.push_str("\nListeners\n");
        let mut t = Table::new(&["Name", "Kind", "Listen", "TLS", "Connections"]);
        for l in &s.listeners {
            t.row(vec![
                l.name.clone(),
                l.kind.clone(),
                l.listen.clone(),
                if l.tls { "yes" } else { "no" }.into(),
                l.connections_active.to_string(),
            ]);
        }
        t.render(&mut out);
        let talkers: Vec<_> = s
            .listeners
            .iter()
            .flat_map(|l| l.top_talkers.iter().map(move |t| (l, t)))
            .collect();
        if !talkers.is_empty() {
            out.push_str("\nTop talkers\n");
            let mut t = Table::new(&["Listener", "Source", "Open", "Accepted", "Refused"]);
            for (l, talker) in talkers {
                t.row(vec![
                    l.name.clone(),
                    talker.source.clone(),
                    talker.open.to_string(),
                    talker.accepted.to_string(),
                    talker.refused.to_string(),
                ]);
            }
            t.render(&mut out);
        }
    }

    if let Some(r) = &s.replay_store {
        out.push_str("\nShared replay store\n");
        let mut t = Table::new(&[
            "Store",
            "State",
            "Since",
            "Fail",
            "Calls fresh/replay/error/timeout",
            "Last error",
        ]);
        t.row(vec![
            r.store.clone(),
            r.state.clone(),
            if r.since == 0 {
                "-".into()
            } else {
                format_unix_time(r.since)
            },
            r.fail.clone(),
            format!(
                "{}/{}/{}/{}",
                r.calls.fresh, r.calls.replay, r.calls.error, r.calls.timeout
            ),
            r.last_error.clone().unwrap_or_default(),
        ]);
        t.render(&mut out);
    }

    out.push_str("\nBackends\n");
    let mut t = Table::new(&[
        "Pool",
        "Member",
        "Address",
        "Weight",
        "Health",
        "State",
        "Sessions",
        "Last error",
    ]);
    for p in &s.pools {
        for m in &p.members {
            let health = if m.checked {
                m.health.clone()
            } else {
                format!("{} (unchecked)", m.health)
            };
            t.row(vec![
                p.name.clone(),
                m.name.clone(),
                format!("{}:{}", m.address, m.port),
                m.weight.to_string(),
                health,
                member_state(m),
                m.active_sessions.to_string(),
                m.last_error.clone().unwrap_or_default(),
            ]);
        }
    }
    t.render(&mut out);

    let c = &s.counters;
    let _ = writeln!(
        out,
        "\nAuth ok {}  fail {}  (NTLM refused {}, replays {})  connections {} open / {} total  sessions {}  failovers {}  keytab reloads {} ok / {} rejected",
        c.auth_ok, c.auth_fail, c.ntlm_rejected, c.replay_rejected, c.connections_active, c.connections_total,
        c.sessions_active, c.backend_failovers, c.keytab_reloads_ok, c.keytab_reloads_rejected
    );
    out
}

#[cfg(test)]
mod tests {
    use super::format_unix_time;

    #[test]
    fn unix_times_format_as_utc_dates() {
        assert_eq!(format_unix_time(0), "1970-01-01 00:00:00Z");
        assert_eq!(format_unix_time(951_782_400), "2000-02-29 00:00:00Z");
        assert_eq!(format_unix_time(1_714_564_800), "2024-05-01 12:00:00Z");
    }
}
