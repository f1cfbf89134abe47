//! Soaks a kubelet-lite node: waves of pods created and deleted for `--duration`, kill -9
//! of the agent (started again with the same arguments) or of a container's monitor every
//! `--kill-every`, a sample every `--sample-every`; exits 0 only if every count is back to
//! its baseline after the last drain and memory shows no growth trend.
//!
//! ```sh
//! cargo build -p kubelet-lite -p runtime-core --bins && cargo build -p test-harness --bin soak
//! target/debug/soak --duration 30m --output /tmp/soak          # the 30-minute soak
//! target/debug/soak --duration 24h --output /tmp/soak-24h      # a day
//! target/debug/soak --duration 4m --wave 1m --kill-every 90s --pods 20   # a quick check
//! ```
//!
//! Options, with their defaults: `--duration` 30m; `--pods` 50; `--wave` 5m (pods created
//! at its start, deleted half-way); `--kill-every` 3m, or `off`; `--sample-every` 30s;
//! `--settle` 20s (quiet time before each post-drain sample); `--output DIR`
//! /tmp/kubelet-lite-soak (`soak.csv`, `soak.png`, `soak.txt`, `kubelet-lite.log`);
//! `--kubelet-lite BINARY`, the one beside this binary (with `runtime-core-monitor`);
//! `--base-dir DIR` /var/lib/kubelet-lite-soak. Needs root and what the e2e tests need
//! (runc, the CNI plugins, docker-registry, busybox-static), and fonts-dejavu-core for the
//! plot's labels.
//!
//! See `test_harness::soak` for what is sampled and how the verdict is reached.

use std::process::ExitCode;

fn main() -> ExitCode {
    test_harness::soak::main()
}
