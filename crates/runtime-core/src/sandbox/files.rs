//! The pod's `/etc` files the runtime writes once per sandbox and every container of the
//! pod mounts: `resolv.conf`, `hostname` and `hosts`.
//!
//! Each file is written to a temporary name beside it and renamed into place, so a
//! container never sees half of one.

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::Path;

use cri_api::v1::DnsConfig;

/// The host's resolver configuration, which pods without DNS settings get a copy of.
pub const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";

/// Writes the pod's `resolv.conf` at `path`: from the CRI `DNSConfig` (its search domains,
/// name servers and options), or, when there is none or it is empty, a copy of the host's
/// `/etc/resolv.conf` (as containerd does; a host without one gives an empty file).
pub fn write_resolv_conf(path: &Path, dns: Option<&DnsConfig>) -> io::Result<()> {
    write_resolv_conf_from(path, dns, Path::new(HOST_RESOLV_CONF))
}

/// [`write_resolv_conf`] with another host file to copy.
pub fn write_resolv_conf_from(path: &Path, dns: Option<&DnsConfig>, host_resolv_conf: &Path) -> io::Result<()> {
    let content = match dns.map(resolv_conf_content).filter(|content| !content.is_empty()) {
        Some(content) => content.into_bytes(),
        None => match fs::read(host_resolv_conf) {
            Ok(content) => content,
            Err(err) if err.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(err) => return Err(err),
        },
    };
    write_atomically(path, &content)
}

/// The `resolv.conf` text of a `DNSConfig`, in the kubelet's and containerd's order:
/// `search`, then one `nameserver` line per server, then `options`. Empty if the config
/// holds nothing.
pub fn resolv_conf_content(dns: &DnsConfig) -> String {
    let mut content = String::new();
    if !dns.searches.is_empty() {
        content.push_str(&format!("search {}\n", dns.searches.join(" ")));
    }
    for server in &dns.servers {
        content.push_str(&format!("nameserver {server}\n"));
    }
    if !dns.options.is_empty() {
        content.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    content
}

/// Writes the pod's `/etc/hostname`: the hostname and a newline.
pub fn write_hostname(path: &Path, hostname: &str) -> io::Result<()> {
    write_atomically(path, format!("{hostname}\n").as_bytes())
}

/// Writes the pod's `/etc/hosts` as the kubelet's managed hosts file: the localhost and
/// IPv6 lines, then `<ip>\t<hostname>` for the pod's primary address, if any.
pub fn write_hosts(path: &Path, hostname: &str, ip: Option<IpAddr>) -> io::Result<()> {
    write_atomically(path, hosts_content(hostname, ip).as_bytes())
}

/// The start of a managed hosts file: the comment, then the loopback and IPv6 lines every
/// pod's `/etc/hosts` has, as the kubelet writes them.
pub const HOSTS_HEADER: &str = "# Kubernetes-managed hosts file.\n\
     127.0.0.1\tlocalhost\n\
     ::1\tlocalhost ip6-localhost ip6-loopback\n\
     fe00::0\tip6-localnet\n\
     fe00::0\tip6-mcastprefix\n\
     fe00::1\tip6-allnodes\n\
     fe00::2\tip6-allrouters\n";

/// The text [`write_hosts`] writes.
pub fn hosts_content(hostname: &str, ip: Option<IpAddr>) -> String {
    let mut content = String::from(HOSTS_HEADER);
    if let Some(ip) = ip
        && !hostname.is_empty()
    {
        content.push_str(&format!("{ip}\t{hostname}\n"));
    }
    content
}

/// Files in a pod's directory are world-readable, as the kubelet writes them.
fn write_atomically(path: &Path, content: &[u8]) -> io::Result<()> {
    crate::atomic_file::write_atomically(path, content, 0o644)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn dns_config_becomes_search_nameserver_and_options_lines() {
        let dns = DnsConfig {
            servers: vec!["198.19.0.10".into(), "198.19.0.11".into()],
            searches: vec!["default.svc.cluster.local".into(), "svc.cluster.local".into()],
            options: vec!["ndots:5".into(), "timeout:1".into()],
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        write_resolv_conf_from(&path, Some(&dns), Path::new("/nonexistent")).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "search default.svc.cluster.local svc.cluster.local\n\
             nameserver 198.19.0.10\n\
             nameserver 198.19.0.11\n\
             options ndots:5 timeout:1\n"
        );
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
    }

    #[test]
    fn without_dns_config_the_host_file_is_copied() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("host-resolv.conf");
        fs::write(&host, "nameserver 198.18.255.53\n").unwrap();
        let path = dir.path().join("resolv.conf");
        write_resolv_conf_from(&path, None, &host).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "nameserver 198.18.255.53\n");
        // An empty DNSConfig counts as none.
        fs::write(&path, "stale").unwrap();
        write_resolv_conf_from(&path, Some(&DnsConfig::default()), &host).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "nameserver 198.18.255.53\n");
        // A host without the file gives an empty one.
        write_resolv_conf_from(&path, None, &dir.path().join("absent")).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "");
    }

    #[test]
    fn only_searches_give_only_a_search_line() {
        let dns = DnsConfig {
            searches: vec!["a".into()],
            ..Default::default()
        };
        assert_eq!(resolv_conf_content(&dns), "search a\n");
    }

    #[test]
    fn hostname_file_holds_the_name_and_a_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hostname");
        write_hostname(&path, "web-0").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "web-0\n");
        write_hostname(&path, "web-1").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "web-1\n");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn hosts_file_is_the_kubelets_with_the_pod_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        write_hosts(&path, "web-0", Some("198.18.1.5".parse().unwrap())).unwrap();
        let content = fs::read_to_string(&path).unwrap();
        assert!(content.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(content.contains("::1\tlocalhost ip6-localhost ip6-loopback\n"));
        assert!(content.ends_with("fe00::2\tip6-allrouters\n198.18.1.5\tweb-0\n"));
        assert!(!hosts_content("web-0", None).contains("web-0"));
    }
}
