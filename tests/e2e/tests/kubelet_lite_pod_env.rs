//! What a container finds around it on a real kubelet-lite node (embedded runtime-core,
//! runc) joined to a real control plane, as three `[NodeConformance]` specs of the
//! Kubernetes 1.20 e2e suite check it on a kubelet:
//!
//! - the services' environment variables (`test/e2e/common/pods.go`, "should contain
//!   environment variables for services"): those of every service of the pod's namespace
//!   with a cluster IP and of the `kubernetes` service, the container's own env winning;
//! - the kubelet-managed `/etc/hosts` (`test/e2e/common/kubelet_etc_hosts.go`): managed
//!   in the containers of a pod on its own network that mount nothing there, the
//!   container's own file where it mounts one, and a copy of the node's with a header of
//!   its own in a pod on the host's network;
//! - a container's log read over WebSocket through the apiserver (`pods.go`, "should
//!   support retrieving logs from the container over websockets"), which fetches it from
//!   the node's `/containerLogs` and sends it on as WebSocket messages.
//!
//! One environment: a local registry with the busybox test images, one control plane and
//! node `klt-env` (`198.18.85.1` on `kltenvnode`, pods on `kltenv0`, `198.18.84.0/24`);
//! the tests' objects live in namespace [`NAMESPACE`]. Needs root, the Kubernetes 1.20
//! binaries, etcd, runc, the CNI plugins, docker-registry and busybox-static (skipped
//! without them, failed with `CI=true`).

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use e2e::eventually;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use test_harness::suite::{self, Test};
use test_harness::{ControlPlane, KubeletLite, KubeletLiteOptions, Registry, note};
use tungstenite::client::IntoClientRequest as _;
use tungstenite::{Message, WebSocket};

/// The control plane binaries the test runs.
const KUBERNETES_BINARIES: [&str; 3] = ["kube-apiserver", "kube-controller-manager", "kube-scheduler"];

/// The node under test.
const NODE: &str = "klt-env";

/// The namespace of the tests' pods and services.
const NAMESPACE: &str = "klt-env";

/// How long a pod may take to run or finish (first pull included).
const POD_TIMEOUT: Duration = Duration::from_secs(120);

/// How long the upstream spec retries reading `/etc/hosts` before it fails.
const HOSTS_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a WebSocket may stay silent before the read fails (a log that does not end).
const WEBSOCKET_READ_TIMEOUT: Duration = Duration::from_secs(30);

struct Env {
    // Dropped in this order: the node, the control plane, the registry.
    node: KubeletLite,
    control_plane: ControlPlane,
    _registry: Registry,
    busybox: String,
}

impl Env {
    fn setup() -> anyhow::Result<Env> {
        test_harness::control_plane::kubernetes_binaries(&KUBERNETES_BINARIES)?;
        let registry = Registry::start()?;
        let images = test_harness::push_test_images(&registry)?;
        e2e::workspace_binary("runtime-core", "runtime-core-monitor")?;
        let binary = e2e::workspace_binary("kubelet-lite", "kubelet-lite")?;
        let control_plane = ControlPlane::start()?;
        let node = KubeletLite::start(
            &binary,
            &control_plane,
            &registry,
            KubeletLiteOptions {
                node_name: NODE.into(),
                node_ip: [198, 18, 85, 1].into(),
                node_bridge: "kltenvnode".into(),
                pod_bridge: "kltenv0".into(),
                pod_subnet: "198.18.84.0/24".into(),
                ..KubeletLiteOptions::default()
            },
        )?;
        let env = Env {
            node,
            control_plane,
            _registry: registry,
            busybox: images.busybox,
        };
        env.apply(&serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}))?;
        // The ServiceAccount admission of 1.20 refuses pods until the namespace's default
        // service account has its token.
        eventually(POD_TIMEOUT, || {
            let secrets = env.kubectl(&[
                "get",
                "serviceaccount",
                "default",
                "--ignore-not-found",
                "-o",
                "jsonpath={.secrets[*].name}",
            ])?;
            Ok((!secrets.trim().is_empty()).then_some(()))
        })
        .context("the namespace's default service account gets no token")?;
        Ok(env)
    }

    /// `kubectl apply` of `object`, in [`NAMESPACE`] unless it names another namespace
    /// (or is one).
    fn apply(&self, object: &serde_json::Value) -> anyhow::Result<()> {
        let mut object = object.clone();
        if object["kind"] != "Namespace" && object["metadata"]["namespace"].is_null() {
            object["metadata"]["namespace"] = NAMESPACE.into();
        }
        self.control_plane
            .kubectl_with_input(["apply", "-f", "-"], &object.to_string())
            .map(drop)
    }

    /// `kubectl ARGS` in [`NAMESPACE`]; its standard output.
    fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        self.control_plane
            .kubectl(["--namespace", NAMESPACE].iter().chain(args))
    }

    /// `kubectl get pod NAME -o jsonpath={FIELD}`.
    fn pod_field(&self, pod: &str, field: &str) -> anyhow::Result<String> {
        self.kubectl(&["get", "pod", pod, "-o", &format!("jsonpath={{{field}}}")])
    }

    /// Waits until every container of `pod` is ready; returns the pod's IP.
    fn wait_running(&self, pod: &str) -> anyhow::Result<String> {
        eventually(POD_TIMEOUT, || {
            let ready = self.pod_field(pod, ".status.containerStatuses[*].ready")?;
            if ready.is_empty() || !ready.split_whitespace().all(|r| r == "true") {
                return Ok(None);
            }
            let ip = self.pod_field(pod, ".status.podIP")?;
            Ok((!ip.is_empty()).then_some(ip))
        })
        .with_context(|| self.diagnostics(pod))
    }

    /// Waits until `pod` succeeded; returns its log.
    fn wait_succeeded(&self, pod: &str) -> anyhow::Result<String> {
        eventually(POD_TIMEOUT, || {
            let phase = self.pod_field(pod, ".status.phase")?;
            ensure!(phase != "Failed", "pod {pod} failed");
            Ok((phase == "Succeeded").then_some(()))
        })
        .with_context(|| self.diagnostics(pod))?;
        self.kubectl(&["logs", pod])
    }

    /// What a failed step shows: the pod and the end of the node's log.
    fn diagnostics(&self, pod: &str) -> String {
        let described = self
            .kubectl(&["get", "pod", pod, "-o", "yaml"])
            .unwrap_or_else(|err| format!("{err:#}"));
        format!(
            "pod {pod}:\n{described}\n\n{NODE}'s log ends with:\n{}",
            self.node.log_tail(60)
        )
    }

    /// A service's cluster IP.
    fn cluster_ip(&self, namespace: &str, service: &str) -> anyhow::Result<String> {
        let ip = self.control_plane.kubectl([
            "get",
            "service",
            service,
            "--namespace",
            namespace,
            "-o",
            "jsonpath={.spec.clusterIP}",
        ])?;
        ensure!(
            ip.parse::<IpAddr>().is_ok(),
            "service {namespace}/{service} has cluster IP {ip:?}"
        );
        Ok(ip)
    }

    /// `cat PATH` in container `container` of `pod`.
    fn cat(&self, pod: &str, container: &str, path: &str) -> anyhow::Result<String> {
        self.kubectl(&["exec", pod, "-c", container, "--", "cat", path])
    }
}

fn main() -> ExitCode {
    suite::run(
        Env::setup,
        vec![
            Test::new(
                "containers_get_the_services_variables_and_their_own_env_wins",
                containers_get_the_services_variables_and_their_own_env_wins,
            ),
            Test::new(
                "etc_hosts_is_managed_as_the_kubelet_manages_it",
                etc_hosts_is_managed_as_the_kubelet_manages_it,
            ),
            Test::new(
                "logs_are_read_over_websocket_through_the_apiserver",
                logs_are_read_over_websocket_through_the_apiserver,
            ),
        ],
    )
}

/// A service of [`NAMESPACE`] (or `namespace`) with `ports`, and `cluster_ip` if given.
fn service(namespace: &str, name: &str, cluster_ip: Option<&str>, ports: serde_json::Value) -> serde_json::Value {
    let mut spec = serde_json::json!({"ports": ports, "selector": {"app": name}});
    if let Some(ip) = cluster_ip {
        spec["clusterIP"] = ip.into();
    }
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    })
}

/// A pod on the node under test that runs `sh -c script` in busybox once.
fn env_pod(env: &Env, name: &str, service_links: bool, vars: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": NODE,
            "restartPolicy": "Never",
            "enableServiceLinks": service_links,
            "containers": [{"name": "env3cont", "image": env.busybox, "command": ["sh", "-c", "env"], "env": vars}],
        },
    })
}

/// The `NAME=value` lines of `env`'s output.
fn parse_env(output: &str) -> BTreeMap<String, String> {
    output
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

/// The upstream spec's `fooservice` (port 8765), and more: a service with a dashed name
/// and named ports (one UDP), a headless service, a service of another namespace. A pod
/// printing its environment shows the variables of the first two and of `kubernetes`,
/// with the values the kubelet gives them; its own env replaces one and refers to
/// another. Without `enableServiceLinks`, only `kubernetes`'s are there.
fn containers_get_the_services_variables_and_their_own_env_wins(env: &Env) -> anyhow::Result<()> {
    env.apply(&service(
        NAMESPACE,
        "fooservice",
        None,
        serde_json::json!([{"port": 8765, "targetPort": 8080}]),
    ))?;
    env.apply(&service(
        NAMESPACE,
        "bar-svc",
        None,
        serde_json::json!([{"name": "web", "port": 80}, {"name": "dns-udp", "port": 53, "protocol": "UDP"}]),
    ))?;
    env.apply(&service(
        NAMESPACE,
        "headless",
        Some("None"),
        serde_json::json!([{"port": 80}]),
    ))?;
    env.apply(&service(
        "default",
        "elsewhere",
        None,
        serde_json::json!([{"port": 80}]),
    ))?;
    let foo_ip = env.cluster_ip(NAMESPACE, "fooservice")?;
    let bar_ip = env.cluster_ip(NAMESPACE, "bar-svc")?;
    let master = env.cluster_ip("default", "kubernetes")?;

    env.apply(&env_pod(
        env,
        "client-envvars",
        true,
        serde_json::json!([
            {"name": "FOOSERVICE_SERVICE_PORT", "value": "overridden"},
            {"name": "FOO_URL", "value": "http://$(FOOSERVICE_SERVICE_HOST):$(FOOSERVICE_PORT_8765_TCP_PORT)/"},
        ]),
    ))?;
    let vars = parse_env(&env.wait_succeeded("client-envvars")?);
    let mut expected: Vec<(String, String)> = [
        ("FOOSERVICE_SERVICE_HOST", foo_ip.as_str()),
        ("FOOSERVICE_SERVICE_PORT", "overridden"),
        ("FOOSERVICE_PORT", &format!("tcp://{foo_ip}:8765")),
        ("FOOSERVICE_PORT_8765_TCP", &format!("tcp://{foo_ip}:8765")),
        ("FOOSERVICE_PORT_8765_TCP_PROTO", "tcp"),
        ("FOOSERVICE_PORT_8765_TCP_PORT", "8765"),
        ("FOOSERVICE_PORT_8765_TCP_ADDR", &foo_ip),
        ("FOO_URL", &format!("http://{foo_ip}:8765/")),
        ("BAR_SVC_SERVICE_HOST", &bar_ip),
        ("BAR_SVC_SERVICE_PORT", "80"),
        ("BAR_SVC_SERVICE_PORT_WEB", "80"),
        ("BAR_SVC_SERVICE_PORT_DNS_UDP", "53"),
        ("BAR_SVC_PORT", &format!("tcp://{bar_ip}:80")),
        ("BAR_SVC_PORT_80_TCP", &format!("tcp://{bar_ip}:80")),
        ("BAR_SVC_PORT_53_UDP", &format!("udp://{bar_ip}:53")),
        ("BAR_SVC_PORT_53_UDP_PROTO", "udp"),
        ("BAR_SVC_PORT_53_UDP_PORT", "53"),
        ("BAR_SVC_PORT_53_UDP_ADDR", &bar_ip),
    ]
    .iter()
    .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
    .collect();
    expected.extend(master_variables(&master));
    for (name, value) in &expected {
        ensure!(
            vars.get(name) == Some(value),
            "{name} is {:?}, not {value:?}; the container's environment:\n{vars:#?}",
            vars.get(name)
        );
    }
    for prefix in ["HEADLESS_", "ELSEWHERE_"] {
        ensure!(
            !vars.keys().any(|name| name.starts_with(prefix)),
            "variables of a service without a cluster IP or of another namespace:\n{vars:#?}"
        );
    }

    env.apply(&env_pod(env, "client-no-links", false, serde_json::json!([])))?;
    let vars = parse_env(&env.wait_succeeded("client-no-links")?);
    for (name, value) in master_variables(&master) {
        ensure!(
            vars.get(&name) == Some(&value),
            "without service links, {name} is {:?}, not {value:?}",
            vars.get(&name)
        );
    }
    ensure!(
        !vars
            .keys()
            .any(|name| name.starts_with("FOOSERVICE_") || name.starts_with("BAR_SVC_")),
        "enableServiceLinks: false, yet the namespace's services are there:\n{vars:#?}"
    );
    Ok(())
}

/// The variables of the `kubernetes` service (port 443, named `https`) at `ip`.
fn master_variables(ip: &str) -> Vec<(String, String)> {
    [
        ("KUBERNETES_SERVICE_HOST", ip.to_owned()),
        ("KUBERNETES_SERVICE_PORT", "443".to_owned()),
        ("KUBERNETES_SERVICE_PORT_HTTPS", "443".to_owned()),
        ("KUBERNETES_PORT", format!("tcp://{ip}:443")),
        ("KUBERNETES_PORT_443_TCP", format!("tcp://{ip}:443")),
        ("KUBERNETES_PORT_443_TCP_PROTO", "tcp".to_owned()),
        ("KUBERNETES_PORT_443_TCP_PORT", "443".to_owned()),
        ("KUBERNETES_PORT_443_TCP_ADDR", ip.to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// The upstream spec's pods: `test-pod` (busybox-1 and -2 mount the node's /etc/hosts
/// at /etc/hosts-original, busybox-3 at /etc/hosts too) and `test-host-network-pod` (on
/// the host's network, busybox-1 and -2 mounting it at /etc/hosts-original).
fn etc_hosts_pod(env: &Env, name: &str, host_network: bool) -> serde_json::Value {
    let original = serde_json::json!({"name": "host-etc-hosts", "mountPath": "/etc/hosts-original"});
    let own = serde_json::json!({"name": "host-etc-hosts", "mountPath": "/etc/hosts"});
    let container = |name: &str, mounts: serde_json::Value| {
        serde_json::json!({
            "name": name,
            "image": env.busybox,
            "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"],
            "volumeMounts": mounts,
        })
    };
    let mut containers = vec![
        container("busybox-1", serde_json::json!([original.clone()])),
        container("busybox-2", serde_json::json!([original.clone()])),
    ];
    if !host_network {
        containers.push(container("busybox-3", serde_json::json!([original, own])));
    }
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": NODE,
            "hostNetwork": host_network,
            "terminationGracePeriodSeconds": 1,
            "containers": containers,
            "volumes": [{"name": "host-etc-hosts", "hostPath": {"path": "/etc/hosts", "type": "FileOrCreate"}}],
        },
    })
}

/// The upstream spec's check of one container: `/etc/hosts` is managed when it starts
/// with the kubelet's header and differs from the node's file the container sees at
/// /etc/hosts-original. Retried for [`HOSTS_TIMEOUT`], as upstream; returns the file.
fn assert_managed(env: &Env, pod: &str, container: &str, managed: bool) -> anyhow::Result<String> {
    let deadline = Instant::now() + HOSTS_TIMEOUT;
    loop {
        let hosts = env.cat(pod, container, "/etc/hosts")?;
        let original = env.cat(pod, container, "/etc/hosts-original")?;
        if !hosts.is_empty() && !original.is_empty() {
            let is_managed = hosts.starts_with("# Kubernetes-managed hosts file.") && hosts != original;
            if is_managed == managed {
                return Ok(hosts);
            }
        }
        if Instant::now() >= deadline {
            bail!(
                "{pod}/{container}: /etc/hosts should {}be kubelet-managed; it holds:\n{hosts}\n\
                 (/etc/hosts-original holds:\n{original})",
                if managed { "" } else { "not " }
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The upstream spec's three cases, and the files the kubelet 1.20 writes for them: the
/// managed file (header, loopback lines, the pod's IP and name) in `test-pod`'s
/// busybox-1 and -2; the node's own file where busybox-3 mounts it; in the host network
/// pod, the node's file after the header `# Kubernetes-managed hosts file (host
/// network).`, which the spec does not count as managed.
fn etc_hosts_is_managed_as_the_kubelet_manages_it(env: &Env) -> anyhow::Result<()> {
    env.apply(&etc_hosts_pod(env, "test-pod", false))?;
    env.apply(&etc_hosts_pod(env, "test-host-network-pod", true))?;
    let pod_ip = env.wait_running("test-pod")?;
    let host_ip = env.wait_running("test-host-network-pod")?;
    ensure!(
        host_ip == Ipv4Addr::new(198, 18, 85, 1).to_string(),
        "the host network pod has IP {host_ip}, not the node's"
    );
    let node_hosts = std::fs::read_to_string("/etc/hosts").context("reading the node's /etc/hosts")?;

    for container in ["busybox-1", "busybox-2"] {
        let hosts = assert_managed(env, "test-pod", container, true)?;
        let start = "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n\
                     ::1\tlocalhost ip6-localhost ip6-loopback\n";
        ensure!(
            hosts.starts_with(start) && hosts.ends_with(&format!("\n{pod_ip}\ttest-pod\n")),
            "test-pod/{container}: /etc/hosts is not the kubelet's:\n{hosts}"
        );
    }
    let hosts = assert_managed(env, "test-pod", "busybox-3", false)?;
    ensure!(
        hosts == node_hosts,
        "busybox-3 mounts the node's /etc/hosts, yet sees:\n{hosts}"
    );
    for container in ["busybox-1", "busybox-2"] {
        let hosts = assert_managed(env, "test-host-network-pod", container, false)?;
        let expected = format!("# Kubernetes-managed hosts file (host network).\n{node_hosts}");
        ensure!(
            hosts == expected,
            "test-host-network-pod/{container}: /etc/hosts is\n{hosts}\nnot\n{expected}"
        );
    }
    Ok(())
}

/// The upstream spec: a pod that prints a line then sleeps; its log read over a
/// WebSocket to the apiserver (`pods/NAME/log?container=main`, subprotocol
/// `binary.k8s.io`) until the apiserver closes it holds that line and only it, blank
/// messages aside. The same through `base64.binary.k8s.io`, where messages are text.
fn logs_are_read_over_websocket_through_the_apiserver(env: &Env) -> anyhow::Result<()> {
    let pod = "pod-logs-websocket";
    env.apply(&serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod},
        "spec": {
            "nodeName": NODE,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "main",
                "image": env.busybox,
                "command": ["/bin/sh", "-c", "echo container is alive; sleep 10000"],
            }],
        },
    }))?;
    env.wait_running(pod)?;
    let path = format!("/api/v1/namespaces/{NAMESPACE}/pods/{pod}/log?container=main");
    for protocol in ["binary.k8s.io", "base64.binary.k8s.io"] {
        let started = Instant::now();
        let messages = read_websocket(&env.control_plane, &path, protocol)
            .with_context(|| format!("reading {path} over WebSocket ({protocol})\n{}", env.diagnostics(pod)))?;
        let mut log = Vec::new();
        for message in &messages {
            let bytes = if protocol == "binary.k8s.io" {
                message.clone()
            } else {
                BASE64_STANDARD
                    .decode(message)
                    .context("a base64.binary.k8s.io message that is no base64")?
            };
            if !String::from_utf8_lossy(&bytes).trim().is_empty() {
                log.extend_from_slice(&bytes);
            }
        }
        ensure!(
            log == b"container is alive\n",
            "{protocol}: unexpected WebSocket logs: {:?} (in {} messages)\n{}",
            String::from_utf8_lossy(&log),
            messages.len(),
            env.diagnostics(pod)
        );
        note(format!(
            "{protocol}: the log came in {} messages in {:.2?}",
            messages.len(),
            started.elapsed()
        ));
    }
    Ok(())
}

/// Opens a WebSocket to the apiserver's `path` with `protocol` as the admin (the
/// harness's client certificate), as the e2e framework's `OpenWebSocketForURL` does
/// (`Origin: http://localhost`), and reads every message until the server closes it.
fn read_websocket(control_plane: &ControlPlane, path: &str, protocol: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let pki = control_plane.pki();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(pki.ca_cert()).context("reading the CA certificate")?)?;
    let certificates = CertificateDer::pem_file_iter(pki.dir().join("admin.crt"))
        .context("reading the admin certificate")?
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(pki.dir().join("admin.key")).context("reading the admin key")?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(certificates, key)?;
    let server = control_plane.server();
    let address = server.strip_prefix("https://").context("the apiserver is not https")?;
    let tcp = TcpStream::connect(address).with_context(|| format!("connecting to {address}"))?;
    tcp.set_read_timeout(Some(WEBSOCKET_READ_TIMEOUT))?;
    let name = ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
    let tls = rustls::StreamOwned::new(rustls::ClientConnection::new(Arc::new(config), name)?, tcp);

    let mut request = format!("wss://{address}{path}").into_client_request()?;
    let headers = request.headers_mut();
    headers.insert("Sec-WebSocket-Protocol", protocol.parse()?);
    headers.insert("Origin", "http://localhost".parse()?);
    let (mut socket, response) = tungstenite::client(request, tls).map_err(|err| match err {
        tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response)) => anyhow::anyhow!(
            "the apiserver refused the WebSocket: {} {}",
            response.status(),
            String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
        ),
        err => anyhow::anyhow!("WebSocket handshake: {err}"),
    })?;
    let chosen = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    ensure!(chosen == protocol, "the apiserver chose subprotocol {chosen:?}");
    read_messages(&mut socket)
}

/// Every data message until the server closes the connection (what the framework's
/// `websocket.Message.Receive` reads until `io.EOF`).
fn read_messages<S: std::io::Read + std::io::Write>(socket: &mut WebSocket<S>) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut messages = Vec::new();
    loop {
        match socket.read() {
            Ok(Message::Binary(bytes)) => messages.push(bytes.to_vec()),
            Ok(Message::Text(text)) => messages.push(text.as_bytes().to_vec()),
            Ok(Message::Close(_)) => {}
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => return Ok(messages),
            Err(tungstenite::Error::Protocol(tungstenite::error::ProtocolError::ResetWithoutClosingHandshake)) => {
                return Ok(messages);
            }
            Err(tungstenite::Error::Io(err)) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                bail!(
                    "the WebSocket stayed open, silent for {WEBSOCKET_READ_TIMEOUT:?}, after {} messages: {:?}",
                    messages.len(),
                    messages
                        .iter()
                        .map(|m| String::from_utf8_lossy(m).into_owned())
                        .collect::<Vec<_>>()
                );
            }
            Err(err) => return Err(err).context("reading the WebSocket"),
        }
    }
}
