//! The client's transport behaviour against an in-process fake runtime: what goes on the
//! wire (authority, deadlines), how statuses and broken connections become errors, and
//! reconnection after the runtime restarts. No root and no containerd needed.

mod fake_runtime;

use std::time::{Duration, Instant};

use cri_client::{Client, Error, Options};
use fake_runtime::{FakeRuntime, SLOW_CALL};
use tokio_stream::StreamExt;

/// A socket path in a fresh temporary directory (kept alive by the returned guard).
fn socket() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cri.sock");
    (dir, path)
}

fn unix_endpoint(path: &std::path::Path) -> String {
    format!("unix://{}", path.display())
}

/// Parses a `grpc-timeout` header value (`<digits><unit>`).
fn parse_grpc_timeout(value: &str) -> Duration {
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().expect("grpc-timeout digits");
    match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        other => panic!("unknown grpc-timeout unit {other:?}"),
    }
}

#[tokio::test]
async fn calls_over_a_unix_socket_send_localhost_as_authority() {
    let (_dir, path) = socket();
    let fake = FakeRuntime::unix(&path);
    for endpoint in [unix_endpoint(&path), path.display().to_string()] {
        let client = Client::connect(&endpoint).await.expect("connect");
        let version = client.version().await.expect("version");
        assert_eq!(version.runtime_name, "fake");
    }
    let seen = fake.seen();
    assert_eq!(seen.len(), 2);
    for request in seen {
        assert_eq!(request.path, "/runtime.v1.RuntimeService/Version");
        assert_eq!(request.authority.as_deref(), Some("localhost"));
    }
}

#[tokio::test]
async fn a_unix_relative_endpoint_dials_relative_to_the_working_directory() {
    let (_dir, path) = socket();
    let _fake = FakeRuntime::unix(&path);
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
    let (_fake, addr) = FakeRuntime::tcp();
    let client = Client::connect(&format!("tcp://{addr}")).await.expect("connect");
    assert_eq!(client.version().await.expect("version").runtime_name, "fake");
}

#[tokio::test]
async fn the_deadline_of_each_call_reaches_the_runtime_as_grpc_timeout() {
    let (_dir, path) = socket();
    let fake = FakeRuntime::unix(&path);
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

    let timeouts: Vec<(String, Option<Duration>)> = fake
        .seen()
        .into_iter()
        .map(|seen| (seen.path, seen.grpc_timeout.as_deref().map(parse_grpc_timeout)))
        .collect();
    let secs = |s| Some(Duration::from_secs(s));
    let want = [
        (
            "/runtime.v1.RuntimeService/Version",
            secs(7),
            "the default call timeout",
        ),
        (
            "/runtime.v1.RuntimeService/ExecSync",
            secs(10),
            "the exec timeout plus the default",
        ),
        (
            "/runtime.v1.RuntimeService/ExecSync",
            None,
            "no deadline for an exec without timeout",
        ),
        (
            "/runtime.v1.RuntimeService/StopContainer",
            secs(37),
            "the grace period plus the default",
        ),
        (
            "/runtime.v1.ImageService/PullImage",
            None,
            "no deadline for pulls by default",
        ),
        (
            "/runtime.v1.RuntimeService/Status",
            secs(1),
            "the overridden call timeout",
        ),
    ];
    assert_eq!(timeouts.len(), want.len(), "{timeouts:?}");
    for ((path, got), (want_path, want_timeout, desc)) in timeouts.iter().zip(want) {
        assert_eq!(path, want_path, "{desc}");
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
    let _fake = FakeRuntime::unix(&path);
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
    let _fake = FakeRuntime::unix(&path);
    let client = Client::connect(&unix_endpoint(&path)).await.expect("connect");

    match client.container_status("nope", false).await {
        Err(Error::NotFound(message)) => assert_eq!(message, "container \"nope\" does not exist"),
        other => panic!("want NotFound, got {other:?}"),
    }
    let err = client
        .run_pod_sandbox(Default::default(), "")
        .await
        .expect_err("unimplemented");
    assert!(err.is_unimplemented(), "{err:?}");
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

    let _fake = FakeRuntime::unix(&path);
    client.version().await.expect("version once the runtime listens");
}

#[tokio::test]
async fn the_client_survives_the_runtime_restarting() {
    let (_dir, path) = socket();
    let fake = FakeRuntime::unix(&path);
    let client = Client::connect(&unix_endpoint(&path)).await.expect("connect");
    client.version().await.expect("version before the restart");

    fake.kill();
    for attempt in 0..3 {
        let err = client.version().await.expect_err("the runtime is down");
        assert!(matches!(err, Error::Unavailable(_)), "attempt {attempt}: {err:?}");
    }

    let _fake = FakeRuntime::unix(&path);
    let version = client.version().await.expect("the first call after the restart");
    assert_eq!(version.runtime_name, "fake");
}

#[tokio::test]
async fn a_call_in_flight_when_the_runtime_dies_fails_with_unavailable() {
    let (_dir, path) = socket();
    let fake = FakeRuntime::unix(&path);
    let client = Client::connect(&unix_endpoint(&path)).await.expect("connect");
    let slow = tokio::spawn({
        let client = client.clone();
        async move { client.list_pod_sandbox(None).await }
    });
    while fake.seen().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    fake.kill();
    let err = slow.await.expect("join").expect_err("the runtime died");
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");

    let _fake = FakeRuntime::unix(&path);
    client.version().await.expect("the first call after the restart");
}

#[tokio::test]
async fn container_events_arrive_as_a_stream() {
    let (_dir, path) = socket();
    let _fake = FakeRuntime::unix(&path);
    let client = Client::connect(&unix_endpoint(&path)).await.expect("connect");
    let mut events = client.get_container_events().await.expect("subscribe");
    let event = events.next().await.expect("one event").expect("not an error");
    assert_eq!(event, fake_runtime::the_event());
    assert!(events.next().await.is_none(), "the fake ends the stream");
}

#[tokio::test]
async fn responses_up_to_the_kubelet_s_16_mib_are_accepted() {
    let (_dir, path) = socket();
    let _fake = FakeRuntime::unix(&path);
    let client = Client::connect(&unix_endpoint(&path)).await.expect("connect");
    let out = client
        .exec_sync("c1", ["cat", "big"], Duration::from_secs(5))
        .await
        .expect("8 MiB of output");
    assert_eq!(out.stdout.len(), fake_runtime::BIG_OUTPUT);
}
