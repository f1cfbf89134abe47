//! The kubelet API's security against a real Kubernetes 1.20 control plane: TLS with
//! client certificates from the cluster's CA, bearer tokens reviewed through the real
//! TokenReview API, and authorization through the real SubjectAccessReview API and RBAC.
//!
//! One control plane and one API server (`kubelet_lite::server`, on 127.0.0.1, serving a
//! certificate of the test CA, client CA = the test CA, Webhook authentication and
//! authorization through the credentials of node `node-api`) are shared by all tests.
//! Each test uses users of its own, so RBAC changes and the authorizer's cache do not
//! cross tests. Needs root, etcd, openssl and the Kubernetes binaries (skipped without
//! them, failed with `CI=true`).

mod common;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use common::Identity;
use http::{Method, StatusCode};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubelet_lite::metrics::Metrics;
use kubelet_lite::server::{
    AuthenticationConfig, AuthorizationMode, Server, ServerConfig, Services, ServingCertificate,
};
use test_harness::ControlPlane;
use test_harness::pki::{CertificateSpec, KeyPair, Pki};
use test_harness::suite::{self, Test};
use tokio::io::AsyncReadExt as _;

/// The node the API server serves.
const NODE: &str = "node-api";

/// A pod the server's directory lists.
const LISTED_POD: &str = "listed-pod";

struct Env {
    runtime: tokio::runtime::Runtime,
    address: std::net::SocketAddr,
    ca: std::path::PathBuf,
    admin: KeyPair,
    proxy_user: KeyPair,
    plain_user: KeyPair,
    stranger: KeyPair,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    control_plane: ControlPlane,
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

fn setup() -> anyhow::Result<Env> {
    let control_plane = ControlPlane::start()?;
    let pki = control_plane.pki();
    let serving = pki.issue(
        "node-api-serving",
        &CertificateSpec::server(NODE).with_ips(["127.0.0.1".parse()?]),
    )?;
    let admin = pki.issue("api-admin", &CertificateSpec::client("api-admin", &["system:masters"]))?;
    let proxy_user = pki.issue("proxy-user", &CertificateSpec::client("proxy-user", &["developers"]))?;
    let plain_user = pki.issue("plain-user", &CertificateSpec::client("plain-user", &["developers"]))?;
    let other_ca = Pki::create(&control_plane.dir().join("other-ca"))?;
    let stranger = other_ca.issue("stranger", &CertificateSpec::client("api-admin", &["system:masters"]))?;
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
    let (server, address) = runtime.block_on(async {
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
        let listed = Pod {
            metadata: ObjectMeta {
                name: Some(LISTED_POD.into()),
                namespace: Some("default".into()),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        };
        let services = Services {
            kube: Some(kube),
            cri: None,
            pods: Arc::new(move || vec![listed.clone()]),
            metrics: Metrics::default(),
        };
        let server = Server::bind(config, services).await?;
        let address = server.local_addr()?;
        anyhow::Ok((server, address))
    })?;
    let (shutdown, stop) = tokio::sync::oneshot::channel();
    runtime.spawn(server.serve(async {
        let _ = stop.await;
    }));
    Ok(Env {
        runtime,
        address,
        ca: control_plane.ca_cert().to_path_buf(),
        admin,
        proxy_user,
        plain_user,
        stranger,
        shutdown: Some(shutdown),
        control_plane,
    })
}

impl Env {
    /// Sends `method path` as `identity` and returns the status and body.
    fn call(&self, identity: &Identity<'_>, method: Method, path: &str) -> anyhow::Result<(StatusCode, String)> {
        self.runtime
            .block_on(common::call(self.address, &self.ca, identity, method, path))
    }

    fn expect(
        &self,
        identity: &Identity<'_>,
        method: Method,
        path: &str,
        expected: StatusCode,
    ) -> anyhow::Result<String> {
        let (status, body) = self.call(identity, method.clone(), path)?;
        ensure!(
            status == expected,
            "{method} {path}: {status} (expected {expected}): {body}"
        );
        Ok(body)
    }

    /// A service account's token (1.20 puts it in a secret the token controller makes).
    fn service_account_token(&self, name: &str) -> anyhow::Result<String> {
        self.control_plane
            .kubectl(["create", "serviceaccount", name, "--namespace", "default"])?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let secret = self.control_plane.kubectl([
                "get",
                "serviceaccount",
                name,
                "--namespace",
                "default",
                "-o",
                "jsonpath={.secrets[0].name}",
            ])?;
            if !secret.trim().is_empty() {
                let token = self.control_plane.kubectl([
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
            if Instant::now() > deadline {
                bail!("service account {name} got no token");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn a_request_without_credentials_is_401(env: &Env) -> anyhow::Result<()> {
    env.expect(&Identity::Nobody, Method::GET, "/healthz", StatusCode::UNAUTHORIZED)?;
    env.expect(
        &Identity::Nobody,
        Method::POST,
        "/exec/default/web/app?command=ls&stdout=1",
        StatusCode::UNAUTHORIZED,
    )?;
    env.expect(
        &Identity::Token("not-a-token"),
        Method::GET,
        "/pods",
        StatusCode::UNAUTHORIZED,
    )?;
    Ok(())
}

fn a_certificate_from_another_ca_fails_the_tls_handshake(env: &Env) -> anyhow::Result<()> {
    // In TLS 1.3 the client finishes its side of the handshake before the server has
    // checked the certificate: the server's refusal arrives as an alert on the first read.
    let refusal = env.runtime.block_on(async {
        let identity = Identity::Certificate(&env.stranger);
        let mut stream = match common::connect(env.address, &env.ca, &identity).await {
            Ok(stream) => stream,
            Err(err) => return anyhow::Ok(format!("{err:#}")),
        };
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte)).await {
            Ok(Err(err)) => Ok(err.to_string()),
            Ok(Ok(n)) => bail!("the server accepted the certificate (read {n} bytes)"),
            Err(_) => bail!("the server accepted the certificate (no alert in 10 s)"),
        }
    })?;
    ensure!(refusal.contains("alert"), "expected a TLS alert, got: {refusal}");
    // The same user with a certificate of the cluster's CA is let in.
    env.expect(
        &Identity::Certificate(&env.admin),
        Method::GET,
        "/healthz",
        StatusCode::OK,
    )?;
    Ok(())
}

fn a_user_without_nodes_proxy_gets_403_on_exec(env: &Env) -> anyhow::Result<()> {
    let exec = "/exec/default/web/app?command=ls&stdout=1";
    let body = env.expect(
        &Identity::Certificate(&env.plain_user),
        Method::POST,
        exec,
        StatusCode::FORBIDDEN,
    )?;
    ensure!(
        body.contains("Forbidden (user=plain-user, verb=create, resource=nodes, subresource=proxy)"),
        "{body}"
    );
    let token = env.service_account_token("no-node-access")?;
    let body = env.expect(&Identity::Token(&token), Method::POST, exec, StatusCode::FORBIDDEN)?;
    ensure!(
        body.contains("user=system:serviceaccount:default:no-node-access"),
        "{body}"
    );
    Ok(())
}

fn permitted_users_reach_the_handlers(env: &Env) -> anyhow::Result<()> {
    let body = env.expect(
        &Identity::Certificate(&env.proxy_user),
        Method::GET,
        "/healthz",
        StatusCode::OK,
    )?;
    ensure!(body == "ok", "{body}");
    let pods = env.expect(
        &Identity::Certificate(&env.proxy_user),
        Method::GET,
        "/pods",
        StatusCode::OK,
    )?;
    let pods: serde_json::Value = serde_json::from_str(&pods)?;
    ensure!(pods["kind"] == "PodList", "{pods}");
    ensure!(pods["items"][0]["metadata"]["name"] == LISTED_POD, "{pods}");
    // Past authorization, exec needs a runtime this server was not given.
    env.expect(
        &Identity::Certificate(&env.proxy_user),
        Method::POST,
        "/exec/default/web/app?command=ls&stdout=1",
        StatusCode::SERVICE_UNAVAILABLE,
    )?;
    env.expect(
        &Identity::Certificate(&env.admin),
        Method::GET,
        "/metrics",
        StatusCode::OK,
    )?;

    // A token of a service account bound to nodes/proxy, reviewed by the apiserver.
    let token = env.service_account_token("node-proxy-reader")?;
    env.control_plane.kubectl([
        "create",
        "clusterrolebinding",
        "node-proxy-reader",
        "--clusterrole=node-proxy",
        "--serviceaccount=default:node-proxy-reader",
    ])?;
    let pods = env.expect(&Identity::Token(&token), Method::GET, "/pods", StatusCode::OK)?;
    ensure!(pods.contains(LISTED_POD), "{pods}");
    Ok(())
}

fn other_subresources_need_their_own_permission(env: &Env) -> anyhow::Result<()> {
    let proxy_user = Identity::Certificate(&env.proxy_user);
    let body = env.expect(&proxy_user, Method::GET, "/stats/summary", StatusCode::FORBIDDEN)?;
    ensure!(body.contains("subresource=stats"), "{body}");
    let body = env.expect(&proxy_user, Method::GET, "/metrics", StatusCode::FORBIDDEN)?;
    ensure!(body.contains("subresource=metrics"), "{body}");
    Ok(())
}

fn path_traversal_in_log_and_exec_paths_is_refused(env: &Env) -> anyhow::Result<()> {
    let admin = Identity::Certificate(&env.admin);
    for path in [
        "/containerLogs/default/web/..",
        "/containerLogs/../../etc/passwd",
        "/containerLogs/default/..%2f..%2fetc/passwd",
        "/containerLogs/default/web/%2e%2e",
    ] {
        env.expect(&admin, Method::GET, path, StatusCode::BAD_REQUEST)?;
    }
    for path in [
        "/exec/default/../etc/app?command=ls&stdout=1",
        "/exec/default/web/..%2f..%2fapp?command=ls&stdout=1",
        "/attach/../web/app?stdout=1",
        "/portForward/default/%2e%2e",
    ] {
        env.expect(&admin, Method::POST, path, StatusCode::BAD_REQUEST)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    suite::run(
        setup,
        vec![
            Test::new(
                "a_request_without_credentials_is_401",
                a_request_without_credentials_is_401,
            ),
            Test::new(
                "a_certificate_from_another_ca_fails_the_tls_handshake",
                a_certificate_from_another_ca_fails_the_tls_handshake,
            ),
            Test::new(
                "a_user_without_nodes_proxy_gets_403_on_exec",
                a_user_without_nodes_proxy_gets_403_on_exec,
            ),
            Test::new("permitted_users_reach_the_handlers", permitted_users_reach_the_handlers),
            Test::new(
                "other_subresources_need_their_own_permission",
                other_subresources_need_their_own_permission,
            ),
            Test::new(
                "path_traversal_in_log_and_exec_paths_is_refused",
                path_traversal_in_log_and_exec_paths_is_refused,
            ),
        ],
    )
}
