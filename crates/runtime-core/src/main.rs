//! The `runtime-core` daemon and its image commands; the logic lives in the library.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime_core::cli::Cli::parse().run().await
}
