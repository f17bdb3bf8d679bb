//! The credential state across kedge replicas, as Exchange's
//! `Get-ClientAccessServer -IncludeAlternateServiceAccountCredentialStatus` shows it across CAS
//! members: every replica's Latest/Previous kvno, enctypes and load time from its `/status`,
//! whether they agree, and waiting until all hold a new kvno (`asa roll prepare --wait-replicas`).

use std::fmt::Write;
use std::time::{Duration, Instant};

use crate::admin::{fetch_status, Status};

/// One replica's answer.
#[derive(Debug)]
pub struct Replica {
    /// Its admin address.
    pub admin: String,
    /// Its status, or why it could not be read.
    pub status: Result<Status, String>,
}

/// Every replica behind `admins`: a name that resolves to several addresses (a Kubernetes
/// headless Service, `kedge-admin.kedge.svc:9180`) stands for each of them; a name that does
/// not resolve is kept as it is (fetching it then reports why).
pub async fn expand(admins: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for a in admins {
        match tokio::net::lookup_host(a.as_str()).await {
            Ok(addrs) => {
                let mut addrs: Vec<String> = addrs.map(|x| x.to_string()).collect();
                addrs.sort();
                addrs.dedup();
                if addrs.len() > 1 {
                    out.extend(addrs);
                } else {
                    out.push(a.clone());
                }
            }
            Err(_) => out.push(a.clone()),
        }
    }
    out
}

/// Reads every replica's `/status` at once.
pub async fn fetch_all(admins: &[String]) -> Vec<Replica> {
    let futs = admins.iter().map(|a| async move {
        Replica {
            admin: a.clone(),
            status: fetch_status(a).await.map_err(|e| e.to_string()),
        }
    });
    futures_util::future::join_all(futs).await
}

fn slot(c: Option<&crate::admin::Credential>) -> Option<(u32, Vec<String>)> {
    c.map(|c| (c.kvno, c.enctypes.clone()))
}

/// What is wrong across the replicas: unreachable ones, and any difference in the Latest or
/// Previous kvno or enctypes. Empty when they all agree.
pub fn disagreements(replicas: &[Replica]) -> Vec<String> {
    let mut out = Vec::new();
    let mut reference: Option<(&str, &Status)> = None;
    for r in replicas {
        match &r.status {
            Err(e) => out.push(format!("{} unreachable: {e}", r.admin)),
            Ok(s) => match reference {
                None => reference = Some((&r.admin, s)),
                Some((ra, rs)) => {
                    for (name, mine, theirs) in [
                        ("Latest", &s.credentials.latest, &rs.credentials.latest),
                        ("Previous", &s.credentials.previous, &rs.credentials.previous),
                    ] {
                        if slot(mine.as_ref()) != slot(theirs.as_ref()) {
                            let show = |c: &Option<crate::admin::Credential>| {
                                c.as_ref()
                                    .map(|c| format!("kvno {} ({})", c.kvno, c.enctypes.join(",")))
                                    .unwrap_or_else(|| "none".into())
                            };
                            out.push(format!(
                                "{name} differs: {} has {}, {ra} has {}",
                                r.admin,
                                show(mine),
                                show(theirs)
                            ));
                        }
                    }
                }
            },
        }
    }
    out
}

/// Replicas whose Latest kvno is not `kvno` (or that cannot be read), with what they hold.
pub fn lagging(replicas: &[Replica], kvno: u32) -> Vec<String> {
    replicas
        .iter()
        .filter_map(|r| match &r.status {
            Err(e) => Some(format!("{} (unreachable: {e})", r.admin)),
            Ok(s) => match &s.credentials.latest {
                Some(c) if c.kvno == kvno => None,
                Some(c) => Some(format!("{} (Latest kvno {})", r.admin, c.kvno)),
                None => Some(format!("{} (no keys)", r.admin)),
            },
        })
        .collect()
}

/// Polls every replica until each reports `kvno` as its Latest credential, or `timeout` passes;
/// `Err` lists those still lagging.
pub async fn wait_for_kvno(
    admins: &[String],
    kvno: u32,
    timeout: Duration,
    poll: Duration,
) -> Result<Vec<Replica>, Vec<String>> {
    let deadline = Instant::now() + timeout;
    loop {
        let all = fetch_all(admins).await;
        let behind = lagging(&all, kvno);
        if behind.is_empty() {
            return Ok(all);
        }
        if Instant::now() + poll > deadline {
            return Err(behind);
        }
        tokio::time::sleep(poll).await;
    }
}

/// One line per replica: its Latest and Previous kvno, enctypes and load times.
pub fn render(replicas: &[Replica]) -> String {
    let mut rows: Vec<[String; 6]> = vec![[
        "Replica".into(),
        "Latest".into(),
        "Loaded".into(),
        "Previous".into(),
        "Loaded".into(),
        "Enctypes".into(),
    ]];
    let cred = |c: &Option<crate::admin::Credential>| match c {
        Some(c) => (
            c.kvno.to_string(),
            crate::admin::format_unix_time(c.loaded_at),
            c.enctypes.join(","),
        ),
        None => ("-".into(), "-".into(), String::new()),
    };
    for r in replicas {
        match &r.status {
            Ok(s) => {
                let (lk, ll, le) = cred(&s.credentials.latest);
                let (pk, pl, pe) = cred(&s.credentials.previous);
                let enctypes = if pe.is_empty() || pe == le {
                    le
                } else {
                    format!("{le} / {pe}")
                };
                rows.push([r.admin.clone(), lk, ll, pk, pl, enctypes]);
            }
            Err(e) => rows.push([
                r.admin.clone(),
                "UNREACHABLE".into(),
                e.clone(),
                String::new(),
                String::new(),
                String::new(),
            ]),
        }
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let mut line = String::from("  ");
        for (c, cell) in r.iter().enumerate() {
            let _ = write!(line, "{cell:<w$}  ", w = widths[c]);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::{Credential, CredentialStatus};

    fn status(latest: Option<u32>, previous: Option<u32>) -> Status {
        let c = |k: u32| Credential {
            principal: "EXCHASA$@CONTOSO.COM".into(),
            kvno: k,
            enctypes: vec!["aes256-cts-hmac-sha1-96".into()],
            loaded_at: 1_714_564_800,
        };
        Status {
            version: "0".into(),
            started_at: 0,
            now: 0,
            ready: true,
            not_ready: vec![],
            listeners: vec![],
            pools: vec![],
            credentials: CredentialStatus {
                latest: latest.map(c),
                previous: previous.map(c),
            },
            members_validate: vec![],
            replay_store: None,
            counters: Default::default(),
        }
    }

    fn replica(name: &str, s: Result<Status, &str>) -> Replica {
        Replica {
            admin: name.into(),
            status: s.map_err(str::to_string),
        }
    }

    #[test]
    fn agreeing_replicas_have_no_disagreements() {
        let r = [
            replica("a:9180", Ok(status(Some(5), Some(4)))),
            replica("b:9180", Ok(status(Some(5), Some(4)))),
        ];
        assert!(disagreements(&r).is_empty());
        assert!(lagging(&r, 5).is_empty());
        let t = render(&r);
        assert!(t.contains("a:9180") && t.contains("2024-05-01 12:00:00Z"), "{t}");
    }

    #[test]
    fn a_stale_or_unreachable_replica_is_named() {
        let r = [
            replica("a:9180", Ok(status(Some(6), Some(5)))),
            replica("b:9180", Ok(status(Some(5), Some(4)))),
            replica("c:9180", Err("connect refused")),
        ];
        let d = disagreements(&r);
        assert_eq!(d.len(), 3, "{d:?}");
        assert!(d[0].contains("Latest differs: b:9180 has kvno 5"), "{d:?}");
        assert!(d[2].contains("c:9180 unreachable"), "{d:?}");
        assert_eq!(lagging(&r, 6).len(), 2);
        assert!(render(&r).contains("UNREACHABLE"));
    }
}
