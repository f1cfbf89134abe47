//! The upstream Kubernetes node conformance suite: the `[NodeConformance]` specs of the
//! e2e suite (`e2e.test` under `ginkgo`) of the same 1.20.2 source tree as the control
//! plane, run against one node of a test [`ControlPlane`], and their results.
//!
//! `scripts/build-kubernetes.sh --conformance` builds the suite into
//! [`DEFAULT_SUITE_DIR`] (or the directory named by `KUBELET_LITE_CONFORMANCE_DIR`);
//! `scripts/conformance.sh` builds everything and runs the `conformance` binary, which
//! brings up a [`Registry`] with the suite's images ([`crate::conformance_images`]), a
//! control plane and the node under test ([`NodeKind`]), then calls [`run_suite`].
//!
//! What runs: `ginkgo -nodes=N` (4 by default) over `e2e.test --provider=skeleton`,
//! focused on [`FOCUS`] and skipping [`SKIP`] (and `[Slow]` on request). Before the real
//! run, a dry run of the same selection lists the specs it will run, so that specs the
//! run never finished (a ginkgo node that died, the suite's timeout) are counted too. The
//! results come from the JUnit files each ginkgo node writes.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::conformance_images::{self, ImageSources};
use crate::{
    Containerd, ContainerdOptions, ControlPlane, Kubelet, KubeletLite, KubeletLiteOptions, KubeletOptions, Missing,
    Registry,
};

/// Where `scripts/build-kubernetes.sh --conformance` caches the suite.
pub const DEFAULT_SUITE_DIR: &str = "/var/cache/kubelet-lite/kubernetes-1.20.2/conformance";

/// The environment variable naming another suite directory.
pub const SUITE_DIR_VARIABLE: &str = "KUBELET_LITE_CONFORMANCE_DIR";

/// The specs that run: those tagged for node conformance.
pub const FOCUS: &str = r"\[NodeConformance\]";

/// The specs skipped among them: those that must run alone or break the node, known to
/// be flaky, need a feature a cluster may lack, or are for Windows.
pub const SKIP: &[&str] = &[
    r"\[Serial\]",
    r"\[Disruptive\]",
    r"\[Flaky\]",
    r"\[Feature:[^\]]+\]",
    "Windows",
];

/// Skipped too with [`RunOptions::skip_slow`]: specs that take minutes each.
pub const SKIP_SLOW: &str = r"\[Slow\]";

/// Skipped too with [`RunOptions::skip_machine_limits`]: specs that fail on this kind of
/// machine whatever the node (the real kubelet 1.20 on containerd fails them here too),
/// each with the reason.
pub const MACHINE_LIMITS: &[(&str, &str)] = &[
    (
        r"PrivilegedPod \[NodeConformance\] should enable privileged commands",
        "it adds a dummy network link, and this kernel has no dummy link type \
         (`ip link add dummy1 type dummy` fails on the host too)",
    ),
    (
        r"should be able to pull from private registry with secret",
        "it pulls gcr.io/authenticated-image-pulling with Google credentials; the machine \
         has no internet and no such registry",
    ),
];

/// The suite's binaries and the programs its images are built from.
#[derive(Debug, Clone)]
pub struct Suite {
    dir: PathBuf,
}

impl Suite {
    /// The suite in `KUBELET_LITE_CONFORMANCE_DIR`, else [`DEFAULT_SUITE_DIR`]; fails with
    /// [`Missing`] naming what is absent and how to build it.
    pub fn find() -> Result<Suite, Missing> {
        let dir = std::env::var_os(SUITE_DIR_VARIABLE)
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SUITE_DIR));
        let suite = Suite { dir };
        let missing: Vec<String> = [suite.e2e_test(), suite.ginkgo()]
            .into_iter()
            .filter(|path| !path.is_file())
            .map(|path| {
                format!(
                    "{} (build it with scripts/build-kubernetes.sh --conformance)",
                    path.display()
                )
            })
            .collect();
        if missing.is_empty() {
            Ok(suite)
        } else {
            Err(Missing::new(missing))
        }
    }

    /// `e2e.test`.
    pub fn e2e_test(&self) -> PathBuf {
        self.dir.join("e2e.test")
    }

    /// `ginkgo` (v1, the CLI vendored in the tree).
    pub fn ginkgo(&self) -> PathBuf {
        self.dir.join("ginkgo")
    }

    /// The programs the images carry.
    pub fn image_sources(&self) -> ImageSources {
        ImageSources {
            agnhost: self.dir.join("agnhost"),
            nnp: self.dir.join("nnp"),
            porter: self.dir.join("porter"),
            debian: conformance_images::debian_packages_dir(),
        }
    }
}

/// How the suite runs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The admin kubeconfig of the cluster.
    pub kubeconfig: PathBuf,
    /// Parallel ginkgo nodes. Default 4.
    pub parallel: u32,
    /// Also skip `[Slow]` specs. Default false.
    pub skip_slow: bool,
    /// Also skip the [`MACHINE_LIMITS`] specs. Default false.
    pub skip_machine_limits: bool,
    /// The focus regular expression. Default [`FOCUS`].
    pub focus: String,
    /// Where the JUnit reports go (emptied first).
    pub report_dir: PathBuf,
    /// Where ginkgo's output is copied (it is printed too).
    pub log_file: PathBuf,
    /// The suite's timeout (ginkgo `-timeout`). Default 2 hours.
    pub timeout: Duration,
}

impl RunOptions {
    /// The defaults, for the cluster of `kubeconfig`, reports and log under `output`.
    pub fn new(kubeconfig: &Path, output: &Path) -> RunOptions {
        RunOptions {
            kubeconfig: kubeconfig.to_path_buf(),
            parallel: 4,
            skip_slow: false,
            skip_machine_limits: false,
            focus: FOCUS.into(),
            report_dir: output.join("junit"),
            log_file: output.join("ginkgo.log"),
            timeout: Duration::from_secs(2 * 3600),
        }
    }

    /// The skip regular expression.
    pub fn skip(&self) -> String {
        let mut skip: Vec<&str> = SKIP.to_vec();
        if self.skip_slow {
            skip.push(SKIP_SLOW);
        }
        if self.skip_machine_limits {
            skip.extend(MACHINE_LIMITS.iter().map(|(spec, _)| *spec));
        }
        skip.join("|")
    }

    /// The flags of `e2e.test` itself (after ginkgo's `--`).
    fn e2e_flags(&self, report_dir: &Path) -> Vec<String> {
        vec![
            "--provider=skeleton".into(),
            format!("--kubeconfig={}", self.kubeconfig.display()),
            format!("--report-dir={}", report_dir.display()),
            // Not docker: the node's runtime is reached over CRI.
            "--container-runtime=remote".into(),
            // Gathering logs needs SSH to the nodes.
            "--disable-log-dump=true".into(),
        ]
    }
}

/// The outcome of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuiteReport {
    /// The specs the selection holds (the dry run's).
    pub selected: Vec<String>,
    /// The specs that passed.
    pub passed: Vec<String>,
    /// The specs that failed (failure, panic, timeout), and suite set-up or tear-down
    /// that failed (`BeforeSuite`, `AfterSuite`).
    pub failed: Vec<String>,
    /// How long ginkgo ran.
    pub wall: Duration,
    /// ginkgo's exit code (`None`: killed by a signal).
    pub exit_code: Option<i32>,
}

impl SuiteReport {
    /// Selected specs that neither passed nor failed.
    pub fn unfinished(&self) -> Vec<&str> {
        (self.selected.iter())
            .filter(|name| !self.passed.contains(name) && !self.failed.contains(name))
            .map(String::as_str)
            .collect()
    }

    /// The summary, as printed: the counts and wall time, then the failing and unfinished
    /// specs one per line.
    pub fn render(&self, title: &str) -> String {
        let unfinished = self.unfinished();
        let wall = self.wall.as_secs();
        let mut text = format!(
            "{title}\n{} specs selected: {} passed, {} failed, {} unfinished; wall time {}m{:02}s (ginkgo exit {})\n",
            self.selected.len(),
            self.passed.len(),
            self.failed.len(),
            unfinished.len(),
            wall / 60,
            wall % 60,
            self.exit_code
                .map_or_else(|| "signal".to_string(), |code| code.to_string()),
        );
        if !self.failed.is_empty() {
            text.push_str("failed:\n");
            for name in &self.failed {
                text.push_str(&format!("  {name}\n"));
            }
        }
        if !unfinished.is_empty() {
            text.push_str("unfinished:\n");
            for name in unfinished {
                text.push_str(&format!("  {name}\n"));
            }
        }
        text
    }
}

/// Lists the specs the selection of `options` holds: a dry run of `e2e.test` (no spec
/// body runs, nothing is created in the cluster).
pub fn list_specs(suite: &Suite, options: &RunOptions, repo_list: &Path) -> anyhow::Result<Vec<String>> {
    let report_dir = options.report_dir.with_extension("dry-run");
    reset_dir(&report_dir)?;
    let output = Command::new(suite.e2e_test())
        .arg("--ginkgo.dryRun")
        .arg(format!("--ginkgo.focus={}", options.focus))
        .arg(format!("--ginkgo.skip={}", options.skip()))
        .arg("--ginkgo.noColor")
        .args(options.e2e_flags(&report_dir))
        .env("KUBE_TEST_REPO_LIST", repo_list)
        .stdin(Stdio::null())
        .output()
        .context("running e2e.test --ginkgo.dryRun")?;
    let cases = read_reports(&report_dir)?;
    if cases.is_empty() {
        bail!(
            "the dry run of e2e.test reported no spec ({}):\n{}",
            output.status,
            tail(&String::from_utf8_lossy(&output.stdout), 30)
        );
    }
    let _ = fs::remove_dir_all(&report_dir);
    Ok(cases
        .into_iter()
        .filter(|case| case.outcome != Outcome::Skipped)
        .map(|case| case.name)
        .collect())
}

/// Runs the selection of `options` under ginkgo against the cluster, printing ginkgo's
/// output and copying it to [`RunOptions::log_file`]; reads the outcome from the JUnit
/// reports.
pub fn run_suite(suite: &Suite, options: &RunOptions) -> anyhow::Result<SuiteReport> {
    let repo_list = options.report_dir.with_extension("repo-list.yaml");
    if let Some(parent) = repo_list.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fs::write(&repo_list, conformance_images::repo_list_yaml())
        .with_context(|| format!("writing {}", repo_list.display()))?;
    let selected = list_specs(suite, options, &repo_list)?;
    crate::note(format!(
        "{} specs selected (focus {}, skip {})",
        selected.len(),
        options.focus,
        options.skip()
    ));

    reset_dir(&options.report_dir)?;
    let mut command = Command::new(suite.ginkgo());
    command
        .arg(format!("-nodes={}", options.parallel))
        .arg("-noColor")
        .arg(format!("-focus={}", options.focus))
        .arg(format!("-skip={}", options.skip()))
        .arg(format!("-timeout={}s", options.timeout.as_secs()))
        .arg(suite.e2e_test())
        .arg("--")
        .args(options.e2e_flags(&options.report_dir))
        .env("KUBE_TEST_REPO_LIST", &repo_list)
        .stdin(Stdio::null());
    let started = Instant::now();
    let status = run_teed(command, &options.log_file)?;
    let wall = started.elapsed();

    let mut passed = Vec::new();
    let mut failed = Vec::new();
    for case in read_reports(&options.report_dir)? {
        match case.outcome {
            Outcome::Passed => passed.push(case.name),
            Outcome::Failed => failed.push(case.name),
            Outcome::Skipped => {}
        }
    }
    passed.sort();
    failed.sort();
    Ok(SuiteReport {
        selected,
        passed,
        failed,
        wall,
        exit_code: status.code(),
    })
}

/// Runs `command`, its standard output and error both printed and appended to `log`,
/// line by line.
fn run_teed(mut command: Command, log: &Path) -> anyhow::Result<ExitStatus> {
    let file = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let file = Arc::new(Mutex::new(file));
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {:?}", command.get_program()))?;
    let copiers: Vec<_> = [
        child.stdout.take().map(|out| Box::new(out) as Box<dyn Read + Send>),
        child.stderr.take().map(|err| Box::new(err) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|stream| {
        let file = Arc::clone(&file);
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                let _ = std::io::stdout().lock().write_all(&line);
                if let Ok(mut file) = file.lock() {
                    let _ = file.write_all(&line);
                }
                line.clear();
            }
        })
    })
    .collect();
    let status = child.wait().context("waiting for ginkgo")?;
    for copier in copiers {
        let _ = copier.join();
    }
    Ok(status)
}

fn reset_dir(dir: &Path) -> anyhow::Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err).with_context(|| format!("removing {}", dir.display())),
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// What became of one spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It passed (or, in a dry run, would run).
    Passed,
    /// It failed, panicked or timed out.
    Failed,
    /// It was not selected.
    Skipped,
}

/// One `<testcase>` of a JUnit report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JunitCase {
    /// The spec's full text.
    pub name: String,
    /// What became of it.
    pub outcome: Outcome,
}

/// The test cases of every `*.xml` in `dir` (ginkgo writes one `junit_NN.xml` per node),
/// each spec once.
pub fn read_reports(dir: &Path) -> anyhow::Result<Vec<JunitCase>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "xml"))
        .collect();
    files.sort();
    let mut cases: Vec<JunitCase> = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        for case in parse_junit(&text) {
            // Every node lists every spec: the one that ran it says passed or failed.
            match cases.iter_mut().find(|known| known.name == case.name) {
                Some(known) if known.outcome == Outcome::Skipped => known.outcome = case.outcome,
                Some(_) => {}
                None => cases.push(case),
            }
        }
    }
    Ok(cases)
}

/// The test cases of a JUnit report as ginkgo v1 writes it: `<testcase name="...">` with
/// a `<failure>` or `<skipped>` child, or none when it passed.
pub fn parse_junit(xml: &str) -> Vec<JunitCase> {
    let mut cases = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<testcase") {
        rest = &rest[start + "<testcase".len()..];
        let Some(tag_end) = rest.find('>') else { break };
        let tag = &rest[..tag_end];
        let self_closing = tag.ends_with('/');
        let body = if self_closing {
            ""
        } else {
            let end = rest.find("</testcase>").unwrap_or(rest.len());
            &rest[tag_end + 1..end]
        };
        let Some(name) = attribute(tag, "name") else { continue };
        let outcome = if body.contains("<failure") || body.contains("<error") {
            Outcome::Failed
        } else if body.contains("<skipped") {
            Outcome::Skipped
        } else {
            Outcome::Passed
        };
        cases.push(JunitCase { name, outcome });
    }
    cases
}

/// The unescaped value of attribute `name` in the inside of a tag.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}

/// XML's five named entities and numeric character references.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';') else { break };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The node the suite runs against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    /// kubelet-lite with its embedded runtime-core.
    KubeletLite,
    /// kubelet-lite on containerd.
    KubeletLiteContainerd,
    /// The real kubelet 1.20 on containerd: the reference.
    Kubelet,
}

impl NodeKind {
    /// The names the command line takes: `kubelet-lite`, `kubelet-lite-containerd`,
    /// `kubelet`.
    pub fn parse(name: &str) -> Option<NodeKind> {
        match name {
            "kubelet-lite" => Some(NodeKind::KubeletLite),
            "kubelet-lite-containerd" => Some(NodeKind::KubeletLiteContainerd),
            "kubelet" => Some(NodeKind::Kubelet),
            _ => None,
        }
    }

    /// The name [`NodeKind::parse`] takes.
    pub fn name(&self) -> &'static str {
        match self {
            NodeKind::KubeletLite => "kubelet-lite",
            NodeKind::KubeletLiteContainerd => "kubelet-lite-containerd",
            NodeKind::Kubelet => "kubelet",
        }
    }

    /// Whether it runs kubelet-lite (and so needs its binary).
    pub fn is_kubelet_lite(&self) -> bool {
        matches!(self, NodeKind::KubeletLite | NodeKind::KubeletLiteContainerd)
    }
}

/// The node's name in the cluster.
pub const NODE_NAME: &str = "conformance-node";

/// The networks of the node under test, apart from those of the other tests' nodes, so a
/// run can go on beside them: kubelet-lite's embedded runtime's pods, containerd's pods,
/// and the bridges holding the node addresses.
const POD_BRIDGE: (&str, &str) = ("kltcf0", "198.18.90.0/24");
const CONTAINERD_BRIDGE: (&str, &str) = ("kltcfctr0", "198.18.92.0/24");
const NODE_BRIDGE: &str = "kltcfnode0";
const NODE_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 91, 1);

/// A running node under test; dropping it stops the node, then its runtime.
#[derive(Debug)]
pub enum Node {
    /// kubelet-lite (on containerd if it holds one).
    KubeletLite(Box<KubeletLite>, Option<Box<Containerd>>),
    /// The real kubelet on containerd.
    Kubelet(Box<Kubelet>, Box<Containerd>),
}

/// Starts the node of `kind` in `control_plane`, pulling from `registry` (which must
/// hold the harness's test images: containerd's sandbox image is their pause);
/// `kubelet_lite` is kubelet-lite's binary, with `runtime-core-monitor` beside it.
pub fn start_node(
    kind: &NodeKind,
    control_plane: &ControlPlane,
    registry: &Registry,
    kubelet_lite: Option<&Path>,
) -> anyhow::Result<Node> {
    let containerd = || {
        let images = crate::test_images::mirrored_references();
        let (bridge, subnet) = CONTAINERD_BRIDGE;
        Containerd::start_with(registry, &images, ContainerdOptions::with_network(bridge, subnet))
    };
    let lite_options = |runtime_endpoint: Option<String>| KubeletLiteOptions {
        node_name: NODE_NAME.into(),
        node_ip: NODE_IP,
        node_bridge: NODE_BRIDGE.into(),
        pod_bridge: POD_BRIDGE.0.into(),
        pod_subnet: POD_BRIDGE.1.into(),
        runtime_endpoint,
        // Info only: the suite's thousands of pods make a debug log of gigabytes.
        log_filter: "info".into(),
        ready_timeout: Duration::from_secs(120),
        ..KubeletLiteOptions::default()
    };
    let binary = || kubelet_lite.context("kubelet-lite's binary is needed for this node");
    Ok(match kind {
        NodeKind::KubeletLite => {
            let node = KubeletLite::start(binary()?, control_plane, registry, lite_options(None))?;
            Node::KubeletLite(Box::new(node), None)
        }
        NodeKind::KubeletLiteContainerd => {
            let containerd = containerd()?;
            let node = KubeletLite::start(
                binary()?,
                control_plane,
                registry,
                lite_options(Some(containerd.endpoint())),
            )?;
            Node::KubeletLite(Box::new(node), Some(Box::new(containerd)))
        }
        NodeKind::Kubelet => {
            let containerd = containerd()?;
            let options = KubeletOptions {
                node_name: NODE_NAME.into(),
                node_ip: NODE_IP,
                node_bridge: NODE_BRIDGE.into(),
                ready_timeout: Duration::from_secs(120),
                ..KubeletOptions::default()
            };
            let kubelet = Kubelet::start(control_plane, &containerd.endpoint(), options)?;
            Node::Kubelet(Box::new(kubelet), Box::new(containerd))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
  <testsuite name="Kubernetes e2e suite" tests="4" failures="1" errors="0" time="12.5">
      <testcase name="[k8s.io] Pods should get a host IP [NodeConformance] [Conformance]" classname="Kubernetes e2e suite" time="6.1"></testcase>
      <testcase name="[sig-node] Downward API should provide pod UID as env vars [NodeConformance] [Conformance]" classname="Kubernetes e2e suite" time="5.2">
          <failure type="Failure">/workspace/test/e2e/framework/util.go:1&#xA;Expected &lt;bool&gt;: false</failure>
          <system-out>log</system-out>
      </testcase>
      <testcase name="[sig-storage] EmptyDir &#39;tmpfs&#39; &amp; more [Serial]" classname="Kubernetes e2e suite" time="0">
          <skipped></skipped>
      </testcase>
      <testcase name="BeforeSuite" classname="Kubernetes e2e suite" time="0.1"/>
  </testsuite>"#;

    #[test]
    fn junit_cases_are_passed_failed_or_skipped() {
        let cases = parse_junit(REPORT);
        let summary: Vec<(&str, Outcome)> = cases.iter().map(|c| (c.name.as_str(), c.outcome)).collect();
        assert_eq!(
            summary,
            [
                (
                    "[k8s.io] Pods should get a host IP [NodeConformance] [Conformance]",
                    Outcome::Passed
                ),
                (
                    "[sig-node] Downward API should provide pod UID as env vars [NodeConformance] [Conformance]",
                    Outcome::Failed
                ),
                ("[sig-storage] EmptyDir 'tmpfs' & more [Serial]", Outcome::Skipped),
                ("BeforeSuite", Outcome::Passed),
            ]
        );
    }

    #[test]
    fn the_node_that_ran_a_spec_decides_its_outcome() {
        let dir = std::env::temp_dir().join(format!("harness-junit-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let case = |name: &str, body: &str| format!("<testcase name=\"{name}\">{body}</testcase>");
        let skipped = "<skipped></skipped>";
        fs::write(dir.join("junit_01.xml"), case("a", "") + &case("b", skipped)).unwrap();
        fs::write(dir.join("junit_02.xml"), case("a", skipped) + &case("b", "<failure/>")).unwrap();
        let cases = read_reports(&dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            cases,
            [
                JunitCase {
                    name: "a".into(),
                    outcome: Outcome::Passed
                },
                JunitCase {
                    name: "b".into(),
                    outcome: Outcome::Failed
                },
            ]
        );
    }

    #[test]
    fn the_report_counts_what_never_finished() {
        let report = SuiteReport {
            selected: vec!["a".into(), "b".into(), "c".into()],
            passed: vec!["a".into()],
            failed: vec!["b".into()],
            wall: Duration::from_secs(754),
            exit_code: Some(1),
        };
        assert_eq!(report.unfinished(), ["c"]);
        assert_eq!(
            report.render("title"),
            "title\n3 specs selected: 1 passed, 1 failed, 1 unfinished; wall time 12m34s (ginkgo exit 1)\n\
             failed:\n  b\nunfinished:\n  c\n"
        );
    }

    #[test]
    fn the_selection_skips_what_cannot_run_beside_other_specs() {
        let options = RunOptions::new(Path::new("/k"), Path::new("/o"));
        assert_eq!(
            options.skip(),
            r"\[Serial\]|\[Disruptive\]|\[Flaky\]|\[Feature:[^\]]+\]|Windows"
        );
        let slow = RunOptions {
            skip_slow: true,
            ..options.clone()
        };
        assert!(slow.skip().ends_with(r"|Windows|\[Slow\]"));
        let limited = RunOptions {
            skip_machine_limits: true,
            ..options
        };
        assert!(
            limited
                .skip()
                .ends_with(r"|Windows|PrivilegedPod \[NodeConformance\] should enable privileged commands|should be able to pull from private registry with secret"),
            "{}",
            limited.skip()
        );
        assert_eq!(
            NodeKind::parse("kubelet-lite-containerd"),
            Some(NodeKind::KubeletLiteContainerd)
        );
        assert_eq!(NodeKind::parse("docker"), None);
    }
}
