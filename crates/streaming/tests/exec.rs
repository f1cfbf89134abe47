//! Exec and attach sessions driven by this crate's client against the server and a
//! runtime that runs real processes.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{server, server_with, sh};
use streaming::client::{self, ClientError, ExitStatus, Protocol, RemoteCommand};
use streaming::{AttachRequest, Config, ExecRequest, TerminalSize};

const ALL_PROTOCOLS: [Protocol; 9] = [
    Protocol::SpdyV1,
    Protocol::SpdyV2,
    Protocol::SpdyV3,
    Protocol::SpdyV4,
    Protocol::WebSocketChannel,
    Protocol::WebSocketBase64,
    Protocol::WebSocketV4,
    Protocol::WebSocketV4Base64,
    Protocol::WebSocketV5,
];

fn reports_exit_codes(protocol: Protocol) -> bool {
    matches!(
        protocol,
        Protocol::SpdyV4 | Protocol::WebSocketV4 | Protocol::WebSocketV4Base64 | Protocol::WebSocketV5
    )
}

#[tokio::test]
async fn every_protocol_carries_stdout_stderr_and_the_exit_status() {
    let (server, _) = server().await;
    for protocol in ALL_PROTOCOLS {
        let url = server.get_exec(sh("echo out; echo err >&2")).unwrap();
        let output = client::run(&url, RemoteCommand::new(protocol)).await.unwrap();
        assert_eq!(output.stdout, b"out\n", "{protocol:?}");
        assert_eq!(output.stderr, b"err\n", "{protocol:?}");
        assert_eq!(output.status, ExitStatus::Success, "{protocol:?}");

        let url = server.get_exec(sh("echo failing; exit 3")).unwrap();
        let output = client::run(&url, RemoteCommand::new(protocol)).await.unwrap();
        assert_eq!(output.stdout, b"failing\n", "{protocol:?}");
        if reports_exit_codes(protocol) {
            assert_eq!(output.status, ExitStatus::ExitCode(3), "{protocol:?}");
        } else {
            let ExitStatus::Failure(message) = output.status else {
                panic!("{protocol:?}: {:?}", output.status)
            };
            assert!(
                message.contains("non-zero exit code") && message.ends_with("exit code 3"),
                "{protocol:?}: {message}"
            );
        }
    }
}

#[tokio::test]
async fn stdin_reaches_the_process_and_its_end_closes_the_process_stdin() {
    let (server, _) = server().await;
    // `cat` only exits when its stdin ends: over WebSocket v4 a client cannot end stdin,
    // so those protocols read a fixed count instead.
    for protocol in ALL_PROTOCOLS {
        let half_closes = !matches!(
            protocol,
            Protocol::WebSocketChannel
                | Protocol::WebSocketBase64
                | Protocol::WebSocketV4
                | Protocol::WebSocketV4Base64
        );
        let script = if half_closes {
            "cat; echo end"
        } else {
            "head -c 11; echo; echo end"
        };
        let url = server
            .get_exec(ExecRequest {
                stdin: true,
                ..sh(script)
            })
            .unwrap();
        let command = RemoteCommand::new(protocol).stdin_bytes(b"hello stdin".to_vec());
        let output = tokio::time::timeout(Duration::from_secs(10), client::run(&url, command))
            .await
            .expect("session ends")
            .unwrap();
        let expected: &[u8] = if half_closes {
            b"hello stdinend\n"
        } else {
            b"hello stdin\nend\n"
        };
        assert_eq!(output.stdout, expected, "{protocol:?}");
        assert_eq!(output.status, ExitStatus::Success, "{protocol:?}");
    }
}

#[tokio::test]
async fn a_terminal_session_delivers_resizes_to_the_runtime() {
    for protocol in [
        Protocol::SpdyV3,
        Protocol::SpdyV4,
        Protocol::WebSocketV4,
        Protocol::WebSocketV5,
    ] {
        let (server, seen) = server().await;
        let request = ExecRequest {
            tty: true,
            stdin: true,
            stderr: false,
            ..sh("cat")
        };
        let url = server.get_exec(request).unwrap();
        let (sizes, resize) = tokio::sync::mpsc::channel(4);
        let sent = [
            TerminalSize { width: 80, height: 24 },
            TerminalSize { width: 132, height: 43 },
        ];
        for size in sent {
            sizes.send(size).await.unwrap();
        }
        // Stdin ends only after the resizes had time to arrive.
        let (mut stdin_writer, stdin_reader) = tokio::io::duplex(64);
        let mut command = RemoteCommand::new(protocol).tty(Some(resize));
        command.stdin = Some(Box::pin(stdin_reader));
        let session = tokio::spawn(async move { client::run(&url, command).await });
        assert!(
            common::eventually(Duration::from_secs(5), || seen.resizes.lock().unwrap().len() == 2).await,
            "{protocol:?}"
        );
        assert_eq!(*seen.resizes.lock().unwrap(), sent, "{protocol:?}");
        tokio::io::AsyncWriteExt::write_all(&mut stdin_writer, b"typed")
            .await
            .unwrap();
        drop((stdin_writer, sizes));
        if protocol == Protocol::WebSocketV4 {
            // No half-close in v4: the process runs on; leaving ends it.
            tokio::time::sleep(Duration::from_millis(200)).await;
            session.abort();
            continue;
        }
        let output = tokio::time::timeout(Duration::from_secs(10), session)
            .await
            .expect("session ends")
            .unwrap()
            .unwrap();
        assert_eq!(output.stdout, b"typed", "{protocol:?}");
        assert!(output.stderr.is_empty());
    }
}

#[tokio::test]
async fn attach_streams_both_ways_and_reports_runtime_failures() {
    let (server, _) = server().await;
    let attach = AttachRequest {
        container_id: "c1".into(),
        stdin: true,
        stdout: true,
        ..Default::default()
    };
    for protocol in [Protocol::SpdyV4, Protocol::WebSocketV5] {
        let url = server.get_attach(attach.clone()).unwrap();
        let command = RemoteCommand {
            stderr: false,
            ..RemoteCommand::new(protocol).stdin_bytes(b"attached".to_vec())
        };
        let output = client::run(&url, command).await.unwrap();
        assert_eq!(output.stdout, b"attached", "{protocol:?}");
        assert_eq!(output.status, ExitStatus::Success, "{protocol:?}");
    }
    let url = server
        .get_attach(AttachRequest {
            container_id: "missing".into(),
            ..attach
        })
        .unwrap();
    let command = RemoteCommand {
        stderr: false,
        ..RemoteCommand::new(Protocol::SpdyV4).stdin_bytes(Vec::new())
    };
    let output = client::run(&url, command).await.unwrap();
    assert_eq!(
        output.status,
        ExitStatus::Failure("Internal error occurred: error attaching to container: no such container".into())
    );
}

#[tokio::test]
async fn fifty_sessions_run_at_once() {
    let (server, seen) = server().await;
    let sessions = (0..50).map(|i| {
        let protocol = if i % 2 == 0 {
            Protocol::SpdyV4
        } else {
            Protocol::WebSocketV5
        };
        let url = server
            .get_exec(sh(&format!("sleep 0.2; echo {i}; exit {}", i % 4)))
            .unwrap();
        tokio::spawn(async move { (i, client::run(&url, RemoteCommand::new(protocol)).await.unwrap()) })
    });
    for session in sessions.collect::<Vec<_>>() {
        let (i, output) = session.await.unwrap();
        assert_eq!(output.stdout, format!("{i}\n").into_bytes());
        let expected = if i % 4 == 0 {
            ExitStatus::Success
        } else {
            ExitStatus::ExitCode(i % 4)
        };
        assert_eq!(output.status, expected);
    }
    assert_eq!(seen.finished.load(Ordering::SeqCst), 50);
}

#[tokio::test]
async fn a_url_works_once_and_not_after_it_expires() {
    let config = Config {
        token_ttl: Duration::from_millis(300),
        ..Config::default()
    };
    let (server, _) = server_with(config).await;
    let url = server.get_exec(sh("true")).unwrap();
    assert!(
        url.starts_with(&format!("http://{}/exec/", server.local_addr())),
        "{url}"
    );
    client::run(&url, RemoteCommand::new(Protocol::SpdyV4)).await.unwrap();
    for protocol in [Protocol::SpdyV4, Protocol::WebSocketV5] {
        let reused = client::run(&url, RemoteCommand::new(protocol)).await.unwrap_err();
        assert!(
            matches!(reused, ClientError::Upgrade { status: 404, .. }),
            "{protocol:?}: {reused}"
        );
    }
    let url = server.get_exec(sh("true")).unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let expired = client::run(&url, RemoteCommand::new(Protocol::SpdyV4))
        .await
        .unwrap_err();
    assert!(matches!(expired, ClientError::Upgrade { status: 404, .. }), "{expired}");
    // An exec URL does not serve an attach.
    let url = server.get_exec(sh("true")).unwrap().replace("/exec/", "/attach/");
    let wrong = client::run(&url, RemoteCommand::new(Protocol::SpdyV4))
        .await
        .unwrap_err();
    assert!(matches!(wrong, ClientError::Upgrade { status: 404, .. }), "{wrong}");
}

#[tokio::test]
async fn an_unknown_protocol_is_refused_with_403() {
    let config = Config {
        supported_remote_command_protocols: vec!["v4.channel.k8s.io".into()],
        ..Config::default()
    };
    let (server, _) = server_with(config).await;
    let url = server.get_exec(sh("true")).unwrap();
    let refused = client::run(&url, RemoteCommand::new(Protocol::SpdyV2))
        .await
        .unwrap_err();
    assert!(matches!(refused, ClientError::Upgrade { status: 403, .. }), "{refused}");
}

#[tokio::test]
async fn a_client_that_leaves_takes_its_process_with_it() {
    for protocol in [Protocol::SpdyV4, Protocol::WebSocketV5] {
        let (server, seen) = server().await;
        let url = server
            .get_exec(ExecRequest {
                stdin: true,
                ..sh("sleep 30")
            })
            .unwrap();
        let (_keep_stdin_open, stdin) = tokio::io::duplex(64);
        let mut command = RemoteCommand::new(protocol);
        command.stdin = Some(Box::pin(stdin));
        let session = tokio::spawn(async move { client::run(&url, command).await });
        assert!(common::eventually(Duration::from_secs(5), || !seen.pids.lock().unwrap().is_empty()).await);
        let pid = seen.pids.lock().unwrap()[0];
        session.abort();
        assert!(
            common::eventually(Duration::from_secs(5), || seen.abandoned.load(Ordering::SeqCst) == 1).await,
            "{protocol:?}"
        );
        assert!(
            common::eventually(Duration::from_secs(5), || common::process_gone(pid)).await,
            "{protocol:?}: pid {pid} still runs"
        );
    }
}

#[tokio::test]
async fn shutdown_ends_open_sessions_and_refuses_new_connections() {
    let (server, seen) = server().await;
    let url = server.get_exec(sh("sleep 30")).unwrap();
    let session = tokio::spawn(async move { client::run(&url, RemoteCommand::new(Protocol::SpdyV4)).await });
    assert!(common::eventually(Duration::from_secs(5), || !seen.pids.lock().unwrap().is_empty()).await);
    server.shutdown();
    let ended = tokio::time::timeout(Duration::from_secs(10), session)
        .await
        .expect("the session ends")
        .unwrap();
    assert!(ended.is_err() || ended.is_ok_and(|o| o.status != ExitStatus::Success));
    assert!(common::eventually(Duration::from_secs(5), || seen.abandoned.load(Ordering::SeqCst) == 1).await);
    let url = server.get_exec(sh("true")).unwrap();
    assert!(client::run(&url, RemoteCommand::new(Protocol::SpdyV4)).await.is_err());
}
