//! What a CNI plugin prints: an ADD result (any spec version's shape) or an error object,
//! with whatever it wrote to stderr. Reading either must not panic; the pod's addresses
//! come out without duplicates and IPv4 first.

#![no_main]

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use libfuzzer_sys::fuzz_target;
use runtime_core::sandbox::cni::result::{network_status, plugin_error};
use serde_json::Value;

fuzz_target!(|input: &[u8]| {
    let Some((&split, rest)) = input.split_first() else {
        return;
    };
    let at = usize::from(split).min(rest.len());
    let (stderr, stdout) = rest.split_at(at);
    if let Ok(result) = serde_json::from_slice::<Value>(stdout) {
        for ifname in ["eth0", "net1", ""] {
            if let Ok(status) = network_status(&result, ifname) {
                assert_eq!(status.interface, ifname);
                let first_v6 = status
                    .ips
                    .iter()
                    .position(|ip| ip.is_ipv6())
                    .unwrap_or(status.ips.len());
                assert!(
                    status.ips[first_v6..].iter().all(|ip| ip.is_ipv6()),
                    "IPv4 first: {:?}",
                    status.ips
                );
                for (i, ip) in status.ips.iter().enumerate() {
                    assert!(!status.ips[i + 1..].contains(ip), "duplicate {ip}");
                }
                assert_eq!(status.primary_ip(), status.ips.first().copied());
            }
        }
    }
    let (_code, message) = plugin_error(stdout, stderr, ExitStatus::from_raw(1 << 8));
    assert!(!message.is_empty());
});
