//! A pod's phase and conditions from its container statuses (the kubelet's `getPhase` and
//! `generateAPIPodStatus` rules).

use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The reason of the conditions of a pod whose containers all succeeded.
const COMPLETED: &str = "PodCompleted";

/// The pod's phase: `Pending`, `Running`, `Succeeded` or `Failed`, from the statuses of
/// its init containers and containers, as the kubelet's `getPhase` counts them.
///
/// An init container counts as failed when it terminated with an error, or waits to
/// restart after one (its last state); a failed init container fails the pod under
/// `Never`, and leaves it Pending otherwise. A pod whose phase was terminal keeps it
/// (see [`is_terminal`]): that is for the worker to enforce.
pub fn phase(restart_policy: &str, init: &[ContainerStatus], containers: &[ContainerStatus]) -> &'static str {
    let state = |s: &ContainerStatus| s.state.clone().unwrap_or_default();
    let last_exit = |s: &ContainerStatus| {
        s.last_state
            .as_ref()
            .and_then(|l| l.terminated.as_ref())
            .map(|t| t.exit_code)
    };
    let (mut pending_init, mut failed_init) = (0, 0);
    for status in init {
        let state = state(status);
        if state.running.is_some() {
            pending_init += 1;
        } else if let Some(terminated) = &state.terminated {
            if terminated.exit_code != 0 {
                failed_init += 1;
            }
        } else if state.waiting.is_some() {
            match last_exit(status) {
                Some(0) => {}
                Some(_) => failed_init += 1,
                None => pending_init += 1,
            }
        } else {
            pending_init += 1;
        }
    }
    let (mut unknown, mut waiting, mut running, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for status in containers {
        let state = state(status);
        if state.running.is_some() {
            running += 1;
        } else if let Some(terminated) = &state.terminated {
            stopped += 1;
            if terminated.exit_code == 0 {
                succeeded += 1;
            }
        } else if state.waiting.is_some() {
            if last_exit(status).is_some() {
                stopped += 1;
            } else {
                waiting += 1;
            }
        } else {
            unknown += 1;
        }
    }
    if failed_init > 0 && restart_policy == "Never" {
        return "Failed";
    }
    match () {
        _ if pending_init > 0 || waiting > 0 => "Pending",
        _ if running > 0 && unknown == 0 => "Running",
        _ if running == 0 && stopped > 0 && unknown == 0 => {
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
        _ if unknown > 0 => "Unknown",
        _ => "Pending",
    }
}

/// Whether `phase` is final: a pod that reached it never leaves it.
pub fn is_terminal(phase: &str) -> bool {
    phase == "Succeeded" || phase == "Failed"
}

/// The conditions to report: the pod's existing ones with PodScheduled, Initialized,
/// ContainersReady and Ready set; transition times kept when a status did not change.
///
/// As the kubelet words them: Initialized is False with `ContainersNotInitialized` and
/// the init containers not done (`containers with incomplete status: [a b]`), the
/// readiness ones False with `ContainersNotReady` and the unready containers; once the
/// pod `phase` is Succeeded, Initialized is True and both readiness ones False, all with
/// the reason `PodCompleted`.
pub fn conditions(
    pod: &Pod,
    init: &[ContainerStatus],
    containers: &[ContainerStatus],
    phase: &str,
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
    let completed = phase == "Succeeded";
    let mut set = |type_: &str, ok: bool, reason: &str, names: &[&str], what: &str| {
        let status = if ok { "True" } else { "False" };
        let (reason, message) = if completed {
            (Some(COMPLETED.to_owned()), None)
        } else if ok {
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
        completed || uninitialized.is_empty(),
        "ContainersNotInitialized",
        &uninitialized,
        "incomplete",
    );
    let ready = !completed && uninitialized.is_empty() && unready.is_empty();
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

    fn waiting_after(name: &str, reason: &str, code: i32) -> ContainerStatus {
        let mut status = waiting(name);
        status.state = Some(ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.into()),
                ..ContainerStateWaiting::default()
            }),
            ..ContainerState::default()
        });
        status.last_state = exited(name, code).state;
        status
    }

    #[test]
    fn failed_init_containers_fail_a_never_pod_and_keep_others_pending() {
        let init_app = [waiting("run1")];
        // init1 failed and backs off, init2 waits: Pending under Always and OnFailure.
        let backing_off = [waiting_after("init1", "CrashLoopBackOff", 1), waiting("init2")];
        assert_eq!(phase("Always", &backing_off, &init_app), "Pending");
        assert_eq!(phase("OnFailure", &backing_off, &init_app), "Pending");
        // Under Never, a failed init container fails the pod, wherever it is.
        assert_eq!(
            phase("Never", &[exited("init1", 0), exited("init2", 1)], &init_app),
            "Failed"
        );
        assert_eq!(
            phase("Never", &[exited("init1", 1), waiting("init2")], &init_app),
            "Failed"
        );
        assert_eq!(phase("Never", &backing_off, &init_app), "Failed");
        // Running or not yet run: Pending.
        assert_eq!(
            phase("Never", &[exited("init1", 0), running("init2", false)], &init_app),
            "Pending"
        );
        assert_eq!(phase("Always", &[waiting("init1")], &init_app), "Pending");
        // Done: the containers decide.
        assert_eq!(
            phase("Never", &[exited("init1", 0)], &[running("run1", true)]),
            "Running"
        );
        assert_eq!(phase("Never", &[exited("init1", 0)], &[exited("run1", 0)]), "Succeeded");
    }

    #[test]
    fn a_crash_looping_container_is_stopped_not_waiting() {
        assert_eq!(
            phase("Always", &[], &[waiting_after("a", "CrashLoopBackOff", 1)]),
            "Running"
        );
        assert_eq!(
            phase("OnFailure", &[], &[waiting_after("a", "CrashLoopBackOff", 1)]),
            "Running"
        );
        assert_eq!(
            phase(
                "Always",
                &[],
                &[waiting_after("a", "CrashLoopBackOff", 1), running("b", true)]
            ),
            "Running"
        );
        assert!(is_terminal("Failed") && is_terminal("Succeeded"));
        assert!(!is_terminal("Running") && !is_terminal("Pending"));
    }

    #[test]
    fn initialized_names_the_init_containers_not_done() {
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let pod = Pod::default();
        let get = |all: &[PodCondition], t: &str| all.iter().find(|c| c.type_ == t).cloned().unwrap();
        let all = conditions(
            &pod,
            &[waiting_after("init1", "CrashLoopBackOff", 1), waiting("init2")],
            &[waiting("run1")],
            "Pending",
            &now,
        );
        let initialized = get(&all, "Initialized");
        assert_eq!(initialized.status, "False");
        assert_eq!(initialized.reason.as_deref(), Some("ContainersNotInitialized"));
        assert_eq!(
            initialized.message.as_deref(),
            Some("containers with incomplete status: [init1 init2]")
        );
        assert!(initialized.last_transition_time.is_some());
        let all = conditions(
            &pod,
            &[exited("init1", 0), exited("init2", 1)],
            &[waiting("run1")],
            "Failed",
            &now,
        );
        assert_eq!(
            get(&all, "Initialized").message.as_deref(),
            Some("containers with incomplete status: [init2]")
        );
        assert_eq!(get(&all, "Ready").status, "False");
        // All done: PodCompleted.
        let all = conditions(&pod, &[exited("init1", 0)], &[exited("run1", 0)], "Succeeded", &now);
        let initialized = get(&all, "Initialized");
        assert_eq!(
            (initialized.status.as_str(), initialized.reason.as_deref()),
            ("True", Some("PodCompleted"))
        );
        let ready = get(&all, "Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("False", Some("PodCompleted"))
        );
        assert_eq!(ready.message, None);
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
        let all = conditions(&pod, &[], &[running("a", true), running("b", false)], "Running", &now);
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
