//! Host-level setup and teardown shared by every runtime under test: mounts, network
//! links, iptables rules, runc containers, CNI caches, and reaping what a dead test run
//! left behind.
//!
//! Everything here is idempotent: undoing something already undone is not an error.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use nix::mount::{MntFlags, umount2};

use crate::scratch::{INSTANCE_FILE, NamedLock};

/// Where libcni (used by containerd) caches the results of CNI ADD.
pub const CNI_CACHE_DIR: &str = "/var/lib/cni/results";

/// What a scratch directory's owner set up outside the directory, written to its
/// [`INSTANCE_FILE`] so that [`reap_instance`] can undo it after the owner died.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceRecord {
    /// The Linux bridge its CNI network created, if any.
    pub bridge: Option<String>,
    /// Its CNI network name (as in iptables rule comments and CNI caches), if any.
    pub network: Option<String>,
    /// runc `--root` directories whose namespaces hold its containers (each holds one
    /// directory per namespace, each of those one per container).
    pub runc_roots: Vec<PathBuf>,
    /// The socket and state directory of a containerd it ran, whose killed shims may have
    /// left their sockets in `/run/containerd/s`.
    pub containerd: Option<(PathBuf, PathBuf)>,
}

impl InstanceRecord {
    /// Writes the record into `dir/instance.json`.
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        let json = serde_json::json!({
            "bridge": self.bridge,
            "network": self.network,
            "runc_roots": self.runc_roots.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>(),
            "containerd": self.containerd.as_ref().map(|(socket, state)| serde_json::json!({
                "socket": socket.to_string_lossy(),
                "state": state.to_string_lossy(),
            })),
        });
        fs::write(
            dir.join(INSTANCE_FILE),
            serde_json::to_vec_pretty(&json).map_err(io::Error::other)?,
        )
    }

    /// Reads `dir/instance.json`; a missing file is an empty record.
    pub fn read(dir: &Path) -> io::Result<InstanceRecord> {
        let raw = match fs::read(dir.join(INSTANCE_FILE)) {
            Ok(raw) => raw,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Ok(InstanceRecord::default());
            }
            Err(err) => return Err(err),
        };
        let json: serde_json::Value = serde_json::from_slice(&raw).map_err(io::Error::other)?;
        let text = |key: &str| json.get(key).and_then(|v| v.as_str()).map(str::to_string);
        Ok(InstanceRecord {
            bridge: text("bridge"),
            network: text("network"),
            runc_roots: json
                .get("runc_roots")
                .and_then(|v| v.as_array())
                .map(|roots| roots.iter().filter_map(|r| r.as_str()).map(PathBuf::from).collect())
                .unwrap_or_default(),
            containerd: json.get("containerd").and_then(|c| {
                Some((
                    PathBuf::from(c.get("socket")?.as_str()?),
                    PathBuf::from(c.get("state")?.as_str()?),
                ))
            }),
        })
    }
}

/// Tears down what a dead owner left in and around scratch directory `dir`: its processes
/// (any whose command line names a path in `dir`: daemons, shims), its runc containers,
/// its mounts, its bridge and iptables rules (unless a live environment now holds that
/// bridge's lock), its CNI cache entries, and finally the directory.
pub fn reap_instance(dir: &Path) -> anyhow::Result<()> {
    let record = InstanceRecord::read(dir).unwrap_or_default();
    let needle = format!("{}/", dir.display());
    let left = crate::process::kill_and_wait(
        &crate::process::pids_with_cmdline_containing(&needle),
        Duration::from_secs(5),
    );
    if !left.is_empty() {
        bail!("processes {left:?} of {} survive SIGKILL", dir.display());
    }
    for root in &record.runc_roots {
        runc_delete_all(root)?;
    }
    if let Some((socket, state)) = &record.containerd {
        remove_containerd_shim_sockets(socket, state);
    }
    unmount_all_under(dir)?;
    if let Some(bridge) = &record.bridge {
        // A live environment holding the lock has cleaned this bridge when it took it.
        if let Some(_lock) = NamedLock::try_acquire(&network_lock_name(bridge))? {
            teardown_network(bridge, record.network.as_deref())?;
        }
    }
    remove_dir_safely(dir)?;
    Ok(())
}

/// The [`NamedLock`] name that guards a bridge (and the CNI network on it).
pub fn network_lock_name(bridge: &str) -> String {
    format!("net-{bridge}")
}

/// Removes a bridge and everything a CNI network on it leaves on the host: the link,
/// iptables rules naming the bridge or the network, and libcni's cached results.
pub fn teardown_network(bridge: &str, network: Option<&str>) -> anyhow::Result<()> {
    delete_link(bridge)?;
    remove_iptables_rules(network, Some(bridge))?;
    if let Some(network) = network {
        remove_cni_cache(network)?;
    }
    Ok(())
}

/// Sets `net.ipv4.ip_forward=1` (pods on a bridge reach each other and the host through it).
pub fn enable_ip_forward() -> io::Result<()> {
    const PATH: &str = "/proc/sys/net/ipv4/ip_forward";
    if fs::read_to_string(PATH)?.trim() != "1" {
        fs::write(PATH, "1\n")?;
    }
    Ok(())
}

/// Gives the node an address on a bridge without ports (dummy links do not exist here):
/// `ip link add BRIDGE type bridge; ip addr add IP/32 dev BRIDGE; ip link set BRIDGE up`.
pub fn add_node_address(bridge: &str, ip: std::net::Ipv4Addr) -> anyhow::Result<()> {
    let address = format!("{ip}/32");
    for args in [
        vec!["link", "add", bridge, "type", "bridge"],
        vec!["addr", "add", address.as_str(), "dev", bridge],
        vec!["link", "set", bridge, "up"],
    ] {
        let output = Command::new("ip").args(&args).stdin(Stdio::null()).output()?;
        if !output.status.success() {
            bail!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
    }
    Ok(())
}

/// True if a network interface of that name exists.
pub fn link_exists(name: &str) -> bool {
    valid_link_name(name) && Path::new("/sys/class/net").join(name).exists()
}

fn valid_link_name(name: &str) -> bool {
    !name.is_empty() && name.len() < 16 && !name.contains(['/', ' ', '\0']) && name != "." && name != ".."
}

/// Deletes a network interface (`ip link del`); an absent one is not an error.
pub fn delete_link(name: &str) -> anyhow::Result<()> {
    if !link_exists(name) {
        return Ok(());
    }
    let output = Command::new("ip")
        .args(["link", "del", name])
        .output()
        .context("running ip link del")?;
    if !output.status.success() && link_exists(name) {
        bail!("ip link del {name}: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

/// Mount points at or below `dir`, deepest (and most recently stacked) first.
pub fn mounts_under(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")?;
    Ok(mount_points_under(&mountinfo, &dir))
}

fn mount_points_under(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<(usize, usize, PathBuf)> = mountinfo
        .lines()
        .enumerate()
        .filter_map(|(order, line)| {
            let point = PathBuf::from(unescape_mountinfo(line.split(' ').nth(4)?));
            point
                .starts_with(dir)
                .then(|| (point.components().count(), order, point))
        })
        .collect();
    // Deepest first; at equal depth, the mount stacked last first.
    found.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    found.into_iter().map(|(_, _, point)| point).collect()
}

/// Decodes the octal escapes (`\040` for space, ...) of a mountinfo path.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let value = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Lazily unmounts (`umount -l`) every mount at or below `dir`, deepest first, until none
/// is left. Returns how many it unmounted.
pub fn unmount_all_under(dir: &Path) -> anyhow::Result<usize> {
    let mut count = 0;
    for _round in 0..8 {
        let points = mounts_under(dir)?;
        if points.is_empty() {
            return Ok(count);
        }
        for point in points {
            match umount2(&point, MntFlags::MNT_DETACH) {
                Ok(()) => count += 1,
                Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => {}
                Err(errno) => {
                    return Err(io::Error::from(errno)).with_context(|| format!("umount -l {}", point.display()));
                }
            }
        }
    }
    let left = mounts_under(dir)?;
    if left.is_empty() {
        Ok(count)
    } else {
        bail!("mounts under {} will not go away: {left:?}", dir.display())
    }
}

/// What a power cut leaves of a node whose processes and mounts live under `dir`, once
/// its daemon was killed: every process whose command line names a path under `dir` or
/// contains `workload` is SIGKILLed (and the workload's awaited, up to 10 s), every
/// mount under `dir` is detached, and `state` (a tmpfs on a real machine) is emptied.
/// Starting the daemon again is the caller's.
pub fn simulate_reboot(dir: &Path, state: &Path, workload: &str) -> anyhow::Result<()> {
    let under_dir = format!("{}/", dir.display());
    for pid in crate::process::pids_with_cmdline_containing(&under_dir)
        .into_iter()
        .chain(crate::process::pids_with_cmdline_containing(workload))
    {
        let _ = crate::process::signal(pid, nix::sys::signal::Signal::SIGKILL);
    }
    let gone = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        crate::process::pids_with_cmdline_containing(workload).is_empty()
    });
    if !gone {
        bail!("the workload {workload:?} survived SIGKILL");
    }
    unmount_all_under(dir)?;
    if !state.is_dir() {
        bail!("no state directory at {}", state.display());
    }
    fs::remove_dir_all(state).with_context(|| format!("wiping {}", state.display()))?;
    fs::create_dir_all(state).with_context(|| format!("creating {}", state.display()))
}

/// Removes a directory tree, after unmounting everything below it; refuses if a mount
/// is still there (removing through a bind mount would delete the mounted files).
pub fn remove_dir_safely(dir: &Path) -> io::Result<()> {
    if fs::symlink_metadata(dir).is_err() {
        return Ok(());
    }
    if !mounts_under(dir)?.is_empty() {
        unmount_all_under(dir).map_err(|err| io::Error::other(format!("{err:#}")))?;
    }
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

/// Force-deletes (`runc delete --force`) every container runc knows under `root`, one
/// level of namespace directories deep (`ROOT/NAMESPACE/ID`, the layout of containerd's
/// runc shim), which kills their processes and removes their cgroups.
pub fn runc_delete_all(root: &Path) -> anyhow::Result<()> {
    let Ok(namespaces) = fs::read_dir(root) else {
        return Ok(());
    };
    for namespace in namespaces.flatten().filter(|e| e.path().is_dir()) {
        let namespace_root = namespace.path();
        let Ok(containers) = fs::read_dir(&namespace_root) else {
            continue;
        };
        for container in containers.flatten().filter(|e| e.path().join("state.json").exists()) {
            let id = container.file_name();
            let output = Command::new("runc")
                .arg("--root")
                .arg(&namespace_root)
                .args(["delete", "--force"])
                .arg(&id)
                .stdin(Stdio::null())
                .output()
                .context("running runc delete")?;
            if !output.status.success() && container.path().exists() {
                bail!(
                    "runc delete --force {}: {}",
                    id.to_string_lossy(),
                    String::from_utf8_lossy(&output.stderr).trim()
                );
            }
        }
    }
    Ok(())
}

/// Where containerd 1.6's shims put their sockets, whatever the daemon's state directory.
pub const CONTAINERD_SHIM_SOCKET_DIR: &str = "/run/containerd/s";

/// Removes the sockets of containerd shims that were killed instead of shut down, for
/// every task bundle under `state` (`state/io.containerd.runtime.v2.task/NAMESPACE/ID`).
/// containerd 1.6 names a shim's socket `/run/containerd/s/HEX(SHA256(SOCKET/NAMESPACE/ID))`
/// after the daemon's socket path.
pub fn remove_containerd_shim_sockets(containerd_socket: &Path, state: &Path) {
    let tasks = state.join("io.containerd.runtime.v2.task");
    for namespace in fs::read_dir(tasks).into_iter().flatten().flatten() {
        for task in fs::read_dir(namespace.path()).into_iter().flatten().flatten() {
            let path = Path::new(CONTAINERD_SHIM_SOCKET_DIR).join(shim_socket_name(
                containerd_socket,
                &namespace.file_name().to_string_lossy(),
                &task.file_name().to_string_lossy(),
            ));
            if fs::symlink_metadata(&path).is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type())) {
                let _ = fs::remove_file(&path);
            }
        }
    }
}

fn shim_socket_name(containerd_socket: &Path, namespace: &str, id: &str) -> String {
    use sha2::Digest;
    let key = format!("{}/{namespace}/{id}", containerd_socket.display());
    sha2::Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Removes libcni's cached results ([`CNI_CACHE_DIR`]) of one network.
pub fn remove_cni_cache(network: &str) -> io::Result<()> {
    let Ok(entries) = fs::read_dir(CNI_CACHE_DIR) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(raw) = fs::read(&path) else { continue };
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(&raw) else {
            continue;
        };
        if json.get("networkName").and_then(|v| v.as_str()) == Some(network) {
            let _ = fs::remove_file(&path);
        }
    }
    Ok(())
}

/// Deletes every iptables (IPv4) rule that names CNI network `network` in its comment
/// (as the bridge and portmap plugins write them: `name: "NETWORK" id: "..."`) or names
/// interface `bridge`, plus the per-container chains only those rules jump to. Returns
/// how many rules and chains it deleted.
pub fn remove_iptables_rules(network: Option<&str>, bridge: Option<&str>) -> anyhow::Result<usize> {
    if network.is_none() && bridge.is_none() {
        return Ok(0);
    }
    let save = Command::new("iptables-save")
        .stdin(Stdio::null())
        .output()
        .context("running iptables-save")?;
    if !save.status.success() {
        bail!("iptables-save: {}", String::from_utf8_lossy(&save.stderr).trim());
    }
    let plan = plan_iptables_cleanup(&String::from_utf8_lossy(&save.stdout), |rule| {
        network.is_some_and(|network| rule.contains(&format!("name: \\\"{network}\\\"")))
            || bridge.is_some_and(|bridge| tokenize_rule(rule).iter().any(|token| token == bridge))
    });
    if plan.changes == 0 {
        return Ok(0);
    }
    let mut last_error = String::new();
    for _attempt in 0..3 {
        let mut child = Command::new("iptables-restore")
            .arg("--noflush")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("running iptables-restore")?;
        if let Some(mut stdin) = child.stdin.take() {
            io::Write::write_all(&mut stdin, plan.restore_input.as_bytes())?;
        }
        let output = child.wait_with_output()?;
        if output.status.success() {
            return Ok(plan.changes);
        }
        last_error = String::from_utf8_lossy(&output.stderr).trim().to_string();
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!(
        "iptables-restore --noflush failed: {last_error}\ninput:\n{}",
        plan.restore_input
    )
}

/// An `iptables-restore --noflush` input that deletes rules, and how many changes it holds.
#[derive(Debug, PartialEq, Eq)]
struct IptablesPlan {
    restore_input: String,
    changes: usize,
}

/// Plans the deletion of the rules of an `iptables-save` dump that `matches` selects, and
/// of the user chains that only those rules (or other deleted chains) jump to.
fn plan_iptables_cleanup(save: &str, matches: impl Fn(&str) -> bool) -> IptablesPlan {
    let mut restore_input = String::new();
    let mut changes = 0;
    let mut table: Option<&str> = None;
    let mut chains: Vec<&str> = Vec::new();
    let mut rules: Vec<&str> = Vec::new();
    for line in save.lines() {
        if let Some(name) = line.strip_prefix('*') {
            table = Some(name);
            chains.clear();
            rules.clear();
        } else if let Some(declaration) = line.strip_prefix(':') {
            if let Some(chain) = declaration.split_whitespace().next() {
                chains.push(chain);
            }
        } else if line.starts_with("-A ") {
            rules.push(line);
        } else if line == "COMMIT" {
            let Some(table) = table.take() else { continue };
            let (text, count) = plan_table(table, &chains, &rules, &matches);
            restore_input.push_str(&text);
            changes += count;
        }
    }
    IptablesPlan { restore_input, changes }
}

fn plan_table(table: &str, chains: &[&str], rules: &[&str], matches: &impl Fn(&str) -> bool) -> (String, usize) {
    const BUILTIN: &[&str] = &["INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"];
    let chain_of = |rule: &str| rule.split_whitespace().nth(1).unwrap_or_default().to_string();
    let target_of = |rule: &str| {
        let tokens = tokenize_rule(rule);
        tokens
            .windows(2)
            .find(|w| w[0] == "-j" || w[0] == "-g")
            .map(|w| w[1].clone())
    };
    let mut doomed_rules: Vec<&str> = rules.iter().copied().filter(|rule| matches(rule)).collect();
    let mut doomed_chains: Vec<String> = Vec::new();
    // A user chain goes when every rule jumping to it goes; its own rules go with it,
    // which may in turn doom the chains they jump to.
    loop {
        let mut grew = false;
        for chain in chains.iter().copied() {
            if BUILTIN.contains(&chain) || doomed_chains.iter().any(|d| d == chain) {
                continue;
            }
            let referrers: Vec<&str> = rules
                .iter()
                .copied()
                .filter(|rule| target_of(rule).as_deref() == Some(chain))
                .collect();
            let referenced_by_doomed = referrers.iter().any(|r| doomed_rules.contains(r));
            if referenced_by_doomed
                && referrers
                    .iter()
                    .all(|r| doomed_rules.contains(r) || doomed_chains.contains(&chain_of(r)))
            {
                doomed_chains.push(chain.to_string());
                for rule in rules.iter().copied().filter(|rule| chain_of(rule) == chain) {
                    if !doomed_rules.contains(&rule) {
                        doomed_rules.push(rule);
                    }
                }
                grew = true;
            }
        }
        if !grew {
            break;
        }
    }
    if doomed_rules.is_empty() && doomed_chains.is_empty() {
        return (String::new(), 0);
    }
    let mut text = format!("*{table}\n");
    let mut count = 0;
    // Keep the dump's order: a rule is deleted before the chain it jumps to.
    for rule in rules.iter().copied().filter(|r| doomed_rules.contains(r)) {
        if !doomed_chains.contains(&chain_of(rule)) {
            text.push_str(&format!("-D {}\n", &rule[3..]));
            count += 1;
        }
    }
    for chain in &doomed_chains {
        text.push_str(&format!("-F {chain}\n"));
    }
    for chain in &doomed_chains {
        text.push_str(&format!("-X {chain}\n"));
        count += 1;
    }
    text.push_str("COMMIT\n");
    (text, count)
}

/// Splits an iptables-save rule into words, keeping double-quoted strings (with their
/// backslash escapes) as one word without the quotes.
fn tokenize_rule(rule: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut chars = rule.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if in_quotes => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            '"' => in_quotes = !in_quotes,
            c if c.is_whitespace() && !in_quotes => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAVE: &str = r#"# Generated by iptables-save v1.8.9 (nf_tables)
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -i kltctr0 -j ACCEPT
-A FORWARD -i other0 -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-DN-aaa - [0:0]
:CNI-DN-bbb - [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A CNI-DN-aaa -s 198.18.0.0/24 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-aaa -p tcp -m tcp --dport 8080 -j DNAT --to-destination 198.18.0.2:80
-A CNI-DN-bbb -p tcp -m tcp --dport 9090 -j DNAT --to-destination 198.18.1.2:80
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"kltctr\" id: \"abc\"" -m multiport --dports 8080 -j CNI-DN-aaa
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"other\" id: \"def\"" -m multiport --dports 9090 -j CNI-DN-bbb
COMMIT
"#;

    #[test]
    fn iptables_cleanup_deletes_our_rules_and_our_chains_only() {
        let plan = plan_iptables_cleanup(SAVE, |rule| {
            rule.contains(r#"name: \"kltctr\""#) || tokenize_rule(rule).iter().any(|t| t == "kltctr0")
        });
        assert_eq!(
            plan.restore_input,
            r#"*filter
-D FORWARD -i kltctr0 -j ACCEPT
COMMIT
*nat
-D CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"kltctr\" id: \"abc\"" -m multiport --dports 8080 -j CNI-DN-aaa
-F CNI-DN-aaa
-X CNI-DN-aaa
COMMIT
"#
        );
        assert_eq!(plan.changes, 3);
    }

    #[test]
    fn iptables_cleanup_of_nothing_is_empty() {
        let plan = plan_iptables_cleanup(SAVE, |rule| rule.contains("absent"));
        assert_eq!(
            plan,
            IptablesPlan {
                restore_input: String::new(),
                changes: 0
            }
        );
    }

    #[test]
    fn rules_tokenize_with_quoted_comments() {
        assert_eq!(
            tokenize_rule(r#"-A X -m comment --comment "dnat name: \"n\" id: \"i\"" -j Y"#),
            [
                "-A",
                "X",
                "-m",
                "comment",
                "--comment",
                r#"dnat name: "n" id: "i""#,
                "-j",
                "Y"
            ]
        );
    }

    #[test]
    fn mounts_under_a_dir_come_deepest_first() {
        let mountinfo = "\
22 1 254:0 / / rw - ext4 /dev/vda rw
30 22 0:40 / /var/lib/t/c-1/root/snap rw - overlay overlay rw
31 30 0:41 / /var/lib/t/c-1/root/snap/proc rw - proc proc rw
32 22 0:42 / /var/lib/t/c-10/x rw - tmpfs tmpfs rw
33 22 0:43 / /var/lib/t/c-1/with\\040space rw - tmpfs tmpfs rw
34 30 0:44 / /var/lib/t/c-1/root/snap rw - tmpfs tmpfs rw
";
        assert_eq!(
            mount_points_under(mountinfo, Path::new("/var/lib/t/c-1")),
            [
                PathBuf::from("/var/lib/t/c-1/root/snap/proc"),
                PathBuf::from("/var/lib/t/c-1/root/snap"),
                PathBuf::from("/var/lib/t/c-1/root/snap"),
                PathBuf::from("/var/lib/t/c-1/with space"),
            ]
        );
    }

    #[test]
    fn shim_sockets_are_named_like_containerd_names_them() {
        // Seen on this machine: the socket of a shim of containerd 1.6.20.
        assert_eq!(
            shim_socket_name(
                Path::new("/var/lib/kubelet-lite-test/containerd-24996-1-647598382/containerd.sock"),
                "k8s.io",
                "8154ddb5bac3b7f47922738c4aabdaa6a2024bc2a87b69d0ba450686b911ded1"
            ),
            "10c21669e9ba90860829cf2b9edf32545598bbacb94ef635a9df3453696347c9"
        );
    }

    #[test]
    fn instance_records_round_trip() {
        let dir = std::env::temp_dir().join(format!("harness-record-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let record = InstanceRecord {
            bridge: Some("kltctr0".into()),
            network: Some("kltctr".into()),
            runc_roots: vec![PathBuf::from("/x/state/runc")],
            containerd: Some((PathBuf::from("/x/c.sock"), PathBuf::from("/x/state"))),
        };
        record.write(&dir).unwrap();
        assert_eq!(InstanceRecord::read(&dir).unwrap(), record);
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(InstanceRecord::read(&dir).unwrap(), InstanceRecord::default());
    }
}
