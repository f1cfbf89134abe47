//! The soak's timeline: a baseline, waves of pods created and deleted, kills every
//! `--kill-every` while pods churn, a sample every `--sample-every`, a sample after each
//! drain, and the final one.
//!
//! One thread does it all, a step at a time: between the steps of a wave (waiting for its
//! pods to run, holding them, waiting for them to go) it polls every second, and each
//! poll takes a sample or kills something when one is due. A wave starts every `--wave`;
//! its pods are deleted half-way through, and the wave started last before `--duration`
//! runs to its end. No kill falls in a settle period, so drain samples see a quiet node.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::args::{Args, format_duration};
use super::node::SoakNode;
use super::plot;
use super::sample::{self, Kind, Sample};
use super::verdict::{self, KillReport, Run, Verdict, WaveReport};

/// How often waits poll the runtime.
const POLL: Duration = Duration::from_secs(1);

/// The shortest time a wave's pods have to go before the wave counts as not drained.
const MIN_DRAIN_TIMEOUT: Duration = Duration::from_secs(180);

/// How long a baseline or final sample is retried while the runtime does not answer.
const SAMPLE_RETRY: Duration = Duration::from_secs(60);

/// The files a soak writes in its output directory.
#[derive(Debug, Clone)]
pub struct Outputs {
    /// Every sample.
    pub csv: PathBuf,
    /// The plot.
    pub png: PathBuf,
    /// The summary and verdict.
    pub summary: PathBuf,
    /// A copy of kubelet-lite's log.
    pub log: PathBuf,
}

impl Outputs {
    /// `soak.csv`, `soak.png`, `soak.txt` and `kubelet-lite.log` in `dir`.
    pub fn in_dir(dir: &Path) -> Outputs {
        Outputs {
            csv: dir.join("soak.csv"),
            png: dir.join("soak.png"),
            summary: dir.join("soak.txt"),
            log: dir.join("kubelet-lite.log"),
        }
    }
}

/// Runs a soak with `args` on kubelet-lite `binary`, writes its outputs and judges it.
pub fn run(args: &Args, binary: &Path) -> anyhow::Result<Verdict> {
    fs::create_dir_all(&args.output).with_context(|| format!("creating {}", args.output.display()))?;
    let outputs = Outputs::in_dir(&args.output);
    let mut csv = File::create(&outputs.csv).with_context(|| format!("creating {}", outputs.csv.display()))?;
    csv.write_all(sample::csv_header().as_bytes())?;
    let node = SoakNode::start(binary, args.pods)?;
    let mut soak = Soak {
        args,
        node,
        csv,
        started: Instant::now(),
        samples: Vec::new(),
        kills: Vec::new(),
        crashes: Vec::new(),
        waves: Vec::new(),
        events: Vec::new(),
        wave: 0,
        next_sample: args.sample_every,
        next_kill: args.kill_every,
        agent_next: true,
    };
    let result = soak.timeline();
    let _ = fs::copy(soak.node.log_file(), &outputs.log);
    result?;
    soak.finish(&outputs)
}

/// A soak under way.
struct Soak<'a> {
    args: &'a Args,
    node: SoakNode,
    csv: File,
    started: Instant,
    samples: Vec<Sample>,
    kills: Vec<KillReport>,
    crashes: Vec<Duration>,
    waves: Vec<WaveReport>,
    /// What happened since the last sample.
    events: Vec<String>,
    wave: u32,
    next_sample: Duration,
    next_kill: Option<Duration>,
    /// Whether the next kill is of the agent (else of a monitor).
    agent_next: bool,
}

impl Soak<'_> {
    fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn churning(&self) -> bool {
        self.elapsed() < self.args.duration
    }

    /// Baseline, waves, final sample.
    fn timeline(&mut self) -> anyhow::Result<()> {
        self.settle()?;
        self.record_retrying(Kind::Baseline)?;
        while self.churning() {
            let start = self.elapsed();
            self.wave += 1;
            self.run_wave()?;
            self.wait_until(start + self.args.wave, true)?;
        }
        self.settle()?;
        self.record_retrying(Kind::Final)
    }

    /// One wave: create, wait until all run, hold until half-way, delete, wait until
    /// drained, settle, sample.
    fn run_wave(&mut self) -> anyhow::Result<()> {
        let (wave, pods) = (self.wave, self.args.pods);
        let start = self.elapsed();
        let delete_at = start + self.args.wave / 2;
        crate::note(format!("soak: wave {wave}: creating {pods} pods"));
        self.node.create_pods(wave, pods)?;
        let mut report = WaveReport {
            wave,
            pods,
            all_running_after: None,
            most_running: 0,
            drained_after: None,
        };
        while self.elapsed() < delete_at {
            self.poll(true)?;
            if report.all_running_after.is_none()
                && let Ok((running, _, _)) = self.node.runtime_counts()
            {
                report.most_running = report.most_running.max(running);
                if running >= pods as u64 {
                    report.all_running_after = Some(self.elapsed() - start);
                    crate::note(format!(
                        "soak: wave {wave}: all {pods} pods running after {:.0?}",
                        self.elapsed() - start
                    ));
                }
            }
            std::thread::sleep(POLL);
        }
        crate::note(format!("soak: wave {wave}: deleting its pods"));
        self.node.delete_pods()?;
        let deleted = self.elapsed();
        let timeout = self.args.wave.max(MIN_DRAIN_TIMEOUT);
        while self.elapsed() < deleted + timeout {
            self.poll(true)?;
            if let Ok((_, 0, 0)) = self.node.runtime_counts() {
                report.drained_after = Some(self.elapsed() - deleted);
                break;
            }
            std::thread::sleep(POLL);
        }
        crate::note(format!(
            "soak: wave {wave}: {}",
            report
                .drained_after
                .map(|after| format!("drained after {after:.0?}"))
                .unwrap_or_else(|| format!("not drained within {timeout:?}"))
        ));
        self.waves.push(report);
        self.settle()?;
        self.record_retrying(Kind::Drain)
    }

    /// Waits `--settle` without kills (samples still taken).
    fn settle(&mut self) -> anyhow::Result<()> {
        self.wait_until(self.elapsed() + self.args.settle, false)
    }

    /// Polls until `until` (since the start); kills only if `kills` and pods churn.
    fn wait_until(&mut self, until: Duration, kills: bool) -> anyhow::Result<()> {
        while self.elapsed() < until {
            self.poll(kills)?;
            std::thread::sleep(POLL.min(until.saturating_sub(self.elapsed())));
        }
        Ok(())
    }

    /// Restarts an agent that died on its own, kills what is due, samples when due.
    fn poll(&mut self, kills: bool) -> anyhow::Result<()> {
        self.node.note_container_dirs();
        if self.node.check_agent_alive().is_err() {
            let at = self.elapsed();
            crate::note(format!(
                "soak: kubelet-lite exited on its own at +{at:.0?}; starting it again"
            ));
            self.crashes.push(at);
            self.events.push("agent exited on its own".into());
            self.node.kill_agent()?;
        }
        if kills
            && self.churning()
            && let Some(due) = self.next_kill
            && self.elapsed() >= due
            && self.kill()?
        {
            self.next_kill = self.args.kill_every.map(|every| due + every);
        }
        // A sample that fails (the runtime restarting) is tried again at the next poll.
        if self.elapsed() >= self.next_sample {
            match self.record(Kind::Periodic) {
                Ok(()) => self.next_sample += self.args.sample_every,
                Err(err) => crate::note(format!("soak: sample delayed: {err:#}")),
            }
        }
        Ok(())
    }

    /// kill -9 of the agent or of a monitor, in turn. Returns false when a monitor's turn
    /// finds none running: the kill waits until one does.
    fn kill(&mut self) -> anyhow::Result<bool> {
        let at = self.elapsed();
        let report = if self.agent_next {
            KillReport {
                at,
                what: "agent".into(),
                restart: Some(self.node.kill_agent()?),
            }
        } else {
            let Some(container) = self.node.kill_monitor()? else {
                return Ok(false);
            };
            KillReport {
                at,
                what: format!("monitor of {}", &container[..container.len().min(12)]),
                restart: None,
            }
        };
        self.agent_next = !self.agent_next;
        let line = format!(
            "kill -9 {}{}",
            report.what,
            report
                .restart
                .map(|after| format!(", running again after {after:.1?}"))
                .unwrap_or_default()
        );
        crate::note(format!("soak: +{at:.0?} {line}"));
        self.events.push(line);
        self.kills.push(report);
        Ok(true)
    }

    /// Takes a sample, writes it to the CSV and keeps it.
    fn record(&mut self, kind: Kind) -> anyhow::Result<()> {
        let events = self.events.join("; ");
        let sample = self.node.sample(self.elapsed(), kind, self.wave, events)?;
        self.events.clear();
        self.csv.write_all(sample.csv_row().as_bytes())?;
        self.csv.flush()?;
        crate::note(format!(
            "soak: {} sample, wave {}: {} running, agent PSS {:.1} MiB, {} fds, monitors {} ({:.1} MiB PSS), mounts {}, netns {}, veths {}, IPs {}, cgroups {}",
            kind.name(),
            sample.wave,
            sample.counts.running_containers,
            sample.agent.pss_kib as f64 / 1024.0,
            sample.agent_fds,
            sample.counts.monitors,
            sample.monitors.pss_kib as f64 / 1024.0,
            sample.counts.mounts,
            sample.counts.net_namespaces,
            sample.counts.veths,
            sample.counts.ip_reservations,
            sample.counts.cgroups,
        ));
        self.samples.push(sample);
        Ok(())
    }

    /// [`Soak::record`], retried while the runtime does not answer (just after a restart).
    fn record_retrying(&mut self, kind: Kind) -> anyhow::Result<()> {
        let deadline = Instant::now() + SAMPLE_RETRY;
        loop {
            match self.record(kind) {
                Ok(()) => return Ok(()),
                Err(err) if Instant::now() >= deadline => {
                    return Err(err).with_context(|| format!("taking the {} sample", kind.name()));
                }
                Err(_) => std::thread::sleep(POLL),
            }
        }
    }

    /// Judges the run, writes the summary and the plot.
    fn finish(&self, outputs: &Outputs) -> anyhow::Result<Verdict> {
        let baseline = self.samples.iter().find(|s| s.kind == Kind::Baseline);
        let last = self.samples.iter().rev().find(|s| s.kind == Kind::Final);
        let (Some(baseline), Some(last)) = (baseline, last) else {
            anyhow::bail!("the soak has no baseline or no final sample");
        };
        let args = self.args;
        let title = format!(
            "kubelet-lite soak: {} of waves of {} pods every {}, kill -9 every {}, samples every {}, settle {}",
            format_duration(args.duration),
            args.pods,
            format_duration(args.wave),
            args.kill_every.map(format_duration).unwrap_or_else(|| "never".into()),
            format_duration(args.sample_every),
            format_duration(args.settle),
        );
        let mut verdict = verdict::judge(Run {
            title: &title,
            baseline,
            last,
            samples: &self.samples,
            waves: &self.waves,
            kills: &self.kills,
            crashes: &self.crashes,
        });
        if let Err(err) = plot::write_png(&outputs.png, &title, &self.samples, &self.kills) {
            verdict.summary.push_str(&format!("\nno plot: {err:#}\n"));
        }
        verdict.summary.push_str(&format!(
            "\nsamples: {}\nplot: {}\nkubelet-lite's log: {}\n",
            outputs.csv.display(),
            outputs.png.display(),
            outputs.log.display()
        ));
        fs::write(&outputs.summary, &verdict.summary)
            .with_context(|| format!("writing {}", outputs.summary.display()))?;
        Ok(verdict)
    }
}
