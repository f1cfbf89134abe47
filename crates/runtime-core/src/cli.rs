//! The `runtime-core` command line: serve CRI, import images, list images.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Config;
use crate::daemon::Runtime;
use crate::image::import::ImportEvent;

/// A CRI container runtime.
#[derive(Debug, Parser)]
#[command(name = "runtime-core", version, about)]
pub struct Cli {
    /// Configuration file (TOML); missing keys take their defaults.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Directory for persistent data (overrides the configuration's `root`).
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    /// CRI socket path (overrides the configuration's `socket`).
    #[arg(long, global = true)]
    socket: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How logs are written to stderr.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the CRI RuntimeService and ImageService on the socket.
    Serve,
    /// Import the images of an OCI image layout (a directory or a tar archive).
    /// The daemon must not be running on the same root.
    Import {
        /// The layout directory or archive.
        path: PathBuf,
        /// Repository for images the layout names by tag only.
        #[arg(long)]
        name: Option<String>,
    },
    /// List the images in the store.
    Images,
}

impl Cli {
    /// Runs the command.
    pub async fn run(self) -> anyhow::Result<()> {
        init_logging(self.log_format);
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(root) = self.root {
            config.root = root;
        }
        if let Some(socket) = self.socket {
            config.socket = socket;
        }
        let root = config.root.clone();
        let runtime = Runtime::open(config).with_context(|| {
            format!(
                "opening the runtime at {} (is a runtime-core daemon using it?)",
                root.display()
            )
        })?;
        match self.command {
            Command::Serve => runtime.serve(shutdown_signal()).await?,
            Command::Import { path, name } => import(&runtime, &path, name.as_deref()).await?,
            Command::Images => {
                for image in runtime.images().list()? {
                    let names = image
                        .repo_tags
                        .iter()
                        .chain(&image.repo_digests)
                        .cloned()
                        .collect::<Vec<_>>();
                    println!("{}  {:>10}  {}", &image.id.hex()[..12], image.size, names.join(" "));
                }
            }
        }
        Ok(())
    }
}

/// Imports a layout, with a progress bar on a terminal and log lines otherwise.
async fn import(runtime: &Runtime, path: &std::path::Path, name: Option<&str>) -> anyhow::Result<()> {
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let progress = |event: ImportEvent| match (&bar, event) {
        (Some(bar), ImportEvent::Image { name, layer_bytes }) => {
            bar.set_message(name);
            bar.set_length(layer_bytes);
            bar.set_position(0);
        }
        (Some(bar), ImportEvent::Layer { bytes }) => bar.inc(bytes),
        (Some(bar), ImportEvent::Done { name, id }) => bar.println(format!("imported {name} ({id})")),
        (None, ImportEvent::Image { name, layer_bytes }) => tracing::info!(%name, layer_bytes, "importing"),
        (None, ImportEvent::Layer { bytes }) => tracing::info!(bytes, "layer stored"),
        (None, ImportEvent::Done { name, id }) => tracing::info!(%name, %id, "imported"),
    };
    let imported = runtime.images().import(path, name, &progress).await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    println!("imported {} image(s) from {}", imported.len(), path.display());
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
}
