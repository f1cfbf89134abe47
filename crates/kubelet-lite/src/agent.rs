//! The node agent put together: the runtime (embedded or remote), the Node, the pod
//! sources, the pod manager and the status manager, run until shutdown.
//!
//! Without the `embedded` feature there is no runtime in the process: the settings must
//! name one (`--container-runtime-endpoint`).

use std::collections::HashSet;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::config::{AuthorizationModeName, Settings};
use crate::metrics::Metrics;
use crate::node::{self, NodeFacts};
use crate::pods::{self, PodContext, PodSnapshot, Source, StatusManager};
use crate::retry::{RetryBackoff, RetryPolicy};
#[cfg(feature = "embedded")]
use crate::runtime::{EmbeddedError, EmbeddedRuntime};
use crate::server::{self, AuthenticationConfig, AuthorizationMode, ServerConfig, ServingCertificate};
use crate::spec::NodeContext;

/// How long the runtime may take to answer CRI Version at start-up.
const RUNTIME_WAIT: Duration = Duration::from_secs(60);
/// How long the embedded runtime may take to stop serving at shutdown (pod workers may
/// still hold connections; its containers keep running either way).
#[cfg(feature = "embedded")]
const EMBEDDED_STOP_TIMEOUT: Duration = Duration::from_secs(1);

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The root directory could not be created.
    #[error("creating the root directory {path}: {source}")]
    RootDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The embedded runtime did not start.
    #[cfg(feature = "embedded")]
    #[error(transparent)]
    Embedded(#[from] EmbeddedError),
    /// No CRI endpoint is configured, and this build has no runtime to start in-process.
    #[cfg(not(feature = "embedded"))]
    #[error(
        "no --container-runtime-endpoint (or containerRuntimeEndpoint) given: this kubelet-lite \
         was built without the embedded runtime (cargo feature `embedded`)"
    )]
    NoRuntimeEndpoint,
    /// The CRI runtime is unreachable.
    #[error("the CRI runtime at {endpoint} does not answer: {source}")]
    Runtime {
        /// Its endpoint.
        endpoint: String,
        /// The last error.
        source: cri_client::Error,
    },
    /// The kubeconfig is unusable.
    #[error("loading the kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    /// The apiserver client could not be built.
    #[error("building the apiserver client: {0}")]
    Client(#[from] kube::Error),
    /// The node could not be registered.
    #[error(transparent)]
    Node(#[from] node::NodeError),
    /// The kubelet API could not be set up.
    #[error("the kubelet API: {0}")]
    Server(#[from] server::ServerError),
    /// The kubeconfig's client certificate is X.509 v1.
    #[error("the kubeconfig's client certificate: {0}")]
    ClientCertificate(#[from] server::X509V1Certificate),
}

/// Runs the node agent with `settings` until `shutdown` completes. Pods keep running
/// when it returns (a restarted agent adopts them).
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()>) -> Result<(), AgentError> {
    std::fs::create_dir_all(&settings.root_dir).map_err(|source| AgentError::RootDir {
        path: settings.root_dir.clone(),
        source,
    })?;
    #[cfg(feature = "embedded")]
    let (embedded, endpoint) = match &settings.runtime_endpoint {
        Some(endpoint) => (None, endpoint.clone()),
        None => {
            let embedded = EmbeddedRuntime::start(
                settings.runtime_config.as_deref(),
                &settings.root_dir,
                &settings.pod_cidr,
            )?;
            let endpoint = embedded.endpoint().to_owned();
            (Some(embedded), endpoint)
        }
    };
    #[cfg(not(feature = "embedded"))]
    let endpoint = (settings.runtime_endpoint.clone()).ok_or(AgentError::NoRuntimeEndpoint)?;
    let runtime = connect_runtime(&endpoint).await?;
    let version = runtime.version().await.map_err(|source| AgentError::Runtime {
        endpoint: endpoint.clone(),
        source,
    })?;
    tracing::info!(runtime = %version.runtime_name, version = %version.runtime_version, %endpoint, "connected to the CRI runtime");

    let client = match &settings.kubeconfig {
        Some(path) => Some(api_client(path).await?),
        None => None,
    };
    let node_ip = settings.node_ip.or_else(detect_node_ip);
    let facts = NodeFacts {
        node_name: settings.node_name.clone(),
        node_ip,
        port: settings.port,
        max_pods: settings.max_pods,
        runtime_version: format!("{}://{}", version.runtime_name, version.runtime_version),
        root_dir: settings.root_dir.clone(),
    };
    let mut tasks = Vec::new();
    let pods = PodSnapshot::default();
    let metrics = Metrics::default();
    let api = match api_config(&settings, node_ip, client.is_some()) {
        Some(config) => {
            let services = server::Services {
                kube: client.clone(),
                cri: Some(runtime.clone()),
                pods: Arc::new(pods.clone()),
                metrics: metrics.clone(),
            };
            let api = server::Server::bind(config, services).await?;
            tracing::info!(address = ?api.local_addr().ok(), "serving the kubelet API");
            Some(api)
        }
        None => {
            tracing::info!(
                "the kubelet API is off: standalone, it serves only with --client-ca-file and --authorization-mode=AlwaysAllow"
            );
            None
        }
    };
    let mut node_uid = None;
    if let Some(client) = &client {
        let uid = register_until_done(client, &facts, &runtime).await;
        node_uid = Some(uid.clone());
        tasks.push(tokio::spawn(node::lease::run(
            client.clone(),
            facts.node_name.clone(),
            uid,
        )));
        tasks.push(tokio::spawn(node::run_status_loop(
            client.clone(),
            facts.clone(),
            runtime.clone(),
            settings.node_status_update_frequency,
        )));
    }

    let ctx = Arc::new(PodContext {
        runtime: runtime.clone(),
        client: client.clone(),
        node: NodeContext {
            node_name: settings.node_name.clone(),
            host_ip: node_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            cluster_dns: settings.cluster_dns.iter().map(ToString::to_string).collect(),
            cluster_domain: settings.cluster_domain.clone(),
            root_dir: settings.root_dir.clone(),
            pod_logs_dir: crate::spec::node::POD_LOGS_ROOT.into(),
        },
        node_uid,
        runtime_name: version.runtime_name.clone(),
        status: StatusManager::spawn(client.clone()),
        pods,
        metrics,
        sysctls: settings.sysctls.clone(),
        known: pods::KnownPods::default(),
        pleg: Arc::new(pods::Pleg::default()),
    });
    tasks.push(tokio::spawn(ctx.pleg.clone().run(runtime.clone())));
    let (events, receiver) = mpsc::unbounded_channel();
    let mut sources = HashSet::new();
    if let Some(client) = &client {
        sources.insert(Source::Api);
        tasks.push(tokio::spawn(pods::source::watch_api(
            client.clone(),
            settings.node_name.clone(),
            events.clone(),
        )));
    }
    if let Some(dir) = &settings.pod_manifest_path {
        sources.insert(Source::File);
        tasks.push(tokio::spawn(pods::source::watch_dir(
            dir.clone(),
            settings.node_name.clone(),
            events.clone(),
        )));
    }
    drop(events);
    let known = ctx.known.clone();
    tasks.push(crate::housekeeping::spawn(
        runtime.clone(),
        crate::housekeeping::HousekeepingSettings {
            image_gc: settings.image_gc.clone(),
            pod_exists: Some(Arc::new(move |uid: &str| known.may_exist(uid))),
            pod_dirs: Some(crate::housekeeping::PodDirs {
                pods: settings.root_dir.join(crate::spec::node::PODS_DIR),
                logs: ctx.node.pod_logs_dir.clone(),
            }),
            ..crate::housekeeping::HousekeepingSettings::default()
        },
    ));
    tasks.push(tokio::spawn(pods::run_manager(ctx, receiver, sources)));
    tracing::info!(node = %settings.node_name, ip = ?node_ip, "kubelet-lite running");

    if let Some(api) = api {
        // Served until the task is aborted at shutdown.
        tasks.push(tokio::spawn(async move {
            if let Err(err) = api.serve(std::future::pending()).await {
                tracing::error!(error = %err, "the kubelet API stopped");
            }
        }));
    }
    shutdown.await;
    tracing::info!("shutting down (pods keep running)");
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        let _ = task.await;
    }
    drop(runtime);
    #[cfg(feature = "embedded")]
    if let Some(embedded) = embedded
        && tokio::time::timeout(EMBEDDED_STOP_TIMEOUT, embedded.shutdown())
            .await
            .is_err()
    {
        tracing::warn!("the embedded runtime did not stop in time (clients still connected)");
    }
    Ok(())
}

/// The apiserver client of kubeconfig `path`. Its client certificate is checked first:
/// rustls refuses an X.509 v1 one with an error that names neither the file nor the
/// cause (`invalid private key: invalid peer certificate: UnsupportedCertVersion`).
async fn api_client(path: &std::path::Path) -> Result<kube::Client, AgentError> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default()).await?;
    let auth = &config.auth_info;
    let client_certificate = match (&auth.client_certificate_data, &auth.client_certificate) {
        (Some(data), _) => base64::Engine::decode(&base64::engine::general_purpose::STANDARD, data.trim())
            .ok()
            .map(|pem| (path.to_path_buf(), pem)),
        (None, Some(file)) => std::fs::read(file).ok().map(|pem| (file.into(), pem)),
        (None, None) => None,
    };
    // What cannot be read or decoded is left for kube to report.
    if let Some((source, pem)) = client_certificate {
        server::tls::refuse_x509_v1_pem(&source, &pem, server::CertificateRole::Client)?;
    }
    Ok(kube::Client::try_from(config)?)
}

/// The kubelet API's configuration, or `None` when it must not be served: standalone
/// (no apiserver to review tokens or authorize), it serves only client certificates of
/// `--client-ca-file` with AlwaysAllow, both asked for explicitly.
fn api_config(settings: &Settings, node_ip: Option<IpAddr>, with_apiserver: bool) -> Option<ServerConfig> {
    let api = &settings.api;
    let always_allow = api.authorization_mode == Some(AuthorizationModeName::AlwaysAllow);
    let standalone_allowed = always_allow && api.client_ca_file.is_some();
    if !(with_apiserver || standalone_allowed) {
        return None;
    }
    let address = SocketAddr::new(api.address.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), settings.port);
    let serving_certificate = match &api.tls_files {
        Some((cert, key)) => ServingCertificate::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        None => ServingCertificate::SelfSigned {
            dns_names: vec![settings.node_name.clone()],
            ips: node_ip
                .into_iter()
                .chain(api.address.filter(|ip| !ip.is_unspecified()))
                .collect(),
        },
    };
    Some(ServerConfig {
        address,
        node_name: settings.node_name.clone(),
        serving_certificate,
        client_ca_file: api.client_ca_file.clone(),
        authentication: AuthenticationConfig {
            anonymous: api.anonymous_auth,
            webhook: with_apiserver,
            ..AuthenticationConfig::default()
        },
        authorization: if always_allow {
            AuthorizationMode::AlwaysAllow
        } else {
            AuthorizationMode::default()
        },
        limits: server::ConnectionLimits::default(),
    })
}

/// Connects to the runtime, waiting up to [`RUNTIME_WAIT`] for it to answer Version.
async fn connect_runtime(endpoint: &str) -> Result<cri_client::Client, AgentError> {
    let error = |source| AgentError::Runtime {
        endpoint: endpoint.to_owned(),
        source,
    };
    let runtime = cri_client::Client::connect_lazy(endpoint, cri_client::Options::default()).map_err(error)?;
    let started = Instant::now();
    loop {
        match runtime.version().await {
            Ok(_) => return Ok(runtime),
            Err(err) if started.elapsed() >= RUNTIME_WAIT => return Err(error(err)),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Registers the node, retrying with a growing back-off ([`RetryPolicy::REGISTRATION`])
/// until the apiserver accepts it; returns its UID.
async fn register_until_done(client: &kube::Client, facts: &NodeFacts, runtime: &cri_client::Client) -> String {
    let mut backoff = RetryBackoff::new(RetryPolicy::REGISTRATION);
    loop {
        let ready = node::status::runtime_ready(runtime).await;
        match node::register::register(client, facts, ready).await {
            Ok(uid) => return uid,
            Err(err) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %err, retry_in = ?delay, "registering the node; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// The first global IPv4 address of this host, from the route to a benchmarking-range
/// address (no packet is sent: a connected UDP socket only picks a source address).
fn detect_node_ip() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("198.18.0.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Args, ConfigFile};

    fn settings(flags: &[&str]) -> Settings {
        let args = <Args as clap::Parser>::try_parse_from(std::iter::once("kubelet-lite").chain(flags.iter().copied()))
            .unwrap();
        Settings::merge(args, ConfigFile::default(), Some("n1".into())).unwrap()
    }

    /// Runs `openssl ARGS` in `dir`.
    fn openssl(dir: &std::path::Path, args: &[&str]) {
        let output = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("running openssl");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }

    #[tokio::test]
    async fn a_kubeconfig_with_a_v1_client_certificate_fails_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        openssl(
            dir.path(),
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                "node.key",
            ],
        );
        openssl(
            dir.path(),
            &[
                "req",
                "-new",
                "-key",
                "node.key",
                "-subj",
                "/CN=system:node:n1/O=system:nodes",
                "-out",
                "node.csr",
            ],
        );
        // `openssl x509 -req` without extensions: X.509 v1.
        openssl(
            dir.path(),
            &[
                "x509", "-req", "-in", "node.csr", "-signkey", "node.key", "-days", "2", "-out", "node.crt",
            ],
        );
        let certificate = std::fs::read(dir.path().join("node.crt")).unwrap();
        let key = std::fs::read(dir.path().join("node.key")).unwrap();
        let encode = |data: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, data);
        let kubeconfig = |user: &str| {
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: n1\n\
                 clusters: [{{name: c, cluster: {{server: 'https://198.18.0.1:6443', insecure-skip-tls-verify: true}}}}]\n\
                 contexts: [{{name: n1, context: {{cluster: c, user: n1}}}}]\n\
                 users: [{{name: n1, user: {{{user}}}}}]\n"
            )
        };
        let inline = dir.path().join("inline.kubeconfig");
        std::fs::write(
            &inline,
            kubeconfig(&format!(
                "client-certificate-data: {}, client-key-data: {}",
                encode(&certificate),
                encode(&key)
            )),
        )
        .unwrap();
        let files = dir.path().join("files.kubeconfig");
        std::fs::write(&files, kubeconfig("client-certificate: node.crt, client-key: node.key")).unwrap();
        for (kubeconfig, named) in [(&inline, inline.clone()), (&files, dir.path().join("node.crt"))] {
            let Err(error) = api_client(kubeconfig).await else {
                panic!("{} was accepted", kubeconfig.display());
            };
            assert!(matches!(error, AgentError::ClientCertificate(_)), "{error:?}");
            let message = error.to_string();
            assert!(message.contains(named.to_str().unwrap()), "{message}");
            assert!(
                message.contains("is X.509 v1") && message.contains("-extfile"),
                "{message}"
            );
        }
    }

    #[test]
    fn with_an_apiserver_the_api_reviews_tokens_and_asks_the_apiserver() {
        let ip: IpAddr = "198.18.61.1".parse().unwrap();
        let config = api_config(&settings(&["--port", "10999"]), Some(ip), true).unwrap();
        assert_eq!(config.address, "0.0.0.0:10999".parse().unwrap());
        assert_eq!(config.authorization, AuthorizationMode::default());
        assert!(config.authentication.webhook && !config.authentication.anonymous);
        assert_eq!(
            config.serving_certificate,
            ServingCertificate::SelfSigned {
                dns_names: vec!["n1".into()],
                ips: vec![ip],
            }
        );
    }

    #[cfg(not(feature = "embedded"))]
    #[tokio::test]
    async fn without_the_embedded_runtime_an_endpoint_must_be_given() {
        let root = tempfile::tempdir().unwrap();
        let error = run(settings(&["--root-dir", root.path().to_str().unwrap()]), async {})
            .await
            .unwrap_err();
        assert!(matches!(error, AgentError::NoRuntimeEndpoint), "{error:?}");
        assert!(error.to_string().contains("--container-runtime-endpoint"), "{error}");
    }

    #[test]
    fn standalone_the_api_serves_only_client_certificates_with_always_allow() {
        assert!(api_config(&settings(&[]), None, false).is_none());
        assert!(api_config(&settings(&["--authorization-mode", "AlwaysAllow"]), None, false).is_none());
        assert!(api_config(&settings(&["--client-ca-file", "/ca.crt"]), None, false).is_none());
        let config = api_config(
            &settings(&["--client-ca-file", "/ca.crt", "--authorization-mode", "AlwaysAllow"]),
            None,
            false,
        )
        .unwrap();
        assert_eq!(config.authorization, AuthorizationMode::AlwaysAllow);
        assert!(!config.authentication.webhook);
    }
}
