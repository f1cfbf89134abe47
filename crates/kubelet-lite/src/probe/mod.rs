//! Probes: liveness, readiness and startup checks of a container (exec, httpGet over HTTP
//! or HTTPS, tcpSocket, grpc), run periodically with the kubelet's timing and threshold rules.
//!
//! [`run_once`] makes one attempt; [`spawn`] runs a probe in a task for one container
//! instance and publishes the settled result through a `watch` channel:
//!
//! ```no_run
//! # async fn f(probe: k8s_openapi::api::core::v1::Probe, target: kubelet_lite::probe::ProbeTarget) {
//! use kubelet_lite::probe::{ProbeKind, ProbeOutcome, spawn};
//! let handle = spawn(ProbeKind::Readiness, probe, target);
//! let mut results = handle.subscribe();
//! while results.changed().await.is_ok() {
//!     let ready = matches!(*results.borrow(), Some(ProbeOutcome::Success));
//!     println!("ready: {ready}");
//! }
//! // Dropping `handle` stops the probe.
//! # }
//! ```

mod address;
mod check;
mod grpc;
mod http;
mod settings;

use k8s_openapi::api::core::v1::{Container, Probe};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use check::run_once;
pub use http::USER_AGENT;
pub(crate) use http::http_get;
pub use settings::{
    DEFAULT_FAILURE_THRESHOLD, DEFAULT_PERIOD_SECONDS, DEFAULT_SUCCESS_THRESHOLD, DEFAULT_TIMEOUT_SECONDS,
    ProbeSettings, ProbeWorker,
};

/// Which probe of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// Failing restarts the container.
    Liveness,
    /// Failing takes the pod out of Ready.
    Readiness,
    /// Until it succeeds, the other probes wait; failing restarts the container.
    Startup,
}

impl ProbeKind {
    /// The name used in events and messages (`Liveness`, `Readiness`, `Startup`).
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        }
    }
}

/// The result of a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The check passed.
    Success,
    /// The check failed, with what went wrong (for the container's events).
    Failure(String),
}

impl ProbeOutcome {
    /// Whether this is [`ProbeOutcome::Success`].
    pub fn is_success(&self) -> bool {
        matches!(self, ProbeOutcome::Success)
    }
}

/// What a probe checks: a running container of a pod.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    /// The runtime that runs the container (for exec probes).
    pub runtime: cri_client::Client,
    /// The container's runtime id.
    pub container_id: String,
    /// The pod's IP, the default host of httpGet and tcpSocket probes.
    pub pod_ip: String,
    /// The container's spec, for named ports.
    pub container: Container,
}

/// A running probe; dropping it stops the probe's task.
#[derive(Debug)]
pub struct ProbeHandle {
    results: watch::Receiver<Option<ProbeOutcome>>,
    task: JoinHandle<()>,
}

impl ProbeHandle {
    /// The settled results: `None` until the first threshold is reached, then the
    /// current result.
    pub fn subscribe(&self) -> watch::Receiver<Option<ProbeOutcome>> {
        self.results.clone()
    }

    /// The current settled result.
    pub fn current(&self) -> Option<ProbeOutcome> {
        self.results.borrow().clone()
    }
}

impl Drop for ProbeHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts probing `target` (call it when the container starts): waits
/// `initialDelaySeconds`, then runs the probe every `periodSeconds`, publishing a result
/// whenever the success or failure threshold is reached. Must be called inside a tokio
/// runtime.
pub fn spawn(kind: ProbeKind, probe: Probe, target: ProbeTarget) -> ProbeHandle {
    let settings = ProbeSettings::of(&probe);
    let (sender, results) = watch::channel(None);
    let task = tokio::spawn(async move {
        let mut worker = ProbeWorker::new(kind, settings);
        tokio::time::sleep(settings.initial_delay).await;
        let mut ticks = tokio::time::interval(settings.period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let outcome = run_once(&probe, &target).await;
            if let ProbeOutcome::Failure(message) = &outcome {
                tracing::debug!(probe = kind.as_str(), container = %target.container_id, %message, "probe failed");
            }
            if let Some(settled) = worker.observe(outcome) {
                tracing::info!(probe = kind.as_str(), container = %target.container_id, result = ?settled, "probe result changed");
                if sender.send(Some(settled)).is_err() {
                    return;
                }
            }
            if worker.finished() {
                return;
            }
        }
    });
    ProbeHandle { results, task }
}

#[cfg(test)]
mod tests;
