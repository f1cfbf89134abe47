//! GetContainerEvents against the real daemon: every transition of a container is
//! announced, with its pod's statuses, including an exit while no call is in flight and
//! a removal by another client; a subscriber that falls behind is dropped, and a new
//! subscription works.
//!
//! A daemon of its own (bridge `kltev0`, `198.18.125.0/24`) whose subscribers may fall
//! [`EVENTS_BUFFER`] events behind; each test holds it exclusively, since every
//! subscriber sees every container's events. Needs what `pods.rs` needs.

mod common;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use common::{Env, with_daemon_log};
use cri_client::v1::{ContainerEventResponse, ContainerEventType, ContainerState, PodSandboxState};
use cri_client::{Client, ContainerEvents, Error};
use test_harness::RuntimeCoreOptions;
use test_harness::suite::{self, Test};

const BRIDGE: &str = "kltev0";
const SUBNET: &str = "198.18.125.0/24";

/// How many events a subscriber of this daemon may fall behind.
const EVENTS_BUFFER: usize = 8;

/// How many 256 KiB containers make an idle subscriber fall behind.
const CONTAINERS_TO_FALL_BEHIND: usize = 12;

/// How long an event may take to arrive.
const EVENT_WAIT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    suite::run(
        || {
            Env::setup_with(RuntimeCoreOptions {
                container_events_buffer: Some(EVENTS_BUFFER),
                ..RuntimeCoreOptions::with_network(BRIDGE, SUBNET)
            })
        },
        vec![
            Test::new(
                "every_transition_is_announced_with_the_pod_s_statuses",
                every_transition_is_announced_with_the_pod_s_statuses,
            ),
            Test::new(
                "a_subscriber_that_falls_behind_is_dropped_and_a_new_one_is_served",
                a_subscriber_that_falls_behind_is_dropped_and_a_new_one_is_served,
            ),
        ],
    )
}

/// The next event of `events`, within [`EVENT_WAIT`].
async fn next_event(events: &mut ContainerEvents) -> anyhow::Result<ContainerEventResponse> {
    match tokio::time::timeout(EVENT_WAIT, events.message()).await {
        Ok(Ok(Some(event))) => Ok(event),
        Ok(Ok(None)) => bail!("the event stream ended"),
        Ok(Err(error)) => Err(error).context("the event stream failed"),
        Err(_) => bail!("no event within {EVENT_WAIT:?}"),
    }
}

/// Reads events until one of `kind` for container `id`; returns it.
async fn event_of(
    events: &mut ContainerEvents,
    id: &str,
    kind: ContainerEventType,
) -> anyhow::Result<ContainerEventResponse> {
    loop {
        let event = next_event(events).await?;
        if event.container_id == id && event.container_event_type == kind as i32 {
            return Ok(event);
        }
    }
}

/// The state and exit code the event gives for container `id`.
fn state_in(event: &ContainerEventResponse, id: &str) -> anyhow::Result<(i32, i32)> {
    let status = (event.containers_statuses.iter())
        .find(|status| status.id == id)
        .with_context(|| format!("no status of {id} in {event:?}"))?;
    Ok((status.state, status.exit_code))
}

fn every_transition_is_announced_with_the_pod_s_statuses(env: &Env) -> anyhow::Result<()> {
    let daemon = env.runtime_mut();
    let outcome = env.rt.block_on(async {
        let mut events = env.client.get_container_events().await?;
        let pod = env.run_pod("events").await?;
        let config = env.container_config(&pod, "quits", "sleep 1; exit 3")?;
        let id = (env.client.create_container(&pod.id, config, pod.config.clone()).await).context("CreateContainer")?;
        let created = event_of(&mut events, &id, ContainerEventType::ContainerCreatedEvent).await?;
        let sandbox = created.pod_sandbox_status.as_ref().context("no sandbox status")?;
        ensure!(sandbox.id == pod.id, "the event names sandbox {}", sandbox.id);
        ensure!(sandbox.state == PodSandboxState::SandboxReady as i32);
        ensure!(state_in(&created, &id)?.0 == ContainerState::ContainerCreated as i32);

        env.client.start_container(&id).await.context("StartContainer")?;
        let started = event_of(&mut events, &id, ContainerEventType::ContainerStartedEvent).await?;
        ensure!(state_in(&started, &id)?.0 == ContainerState::ContainerRunning as i32);

        // No call from here on: the exit is found by the runtime itself.
        let waiting = Instant::now();
        let stopped = event_of(&mut events, &id, ContainerEventType::ContainerStoppedEvent).await?;
        ensure!(
            state_in(&stopped, &id)? == (ContainerState::ContainerExited as i32, 3),
            "stopped event: {:?}",
            state_in(&stopped, &id)
        );
        test_harness::note(format!(
            "the exit announced {:.2?} after StartContainer returned (the container ran 1 s)",
            waiting.elapsed()
        ));

        // Another client removes it; this subscriber hears of it.
        let other = Client::connect(&daemon.endpoint()).await?;
        other.remove_container(&id).await.context("RemoveContainer")?;
        let deleted = event_of(&mut events, &id, ContainerEventType::ContainerDeletedEvent).await?;
        ensure!(
            deleted.containers_statuses.iter().all(|status| status.id != id),
            "a deleted container is still among its pod's containers"
        );
        env.remove(&pod).await
    });
    with_daemon_log(&daemon, outcome)
}

fn a_subscriber_that_falls_behind_is_dropped_and_a_new_one_is_served(env: &Env) -> anyhow::Result<()> {
    let daemon = env.runtime_mut();
    let outcome = env.rt.block_on(async {
        let mut idle = env.client.get_container_events().await?;
        let mut reading = env.client.get_container_events().await?;
        let pod = env.run_pod("lagging").await?;
        // The idle subscriber's connection takes in megabytes before the runtime stops
        // sending to it (HTTP/2 windows and buffers): events carry 256 KiB of annotation
        // each so that it falls more than its buffer behind in a few containers.
        let mut sent = 0;
        for n in 0..CONTAINERS_TO_FALL_BEHIND {
            let mut config = env.container_config(&pod, &format!("c{n}"), "exit 0")?;
            config.annotations.insert("ballast".into(), "x".repeat(256 * 1024));
            let id = env.start(&pod, config).await?;
            env.exited(&id).await?;
            env.client.remove_container(&id).await.context("RemoveContainer")?;
            for kind in [
                ContainerEventType::ContainerCreatedEvent,
                ContainerEventType::ContainerStartedEvent,
                ContainerEventType::ContainerStoppedEvent,
                ContainerEventType::ContainerDeletedEvent,
            ] {
                event_of(&mut reading, &id, kind).await?;
                sent += 1;
            }
        }
        // The idle one gets what its connection held, then the end.
        let mut received = 0;
        let ended = loop {
            match tokio::time::timeout(EVENT_WAIT, idle.message()).await {
                Ok(Ok(Some(_))) => received += 1,
                Ok(other) => break other,
                Err(_) => bail!("the subscriber that fell behind was not dropped ({received} of {sent} events)"),
            }
        };
        ensure!(
            matches!(
                ended,
                Err(Error::Status {
                    code: cri_client::Code::ResourceExhausted,
                    ..
                })
            ),
            "the lagging stream ended with {ended:?}"
        );
        ensure!(received < sent, "the dropped subscriber got all {sent} events");
        test_harness::note(format!(
            "the idle subscriber got {received} of {sent} events, then was dropped"
        ));

        let mut fresh = env.client.get_container_events().await?;
        let id = env.start_script(&pod, "after", "exit 0").await?;
        event_of(&mut fresh, &id, ContainerEventType::ContainerStartedEvent).await?;
        env.remove(&pod).await
    });
    with_daemon_log(&daemon, outcome)
}
