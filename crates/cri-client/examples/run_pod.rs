//! Runs one pod through any CRI runtime, as a kubelet would, and shows what it did: the
//! image pull, the sandbox and its IP, a container that prints a greeting, its exit code
//! and its CRI log. Everything it creates is removed at the end.
//!
//! ```sh
//! cargo run -p cri-client --example run_pod -- unix:///run/containerd/containerd.sock busybox:latest
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use cri_client::Client;
use cri_client::v1::{
    ContainerConfig, ContainerMetadata, ContainerState, ImageSpec, PodSandboxConfig, PodSandboxMetadata,
};

/// How long the example waits for its container to finish.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [endpoint, image] = args.as_slice() else {
        eprintln!("usage: run_pod ENDPOINT IMAGE   (e.g. unix:///run/containerd/containerd.sock busybox:latest)");
        return ExitCode::from(2);
    };
    match run_pod(endpoint, image).await {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("run_pod: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the pod and returns its container's exit code.
async fn run_pod(endpoint: &str, image: &str) -> Result<i32, Box<dyn std::error::Error>> {
    let client = Client::connect(endpoint).await?;
    let version = client.version().await?;
    println!("runtime     {} {}", version.runtime_name, version.runtime_version);

    let started = Instant::now();
    let image_ref = client.pull_image(image, None, None).await?;
    println!("image       {image} -> {image_ref} ({:.2?})", started.elapsed());

    let log_directory = std::env::temp_dir().join(format!("run-pod-{}", std::process::id()));
    std::fs::create_dir_all(&log_directory)?;
    let sandbox_config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: "hello".into(),
            uid: format!("run-pod-{}", std::process::id()),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: "hello".into(),
        log_directory: log_directory.display().to_string(),
        ..Default::default()
    };
    let started = Instant::now();
    let pod = client.run_pod_sandbox(sandbox_config.clone(), "").await?;
    let status = client.pod_sandbox_status(&pod, false).await?;
    let ip = status.status.and_then(|s| s.network).map(|n| n.ip).unwrap_or_default();
    println!("pod         {:.13} ip {ip} ({:.2?})", pod, started.elapsed());

    let result = run_container(&client, &pod, &image_ref, sandbox_config, &log_directory).await;

    client.stop_pod_sandbox(&pod).await?;
    client.remove_pod_sandbox(&pod).await?;
    let _ = std::fs::remove_dir_all(&log_directory);
    println!("cleaned up  pod removed");
    result
}

/// Creates and starts the greeting container, waits for it and prints its log.
async fn run_container(
    client: &Client,
    pod: &str,
    image_ref: &str,
    sandbox_config: PodSandboxConfig,
    log_directory: &std::path::Path,
) -> Result<i32, Box<dyn std::error::Error>> {
    let config = ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: "greeter".into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: image_ref.into(),
            ..Default::default()
        }),
        command: vec!["sh".into(), "-c".into()],
        args: vec![
            "echo hello from $(hostname); echo pod address: $(ip -4 -o addr show eth0 | awk '{print $4}')".into(),
        ],
        log_path: "greeter.log".into(),
        ..Default::default()
    };
    let container = client.create_container(pod, config, sandbox_config).await?;
    client.start_container(&container).await?;
    let deadline = Instant::now() + RUN_TIMEOUT;
    let exit_code = loop {
        let status = client
            .container_status(&container, false)
            .await?
            .status
            .ok_or("no container status")?;
        if status.state == ContainerState::ContainerExited as i32 {
            break status.exit_code;
        }
        if Instant::now() > deadline {
            return Err("the container did not finish in time".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!("container   {container:.13} exited with {exit_code}");
    let log = std::fs::read_to_string(PathBuf::from(log_directory).join("greeter.log"))?;
    println!("log (CRI format):");
    for line in log.lines() {
        println!("  {line}");
    }
    client.remove_container(&container).await?;
    Ok(exit_code)
}
