//! The soak's command line, and the durations it is written in (`30m`, `24h`, `1h30m`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::cli::Flags;

/// The usage line printed with a wrong argument or `--help`.
pub const USAGE: &str = "usage: soak [--duration 30m] [--pods 50] [--wave 5m] [--kill-every 3m|off] \
[--sample-every 30s] [--settle 20s] [--output DIR] [--kubelet-lite BINARY] [--base-dir DIR]";

/// Where the soak's scratch directories go unless `--base-dir` says otherwise: apart from
/// the tests' `/var/lib/kubelet-lite-test`, so a soak never meets a test run's files.
pub const DEFAULT_BASE_DIR: &str = "/var/lib/kubelet-lite-soak";

/// What one soak run does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// How long pods are churned; the last drain and the settle period come after.
    pub duration: Duration,
    /// Pods created in each wave.
    pub pods: usize,
    /// The period of a wave: pods are created at its start and deleted half-way through.
    pub wave: Duration,
    /// The time between two kills (alternately the agent and a container's monitor);
    /// `None` (`off`) for a run without kills.
    pub kill_every: Option<Duration>,
    /// The time between two periodic samples.
    pub sample_every: Duration,
    /// How long the node is left alone after a drain before it is sampled.
    pub settle: Duration,
    /// Where `soak.csv`, `soak.png` and `soak.txt` go.
    pub output: PathBuf,
    /// The kubelet-lite binary (`runtime-core-monitor` must be beside it); default: the
    /// one beside the soak binary.
    pub kubelet_lite: Option<PathBuf>,
    /// The base of the run's scratch directories (`KUBELET_LITE_TEST_DIR` for the harness).
    pub base_dir: PathBuf,
}

impl Default for Args {
    fn default() -> Args {
        Args {
            duration: Duration::from_secs(30 * 60),
            pods: 50,
            wave: Duration::from_secs(5 * 60),
            kill_every: Some(Duration::from_secs(3 * 60)),
            sample_every: Duration::from_secs(30),
            settle: Duration::from_secs(20),
            output: PathBuf::from("/tmp/kubelet-lite-soak"),
            kubelet_lite: None,
            base_dir: PathBuf::from(DEFAULT_BASE_DIR),
        }
    }
}

impl Args {
    /// Parses the arguments after the program name (`--flag value` or `--flag=value`).
    pub fn parse(args: impl Iterator<Item = String>) -> anyhow::Result<Args> {
        let mut parsed = Args::default();
        let mut flags = Flags::new(args);
        while let Some(flag) = flags.next_flag() {
            let mut value = || flags.value(&flag);
            match flag.name() {
                "--duration" => parsed.duration = parse_duration(&value()?)?,
                "--pods" => parsed.pods = value()?.parse().context("--pods")?,
                "--wave" => parsed.wave = parse_duration(&value()?)?,
                "--kill-every" => {
                    parsed.kill_every = match value()?.as_str() {
                        "off" | "0" => None,
                        text => Some(parse_duration(text)?),
                    }
                }
                "--sample-every" => parsed.sample_every = parse_duration(&value()?)?,
                "--settle" => parsed.settle = parse_duration(&value()?)?,
                "--output" => parsed.output = PathBuf::from(value()?),
                "--kubelet-lite" => parsed.kubelet_lite = Some(PathBuf::from(value()?)),
                "--base-dir" => parsed.base_dir = PathBuf::from(value()?),
                "-h" | "--help" => bail!("{USAGE}"),
                other => bail!("unknown argument {other:?}\n{USAGE}"),
            }
        }
        if parsed.pods == 0 {
            bail!("--pods must be at least 1");
        }
        if parsed.wave < Duration::from_secs(20) {
            bail!("--wave must be at least 20s: pods need time to start and to go");
        }
        if parsed.sample_every.is_zero() {
            bail!("--sample-every must not be zero");
        }
        Ok(parsed)
    }
}

/// Parses a duration written as numbers with units `h`, `m` or `s`, in that order or any:
/// `30m`, `24h`, `90s`, `1h30m`.
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => bail!("duration {text:?}: unknown unit {c:?} (use h, m or s)"),
        };
        let value: u64 = number
            .parse()
            .with_context(|| format!("duration {text:?}: a number must come before {c:?}"))?;
        total += value * unit;
        number.clear();
    }
    if !number.is_empty() || text.trim().is_empty() {
        bail!("duration {text:?}: every number needs a unit (h, m or s)");
    }
    Ok(Duration::from_secs(total))
}

/// Writes a duration as [`parse_duration`] reads it, whole seconds only: `30m`, `1h30m`,
/// `90s` comes out as `1m30s`.
pub fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (hours, minutes, seconds) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut text = String::new();
    for (value, unit) in [(hours, 'h'), (minutes, 'm'), (seconds, 's')] {
        if value > 0 {
            text.push_str(&format!("{value}{unit}"));
        }
    }
    if text.is_empty() { "0s".into() } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_numbers_with_units() {
        let cases = [
            ("minutes", "30m", Some(1800)),
            ("hours", "24h", Some(86_400)),
            ("seconds", "90s", Some(90)),
            ("mixed", "1h30m", Some(5400)),
            ("no unit", "30", None),
            ("unknown unit", "3d", None),
            ("empty", "", None),
            ("unit alone", "m", None),
        ];
        for (desc, text, secs) in cases {
            let parsed = parse_duration(text).ok().map(|d| d.as_secs());
            assert_eq!(parsed, secs, "{desc}: {text:?}");
        }
    }

    #[test]
    fn durations_are_written_as_they_are_read() {
        for text in ["30m", "24h", "1h30m", "1m30s", "0s", "2h5s"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
    }

    #[test]
    fn flags_override_the_defaults() {
        let args = ["--duration", "4m", "--pods=20", "--wave", "1m", "--kill-every", "off"];
        let parsed = Args::parse(args.into_iter().map(String::from)).unwrap();
        assert_eq!(parsed.duration, Duration::from_secs(240));
        assert_eq!(parsed.pods, 20);
        assert_eq!(parsed.wave, Duration::from_secs(60));
        assert_eq!(parsed.kill_every, None);
        assert_eq!(parsed.sample_every, Duration::from_secs(30));
        assert!(Args::parse(["--pods", "0"].into_iter().map(String::from)).is_err());
        assert!(Args::parse(["--nope"].into_iter().map(String::from)).is_err());
    }
}
