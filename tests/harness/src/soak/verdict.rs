//! Whether a soak passed: every count back to its baseline after the last drain, memory
//! and the store without a growth trend over the drains, every wave up and gone in time;
//! and the summary that says so.
//!
//! **Counts** must equal their baseline exactly. The monitors' descriptors are among them
//! and must come back to zero. A count that stayed zero in every sample where containers
//! ran fails too: its probe looks in the wrong place (a cgroup parent or a directory that
//! moved) and would hide a leak. kubelet-lite's child processes are exempt, since nothing
//! of it needs to outlive a call.
//!
//! **kubelet-lite's own descriptors** are not held to the baseline: the embedded runtime
//! keeps idle keep-alive connections to the registry after the first pulls (about one per
//! pull that ran at once, so their number depends on the first wave, not on how many waves
//! ran), and a process started again after a kill starts without them. Instead, over the
//! post-drain samples of each kubelet-lite process (its pid), the count may not rise above
//! the one at that process's first drain by more than [`AGENT_FD_SLACK`]: a leak of a
//! descriptor per pod or per wave shows as such a rise.
//!
//! **Growth trend**: a least-squares line through the values at each post-drain sample
//! (and the final one), against time. Its rise over the span of those samples (slope times
//! span) must stay under a bound: for kubelet-lite's PSS, [`MEMORY_RISE_FRACTION`] of the
//! first post-drain value or [`MEMORY_RISE_FLOOR_KIB`], whichever is larger (allocator
//! arenas settle by a few MiB in the first waves); for the redb file,
//! [`STORE_RISE_FRACTION`] or [`STORE_RISE_FLOOR_BYTES`] (the file grows by whole regions
//! and keeps freed pages for reuse, so it steps up once and must then stay). The slope
//! itself is reported per hour. With fewer than three post-drain samples no line is
//! fitted: the last value is compared with the first under the same bound.

use std::fmt::Write as _;
use std::time::Duration;

use super::sample::Sample;

/// How many descriptors more than at its first drain a kubelet-lite process may hold at a
/// later one (a connection being opened or closed as the sample is taken).
pub const AGENT_FD_SLACK: u64 = 2;

/// The largest rise of kubelet-lite's PSS over the drains, as a fraction of the first.
pub const MEMORY_RISE_FRACTION: f64 = 0.10;

/// The rise of kubelet-lite's PSS always allowed, in KiB.
pub const MEMORY_RISE_FLOOR_KIB: f64 = 4096.0;

/// The largest rise of the store's size over the drains, as a fraction of the first.
pub const STORE_RISE_FRACTION: f64 = 0.10;

/// The rise of the store's size always allowed, in bytes.
pub const STORE_RISE_FLOOR_BYTES: f64 = 1024.0 * 1024.0;

/// How one wave went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaveReport {
    /// Its number, from 1.
    pub wave: u32,
    /// Pods created.
    pub pods: usize,
    /// How long until all of them ran; `None` if they never all did before deletion.
    pub all_running_after: Option<Duration>,
    /// The most that ran at once.
    pub most_running: u64,
    /// How long after deletion until the runtime listed no sandbox and no container;
    /// `None` if that did not happen in time.
    pub drained_after: Option<Duration>,
}

/// A kill and what followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KillReport {
    /// When, since the start.
    pub at: Duration,
    /// What was killed: `agent`, or `monitor of CONTAINER`.
    pub what: String,
    /// For the agent: how long it took to be running again.
    pub restart: Option<Duration>,
}

/// A line fitted through (time, value) points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trend {
    /// Value units per hour.
    pub slope_per_hour: f64,
    /// The rise over the span of the points (slope times span), or last minus first when
    /// there are fewer than three.
    pub rise: f64,
    /// The first value.
    pub first: f64,
}

/// Fits the trend of `points` (seconds, value); `None` for fewer than two points.
pub fn trend(points: &[(f64, f64)]) -> Option<Trend> {
    let (first, last) = (points.first()?, points.last()?);
    if points.len() < 2 {
        return None;
    }
    let span = last.0 - first.0;
    let n = points.len() as f64;
    let mean_t = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_v = points.iter().map(|p| p.1).sum::<f64>() / n;
    let covariance: f64 = points.iter().map(|p| (p.0 - mean_t) * (p.1 - mean_v)).sum();
    let variance: f64 = points.iter().map(|p| (p.0 - mean_t).powi(2)).sum();
    let slope = if variance > 0.0 { covariance / variance } else { 0.0 };
    let rise = if points.len() < 3 {
        last.1 - first.1
    } else {
        slope * span
    };
    Some(Trend {
        slope_per_hour: slope * 3600.0,
        rise,
        first: first.1,
    })
}

/// Everything a soak found.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// What went wrong; empty when the soak passed.
    pub failures: Vec<String>,
    /// The summary, failures included.
    pub summary: String,
}

impl Verdict {
    /// True when nothing leaked and every wave went as it should.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// What [`judge`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
    /// The run's settings, printed first.
    pub title: &'a str,
    /// The sample before the first wave.
    pub baseline: &'a Sample,
    /// The sample after the last drain and settle period.
    pub last: &'a Sample,
    /// Every sample, in order.
    pub samples: &'a [Sample],
    /// The waves.
    pub waves: &'a [WaveReport],
    /// The kills.
    pub kills: &'a [KillReport],
    /// When kubelet-lite exited without being killed.
    pub crashes: &'a [Duration],
}

/// Judges a run and writes its summary.
pub fn judge(run: Run<'_>) -> Verdict {
    let mut failures = Vec::new();
    let mut text = format!("{}\n\n", run.title);

    let _ = writeln!(text, "counts        baseline    final");
    for ((name, before), (_, after)) in run.baseline.counts.fields().into_iter().zip(run.last.counts.fields()) {
        let ok = after == before;
        let _ = writeln!(text, "{name:<20} {before:>8} {after:>8}  {}", mark(ok));
        if !ok {
            failures.push(format!(
                "{name}: {after} after the drain, {before} before the first wave"
            ));
        }
    }
    check_probes_saw_pods(&mut failures, run.samples);
    let drains: Vec<&Sample> = run
        .samples
        .iter()
        .filter(|s| matches!(s.kind, super::sample::Kind::Drain | super::sample::Kind::Final))
        .collect();
    let points = |value: &dyn Fn(&Sample) -> f64| -> Vec<(f64, f64)> {
        drains.iter().map(|s| (s.at.as_secs_f64(), value(s))).collect()
    };
    let _ = writeln!(
        text,
        "{:<20} {:>8} {:>8}  (not held to the baseline: idle registry connections)",
        "agent_fds", run.baseline.agent_fds, run.last.agent_fds
    );
    check_agent_fds(&mut text, &mut failures, &drains);
    let _ = writeln!(text, "\ngrowth over {} post-drain samples", drains.len());
    let memory = trend(&points(&|s| s.agent.pss_kib as f64));
    check_trend(
        &mut text,
        &mut failures,
        "agent PSS",
        memory,
        (MEMORY_RISE_FRACTION, MEMORY_RISE_FLOOR_KIB),
        1024.0,
        "MiB",
    );
    let store = trend(&points(&|s| s.store_bytes as f64));
    check_trend(
        &mut text,
        &mut failures,
        "store size",
        store,
        (STORE_RISE_FRACTION, STORE_RISE_FLOOR_BYTES),
        1024.0 * 1024.0,
        "MiB",
    );
    let _ = writeln!(
        text,
        "agent PSS at each drain (MiB): {}",
        drains
            .iter()
            .map(|s| format!("{:.1}", s.agent.pss_kib as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(" ")
    );

    let _ = writeln!(text, "\nwaves");
    for wave in run.waves {
        let up = match wave.all_running_after {
            Some(after) => format!("all {} running after {:.0?}", wave.pods, after),
            None => {
                failures.push(format!(
                    "wave {}: only {} of {} pods ran at once before deletion",
                    wave.wave, wave.most_running, wave.pods
                ));
                format!("only {} of {} running", wave.most_running, wave.pods)
            }
        };
        let gone = match wave.drained_after {
            Some(after) => format!("drained {after:.0?} after deletion"),
            None => {
                failures.push(format!("wave {}: pods still there when the drain timed out", wave.wave));
                "not drained".to_string()
            }
        };
        let _ = writeln!(text, "  wave {:>3}: {up}; {gone}", wave.wave);
    }
    let restarts: Vec<Duration> = run.kills.iter().filter_map(|kill| kill.restart).collect();
    let _ = writeln!(
        text,
        "\nkills: {} ({} of the agent, {} of a monitor)",
        run.kills.len(),
        restarts.len(),
        run.kills.len() - restarts.len()
    );
    for kill in run.kills {
        let restart = kill
            .restart
            .map(|after| format!(", running again after {after:.1?}"))
            .unwrap_or_default();
        let _ = writeln!(text, "  +{:>6.0?} kill -9 {}{restart}", kill.at, kill.what);
    }
    for at in run.crashes {
        failures.push(format!("kubelet-lite exited on its own at +{at:.0?}"));
    }

    if failures.is_empty() {
        let _ = writeln!(text, "\nPASS: every count back to its baseline, no growth trend");
    } else {
        let _ = writeln!(text, "\nFAIL:");
        for failure in &failures {
            let _ = writeln!(text, "  {failure}");
        }
    }
    Verdict {
        failures,
        summary: text,
    }
}

/// Fails every count (but kubelet-lite's children) that read zero in all the samples
/// where containers ran.
fn check_probes_saw_pods(failures: &mut Vec<String>, samples: &[Sample]) {
    let with_pods: Vec<&Sample> = samples.iter().filter(|s| s.counts.running_containers > 0).collect();
    let Some(first) = with_pods.first() else {
        return;
    };
    for (index, (name, _)) in first.counts.fields().iter().enumerate() {
        let seen = with_pods.iter().any(|s| s.counts.fields()[index].1 > 0);
        if !seen && *name != "agent_children" {
            failures.push(format!(
                "{name}: zero in every sample while containers ran: its probe does not see this node"
            ));
        }
    }
}

/// Checks that no kubelet-lite process held more descriptors at a later drain than at its
/// first one (plus [`AGENT_FD_SLACK`]).
fn check_agent_fds(text: &mut String, failures: &mut Vec<String>, drains: &[&Sample]) {
    let mut first_of_pid: Vec<(u32, u64)> = Vec::new();
    let mut worst = 0i64;
    for sample in drains {
        let first = match first_of_pid.iter().find(|(pid, _)| *pid == sample.agent_pid) {
            Some((_, fds)) => *fds,
            None => {
                first_of_pid.push((sample.agent_pid, sample.agent_fds));
                continue;
            }
        };
        worst = worst.max(sample.agent_fds as i64 - first as i64);
        if sample.agent_fds > first + AGENT_FD_SLACK {
            failures.push(format!(
                "agent_fds: kubelet-lite (pid {}) held {} descriptors at +{:.0?}, {first} at its first drain",
                sample.agent_pid, sample.agent_fds, sample.at
            ));
        }
    }
    let _ = writeln!(
        text,
        "agent_fds over the drains of each of {} kubelet-lite processes: at most {worst:+} after its first drain (bound +{AGENT_FD_SLACK})",
        first_of_pid.len()
    );
}

/// Writes one trend line and records a failure if its rise exceeds
/// `max(fraction * first, floor)`; values are shown divided by `unit` and named `unit_name`.
fn check_trend(
    text: &mut String,
    failures: &mut Vec<String>,
    what: &str,
    trend: Option<Trend>,
    (fraction, floor): (f64, f64),
    unit: f64,
    unit_name: &str,
) {
    let Some(trend) = trend else {
        let _ = writeln!(text, "  {what}: fewer than two post-drain samples, not judged");
        return;
    };
    let bound = (fraction * trend.first).max(floor);
    let ok = trend.rise <= bound;
    let _ = writeln!(
        text,
        "  {what}: first {:.1} {unit_name}, rise {:+.2} {unit_name} (bound {:.1}), slope {:+.2} {unit_name}/h  {}",
        trend.first / unit,
        trend.rise / unit,
        bound / unit,
        trend.slope_per_hour / unit,
        mark(ok)
    );
    if !ok {
        failures.push(format!(
            "{what} grows: {:+.2} {unit_name} over the drains, more than {:.1} {unit_name}",
            trend.rise / unit,
            bound / unit
        ));
    }
}

fn mark(ok: bool) -> &'static str {
    if ok { "ok" } else { "LEAK" }
}

#[cfg(test)]
mod tests {
    use super::super::probe::Memory;
    use super::super::sample::{Counts, Kind};
    use super::*;

    fn sample(at_secs: u64, kind: Kind, agent_pid: u32, agent_fds: u64, mounts: u64) -> Sample {
        Sample {
            at: Duration::from_secs(at_secs),
            kind,
            wave: 0,
            agent_pid,
            agent: Memory {
                rss_kib: 50_000,
                pss_kib: 40_000,
            },
            agent_fds,
            monitors: Memory::default(),
            store_bytes: 300_000,
            counts: Counts {
                mounts,
                ..Counts::default()
            },
            events: String::new(),
        }
    }

    fn judge_samples(samples: &[Sample]) -> Verdict {
        judge(Run {
            title: "test",
            baseline: &samples[0],
            last: samples.last().unwrap(),
            samples,
            waves: &[],
            kills: &[],
            crashes: &[],
        })
    }

    #[test]
    fn a_count_off_its_baseline_fails_and_names_itself() {
        let clean = [
            sample(0, Kind::Baseline, 1, 17, 0),
            sample(60, Kind::Drain, 1, 27, 0),
            sample(120, Kind::Final, 1, 27, 0),
        ];
        assert!(judge_samples(&clean).passed(), "{}", judge_samples(&clean).summary);
        let leaky = [
            sample(0, Kind::Baseline, 1, 17, 0),
            sample(60, Kind::Drain, 1, 27, 1),
            sample(120, Kind::Final, 1, 27, 2),
        ];
        let verdict = judge_samples(&leaky);
        assert_eq!(verdict.failures.len(), 1, "{}", verdict.summary);
        assert!(verdict.failures[0].starts_with("mounts: 2 after the drain, 0 before"));
    }

    #[test]
    fn a_probe_that_never_sees_the_pods_fails() {
        let mut running = sample(30, Kind::Periodic, 1, 40, 80);
        running.counts = Counts {
            running_containers: 20,
            containers: 20,
            sandboxes: 20,
            monitors: 20,
            mounts: 80,
            net_namespaces: 20,
            veths: 20,
            ip_reservations: 20,
            cgroups: 0,
            pod_dirs: 20,
            pod_log_dirs: 20,
            runtime_dirs: 60,
            monitor_fds: 260,
            agent_children: 0,
        };
        let samples = [
            sample(0, Kind::Baseline, 1, 17, 0),
            running,
            sample(60, Kind::Drain, 1, 17, 0),
            sample(120, Kind::Final, 1, 17, 0),
        ];
        let verdict = judge_samples(&samples);
        assert_eq!(verdict.failures.len(), 1, "{}", verdict.summary);
        assert!(verdict.failures[0].starts_with("cgroups: zero in every sample while containers ran"));
    }

    #[test]
    fn descriptors_may_not_rise_over_the_drains_of_one_agent_process() {
        let restarted = [
            sample(0, Kind::Baseline, 1, 17, 0),
            sample(60, Kind::Drain, 1, 30, 0),
            sample(120, Kind::Drain, 2, 18, 0),
            sample(180, Kind::Final, 2, 19, 0),
        ];
        assert!(judge_samples(&restarted).passed());
        let rising = [
            sample(0, Kind::Baseline, 1, 17, 0),
            sample(60, Kind::Drain, 1, 22, 0),
            sample(120, Kind::Drain, 1, 27, 0),
            sample(180, Kind::Final, 1, 32, 0),
        ];
        let verdict = judge_samples(&rising);
        assert_eq!(verdict.failures.len(), 2, "{}", verdict.summary);
        assert!(
            verdict
                .failures
                .iter()
                .all(|f| f.starts_with("agent_fds: kubelet-lite (pid 1)"))
        );
    }

    #[test]
    fn a_line_through_points_gives_its_slope_and_rise() {
        let rising = trend(&[(0.0, 100.0), (1800.0, 110.0), (3600.0, 120.0)]).unwrap();
        assert!((rising.slope_per_hour - 20.0).abs() < 1e-9);
        assert!((rising.rise - 20.0).abs() < 1e-9);
        let two = trend(&[(0.0, 100.0), (60.0, 90.0)]).unwrap();
        assert_eq!(two.rise, -10.0);
        assert!(trend(&[(0.0, 1.0)]).is_none());
        let flat = trend(&[(5.0, 7.0), (5.0, 7.0), (5.0, 7.0)]).unwrap();
        assert_eq!(flat.rise, 0.0);
    }
}
