//! `kubelet-lite`: the node agent's command line. Everything else lives in the library.

use anyhow::Context;
use clap::Parser;
use kubelet_lite::config::{Args, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_ansi(std::io::stdout().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let settings = Settings::load(Args::parse()).context("reading the configuration")?;
    raise_open_file_limit();
    kubelet_lite::agent::run(settings, shutdown_signal())
        .await
        .context("running the node agent")
}

/// Raises the soft limit on open files to the hard one, as Go programs such as the
/// kubelet do at start: every connection to the kubelet API takes a descriptor, and the
/// usual soft limit of 1024 would cap them far below what the server allows.
fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && let Err(err) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        tracing::warn!(soft, hard, error = %err, "cannot raise the open file limit");
    }
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
