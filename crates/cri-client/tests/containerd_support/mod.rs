//! What the containerd tests share: the environment, pod and container configs with
//! names of their own (tests run in parallel on one containerd), polling, and readers
//! for the CRI log format and IPv4 CIDRs.

use std::collections::HashMap;
use std::future::Future;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cri_client::Client;
use cri_client::v1::{
    ContainerConfig, ContainerMetadata, ImageSpec, LinuxPodSandboxConfig, PodSandboxConfig, PodSandboxMetadata,
};
use test_harness::{Containerd, Registry, TestImages};

/// The Kubernetes namespace of every test pod.
pub(crate) const NAMESPACE: &str = "cri-client-test";

/// One registry with the test images, one containerd, one client. Fields drop in order:
/// the client and its runtime first, the registry last (containerd may pull while it
/// stops).
pub(crate) struct Env {
    pub(crate) client: Client,
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) containerd: Containerd,
    pub(crate) images: TestImages,
    pub(crate) registry: Registry,
}

impl Env {
    /// Starts the registry, pushes the test images, starts containerd and connects.
    pub(crate) fn setup() -> anyhow::Result<Env> {
        test_harness::require_tools(&["containerd", "runc", "docker-registry", "busybox"])?;
        let registry = Registry::start()?;
        let images = test_harness::push_test_images(&registry)?;
        let containerd = Containerd::start(&registry, &images)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("tokio runtime")?;
        let client = rt
            .block_on(Client::connect(&containerd.endpoint()))
            .context("connecting to containerd")?;
        Ok(Env {
            client,
            rt,
            containerd,
            images,
            registry,
        })
    }

    /// Pulls busybox (a no-op after the first time) and returns its reference.
    pub(crate) async fn busybox(&self) -> anyhow::Result<String> {
        self.client
            .pull_image(self.images.busybox.as_str(), None, None)
            .await
            .context("pulling busybox")?;
        Ok(self.images.busybox.clone())
    }

    /// A pod config named after `test`, unique in this process, whose log directory
    /// exists under containerd's log dir (the kubelet creates it before RunPodSandbox).
    pub(crate) fn pod(&self, test: &str) -> anyhow::Result<PodSandboxConfig> {
        pod_config(self.containerd.log_dir(), test)
    }

    /// Runs a pod for `test`; returns its id and config.
    pub(crate) async fn run_pod(&self, test: &str) -> anyhow::Result<(String, PodSandboxConfig)> {
        let config = self.pod(test)?;
        let id = self
            .client
            .run_pod_sandbox(config.clone(), "")
            .await
            .with_context(|| format!("running the pod of {test}"))?;
        Ok((id, config))
    }

    /// Creates and starts a busybox container running `script` in the pod; returns its id.
    pub(crate) async fn run_container(
        &self,
        pod_id: &str,
        pod: &PodSandboxConfig,
        name: &str,
        script: &str,
    ) -> anyhow::Result<String> {
        let config = busybox_container(&self.busybox().await?, name, script, pod)?;
        let id = self
            .client
            .create_container(pod_id, config, pod.clone())
            .await
            .with_context(|| format!("creating container {name}"))?;
        self.client
            .start_container(&id)
            .await
            .with_context(|| format!("starting container {name}"))?;
        Ok(id)
    }

    /// Stops and removes the pod and its containers (best effort, at the end of a test).
    pub(crate) async fn remove_pod(&self, pod_id: &str) {
        let _ = self.client.stop_pod_sandbox(pod_id).await;
        let _ = self.client.remove_pod_sandbox(pod_id).await;
    }
}

/// See [`Env::pod`].
pub(crate) fn pod_config(log_root: &Path, test: &str) -> anyhow::Result<PodSandboxConfig> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = format!("{}-{n}", test.replace('_', "-"));
    let uid = format!("{:08x}-{:04x}-cri-client-test", std::process::id(), n);
    let log_directory = log_root.join(format!("{NAMESPACE}_{name}_{uid}"));
    std::fs::create_dir_all(&log_directory).with_context(|| format!("creating {}", log_directory.display()))?;
    Ok(PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.clone(),
            uid,
            namespace: NAMESPACE.to_owned(),
            attempt: 0,
        }),
        hostname: name.chars().take(63).collect(),
        log_directory: log_directory.display().to_string(),
        labels: HashMap::from([("test".to_owned(), name)]),
        linux: Some(LinuxPodSandboxConfig::default()),
        ..PodSandboxConfig::default()
    })
}

/// A busybox container `name` running `sh -c script`, logging to `name/0.log` in the
/// pod's log directory (created here, as the kubelet does), labelled with the pod's
/// `test` label and `container=name`.
pub(crate) fn busybox_container(
    image: &str,
    name: &str,
    script: &str,
    pod: &PodSandboxConfig,
) -> anyhow::Result<ContainerConfig> {
    let log_dir = PathBuf::from(&pod.log_directory).join(name);
    std::fs::create_dir_all(&log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
    let mut labels = pod.labels.clone();
    labels.insert("container".to_owned(), name.to_owned());
    Ok(ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.to_owned(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: image.to_owned(),
            ..ImageSpec::default()
        }),
        command: vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()],
        log_path: format!("{name}/0.log"),
        labels,
        ..ContainerConfig::default()
    })
}

/// Calls `probe` every 100 ms until it returns `Some`, for at most `timeout`.
pub(crate) async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = probe().await? {
            return Ok(value);
        }
        if started.elapsed() > timeout {
            bail!("{what}: not within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One line of a CRI log file: `<RFC3339Nano timestamp> <stream> <P|F> <text>`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct LogLine<'a> {
    pub(crate) timestamp: &'a str,
    pub(crate) stream: &'a str,
    pub(crate) tag: &'a str,
    pub(crate) text: &'a str,
}

/// Parses one CRI log line, checking each field's syntax.
pub(crate) fn parse_log_line(line: &str) -> anyhow::Result<LogLine<'_>> {
    let mut fields = line.splitn(4, ' ');
    let (Some(timestamp), Some(stream), Some(tag), Some(text)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        bail!("not four space-separated fields: {line:?}");
    };
    anyhow::ensure!(
        is_rfc3339_nano(timestamp),
        "timestamp {timestamp:?} is not RFC 3339: {line:?}"
    );
    anyhow::ensure!(matches!(stream, "stdout" | "stderr"), "stream {stream:?}: {line:?}");
    anyhow::ensure!(matches!(tag, "F" | "P"), "tag {tag:?}: {line:?}");
    Ok(LogLine {
        timestamp,
        stream,
        tag,
        text,
    })
}

/// `2006-01-02T15:04:05.999999999Z07:00` (Go's RFC3339Nano): date, `T`, time, optional
/// fraction, then `Z` or a `±hh:mm` offset.
fn is_rfc3339_nano(s: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let shape = |s: &str, pattern: &str| {
        s.len() == pattern.len()
            && s.bytes()
                .zip(pattern.bytes())
                .all(|(c, p)| if p == b'9' { c.is_ascii_digit() } else { c == p })
    };
    let (Some(date_time), rest) = (s.get(..19), s.get(19..).unwrap_or("")) else {
        return false;
    };
    if !shape(date_time, "9999-99-99T99:99:99") {
        return false;
    }
    let (fraction, zone) = match rest.strip_prefix('.') {
        Some(after_dot) => {
            let end = after_dot.find(|c: char| !c.is_ascii_digit()).unwrap_or(after_dot.len());
            (Some(&after_dot[..end]), &after_dot[end..])
        }
        None => (None, rest),
    };
    fraction.is_none_or(|f| digits(f) && f.len() <= 9)
        && (zone == "Z" || (shape(&zone.replacen('-', "+", 1), "+99:99")))
}

/// Whether `ip` is inside the IPv4 CIDR `cidr` (`198.18.0.0/24`).
pub(crate) fn in_cidr(ip: &str, cidr: &str) -> anyhow::Result<bool> {
    let ip: Ipv4Addr = ip.parse().with_context(|| format!("pod ip {ip:?}"))?;
    let (net, bits) = cidr.split_once('/').with_context(|| format!("cidr {cidr:?}"))?;
    let net: Ipv4Addr = net.parse().with_context(|| format!("cidr {cidr:?}"))?;
    let bits: u32 = bits.parse().with_context(|| format!("cidr {cidr:?}"))?;
    anyhow::ensure!(bits <= 32, "cidr {cidr:?}");
    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
    Ok(u32::from(ip) & mask == u32::from(net) & mask)
}
