//! The kubelet API under abuse, against a real Kubernetes 1.20 control plane: thousands
//! of idle connections and slowloris clients do not stop an authorized request and are
//! closed by the server within its deadlines; connections past the caps are closed at
//! once; a flood of random bearer tokens costs a bounded number of TokenReviews, counted
//! by the server and by the apiserver's own `apiserver_request_total`.
//!
//! One control plane and three API servers (`kubelet_lite::server` on 127.0.0.1, a
//! serving certificate of the test CA, client CA = the test CA, Webhook authentication
//! and authorization through the credentials of node `node-abuse`), one per test, so
//! tests running in parallel do not share connection slots or review budgets. Abusive
//! clients connect from other loopback addresses (127.0.0.2 and up) than the authorized
//! ones (127.0.0.1), as they would from other hosts. Needs root, etcd, openssl, the
//! Kubernetes binaries and a file descriptor limit of at least [`NOFILE_NEEDED`]
//! (skipped without them, failed with `CI=true`).

mod common;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use common::Identity;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use kubelet_lite::metrics::Metrics;
use kubelet_lite::server::{
    AuthenticationConfig, AuthorizationMode, ConnectionLimits, Server, ServerConfig, Services, ServingCertificate,
    TokenReviewCounts, tls,
};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use rustls::pki_types::ServerName;
use test_harness::pki::{CertificateSpec, KeyPair};
use test_harness::suite::{self, Test};
use test_harness::{ControlPlane, Missing, note};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The node the API servers serve.
const NODE: &str = "node-abuse";

/// The idle TCP connections of the slowloris test.
const IDLE_CONNECTIONS: usize = 2000;

/// The loopback addresses the idle connections come from, [`IDLE_CONNECTIONS`] spread
/// over them (each under the per-address cap).
const IDLE_SOURCES: u8 = 8;

/// The slowloris clients of each kind (in the TLS handshake, in the request head).
const SLOWLORIS_CLIENTS: usize = 3;

/// How often a slowloris client sends its next byte.
const SLOWLORIS_PACE: Duration = Duration::from_secs(1);

/// The limits of the server of the slowloris test: deadlines short enough for a test,
/// a cap above the idle connections plus the authorized ones.
const ABUSE_LIMITS: ConnectionLimits = ConnectionLimits {
    handshake_timeout: Duration::from_secs(4),
    header_read_timeout: Duration::from_secs(6),
    max_connections: 2500,
    max_connections_per_address: 300,
    max_buffer_bytes: 64 * 1024,
};

/// The limits of the server of the caps test.
const CAPS_LIMITS: ConnectionLimits = ConnectionLimits {
    handshake_timeout: Duration::from_secs(30),
    header_read_timeout: Duration::from_secs(30),
    max_connections: 48,
    max_connections_per_address: 16,
    max_buffer_bytes: 64 * 1024,
};

/// How late after its deadline the server may close a connection (scheduling on a busy
/// two-core machine running tests in parallel).
const CLOSE_SLACK: Duration = Duration::from_secs(3);

/// Requests with random bearer tokens in the flood test.
const FLOOD_REQUESTS: usize = 10_000;

/// The loopback addresses the flood comes from.
const FLOOD_SOURCES: u8 = 10;

/// Keep-alive connections per flood source, each sending its share of requests in turn.
const FLOOD_CONNECTIONS_PER_SOURCE: usize = 5;

/// The file descriptors the test needs: both ends of every idle connection, and room.
const NOFILE_NEEDED: u64 = 8192;

/// A running API server of the test.
struct Served {
    address: SocketAddr,
    reviews: TokenReviewCounts,
    limits: ConnectionLimits,
}

struct Env {
    runtime: tokio::runtime::Runtime,
    ca: PathBuf,
    proxy_user: KeyPair,
    abuse: Served,
    caps: Served,
    flood: Served,
    shutdown: Vec<tokio::sync::oneshot::Sender<()>>,
    control_plane: ControlPlane,
}

impl Drop for Env {
    fn drop(&mut self) {
        for shutdown in self.shutdown.drain(..) {
            let _ = shutdown.send(());
        }
    }
}

/// Raises the soft file descriptor limit to the hard one (at most 65536): the idle
/// connections hold both their ends in this process.
fn raise_nofile_limit() -> anyhow::Result<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    let wanted = hard.min(65536).max(soft);
    if wanted < NOFILE_NEEDED {
        return Err(Missing::new([format!(
            "a file descriptor limit (RLIMIT_NOFILE) of at least {NOFILE_NEEDED} (hard limit {hard}; `ulimit -Hn`)"
        )])
        .into());
    }
    setrlimit(Resource::RLIMIT_NOFILE, wanted, hard)?;
    Ok(wanted)
}

fn setup() -> anyhow::Result<Env> {
    let nofile = raise_nofile_limit()?;
    note(format!("file descriptor limit raised to {nofile}"));
    let control_plane = ControlPlane::start()?;
    let pki = control_plane.pki();
    let serving = pki.issue(
        "node-abuse-serving",
        &CertificateSpec::server(NODE).with_ips(["127.0.0.1".parse()?]),
    )?;
    let proxy_user = pki.issue("proxy-user", &CertificateSpec::client("proxy-user", &["developers"]))?;
    control_plane.kubectl([
        "create",
        "clusterrole",
        "node-proxy",
        "--verb=get,create",
        "--resource=nodes/proxy",
    ])?;
    control_plane.kubectl([
        "create",
        "clusterrolebinding",
        "proxy-user-node-proxy",
        "--clusterrole=node-proxy",
        "--user=proxy-user",
    ])?;
    let node_kubeconfig = control_plane.node_kubeconfig(NODE)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut shutdown = Vec::new();
    let mut start = |limits: ConnectionLimits| -> anyhow::Result<Served> {
        let server = runtime.block_on(async {
            let kubeconfig = kube::config::Kubeconfig::read_from(&node_kubeconfig)?;
            let config =
                kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default()).await?;
            let kube = kube::Client::try_from(config)?;
            let mut config = ServerConfig::new(NODE, "127.0.0.1:0".parse()?);
            config.serving_certificate = ServingCertificate::Files {
                cert: serving.cert.clone(),
                key: serving.key.clone(),
            };
            config.client_ca_file = Some(control_plane.ca_cert().to_path_buf());
            config.authentication = AuthenticationConfig::default();
            config.authorization = AuthorizationMode::default();
            config.limits = limits;
            let services = Services {
                kube: Some(kube),
                cri: None,
                pods: Arc::new(Vec::new),
                metrics: Metrics::default(),
            };
            anyhow::Ok(Server::bind(config, services).await?)
        })?;
        let served = Served {
            address: server.local_addr()?,
            reviews: server.token_reviews(),
            limits: server.limits(),
        };
        ensure!(
            served.limits == limits,
            "the server lowered its limits to {:?}",
            served.limits
        );
        let (stop, stopped) = tokio::sync::oneshot::channel();
        runtime.spawn(server.serve(async {
            let _ = stopped.await;
        }));
        shutdown.push(stop);
        Ok(served)
    };
    let abuse = start(ABUSE_LIMITS)?;
    let caps = start(CAPS_LIMITS)?;
    let flood = start(ConnectionLimits::default())?;
    Ok(Env {
        ca: control_plane.ca_cert().to_path_buf(),
        runtime,
        proxy_user,
        abuse,
        caps,
        flood,
        shutdown,
        control_plane,
    })
}

/// Loopback address `127.0.0.N`: one client host of the test.
fn source(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, n)
}

/// A TCP connection from `from` to `to`.
async fn tcp_from(from: Ipv4Addr, to: SocketAddr) -> anyhow::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from.into(), 0))?;
    Ok(socket.connect(to).await?)
}

/// A TLS connection from `from` to `to`, presenting `client`'s certificate if given.
async fn tls_from(
    from: Ipv4Addr,
    to: SocketAddr,
    ca: &Path,
    client: Option<&KeyPair>,
) -> anyhow::Result<TlsStream<TcpStream>> {
    let config = tls::client_config(ca, client.map(|pair| (pair.cert.as_path(), pair.key.as_path())))?;
    let stream = tcp_from(from, to).await?;
    let name = ServerName::try_from("127.0.0.1")?.to_owned();
    Ok(TlsConnector::from(Arc::new(config)).connect(name, stream).await?)
}

/// Reads `stream` until the server closes it (end of stream or an error such as a
/// reset), at most until `deadline`; returns when it closed, or `None` if it was still
/// open at the deadline.
async fn closed_by(mut stream: impl AsyncRead + Unpin, deadline: tokio::time::Instant) -> Option<tokio::time::Instant> {
    let mut buffer = [0u8; 512];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return Some(tokio::time::Instant::now()),
            Ok(Ok(_)) => {}
            Err(_) => return None,
        }
    }
}

/// The smallest and largest of `durations`.
fn spread(durations: &[Duration]) -> (Duration, Duration) {
    let min = durations.iter().min().copied().unwrap_or_default();
    let max = durations.iter().max().copied().unwrap_or_default();
    (min, max)
}

/// An authorized `GET path` (client certificate of `proxy-user`, from 127.0.0.1):
/// its status and how long it took.
fn authorized_get(env: &Env, address: SocketAddr, path: &str) -> anyhow::Result<(StatusCode, Duration)> {
    let started = Instant::now();
    let (status, body) = env.runtime.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(10),
            common::call(
                address,
                &env.ca,
                &Identity::Certificate(&env.proxy_user),
                Method::GET,
                path,
            ),
        )
        .await
        .with_context(|| format!("GET {path} took more than 10 s"))?
    })?;
    ensure!(status == StatusCode::OK, "GET {path}: {status}: {body}");
    Ok((status, started.elapsed()))
}

fn idle_and_slowloris_connections_do_not_stop_an_authorized_request(env: &Env) -> anyhow::Result<()> {
    let server = env.abuse.address;
    let limits = env.abuse.limits;
    let handshake_deadline = limits.handshake_timeout + CLOSE_SLACK;
    let header_deadline = limits.header_read_timeout + CLOSE_SLACK;

    // 2,000 TCP connections that never send a byte, each watched for its closing.
    let opening = Instant::now();
    let idle = env.runtime.block_on(async {
        let mut watchers = Vec::with_capacity(IDLE_CONNECTIONS);
        for i in 0..IDLE_CONNECTIONS {
            let from = source(2 + (i % usize::from(IDLE_SOURCES)) as u8);
            let stream = tcp_from(from, server)
                .await
                .with_context(|| format!("idle connection {i}"))?;
            let opened = tokio::time::Instant::now();
            watchers.push(tokio::spawn(async move {
                closed_by(stream, opened + handshake_deadline)
                    .await
                    .map(|closed| closed - opened)
            }));
        }
        anyhow::Ok(watchers)
    })?;
    note(format!(
        "{IDLE_CONNECTIONS} idle connections opened in {:.2?}",
        opening.elapsed()
    ));

    // Slowloris in the TLS handshake: a ClientHello a byte at a time.
    let handshake_slowloris: Vec<_> = (0..SLOWLORIS_CLIENTS)
        .map(|_| {
            env.runtime.spawn(async move {
                let stream = tcp_from(source(20), server).await?;
                let opened = tokio::time::Instant::now();
                let (reader, mut writer) = tokio::io::split(stream);
                let dripping = tokio::spawn(async move {
                    // A TLS record header, then the start of a ClientHello.
                    for byte in [0x16u8, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]
                        .into_iter()
                        .cycle()
                    {
                        tokio::time::sleep(SLOWLORIS_PACE).await;
                        if writer.write_all(&[byte]).await.is_err() {
                            return;
                        }
                    }
                });
                let closed = closed_by(reader, opened + handshake_deadline).await;
                dripping.abort();
                anyhow::Ok(closed.map(|closed| closed - opened))
            })
        })
        .collect();

    // Slowloris in the request head: a completed handshake, then a header a byte at a time.
    let ca = env.ca.clone();
    let header_slowloris: Vec<_> = (0..SLOWLORIS_CLIENTS)
        .map(|_| {
            let ca = ca.clone();
            env.runtime.spawn(async move {
                let stream = tls_from(source(21), server, &ca, None).await?;
                let opened = tokio::time::Instant::now();
                let (reader, mut writer) = tokio::io::split(stream);
                let dripping = tokio::spawn(async move {
                    for byte in b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
                        .iter()
                        .chain(b"a".repeat(1000).iter())
                    {
                        tokio::time::sleep(SLOWLORIS_PACE).await;
                        if writer.write_all(&[*byte]).await.is_err() || writer.flush().await.is_err() {
                            return;
                        }
                    }
                });
                let closed = closed_by(reader, opened + header_deadline).await;
                dripping.abort();
                anyhow::Ok(closed.map(|closed| closed - opened))
            })
        })
        .collect();

    // A kept-alive connection left idle after one authorized request.
    let keep_alive = env.runtime.block_on(async {
        let stream = tls_from(source(1), server, &env.ca, Some(&env.proxy_user)).await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let connection = tokio::spawn(connection);
        let request = Request::get("/healthz")
            .header("host", server.to_string())
            .body(Empty::<Bytes>::new())?;
        let response = sender.send_request(request).await?;
        ensure!(response.status() == StatusCode::OK, "{}", response.status());
        response.into_body().collect().await?;
        let answered = tokio::time::Instant::now();
        anyhow::Ok(tokio::spawn(async move {
            // The client keeps its side open (its sender alive) until the server closes.
            let ended = tokio::time::timeout(header_deadline, connection).await.is_ok();
            drop(sender);
            ended.then(|| answered.elapsed())
        }))
    })?;

    // While all of them are open, authorized requests are answered.
    let mut latencies = Vec::new();
    for path in ["/healthz", "/pods", "/healthz", "/pods"] {
        let (_, took) = authorized_get(env, server, path)?;
        latencies.push(took);
        std::thread::sleep(Duration::from_millis(500));
    }
    let (fastest, slowest) = spread(&latencies);
    note(format!(
        "authorized GET /healthz and /pods among {IDLE_CONNECTIONS} idle and {} slowloris connections: {fastest:.2?} to {slowest:.2?}",
        2 * SLOWLORIS_CLIENTS
    ));

    // Each was closed by the server within its deadline.
    env.runtime.block_on(async {
        let mut idle_closed = Vec::new();
        for (i, watcher) in idle.into_iter().enumerate() {
            match watcher.await? {
                Some(after) => idle_closed.push(after),
                None => bail!("idle connection {i} still open {handshake_deadline:?} after it was opened"),
            }
        }
        let (first, last) = spread(&idle_closed);
        note(format!(
            "{} idle connections closed by the server {first:.2?} to {last:.2?} after opening (handshake timeout {:?})",
            idle_closed.len(),
            limits.handshake_timeout
        ));
        ensure!(
            first >= limits.handshake_timeout.saturating_sub(Duration::from_millis(500)),
            "an idle connection was closed after {first:?}, before the handshake timeout"
        );
        for (kind, clients, timeout) in [
            ("in the handshake", handshake_slowloris, limits.handshake_timeout),
            ("in the request head", header_slowloris, limits.header_read_timeout),
        ] {
            let mut closed = Vec::new();
            for client in clients {
                match client.await?? {
                    Some(after) => closed.push(after),
                    None => bail!("a slowloris client {kind} was still connected {:?} after its start", timeout + CLOSE_SLACK),
                }
            }
            let (first, last) = spread(&closed);
            note(format!(
                "slowloris clients {kind} (a byte every {SLOWLORIS_PACE:?}) closed {first:.2?} to {last:.2?} after they began (timeout {timeout:?})"
            ));
            ensure!(
                first >= timeout.saturating_sub(Duration::from_millis(500)),
                "a slowloris client {kind} was closed after {first:?}, before its timeout {timeout:?}"
            );
        }
        match keep_alive.await? {
            Some(after) => {
                note(format!(
                    "an idle kept-alive connection closed {after:.2?} after its last answer (header read timeout {:?})",
                    limits.header_read_timeout
                ));
                ensure!(
                    after >= limits.header_read_timeout.saturating_sub(Duration::from_millis(500)),
                    "the idle kept-alive connection was closed after {after:?}, before the timeout"
                );
            }
            None => bail!("an idle kept-alive connection was still open {header_deadline:?} after its last answer"),
        }
        anyhow::Ok(())
    })?;

    // And the server still serves.
    authorized_get(env, server, "/pods")?;
    Ok(())
}

fn connections_over_the_caps_are_closed_at_once(env: &Env) -> anyhow::Result<()> {
    let server = env.caps.address;
    let limits = env.caps.limits;
    let at_once = Duration::from_millis(1000);
    env.runtime.block_on(async {
        let mut held = Vec::new();
        // One client address fills its share; its next connection is closed at once.
        for _ in 0..limits.max_connections_per_address {
            held.push(tcp_from(source(30), server).await?);
        }
        let over = tcp_from(source(30), server).await?;
        let started = tokio::time::Instant::now();
        let closed = closed_by(over, started + at_once).await;
        ensure!(
            closed.is_some(),
            "connection {} from one address was not closed at once",
            limits.max_connections_per_address + 1
        );
        note(format!(
            "connection {} from one address closed after {:.2?}",
            limits.max_connections_per_address + 1,
            closed.map(|closed| closed - started).unwrap_or_default()
        ));
        // Other addresses fill the rest; then a connection from anywhere is closed at once.
        let mut n = 31;
        while held.len() < limits.max_connections {
            for _ in 0..limits
                .max_connections_per_address
                .min(limits.max_connections - held.len())
            {
                held.push(tcp_from(source(n), server).await?);
            }
            n += 1;
        }
        let over = tcp_from(source(n), server).await?;
        let started = tokio::time::Instant::now();
        ensure!(
            closed_by(over, started + at_once).await.is_some(),
            "connection {} was not closed at once",
            limits.max_connections + 1
        );
        // The connections within the caps were kept.
        for stream in &held {
            let mut byte = [0u8; 1];
            ensure!(
                tokio::time::timeout(Duration::from_millis(20), stream.peek(&mut byte))
                    .await
                    .is_err(),
                "a connection within the caps was closed"
            );
        }
        note(format!(
            "{} connections within the caps kept; connection {} closed at once",
            held.len(),
            limits.max_connections + 1
        ));
        drop(held);
        anyhow::Ok(())
    })?;
    // Their slots given back, an authorized request is served again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match authorized_get(env, server, "/healthz") {
            Ok(_) => return Ok(()),
            Err(err) if Instant::now() > deadline => return Err(err.context("after the held connections closed")),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The TokenReviews the apiserver has answered: the sum of its
/// `apiserver_request_total{resource="tokenreviews"}` series.
fn apiserver_token_reviews(control_plane: &ControlPlane) -> anyhow::Result<u64> {
    let metrics = control_plane.kubectl(["get", "--raw", "/metrics"])?;
    let mut total = 0;
    for line in metrics.lines() {
        if line.starts_with("apiserver_request_total{") && line.contains("resource=\"tokenreviews\"") {
            let value = line.rsplit(' ').next().unwrap_or_default();
            total += value.parse::<f64>().with_context(|| format!("metric line {line:?}"))? as u64;
        }
    }
    Ok(total)
}

/// A service account's token (1.20 puts it in a secret the token controller makes),
/// bound to `nodes/proxy`.
fn node_proxy_token(control_plane: &ControlPlane, name: &str) -> anyhow::Result<String> {
    control_plane.kubectl(["create", "serviceaccount", name, "--namespace", "default"])?;
    control_plane.kubectl([
        "create",
        "clusterrolebinding",
        name,
        "--clusterrole=node-proxy",
        &format!("--serviceaccount=default:{name}"),
    ])?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let secret = control_plane.kubectl([
            "get",
            "serviceaccount",
            name,
            "--namespace",
            "default",
            "-o",
            "jsonpath={.secrets[0].name}",
        ])?;
        if !secret.trim().is_empty() {
            let token = control_plane.kubectl([
                "get",
                "secret",
                secret.trim(),
                "--namespace",
                "default",
                "-o",
                "go-template={{.data.token | base64decode}}",
            ])?;
            return Ok(token.trim().to_owned());
        }
        ensure!(Instant::now() < deadline, "service account {name} got no token");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `GET /pods` with bearer `token` from 127.0.0.1, retried as `Retry-After` says while
/// the answer is 429, for at most 10 s.
fn get_pods_with_token(env: &Env, token: &str) -> anyhow::Result<StatusCode> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = env.runtime.block_on(common::call(
            env.flood.address,
            &env.ca,
            &Identity::Token(token),
            Method::GET,
            "/pods",
        ))?;
        if status != StatusCode::TOO_MANY_REQUESTS || Instant::now() > deadline {
            ensure!(
                status == StatusCode::OK,
                "GET /pods with a valid token: {status}: {body}"
            );
            return Ok(status);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// A random token shaped like a service account's JWT.
fn random_token(seed: &RandomState, i: usize) -> String {
    let part = |n: u64| format!("{:016x}{:016x}", seed.hash_one((i, n)), seed.hash_one((n, i)));
    format!("eyJhbGciOiJSUzI1NiJ9.{}.{}", part(1), part(2))
}

fn random_bearer_tokens_cause_a_bounded_number_of_token_reviews(env: &Env) -> anyhow::Result<()> {
    let server = env.flood.address;
    let budget = AuthenticationConfig::default();
    // A valid token reviewed (and cached) before the flood.
    let valid = node_proxy_token(&env.control_plane, "flood-witness")?;
    get_pods_with_token(env, &valid)?;

    let apiserver_before = apiserver_token_reviews(&env.control_plane)?;
    let sent_before = env.flood.reviews.sent();
    let started = Instant::now();
    let seed = RandomState::new();
    let connections = usize::from(FLOOD_SOURCES) * FLOOD_CONNECTIONS_PER_SOURCE;
    let per_connection = FLOOD_REQUESTS / connections;
    let statuses = env.runtime.block_on(async {
        let mut senders = Vec::new();
        for c in 0..connections {
            let (ca, seed) = (env.ca.clone(), seed.clone());
            let from = source(40 + (c % usize::from(FLOOD_SOURCES)) as u8);
            senders.push(tokio::spawn(async move {
                let stream = tls_from(from, server, &ca, None).await?;
                let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                tokio::spawn(connection);
                let mut statuses = Vec::with_capacity(per_connection);
                for r in 0..per_connection {
                    let request = Request::get("/pods")
                        .header("host", server.to_string())
                        .header(
                            "authorization",
                            format!("Bearer {}", random_token(&seed, c * per_connection + r)),
                        )
                        .body(Empty::<Bytes>::new())?;
                    let response = sender.send_request(request).await?;
                    statuses.push(response.status());
                    response.into_body().collect().await?;
                }
                anyhow::Ok(statuses)
            }));
        }
        let mut all = Vec::new();
        for sender in senders {
            all.extend(sender.await??);
        }
        anyhow::Ok(all)
    })?;
    let elapsed = started.elapsed();
    let sent = env.flood.reviews.sent() - sent_before;
    // The valid token, cached before the flood, still works right after it.
    get_pods_with_token(env, &valid)?;
    let apiserver = apiserver_token_reviews(&env.control_plane)? - apiserver_before;

    let unauthorized = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    let throttled = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    ensure!(
        unauthorized + throttled == FLOOD_REQUESTS,
        "of {FLOOD_REQUESTS} requests with random tokens, {unauthorized} were 401 and {throttled} 429"
    );
    // At most the burst of the budget in all, plus what it earned during the flood.
    let in_all = budget.failed_reviews_in_all;
    let bound = u64::from(in_all.burst) + (elapsed.as_secs_f64() / in_all.refill.as_secs_f64()).ceil() as u64;
    note(format!(
        "{FLOOD_REQUESTS} requests with random tokens from {FLOOD_SOURCES} addresses in {elapsed:.2?}: \
         {unauthorized} answered 401, {throttled} 429; TokenReviews sent {sent} (server's count), \
         {apiserver} (apiserver's count); bound {bound}"
    ));
    ensure!(sent <= bound, "{sent} TokenReviews sent, more than the bound {bound}");
    ensure!(
        apiserver <= bound + 1,
        "the apiserver answered {apiserver} TokenReviews, more than the bound {bound}"
    );

    // A valid token never seen before is reviewed once the budget allows (Retry-After).
    let fresh = node_proxy_token(&env.control_plane, "flood-newcomer")?;
    get_pods_with_token(env, &fresh)?;
    Ok(())
}

fn main() -> ExitCode {
    suite::run(
        setup,
        vec![
            Test::new(
                "idle_and_slowloris_connections_do_not_stop_an_authorized_request",
                idle_and_slowloris_connections_do_not_stop_an_authorized_request,
            ),
            Test::new(
                "connections_over_the_caps_are_closed_at_once",
                connections_over_the_caps_are_closed_at_once,
            ),
            Test::new(
                "random_bearer_tokens_cause_a_bounded_number_of_token_reviews",
                random_bearer_tokens_cause_a_bounded_number_of_token_reviews,
            ),
        ],
    )
}
