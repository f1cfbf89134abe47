//! A pod's phase and conditions from its container statuses (the kubelet's `getPhase` and
//! `generateAPIPodStatus` rules).

use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The pod's phase: `Pending`, `Running`, `Succeeded` or `Failed`.
pub fn phase(restart_policy: &str, init: &[ContainerStatus], containers: &[ContainerStatus]) -> &'static str {
    let exited = |s: &ContainerStatus| {
        s.state
            .as_ref()
            .and_then(|st| st.terminated.as_ref())
            .map(|t| t.exit_code)
    };
    for status in init {
        match exited(status) {
            Some(0) => {}
            Some(_) if restart_policy == "Never" => return "Failed",
            _ => return "Pending",
        }
    }
    let (mut waiting, mut running, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for status in containers {
        let state = status.state.as_ref();
        if state.and_then(|s| s.running.as_ref()).is_some() {
            running += 1;
        } else if let Some(code) = exited(status) {
            stopped += 1;
            if code == 0 {
                succeeded += 1;
            }
        } else if status.last_state.as_ref().and_then(|s| s.terminated.as_ref()).is_some() {
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    match () {
        _ if waiting > 0 => "Pending",
        _ if running > 0 => "Running",
        _ if stopped > 0 => {
            if restart_policy == "Always" {
                "Running"
            } else if stopped == succeeded {
                "Succeeded"
            } else if restart_policy == "Never" {
                "Failed"
            } else {
                "Running"
            }
        }
        _ => "Pending",
    }
}

/// The conditions to report: the pod's existing ones with PodScheduled, Initialized,
/// ContainersReady and Ready set; transition times kept when a status did not change.
pub fn conditions(
    pod: &Pod,
    init: &[ContainerStatus],
    containers: &[ContainerStatus],
    now: &Time,
) -> Vec<PodCondition> {
    let mut conditions: Vec<PodCondition> = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let terminated_ok = |s: &ContainerStatus| {
        s.state
            .as_ref()
            .and_then(|st| st.terminated.as_ref())
            .is_some_and(|t| t.exit_code == 0)
    };
    let uninitialized: Vec<&str> = init
        .iter()
        .filter(|s| !terminated_ok(s))
        .map(|s| s.name.as_str())
        .collect();
    let unready: Vec<&str> = containers
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.as_str())
        .collect();
    let mut set = |type_: &str, ok: bool, reason: &str, names: &[&str], what: &str| {
        let status = if ok { "True" } else { "False" };
        let (reason, message) = if ok {
            (None, None)
        } else {
            (
                Some(reason.to_owned()),
                Some(format!("containers with {what} status: [{}]", names.join(" "))),
            )
        };
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            Some(existing) => {
                if existing.status != status {
                    existing.last_transition_time = Some(now.clone());
                }
                existing.status = status.to_owned();
                existing.reason = reason;
                existing.message = message;
            }
            None => conditions.push(PodCondition {
                type_: type_.to_owned(),
                status: status.to_owned(),
                reason,
                message,
                last_transition_time: Some(now.clone()),
                ..PodCondition::default()
            }),
        }
    };
    set(
        "Initialized",
        uninitialized.is_empty(),
        "ContainersNotInitialized",
        &uninitialized,
        "incomplete",
    );
    let ready = uninitialized.is_empty() && unready.is_empty();
    set("ContainersReady", ready, "ContainersNotReady", &unready, "unready");
    set("Ready", ready, "ContainersNotReady", &unready, "unready");
    if !conditions.iter().any(|c| c.type_ == "PodScheduled") {
        conditions.push(PodCondition {
            type_: "PodScheduled".into(),
            status: "True".into(),
            last_transition_time: Some(now.clone()),
            ..PodCondition::default()
        });
    }
    conditions
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    };

    fn running(name: &str, ready: bool) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            ready,
            state: Some(ContainerState {
                running: Some(ContainerStateRunning::default()),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        }
    }

    fn exited(name: &str, code: i32) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: code,
                    ..ContainerStateTerminated::default()
                }),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        }
    }

    fn waiting(name: &str) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("ContainerCreating".into()),
                    ..ContainerStateWaiting::default()
                }),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        }
    }

    #[test]
    fn phases_follow_the_kubelet() {
        assert_eq!(phase("Always", &[], &[waiting("a")]), "Pending");
        assert_eq!(phase("Always", &[waiting("i")], &[waiting("a")]), "Pending");
        assert_eq!(phase("Always", &[exited("i", 0)], &[running("a", true)]), "Running");
        assert_eq!(phase("Never", &[exited("i", 1)], &[waiting("a")]), "Failed");
        assert_eq!(phase("Always", &[], &[exited("a", 1)]), "Running");
        assert_eq!(phase("Never", &[], &[exited("a", 0)]), "Succeeded");
        assert_eq!(phase("Never", &[], &[exited("a", 0), exited("b", 2)]), "Failed");
        assert_eq!(phase("OnFailure", &[], &[exited("a", 2)]), "Running");
    }

    #[test]
    fn ready_needs_every_container_ready() {
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let pod = Pod::default();
        let all = conditions(&pod, &[], &[running("a", true), running("b", false)], &now);
        let get = |t: &str| all.iter().find(|c| c.type_ == t).unwrap();
        assert_eq!(get("Ready").status, "False");
        assert_eq!(
            get("ContainersReady").message.as_deref(),
            Some("containers with unready status: [b]")
        );
        assert_eq!(get("Initialized").status, "True");
        assert_eq!(get("PodScheduled").status, "True");
    }
}
