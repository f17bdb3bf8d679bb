//! `kedge status`: the admin endpoint's `/status` as a table, like
//! `Get-ClientAccessServer -IncludeAlternateServiceAccountCredentialStatus`. Exits 1 when the
//! instance is not ready (the reasons printed on stderr), 2 (an error) when it cannot be read,
//! so scripts and probes can use it as they are. With several `--admin` addresses (replicas):
//! one table of every replica's credentials, exit 1 when they disagree or one is unreachable.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::admin::Status;
use crate::asa::replicas;
use crate::asa::spn_plan::ROLL_ASA_WARNING;

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Admin listener address; several (comma-separated or repeated) compare replicas.
    #[arg(long, default_value = "127.0.0.1:9180", value_delimiter = ',')]
    pub admin: Vec<String>,
    /// Print the raw JSON (one instance only).
    #[arg(long)]
    pub json: bool,
}

fn roll_asa_warning(statuses: &[&Status]) -> Option<String> {
    let why: Vec<&String> = statuses.iter().flat_map(|s| s.members_validate.iter()).collect();
    let first = why.first()?;
    Some(format!(
        "\nWARNING: the CAS members validate Kerberos too ({first}{}).\n{}\n",
        if why.len() > 1 {
            format!(" and {} more", why.len() - 1)
        } else {
            String::new()
        },
        ROLL_ASA_WARNING
    ))
}

pub fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if args.admin.len() > 1 {
        return several(&rt, &args.admin);
    }
    let admin = &args.admin[0];
    let status = rt
        .block_on(crate::admin::fetch_status(admin))
        .with_context(|| format!("cannot read /status from {admin}"))?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&status)?)?;
    } else {
        out!("{}", crate::admin::render_status_table(&status))?;
        if let Some(w) = roll_asa_warning(&[&status]) {
            out!("{w}")?;
        }
    }
    if status.ready {
        return Ok(ExitCode::SUCCESS);
    }
    errln!("kedge at {admin} is not ready: {}", status.not_ready.join("; "));
    Ok(ExitCode::from(1))
}

fn several(rt: &tokio::runtime::Runtime, admins: &[String]) -> anyhow::Result<ExitCode> {
    let all = rt.block_on(replicas::fetch_all(admins));
    outln!("Alternate service account credentials on {} replicas", all.len())?;
    out!("{}", replicas::render(&all))?;
    let statuses: Vec<&Status> = all.iter().filter_map(|r| r.status.as_ref().ok()).collect();
    if let Some(w) = roll_asa_warning(&statuses) {
        out!("{w}")?;
    }
    let problems = replicas::disagreements(&all);
    if problems.is_empty() {
        outln!("\nall {} replicas hold the same credentials", all.len())?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!()?;
    for p in &problems {
        outln!("PROBLEM: {p}")?;
    }
    Ok(ExitCode::from(1))
}
