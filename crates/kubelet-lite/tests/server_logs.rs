//! `/containerLogs` through the kubelet API against a real CRI runtime: containerd 1.6
//! runs busybox containers (labelled as the node agent labels them) that write the CRI
//! log files, and the API finds them through CRI and streams them with the options of
//! `kubectl logs` (`--tail`, `--timestamps`, `--limit-bytes`, `--previous`, `-f`), long
//! lines included.
//!
//! One registry, one containerd (bridge `kltapi0`, `198.18.58.0/24`) and one API server
//! (x509 client certificates of a throw-away CA, AlwaysAllow) are shared by the tests,
//! each with pods of its own. Needs root, runc, the CNI plugins, containerd,
//! docker-registry, busybox-static and openssl (skipped without them, failed with
//! `CI=true`).

mod common;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use common::Identity;
use cri_client::v1::{ContainerState, PodSandboxConfig};
use http::{Method, StatusCode};
use kubelet_lite::metrics::Metrics;
use kubelet_lite::server::{
    AuthenticationConfig, AuthorizationMode, Server, ServerConfig, Services, ServingCertificate,
};
use kubelet_lite::spec::labels::{CONTAINER_NAME, POD_NAME, POD_NAMESPACE, POD_UID};
use test_harness::pki::{CertificateSpec, KeyPair, Pki};
use test_harness::pods::{self, eventually};
use test_harness::suite::{self, Test};
use test_harness::{Containerd, ContainerdOptions, Registry, TestImages};

/// The Kubernetes namespace of every test pod.
const NAMESPACE: &str = "server-logs";
/// The pod network of this binary's containerd.
const BRIDGE: &str = "kltapi0";
const SUBNET: &str = "198.18.58.0/24";
/// How long a container may take to exit after its script ends.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Fields drop in order: the server and client runtime first, containerd (removing every
/// pod), then the registry and the CA's directory.
struct Env {
    rt: tokio::runtime::Runtime,
    cri: cri_client::Client,
    address: SocketAddr,
    reader: KeyPair,
    ca: std::path::PathBuf,
    containerd: Containerd,
    images: TestImages,
    _registry: Registry,
    _pki_dir: tempfile::TempDir,
}

fn setup() -> anyhow::Result<Env> {
    test_harness::require_tools(&["docker-registry", "busybox", "openssl"])?;
    let registry = Registry::start()?;
    let images = test_harness::push_test_images(&registry)?;
    let containerd = Containerd::start_with(&registry, &images, ContainerdOptions::with_network(BRIDGE, SUBNET))?;
    let pki_dir = tempfile::tempdir()?;
    let pki = Pki::create(pki_dir.path())?;
    let serving = pki.issue(
        "serving",
        &CertificateSpec::server("node").with_ips(["127.0.0.1".parse()?]),
    )?;
    let reader = pki.issue("reader", &CertificateSpec::client("log-reader", &[]))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("building a tokio runtime")?;
    let (cri, server) = rt.block_on(async {
        let cri = cri_client::Client::connect(&containerd.endpoint()).await?;
        cri.pull_image(images.busybox.as_str(), None, None).await?;
        let mut config = ServerConfig::new("node", "127.0.0.1:0".parse()?);
        config.serving_certificate = ServingCertificate::Files {
            cert: serving.cert.clone(),
            key: serving.key.clone(),
        };
        config.client_ca_file = Some(pki.ca_cert().to_path_buf());
        config.authentication = AuthenticationConfig {
            webhook: false,
            ..AuthenticationConfig::default()
        };
        config.authorization = AuthorizationMode::AlwaysAllow;
        let services = Services {
            kube: None,
            cri: Some(cri.clone()),
            pods: Arc::new(Vec::new),
            metrics: Metrics::default(),
        };
        anyhow::Ok((cri, Server::bind(config, services).await?))
    })?;
    let address = server.local_addr()?;
    rt.spawn(server.serve(std::future::pending()));
    Ok(Env {
        rt,
        cri,
        address,
        reader,
        ca: pki.ca_cert().to_path_buf(),
        containerd,
        images,
        _registry: registry,
        _pki_dir: pki_dir,
    })
}

impl Env {
    /// Runs a pod named after `test` with one container `app` running `script`, labelled
    /// as the node agent labels them; returns the pod's name and the container's id.
    fn run_pod(&self, test: &str, script: &str) -> anyhow::Result<(PodSandboxConfig, String)> {
        let mut pod = pods::pod_config(self.containerd.log_dir(), NAMESPACE, test)?;
        let metadata = pod.metadata.clone().unwrap_or_default();
        pod.labels.extend([
            (POD_NAME.to_owned(), metadata.name.clone()),
            (POD_NAMESPACE.to_owned(), metadata.namespace.clone()),
            (POD_UID.to_owned(), metadata.uid.clone()),
        ]);
        let mut container = pods::busybox_container(&self.images.busybox, "app", script, &pod)?;
        container.labels.insert(CONTAINER_NAME.to_owned(), "app".to_owned());
        let id = self.rt.block_on(async {
            let sandbox = self.cri.run_pod_sandbox(pod.clone(), "").await?;
            let id = self.cri.create_container(&sandbox, container, pod.clone()).await?;
            self.cri.start_container(&id).await?;
            anyhow::Ok(id)
        })?;
        Ok((pod, id))
    }

    fn wait_for_exit(&self, id: &str) -> anyhow::Result<()> {
        self.rt
            .block_on(eventually("the container to exit", EXIT_TIMEOUT, || async {
                let status = self.cri.container_status(id, false).await?.status.unwrap_or_default();
                Ok((status.state == ContainerState::ContainerExited as i32).then_some(()))
            }))
    }

    fn logs(&self, pod: &PodSandboxConfig, query: &str) -> anyhow::Result<(StatusCode, String)> {
        let name = pod.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default();
        let path = format!("/containerLogs/{NAMESPACE}/{name}/app?{query}");
        let identity = Identity::Certificate(&self.reader);
        self.rt
            .block_on(common::call(self.address, &self.ca, &identity, Method::GET, &path))
    }

    fn logs_ok(&self, pod: &PodSandboxConfig, query: &str) -> anyhow::Result<String> {
        let (status, body) = self.logs(pod, query)?;
        ensure!(status == StatusCode::OK, "logs?{query}: {status}: {body}");
        Ok(body)
    }
}

fn logs_honour_tail_timestamps_limit_and_previous(env: &Env) -> anyhow::Result<()> {
    // The runtime reads stdout and stderr apart: the pause keeps their order in the log.
    let (pod, id) = env.run_pod(
        "options",
        "for i in 1 2 3 4 5; do echo line-$i; done; sleep 1; echo oops >&2",
    )?;
    env.wait_for_exit(&id)?;
    let all = env.logs_ok(&pod, "")?;
    ensure!(all == "line-1\nline-2\nline-3\nline-4\nline-5\noops\n", "{all:?}");
    let tail = env.logs_ok(&pod, "tailLines=2")?;
    ensure!(tail == "line-5\noops\n", "{tail:?}");
    let stamped = env.logs_ok(&pod, "tailLines=1&timestamps=true")?;
    let (timestamp, line) = stamped.split_once(' ').context("no timestamp")?;
    ensure!(line == "oops\n", "{stamped:?}");
    ensure!(
        timestamp.parse::<jiff::Timestamp>().is_ok(),
        "{timestamp:?} is not RFC 3339"
    );
    let limited = env.logs_ok(&pod, "limitBytes=10")?;
    ensure!(limited == "line-1\nlin", "{limited:?}");
    let future = env.logs_ok(&pod, &format!("sinceTime={}", jiff::Timestamp::now()))?;
    ensure!(future.is_empty(), "{future:?}");
    let (status, body) = env.logs(&pod, "previous=true")?;
    ensure!(
        status == StatusCode::BAD_REQUEST && body.contains("previous terminated container"),
        "{status}: {body}"
    );
    let (status, body) = env.logs(&pod, "tailLines=-3")?;
    ensure!(status == StatusCode::BAD_REQUEST, "{status}: {body}");
    Ok(())
}

fn follow_streams_until_the_container_exits(env: &Env) -> anyhow::Result<()> {
    let (pod, _) = env.run_pod("follow", "echo first; sleep 3; echo second; sleep 1")?;
    let started = Instant::now();
    let followed = env.logs_ok(&pod, "follow=true")?;
    ensure!(followed == "first\nsecond\n", "{followed:?}");
    ensure!(
        started.elapsed() >= Duration::from_secs(2),
        "the followed log ended after {:?}, before the container wrote its last line",
        started.elapsed()
    );
    Ok(())
}

/// A line of 1 MiB, which containerd cuts into partial records of 16 KiB and the API
/// passes on in pieces past 64 KiB instead of holding it: it still comes whole, with one
/// timestamp, and `tailLines` counts it as one line.
fn a_line_longer_than_the_partial_line_cap_comes_whole(env: &Env) -> anyhow::Result<()> {
    let (pod, id) = env.run_pod(
        "long-line",
        "x=xxxxxxxx; for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17; do x=$x$x; done; \
         printf %s \"$x\"; echo; echo after",
    )?;
    env.wait_for_exit(&id)?;
    let line = "x".repeat(1 << 20);
    let all = env.logs_ok(&pod, "")?;
    ensure!(
        all == format!("{line}\nafter\n"),
        "{} bytes: {:?}...",
        all.len(),
        &all[..all.len().min(80)]
    );
    let tail = env.logs_ok(&pod, "tailLines=2")?;
    ensure!(tail == all, "tailLines=2 gave {} bytes", tail.len());
    let last = env.logs_ok(&pod, "tailLines=1")?;
    ensure!(last == "after\n", "{last:?}");
    let stamped = env.logs_ok(&pod, "timestamps=true")?;
    let lines: Vec<&str> = stamped.lines().collect();
    ensure!(lines.len() == 2, "{} lines with timestamps", lines.len());
    let (timestamp, content) = lines[0].split_once(' ').context("no timestamp")?;
    ensure!(
        timestamp.parse::<jiff::Timestamp>().is_ok() && content == line,
        "{timestamp:?}"
    );
    let limited = env.logs_ok(&pod, "limitBytes=100000")?;
    ensure!(
        limited == line[..100_000],
        "limitBytes=100000 gave {} bytes",
        limited.len()
    );
    Ok(())
}

fn an_unknown_pod_or_container_is_404(env: &Env) -> anyhow::Result<()> {
    let identity = Identity::Certificate(&env.reader);
    for path in [
        format!("/containerLogs/{NAMESPACE}/no-such-pod/app"),
        "/exec/nowhere/nobody/app?command=ls&stdout=1".to_owned(),
    ] {
        let method = if path.starts_with("/exec") {
            Method::POST
        } else {
            Method::GET
        };
        let (status, body) = env
            .rt
            .block_on(common::call(env.address, &env.ca, &identity, method, &path))?;
        ensure!(status == StatusCode::NOT_FOUND, "{path}: {status}: {body}");
    }
    let (status, _) = env.rt.block_on(common::call(
        env.address,
        &env.ca,
        &Identity::Nobody,
        Method::GET,
        "/healthz",
    ))?;
    ensure!(status == StatusCode::UNAUTHORIZED, "anonymous: {status}");
    Ok(())
}

fn main() -> ExitCode {
    suite::run(
        setup,
        vec![
            Test::new(
                "logs_honour_tail_timestamps_limit_and_previous",
                logs_honour_tail_timestamps_limit_and_previous,
            ),
            Test::new(
                "follow_streams_until_the_container_exits",
                follow_streams_until_the_container_exits,
            ),
            Test::new(
                "a_line_longer_than_the_partial_line_cap_comes_whole",
                a_line_longer_than_the_partial_line_cap_comes_whole,
            ),
            Test::new("an_unknown_pod_or_container_is_404", an_unknown_pod_or_container_is_404),
        ],
    )
}
