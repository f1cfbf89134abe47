//! What the benchmark programs of runtime-core share: the command line `cargo bench`
//! hands them, the entry point that turns missing prerequisites into a skip (outside CI)
//! or a failure (in CI), the order in which the runtimes take turns, and the figures
//! printed for a series of samples.

// Each bench that includes this module uses a part of it.
#![allow(dead_code)]

use std::process::ExitCode;

use anyhow::{Context, bail};
use test_harness::Missing;

/// The runtime under test, as the tables name it.
pub(crate) const RUNTIME_CORE: &str = "runtime-core";
/// The peer it is measured against.
pub(crate) const CONTAINERD: &str = "containerd";

/// The options on a bench's command line, as `(flag, value)` pairs in order: every option
/// takes a value, written `--flag value` or `--flag=value`. What `cargo bench` adds on its
/// own is dropped: the `--bench` flag it passes to every bench target, and a bench name
/// filter (each of these programs is one benchmark). The caller rejects flags it does not
/// know.
pub(crate) fn options(args: impl IntoIterator<Item = String>) -> anyhow::Result<Vec<(String, String)>> {
    let mut options = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--bench" {
            continue;
        }
        if !arg.starts_with('-') {
            continue; // a cargo bench name filter
        }
        let (flag, value) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_string(), value.to_string()),
            None => {
                let value = args.next().with_context(|| format!("{arg} needs a value"))?;
                (arg, value)
            }
        };
        options.push((flag, value));
    }
    Ok(options)
}

/// A count option's value: a whole number of at least 1.
pub(crate) fn count(flag: &str, value: &str) -> anyhow::Result<usize> {
    let n: usize = value
        .parse()
        .with_context(|| format!("{flag} takes a number, not {value:?}"))?;
    if n == 0 {
        bail!("{flag} must be at least 1");
    }
    Ok(n)
}

/// `--only`'s value: one of the two runtimes.
pub(crate) fn runtime_name(value: &str) -> anyhow::Result<String> {
    if value == RUNTIME_CORE || value == CONTAINERD {
        Ok(value.to_string())
    } else {
        bail!("--only takes {RUNTIME_CORE} or {CONTAINERD}, not {value:?}")
    }
}

/// A bench's command line: `--samples N`, `--warmup N`, `--only RUNTIME`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Args {
    /// Measured samples per runtime.
    pub(crate) samples: usize,
    /// Unmeasured samples per runtime before them.
    pub(crate) warmup: usize,
    /// Measure only this runtime.
    pub(crate) only: Option<String>,
}

impl Args {
    /// Parses `args`; `samples` defaults to `default_samples`, `warmup` to 1.
    pub(crate) fn parse(args: Vec<String>, default_samples: usize) -> anyhow::Result<Args> {
        let mut parsed = Args {
            samples: default_samples,
            warmup: 1,
            only: None,
        };
        for (flag, value) in options(args)? {
            match flag.as_str() {
                "--samples" => parsed.samples = count(&flag, &value)?,
                "--warmup" => parsed.warmup = value.parse().context("--warmup")?,
                "--only" => parsed.only = Some(runtime_name(&value)?),
                other => bail!("unknown option {other}"),
            }
        }
        Ok(parsed)
    }
}

/// The body of a bench's `main`: parses the command line (exit code 2 when it is wrong),
/// runs the benchmark and maps the outcome to an exit code. A missing prerequisite (not
/// root, a tool not installed) skips the benchmark with exit code 0, unless `CI=true`:
/// CI installs everything, so there it is a failure.
pub(crate) fn main(name: &str, default_samples: usize, run: impl FnOnce(&Args) -> anyhow::Result<()>) -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1).collect(), default_samples) {
        Ok(args) => args,
        Err(err) => {
            eprintln!("{name}: {err:#}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => match Missing::find(&err) {
            Some(missing) if !test_harness::in_ci() => {
                eprintln!("{name}: skipped, missing:\n{}", missing.explain());
                ExitCode::SUCCESS
            }
            _ => {
                eprintln!("{name}: {err:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// The order in which `peers` runtimes take sample `sample`: the last one first in even
/// samples, the first one first in odd ones, so that caches warmed (or writeback left) by
/// one runtime's turn fall on both alike.
pub(crate) fn turns(sample: usize, peers: usize) -> Vec<usize> {
    if sample.is_multiple_of(2) {
        (0..peers).rev().collect()
    } else {
        (0..peers).collect()
    }
}

/// Order statistics of a series of samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Summary {
    pub(crate) min: f64,
    pub(crate) median: f64,
    /// The 90th percentile, nearest rank: the smallest sample at or above 90 % of them.
    pub(crate) p90: f64,
    pub(crate) max: f64,
}

impl Summary {
    /// The summary of `samples`; `None` when there are none.
    pub(crate) fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        let p90_rank = (n * 9).div_ceil(10).max(1);
        Some(Summary {
            min: sorted[0],
            median,
            p90: sorted[p90_rank - 1],
            max: sorted[n - 1],
        })
    }
}

/// Bytes in (decimal) megabytes.
pub(crate) fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// How a target line ends.
pub(crate) fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}
