//! A soak of one kubelet-lite node: pods churned for hours, the agent and the containers'
//! monitors killed with SIGKILL now and then, and what the node holds sampled all along,
//! to find what leaks. The `soak` binary runs it.
//!
//! The node is kubelet-lite standalone with its embedded runtime-core ([`node`]): pods come
//! from static manifests, on bridge `kltsoak0` and subnet `198.18.120.0/24`, the node at
//! `198.18.121.1`, its files under `/var/lib/kubelet-lite-soak` ([`args::DEFAULT_BASE_DIR`]).
//! Waves of `--pods` pods are created and deleted ([`run`]); every `--kill-every`, in turn,
//! kubelet-lite is killed and started again with the same arguments (its pods must be
//! adopted), or a random container's `runtime-core-monitor` is killed. Each sample
//! ([`sample`], read by [`probe`]) holds kubelet-lite's RSS, PSS and open descriptors, the
//! monitors' (summed), the redb store's size, and counts: containers, sandboxes, monitors,
//! mounts, pinned network namespaces, veths, IP reservations, cgroups, pod and log
//! directories, kubelet-lite's child processes. [`verdict`] says whether every count came back to its baseline after the
//! last drain and whether memory and the store grew over the drains; [`plot`] draws it.
//!
//! Outputs in `--output`: `soak.csv`, `soak.png`, `soak.txt` (the summary) and a copy of
//! kubelet-lite's log.

pub mod args;
pub mod node;
pub mod plot;
pub mod probe;
pub mod run;
pub mod sample;
pub mod verdict;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::Context;

use crate::kubelet_lite::MONITOR_BINARY;

/// The environment variable naming the base of the harness's scratch directories.
const BASE_DIR_VARIABLE: &str = "KUBELET_LITE_TEST_DIR";

/// The `soak` program: exit 0 when nothing leaked, 1 when something did, 2 when the soak
/// could not run.
pub fn main() -> ExitCode {
    let args = match args::Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(err) => {
            eprintln!("soak: {err:#}");
            return ExitCode::from(2);
        }
    };
    // The harness takes its base directory from the environment only, read as
    // directories are made: a soak runs itself again with the variable set.
    if std::env::var_os(BASE_DIR_VARIABLE).as_deref() != Some(args.base_dir.as_os_str()) {
        return run_again_with_base_dir(&args.base_dir);
    }
    let result = crate::require_root()
        .map_err(anyhow::Error::from)
        .and_then(|()| kubelet_lite_binary(&args))
        .and_then(|binary| run::run(&args, &binary));
    match result {
        Ok(verdict) => {
            println!("\n{}", verdict.summary);
            if verdict.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(err) => {
            eprintln!("soak: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run_again_with_base_dir(base_dir: &std::path::Path) -> ExitCode {
    let status = std::env::current_exe().and_then(|exe| {
        Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env(BASE_DIR_VARIABLE, base_dir)
            .status()
    });
    match status {
        Ok(status) => ExitCode::from(status.code().and_then(|code| u8::try_from(code).ok()).unwrap_or(2)),
        Err(err) => {
            eprintln!("soak: running again with {BASE_DIR_VARIABLE}: {err}");
            ExitCode::from(2)
        }
    }
}

/// `--kubelet-lite`, or the kubelet-lite beside the soak binary; its monitor must be
/// beside it.
fn kubelet_lite_binary(args: &args::Args) -> anyhow::Result<PathBuf> {
    let binary = match &args.kubelet_lite {
        Some(binary) => binary.clone(),
        None => std::env::current_exe()
            .context("finding the soak binary")?
            .with_file_name("kubelet-lite"),
    };
    anyhow::ensure!(
        binary.is_file() && binary.with_file_name(MONITOR_BINARY).is_file(),
        "{} or {MONITOR_BINARY} beside it does not exist (cargo build -p kubelet-lite -p runtime-core --bins, or --kubelet-lite BINARY)",
        binary.display()
    );
    Ok(binary)
}
