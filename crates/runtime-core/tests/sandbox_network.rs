//! Pod sandboxes on the real host: namespaces pinned with util-linux `unshare`, attached
//! to a bridge network by Debian's CNI plugins, reachable from each other and through
//! host ports, and gone without a trace after DEL and unpin.
//!
//! Needs root, util-linux, iproute2, iptables, busybox-static and the CNI plugins in
//! `/usr/lib/cni`; without them the tests are ignored (and fail with `CI=true`).
//!
//! The network is bridge `kltsbx0` on 198.18.10.0/24 (CNI network `kltsbx`), with its
//! host-local reservations, CNI cache and pod directories in one scratch directory; the
//! environment removes the bridge, the plugins' iptables rules and every mount when it
//! is dropped, and a later run reaps them if this one died.

use std::fs;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use runtime_core::sandbox::cni::{Attachment, Cni, CniConfig, PortMapping};
use runtime_core::sandbox::files;
use runtime_core::sandbox::namespaces::{self, PinRequest, PinnedNamespaces};
use test_harness::cni::BridgeNetwork;
use test_harness::host::{self, InstanceRecord};
use test_harness::scratch::{self, NamedLock, ScratchDir};
use test_harness::suite::{self, Test};

const NETWORK: &str = "kltsbx";
const BRIDGE: &str = "kltsbx0";
const SUBNET: &str = "198.18.10.0/24";
const GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 18, 10, 1);

struct Env {
    runtime: tokio::runtime::Runtime,
    cni: Cni,
    cni_config: CniConfig,
    ipam_dir: PathBuf,
    scratch: ScratchDir,
    _lock: NamedLock,
}

impl Drop for Env {
    fn drop(&mut self) {
        // Pods left by failed tests: their namespace mounts go with the scratch directory
        // (which frees their veths); the bridge and the portmap rules go here.
        if let Err(err) = host::unmount_all_under(self.scratch.path()) {
            test_harness::note(format!("unmounting the pods' namespaces: {err:#}"));
        }
        if let Err(err) = host::teardown_network(BRIDGE, Some(NETWORK)) {
            test_harness::note(format!("removing the test network: {err:#}"));
        }
    }
}

fn setup() -> anyhow::Result<Env> {
    test_harness::require_root()?;
    test_harness::require_tools(&[
        "unshare",
        "nsenter",
        "ip",
        "iptables",
        "iptables-save",
        "busybox",
        "bridge",
        "host-local",
        "portmap",
        "loopback",
    ])?;
    scratch::reap_stale();
    let lock = NamedLock::acquire(&host::network_lock_name(BRIDGE), Duration::from_secs(600))?;
    // Holding the lock, whatever is on the bridge is a leftover of a dead run.
    host::teardown_network(BRIDGE, Some(NETWORK))?;
    let scratch = ScratchDir::create("sandbox-network")?;
    InstanceRecord {
        bridge: Some(BRIDGE.into()),
        network: Some(NETWORK.into()),
        ..Default::default()
    }
    .write(scratch.path())?;
    host::enable_ip_forward()?;

    let ipam_dir = scratch.path().join("ipam");
    let mut network = BridgeNetwork::new(NETWORK, BRIDGE, SUBNET);
    network.ipam_data_dir = Some(ipam_dir.clone());
    let conf_dir = scratch.path().join("net.d");
    network.write(&conf_dir)?;
    let bin_dir = test_harness::cni_bin_dir().context("no CNI plugin directory")?;
    let cni_config = CniConfig {
        conf_dir,
        bin_dirs: vec![bin_dir],
        cache_dir: scratch.path().join("cni-cache"),
        template: None,
    };
    let cni = Cni::load(cni_config.clone())?;
    if let Err(reason) = cni.network_ready() {
        bail!("the test network is not ready: {reason}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    Ok(Env {
        runtime,
        cni,
        cni_config,
        ipam_dir,
        scratch,
        _lock: lock,
    })
}

/// A pod's namespaces and network attachment, undone when dropped (so a failing test
/// cleans up too).
struct Pod<'a> {
    env: &'a Env,
    dir: PathBuf,
    namespaces: PinnedNamespaces,
    attachment: Attachment,
}

impl<'a> Pod<'a> {
    /// Pins the namespaces of a new pod (not yet attached).
    fn pin(env: &'a Env, name: &str, request: PinRequest) -> anyhow::Result<Pod<'a>> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let id = format!("{name}-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let dir = env.scratch.path().join("pods").join(&id);
        let namespaces = env.runtime.block_on(namespaces::pin_with(&dir, &request))?;
        let attachment = Attachment {
            container_id: id,
            netns: namespaces.network.clone().unwrap_or_default(),
            ifname: "eth0".into(),
            pod_namespace: "default".into(),
            pod_name: name.into(),
            pod_uid: format!("uid-{name}"),
            port_mappings: Vec::new(),
        };
        Ok(Pod {
            env,
            dir,
            namespaces,
            attachment,
        })
    }

    fn net(&self) -> anyhow::Result<&Path> {
        self.namespaces
            .network
            .as_deref()
            .context("the pod has no network namespace")
    }

    fn add(&self) -> anyhow::Result<IpAddr> {
        let status = self.env.runtime.block_on(self.env.cni.add(&self.attachment))?;
        status.primary_ip().context("ADD gave no IP")
    }

    fn del(&self) -> anyhow::Result<()> {
        Ok(self.env.runtime.block_on(self.env.cni.del(&self.attachment))?)
    }

    fn unpin(&self) -> anyhow::Result<()> {
        Ok(self.env.runtime.block_on(namespaces::unpin(&self.namespaces))?)
    }
}

impl Drop for Pod<'_> {
    fn drop(&mut self) {
        if let Err(err) = self.del() {
            test_harness::note(format!("DEL of {}: {err:#}", self.attachment.container_id));
        }
        if let Err(err) = self.unpin() {
            test_harness::note(format!("unpinning {}: {err:#}", self.attachment.container_id));
        }
    }
}

/// Runs a program, returning its stdout; fails with its stderr.
fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {program}"))?;
    if !output.status.success() {
        bail!(
            "{program} {args:?}: {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Runs `args` in namespace `kind` (`net`, `ipc`, `uts`) of file `file`.
fn nsenter(kind: &str, file: &Path, args: &[&str]) -> anyhow::Result<String> {
    let option = format!("--{kind}={}", file.display());
    let mut all = vec![option.as_str()];
    all.extend_from_slice(args);
    run("nsenter", &all)
}

/// The mount points of /proc/self/mountinfo at or below `dir`.
fn mounts_below(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")?;
    let prefix = dir.to_string_lossy().into_owned();
    Ok(mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|point| point.starts_with(&prefix))
        .map(str::to_string)
        .collect())
}

fn pinned_namespaces_are_new_namespaces_with_the_pods_hostname(env: &Env) -> anyhow::Result<()> {
    let pod = Pod::pin(env, "pin", PinRequest::pod("pin-pod"))?;
    let files = [
        ("net", pod.net()?.to_path_buf()),
        ("ipc", pod.namespaces.ipc.clone()),
        ("uts", pod.namespaces.uts.clone()),
    ];
    for (kind, file) in &files {
        ensure!(namespaces::is_pinned(file), "{} is not pinned", file.display());
        let host = run("readlink", &[&format!("/proc/self/ns/{kind}")])?;
        let inside = nsenter(kind, file, &["readlink", &format!("/proc/self/ns/{kind}")])?;
        ensure!(inside != host, "{kind}: the pod is in the host's namespace {host}");
        // The file is that namespace: its inode is the namespace's.
        let inode = fs::metadata(file)?.ino();
        ensure!(
            inside == format!("{kind}:[{inode}]"),
            "{kind}: {inside} vs inode {inode}"
        );
    }
    ensure!(nsenter("uts", &pod.namespaces.uts, &["hostname"])? == "pin-pod");
    let lo = nsenter("net", pod.net()?, &["ip", "-o", "link", "show", "lo"])?;
    ensure!(lo.contains("UP"), "lo is down: {lo}");

    pod.unpin()?;
    for (kind, file) in &files {
        ensure!(!namespaces::is_pinned(file), "{kind} still pinned");
        ensure!(!file.exists(), "{} still exists", file.display());
    }
    let left = mounts_below(&pod.dir)?;
    ensure!(left.is_empty(), "mounts left: {left:?}");
    // Again: nothing to do, no error.
    pod.unpin()?;
    Ok(())
}

fn host_network_pods_pin_no_network_namespace(env: &Env) -> anyhow::Result<()> {
    let request = PinRequest {
        host_network: true,
        ..PinRequest::pod("")
    };
    let pod = Pod::pin(env, "hostnet", request)?;
    ensure!(pod.namespaces.network.is_none());
    ensure!(!pod.dir.join(namespaces::NETWORK_FILE).exists());
    // With no hostname given, the UTS namespace keeps the node's.
    ensure!(nsenter("uts", &pod.namespaces.uts, &["hostname"])? == run("hostname", &[])?);
    Ok(())
}

fn sysctls_are_written_in_the_pods_namespaces_only(env: &Env) -> anyhow::Result<()> {
    let mut request = PinRequest::pod("sysctl-pod");
    request
        .sysctls
        .insert("net.ipv4.ip_unprivileged_port_start".into(), "80".into());
    request.sysctls.insert("kernel.shm_rmid_forced".into(), "1".into());
    let host_port_start = fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")?;
    let host_shm = fs::read_to_string("/proc/sys/kernel/shm_rmid_forced")?;
    let pod = Pod::pin(env, "sysctl", request)?;
    let inside = nsenter(
        "net",
        pod.net()?,
        &["cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"],
    )?;
    ensure!(inside == "80", "net sysctl in the pod: {inside}");
    let inside = nsenter("ipc", &pod.namespaces.ipc, &["cat", "/proc/sys/kernel/shm_rmid_forced"])?;
    ensure!(inside == "1", "ipc sysctl in the pod: {inside}");
    ensure!(fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")? == host_port_start);
    ensure!(fs::read_to_string("/proc/sys/kernel/shm_rmid_forced")? == host_shm);
    Ok(())
}

fn sysctl_values_that_smuggle_a_second_setting_are_refused(env: &Env) -> anyhow::Result<()> {
    let core_pattern = fs::read_to_string("/proc/sys/kernel/core_pattern")?;
    for (n, value) in [
        "1+kernel.core_pattern=|/tmp/kubelet-lite-smuggled",
        "1\nkernel.core_pattern=|/tmp/kubelet-lite-smuggled",
        "1=kernel.core_pattern",
    ]
    .into_iter()
    .enumerate()
    {
        let dir = env.scratch.path().join("pods").join(format!("smuggle-{n}"));
        let mut request = PinRequest::pod("smuggle");
        request.sysctls.insert("kernel.shm_rmid_forced".into(), value.into());
        let result = env.runtime.block_on(namespaces::pin_with(&dir, &request));
        let Err(err) = result else {
            bail!("pinning with the sysctl value {value:?} succeeded");
        };
        ensure!(
            matches!(err, namespaces::NamespaceError::Sysctl { .. }),
            "{value:?}: unexpected error: {err}"
        );
        ensure!(mounts_below(&dir)?.is_empty(), "{value:?}: mounts left");
    }
    ensure!(
        fs::read_to_string("/proc/sys/kernel/core_pattern")? == core_pattern,
        "the host's kernel.core_pattern changed"
    );
    Ok(())
}

fn a_failed_pin_leaves_no_mount_and_no_file(env: &Env) -> anyhow::Result<()> {
    let dir = env.scratch.path().join("pods").join("failed-pin");
    let mut request = PinRequest::pod("failed");
    request
        .sysctls
        .insert("net.ipv4.ip_unprivileged_port_start".into(), "not a number".into());
    let result = env.runtime.block_on(namespaces::pin_with(&dir, &request));
    let Err(err) = result else {
        bail!("pinning with an unwritable sysctl succeeded");
    };
    ensure!(
        err.to_string().contains("pinning namespaces"),
        "unexpected error: {err}"
    );
    let left = mounts_below(&dir)?;
    ensure!(left.is_empty(), "mounts left: {left:?}");
    let files: Vec<_> = fs::read_dir(&dir)?.collect();
    ensure!(files.is_empty(), "files left: {files:?}");
    Ok(())
}

fn add_configures_an_address_of_the_subnet_and_del_frees_it(env: &Env) -> anyhow::Result<()> {
    let pod = Pod::pin(env, "addr", PinRequest::pod("addr-pod"))?;
    let ip = pod.add()?;
    let IpAddr::V4(v4) = ip else { bail!("not IPv4: {ip}") };
    ensure!(
        v4.octets()[..3] == [198, 18, 10] && v4 != GATEWAY,
        "{ip} is not a pod address of {SUBNET}"
    );
    let addresses = nsenter("net", pod.net()?, &["ip", "-4", "-o", "addr", "show", "dev", "eth0"])?;
    ensure!(
        addresses.contains(&format!("inet {ip}/24")),
        "eth0 in the pod: {addresses}"
    );
    let lease = env.ipam_dir.join(NETWORK).join(ip.to_string());
    ensure!(lease.exists(), "no host-local lease {}", lease.display());
    let cache = env
        .cni_config
        .cache_dir
        .join(NETWORK)
        .join(format!("{}-eth0.json", pod.attachment.container_id));
    ensure!(cache.exists(), "no cache entry {}", cache.display());
    env.runtime.block_on(env.cni.check(&pod.attachment))?;

    // A restarted runtime detaches it from the cache.
    let restarted = Cni::load(env.cni_config.clone())?;
    env.runtime.block_on(restarted.del(&pod.attachment))?;
    ensure!(!lease.exists(), "DEL left the lease {}", lease.display());
    ensure!(!cache.exists(), "DEL left the cache entry");
    let links = nsenter("net", pod.net()?, &["ip", "-o", "link"])?;
    ensure!(!links.contains("eth0"), "DEL left eth0: {links}");
    pod.del()?;
    pod.unpin()?;
    pod.del()?;
    Ok(())
}

fn del_after_unpin_frees_the_address(env: &Env) -> anyhow::Result<()> {
    let pod = Pod::pin(env, "gone", PinRequest::pod("gone-pod"))?;
    let ip = pod.add()?;
    let lease = env.ipam_dir.join(NETWORK).join(ip.to_string());
    ensure!(lease.exists());
    pod.unpin()?;
    pod.del()?;
    ensure!(!lease.exists(), "DEL without the namespace left the lease");
    pod.del()?;
    Ok(())
}

fn two_pods_on_the_bridge_reach_each_other(env: &Env) -> anyhow::Result<()> {
    let a = Pod::pin(env, "ping-a", PinRequest::pod("a"))?;
    let b = Pod::pin(env, "ping-b", PinRequest::pod("b"))?;
    let ip_a = a.add()?;
    let ip_b = b.add()?;
    ensure!(ip_a != ip_b);
    nsenter("net", a.net()?, &["busybox", "ping", "-c1", "-W2", &ip_b.to_string()])?;
    nsenter("net", b.net()?, &["busybox", "ping", "-c1", "-W2", &ip_a.to_string()])?;
    // And the node, through the bridge.
    nsenter(
        "net",
        a.net()?,
        &["busybox", "ping", "-c1", "-W2", &GATEWAY.to_string()],
    )?;
    Ok(())
}

/// A TCP server in the pod answering every connection with `hello`, killed when dropped.
struct Server(Child);

impl Server {
    fn start(netns: &Path, port: u16) -> anyhow::Result<Server> {
        let child = Command::new("nsenter")
            .arg(format!("--net={}", netns.display()))
            .args([
                "busybox",
                "nc",
                "-ll",
                "-p",
                &port.to_string(),
                "-e",
                "busybox",
                "echo",
                "hello",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting busybox nc in the pod")?;
        Ok(Server(child))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Connects to `address` until something answers (the server may still be starting),
/// and returns what it says.
fn fetch(address: SocketAddr) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = TcpStream::connect_timeout(&address, Duration::from_secs(2)).and_then(|mut stream| {
            stream.set_read_timeout(Some(Duration::from_secs(2)))?;
            let mut text = String::new();
            stream.read_to_string(&mut text)?;
            Ok(text)
        });
        match attempt {
            Ok(text) if !text.is_empty() => return Ok(text.trim().to_string()),
            Ok(_) if Instant::now() < deadline => {}
            Err(_) if Instant::now() < deadline => {}
            Ok(_) => bail!("{address} answered nothing"),
            Err(err) => return Err(err).with_context(|| format!("connecting to {address}")),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn iptables_mentions(id: &str) -> anyhow::Result<bool> {
    let save = run("iptables-save", &[])?;
    Ok(save.contains(&format!("id: \\\"{id}\\\"")) || save.contains(&format!("id: \"{id}\"")))
}

fn a_host_port_reaches_a_server_in_the_pod(env: &Env) -> anyhow::Result<()> {
    const HOST_PORT: u16 = 38_080;
    let mut pod = Pod::pin(env, "hostport", PinRequest::pod("web"))?;
    pod.attachment.port_mappings = vec![PortMapping {
        host_port: HOST_PORT,
        container_port: 8080,
        protocol: "tcp".into(),
        host_ip: String::new(),
    }];
    let ip = pod.add()?;
    ensure!(
        iptables_mentions(&pod.attachment.container_id)?,
        "portmap wrote no rule"
    );
    let _server = Server::start(pod.net()?, 8080)?;
    // Straight to the pod, then through the host port on the node's bridge address and
    // on loopback (portmap's "snat" and route_localnet make that one work).
    ensure!(fetch(SocketAddr::new(ip, 8080))? == "hello");
    ensure!(fetch(SocketAddr::new(IpAddr::V4(GATEWAY), HOST_PORT))? == "hello");
    ensure!(fetch(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), HOST_PORT))? == "hello");

    pod.del()?;
    ensure!(
        !iptables_mentions(&pod.attachment.container_id)?,
        "DEL left portmap rules"
    );
    Ok(())
}

fn the_pods_etc_files_name_it(env: &Env) -> anyhow::Result<()> {
    let pod = Pod::pin(env, "files", PinRequest::pod("files-pod"))?;
    let ip = pod.add()?;
    let dns = cri_api::v1::DnsConfig {
        servers: vec!["198.19.0.10".into()],
        searches: vec!["default.svc.cluster.local".into()],
        options: vec!["ndots:5".into()],
    };
    files::write_resolv_conf(&pod.dir.join("resolv.conf"), Some(&dns))?;
    files::write_hostname(&pod.dir.join("hostname"), "files-pod")?;
    files::write_hosts(&pod.dir.join("hosts"), "files-pod", Some(ip))?;
    ensure!(
        fs::read_to_string(pod.dir.join("resolv.conf"))?
            == "search default.svc.cluster.local\nnameserver 198.19.0.10\noptions ndots:5\n"
    );
    ensure!(fs::read_to_string(pod.dir.join("hostname"))? == "files-pod\n");
    let hosts = fs::read_to_string(pod.dir.join("hosts"))?;
    ensure!(hosts.contains("127.0.0.1\tlocalhost\n"), "{hosts}");
    ensure!(hosts.ends_with(&format!("{ip}\tfiles-pod\n")), "{hosts}");
    // Without DNS settings: the host's resolv.conf.
    files::write_resolv_conf(&pod.dir.join("resolv.conf"), None)?;
    let host = fs::read("/etc/resolv.conf").unwrap_or_default();
    ensure!(fs::read(pod.dir.join("resolv.conf"))? == host);
    Ok(())
}

fn main() -> ExitCode {
    suite::run(
        setup,
        vec![
            Test::new(
                "pinned_namespaces_are_new_namespaces_with_the_pods_hostname",
                pinned_namespaces_are_new_namespaces_with_the_pods_hostname,
            ),
            Test::new(
                "host_network_pods_pin_no_network_namespace",
                host_network_pods_pin_no_network_namespace,
            ),
            Test::new(
                "sysctls_are_written_in_the_pods_namespaces_only",
                sysctls_are_written_in_the_pods_namespaces_only,
            ),
            Test::new(
                "sysctl_values_that_smuggle_a_second_setting_are_refused",
                sysctl_values_that_smuggle_a_second_setting_are_refused,
            ),
            Test::new(
                "a_failed_pin_leaves_no_mount_and_no_file",
                a_failed_pin_leaves_no_mount_and_no_file,
            ),
            Test::new(
                "add_configures_an_address_of_the_subnet_and_del_frees_it",
                add_configures_an_address_of_the_subnet_and_del_frees_it,
            ),
            Test::new("del_after_unpin_frees_the_address", del_after_unpin_frees_the_address),
            Test::new(
                "two_pods_on_the_bridge_reach_each_other",
                two_pods_on_the_bridge_reach_each_other,
            ),
            Test::new(
                "a_host_port_reaches_a_server_in_the_pod",
                a_host_port_reaches_a_server_in_the_pod,
            ),
            Test::new("the_pods_etc_files_name_it", the_pods_etc_files_name_it),
        ],
    )
}
