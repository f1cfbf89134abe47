//! Lists the running containers of a CRI runtime, and shows how to test such code without
//! a runtime: the tests at the bottom run it against `cri_client::testing::FakeRuntime`
//! (the `testing` feature).
//!
//! ```sh
//! cargo run -p cri-client --features testing --example testing_with_the_fake -- unix:///run/containerd/containerd.sock
//! cargo test -p cri-client --features testing --example testing_with_the_fake
//! ```

use std::collections::HashMap;
use std::process::ExitCode;

use cri_client::Client;
use cri_client::v1::{ContainerFilter, ContainerState, ContainerStateValue};

/// A running container, named as `kubectl` would: its pod's namespace and name, and its
/// own name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Running {
    pod: String,
    container: String,
    id: String,
}

/// The code under test: the running containers, sorted by pod and name.
async fn running_containers(client: &Client) -> cri_client::Result<Vec<Running>> {
    let running = ContainerFilter {
        state: Some(ContainerStateValue {
            state: ContainerState::ContainerRunning.into(),
        }),
        ..Default::default()
    };
    let containers = client.list_containers(Some(running)).await?;
    let pods: HashMap<String, String> = client
        .list_pod_sandbox(None)
        .await?
        .into_iter()
        .map(|pod| {
            let name = pod
                .metadata
                .map(|m| format!("{}/{}", m.namespace, m.name))
                .unwrap_or_default();
            (pod.id, name)
        })
        .collect();
    let mut running: Vec<Running> = containers
        .into_iter()
        .map(|container| Running {
            pod: pods.get(&container.pod_sandbox_id).cloned().unwrap_or_default(),
            container: container.metadata.map(|m| m.name).unwrap_or_default(),
            id: container.id,
        })
        .collect();
    running.sort();
    Ok(running)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Some(endpoint) = std::env::args().nth(1) else {
        eprintln!("usage: testing_with_the_fake ENDPOINT   (e.g. unix:///run/containerd/containerd.sock)");
        return ExitCode::from(2);
    };
    let listed = match Client::connect(&endpoint).await {
        Ok(client) => running_containers(&client).await,
        Err(error) => Err(error),
    };
    match listed {
        Ok(running) => {
            for Running { pod, container, id } in running {
                println!("{pod:<40} {container:<20} {id:.13}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("testing_with_the_fake: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use cri_client::testing::{FakeRuntime, FakeServer, Fault, Rpc, Status, container_config, sandbox_config};
    use cri_client::v1::Image;

    use super::*;

    /// A fake runtime with one pod, `default/web`, holding a created, a running and an
    /// exited container; served in `dir`.
    fn web_pod(dir: &tempfile::TempDir) -> (FakeRuntime, FakeServer, String) {
        let fake = FakeRuntime::new();
        fake.add_image(Image {
            repo_tags: vec!["docker.io/library/nginx:1.27".to_owned()],
            ..Default::default()
        });
        let pod = fake.add_sandbox(sandbox_config("default", "web"), "").expect("sandbox");
        let container = |name: &str| container_config(name, "nginx:1.27");
        fake.add_container(&pod, container("init")).expect("created");
        let running = fake.add_container(&pod, container("nginx")).expect("created");
        fake.start_container(&running).expect("started");
        let exited = fake.add_container(&pod, container("migrate")).expect("created");
        fake.start_container(&exited).expect("started");
        fake.exit_container(&exited, 0, "Completed").expect("exited");

        let server = fake.serve(dir.path().join("cri.sock")).expect("serve");
        (fake, server, running)
    }

    #[tokio::test]
    async fn only_running_containers_are_listed_with_their_pod() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (_fake, server, nginx) = web_pod(&dir);
        let client = server.connect().await.expect("connect");

        let running = running_containers(&client).await.expect("listed");

        let want = Running {
            pod: "default/web".to_owned(),
            container: "nginx".to_owned(),
            id: nginx,
        };
        assert_eq!(running, [want]);
    }

    #[tokio::test]
    async fn the_runtime_is_asked_for_running_containers_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (fake, server, _) = web_pod(&dir);
        let client = server.connect().await.expect("connect");

        running_containers(&client).await.expect("listed");

        let calls = fake.calls_to(Rpc::ListContainers);
        let [call] = calls.as_slice() else {
            panic!("one ListContainers call, got {calls:?}");
        };
        let request = call
            .request::<cri_client::v1::ListContainersRequest>()
            .expect("its request");
        let state = request.filter.as_ref().and_then(|f| f.state).map(|s| s.state);
        assert_eq!(state, Some(ContainerState::ContainerRunning.into()));
    }

    #[tokio::test]
    async fn an_unavailable_runtime_is_an_error_not_an_empty_list() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (fake, server, _) = web_pod(&dir);
        let client = server.connect().await.expect("connect");
        fake.inject(Rpc::ListPodSandbox, Fault::error(Status::unavailable("restarting")));

        let err = running_containers(&client).await.expect_err("the runtime failed");

        assert!(err.is_unavailable(), "{err:?}");
    }
}
