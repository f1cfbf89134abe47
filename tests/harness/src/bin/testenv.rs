//! Brings up the local test environment (a registry holding the busybox test images and a
//! private containerd using it through mirrors), runs one command inside it, and tears
//! everything down again.
//!
//! The command sees `CRI_ENDPOINT` (the runtime's socket), `TEST_IMAGE_BUSYBOX`,
//! `TEST_IMAGE_PAUSE` and `TEST_REGISTRY`:
//!
//! ```sh
//! cargo run -p test-harness --bin testenv -- sh -c 'crictl --runtime-endpoint "$CRI_ENDPOINT" images'
//! ```

use std::process::{Command, ExitCode};

use anyhow::Context;
use test_harness::{Containerd, Registry, push_test_images};

fn main() -> ExitCode {
    let command: Vec<String> = std::env::args().skip(1).skip_while(|a| a == "--").collect();
    if command.is_empty() {
        eprintln!("usage: testenv [--] COMMAND [ARGS...]");
        return ExitCode::from(2);
    }
    match run(&command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("testenv: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: &[String]) -> anyhow::Result<ExitCode> {
    test_harness::require_root()?;
    test_harness::require_tools(&[
        "docker-registry",
        "containerd",
        "runc",
        "busybox",
        "bridge",
        "host-local",
    ])?;
    let registry = Registry::start()?;
    let images = push_test_images(&registry)?;
    let containerd = Containerd::start(&registry, &images)?;
    let status = Command::new(&command[0])
        .args(&command[1..])
        .env("CRI_ENDPOINT", containerd.endpoint())
        .env("TEST_IMAGE_BUSYBOX", &images.busybox)
        .env("TEST_IMAGE_PAUSE", &images.pause)
        .env("TEST_REGISTRY", registry.addr())
        .status()
        .with_context(|| format!("running {}", command[0]))?;
    drop(containerd);
    drop(registry);
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}
