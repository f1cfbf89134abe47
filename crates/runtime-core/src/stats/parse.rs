//! Parsers for the text formats of cgroup and procfs files: pure functions, tested on
//! samples of each format.

use std::collections::HashMap;

/// The `key value` lines of a flat keyed file (`memory.stat`, `cpu.stat`,
/// `cpuacct.stat`); lines that are not a key and a number are skipped.
pub fn flat_keyed(text: &str) -> HashMap<&str, u64> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let key = fields.next()?;
            let value = fields.next()?.parse().ok()?;
            Some((key, value))
        })
        .collect()
}

/// A file holding one number; `max` (cgroup v2's "no limit") and anything else that is
/// not a number are `None`.
pub fn single(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// Bytes read and written, summed over the devices of a cgroup v2 `io.stat`
/// (`MAJ:MIN rbytes=N wbytes=N rios=N wios=N ...`).
pub fn io_stat_v2(text: &str) -> (u64, u64) {
    io_totals(
        text.split_whitespace().filter_map(|field| field.split_once('=')),
        "rbytes",
        "wbytes",
    )
}

/// Bytes read and written, summed over the devices of a cgroup v1
/// `blkio.throttle.io_service_bytes_recursive` (`MAJ:MIN Read N` lines, then `Total N`).
pub fn io_service_bytes_v1(text: &str) -> (u64, u64) {
    let pairs = text.lines().filter_map(|line| {
        let mut fields = line.split_whitespace();
        let (_device, op, value) = (fields.next()?, fields.next()?, fields.next()?);
        Some((op, value))
    });
    io_totals(pairs, "Read", "Write")
}

/// The sums of the values named `read` and `write` among `pairs`.
fn io_totals<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>, read: &str, write: &str) -> (u64, u64) {
    let mut totals = (0u64, 0u64);
    for (key, value) in pairs {
        let Ok(value) = value.parse::<u64>() else {
            continue;
        };
        if key == read {
            totals.0 = totals.0.saturating_add(value);
        } else if key == write {
            totals.1 = totals.1.saturating_add(value);
        }
    }
    totals
}

/// The counters of one network interface, from `/proc/net/dev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceCounters {
    /// The interface name.
    pub name: String,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Transmit errors.
    pub tx_errors: u64,
}

/// The interfaces of a `/proc/net/dev` text: two header lines, then
/// `name: rx_bytes packets errs drop fifo frame compressed multicast tx_bytes packets errs ...`.
pub fn net_dev(text: &str) -> Vec<InterfaceCounters> {
    text.lines()
        .filter_map(|line| {
            let (name, counters) = line.split_once(':')?;
            let counters: Vec<u64> = counters
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            if counters.len() < 11 {
                return None;
            }
            Some(InterfaceCounters {
                name: name.trim().to_string(),
                rx_bytes: counters[0],
                rx_packets: counters[1],
                rx_errors: counters[2],
                tx_bytes: counters[8],
                tx_packets: counters[9],
                tx_errors: counters[10],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_keyed_files_give_their_numbers_and_skip_the_rest() {
        let stat = flat_keyed("usage_usec 1500\nuser_usec 1000\nbroken\nname text\n");
        assert_eq!(stat.get("usage_usec"), Some(&1500));
        assert_eq!(stat.get("user_usec"), Some(&1000));
        assert_eq!(stat.len(), 2);
    }

    #[test]
    fn single_values_treat_max_as_no_value() {
        assert_eq!(single("4096\n"), Some(4096));
        assert_eq!(single("max\n"), None);
        assert_eq!(single(""), None);
    }

    #[test]
    fn io_stats_are_summed_over_devices_in_both_formats() {
        let v2 = "8:0 rbytes=100 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n8:16 rbytes=5 wbytes=7 rios=1 wios=1\n";
        assert_eq!(io_stat_v2(v2), (105, 27));
        let v1 = "8:0 Read 100\n8:0 Write 20\n8:0 Sync 120\n8:0 Total 120\n8:16 Read 5\n8:16 Write 7\nTotal 132\n";
        assert_eq!(io_service_bytes_v1(v1), (105, 27));
    }

    #[test]
    fn net_dev_lists_every_interface_with_its_counters() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
            face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
            lo:     140       2    0    0    0     0          0         0      140       2    0    0    0     0       0          0\n  \
            eth0:    1006      11    1    0    0     0          0         0      726       9    3    0    0     0       0          0\n";
        let interfaces = net_dev(text);
        assert_eq!(interfaces.len(), 2);
        assert_eq!(
            interfaces[1],
            InterfaceCounters {
                name: "eth0".into(),
                rx_bytes: 1006,
                rx_packets: 11,
                rx_errors: 1,
                tx_bytes: 726,
                tx_packets: 9,
                tx_errors: 3,
            }
        );
    }
}
