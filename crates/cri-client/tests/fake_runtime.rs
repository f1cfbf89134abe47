//! The fake runtime of `cri_client::testing` keeps the CRI's rules, seen through the
//! client as any user sees it: idempotent stops and removals, NotFound for unknown ids,
//! the container state machine, filters, images, recorded calls and injected faults.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cri_client::testing::{
    FakeRuntime, FakeServer, Fault, Rpc, STOPPED_EXIT_CODE, Status, container_config, sandbox_config,
};
use cri_client::v1::{
    ContainerConfig, ContainerFilter, ContainerState, ContainerStateValue, Image, Int64Value, PodSandboxConfig,
    PodSandboxFilter, PodSandboxState, PodSandboxStateValue, RunPodSandboxRequest,
};
use cri_client::{Client, Code};

/// A fake with busybox, served in a fresh directory, and a client for it. Keep it whole:
/// the server stops when it is dropped.
struct Fixture {
    fake: FakeRuntime,
    client: Client,
    _server: FakeServer,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let fake = FakeRuntime::new();
    fake.add_image(Image {
        id: "sha256:busybox".to_owned(),
        repo_tags: vec!["docker.io/library/busybox:latest".to_owned()],
        uid: Some(Int64Value { value: 1000 }),
        username: "app".to_owned(),
        size: 4 << 20,
        ..Default::default()
    });
    let server = fake.serve(dir.path().join("cri.sock")).expect("serve");
    let client = server.connect().await.expect("connect");
    Fixture {
        fake,
        client,
        _server: server,
        _dir: dir,
    }
}

fn pod(name: &str, labels: &[(&str, &str)]) -> PodSandboxConfig {
    PodSandboxConfig {
        labels: labels_of(labels),
        ..sandbox_config("default", name)
    }
}

fn container(name: &str, labels: &[(&str, &str)]) -> ContainerConfig {
    ContainerConfig {
        labels: labels_of(labels),
        ..container_config(name, "busybox")
    }
}

fn labels_of(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn state_of(status: &cri_client::v1::ContainerStatusResponse) -> ContainerState {
    let state = status.status.as_ref().expect("status").state;
    ContainerState::try_from(state).expect("a known state")
}

#[tokio::test]
async fn stopping_and_removing_unknown_ids_succeeds_as_api_proto_requires() {
    let fx = fixture().await;
    let client = &fx.client;
    client.stop_pod_sandbox("nope").await.expect("StopPodSandbox");
    client.remove_pod_sandbox("nope").await.expect("RemovePodSandbox");
    client
        .stop_container("nope", Duration::from_secs(1))
        .await
        .expect("StopContainer");
    client.remove_container("nope").await.expect("RemoveContainer");
    client.remove_image("nope:1").await.expect("RemoveImage");
}

#[tokio::test]
async fn other_calls_about_unknown_ids_are_not_found() {
    let fx = fixture().await;
    let client = &fx.client;
    let results = [
        ("PodSandboxStatus", client.pod_sandbox_status("nope", false).await.err()),
        ("ContainerStatus", client.container_status("nope", false).await.err()),
        ("StartContainer", client.start_container("nope").await.err()),
        (
            "CreateContainer",
            client
                .create_container("nope", container("c", &[]), pod("p", &[]))
                .await
                .err(),
        ),
        (
            "ExecSync",
            client.exec_sync("nope", ["true"], Duration::from_secs(1)).await.err(),
        ),
        ("ContainerStats", client.container_stats("nope").await.err()),
        ("PortForward", client.port_forward("nope", &[80]).await.err()),
    ];
    for (desc, err) in results {
        let err = err.unwrap_or_else(|| panic!("{desc} succeeded"));
        assert!(err.is_not_found(), "{desc}: {err:?}");
    }
}

#[tokio::test]
async fn a_container_goes_from_created_to_running_to_exited() {
    let fx = fixture().await;
    let client = &fx.client;
    let pod_id = client.run_pod_sandbox(pod("web", &[]), "").await.expect("sandbox");
    let id = client
        .create_container(&pod_id, container("app", &[]), pod("web", &[]))
        .await
        .expect("created");
    let status = client.container_status(&id, false).await.expect("status");
    assert_eq!(state_of(&status), ContainerState::ContainerCreated);
    assert_eq!(status.status.as_ref().expect("status").image_ref, "sha256:busybox");

    client.start_container(&id).await.expect("started");
    assert_eq!(
        state_of(&client.container_status(&id, false).await.expect("status")),
        ContainerState::ContainerRunning
    );
    let again = client.start_container(&id).await.expect_err("already running");
    assert_eq!(again.code(), Some(Code::FailedPrecondition), "{again:?}");

    client
        .stop_container(&id, Duration::from_secs(1))
        .await
        .expect("stopped");
    let status = client.container_status(&id, false).await.expect("status");
    assert_eq!(state_of(&status), ContainerState::ContainerExited);
    assert_eq!(status.status.as_ref().expect("status").exit_code, STOPPED_EXIT_CODE);
    client
        .stop_container(&id, Duration::from_secs(1))
        .await
        .expect("stopping again is fine");
    let exec = client
        .exec_sync(&id, ["true"], Duration::from_secs(1))
        .await
        .expect_err("not running");
    assert_eq!(exec.code(), Some(Code::FailedPrecondition), "{exec:?}");

    client.remove_container(&id).await.expect("removed");
    assert!(
        client
            .container_status(&id, false)
            .await
            .expect_err("gone")
            .is_not_found()
    );
}

#[tokio::test]
async fn containers_are_created_only_in_a_ready_sandbox_from_a_held_image() {
    let fx = fixture().await;
    let (client, fake) = (&fx.client, &fx.fake);
    let pod_id = client.run_pod_sandbox(pod("web", &[]), "").await.expect("sandbox");
    let unknown_image = container_config("app", "nginx:1.27");
    let err = client
        .create_container(&pod_id, unknown_image, pod("web", &[]))
        .await
        .expect_err("image not pulled");
    assert!(err.is_not_found(), "{err:?}");

    let running = fake.add_container(&pod_id, container("app", &[])).expect("created");
    fake.start_container(&running).expect("started");
    client.stop_pod_sandbox(&pod_id).await.expect("stopped");
    let status = client.pod_sandbox_status(&pod_id, false).await.expect("status");
    assert_eq!(
        status.status.expect("status").state,
        i32::from(PodSandboxState::SandboxNotready)
    );
    assert_eq!(
        state_of(&client.container_status(&running, false).await.expect("status")),
        ContainerState::ContainerExited,
        "stopping the sandbox killed its container"
    );
    let err = client
        .create_container(&pod_id, container("late", &[]), pod("web", &[]))
        .await
        .expect_err("sandbox not ready");
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "{err:?}");

    client.remove_pod_sandbox(&pod_id).await.expect("removed");
    assert!(fake.containers().is_empty(), "its containers went with it");
    assert!(fake.sandboxes().is_empty());
}

#[tokio::test]
async fn the_same_metadata_twice_already_exists() {
    let fx = fixture().await;
    let client = &fx.client;
    let pod_id = client.run_pod_sandbox(pod("web", &[]), "").await.expect("sandbox");
    let err = client.run_pod_sandbox(pod("web", &[]), "").await.expect_err("same pod");
    assert!(err.is_already_exists(), "{err:?}");
    client
        .create_container(&pod_id, container("app", &[]), pod("web", &[]))
        .await
        .expect("created");
    let err = client
        .create_container(&pod_id, container("app", &[]), pod("web", &[]))
        .await
        .expect_err("same container");
    assert!(err.is_already_exists(), "{err:?}");
}

#[tokio::test]
async fn lists_filter_by_id_state_sandbox_and_labels() {
    let fx = fixture().await;
    let (client, fake) = (&fx.client, &fx.fake);
    let web = fake.add_sandbox(pod("web", &[("app", "web")]), "").expect("web");
    let db = fake.add_sandbox(pod("db", &[("app", "db")]), "").expect("db");
    let front = fake
        .add_container(&web, container("front", &[("tier", "front")]))
        .expect("front");
    fake.start_container(&front).expect("started");
    let side = fake.add_container(&web, container("side", &[])).expect("side");
    let store = fake
        .add_container(&db, container("store", &[("tier", "back")]))
        .expect("store");
    client.stop_pod_sandbox(&db).await.expect("db stopped");

    let running = ContainerFilter {
        state: Some(ContainerStateValue {
            state: ContainerState::ContainerRunning.into(),
        }),
        ..Default::default()
    };
    let cases = [
        ("no filter", ContainerFilter::default(), vec![&front, &side, &store]),
        (
            "by id",
            ContainerFilter {
                id: side.clone(),
                ..Default::default()
            },
            vec![&side],
        ),
        ("by state", running, vec![&front]),
        (
            "by sandbox",
            ContainerFilter {
                pod_sandbox_id: db.clone(),
                ..Default::default()
            },
            vec![&store],
        ),
        (
            "by label",
            ContainerFilter {
                label_selector: labels_of(&[("tier", "back")]),
                ..Default::default()
            },
            vec![&store],
        ),
    ];
    for (desc, filter, want) in cases {
        let got: Vec<String> = client
            .list_containers(Some(filter))
            .await
            .expect("listed")
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(got.iter().collect::<Vec<_>>(), want, "{desc}");
    }

    let ready = PodSandboxFilter {
        state: Some(PodSandboxStateValue {
            state: PodSandboxState::SandboxReady.into(),
        }),
        ..Default::default()
    };
    let by_label = PodSandboxFilter {
        label_selector: labels_of(&[("app", "db")]),
        ..Default::default()
    };
    let ids = |pods: Vec<cri_client::v1::PodSandbox>| pods.into_iter().map(|p| p.id).collect::<Vec<_>>();
    assert_eq!(ids(client.list_pod_sandbox(Some(ready)).await.expect("listed")), [web]);
    assert_eq!(
        ids(client.list_pod_sandbox(Some(by_label)).await.expect("listed")),
        [db]
    );
}

#[tokio::test]
async fn images_are_pulled_listed_inspected_and_removed() {
    let fx = fixture().await;
    let (client, fake) = (&fx.client, &fx.fake);
    let status = client.image_status("busybox", false).await.expect("status");
    let image = status.image.expect("seeded busybox, found by its short name");
    assert_eq!(image.uid, Some(Int64Value { value: 1000 }));
    assert_eq!(image.username, "app");
    assert!(
        client
            .image_status("sha256:busybox", false)
            .await
            .expect("status")
            .image
            .is_some()
    );

    let id = client.pull_image("nginx:1.27", None, None).await.expect("pulled");
    let again = client
        .pull_image("docker.io/library/nginx:1.27", None, None)
        .await
        .expect("pulled");
    assert_eq!(id, again, "the same image");
    let tags: Vec<Vec<String>> = client
        .list_images(None)
        .await
        .expect("listed")
        .into_iter()
        .map(|image| image.repo_tags)
        .collect();
    assert_eq!(
        tags,
        [
            vec!["docker.io/library/busybox:latest".to_owned()],
            vec!["docker.io/library/nginx:1.27".to_owned()]
        ]
    );
    let fs = client.image_fs_info().await.expect("fs info");
    assert_eq!(fs.image_filesystems[0].used_bytes.expect("used").value, 4 << 20);

    client.remove_image("nginx:1.27").await.expect("removed");
    assert!(client.image_status(&id, false).await.expect("status").image.is_none());
    assert_eq!(fake.images().len(), 1);
}

#[tokio::test]
async fn calls_are_recorded_with_their_requests() {
    let fx = fixture().await;
    let (client, fake) = (&fx.client, &fx.fake);
    client.run_pod_sandbox(pod("web", &[]), "kata").await.expect("sandbox");
    client.list_pod_sandbox(None).await.expect("listed");

    let rpcs: Vec<Rpc> = fake.calls().into_iter().map(|call| call.rpc).collect();
    assert_eq!(rpcs, [Rpc::RunPodSandbox, Rpc::ListPodSandbox]);
    let calls = fake.calls_to(Rpc::RunPodSandbox);
    let request = calls[0].request::<RunPodSandboxRequest>().expect("its request");
    assert_eq!(request.runtime_handler, "kata");
    fake.clear_calls();
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn an_injected_error_fails_the_call_without_touching_the_state() {
    let fx = fixture().await;
    let (client, fake) = (&fx.client, &fx.fake);
    fake.inject(
        Rpc::RunPodSandbox,
        Fault::error(Status::unavailable("cni not ready")).times(2),
    );
    for attempt in 0..2 {
        let err = client.run_pod_sandbox(pod("web", &[]), "").await.expect_err("injected");
        assert!(err.is_unavailable(), "attempt {attempt}: {err:?}");
    }
    assert!(fake.sandboxes().is_empty());
    client
        .run_pod_sandbox(pod("web", &[]), "")
        .await
        .expect("the third attempt");
    assert_eq!(fake.sandboxes().len(), 1);
}

#[tokio::test]
async fn an_always_fault_stays_until_cleared_and_a_delay_slows_the_call() {
    let fx = fixture().await;
    let (client, fake) = (&fx.client, &fx.fake);
    fake.inject(
        Rpc::Version,
        Fault::delay(Duration::from_millis(200))
            .with_error(Status::internal("boom"))
            .always(),
    );
    for _ in 0..2 {
        let started = Instant::now();
        let err = client.version().await.expect_err("always failing");
        assert_eq!(err.code(), Some(Code::Internal));
        assert!(started.elapsed() >= Duration::from_millis(200));
    }
    fake.clear_faults();
    client.version().await.expect("cleared");
}

#[tokio::test]
async fn exec_sync_answers_what_the_test_says() {
    let fx = fixture().await;
    let (client, fake) = (&fx.client, &fx.fake);
    let pod_id = fake.add_sandbox(pod("web", &[]), "").expect("sandbox");
    let id = fake.add_container(&pod_id, container("app", &[])).expect("created");
    fake.start_container(&id).expect("started");
    fake.on_exec_sync(|request| cri_client::v1::ExecSyncResponse {
        stdout: request.cmd.join(" ").into_bytes(),
        exit_code: 3,
        ..Default::default()
    });
    let out = client
        .exec_sync(&id, ["echo", "hi"], Duration::from_secs(1))
        .await
        .expect("exec");
    assert_eq!((out.stdout.as_slice(), out.exit_code), (&b"echo hi"[..], 3));

    fake.exit_container(&id, 0, "Completed").expect("exited");
    let status = client.container_status(&id, false).await.expect("status");
    let status = status.status.expect("status");
    assert_eq!((status.exit_code, status.reason.as_str()), (0, "Completed"));
}
