//! Brings up the local test environment (a registry holding the busybox test images and a
//! private CRI runtime using it through mirrors: containerd, or runtime-core with
//! `--runtime-core BINARY`), runs one command inside it, and tears everything down again.
//!
//! The command sees `CRI_ENDPOINT` (the runtime's socket), `TEST_IMAGE_BUSYBOX`,
//! `TEST_IMAGE_PAUSE` and `TEST_REGISTRY`:
//!
//! ```sh
//! cargo run -p test-harness --bin testenv -- sh -c 'crictl --runtime-endpoint "$CRI_ENDPOINT" images'
//! cargo run -p test-harness --bin testenv -- --runtime-core target/debug/runtime-core -- sh -c '...'
//! ```

use std::process::{Command, ExitCode};

use anyhow::Context;
use std::path::PathBuf;

use test_harness::{Containerd, Registry, RuntimeCore, RuntimeCoreOptions, push_test_images};

/// The pod network of a runtime-core started here.
const RUNTIME_CORE_NETWORK: (&str, &str) = ("kltenv0", "198.18.30.0/24");

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let runtime_core = match args.first().map(String::as_str) {
        Some("--runtime-core") if args.len() > 1 => {
            let binary = PathBuf::from(args.remove(1));
            args.remove(0);
            Some(binary)
        }
        _ => None,
    };
    let command: Vec<String> = args.into_iter().skip_while(|a| a == "--").collect();
    if command.is_empty() {
        eprintln!("usage: testenv [--runtime-core BINARY] [--] COMMAND [ARGS...]");
        return ExitCode::from(2);
    }
    match run(runtime_core, &command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("testenv: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// A runtime the command runs against; dropping it cleans it up.
enum Runtime {
    Containerd(Containerd),
    RuntimeCore(RuntimeCore),
}

fn run(runtime_core: Option<PathBuf>, command: &[String]) -> anyhow::Result<ExitCode> {
    test_harness::require_root()?;
    test_harness::require_tools(&["docker-registry", "runc", "busybox", "bridge", "host-local"])?;
    let registry = Registry::start()?;
    let images = push_test_images(&registry)?;
    let runtime = match runtime_core {
        Some(binary) => {
            let (bridge, subnet) = RUNTIME_CORE_NETWORK;
            let options = RuntimeCoreOptions::with_network(bridge, subnet);
            Runtime::RuntimeCore(RuntimeCore::start(&binary, &registry, options)?)
        }
        None => Runtime::Containerd(Containerd::start(&registry, &images)?),
    };
    let endpoint = match &runtime {
        Runtime::Containerd(containerd) => containerd.endpoint(),
        Runtime::RuntimeCore(runtime_core) => runtime_core.endpoint(),
    };
    let status = Command::new(&command[0])
        .args(&command[1..])
        .env("CRI_ENDPOINT", endpoint)
        .env("TEST_IMAGE_BUSYBOX", &images.busybox)
        .env("TEST_IMAGE_PAUSE", &images.pause)
        .env("TEST_REGISTRY", registry.addr())
        .status()
        .with_context(|| format!("running {}", command[0]))?;
    drop(runtime);
    drop(registry);
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}
