//! What plugins print: results (the pod's addresses) and errors.
//!
//! Results of spec 0.3.x and 0.4.0 and of 1.0.0 share a shape: `interfaces` (name, mac,
//! `sandbox` for those inside the pod) and `ips` (`address` in CIDR form, `gateway`, and
//! `interface`, an index into `interfaces`); 0.3.x/0.4.0 add a `version` field to each IP,
//! 1.0.0 drops it. Results of 0.1.0/0.2.0 have `ip4.ip` and `ip6.ip` instead.

use std::net::IpAddr;
use std::process::ExitStatus;

use serde_json::Value;

use super::NetworkStatus;

/// The pod's addresses on interface `ifname` in a final ADD result.
///
/// IPs are taken from the interfaces inside the sandbox named `ifname`; a result that
/// names no such interface (an IPAM-only chain) gives all its IPs. IPv4 addresses come
/// first (the primary pod IP is IPv4 on a dual-stack network, as containerd chooses by
/// default), each family in the result's order.
pub fn network_status(result: &Value, ifname: &str) -> Result<NetworkStatus, String> {
    let object = result.as_object().ok_or("the result is not a JSON object")?;
    let mut ips: Vec<IpAddr> = Vec::new();
    if let Some(entries) = object.get("ips") {
        let entries = entries.as_array().ok_or("\"ips\" is not a list")?;
        let interfaces = object.get("interfaces").and_then(Value::as_array);
        let ours: Vec<usize> = interfaces
            .map(|list| {
                list.iter()
                    .enumerate()
                    .filter(|(_, interface)| {
                        interface.get("name").and_then(Value::as_str) == Some(ifname)
                            && interface
                                .get("sandbox")
                                .and_then(Value::as_str)
                                .is_some_and(|sandbox| !sandbox.is_empty())
                    })
                    .map(|(index, _)| index)
                    .collect()
            })
            .unwrap_or_default();
        for entry in entries {
            let belongs = ours.is_empty()
                || entry
                    .get("interface")
                    .and_then(Value::as_u64)
                    .and_then(|index| usize::try_from(index).ok())
                    .is_some_and(|index| ours.contains(&index));
            if belongs {
                let address = entry
                    .get("address")
                    .and_then(Value::as_str)
                    .ok_or("an entry of \"ips\" has no address")?;
                ips.push(parse_cidr_address(address)?);
            }
        }
    } else {
        // Spec 0.1.0 and 0.2.0.
        for family in ["ip4", "ip6"] {
            if let Some(address) = object.get(family).and_then(|f| f.get("ip")).and_then(Value::as_str) {
                ips.push(parse_cidr_address(address)?);
            }
        }
    }
    let mut unique: Vec<IpAddr> = Vec::with_capacity(ips.len());
    for ip in ips
        .iter()
        .filter(|ip| ip.is_ipv4())
        .chain(ips.iter().filter(|ip| ip.is_ipv6()))
    {
        if !unique.contains(ip) {
            unique.push(*ip);
        }
    }
    Ok(NetworkStatus {
        ips: unique,
        interface: ifname.to_string(),
    })
}

/// The address of `198.18.1.2/24`.
fn parse_cidr_address(cidr: &str) -> Result<IpAddr, String> {
    let address = cidr.split_once('/').map_or(cidr, |(address, _)| address);
    address
        .parse()
        .map_err(|_| format!("{cidr:?} is not an IP address in CIDR form"))
}

/// A failed plugin's error code (if it printed one) and message: the spec's error object
/// on stdout (`{"code": 7, "msg": "...", "details": "..."}`), else whatever it printed.
pub fn plugin_error(stdout: &[u8], stderr: &[u8], status: ExitStatus) -> (Option<u64>, String) {
    if let Ok(Value::Object(error)) = serde_json::from_slice::<Value>(stdout) {
        let msg = error.get("msg").and_then(Value::as_str).unwrap_or_default();
        let details = error.get("details").and_then(Value::as_str).unwrap_or_default();
        if !msg.is_empty() || !details.is_empty() {
            let message = match (msg.is_empty(), details.is_empty()) {
                (false, false) => format!("{msg}: {details}"),
                (false, true) => msg.to_string(),
                _ => details.to_string(),
            };
            return (error.get("code").and_then(Value::as_u64), message);
        }
    }
    let stderr = String::from_utf8_lossy(stderr).trim().to_string();
    let stdout = String::from_utf8_lossy(stdout).trim().to_string();
    let message = match (stderr.is_empty(), stdout.is_empty()) {
        (false, _) => stderr,
        (true, false) => stdout,
        (true, true) => format!("exited with {status} and no message"),
    };
    (None, message)
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use serde_json::json;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_1_0_0_bridge_result_gives_the_pod_interfaces_address() {
        let result = json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "kltrc0", "mac": "aa:bb:cc:dd:ee:00"},
                {"name": "veth1234", "mac": "aa:bb:cc:dd:ee:01"},
                {"name": "eth0", "mac": "aa:bb:cc:dd:ee:02", "sandbox": "/run/p/ns/net"}
            ],
            "ips": [{"interface": 2, "address": "198.18.11.5/24", "gateway": "198.18.11.1"}],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {}
        });
        let status = network_status(&result, "eth0").unwrap();
        assert_eq!(status.ips, [ip("198.18.11.5")]);
        assert_eq!(status.interface, "eth0");
    }

    #[test]
    fn a_0_4_0_dual_stack_result_puts_ipv4_first() {
        let result = json!({
            "cniVersion": "0.4.0",
            "interfaces": [{"name": "eth0", "sandbox": "/x"}, {"name": "eth1", "sandbox": "/x"}],
            "ips": [
                {"version": "6", "interface": 0, "address": "2001:db8::5/64"},
                {"version": "4", "interface": 0, "address": "198.18.12.5/24"},
                {"version": "4", "interface": 1, "address": "198.18.13.5/24"}
            ]
        });
        let status = network_status(&result, "eth0").unwrap();
        assert_eq!(status.ips, [ip("198.18.12.5"), ip("2001:db8::5")]);
    }

    #[test]
    fn a_result_without_interfaces_gives_all_its_addresses() {
        let result = json!({"cniVersion": "1.0.0", "ips": [{"address": "198.18.14.2/24"}]});
        assert_eq!(network_status(&result, "eth0").unwrap().ips, [ip("198.18.14.2")]);
    }

    #[test]
    fn a_0_2_0_result_gives_ip4_and_ip6() {
        let result = json!({"cniVersion": "0.2.0", "ip4": {"ip": "198.18.15.2/24"}, "ip6": {"ip": "2001:db8::2/64"}});
        assert_eq!(
            network_status(&result, "eth0").unwrap().ips,
            [ip("198.18.15.2"), ip("2001:db8::2")]
        );
    }

    #[test]
    fn an_empty_result_has_no_addresses_and_garbage_is_an_error() {
        assert!(
            network_status(&json!({"cniVersion": "1.0.0"}), "eth0")
                .unwrap()
                .ips
                .is_empty()
        );
        assert!(network_status(&json!({"ips": [{"address": "nope"}]}), "eth0").is_err());
        assert!(network_status(&json!({"ips": {}}), "eth0").is_err());
        assert!(network_status(&json!([]), "eth0").is_err());
    }

    #[test]
    fn plugin_errors_are_read_from_the_spec_error_object() {
        let status = ExitStatus::from_raw(1 << 8);
        let stdout = br#"{"cniVersion": "1.0.0", "code": 11, "msg": "failed to allocate", "details": "range full"}"#;
        assert_eq!(
            plugin_error(stdout, b"log noise", status),
            (Some(11), "failed to allocate: range full".to_string())
        );
        assert_eq!(
            plugin_error(br#"{"code": 7, "msg": "bad"}"#, b"", status),
            (Some(7), "bad".to_string())
        );
        assert_eq!(plugin_error(b"", b" oops \n", status), (None, "oops".to_string()));
        assert_eq!(
            plugin_error(b"plain text", b"", status),
            (None, "plain text".to_string())
        );
        assert!(plugin_error(b"", b"", status).1.contains("no message"));
    }
}
