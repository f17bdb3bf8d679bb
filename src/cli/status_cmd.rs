//! `kedge status`: the admin endpoint's `/status` as a table, like
//! `Get-ClientAccessServer -IncludeAlternateServiceAccountCredentialStatus`. Exits 1 when the
//! instance is not ready (the reasons printed on stderr), 2 (an error) when it cannot be read,
//! so scripts and probes can use it as they are.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Admin listener address.
    #[arg(long, default_value = "127.0.0.1:9180")]
    pub admin: String,
    /// Print the raw JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let status = rt
        .block_on(crate::admin::fetch_status(&args.admin))
        .with_context(|| format!("cannot read /status from {}", args.admin))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", crate::admin::render_status_table(&status));
    }
    if status.ready {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "kedge at {} is not ready: {}",
        args.admin,
        status.not_ready.join("; ")
    );
    Ok(ExitCode::from(1))
}
