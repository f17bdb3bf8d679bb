//! `kedge drain <pool> <member>`: drain a member of a running kedge (no new sessions; existing
//! ones finish) through the admin API, with the bearer token of `admin.token_file`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

#[derive(Args, Debug)]
pub struct DrainArgs {
    /// The pool.
    pub pool: String,
    /// The member.
    pub member: String,
    /// Undo: the member takes new sessions again.
    #[arg(long)]
    pub undo: bool,
    /// Admin listener address.
    #[arg(long, default_value = "127.0.0.1:9180")]
    pub admin: String,
    /// The file holding the admin bearer token (the running kedge's `admin.token_file`).
    #[arg(long, env = "KEDGE_ADMIN_TOKEN_FILE")]
    pub token_file: PathBuf,
}

pub fn run(args: DrainArgs) -> anyhow::Result<ExitCode> {
    let token = crate::secret_file::read_secret(&args.token_file, "the admin token file")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let m = rt
        .block_on(crate::admin::drain_member(
            &args.admin,
            &args.pool,
            &args.member,
            !args.undo,
            Some(&token),
        ))
        .with_context(|| {
            format!(
                "{} {}/{} at {}",
                if args.undo { "undrain" } else { "drain" },
                args.pool,
                args.member,
                args.admin
            )
        })?;
    outln!(
        "{}/{}: {} ({} active sessions)",
        args.pool,
        m.name,
        if m.draining {
            "draining"
        } else {
            "taking new sessions"
        },
        m.active_sessions
    )?;
    Ok(ExitCode::SUCCESS)
}
