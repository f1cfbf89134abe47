//! The client against a scripted HTTP/1.1 registry on 127.0.0.1: auth flows, endpoint
//! fall-through, verification. (The real registry is exercised by `tests/registry.rs`.)

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::image::oci::{MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_MANIFEST};

/// A request as the fake registry saw it.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: String,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn query(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// The fake registry's answer.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    framing: Framing,
}

/// How the fake registry frames a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// `Content-Length` with the body's length.
    Length,
    /// `Content-Length` with this length, whatever the body's.
    Announced(u64),
    /// No length: `Transfer-Encoding: chunked`.
    Chunked,
    /// Chunked, the body sent again and again until the client hangs up.
    Endless,
}

fn reply(status: u16) -> Reply {
    Reply {
        status,
        headers: Vec::new(),
        body: Vec::new(),
        framing: Framing::Length,
    }
}

impl Reply {
    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    fn framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
        self
    }
}

type Handler = dyn Fn(&Request, SocketAddr) -> Reply + Send + Sync;

/// An HTTP/1.1 server on 127.0.0.1 answering each request with `handler` (one request
/// per connection), and keeping a log of the requests.
struct FakeRegistry {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Request>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeRegistry {
    async fn start(handler: impl Fn(&Request, SocketAddr) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let task_log = log.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (handler, log) = (handler.clone(), task_log.clone());
                tokio::spawn(async move {
                    // A malformed request just closes the connection.
                    let _ = read_request(stream, addr, &*handler, &log).await;
                });
            }
        });
        Self { addr, log, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> Vec<Request> {
        self.log.lock().expect("log").clone()
    }

    fn count(&self, path_prefix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.path.starts_with(path_prefix))
            .count()
    }
}

async fn read_request(stream: TcpStream, addr: SocketAddr, handler: &Handler, log: &Mutex<Vec<Request>>) -> Option<()> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await.ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.ok()?;
    let url = Url::parse(&format!("http://{addr}{target}")).ok()?;
    let request = Request {
        method,
        path: url.path().to_string(),
        query: url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    log.lock().expect("log").push(request.clone());
    let answer = handler(&request, addr);
    let framing = match answer.framing {
        Framing::Length => format!("Content-Length: {}", answer.body.len()),
        Framing::Announced(length) => format!("Content-Length: {length}"),
        Framing::Chunked | Framing::Endless => "Transfer-Encoding: chunked".to_string(),
    };
    let mut head = format!("HTTP/1.1 {} Fake\r\n{framing}\r\nConnection: close\r\n", answer.status);
    for (name, value) in &answer.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut stream = reader.into_inner();
    stream.write_all(head.as_bytes()).await.ok()?;
    let chunk = [format!("{:x}\r\n", answer.body.len()).as_bytes(), &answer.body, b"\r\n"].concat();
    match answer.framing {
        Framing::Length | Framing::Announced(_) => stream.write_all(&answer.body).await.ok()?,
        Framing::Chunked => {
            stream.write_all(&chunk).await.ok()?;
            stream.write_all(b"0\r\n\r\n").await.ok()?;
        }
        // Ends when a write fails: the client hung up.
        Framing::Endless => loop {
            stream.write_all(&chunk).await.ok()?;
        },
    }
    stream.shutdown().await.ok()
}

/// A 127.0.0.1 port nothing listens on.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr")
}

const CONFIG_DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

fn manifest_bytes() -> Vec<u8> {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{MEDIA_TYPE_OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{CONFIG_DIGEST}","size":2}},"layers":[]}}"#
    )
    .into_bytes()
}

fn manifest_digest() -> Digest {
    Digest::of(&manifest_bytes())
}

const BLOB: &[u8] = b"layer bytes, pretend this is a tarball";

/// Serves the manifest of `library/busybox` under tag `1.36` and by digest, and `BLOB`.
fn serve_busybox(request: &Request) -> Reply {
    let manifest_tag = "/v2/library/busybox/manifests/1.36";
    let manifest_digest_path = format!("/v2/library/busybox/manifests/{}", manifest_digest());
    let blob_path = format!("/v2/library/busybox/blobs/{}", Digest::of(BLOB));
    if request.path == manifest_tag || request.path == manifest_digest_path {
        reply(200)
            .header("Content-Type", MEDIA_TYPE_OCI_MANIFEST)
            .header("Docker-Content-Digest", manifest_digest().as_str())
            .body(manifest_bytes())
    } else if request.path == blob_path {
        reply(200).header("Content-Type", "application/octet-stream").body(BLOB)
    } else {
        reply(404).body(r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#)
    }
}

/// `docker.io` served by `mirrors` (in order) and then `server` (never the real Docker Hub).
fn docker_io_hosts(mirrors: &[(String, &str)], server: &str) -> RegistryHosts {
    let mut text = format!("server = \"{server}\"\n");
    for (url, caps) in mirrors {
        text.push_str(&format!("[host.\"{url}\"]\ncapabilities = {caps}\n"));
    }
    RegistryHosts::from_toml(Path::new("/nonexistent"), [("docker.io", text.as_str())]).expect("hosts")
}

fn busybox(tag_or_digest: &str) -> Reference {
    format!("docker.io/library/busybox{tag_or_digest}")
        .parse()
        .expect("reference")
}

async fn read_all(mut blob: Blob) -> io::Result<Vec<u8>> {
    let mut data = Vec::new();
    blob.read_to_end(&mut data).await?;
    Ok(data)
}

#[tokio::test]
async fn resolves_tags_and_digests_through_a_mirror() {
    let mirror = FakeRegistry::start(|r, _| serve_busybox(r)).await;
    let server = closed_port().await;
    let hosts = docker_io_hosts(&[(mirror.url(), r#"["pull", "resolve"]"#)], &format!("http://{server}"));
    let client = RegistryClient::new(hosts);

    let resolved = client
        .resolve(&busybox(":1.36"), &Credentials::Anonymous)
        .await
        .expect("resolve tag");
    assert_eq!(resolved.digest, manifest_digest());
    assert_eq!(resolved.media_type, MEDIA_TYPE_OCI_MANIFEST);
    assert_eq!(resolved.bytes.as_ref(), manifest_bytes().as_slice());
    assert!(resolved.endpoint.mirror);
    assert!(matches!(
        resolved.document().expect("document"),
        ManifestDocument::Manifest(_)
    ));
    assert_eq!(resolved.descriptor().size, manifest_bytes().len() as u64);

    let request = &mirror.requests()[0];
    assert_eq!(request.query("ns"), ["docker.io"], "mirrors are told the registry");
    let accept = request.header("accept").expect("accept header");
    for media_type in oci::MANIFEST_MEDIA_TYPES {
        assert!(accept.contains(media_type), "accept {accept:?} lacks {media_type}");
    }
    assert!(
        request
            .header("user-agent")
            .is_some_and(|ua| ua.starts_with("runtime-core/"))
    );

    let by_digest = client
        .fetch_manifest_by_digest(&busybox(""), &manifest_digest(), &Credentials::Anonymous)
        .await
        .expect("resolve digest");
    assert_eq!(by_digest.digest, manifest_digest());

    let blob = client
        .fetch_blob(
            &busybox(""),
            &Digest::of(BLOB),
            Some(BLOB.len() as u64),
            &Credentials::Anonymous,
        )
        .await
        .expect("blob");
    assert_eq!(blob.size(), Some(BLOB.len() as u64));
    assert_eq!(read_all(blob).await.expect("read"), BLOB);
}

#[tokio::test]
async fn content_type_is_sniffed_when_generic_and_schema1_is_refused() {
    let registry = FakeRegistry::start(|r, _| match r.path.as_str() {
        "/v2/generic/manifests/latest" => reply(200)
            .header("Content-Type", "application/json")
            .body(manifest_bytes()),
        "/v2/index/manifests/latest" => reply(200).body(r#"{"schemaVersion":2,"manifests":[]}"#),
        "/v2/schema1/manifests/latest" => reply(200)
            .header(
                "Content-Type",
                "application/vnd.docker.distribution.manifest.v1+prettyjws",
            )
            .body("{}"),
        "/v2/html/manifests/latest" => reply(200).header("Content-Type", "text/html").body("<html>"),
        _ => reply(404),
    })
    .await;
    let client = RegistryClient::new(RegistryHosts::none());
    let reference = |name: &str| -> Reference { format!("{}/{name}", registry.addr).parse().expect("reference") };

    let generic = client
        .resolve(&reference("generic"), &Credentials::Anonymous)
        .await
        .expect("generic");
    assert_eq!(generic.media_type, MEDIA_TYPE_OCI_MANIFEST);
    let index = client
        .resolve(&reference("index"), &Credentials::Anonymous)
        .await
        .expect("index");
    assert_eq!(index.media_type, MEDIA_TYPE_OCI_INDEX);
    let schema1 = client
        .resolve(&reference("schema1"), &Credentials::Anonymous)
        .await
        .expect_err("schema1");
    assert!(schema1.to_string().contains("schema 1"), "{schema1}");
    let html = client
        .resolve(&reference("html"), &Credentials::Anonymous)
        .await
        .expect_err("html");
    assert!(html.to_string().contains("unsupported manifest media type"), "{html}");
}

#[tokio::test]
async fn bearer_tokens_are_fetched_once_and_cached_per_credentials() {
    let registry = FakeRegistry::start(|r, addr| {
        if r.path == "/token" {
            // Only alice may have a token; anonymous requests are refused.
            return match r.header("authorization") {
                Some(basic)
                    if basic
                        == Credentials::Basic {
                            username: "alice".into(),
                            password: "pw".into(),
                        }
                        .basic_header()
                        .expect("basic") =>
                {
                    reply(200).body(r#"{"token":"alice-token","expires_in":300}"#)
                }
                Some(_) => reply(200).body(r#"{"token":"other-token","expires_in":300}"#),
                None => reply(401).body(r#"{"errors":[{"code":"UNAUTHORIZED","message":"anonymous access denied"}]}"#),
            };
        }
        if r.header("authorization") != Some("Bearer alice-token") {
            let challenge = format!(
                r#"Bearer realm="http://{addr}/token",service="fake-registry",scope="repository:library/busybox:pull""#
            );
            return reply(401).header("WWW-Authenticate", &challenge);
        }
        serve_busybox(r)
    })
    .await;
    let hosts = docker_io_hosts(&[], &registry.url());
    let client = RegistryClient::new(hosts);
    let alice = Credentials::Basic {
        username: "alice".into(),
        password: "pw".into(),
    };

    client.resolve(&busybox(":1.36"), &alice).await.expect("first resolve");
    client.resolve(&busybox(":1.36"), &alice).await.expect("second resolve");
    let blob = client
        .fetch_blob(&busybox(""), &Digest::of(BLOB), None, &alice)
        .await
        .expect("blob");
    assert_eq!(read_all(blob).await.expect("read"), BLOB);

    assert_eq!(
        registry.count("/token"),
        1,
        "one token for all requests: {:?}",
        registry.requests()
    );
    let token_request = registry
        .requests()
        .into_iter()
        .find(|r| r.path == "/token")
        .expect("token request");
    assert_eq!(token_request.method, "GET");
    assert_eq!(token_request.query("service"), ["fake-registry"]);
    assert_eq!(token_request.query("scope"), ["repository:library/busybox:pull"]);
    let unauthorized = registry
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v2/") && r.header("authorization").is_none())
        .count();
    assert_eq!(unauthorized, 1, "the method is remembered after the first challenge");

    let bob = Credentials::Basic {
        username: "bob".into(),
        password: "x".into(),
    };
    let err = client
        .resolve(&busybox(":1.36"), &bob)
        .await
        .expect_err("bob's token is refused");
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("bearer token was refused"), "{err}");
    assert_eq!(registry.count("/token"), 2, "bob does not get alice's cached token");

    let err = client
        .resolve(&busybox(":1.36"), &Credentials::Anonymous)
        .await
        .expect_err("anonymous");
    let text = err.to_string();
    assert!(
        text.contains("token endpoint refused") && text.contains("anonymous access denied"),
        "{text}"
    );
}

#[tokio::test]
async fn identity_tokens_are_exchanged_with_an_oauth_post() {
    let registry = FakeRegistry::start(|r, addr| {
        if r.path == "/token" {
            let ok = r.method == "POST"
                && r.body.contains("grant_type=refresh_token")
                && r.body.contains("refresh_token=refresh-me")
                && r.body.contains("service=svc")
                && r.body.contains("scope=repository%3Alibrary%2Fbusybox%3Apull");
            return if ok {
                reply(200).body(r#"{"access_token":"oauth-token"}"#)
            } else {
                reply(400)
            };
        }
        if r.header("authorization") != Some("Bearer oauth-token") {
            return reply(401).header(
                "WWW-Authenticate",
                &format!(r#"Bearer realm="http://{addr}/token",service="svc""#),
            );
        }
        serve_busybox(r)
    })
    .await;
    let client = RegistryClient::new(docker_io_hosts(&[], &registry.url()));
    let creds = Credentials::IdentityToken("refresh-me".into());
    client.resolve(&busybox(":1.36"), &creds).await.expect("resolve");
    assert_eq!(registry.count("/token"), 1);
}

#[tokio::test]
async fn registry_tokens_are_sent_as_they_are() {
    let registry = FakeRegistry::start(|r, _| match r.header("authorization") {
        Some("Bearer direct") => serve_busybox(r),
        _ => reply(401).header("WWW-Authenticate", r#"Bearer realm="http://127.0.0.1:1/token""#),
    })
    .await;
    let client = RegistryClient::new(docker_io_hosts(&[], &registry.url()));
    client
        .resolve(&busybox(":1.36"), &Credentials::RegistryToken("direct".into()))
        .await
        .expect("resolve");
    assert_eq!(registry.requests().len(), 1, "no challenge, no token endpoint");

    let err = client
        .resolve(&busybox(":1.36"), &Credentials::RegistryToken("wrong".into()))
        .await
        .expect_err("wrong token");
    assert!(err.to_string().contains("registry token was refused"), "{err}");
}

#[tokio::test]
async fn basic_auth_answers_a_basic_challenge() {
    let good = Credentials::Basic {
        username: "alice".into(),
        password: "secret".into(),
    };
    let good_header = good.basic_header().expect("basic");
    let registry = FakeRegistry::start(move |r, _| {
        if r.header("authorization") == Some(good_header.as_str()) {
            serve_busybox(r)
        } else {
            reply(401).header("WWW-Authenticate", r#"Basic realm="Registry Realm""#)
        }
    })
    .await;
    let client = RegistryClient::new(docker_io_hosts(&[], &registry.url()));

    client.resolve(&busybox(":1.36"), &good).await.expect("resolve");
    assert_eq!(registry.requests().len(), 2, "anonymous, then basic");
    client.resolve(&busybox(":1.36"), &good).await.expect("resolve again");
    assert_eq!(registry.requests().len(), 3, "basic sent from the start once known");

    #[rustfmt::skip]
    let cases = [
        ("wrong password", Credentials::Basic { username: "alice".into(), password: "nope".into() }, "credentials were refused"),
        ("no credentials", Credentials::Anonymous, "none were given"),
    ];
    for (desc, creds, want) in cases {
        let err = client.resolve(&busybox(":1.36"), &creds).await.expect_err(desc);
        assert!(
            matches!(err, RegistryError::Unauthorized { .. }) && err.to_string().contains(want),
            "{desc}: {err}"
        );
    }
}

#[tokio::test]
async fn forbidden_is_unauthorized_with_the_registry_message() {
    let registry = FakeRegistry::start(|_, _| {
        reply(403).body(r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#)
    })
    .await;
    let client = RegistryClient::new(docker_io_hosts(&[], &registry.url()));
    let err = client
        .resolve(&busybox(":1.36"), &Credentials::Anonymous)
        .await
        .expect_err("denied");
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("DENIED: requested access to the resource is denied"),
        "{err}"
    );
}

#[tokio::test]
async fn endpoints_fall_through_in_order_and_all_failures_are_listed() {
    let dead = closed_port().await;
    let broken =
        FakeRegistry::start(|_, _| reply(503).body(r#"{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}"#))
            .await;
    let good = FakeRegistry::start(|r, _| serve_busybox(r)).await;
    let mirrors = [
        (format!("http://{dead}"), r#"["pull", "resolve"]"#),
        (broken.url(), r#"["pull", "resolve"]"#),
    ];
    let client = RegistryClient::new(docker_io_hosts(&mirrors, &good.url()));

    let resolved = client
        .resolve(&busybox(":1.36"), &Credentials::Anonymous)
        .await
        .expect("falls through to the server");
    assert!(!resolved.endpoint.mirror);
    assert_eq!(resolved.endpoint.host, good.addr.to_string());
    assert_eq!(broken.requests().len(), 1);

    let err = client
        .resolve(&busybox(":missing"), &Credentials::Anonymous)
        .await
        .expect_err("missing everywhere");
    let RegistryError::AllEndpointsFailed { reference, failures } = &err else {
        panic!("{err}")
    };
    assert_eq!(reference, "docker.io/library/busybox:missing");
    assert_eq!(failures.len(), 3);
    let text = err.to_string();
    for want in [
        format!("http://{dead}/v2"),
        "onnection refused".to_string(),
        format!("{}/v2", broken.url()),
        "unexpected status 503".to_string(),
        "UNAVAILABLE: try later".to_string(),
        "manifest unknown".to_string(),
    ] {
        assert!(text.contains(&want), "{text:?} lacks {want:?}");
    }
}

#[tokio::test]
async fn not_found_when_every_endpoint_says_so() {
    let a = FakeRegistry::start(|_, _| reply(404)).await;
    let b = FakeRegistry::start(|_, _| reply(404)).await;
    let client = RegistryClient::new(docker_io_hosts(&[(a.url(), r#"["pull", "resolve"]"#)], &b.url()));
    let err = client
        .resolve(&busybox(":nope"), &Credentials::Anonymous)
        .await
        .expect_err("not found");
    assert!(err.is_not_found(), "{err}");
    assert_eq!(
        err.to_string(),
        "manifest unknown: docker.io/library/busybox:nope not found"
    );

    let err = client
        .fetch_blob(&busybox(""), &Digest::of(b"x"), None, &Credentials::Anonymous)
        .await
        .expect_err("no blob");
    assert!(matches!(err, RegistryError::BlobNotFound { .. }), "{err}");
}

#[tokio::test]
async fn capabilities_decide_which_endpoints_are_asked() {
    let pull_only = FakeRegistry::start(|r, _| serve_busybox(r)).await;
    let server = FakeRegistry::start(|r, _| serve_busybox(r)).await;
    let client = RegistryClient::new(docker_io_hosts(&[(pull_only.url(), r#"["pull"]"#)], &server.url()));

    let by_tag = client
        .resolve(&busybox(":1.36"), &Credentials::Anonymous)
        .await
        .expect("tag");
    assert!(
        !by_tag.endpoint.mirror,
        "tags are resolved only where resolve is allowed"
    );
    assert_eq!(pull_only.requests().len(), 0);

    let by_digest = client
        .resolve(&busybox(&format!("@{}", manifest_digest())), &Credentials::Anonymous)
        .await
        .expect("digest");
    assert!(by_digest.endpoint.mirror, "digests may come from pull-only mirrors");

    let none = RegistryHosts::from_toml(
        Path::new("/nonexistent"),
        [(
            "docker.io",
            format!("server = \"{}\"\ncapabilities = [\"push\"]", server.url()).as_str(),
        )],
    )
    .expect("hosts");
    let err = RegistryClient::new(none)
        .resolve(&busybox(":1.36"), &Credentials::Anonymous)
        .await
        .expect_err("no endpoint");
    assert_eq!(err.to_string(), "no endpoint of docker.io has the resolve capability");
}

#[tokio::test]
async fn digest_mismatches_are_refused() {
    let liar = FakeRegistry::start(|r, _| {
        let mut answer = serve_busybox(r);
        if r.path.ends_with("/manifests/1.36") {
            let wrong = Digest::of(b"something else");
            answer.headers.retain(|(n, _)| n != "Docker-Content-Digest");
            answer = answer.header("Docker-Content-Digest", wrong.as_str());
        }
        answer
    })
    .await;
    let client = RegistryClient::new(docker_io_hosts(&[], &liar.url()));

    let err = client
        .resolve(&busybox(":1.36"), &Credentials::Anonymous)
        .await
        .expect_err("header mismatch");
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");

    let other = Digest::of(b"another manifest");
    let path = format!("/v2/library/busybox/manifests/{other}");
    let substitute = FakeRegistry::start(move |r, _| {
        if r.path == path {
            reply(200)
                .header("Content-Type", MEDIA_TYPE_OCI_MANIFEST)
                .body(manifest_bytes())
        } else {
            reply(404)
        }
    })
    .await;
    let client = RegistryClient::new(docker_io_hosts(&[], &substitute.url()));
    let err = client
        .resolve(&busybox(&format!("@{other}")), &Credentials::Anonymous)
        .await
        .expect_err("content mismatch");
    let RegistryError::DigestMismatch { expected, actual, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!((expected, actual), (&other, &manifest_digest()));
}

#[tokio::test]
async fn blobs_follow_redirects_and_keep_to_their_size() {
    let registry = FakeRegistry::start(|r, addr| {
        if r.path.starts_with("/v2/library/busybox/blobs/") {
            return reply(307).header("Location", &format!("http://{addr}/storage/blob?signature=x"));
        }
        if r.path == "/storage/blob" {
            return reply(200).body(BLOB);
        }
        reply(404)
    })
    .await;
    let client = RegistryClient::new(docker_io_hosts(&[], &registry.url()));
    let digest = Digest::of(BLOB);

    let blob = client
        .fetch_blob(&busybox(""), &digest, Some(BLOB.len() as u64), &Credentials::Anonymous)
        .await
        .expect("blob");
    let data = read_all(blob).await.expect("read");
    assert_eq!(Digest::of(&data), digest);
    assert_eq!(registry.count("/storage/blob"), 1);

    let err = client
        .fetch_blob(&busybox(""), &digest, Some(3), &Credentials::Anonymous)
        .await
        .expect_err("size");
    assert!(matches!(err, RegistryError::SizeMismatch { expected: 3, .. }), "{err}");
}

/// A manifest of exactly `size` bytes: [`manifest_bytes`] padded with spaces.
fn manifest_of_size(size: u64) -> Vec<u8> {
    let mut bytes = manifest_bytes();
    bytes.resize(usize::try_from(size).expect("size"), b' ');
    bytes
}

/// Serves tag `big` of `library/busybox` as `body` framed as `framing`.
async fn serving_big_manifest(body: Vec<u8>, framing: Framing) -> FakeRegistry {
    FakeRegistry::start(move |r, _| {
        if r.path == "/v2/library/busybox/manifests/big" {
            reply(200)
                .header("Content-Type", MEDIA_TYPE_OCI_MANIFEST)
                .body(body.clone())
                .framing(framing)
        } else {
            reply(404)
        }
    })
    .await
}

#[tokio::test]
async fn manifests_over_the_cap_are_refused_by_their_length_or_as_they_arrive() {
    let limit = oci::MAX_MANIFEST_SIZE;
    let cases = [
        (
            "exactly the cap, with its length",
            manifest_of_size(limit),
            Framing::Length,
            None,
        ),
        (
            "exactly the cap, chunked",
            manifest_of_size(limit),
            Framing::Chunked,
            None,
        ),
        (
            "one byte over, with its length",
            manifest_of_size(limit + 1),
            Framing::Length,
            Some(Some(limit + 1)),
        ),
        (
            "one byte over, chunked",
            manifest_of_size(limit + 1),
            Framing::Chunked,
            Some(None),
        ),
        (
            "a length of 1 TiB announced",
            manifest_bytes(),
            Framing::Announced(1 << 40),
            Some(Some(1 << 40)),
        ),
        (
            "an endless chunked body",
            vec![b' '; 64 << 10],
            Framing::Endless,
            Some(None),
        ),
    ];
    for (desc, body, framing, refused) in cases {
        let registry = serving_big_manifest(body, framing).await;
        let client = RegistryClient::new(docker_io_hosts(&[], &registry.url()));
        let resolved = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            client.resolve(&busybox(":big"), &Credentials::Anonymous),
        )
        .await
        .unwrap_or_else(|_| panic!("{desc}: the client kept reading"));
        match (refused, resolved) {
            (None, Ok(resolved)) => assert_eq!(resolved.bytes.len() as u64, limit, "{desc}"),
            (Some(size), Err(RegistryError::TooLarge(err))) => {
                assert_eq!((err.kind, err.size), (Capped::Manifest, size), "{desc}");
                let message = err.to_string();
                assert!(
                    message.contains("/v2/library/busybox/manifests/big") && message.contains(&limit.to_string()),
                    "{desc}: the error names the manifest and the limit: {message}"
                );
            }
            (want, got) => panic!("{desc}: want {want:?}, got {got:?}"),
        }
    }
}
