//! Teardown that goes on after a failed step: every step runs, each error is kept, and
//! the end reports them all, so one stuck mount does not leave a bridge behind.

use std::path::Path;
use std::process::Child;
use std::time::Duration;

use anyhow::bail;

use crate::process;

/// The errors of the steps run so far.
#[derive(Debug, Default)]
pub(crate) struct Teardown {
    errors: Vec<String>,
}

impl Teardown {
    /// Records the outcome of step `what`.
    pub(crate) fn step(&mut self, what: &str, result: anyhow::Result<()>) {
        if let Err(err) = result {
            self.errors.push(format!("{what}: {err:#}"));
        }
    }

    /// Stops `child`, the process called `name` (SIGTERM, SIGKILL after `grace`), then
    /// kills what it left behind: every process whose command line names a path under
    /// `dir` (shims, monitors, holders of this instance).
    pub(crate) fn stop_processes(&mut self, name: &str, child: Option<Child>, dir: &Path, grace: Duration) {
        if let Some(mut child) = child {
            let stopped = process::stop_child(&mut child, grace).map(drop).map_err(Into::into);
            self.step(&format!("stopping {name}"), stopped);
        }
        let needle = format!("{}/", dir.display());
        let survivors = process::kill_and_wait(&process::pids_with_cmdline_containing(&needle), grace);
        let killed = if survivors.is_empty() {
            Ok(())
        } else {
            Err(anyhow::anyhow!("still alive: {survivors:?}"))
        };
        self.step("killing leftover processes", killed);
    }

    /// Fails, naming `what` was torn down, if any step failed.
    pub(crate) fn finish(self, what: &str) -> anyhow::Result<()> {
        if !self.errors.is_empty() {
            bail!("{what} cleanup incomplete: {}", self.errors.join("; "));
        }
        Ok(())
    }
}
