//! The probes of one running container: the startup probe first, then readiness and
//! liveness once it succeeded. Each result change wakes the pod worker.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Probe};
use tokio::sync::{Notify, watch};

use crate::probe::{self, ProbeHandle, ProbeKind, ProbeOutcome, ProbeTarget};

/// One probe and the receiver of its results.
struct Running {
    _handle: ProbeHandle,
    outcome: watch::Receiver<Option<ProbeOutcome>>,
}

/// The probes of one container instance.
#[derive(Default)]
pub(crate) struct ContainerProbes {
    startup: Option<Running>,
    readiness: Option<Running>,
    liveness: Option<Running>,
    /// The startup probe succeeded (or there is none).
    started: bool,
}

impl std::fmt::Debug for ContainerProbes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerProbes")
            .field("started", &self.started)
            .field("ready", &self.ready())
            .finish_non_exhaustive()
    }
}

impl ContainerProbes {
    /// Starts the container's startup probe, or its readiness and liveness probes if it
    /// has none.
    pub(crate) fn start(
        runtime: &cri_client::Client,
        id: &str,
        pod_ip: &str,
        container: &Container,
        notify: &Arc<Notify>,
    ) -> Self {
        let mut probes = ContainerProbes::default();
        match &container.startup_probe {
            Some(startup) => {
                probes.startup = Some(spawn(
                    ProbeKind::Startup,
                    startup,
                    runtime,
                    id,
                    pod_ip,
                    container,
                    notify,
                ));
            }
            None => probes.start_rest(runtime, id, pod_ip, container, notify),
        }
        probes
    }

    /// After a startup probe succeeded: starts readiness and liveness.
    pub(crate) fn advance(
        &mut self,
        runtime: &cri_client::Client,
        id: &str,
        pod_ip: &str,
        container: &Container,
        notify: &Arc<Notify>,
    ) {
        if self.started {
            return;
        }
        let succeeded = self
            .startup
            .as_ref()
            .is_some_and(|s| matches!(*s.outcome.borrow(), Some(ProbeOutcome::Success)));
        if succeeded {
            self.startup = None;
            self.start_rest(runtime, id, pod_ip, container, notify);
        }
    }

    fn start_rest(
        &mut self,
        runtime: &cri_client::Client,
        id: &str,
        pod_ip: &str,
        container: &Container,
        notify: &Arc<Notify>,
    ) {
        self.started = true;
        self.readiness = (container.readiness_probe.as_ref())
            .map(|p| spawn(ProbeKind::Readiness, p, runtime, id, pod_ip, container, notify));
        self.liveness = (container.liveness_probe.as_ref())
            .map(|p| spawn(ProbeKind::Liveness, p, runtime, id, pod_ip, container, notify));
    }

    /// Whether the startup probe succeeded (or there is none).
    pub(crate) fn started(&self) -> bool {
        self.started
    }

    /// Whether the container counts as ready: started, and its readiness probe (if any)
    /// last succeeded.
    pub(crate) fn ready(&self) -> bool {
        self.started
            && self
                .readiness
                .as_ref()
                .is_none_or(|r| matches!(*r.outcome.borrow(), Some(ProbeOutcome::Success)))
    }

    /// Why the container must be killed: its liveness or startup probe failed.
    pub(crate) fn kill_reason(&self) -> Option<String> {
        [&self.liveness, &self.startup]
            .into_iter()
            .flatten()
            .find_map(|r| match &*r.outcome.borrow() {
                Some(ProbeOutcome::Failure(why)) => Some(why.clone()),
                _ => None,
            })
    }
}

fn spawn(
    kind: ProbeKind,
    spec: &Probe,
    runtime: &cri_client::Client,
    id: &str,
    pod_ip: &str,
    container: &Container,
    notify: &Arc<Notify>,
) -> Running {
    let handle = probe::spawn(
        kind,
        spec.clone(),
        ProbeTarget {
            runtime: runtime.clone(),
            container_id: id.to_owned(),
            pod_ip: pod_ip.to_owned(),
            container: container.clone(),
        },
    );
    let outcome = handle.subscribe();
    let mut changes = handle.subscribe();
    let notify = notify.clone();
    tokio::spawn(async move {
        while changes.changed().await.is_ok() {
            notify.notify_one();
        }
    });
    Running {
        _handle: handle,
        outcome,
    }
}
