//! One sample of a soaking node: memory and open files of its processes, the store's size
//! and the counts that must come back to their baseline; and the CSV they are written as.

use std::fmt::Write as _;
use std::time::Duration;

use super::probe::Memory;

/// Why a sample was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Before the first wave: what the node looks like with no pods.
    Baseline,
    /// Every `--sample-every`.
    Periodic,
    /// After a wave's pods were all gone and the node was left alone for `--settle`.
    Drain,
    /// After the last drain and settle period: compared with the baseline.
    Final,
}

impl Kind {
    /// The name in the CSV.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Baseline => "baseline",
            Kind::Periodic => "periodic",
            Kind::Drain => "drain",
            Kind::Final => "final",
        }
    }
}

/// The things a node must not leak: each must be back to its baseline once the pods are
/// gone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Containers the runtime lists as running (CRI).
    pub running_containers: u64,
    /// Containers the runtime lists in any state (CRI).
    pub containers: u64,
    /// Pod sandboxes the runtime lists in any state (CRI).
    pub sandboxes: u64,
    /// `runtime-core-monitor` processes of this node.
    pub monitors: u64,
    /// Mounts at or below the node's directory (rootfs overlays, pinned namespaces).
    pub mounts: u64,
    /// Network namespaces pinned below the node's directory.
    pub net_namespaces: u64,
    /// Interfaces on the pod bridge (the pods' veths).
    pub veths: u64,
    /// Addresses host-local holds for the pod network.
    pub ip_reservations: u64,
    /// Cgroups of this node's containers (present in any hierarchy).
    pub cgroups: u64,
    /// kubelet-lite's pod directories (`ROOT/pods/UID`).
    pub pod_dirs: u64,
    /// The pods' log directories in `/var/log/pods`.
    pub pod_log_dirs: u64,
    /// runtime-core's container, sandbox and monitor directories.
    pub runtime_dirs: u64,
    /// File descriptors the monitors hold, all together.
    pub monitor_fds: u64,
    /// kubelet-lite's child processes, zombies included.
    pub agent_children: u64,
}

impl Counts {
    /// Each count with its name, in CSV order.
    pub fn fields(&self) -> [(&'static str, u64); 14] {
        [
            ("running_containers", self.running_containers),
            ("containers", self.containers),
            ("sandboxes", self.sandboxes),
            ("monitors", self.monitors),
            ("mounts", self.mounts),
            ("net_namespaces", self.net_namespaces),
            ("veths", self.veths),
            ("ip_reservations", self.ip_reservations),
            ("cgroups", self.cgroups),
            ("pod_dirs", self.pod_dirs),
            ("pod_log_dirs", self.pod_log_dirs),
            ("runtime_dirs", self.runtime_dirs),
            ("monitor_fds", self.monitor_fds),
            ("agent_children", self.agent_children),
        ]
    }
}

/// One sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Time since the soak started.
    pub at: Duration,
    /// Why it was taken.
    pub kind: Kind,
    /// The wave under way (or last finished); 0 before the first.
    pub wave: u32,
    /// kubelet-lite's pid (it changes when the agent is killed and started again).
    pub agent_pid: u32,
    /// kubelet-lite's memory, its embedded runtime included.
    pub agent: Memory,
    /// kubelet-lite's open file descriptors.
    pub agent_fds: u64,
    /// The monitors' memory, all together.
    pub monitors: Memory,
    /// Bytes of runtime-core's redb file.
    pub store_bytes: u64,
    /// The counts that must come back to their baseline.
    pub counts: Counts,
    /// What happened since the previous sample (kills, restarts), `;`-separated.
    pub events: String,
}

/// The CSV's first line.
pub fn csv_header() -> String {
    let mut header = String::from(
        "t_s,kind,wave,agent_pid,agent_rss_kib,agent_pss_kib,agent_fds,monitors_rss_kib,monitors_pss_kib,store_bytes",
    );
    for (name, _) in Counts::default().fields() {
        header.push(',');
        header.push_str(name);
    }
    header.push_str(",events\n");
    header
}

impl Sample {
    /// The sample as one CSV line (with its newline), in [`csv_header`]'s order.
    pub fn csv_row(&self) -> String {
        let mut row = format!(
            "{:.1},{},{},{},{},{},{},{},{},{}",
            self.at.as_secs_f64(),
            self.kind.name(),
            self.wave,
            self.agent_pid,
            self.agent.rss_kib,
            self.agent.pss_kib,
            self.agent_fds,
            self.monitors.rss_kib,
            self.monitors.pss_kib,
            self.store_bytes,
        );
        for (_, value) in self.counts.fields() {
            let _ = write!(row, ",{value}");
        }
        // Events never hold commas or quotes; keep it that way for plain CSV readers.
        let _ = writeln!(row, ",{}", self.events.replace([',', '"'], " "));
        row
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_have_as_many_columns_as_the_header() {
        let sample = Sample {
            at: Duration::from_millis(30_500),
            kind: Kind::Drain,
            wave: 2,
            agent_pid: 42,
            agent: Memory {
                rss_kib: 100,
                pss_kib: 90,
            },
            agent_fds: 30,
            monitors: Memory::default(),
            store_bytes: 4096,
            counts: Counts {
                mounts: 3,
                ..Counts::default()
            },
            events: "kill agent, restarted".into(),
        };
        let row = sample.csv_row();
        assert_eq!(row.split(',').count(), csv_header().split(',').count());
        assert!(
            row.starts_with("30.5,drain,2,42,100,90,30,0,0,4096,0,0,0,0,3,"),
            "{row}"
        );
        assert!(row.ends_with(",kill agent  restarted\n"), "{row}");
    }
}
