//! Prints what a CRI runtime says about itself: version, status, images and pods.
//!
//! ```sh
//! cargo run -p cri-client --example info -- unix:///run/containerd/containerd.sock
//! ```

use std::process::ExitCode;

use cri_client::Client;
use cri_client::v1::{PodSandboxState, RuntimeCondition};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Some(endpoint) = std::env::args().nth(1) else {
        eprintln!("usage: info ENDPOINT   (e.g. unix:///run/containerd/containerd.sock)");
        return ExitCode::from(2);
    };
    match print_info(&endpoint).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("info: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn print_info(endpoint: &str) -> cri_client::Result<()> {
    let client = Client::connect(endpoint).await?;

    let version = client.version().await?;
    println!(
        "runtime: {} {} (CRI {})",
        version.runtime_name, version.runtime_version, version.runtime_api_version
    );

    let status = client.status(false).await?;
    let conditions = status.status.map(|s| s.conditions).unwrap_or_default();
    println!("conditions:");
    for RuntimeCondition {
        r#type,
        status,
        reason,
        message,
    } in conditions
    {
        println!("  {type:<14} {status:<5} {reason} {message}", type = r#type);
    }

    let images = client.list_images(None).await?;
    println!("images: {}", images.len());
    for image in images {
        let name = image
            .repo_tags
            .first()
            .or(image.repo_digests.first())
            .unwrap_or(&image.id);
        println!("  {name}  {:.1} MB", image.size as f64 / 1e6);
    }

    let pods = client.list_pod_sandbox(None).await?;
    println!("pods: {}", pods.len());
    for pod in pods {
        let state = PodSandboxState::try_from(pod.state).map_or("unknown", |s| s.as_str_name());
        let (namespace, name) = pod.metadata.map(|m| (m.namespace, m.name)).unwrap_or_default();
        println!("  {:.13}  {namespace}/{name}  {state}", pod.id);
    }
    Ok(())
}
