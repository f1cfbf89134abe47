//! CNI network configuration files for runtimes under test.
//!
//! Each runtime under test gets its own bridge, subnet and network name (two runtimes on
//! one bridge would hand out the same addresses). containerd's default is
//! `kltctr0` / `198.18.0.0/24`; runtime-core's tests use another bridge on
//! `198.18.1.0/24`.

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::json;

/// The CNI spec version written into configuration lists (supported by the Debian 12
/// plugins 1.1 and by containerd 1.6's libcni).
pub const CNI_VERSION: &str = "1.0.0";

/// A bridge network: the `bridge` plugin with `host-local` IPAM, then `portmap` (host
/// ports) and `loopback` (brings `lo` up in the pod; it passes the bridge's result
/// through when chained).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeNetwork {
    /// The CNI network name (also how the plugins tag their iptables rules).
    pub name: String,
    /// The Linux bridge to create (at most 15 characters).
    pub bridge: String,
    /// The pod subnet, an IPv4 CIDR such as `198.18.0.0/24`. The bridge takes its first
    /// address as the pods' gateway.
    pub subnet: String,
    /// Where host-local keeps its address reservations; `None` is the plugin's default
    /// `/var/lib/cni/networks/NAME`. Point it into the test's scratch directory so that a
    /// crashed run cannot leak reservations.
    pub ipam_data_dir: Option<PathBuf>,
}

impl BridgeNetwork {
    /// A network named `name` on `bridge` with pods in `subnet`.
    pub fn new(name: impl Into<String>, bridge: impl Into<String>, subnet: impl Into<String>) -> BridgeNetwork {
        BridgeNetwork {
            name: name.into(),
            bridge: bridge.into(),
            subnet: subnet.into(),
            ipam_data_dir: None,
        }
    }

    /// The gateway: the first address of the subnet.
    pub fn gateway(&self) -> anyhow::Result<Ipv4Addr> {
        let (network, prefix) = parse_ipv4_cidr(&self.subnet)?;
        if prefix > 30 {
            bail!("subnet {} is too small for a gateway and pods", self.subnet);
        }
        Ok(Ipv4Addr::from(u32::from(network) + 1))
    }

    /// The configuration list as JSON.
    pub fn conflist(&self) -> anyhow::Result<serde_json::Value> {
        self.conflist_on(json!([{ "subnet": self.subnet, "gateway": self.gateway()?.to_string() }]))
    }

    /// The configuration list as a CNI configuration template (containerd's
    /// `conf_template`, runtime-core's `cni_conf_template`): the same network on the pod
    /// CIDR the runtime is given (`{{.PodCIDR}}`, the gateway its first address), instead
    /// of on [`BridgeNetwork::subnet`].
    pub fn template(&self) -> anyhow::Result<String> {
        let list = self.conflist_on(json!([{ "subnet": "{{.PodCIDR}}" }]))?;
        Ok(serde_json::to_string_pretty(&list)? + "\n")
    }

    /// The configuration list with `range` as host-local's only range.
    fn conflist_on(&self, range: serde_json::Value) -> anyhow::Result<serde_json::Value> {
        if self.bridge.is_empty() || self.bridge.len() > 15 {
            bail!("bridge name {:?} must have 1 to 15 characters", self.bridge);
        }
        let mut ipam = json!({
            "type": "host-local",
            "ranges": [range],
            "routes": [{ "dst": "0.0.0.0/0" }],
        });
        if let Some(dir) = &self.ipam_data_dir {
            ipam["dataDir"] = json!(dir.to_string_lossy());
        }
        Ok(json!({
            "cniVersion": CNI_VERSION,
            "name": self.name,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": true,
                    "ipMasq": false,
                    "hairpinMode": true,
                    "ipam": ipam,
                },
                { "type": "portmap", "capabilities": { "portMappings": true } },
                { "type": "loopback" },
            ],
        }))
    }

    /// Writes `CONF_DIR/10-NAME.conflist` (creating the directory) and returns its path.
    pub fn write(&self, conf_dir: &Path) -> anyhow::Result<PathBuf> {
        fs::create_dir_all(conf_dir).with_context(|| format!("creating {}", conf_dir.display()))?;
        let path = conf_dir.join(format!("10-{}.conflist", self.name));
        let text = serde_json::to_string_pretty(&self.conflist()?)?;
        fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}

/// Parses `A.B.C.D/LEN` and returns the network address (host bits cleared) and length.
pub fn parse_ipv4_cidr(cidr: &str) -> anyhow::Result<(Ipv4Addr, u8)> {
    let (address, prefix) = cidr
        .split_once('/')
        .with_context(|| format!("{cidr:?} is not a CIDR"))?;
    let address: Ipv4Addr = address.parse().with_context(|| format!("bad address in {cidr:?}"))?;
    let prefix: u8 = prefix
        .parse()
        .with_context(|| format!("bad prefix length in {cidr:?}"))?;
    if prefix > 32 {
        bail!("prefix length of {cidr:?} exceeds 32");
    }
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
    Ok((Ipv4Addr::from(u32::from(address) & mask), prefix))
}

/// Whether the IPv4 address `ip` lies in the IPv4 CIDR `cidr` (`198.18.0.0/24`).
pub fn in_cidr(ip: &str, cidr: &str) -> anyhow::Result<bool> {
    let ip: Ipv4Addr = ip.parse().with_context(|| format!("{ip:?} is not an IPv4 address"))?;
    let (network, prefix) = parse_ipv4_cidr(cidr)?;
    Ok(parse_ipv4_cidr(&format!("{ip}/{prefix}"))?.0 == network)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_is_the_network_on_the_pod_cidr() {
        let network = BridgeNetwork::new("net", "kltnet0", "198.18.9.0/24");
        let template = network.template().unwrap();
        let list: serde_json::Value = serde_json::from_str(&template).unwrap();
        assert_eq!(
            list["plugins"][0]["ipam"]["ranges"],
            json!([[{"subnet": "{{.PodCIDR}}"}]])
        );
        assert_eq!(list["plugins"][0]["bridge"], "kltnet0");
        assert_eq!(list["plugins"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn addresses_are_in_their_cidr_only() {
        assert!(in_cidr("198.18.1.7", "198.18.1.0/24").unwrap());
        assert!(!in_cidr("198.18.2.7", "198.18.1.0/24").unwrap());
        assert!(in_cidr("10.1.2.3", "0.0.0.0/0").unwrap());
        assert!(in_cidr("pod", "198.18.1.0/24").is_err());
    }

    #[test]
    fn cidrs_parse_to_their_network() {
        assert_eq!(
            parse_ipv4_cidr("198.18.3.7/24").unwrap(),
            (Ipv4Addr::new(198, 18, 3, 0), 24)
        );
        assert_eq!(parse_ipv4_cidr("0.0.0.0/0").unwrap(), (Ipv4Addr::UNSPECIFIED, 0));
        assert!(parse_ipv4_cidr("198.18.0.0").is_err());
        assert!(parse_ipv4_cidr("198.18.0.0/33").is_err());
    }

    #[test]
    fn conflist_chains_bridge_portmap_loopback() {
        let mut network = BridgeNetwork::new("kltctr", "kltctr0", "198.18.0.0/24");
        network.ipam_data_dir = Some(PathBuf::from("/x/ipam"));
        let conflist = network.conflist().unwrap();
        assert_eq!(conflist["name"], "kltctr");
        assert_eq!(conflist["cniVersion"], CNI_VERSION);
        let plugins = conflist["plugins"].as_array().unwrap();
        let types: Vec<&str> = plugins.iter().map(|p| p["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["bridge", "portmap", "loopback"]);
        assert_eq!(plugins[0]["bridge"], "kltctr0");
        assert_eq!(plugins[0]["ipMasq"], false);
        assert_eq!(plugins[0]["ipam"]["ranges"][0][0]["gateway"], "198.18.0.1");
        assert_eq!(plugins[0]["ipam"]["dataDir"], "/x/ipam");
        assert_eq!(plugins[1]["capabilities"]["portMappings"], true);
    }

    #[test]
    fn bad_bridge_names_are_refused() {
        assert!(
            BridgeNetwork::new("n", "a-much-too-long-bridge", "198.18.0.0/24")
                .conflist()
                .is_err()
        );
        assert!(BridgeNetwork::new("n", "b", "198.18.0.0/31").conflist().is_err());
    }
}
