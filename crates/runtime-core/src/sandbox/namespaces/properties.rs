//! Properties of sysctl names: whatever name a pod spec gives, the file written is a
//! file under `/proc/sys` named by it, never a path that leaves `/proc/sys`.

use std::path::Component;

use proptest::prelude::*;

use super::*;

/// Names made of real sysctl pieces, separators and what could climb out.
fn sysctl_name() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("net".to_string()),
        Just("ipv4".to_string()),
        Just("kernel".to_string()),
        Just("shm_rmid_forced".to_string()),
        Just("fs".to_string()),
        Just("mqueue".to_string()),
        Just("..".to_string()),
        Just(".".to_string()),
        Just(String::new()),
        Just("/".to_string()),
        Just("eth0.100".to_string()),
        "[a-z0-9_:-]{1,6}",
        "\\PC{0,3}",
    ];
    let separator = prop_oneof![Just("."), Just("/"), Just("//"), Just("/../"), Just("")];
    prop::collection::vec((piece, separator), 0..8).prop_map(|parts| {
        parts
            .into_iter()
            .map(|(piece, separator)| format!("{piece}{separator}"))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn a_sysctl_file_is_under_proc_sys(key in sysctl_name(), host_network: bool, host_ipc: bool) {
        let request = PinRequest { host_network, host_ipc, ..PinRequest::pod("p") };
        if let Ok(path) = sysctl_path(&key, &request) {
            let relative = path.strip_prefix("/proc/sys").expect("under /proc/sys");
            prop_assert!(relative.components().count() >= 2, "{path:?} names a sysctl, not a directory");
            for component in relative.components() {
                prop_assert!(matches!(component, Component::Normal(_)), "{key:?} gives {path:?}");
            }
            if !key.contains('/') {
                prop_assert_eq!(relative.to_string_lossy(), key.replace('.', "/"), "a dotted name maps dot for slash");
            }
        }
    }
}
