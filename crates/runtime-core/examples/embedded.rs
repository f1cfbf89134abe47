//! Embeds runtime-core in a program: opens the runtime in a private directory, serves CRI on
//! a socket from a background task, and runs one container through it with `cri-client`,
//! the way kubelet-lite runs its embedded runtime.
//!
//! Needs root, runc and the CNI plugins. The image comes from an OCI image layout (a
//! directory or archive, imported offline) or from a registry:
//!
//! ```sh
//! cargo run -p runtime-core --example embedded -- busybox-layout.tar example.com/busybox:1
//! cargo run -p runtime-core --example embedded -- --pull docker.io/library/busybox:latest
//! ```

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use cri_client::v1::{
    ContainerConfig, ContainerMetadata, ContainerState, ImageSpec, LinuxPodSandboxConfig, LinuxSandboxSecurityContext,
    NamespaceMode, NamespaceOption, PodSandboxConfig, PodSandboxMetadata,
};
use runtime_core::config::Config;
use runtime_core::daemon::Runtime;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = std::env::temp_dir().join(format!("runtime-core-embedded-{}", std::process::id()));
    let config = Config {
        root: dir.join("root"),
        state: dir.join("state"),
        socket: dir.join("cri.sock"),
        ..Config::default()
    };
    let socket = config.socket.clone();
    let runtime = Runtime::open(config).context("opening the runtime")?;

    let image = match args.as_slice() {
        [flag, image] if flag == "--pull" => image.clone(),
        [layout, name] => {
            let records = runtime.images().import(&PathBuf::from(layout), None, &|_| {}).await?;
            records
                .first()
                .map(|r| r.id.to_string())
                .with_context(|| format!("no image in {layout} for {name}"))?
        }
        _ => bail!("usage: embedded LAYOUT NAME | embedded --pull IMAGE"),
    };

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        runtime
            .serve(async {
                let _ = stopped.await;
            })
            .await
    });
    let client = connect(&socket).await?;
    let result = run_container(&client, &image).await;
    let _ = stop.send(());
    server.await??;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Waits for the embedded server's socket, then connects.
async fn connect(socket: &std::path::Path) -> anyhow::Result<cri_client::Client> {
    for _ in 0..100 {
        if socket.exists() {
            return Ok(cri_client::Client::connect(&format!("unix://{}", socket.display())).await?);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("the embedded runtime did not start serving")
}

/// Pulls `image` if needed, runs one container printing a greeting, prints its exit code,
/// and removes the pod.
async fn run_container(client: &cri_client::Client, image: &str) -> anyhow::Result<()> {
    let image_ref = client
        .pull_image(image, None, None)
        .await
        .or_else(|_| Ok::<_, anyhow::Error>(image.to_string()))?;
    let sandbox = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: "embedded".into(),
            uid: "embedded-1".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: "embedded".into(),
        // The host's network: the example works without a CNI configuration.
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: NamespaceMode::Node as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pod = client.run_pod_sandbox(sandbox.clone(), "").await?;
    let config = ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: "hello".into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: image_ref,
            ..Default::default()
        }),
        command: vec![
            "sh".into(),
            "-c".into(),
            "echo hello from an embedded runtime-core".into(),
        ],
        ..Default::default()
    };
    let container = client.create_container(&pod, config, sandbox).await?;
    client.start_container(&container).await?;
    let exit_code = loop {
        let status = client
            .container_status(&container, false)
            .await?
            .status
            .context("no status")?;
        if status.state == ContainerState::ContainerExited as i32 {
            break status.exit_code;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!("container {container:.13} exited with {exit_code}");
    client.remove_pod_sandbox(&pod).await?;
    Ok(())
}
