//! `kedge run --config FILE`: the proxy. SIGHUP re-reads the config (validated first; a bad file
//! is refused with its problems and the running config stays); SIGTERM/SIGINT drain and stop.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::{Config, Scheduler};
use crate::serve::{bind, Bound, Kedge};

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The configuration file (TOML).
    #[arg(long, short)]
    pub config: PathBuf,
    /// Check the configuration and the keytab, then exit.
    #[arg(long)]
    pub check: bool,
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(&args.config)?;
    crate::observe::logging::init(&cfg.logging);
    if args.check {
        let pre = crate::preflight::check(&cfg);
        for w in &pre.warnings {
            errln!("warning: {w}");
        }
        if !pre.ok() {
            for p in &pre.problems {
                errln!("error: {p}");
            }
            anyhow::bail!(
                "{}: kedge would not start ({} problem{})",
                args.config.display(),
                pre.problems.len(),
                if pre.problems.len() == 1 { "" } else { "s" }
            );
        }
        outln!(
            "{}: configuration is valid; keytab {} holds {} keys; certificates, keys, CAs and routes load",
            args.config.display(),
            cfg.kerberos.keytab.display(),
            pre.keys
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    match cfg.runtime.scheduler {
        // Connections, and the accept loops that take them, run on the per-core workers
        // (Kedge::start); this runtime keeps health checks, the keytab watcher and admin.
        Scheduler::PerCore => builder.worker_threads(1),
        Scheduler::WorkStealing => builder.worker_threads(cfg.runtime.worker_count()),
    };
    let rt = builder.enable_all().build().context("starting the runtime")?;
    rt.block_on(serve_until_signalled(cfg, &args.config))?;
    Ok(ExitCode::SUCCESS)
}

/// Runs kedge with `cfg` until SIGTERM/SIGINT, reloading `path` on SIGHUP and reopening the
/// access log on SIGUSR1.
pub async fn serve_until_signalled(cfg: Config, path: &Path) -> anyhow::Result<()> {
    let bound = bind(&cfg).await?;
    serve_bound_until_signalled(cfg, bound, path).await
}

/// [`serve_until_signalled`] on listeners already bound.
pub async fn serve_bound_until_signalled(cfg: Config, bound: Bound, path: &Path) -> anyhow::Result<()> {
    let kedge = Kedge::start(cfg, bound).await?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    loop {
        tokio::select! {
            _ = hup.recv() => reload(&kedge, path),
            _ = usr1.recv() => kedge.reopen_access_log(),
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("shutting down: draining connections");
    kedge.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

fn reload(kedge: &Kedge, path: &Path) {
    match Config::load(path) {
        Err(e) => {
            crate::observe::config_reload(false);
            tracing::error!(error = %e, "reload refused; the running configuration stays");
        }
        Ok(cfg) => match kedge.reload(cfg) {
            Ok(r) => {
                crate::observe::config_reload(true);
                crate::observe::reloaded(crate::observe::Reloaded::Config, std::time::SystemTime::now());
                tracing::info!(
                    keys_reloaded = r.keys_reloaded,
                    tls_reloaded = ?r.tls_reloaded,
                    "configuration reloaded (pools and members applied)"
                );
                for what in r.needs_restart {
                    tracing::warn!(%what, "changed in the file but applied only at restart");
                }
            }
            Err(e) => {
                crate::observe::config_reload(false);
                tracing::error!(error = %e, "reload refused; the running configuration stays");
            }
        },
    }
}
