//! The client's transport behaviour against the crate's fake runtime: what goes on the
//! wire (authority, deadlines), how statuses and broken connections become errors, and
//! reconnection after the runtime restarts. No root and no containerd needed.

use std::time::{Duration, Instant};

use cri_client::testing::{
    FakeRuntime, FakeServer, Fault, RUNTIME_NAME, Rpc, Status, container_config, sandbox_config,
};
use cri_client::v1::{ContainerEventType, ExecSyncResponse, Image};
use cri_client::{Client, Error, Options};
use tokio_stream::StreamExt;

/// How long a call made slow takes, to test deadlines.
const SLOW_CALL: Duration = Duration::from_secs(30);

/// How many bytes of stdout ExecSync returns: more than tonic's default limit of 4 MiB.
const BIG_OUTPUT: usize = 8 << 20;

/// A socket path in a fresh temporary directory (kept alive by the returned guard).
fn socket() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cri.sock");
    (dir, path)
}

fn unix_endpoint(path: &std::path::Path) -> String {
    format!("unix://{}", path.display())
}

/// Serves `fake` at `path`.
fn serve(fake: &FakeRuntime, path: &std::path::Path) -> FakeServer {
    fake.serve(path).expect("serve the fake runtime")
}

/// A running container in a ready sandbox of `fake`; returns its id.
fn running_container(fake: &FakeRuntime) -> String {
    fake.add_image(Image {
        repo_tags: vec!["docker.io/library/busybox:latest".to_owned()],
        ..Default::default()
    });
    let pod = fake.add_sandbox(sandbox_config("default", "pod"), "").expect("sandbox");
    let container = container_config("c", "busybox");
    let id = fake.add_container(&pod, container).expect("container");
    fake.start_container(&id).expect("started");
    id
}

#[tokio::test]
async fn calls_over_a_unix_socket_send_localhost_as_authority() {
    let (_dir, path) = socket();
    let fake = FakeRuntime::new();
    let _server = serve(&fake, &path);
    for endpoint in [unix_endpoint(&path), path.display().to_string()] {
        let client = Client::connect(&endpoint).await.expect("connect");
        let version = client.version().await.expect("version");
        assert_eq!(version.runtime_name, RUNTIME_NAME);
    }
    let calls = fake.calls();
    assert_eq!(calls.len(), 2);
    for call in calls {
        assert_eq!(call.rpc, Rpc::Version);
        assert_eq!(call.authority.as_deref(), Some("localhost"));
    }
}

#[tokio::test]
async fn a_unix_relative_endpoint_dials_relative_to_the_working_directory() {
    let (_dir, path) = socket();
    let _server = serve(&FakeRuntime::new(), &path);
    let cwd = std::env::current_dir().expect("cwd");
    let relative = pathdiff(&path, &cwd);
    let client = Client::connect(&format!("unix:{relative}")).await.expect("connect");
    client.version().await.expect("version");
}

/// `path` relative to `base` (both absolute), as `../../tmp/...`.
fn pathdiff(path: &std::path::Path, base: &std::path::Path) -> String {
    let ups = base.components().count() - 1;
    let mut relative = "../".repeat(ups);
    relative.push_str(path.strip_prefix("/").expect("absolute").to_str().expect("utf-8"));
    relative
}

#[tokio::test]
async fn calls_over_tcp_work_too() {
    let fake = FakeRuntime::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let server = tonic::transport::Server::builder()
        .add_service(fake.runtime_service())
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    let server = tokio::spawn(server);

    let client = Client::connect(&format!("tcp://{addr}")).await.expect("connect");
    assert_eq!(client.version().await.expect("version").runtime_name, RUNTIME_NAME);
    server.abort();
}

#[tokio::test]
async fn the_deadline_of_each_call_reaches_the_runtime_as_grpc_timeout() {
    let (_dir, path) = socket();
    let fake = FakeRuntime::new();
    let _server = serve(&fake, &path);
    let options = Options::new().call_timeout(Duration::from_secs(7));
    let client = Client::connect_with(&unix_endpoint(&path), options)
        .await
        .expect("connect");

    client.version().await.expect("version");
    let _ = client.exec_sync("c1", ["true"], Duration::from_secs(3)).await;
    let _ = client.exec_sync("c1", ["true"], Duration::ZERO).await;
    let _ = client.stop_container("c1", Duration::from_secs(30)).await;
    let _ = client.pull_image("busybox", None, None).await;
    let _ = client.with_call_timeout(Duration::from_secs(1)).status(false).await;

    let timeouts: Vec<(Rpc, Option<Duration>)> =
        fake.calls().into_iter().map(|call| (call.rpc, call.deadline)).collect();
    let secs = |s| Some(Duration::from_secs(s));
    let want = [
        (Rpc::Version, secs(7), "the default call timeout"),
        (Rpc::ExecSync, secs(10), "the exec timeout plus the default"),
        (Rpc::ExecSync, None, "no deadline for an exec without timeout"),
        (Rpc::StopContainer, secs(37), "the grace period plus the default"),
        (Rpc::PullImage, None, "no deadline for pulls by default"),
        (Rpc::Status, secs(1), "the overridden call timeout"),
    ];
    assert_eq!(timeouts.len(), want.len(), "{timeouts:?}");
    for ((rpc, got), (want_rpc, want_timeout, desc)) in timeouts.iter().zip(want) {
        assert_eq!(*rpc, want_rpc, "{desc}");
        match (got, want_timeout) {
            (Some(got), Some(want)) => assert!(
                *got <= want && want - *got < Duration::from_millis(500),
                "{desc}: sent {got:?}, want about {want:?}"
            ),
            (got, want) => assert_eq!(*got, want, "{desc}"),
        }
    }
}

#[tokio::test]
async fn a_call_slower_than_its_deadline_fails_with_deadline_exceeded_at_the_deadline() {
    let (_dir, path) = socket();
    let fake = FakeRuntime::new();
    let _server = serve(&fake, &path);
    fake.inject(Rpc::ListPodSandbox, Fault::delay(SLOW_CALL));
    let options = Options::new().call_timeout(Duration::from_millis(300));
    let client = Client::connect_with(&unix_endpoint(&path), options)
        .await
        .expect("connect");
    let started = Instant::now();
    let err = client.list_pod_sandbox(None).await.expect_err("the fake is slow");
    let elapsed = started.elapsed();
    assert!(err.is_deadline_exceeded(), "{err:?}");
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < SLOW_CALL / 10,
        "took {elapsed:?}"
    );
}

#[tokio::test]
async fn a_status_from_the_runtime_keeps_its_code_and_message() {
    let (_dir, path) = socket();
    let fake = FakeRuntime::new();
    let _server = serve(&fake, &path);
    let client = Client::connect(&unix_endpoint(&path)).await.expect("connect");

    match client.container_status("nope", false).await {
        Err(Error::NotFound(message)) => assert_eq!(message, "container \"nope\" does not exist"),
        other => panic!("want NotFound, got {other:?}"),
    }
    fake.inject(
        Rpc::RunPodSandbox,
        Fault::error(Status::resource_exhausted("no more IPs")),
    );
    let err = client
        .run_pod_sandbox(Default::default(), "")
        .await
        .expect_err("injected");
    assert_eq!(err.code(), Some(cri_client::Code::ResourceExhausted));
    assert_eq!(err.to_string(), "resource exhausted: no more IPs");
}

#[tokio::test]
async fn connecting_to_a_missing_socket_is_a_connect_error_naming_the_cause() {
    let (_dir, path) = socket();
    let err = Client::connect(&unix_endpoint(&path))
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.is_unavailable());
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("cannot connect to unix://{}: ", path.display())),
        "{message}"
    );
    assert!(message.contains("No such file or directory"), "{message}");
}

#[tokio::test]
async fn a_malformed_endpoint_is_an_endpoint_error() {
    let err = Client::connect("localhost:1234").await.expect_err("no scheme");
    assert!(matches!(err, Error::Endpoint(_)), "{err:?}");
    assert!(
        err.to_string().starts_with("invalid endpoint \"localhost:1234\": "),
        "{err}"
    );
}

#[tokio::test]
async fn a_lazy_client_is_unavailable_until_the_runtime_listens_then_works() {
    let (_dir, path) = socket();
    let client = Client::connect_lazy(&unix_endpoint(&path), Options::new()).expect("endpoint parses");
    let err = client.version().await.expect_err("nothing listens yet");
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");

    let _server = serve(&FakeRuntime::new(), &path);
    client.version().await.expect("version once the runtime listens");
}

#[tokio::test]
async fn the_client_survives_the_runtime_restarting() {
    let (_dir, path) = socket();
    let fake = FakeRuntime::new();
    let server = serve(&fake, &path);
    let client = Client::connect(&unix_endpoint(&path)).await.expect("connect");
    let id = running_container(&fake);
    client.version().await.expect("version before the restart");

    server.stop();
    for attempt in 0..3 {
        let err = client.version().await.expect_err("the runtime is down");
        assert!(matches!(err, Error::Unavailable(_)), "attempt {attempt}: {err:?}");
    }

    let _server = serve(&fake, &path);
    let version = client.version().await.expect("the first call after the restart");
    assert_eq!(version.runtime_name, RUNTIME_NAME);
    let status = client
        .container_status(&id, false)
        .await
        .expect("the container outlived the restart");
    assert_eq!(status.status.expect("status").id, id);
}

#[tokio::test]
async fn a_call_in_flight_when_the_runtime_dies_fails_with_unavailable() {
    let (_dir, path) = socket();
    let fake = FakeRuntime::new();
    let server = serve(&fake, &path);
    fake.inject(Rpc::ListPodSandbox, Fault::delay(SLOW_CALL));
    let client = Client::connect(&unix_endpoint(&path)).await.expect("connect");
    let slow = tokio::spawn({
        let client = client.clone();
        async move { client.list_pod_sandbox(None).await }
    });
    while fake.calls_to(Rpc::ListPodSandbox).is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.stop();
    let err = slow.await.expect("join").expect_err("the runtime died");
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");

    let _server = serve(&fake, &path);
    client.version().await.expect("the first call after the restart");
}

#[tokio::test]
async fn container_events_arrive_as_a_stream_until_the_runtime_stops() {
    let (_dir, path) = socket();
    let fake = FakeRuntime::new();
    let server = serve(&fake, &path);
    let client = Client::connect(&unix_endpoint(&path)).await.expect("connect");
    let mut events = client.get_container_events().await.expect("subscribe");

    let id = running_container(&fake);

    let mut seen = Vec::new();
    while seen.len() < 2 {
        let event = events.next().await.expect("an event").expect("not an error");
        if event.container_id == id {
            seen.push(event.container_event_type);
        }
    }
    let want: [i32; 2] = [
        ContainerEventType::ContainerCreatedEvent.into(),
        ContainerEventType::ContainerStartedEvent.into(),
    ];
    assert_eq!(seen, want);

    server.stop();
    let end = events.next().await.expect("the stream ends with an error");
    assert!(end.expect_err("the runtime died").is_unavailable());
}

#[tokio::test]
async fn responses_up_to_the_kubelet_s_16_mib_are_accepted() {
    let (_dir, path) = socket();
    let fake = FakeRuntime::new();
    let _server = serve(&fake, &path);
    let id = running_container(&fake);
    fake.on_exec_sync(|_| ExecSyncResponse {
        stdout: vec![b'x'; BIG_OUTPUT],
        ..Default::default()
    });
    let client = Client::connect(&unix_endpoint(&path)).await.expect("connect");
    let out = client
        .exec_sync(&id, ["cat", "big"], Duration::from_secs(5))
        .await
        .expect("8 MiB of output");
    assert_eq!(out.stdout.len(), BIG_OUTPUT);
}
