//! Runs the upstream Kubernetes 1.20 `[NodeConformance]` e2e specs against one node:
//! starts a local registry with the suite's images, a control plane and the node, runs
//! `ginkgo` with `e2e.test`, prints the passed, failed and unfinished counts, the failing
//! specs and the wall time, and tears everything down. `scripts/conformance.sh` builds
//! what it needs and runs it.
//!
//! ```sh
//! conformance --node kubelet-lite --kubelet-lite target/debug/kubelet-lite
//! conformance --node kubelet            # the real kubelet 1.20 on containerd
//! ```
//!
//! Options: `--node kubelet-lite|kubelet-lite-containerd|kubelet` (default kubelet-lite),
//! `--kubelet-lite BINARY`, `--nodes N` (parallel ginkgo nodes, default 4), `--skip-slow`,
//! `--skip-machine-limits` (the specs no node passes on this kind of machine, listed with
//! their reasons in `test_harness::conformance::MACHINE_LIMITS`),
//! `--focus REGEX`, `--timeout MINUTES` (default 120), `--output DIR` (default /tmp: the
//! summary goes to `conformance-NODE.txt`, ginkgo's output to `conformance-NODE.log`, the
//! JUnit reports to `conformance-NODE-junit/`). Exits 0 when every selected spec passed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};

use test_harness::cli::Flags;
use test_harness::conformance::{self, NodeKind, RunOptions, Suite};
use test_harness::scratch::ScratchDir;
use test_harness::{ControlPlane, Registry};

const USAGE: &str = "usage: conformance [--node kubelet-lite|kubelet-lite-containerd|kubelet] \
[--kubelet-lite BINARY] [--nodes N] [--skip-slow] [--skip-machine-limits] [--focus REGEX] [--timeout MINUTES] [--output DIR]";

struct Args {
    node: NodeKind,
    kubelet_lite: Option<PathBuf>,
    parallel: u32,
    skip_slow: bool,
    skip_machine_limits: bool,
    focus: Option<String>,
    timeout: Duration,
    output: PathBuf,
}

fn parse_args(args: impl Iterator<Item = String>) -> anyhow::Result<Args> {
    let mut parsed = Args {
        node: NodeKind::KubeletLite,
        kubelet_lite: None,
        parallel: 4,
        skip_slow: false,
        skip_machine_limits: false,
        focus: None,
        timeout: Duration::from_secs(120 * 60),
        output: PathBuf::from("/tmp"),
    };
    let mut flags = Flags::new(args);
    while let Some(flag) = flags.next_flag() {
        let mut value = || flags.value(&flag);
        match flag.name() {
            "--node" => {
                let name = value()?;
                parsed.node = NodeKind::parse(&name).with_context(|| format!("unknown node {name:?}"))?;
            }
            "--kubelet-lite" => parsed.kubelet_lite = Some(PathBuf::from(value()?)),
            "--nodes" => parsed.parallel = value()?.parse().context("--nodes")?,
            "--skip-slow" => parsed.skip_slow = true,
            "--skip-machine-limits" => parsed.skip_machine_limits = true,
            "--focus" => parsed.focus = Some(value()?),
            "--timeout" => parsed.timeout = Duration::from_secs(60 * value()?.parse::<u64>().context("--timeout")?),
            "--output" => parsed.output = PathBuf::from(value()?),
            "-h" | "--help" => bail!("{USAGE}"),
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if parsed.node.is_kubelet_lite() && parsed.kubelet_lite.is_none() {
        bail!("--node {} needs --kubelet-lite BINARY\n{USAGE}", parsed.node.name());
    }
    Ok(parsed)
}

fn main() -> ExitCode {
    let result = parse_args(std::env::args().skip(1)).and_then(|args| run(&args));
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("conformance: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Copies kubelet-lite and its monitor out of the target directory, so that a rebuild
/// during the run cannot mix two versions.
fn private_copy(binary: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    let monitor = test_harness::kubelet_lite::MONITOR_BINARY;
    let copy = dir.join("kubelet-lite");
    std::fs::copy(binary, &copy).with_context(|| format!("copying {}", binary.display()))?;
    let beside = binary.with_file_name(monitor);
    std::fs::copy(&beside, dir.join(monitor)).with_context(|| format!("copying {}", beside.display()))?;
    Ok(copy)
}

fn run(args: &Args) -> anyhow::Result<bool> {
    test_harness::require_root()?;
    let suite = Suite::find()?;
    suite.image_sources().check()?;
    let name = args.node.name();
    std::fs::create_dir_all(&args.output).with_context(|| format!("creating {}", args.output.display()))?;
    let summary_file = args.output.join(format!("conformance-{name}.txt"));

    let bin_dir = ScratchDir::create("conformance").context("creating a scratch directory")?;
    let kubelet_lite = match &args.kubelet_lite {
        Some(binary) if args.node.is_kubelet_lite() => Some(private_copy(binary, bin_dir.path())?),
        _ => None,
    };
    let registry = Registry::start()?;
    test_harness::push_test_images(&registry)?;
    test_harness::conformance_images::push_conformance_images(&registry, &suite.image_sources())?;
    let control_plane = ControlPlane::start()?;
    let node = conformance::start_node(&args.node, &control_plane, &registry, kubelet_lite.as_deref())?;

    let mut options = RunOptions::new(control_plane.admin_kubeconfig(), &args.output);
    options.parallel = args.parallel;
    options.skip_slow = args.skip_slow;
    options.skip_machine_limits = args.skip_machine_limits;
    options.timeout = args.timeout;
    options.report_dir = args.output.join(format!("conformance-{name}-junit"));
    options.log_file = args.output.join(format!("conformance-{name}.log"));
    if let Some(focus) = &args.focus {
        options.focus = focus.clone();
    }
    let report = conformance::run_suite(&suite, &options)?;
    drop(node);
    drop(control_plane);
    drop(registry);

    let title = format!(
        "Kubernetes 1.20.2 node conformance on {name} (ginkgo {} nodes, focus {}, skip {})",
        options.parallel,
        options.focus,
        options.skip()
    );
    let mut text = report.render(&title);
    if options.skip_machine_limits {
        text.push_str("skipped as limits of this machine:\n");
        for (spec, reason) in conformance::MACHINE_LIMITS {
            text.push_str(&format!("  {spec}: {reason}\n"));
        }
    }
    std::fs::write(&summary_file, &text).with_context(|| format!("writing {}", summary_file.display()))?;
    println!(
        "\n{text}summary in {}, ginkgo output in {}",
        summary_file.display(),
        options.log_file.display()
    );
    Ok(report.failed.is_empty() && report.unfinished().is_empty() && !report.passed.is_empty())
}
