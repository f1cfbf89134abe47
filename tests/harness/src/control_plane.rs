//! A real Kubernetes 1.20 control plane private to one test environment: etcd,
//! kube-apiserver, kube-controller-manager and kube-scheduler on 127.0.0.1, free ports,
//! a throw-away CA, and `kubectl` (1.32, preinstalled) to drive it.
//!
//! The Kubernetes binaries come from Debian's `kubernetes` source package, built once per
//! machine by `scripts/build-kubernetes.sh` into [`DEFAULT_KUBERNETES_BIN_DIR`] (or the
//! directory named by `KUBELET_LITE_KUBERNETES_BIN`); etcd is Debian's `etcd-server`.
//! Without them [`ControlPlane::start`] fails with [`crate::Missing`] (an ignored test
//! outside CI, a failure with `CI=true`).
//!
//! What runs, all under `setpriv --pdeathsig KILL` with a log file each in the scratch
//! directory (see [`crate::process`]):
//!
//! - etcd on `127.0.0.1` (client and peer ports free ports), data in the scratch directory;
//! - kube-apiserver on `https://127.0.0.1:PORT` (no insecure port): client certificates
//!   from the test CA, `--authorization-mode Node,RBAC`, NodeRestriction on top of the
//!   default admission plugins, services in [`SERVICE_CLUSTER_IP_RANGE`], service account
//!   tokens signed by a key of its own, and a client certificate (`O=system:masters`) for
//!   its connections to kubelets, which it reaches on their `InternalIP`;
//! - kube-controller-manager with one service account per controller, signing the
//!   service account tokens and the certificate signing requests with the test keys;
//! - kube-scheduler.
//!
//! No component serves anything else (health and metrics ports are off), and
//! [`ControlPlane::start`] returns once `/readyz` answers `ok` and the `default` service
//! account of the `default` namespace has its token (pods cannot be created before).
//!
//! ```no_run
//! use test_harness::ControlPlane;
//!
//! # fn f() -> anyhow::Result<()> {
//! let control_plane = ControlPlane::start()?;
//! let namespaces = control_plane.kubectl(["get", "namespaces", "-o", "name"])?;
//! assert!(namespaces.contains("namespace/kube-system"));
//! let node = control_plane.node_kubeconfig("node-1")?; // for a kubelet
//! # Ok(()) }
//! ```

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::output::tail_from;
use crate::pki::{CertificateSpec, KeyPair, Pki, ServiceAccountKeys};
use crate::scratch::{self, ScratchDir};
use crate::{Missing, process};

/// The Kubernetes version of the binaries the harness runs.
pub const KUBERNETES_VERSION: &str = "1.20.2";

/// Where `scripts/build-kubernetes.sh` caches the Kubernetes binaries.
pub const DEFAULT_KUBERNETES_BIN_DIR: &str = "/var/cache/kubelet-lite/kubernetes-1.20.2/bin";

/// The environment variable naming another directory of Kubernetes binaries.
pub const KUBERNETES_BIN_VARIABLE: &str = "KUBELET_LITE_KUBERNETES_BIN";

/// The service network of the control plane (in the test range 198.18.0.0/15).
pub const SERVICE_CLUSTER_IP_RANGE: &str = "198.19.0.0/16";

/// The host tools a control plane needs besides the Kubernetes binaries.
pub const CONTROL_PLANE_TOOLS: &[&str] = &["etcd", "kubectl", "setpriv"];

/// The Kubernetes binaries a control plane runs, from [`kubernetes_bin_dir`].
pub const CONTROL_PLANE_BINARIES: &[&str] = &["kube-apiserver", "kube-controller-manager", "kube-scheduler"];

/// The issuer of the service account tokens.
const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// How long SIGTERM has to stop a component before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How often readiness checks run `kubectl`.
const KUBECTL_POLL: Duration = Duration::from_millis(200);

/// The directory holding the Kubernetes binaries: `KUBELET_LITE_KUBERNETES_BIN` if set,
/// else [`DEFAULT_KUBERNETES_BIN_DIR`].
pub fn kubernetes_bin_dir() -> PathBuf {
    std::env::var_os(KUBERNETES_BIN_VARIABLE)
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_KUBERNETES_BIN_DIR))
}

/// The paths of Kubernetes binaries `names` in [`kubernetes_bin_dir`], or a [`Missing`]
/// naming every absent one and how to build it.
pub fn kubernetes_binaries(names: &[&str]) -> Result<Vec<PathBuf>, Missing> {
    let dir = kubernetes_bin_dir();
    let paths: Vec<PathBuf> = names.iter().map(|name| dir.join(name)).collect();
    let missing: Vec<String> = (names.iter().zip(&paths))
        .filter(|(_, path)| crate::find_tool(&path.to_string_lossy()).is_none())
        .map(|(name, path)| {
            format!(
                "{name} {KUBERNETES_VERSION} at {} (build it with scripts/build-kubernetes.sh)",
                path.display()
            )
        })
        .collect();
    if missing.is_empty() {
        Ok(paths)
    } else {
        Err(Missing::new(missing))
    }
}

/// What may differ between two control planes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPlaneOptions {
    /// `--service-cluster-ip-range`. Default [`SERVICE_CLUSTER_IP_RANGE`].
    pub service_cluster_ip_range: String,
    /// How long everything may take to become ready. Default 120 s (the apiserver alone
    /// takes several seconds on two busy cores).
    pub start_timeout: Duration,
    /// The `--v` log level of the Kubernetes components. Default 1.
    pub verbosity: u8,
    /// With a CIDR, the controller-manager allocates each Node a /24 of it in
    /// `spec.podCIDRs` (`--allocate-node-cidrs --cluster-cidr`). Default `None`: no
    /// allocation.
    pub cluster_cidr: Option<String>,
}

impl Default for ControlPlaneOptions {
    fn default() -> ControlPlaneOptions {
        ControlPlaneOptions {
            service_cluster_ip_range: SERVICE_CLUSTER_IP_RANGE.into(),
            start_timeout: Duration::from_secs(120),
            verbosity: 1,
            cluster_cidr: None,
        }
    }
}

/// One process of the control plane.
#[derive(Debug)]
struct Component {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

/// A running control plane. Dropping it stops every component (scheduler and
/// controller-manager first, etcd last) and removes its files.
#[derive(Debug)]
pub struct ControlPlane {
    options: ControlPlaneOptions,
    pki: Pki,
    api_port: u16,
    admin_kubeconfig: PathBuf,
    kubectl: PathBuf,
    kubectl_cache: PathBuf,
    components: Vec<Component>,
    cleaned: bool,
    dir: ScratchDir,
}

impl ControlPlane {
    /// Starts a control plane with the default options; see the module documentation.
    ///
    /// Fails with [`crate::Missing`] in the chain if a binary or tool is absent or not root.
    pub fn start() -> anyhow::Result<ControlPlane> {
        ControlPlane::start_with(ControlPlaneOptions::default())
    }

    /// Starts a control plane with `options`; see [`ControlPlane::start`].
    pub fn start_with(options: ControlPlaneOptions) -> anyhow::Result<ControlPlane> {
        crate::require_root()?;
        let tools = crate::require_tools(CONTROL_PLANE_TOOLS);
        let binaries = kubernetes_binaries(CONTROL_PLANE_BINARIES);
        let (apiserver, controller_manager, scheduler) = match (tools, binaries) {
            (Ok(()), Ok(binaries)) => (binaries[0].clone(), binaries[1].clone(), binaries[2].clone()),
            (tools, binaries) => {
                let items = (tools.err().into_iter().chain(binaries.err()))
                    .flat_map(|missing| missing.items().to_vec())
                    .collect::<Vec<_>>();
                return Err(Missing::new(items).into());
            }
        };
        let started = Instant::now();
        scratch::reap_stale();
        let dir = ScratchDir::create("control-plane").context("creating the control plane's scratch directory")?;
        let pki = Pki::create(&dir.path().join("pki"))?;
        let mut control_plane = ControlPlane {
            options,
            pki,
            api_port: 0,
            admin_kubeconfig: dir.path().join("admin.kubeconfig"),
            kubectl: crate::find_tool("kubectl").unwrap_or_else(|| "kubectl".into()),
            kubectl_cache: dir.path().join("kubectl-cache"),
            components: Vec::new(),
            cleaned: false,
            dir,
        };
        // From here on, a failure drops `control_plane`, which stops what started.
        let deadline = started + control_plane.options.start_timeout;
        let etcd_url = control_plane.start_etcd(deadline)?;
        let service_account = control_plane.pki.service_account_keys()?;
        control_plane.start_apiserver(&apiserver, &etcd_url, &service_account, deadline)?;
        let api_ready = started.elapsed();
        control_plane.start_controller_manager(&controller_manager, &service_account)?;
        control_plane.start_scheduler(&scheduler)?;
        control_plane.wait_for_service_account_token("default", "default", deadline)?;
        crate::note(format!(
            "Kubernetes {KUBERNETES_VERSION} control plane ready in {:.2?} (apiserver {} after {api_ready:.2?})",
            started.elapsed(),
            control_plane.server()
        ));
        Ok(control_plane)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts `program` with `args` as component `name`, logging to `NAME.log`.
    fn spawn<I, S>(&mut self, name: &'static str, program: &Path, args: I) -> anyhow::Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let log = self.path(&format!("{name}.log"));
        let file = OpenOptions::new().create(true).append(true).open(&log)?;
        let mut command = process::daemon_command(program);
        command
            .args(args)
            // Nothing here uses a cloud; keep the AWS SDK they link off the metadata address.
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        let child = process::spawn_daemon(command).with_context(|| format!("starting {name}"))?;
        self.components.push(Component { name, child, log });
        Ok(())
    }

    /// Fails, with the component's log tail, if a component has exited.
    fn check_alive(&mut self) -> anyhow::Result<()> {
        for component in &mut self.components {
            if let Some(status) = component.child.try_wait()? {
                bail!(
                    "{} exited with {status}; its log ends with:\n{}",
                    component.name,
                    tail_from(&component.log, 0, 30)
                );
            }
        }
        Ok(())
    }

    /// Polls `check` until it returns `Some`, a component dies or `deadline` passes.
    fn wait_for<T>(
        &mut self,
        what: &str,
        deadline: Instant,
        mut check: impl FnMut(&ControlPlane) -> anyhow::Result<Option<T>>,
    ) -> anyhow::Result<T> {
        let mut last_error = None;
        loop {
            self.check_alive()?;
            match check(self) {
                Ok(Some(value)) => return Ok(value),
                Ok(None) => {}
                Err(err) => last_error = Some(err),
            }
            if Instant::now() >= deadline {
                let error = last_error.unwrap_or_else(|| anyhow::anyhow!("not yet"));
                return Err(error.context(format!("{what}: not ready in time")));
            }
            std::thread::sleep(KUBECTL_POLL);
        }
    }

    fn start_etcd(&mut self, deadline: Instant) -> anyhow::Result<String> {
        let (client_port, peer_port) = (free_port()?, free_port()?);
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let data_dir = self.path("etcd");
        let etcd = crate::find_tool("etcd").unwrap_or_else(|| "etcd".into());
        let flags: Vec<(&str, String)> = vec![
            ("--name", "control-plane".into()),
            ("--data-dir", display(&data_dir)),
            ("--listen-client-urls", client_url.clone()),
            ("--advertise-client-urls", client_url.clone()),
            ("--listen-peer-urls", peer_url.clone()),
            ("--initial-advertise-peer-urls", peer_url.clone()),
            ("--initial-cluster", format!("control-plane={peer_url}")),
            ("--initial-cluster-state", "new".into()),
            ("--logger", "zap".into()),
        ];
        self.spawn("etcd", &etcd, flatten(&flags))?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(1)))
            .build()
            .into();
        let health = format!("{client_url}/health");
        let pid = self.components.last().map(|c| c.child.id()).unwrap_or_default();
        self.wait_for("etcd", deadline, |_| {
            let body = agent.get(&health).call()?.body_mut().read_to_string()?;
            Ok((body.contains("\"health\":\"true\"") && process::listens_on(pid, client_port)).then_some(()))
        })?;
        Ok(client_url)
    }

    fn start_apiserver(
        &mut self,
        binary: &Path,
        etcd_url: &str,
        service_account: &ServiceAccountKeys,
        deadline: Instant,
    ) -> anyhow::Result<()> {
        let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let serving = self.pki.issue(
            "apiserver",
            &CertificateSpec::server("kube-apiserver")
                .with_ips([localhost, first_service_ip(&self.options.service_cluster_ip_range)?])
                .with_dns_names([
                    "localhost",
                    "kubernetes",
                    "kubernetes.default",
                    "kubernetes.default.svc",
                    "kubernetes.default.svc.cluster.local",
                ]),
        )?;
        let kubelet_client = self.pki.issue(
            "apiserver-kubelet-client",
            &CertificateSpec::client("kube-apiserver-kubelet-client", &["system:masters"]),
        )?;
        let admin = self.pki.issue(
            "admin",
            &CertificateSpec::client("kubernetes-admin", &["system:masters"]),
        )?;
        self.api_port = free_port()?;
        write_kubeconfig(
            &self.admin_kubeconfig,
            &self.server(),
            self.pki.ca_cert(),
            "kubernetes-admin",
            &admin,
        )?;

        let ca = self.pki.ca_cert().to_path_buf();
        let cert_dir = self.path("apiserver-certs");
        let flags: Vec<(&str, String)> = vec![
            ("--etcd-servers", etcd_url.into()),
            ("--bind-address", "127.0.0.1".into()),
            ("--advertise-address", "127.0.0.1".into()),
            ("--secure-port", self.api_port.to_string()),
            ("--cert-dir", display(&cert_dir)),
            ("--tls-cert-file", display(&serving.cert)),
            ("--tls-private-key-file", display(&serving.key)),
            ("--client-ca-file", display(&ca)),
            (
                "--service-cluster-ip-range",
                self.options.service_cluster_ip_range.clone(),
            ),
            ("--authorization-mode", "Node,RBAC".into()),
            ("--enable-admission-plugins", "NodeRestriction".into()),
            ("--allow-privileged", "true".into()),
            ("--service-account-key-file", display(&service_account.public_key)),
            (
                "--service-account-signing-key-file",
                display(&service_account.private_key),
            ),
            ("--service-account-issuer", SERVICE_ACCOUNT_ISSUER.into()),
            ("--kubelet-client-certificate", display(&kubelet_client.cert)),
            ("--kubelet-client-key", display(&kubelet_client.key)),
            ("--kubelet-certificate-authority", display(&ca)),
            ("--kubelet-preferred-address-types", "InternalIP,Hostname".into()),
            // The kubernetes service's endpoints would be 127.0.0.1, which Endpoints refuse.
            ("--endpoint-reconciler-type", "none".into()),
            ("--profiling", "false".into()),
            ("--v", self.options.verbosity.to_string()),
        ];
        self.spawn("kube-apiserver", binary, flatten(&flags))?;
        let pid = self.components.last().map(|c| c.child.id()).unwrap_or_default();
        let port = self.api_port;
        self.wait_for("kube-apiserver", deadline, |cp| {
            if !process::listens_on(pid, port) {
                return Ok(None);
            }
            Ok((cp.kubectl(["get", "--raw", "/readyz"])?.trim() == "ok").then_some(()))
        })
    }

    fn start_controller_manager(&mut self, binary: &Path, service_account: &ServiceAccountKeys) -> anyhow::Result<()> {
        let user = "system:kube-controller-manager";
        let pair = self
            .pki
            .issue("controller-manager", &CertificateSpec::client(user, &[]))?;
        let kubeconfig = self.path("controller-manager.kubeconfig");
        write_kubeconfig(&kubeconfig, &self.server(), self.pki.ca_cert(), user, &pair)?;
        let ca = self.pki.ca().clone();
        let mut flags: Vec<(&str, String)> = vec![
            ("--kubeconfig", display(&kubeconfig)),
            ("--bind-address", "127.0.0.1".into()),
            ("--secure-port", "0".into()),
            ("--port", "0".into()),
            ("--leader-elect", "false".into()),
            ("--use-service-account-credentials", "true".into()),
            (
                "--service-account-private-key-file",
                display(&service_account.private_key),
            ),
            ("--root-ca-file", display(&ca.cert)),
            ("--cluster-signing-cert-file", display(&ca.cert)),
            ("--cluster-signing-key-file", display(&ca.key)),
            ("--profiling", "false".into()),
            ("--v", self.options.verbosity.to_string()),
        ];
        if let Some(cidr) = &self.options.cluster_cidr {
            flags.extend([
                ("--allocate-node-cidrs", "true".into()),
                ("--cluster-cidr", cidr.clone()),
                ("--node-cidr-mask-size", "24".into()),
                (
                    "--service-cluster-ip-range",
                    self.options.service_cluster_ip_range.clone(),
                ),
            ]);
        }
        self.spawn("kube-controller-manager", binary, flatten(&flags))
    }

    fn start_scheduler(&mut self, binary: &Path) -> anyhow::Result<()> {
        let user = "system:kube-scheduler";
        let pair = self.pki.issue("scheduler", &CertificateSpec::client(user, &[]))?;
        let kubeconfig = self.path("scheduler.kubeconfig");
        write_kubeconfig(&kubeconfig, &self.server(), self.pki.ca_cert(), user, &pair)?;
        let flags: Vec<(&str, String)> = vec![
            ("--kubeconfig", display(&kubeconfig)),
            ("--bind-address", "127.0.0.1".into()),
            ("--secure-port", "0".into()),
            ("--port", "0".into()),
            ("--leader-elect", "false".into()),
            ("--profiling", "false".into()),
            ("--v", self.options.verbosity.to_string()),
        ];
        self.spawn("kube-scheduler", binary, flatten(&flags))
    }

    /// Waits until service account `name` of `namespace` exists with a token secret: the
    /// ServiceAccount admission plugin of 1.20 refuses pods before that.
    fn wait_for_service_account_token(&mut self, namespace: &str, name: &str, deadline: Instant) -> anyhow::Result<()> {
        self.wait_for(&format!("service account {namespace}/{name}"), deadline, |cp| {
            let secrets = cp.kubectl([
                "get",
                "serviceaccount",
                name,
                "--namespace",
                namespace,
                "--ignore-not-found",
                "-o",
                "jsonpath={.secrets[*].name}",
            ])?;
            Ok((!secrets.trim().is_empty()).then_some(()))
        })
    }

    /// `https://127.0.0.1:PORT`: the apiserver.
    pub fn server(&self) -> String {
        format!("https://127.0.0.1:{}", self.api_port)
    }

    /// A kubeconfig of user `kubernetes-admin` in group `system:masters`.
    pub fn admin_kubeconfig(&self) -> &Path {
        &self.admin_kubeconfig
    }

    /// The test CA's certificate: what the apiserver trusts for client certificates and
    /// kubelets should trust for theirs (`authentication.x509.clientCAFile`).
    pub fn ca_cert(&self) -> &Path {
        self.pki.ca_cert()
    }

    /// The test CA, to issue more certificates (a kubelet's serving certificate, say).
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// The service network (`--service-cluster-ip-range`).
    pub fn service_cluster_ip_range(&self) -> &str {
        &self.options.service_cluster_ip_range
    }

    /// The scratch directory holding everything of this control plane.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Makes the credentials of node `name`: a client certificate of `system:node:NAME`
    /// in group `system:nodes` (what the Node authorizer and NodeRestriction expect), and a
    /// kubeconfig using it, `NAME.node.kubeconfig`, whose path it returns.
    pub fn node_kubeconfig(&self, name: &str) -> anyhow::Result<PathBuf> {
        let user = format!("system:node:{name}");
        let pair = self.pki.issue(
            &format!("node-{name}"),
            &CertificateSpec::client(&user, &["system:nodes"]),
        )?;
        let path = self.path(&format!("{name}.node.kubeconfig"));
        write_kubeconfig(&path, &self.server(), self.pki.ca_cert(), &user, &pair)?;
        Ok(path)
    }

    /// A `kubectl` command (the host's, 1.32) that uses [`ControlPlane::admin_kubeconfig`],
    /// a private discovery cache, and a 30 s request timeout; add the arguments.
    pub fn kubectl_command(&self) -> Command {
        let mut command = Command::new(&self.kubectl);
        command
            .arg("--kubeconfig")
            .arg(&self.admin_kubeconfig)
            .arg("--cache-dir")
            .arg(&self.kubectl_cache)
            .arg("--request-timeout=30s")
            .stdin(Stdio::null());
        command
    }

    /// Runs `kubectl ARGS` as the admin and returns its standard output; fails with its
    /// standard error if it exits non-zero.
    pub fn kubectl<I, S>(&self, args: I) -> anyhow::Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.kubectl_command();
        command.args(args);
        run_kubectl(command, None)
    }

    /// Runs `kubectl ARGS` with `input` on its standard input (`apply -f -`).
    pub fn kubectl_with_input<I, S>(&self, args: I, input: &str) -> anyhow::Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.kubectl_command();
        command.args(args);
        run_kubectl(command, Some(input))
    }

    /// The log file of `component` (`etcd`, `kube-apiserver`, `kube-controller-manager`,
    /// `kube-scheduler`).
    pub fn log_file(&self, component: &str) -> PathBuf {
        self.path(&format!("{component}.log"))
    }

    /// The last `lines` lines of `component`'s log.
    pub fn log_tail(&self, component: &str, lines: usize) -> String {
        tail_from(&self.log_file(component), 0, lines)
    }

    /// Stops every component, newest first (the scheduler and controller-manager, the
    /// apiserver, etcd), and removes the scratch directory. Idempotent; [`Drop`] calls it.
    pub fn cleanup(&mut self) -> anyhow::Result<()> {
        if self.cleaned {
            return Ok(());
        }
        let started = Instant::now();
        let mut errors = Vec::new();
        while let Some(mut component) = self.components.pop() {
            if let Err(err) = process::stop_child(&mut component.child, STOP_GRACE) {
                errors.push(format!("stopping {}: {err}", component.name));
            }
            scratch::keep_log(&component.log, self.dir.path());
        }
        let needle = format!("{}/", self.dir.path().display());
        let survivors = process::kill_and_wait(&process::pids_with_cmdline_containing(&needle), STOP_GRACE);
        if !survivors.is_empty() {
            errors.push(format!("processes {survivors:?} survive SIGKILL"));
        }
        if let Err(err) = self.dir.remove() {
            errors.push(format!("removing the scratch directory: {err}"));
        }
        if !errors.is_empty() {
            bail!("control plane cleanup incomplete: {}", errors.join("; "));
        }
        self.cleaned = true;
        crate::note(format!("control plane cleaned up in {:.2?}", started.elapsed()));
        Ok(())
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Err(err) = self.cleanup() {
            crate::note(format!("{err:#}"));
        }
    }
}

fn run_kubectl(mut command: Command, input: Option<&str>) -> anyhow::Result<String> {
    let rendered = format!("{command:?}");
    let output = match input {
        None => command.output(),
        Some(input) => {
            command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = command.spawn().context("starting kubectl")?;
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(input.as_bytes())?;
            }
            child.wait_with_output()
        }
    }
    .context("running kubectl")?;
    if !output.status.success() {
        bail!(
            "{rendered} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Writes a kubeconfig for `user` with client certificate `pair` against `server`.
pub fn write_kubeconfig(path: &Path, server: &str, ca: &Path, user: &str, pair: &KeyPair) -> anyhow::Result<()> {
    let quote = |s: &str| serde_json::Value::from(s).to_string();
    let text = format!(
        "# Written by kubelet-lite's test harness.\n\
         apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: test\n  \
           cluster:\n    \
             server: {server}\n    \
             certificate-authority: {ca}\n\
         users:\n\
         - name: {user}\n  \
           user:\n    \
             client-certificate: {cert}\n    \
             client-key: {key}\n\
         contexts:\n\
         - name: test\n  \
           context:\n    \
             cluster: test\n    \
             user: {user}\n\
         current-context: test\n",
        server = quote(server),
        ca = quote(&ca.to_string_lossy()),
        user = quote(user),
        cert = quote(&pair.cert.to_string_lossy()),
        key = quote(&pair.key.to_string_lossy()),
    );
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// A TCP port on 127.0.0.1 that is free right now.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// The first address of a service range: the `kubernetes` service's cluster IP.
fn first_service_ip(cidr: &str) -> anyhow::Result<IpAddr> {
    let network: Ipv4Addr = cidr
        .split_once('/')
        .and_then(|(network, _)| network.parse().ok())
        .with_context(|| format!("{cidr:?} is not an IPv4 CIDR"))?;
    Ok(IpAddr::V4(Ipv4Addr::from(u32::from(network) + 1)))
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

/// `--flag=value` arguments (Go's flag parsers want a boolean's value after `=`).
fn flatten(flags: &[(&str, String)]) -> Vec<String> {
    flags.iter().map(|(flag, value)| format!("{flag}={value}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubernetes_service_takes_the_first_address_of_the_range() {
        assert_eq!(
            first_service_ip(SERVICE_CLUSTER_IP_RANGE).unwrap(),
            IpAddr::V4(Ipv4Addr::new(198, 19, 0, 1))
        );
        assert!(first_service_ip("nonsense").is_err());
    }

    #[test]
    fn kubeconfigs_name_the_server_ca_and_client_certificate() {
        let path = std::env::temp_dir().join(format!("harness-kubeconfig-{}", std::process::id()));
        let pair = KeyPair {
            cert: "/p/admin.crt".into(),
            key: "/p/admin.key".into(),
        };
        write_kubeconfig(&path, "https://127.0.0.1:6443", Path::new("/p/ca.crt"), "admin", &pair).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        fs::remove_file(&path).unwrap();
        for expected in [
            "    server: \"https://127.0.0.1:6443\"\n",
            "    certificate-authority: \"/p/ca.crt\"\n",
            "- name: \"admin\"\n",
            "    client-certificate: \"/p/admin.crt\"\n",
            "    client-key: \"/p/admin.key\"\n",
            "current-context: test\n",
        ] {
            assert!(text.contains(expected), "{expected:?} not in\n{text}");
        }
    }

    #[test]
    fn missing_binaries_say_how_to_build_them() {
        let missing = kubernetes_binaries(&["surely-not-a-kubernetes-binary"]).unwrap_err();
        assert!(missing.items()[0].contains("scripts/build-kubernetes.sh"), "{missing}");
    }

    #[test]
    fn flags_flatten_in_order() {
        assert_eq!(
            flatten(&[("--a", "1".into()), ("--b", "x y".into())]),
            ["--a=1", "--b=x y"]
        );
    }
}
