//! The runtime-core ImageService against a real registry (Debian's docker-registry),
//! called over its unix socket through `cri-client`, as the kubelet would.
//!
//! Every test runs its own runtime (its own root directory and socket) so tests can run in
//! parallel and count what they pulled; they share the registry and its test images.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, ensure};
use base64::Engine as _;
use cri_api::server::ImageServiceServer;
use cri_api::v1::{AuthConfig, Image, ImageFilter, ImageSpec};
use runtime_core::image::digest::Digest;
use runtime_core::image::hosts::RegistryHosts;
use runtime_core::image::manager::ImageManager;
use runtime_core::image::oci::{MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE};
use runtime_core::image::registry::RegistryClient;
use runtime_core::service::image::ImageServiceImpl;
use runtime_core::store::Store;
use test_harness::image_builder::{Entry, Image as TestImage, Layer};
use test_harness::scratch::ScratchDir;
use test_harness::suite::{self, Test};
use test_harness::{
    MultiPlatformImage, Registry, RegistryOptions, TestImages, mirrors, push_multi_platform_image, push_test_images,
    test_images,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

struct Env {
    rt: tokio::runtime::Runtime,
    registry: Registry,
    mirrored: TestImages,
    multi_platform: MultiPlatformImage,
    /// A second registry that wants basic auth, holding the same test images.
    auth_registry: Registry,
}

/// The user and password of the registry with basic auth.
const AUTH_USER: &str = "edge";
const AUTH_PASSWORD: &str = "s3cret-pull";

fn setup() -> anyhow::Result<Env> {
    test_harness::require_root()?;
    test_harness::require_tools(&["docker-registry", "busybox"])?;
    let registry = Registry::start()?;
    let mirrored = push_test_images(&registry)?;
    let multi_platform = push_multi_platform_image(&registry)?;
    let auth_registry = Registry::start_with(RegistryOptions::with_basic_auth(AUTH_USER, AUTH_PASSWORD))?;
    push_test_images(&auth_registry)?;
    let rt = tokio::runtime::Runtime::new()?;
    Ok(Env {
        rt,
        registry,
        mirrored,
        multi_platform,
        auth_registry,
    })
}

/// One runtime-core ImageService on its own socket, and a client of it.
struct Runtime {
    client: cri_client::Client,
    manager: Arc<ImageManager>,
    root: ScratchDir,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Runtime {
    async fn start(env: &Env) -> anyhow::Result<Runtime> {
        let root = ScratchDir::create("images-test")?;
        let certs_d = root.path().join("certs.d");
        mirrors::write_test_mirrors(&certs_d, &format!("http://{}", env.registry.addr()))?;
        let hosts = RegistryHosts::load(&certs_d)?;
        let store = Arc::new(Store::open(&root.path().join("metadata.redb"))?);
        let manager = Arc::new(ImageManager::open(
            &root.path().join("images"),
            RegistryClient::new(hosts),
            store,
        )?);
        let socket = root.path().join("cri.sock");
        let incoming = cri_api::unix::bind(&socket)?;
        let service = ImageServiceServer::new(ImageServiceImpl::new(manager.clone()));
        let server = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
        });
        let client = cri_client::Client::connect(&format!("unix://{}", socket.display())).await?;
        Ok(Runtime {
            client,
            manager,
            root,
            server,
        })
    }

    fn images_dir(&self) -> std::path::PathBuf {
        self.root.path().join("images")
    }

    async fn pull(&self, image: &str) -> anyhow::Result<String> {
        Ok(self.client.pull_image(image, None, None).await?)
    }

    async fn list(&self) -> anyhow::Result<Vec<Image>> {
        Ok(self.client.list_images(None).await?)
    }

    async fn status(&self, image: &str) -> anyhow::Result<Option<Image>> {
        Ok(self.client.image_status(image, false).await?.image)
    }

    async fn used_bytes(&self) -> anyhow::Result<u64> {
        let info = self.client.image_fs_info().await?;
        let fs = info.image_filesystems.first().context("no image filesystem reported")?;
        Ok(fs.used_bytes.as_ref().map_or(0, |v| v.value))
    }
}

/// Pushes an image of its own for one test: busybox plus a layer naming the test.
fn push_unique_image(env: &Env, name: &str) -> anyhow::Result<TestImage> {
    let unique = Layer::from_entries(&[
        Entry::dir("etc", 0o755),
        Entry::file(format!("etc/{name}"), 0o644, format!("made for {name}\n").into_bytes()),
    ])?;
    let image = TestImage::new(
        vec![test_images::busybox_layer()?, unique],
        &test_images::busybox_config(),
    );
    env.registry
        .client()
        .push_image(&format!("unique/{name}"), &["1"], &image)?;
    Ok(image)
}

fn direct(env: &Env, repository_and_tag: &str) -> String {
    format!("{}/{repository_and_tag}", env.registry.addr())
}

/// How many times the registry served `GET` of this blob, from its access log.
fn blob_downloads(registry: &Registry, digest: &str) -> anyhow::Result<usize> {
    let log = std::fs::read_to_string(registry.log_file())?;
    Ok(log
        .lines()
        .filter(|l| l.contains(&format!("/blobs/{digest}")) && l.contains("GET") && l.contains("response completed"))
        .count())
}

fn pull_by_tag_records_the_image_under_its_id_tag_and_digest(env: &Env) -> anyhow::Result<()> {
    let image = push_unique_image(env, "by-tag")?;
    env.rt.block_on(async {
        let runtime = Runtime::start(env).await?;
        let reference = direct(env, "unique/by-tag:1");
        let id = runtime.pull(&reference).await?;
        ensure!(id == image.config_digest(), "image id {id} is not the config digest");
        let listed = runtime.list().await?;
        ensure!(listed.len() == 1, "{listed:?}");
        ensure!(listed[0].repo_tags == [reference.clone()], "{:?}", listed[0].repo_tags);
        let repo_digest = format!("{}/unique/by-tag@{}", env.registry.addr(), image.digest());
        ensure!(listed[0].repo_digests == [repo_digest], "{:?}", listed[0].repo_digests);
        ensure!(listed[0].size > 0);
        Ok(())
    })
}

fn pull_by_digest_adds_no_tag(env: &Env) -> anyhow::Result<()> {
    let image = push_unique_image(env, "by-digest")?;
    env.rt.block_on(async {
        let runtime = Runtime::start(env).await?;
        let reference = direct(env, &format!("unique/by-digest@{}", image.digest()));
        let id = runtime.pull(&reference).await?;
        ensure!(id == image.config_digest());
        let found = runtime
            .status(&reference)
            .await?
            .context("found by its digest reference")?;
        ensure!(found.repo_tags.is_empty(), "{:?}", found.repo_tags);
        ensure!(found.repo_digests == [reference], "{:?}", found.repo_digests);
        Ok(())
    })
}

fn short_names_are_normalized_and_pulled_through_the_mirror(env: &Env) -> anyhow::Result<()> {
    env.rt.block_on(async {
        let runtime = Runtime::start(env).await?;
        let id = runtime.pull("busybox:1.36").await?;
        let image = runtime
            .status("docker.io/library/busybox:1.36")
            .await?
            .context("normalized tag")?;
        ensure!(image.id == id);
        ensure!(
            image.repo_tags == ["docker.io/library/busybox:1.36"],
            "{:?}",
            image.repo_tags
        );
        for name in [
            id.as_str(),
            id.trim_start_matches("sha256:"),
            image.repo_digests[0].as_str(),
            "busybox:1.36",
        ] {
            ensure!(runtime.status(name).await?.is_some(), "not found by {name}");
        }
        ensure!(
            runtime.status("busybox:latest").await?.is_none(),
            "not pulled under latest yet"
        );
        Ok(())
    })
}

fn registry_k8s_io_names_are_pulled_through_the_mirror(env: &Env) -> anyhow::Result<()> {
    env.rt.block_on(async {
        let runtime = Runtime::start(env).await?;
        runtime.pull(&env.mirrored.pause).await?;
        let image = runtime.status(&env.mirrored.pause).await?.context("pulled")?;
        ensure!(image.repo_tags == [env.mirrored.pause.clone()], "{:?}", image.repo_tags);
        ensure!(image.repo_digests[0].starts_with("registry.k8s.io/pause@sha256:"));
        Ok(())
    })
}

fn all_tags_of_one_image_are_listed_together(env: &Env) -> anyhow::Result<()> {
    env.rt.block_on(async {
        let runtime = Runtime::start(env).await?;
        let first = runtime.pull("docker.io/library/busybox:1.36").await?;
        let second = runtime.pull("docker.io/library/busybox:latest").await?;
        ensure!(first == second, "both tags name one image");
        let listed = runtime.list().await?;
        ensure!(listed.len() == 1, "{listed:?}");
        let mut tags = listed[0].repo_tags.clone();
        tags.sort();
        ensure!(
            tags == ["docker.io/library/busybox:1.36", "docker.io/library/busybox:latest"],
            "{tags:?}"
        );
        ensure!(
            listed[0].repo_digests.len() == 1,
            "one manifest, one digest: {:?}",
            listed[0].repo_digests
        );
        let filter = ImageFilter {
            image: Some(ImageSpec {
                image: "busybox:latest".into(),
                ..Default::default()
            }),
        };
        let filtered = runtime.client.list_images(Some(filter)).await?;
        ensure!(filtered.len() == 1 && filtered[0].id == first);
        Ok(())
    })
}

fn concurrent_pulls_of_one_image_fetch_each_blob_once(env: &Env) -> anyhow::Result<()> {
    let image = push_unique_image(env, "concurrent")?;
    let unique_layer = image.layers()[1].digest().to_string();
    env.rt.block_on(async {
        let runtime = Runtime::start(env).await?;
        let reference = direct(env, "unique/concurrent:1");
        let pulls = (0..8).map(|_| runtime.pull(&reference));
        let ids = futures_util::future::try_join_all(pulls).await?;
        ensure!(ids.iter().all(|id| id == image.config_digest()), "{ids:?}");
        ensure!(runtime.list().await?.len() == 1);
        Ok(())
    })?;
    let downloads = blob_downloads(&env.registry, &unique_layer)?;
    ensure!(downloads == 1, "the layer was downloaded {downloads} times");
    Ok(())
}

fn an_unknown_image_has_no_status_and_cannot_be_pulled(env: &Env) -> anyhow::Result<()> {
    env.rt.block_on(async {
        let runtime = Runtime::start(env).await?;
        ensure!(runtime.status("docker.io/library/never-pushed:1").await?.is_none());
        let err = runtime
            .pull(&direct(env, "never-pushed:1"))
            .await
            .expect_err("no such image");
        let err = err.downcast::<cri_client::Error>()?;
        ensure!(err.is_not_found(), "{err}");
        let err = runtime.pull("Not A Reference").await.expect_err("invalid");
        let code = err.downcast::<cri_client::Error>()?.code();
        ensure!(code == Some(tonic::Code::InvalidArgument), "{code:?}");
        Ok(())
    })
}

fn removing_an_image_frees_its_blobs_but_keeps_shared_layers(env: &Env) -> anyhow::Result<()> {
    env.rt.block_on(async {
        let runtime = Runtime::start(env).await?;
        let empty = runtime.used_bytes().await?;
        runtime.pull("docker.io/library/busybox:1.36").await?;
        let with_busybox = runtime.used_bytes().await?;
        ensure!(with_busybox > empty, "usage {empty} -> {with_busybox} after a pull");
        runtime.pull(&env.mirrored.nonroot).await?;
        let with_both = runtime.used_bytes().await?;

        runtime.client.remove_image(env.mirrored.nonroot.as_str()).await?;
        ensure!(runtime.status(&env.mirrored.nonroot).await?.is_none());
        let after_remove = runtime.used_bytes().await?;
        ensure!(
            after_remove < with_both,
            "usage {with_both} -> {after_remove} after removal"
        );
        let busybox = runtime.status("busybox:1.36").await?.context("busybox stays")?;
        let layers = std::fs::read_dir(runtime.images_dir().join("snapshots"))?.count();
        ensure!(
            layers == 1,
            "busybox's layer is kept, nonroot's own is gone: {layers} layers"
        );

        // Removal is idempotent, and works by id.
        runtime.client.remove_image(env.mirrored.nonroot.as_str()).await?;
        runtime.client.remove_image(busybox.id.as_str()).await?;
        ensure!(runtime.list().await?.is_empty());
        ensure!(std::fs::read_dir(runtime.images_dir().join("snapshots"))?.count() == 0);
        ensure!(std::fs::read_dir(runtime.images_dir().join("content/blobs/sha256"))?.count() == 0);
        let final_usage = runtime.used_bytes().await?;
        ensure!(
            final_usage <= empty + 16 * 1024,
            "usage back to {final_usage} from {empty}"
        );
        Ok(())
    })
}

fn removing_by_tag_removes_every_name_of_the_image(env: &Env) -> anyhow::Result<()> {
    env.rt.block_on(async {
        let runtime = Runtime::start(env).await?;
        runtime.pull("docker.io/library/busybox:1.36").await?;
        runtime.pull("docker.io/library/busybox:latest").await?;
        runtime.client.remove_image("busybox:latest").await?;
        ensure!(
            runtime.status("busybox:1.36").await?.is_none(),
            "containerd removes the image, not one tag"
        );
        ensure!(runtime.list().await?.is_empty());
        Ok(())
    })
}

fn verbose_status_includes_the_image_config(env: &Env) -> anyhow::Result<()> {
    env.rt.block_on(async {
        let runtime = Runtime::start(env).await?;
        runtime.pull(&env.mirrored.nonroot).await?;
        let status = runtime.client.image_status(env.mirrored.nonroot.as_str(), true).await?;
        let image = status.image.context("pulled")?;
        ensure!(
            image.uid.map(|u| u.value) == Some(65532),
            "{:?} {:?}",
            image.uid,
            image.username
        );
        let info = status.info.get("info").context("verbose info")?;
        let info: serde_json::Value = serde_json::from_str(info)?;
        ensure!(info["imageSpec"]["config"]["User"] == "65532:65532", "{info}");
        ensure!(
            info["imageSpec"]["rootfs"]["diff_ids"]
                .as_array()
                .is_some_and(|d| !d.is_empty()),
            "{info}"
        );
        Ok(())
    })
}

fn a_blob_corrupted_in_the_registry_is_rejected_and_nothing_is_recorded(env: &Env) -> anyhow::Result<()> {
    let image = push_unique_image(env, "corrupted")?;
    let layer = image.layers()[1].digest().trim_start_matches("sha256:").to_string();
    let data = env
        .registry
        .storage_dir()
        .join(format!("docker/registry/v2/blobs/sha256/{}/{layer}/data", &layer[..2]));
    let mut bytes = std::fs::read(&data).with_context(|| format!("registry blob {}", data.display()))?;
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&data, bytes)?;
    env.rt.block_on(async {
        let runtime = Runtime::start(env).await?;
        let err = runtime
            .pull(&direct(env, "unique/corrupted:1"))
            .await
            .expect_err("corrupted blob");
        ensure!(err.to_string().contains(&layer), "the error names the blob: {err}");
        ensure!(runtime.list().await?.is_empty(), "no image recorded");
        let blob = runtime.images_dir().join(format!("content/blobs/sha256/{layer}"));
        ensure!(!blob.exists(), "the corrupted blob was not stored");
        ensure!(
            dir_is_empty(&runtime.images_dir().join("content/ingest"))?,
            "no partial download left"
        );
        Ok(())
    })
}

/// Writes `image` as an OCI image layout in `dir`, its index entry annotated with
/// `annotations`.
fn write_layout(dir: &Path, image: &TestImage, annotations: serde_json::Value) -> anyhow::Result<()> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    let write_blob = |digest: &str, data: &[u8]| std::fs::write(blobs.join(digest.trim_start_matches("sha256:")), data);
    for layer in image.layers() {
        write_blob(layer.digest(), layer.blob())?;
    }
    write_blob(image.config_digest(), image.config_blob())?;
    write_blob(image.digest(), image.manifest())?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": image.media_type(),
            "digest": image.digest(),
            "size": image.manifest().len(),
            "annotations": annotations,
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index)?)?;
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    Ok(())
}

/// A busybox image written as an OCI layout in the runtime's directory, its index entry
/// annotated with `annotations`.
fn busybox_layout(runtime: &Runtime, annotations: serde_json::Value) -> anyhow::Result<(TestImage, PathBuf)> {
    let image = TestImage::new(vec![test_images::busybox_layer()?], &test_images::busybox_config());
    let layout = runtime.root.path().join("layout");
    write_layout(&layout, &image, annotations)?;
    Ok((image, layout))
}

/// Packs the directory `dir` into a tar archive at `archive`.
fn tar_directory(dir: &Path, archive: &Path) -> anyhow::Result<()> {
    let mut builder = tar::Builder::new(std::fs::File::create(archive)?);
    builder.append_dir_all(".", dir)?;
    builder.finish()?;
    Ok(())
}

fn no_progress(_: runtime_core::image::import::ImportEvent) {}

fn an_image_layout_directory_is_imported_under_its_annotated_name(env: &Env) -> anyhow::Result<()> {
    env.rt.block_on(async {
        let runtime = Runtime::start(env).await?;
        let (image, layout) = busybox_layout(
            &runtime,
            serde_json::json!({
                "io.containerd.image.name": "example.com/edge/busybox:offline",
                "org.opencontainers.image.ref.name": "offline",
            }),
        )?;
        let imported = runtime.manager.import(&layout, None, &no_progress).await?;
        ensure!(imported.len() == 1 && imported[0].id.as_str() == image.config_digest());
        let listed = runtime
            .status("example.com/edge/busybox:offline")
            .await?
            .context("listed through CRI")?;
        ensure!(
            listed.repo_digests == [format!("example.com/edge/busybox@{}", image.digest())],
            "{:?}",
            listed.repo_digests
        );
        ensure!(
            runtime.manager.layer_dirs(&imported[0])[0].join("bin/sh").exists(),
            "layers are unpacked"
        );
        Ok(())
    })
}

fn an_image_layout_archive_with_a_bare_tag_needs_a_repository(env: &Env) -> anyhow::Result<()> {
    env.rt.block_on(async {
        let runtime = Runtime::start(env).await?;
        let (_, layout) = busybox_layout(
            &runtime,
            serde_json::json!({ "org.opencontainers.image.ref.name": "v1" }),
        )?;
        let archive = runtime.root.path().join("layout.tar");
        tar_directory(&layout, &archive)?;
        let err = runtime
            .manager
            .import(&archive, None, &no_progress)
            .await
            .expect_err("no repository");
        ensure!(err.to_string().contains("name its repository"), "{err}");
        runtime
            .manager
            .import(&archive, Some("example.com/tools/busybox"), &no_progress)
            .await?;
        ensure!(runtime.status("example.com/tools/busybox:v1").await?.is_some());
        ensure!(
            !runtime
                .images_dir()
                .read_dir()?
                .any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("import-"))),
            "staging removed"
        );
        Ok(())
    })
}

fn a_damaged_image_layout_is_refused(env: &Env) -> anyhow::Result<()> {
    env.rt.block_on(async {
        let runtime = Runtime::start(env).await?;
        let (image, layout) = busybox_layout(
            &runtime,
            serde_json::json!({ "io.containerd.image.name": "example.com/damaged:1" }),
        )?;
        let layer = layout
            .join("blobs/sha256")
            .join(image.layers()[0].digest().trim_start_matches("sha256:"));
        let mut bytes = std::fs::read(&layer)?;
        bytes.truncate(bytes.len() / 2);
        std::fs::write(&layer, bytes)?;
        let err = runtime
            .manager
            .import(&layout, None, &no_progress)
            .await
            .expect_err("damaged");
        ensure!(
            err.to_string().contains("bytes"),
            "the size or digest check refuses it: {err}"
        );
        ensure!(runtime.list().await?.is_empty());
        Ok(())
    })
}

fn a_manifest_list_resolves_to_the_image_for_this_platform(env: &Env) -> anyhow::Result<()> {
    env.rt.block_on(async {
        let runtime = Runtime::start(env).await?;
        let id = runtime.pull(&env.multi_platform.reference).await?;
        ensure!(
            id == env.multi_platform.host_image_id(),
            "picked {id}, not the host's image"
        );
        let image = runtime.status(&env.multi_platform.reference).await?.context("pulled")?;
        let index_digest = format!("docker.io/library/busybox-multi@{}", env.multi_platform.index_digest());
        ensure!(
            image.repo_digests == [index_digest],
            "the repo digest names the index: {:?}",
            image.repo_digests
        );
        Ok(())
    })
}

fn a_registry_with_basic_auth_serves_only_with_the_right_credentials(env: &Env) -> anyhow::Result<()> {
    let reference = format!("{}/library/busybox:1.36", env.auth_registry.addr());
    let basic = |password: &str| AuthConfig {
        username: AUTH_USER.into(),
        password: password.into(),
        ..Default::default()
    };
    env.rt.block_on(async {
        let runtime = Runtime::start(env).await?;
        let anonymous = runtime
            .client
            .pull_image(reference.as_str(), None, None)
            .await
            .expect_err("anonymous");
        ensure!(anonymous.code() == Some(tonic::Code::Unauthenticated), "{anonymous}");
        let wrong = runtime
            .client
            .pull_image(reference.as_str(), Some(basic("wrong")), None)
            .await
            .expect_err("wrong");
        ensure!(wrong.code() == Some(tonic::Code::Unauthenticated), "{wrong}");
        ensure!(runtime.list().await?.is_empty());

        runtime
            .client
            .pull_image(reference.as_str(), Some(basic(AUTH_PASSWORD)), None)
            .await?;
        ensure!(runtime.status(&reference).await?.is_some());
        // The same credentials as the docker config's base64 `auth` field.
        runtime.client.remove_image(reference.as_str()).await?;
        let auth = AuthConfig {
            auth: base64::engine::general_purpose::STANDARD.encode(format!("{AUTH_USER}:{AUTH_PASSWORD}")),
            ..Default::default()
        };
        runtime.client.pull_image(reference.as_str(), Some(auth), None).await?;
        ensure!(runtime.status(&reference).await?.is_some());
        Ok(())
    })
}

/// A registry on 127.0.0.1 that never stops sending: `hostile:endless` is a manifest
/// without a length that never ends, `hostile:huge` one announced as 1 TiB (and never
/// ending either), `hostile:config` a small manifest whose config descriptor says 1 GiB;
/// every blob is endless. It counts the blob requests.
struct HostileRegistry {
    addr: SocketAddr,
    blob_requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

/// The manifest `hostile:config` serves.
fn manifest_with_a_1_gib_config() -> Vec<u8> {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": Digest::of(b"a config of 1 GiB").to_string(),
            "size": 1u64 << 30,
        },
        "layers": [],
    })
    .to_string()
    .into_bytes()
}

impl HostileRegistry {
    async fn start() -> anyhow::Result<HostileRegistry> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let blob_requests = Arc::new(AtomicUsize::new(0));
        let counter = blob_requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                // Ends when the client hangs up.
                tokio::spawn(Self::answer(stream, counter.clone()));
            }
        });
        Ok(HostileRegistry {
            addr,
            blob_requests,
            task,
        })
    }

    /// Answers one request (one per connection).
    async fn answer(stream: tokio::net::TcpStream, blob_requests: Arc<AtomicUsize>) -> std::io::Result<()> {
        let mut reader = BufReader::new(stream);
        let mut request_line = String::new();
        reader.read_line(&mut request_line).await?;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).await? == 0 || header.trim().is_empty() {
                break;
            }
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or_default().to_owned();
        let mut stream = reader.into_inner();
        let manifest_type = "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n";
        let endless = "Transfer-Encoding: chunked\r\n";
        let (head, body) = match path.as_str() {
            "/v2/hostile/manifests/endless" => (format!("{manifest_type}{endless}"), None),
            "/v2/hostile/manifests/huge" => (format!("{manifest_type}Content-Length: {}\r\n", 1u64 << 40), None),
            "/v2/hostile/manifests/config" => {
                let manifest = manifest_with_a_1_gib_config();
                (
                    format!("{manifest_type}Content-Length: {}\r\n", manifest.len()),
                    Some(manifest),
                )
            }
            blob if blob.starts_with("/v2/hostile/blobs/") => {
                blob_requests.fetch_add(1, Ordering::SeqCst);
                (endless.to_owned(), None)
            }
            _ => {
                let head = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                return stream.write_all(head.as_bytes()).await;
            }
        };
        stream
            .write_all(format!("HTTP/1.1 200 OK\r\n{head}Connection: close\r\n\r\n").as_bytes())
            .await?;
        if let Some(body) = body {
            return stream.write_all(&body).await;
        }
        // 64 KiB of spaces at a time, for ever: chunked, or plain for the announced length.
        let spaces = vec![b' '; 64 << 10];
        let chunk = if head.contains("chunked") {
            [format!("{:x}\r\n", spaces.len()).as_bytes(), &spaces, b"\r\n"].concat()
        } else {
            spaces
        };
        loop {
            stream.write_all(&chunk).await?;
        }
    }

    fn image(&self, tag: &str) -> String {
        format!("{}/hostile:{tag}", self.addr)
    }
}

impl Drop for HostileRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn a_hostile_registry_cannot_make_a_pull_read_past_the_size_caps(env: &Env) -> anyhow::Result<()> {
    env.rt.block_on(async {
        let hostile = HostileRegistry::start().await?;
        let runtime = Runtime::start(env).await?;
        let config = Digest::of(b"a config of 1 GiB").to_string();
        let cases = [
            ("endless", "/v2/hostile/manifests/endless", MAX_MANIFEST_SIZE),
            ("huge", "/v2/hostile/manifests/huge", MAX_MANIFEST_SIZE),
            ("config", config.as_str(), MAX_CONFIG_SIZE),
        ];
        for (tag, named, limit) in cases {
            let pulled = tokio::time::timeout(Duration::from_secs(60), runtime.pull(&hostile.image(tag)))
                .await
                .with_context(|| format!("PullImage hostile:{tag} kept reading"))?;
            let err = match pulled {
                Ok(id) => anyhow::bail!("PullImage hostile:{tag} succeeded: {id}"),
                Err(err) => err.to_string(),
            };
            ensure!(
                err.contains(named) && err.contains(&format!("limit of {limit} bytes")),
                "hostile:{tag}: the error names {named} and the limit: {err}"
            );
        }
        ensure!(
            hostile.blob_requests.load(Ordering::SeqCst) == 0,
            "the config over the cap was never asked for"
        );
        ensure!(runtime.list().await?.is_empty(), "no image recorded");
        ensure!(
            dir_is_empty(&runtime.images_dir().join("content/ingest"))?,
            "no partial download left"
        );
        Ok(())
    })
}

/// Makes `manifest` the only image of `layout` (as `example.com/capped:1`).
fn list_only(layout: &Path, manifest: &[u8]) -> anyhow::Result<Digest> {
    let digest = Digest::of(manifest);
    std::fs::write(layout.join("blobs/sha256").join(digest.hex()), manifest)?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest.to_string(),
            "size": manifest.len(),
            "annotations": { "io.containerd.image.name": "example.com/capped:1" },
        }],
    });
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index)?)?;
    Ok(digest)
}

/// `bytes` padded with spaces (JSON still) to `size`.
fn padded(mut bytes: Vec<u8>, size: u64) -> anyhow::Result<Vec<u8>> {
    bytes.resize(usize::try_from(size)?, b' ');
    Ok(bytes)
}

fn an_image_layout_over_the_size_caps_is_refused_before_it_is_parsed(env: &Env) -> anyhow::Result<()> {
    env.rt.block_on(async {
        let runtime = Runtime::start(env).await?;
        let (image, layout) = busybox_layout(&runtime, serde_json::json!({}))?;
        let import = || runtime.manager.import(&layout, None, &no_progress);
        let refused = |err: String, named: &str, limit: u64| {
            ensure!(
                err.contains(named) && err.contains(&format!("limit of {limit} bytes")),
                "the error names {named} and the limit: {err}"
            );
            Ok(())
        };

        // A config descriptor over the cap: refused before the config is read.
        let mut manifest: serde_json::Value = serde_json::from_slice(image.manifest())?;
        manifest["config"]["size"] = (MAX_CONFIG_SIZE + 1).into();
        list_only(&layout, &serde_json::to_vec(&manifest)?)?;
        let err = import().await.expect_err("config over the cap").to_string();
        refused(err, image.config_digest(), MAX_CONFIG_SIZE)?;

        // A manifest one byte over the cap.
        let huge = list_only(&layout, &padded(image.manifest().to_vec(), MAX_MANIFEST_SIZE + 1)?)?;
        let err = import().await.expect_err("manifest over the cap").to_string();
        refused(err, huge.hex(), MAX_MANIFEST_SIZE)?;

        // An index.json one byte over the cap, in an archive.
        list_only(&layout, image.manifest())?;
        let index = std::fs::read(layout.join("index.json"))?;
        std::fs::write(layout.join("index.json"), padded(index, MAX_MANIFEST_SIZE + 1)?)?;
        let archive = runtime.root.path().join("capped.tar");
        tar_directory(&layout, &archive)?;
        let err = runtime
            .manager
            .import(&archive, None, &no_progress)
            .await
            .expect_err("index over the cap")
            .to_string();
        refused(err, "index.json", MAX_MANIFEST_SIZE)?;

        ensure!(runtime.list().await?.is_empty(), "no image recorded");
        ensure!(
            !runtime
                .images_dir()
                .join("content/blobs/sha256")
                .join(image.config_digest().trim_start_matches("sha256:"))
                .exists(),
            "the config was not stored"
        );
        ensure!(
            dir_is_empty(&runtime.images_dir().join("content/ingest"))?,
            "no partial copy left"
        );
        Ok(())
    })
}

fn dir_is_empty(dir: &Path) -> anyhow::Result<bool> {
    Ok(std::fs::read_dir(dir)?.next().is_none())
}

fn main() -> ExitCode {
    suite::run(
        setup,
        vec![
            Test::new(
                "pull_by_tag_records_the_image_under_its_id_tag_and_digest",
                pull_by_tag_records_the_image_under_its_id_tag_and_digest,
            ),
            Test::new("pull_by_digest_adds_no_tag", pull_by_digest_adds_no_tag),
            Test::new(
                "short_names_are_normalized_and_pulled_through_the_mirror",
                short_names_are_normalized_and_pulled_through_the_mirror,
            ),
            Test::new(
                "registry_k8s_io_names_are_pulled_through_the_mirror",
                registry_k8s_io_names_are_pulled_through_the_mirror,
            ),
            Test::new(
                "all_tags_of_one_image_are_listed_together",
                all_tags_of_one_image_are_listed_together,
            ),
            Test::new(
                "concurrent_pulls_of_one_image_fetch_each_blob_once",
                concurrent_pulls_of_one_image_fetch_each_blob_once,
            ),
            Test::new(
                "an_unknown_image_has_no_status_and_cannot_be_pulled",
                an_unknown_image_has_no_status_and_cannot_be_pulled,
            ),
            Test::new(
                "removing_an_image_frees_its_blobs_but_keeps_shared_layers",
                removing_an_image_frees_its_blobs_but_keeps_shared_layers,
            ),
            Test::new(
                "removing_by_tag_removes_every_name_of_the_image",
                removing_by_tag_removes_every_name_of_the_image,
            ),
            Test::new(
                "verbose_status_includes_the_image_config",
                verbose_status_includes_the_image_config,
            ),
            Test::new(
                "a_blob_corrupted_in_the_registry_is_rejected_and_nothing_is_recorded",
                a_blob_corrupted_in_the_registry_is_rejected_and_nothing_is_recorded,
            ),
            Test::new(
                "an_image_layout_directory_is_imported_under_its_annotated_name",
                an_image_layout_directory_is_imported_under_its_annotated_name,
            ),
            Test::new(
                "an_image_layout_archive_with_a_bare_tag_needs_a_repository",
                an_image_layout_archive_with_a_bare_tag_needs_a_repository,
            ),
            Test::new("a_damaged_image_layout_is_refused", a_damaged_image_layout_is_refused),
            Test::new(
                "a_manifest_list_resolves_to_the_image_for_this_platform",
                a_manifest_list_resolves_to_the_image_for_this_platform,
            ),
            Test::new(
                "a_registry_with_basic_auth_serves_only_with_the_right_credentials",
                a_registry_with_basic_auth_serves_only_with_the_right_credentials,
            ),
            Test::new(
                "a_hostile_registry_cannot_make_a_pull_read_past_the_size_caps",
                a_hostile_registry_cannot_make_a_pull_read_past_the_size_caps,
            ),
            Test::new(
                "an_image_layout_over_the_size_caps_is_refused_before_it_is_parsed",
                an_image_layout_over_the_size_caps_is_refused_before_it_is_parsed,
            ),
        ],
    )
}
