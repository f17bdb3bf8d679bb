//! The `kedge` command line: the binary's edge, where `anyhow` is allowed. Each subcommand lives in
//! a file named for it.

#[macro_use]
mod output;
pub use output::is_broken_pipe;
mod asa_cmd;
mod asa_staged;
mod demo_cmd;
mod demo_site;
mod drain_cmd;
mod keytab_add;
mod keytab_cmd;
mod keytab_prune;
mod run_cmd;
mod spn_cmd;
mod spn_ldap;
mod status_cmd;
mod token_cmd;

use clap::{Parser, Subcommand};

/// kedge — Kerberos-validating load balancer for Exchange Client Access arrays.
#[derive(Parser, Debug)]
#[command(name = "kedge", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the proxy with a configuration file.
    Run(run_cmd::RunArgs),
    /// Run a self-contained demo: generated ASA keytab, TLS certificate and backends on loopback.
    Demo(demo_cmd::DemoArgs),
    /// Show listeners, pools, members and ASA credentials of a running kedge.
    Status(status_cmd::StatusArgs),
    /// Drain a pool member of a running kedge (or undo it), with the admin token.
    Drain(drain_cmd::DrainArgs),
    /// Inspect and write ASA keytabs (MIT format).
    #[command(subcommand)]
    Keytab(keytab_cmd::KeytabCmd),
    /// Check a Kerberos token the way the proxy would.
    #[command(subcommand)]
    Token(token_cmd::TokenCmd),
    /// The ASA's SPNs: the setspn plan, and a check that a keytab covers them.
    #[command(subcommand)]
    Spn(spn_cmd::SpnCmd),
    /// The ASA credential life cycle: password roll through kpasswd.
    #[command(subcommand)]
    Asa(Box<asa_cmd::AsaCmd>),
}

/// Parses arguments and runs the command; returns the process exit code.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => run_cmd::run(a),
        Command::Demo(a) => demo_cmd::run(a),
        Command::Status(a) => status_cmd::run(a),
        Command::Drain(a) => drain_cmd::run(a),
        Command::Keytab(c) => keytab_cmd::run(c),
        Command::Token(c) => token_cmd::run(c),
        Command::Spn(c) => spn_cmd::run(c),
        Command::Asa(c) => asa_cmd::run(*c),
    };
    match result {
        Ok(code) => code,
        // The reader of our output went away (`kedge … | head`): what it wanted it has.
        Err(e) if output::is_broken_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            errln!("kedge: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
