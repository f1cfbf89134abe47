//! Cold pulls of a large image: runtime-core's CRI ImageService against containerd 1.6's,
//! both called over CRI on a unix socket, both pulling from one local registry through
//! the same `hosts.toml` mirrors.
//!
//! ```text
//! cargo bench -p runtime-core --bench image_pull [-- --samples N] [--warmup N] [--only NAME]
//! ```
//!
//! One sample is a `PullImage` of the harness's large image (64 MiB of incompressible
//! bytes in 4 gzip layers, plus the busybox layer), timed from request to response; both
//! runtimes answer once every layer is fetched, verified and unpacked. Then `RemoveImage`,
//! and a check that the runtime's content and snapshot directories are back to what they
//! held before, so the next pull fetches and unpacks everything again. The runtimes
//! alternate, and which goes first alternates too, so page-cache and writeback effects
//! fall on both alike; `sync` runs before each sample so that one sample's writeback does
//! not land in the next. Warm-up rounds (not counted) also check that each runtime's
//! `ImageFsInfo` sees the image come and go.
//!
//! runtime-core runs in this process (its ImageService on a tonic server over
//! `cri_api::unix::bind`); containerd is the harness's private daemon.
//!
//! Needs root, docker-registry, containerd, runc and a static busybox. Without them it
//! says what is missing and exits 0 (1 in CI, where they must be there).

mod common;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use common::{Args, CONTAINERD, RUNTIME_CORE, Summary, mb, verdict};
use cri_api::client::ImageServiceClient;
use cri_api::server::ImageServiceServer;
use cri_api::v1;
use runtime_core::image::hosts::RegistryHosts;
use runtime_core::image::manager::ImageManager;
use runtime_core::image::registry::RegistryClient;
use runtime_core::service::image::ImageServiceImpl;
use runtime_core::store::Store;
use test_harness::scratch::ScratchDir;
use test_harness::{Containerd, ContainerdOptions, LargeImage, Registry, cri, mirrors};
use tonic::transport::Channel;

/// How long one CRI call may take.
const CALL: Duration = Duration::from_secs(300);
/// How long `ImageFsInfo` may lag behind a pull or a removal (containerd refreshes its
/// snapshot sizes every 10 s).
const FS_INFO_LAG: Duration = Duration::from_secs(30);
/// What a runtime may keep on disk after removing the image (directories' own blocks).
const DISK_SLACK: u64 = 1 << 20;
/// containerd's bridge and subnet: its own, so the benchmark never waits for a test suite
/// holding the default network (no pod runs; the network is only configured).
const CONTAINERD_BRIDGE: &str = "kltbench0";
const CONTAINERD_SUBNET: &str = "198.18.200.0/24";
/// runtime-core's median over containerd's must not exceed this.
const TARGET_RATIO: f64 = 1.0;

/// Samples per runtime unless `--samples` says otherwise.
const DEFAULT_SAMPLES: usize = 5;

fn main() -> ExitCode {
    common::main("image_pull", DEFAULT_SAMPLES, run)
}

/// One runtime under test.
struct Peer {
    name: &'static str,
    client: ImageServiceClient<Channel>,
    /// Where it keeps blobs and unpacked layers: back to `baseline` bytes after a removal.
    dirs: Vec<PathBuf>,
    baseline: u64,
    seconds: Vec<f64>,
}

fn run(args: &Args) -> anyhow::Result<()> {
    test_harness::require_root()?;
    test_harness::require_tools(&["docker-registry", "containerd", "runc", "busybox"])?;
    let registry = Registry::start()?;
    let images = test_harness::push_test_images(&registry)?;
    let large = test_harness::push_large_image(&registry)?;
    let options = ContainerdOptions::with_network(CONTAINERD_BRIDGE, CONTAINERD_SUBNET);
    let containerd = Containerd::start_with(&registry, &images, options)?;
    let runtime_core = RuntimeCore::start(&registry)?;

    let mut peers = Vec::new();
    if args.only.as_deref() != Some(CONTAINERD) {
        let client = runtime_core.rt.block_on(runtime_core.client())?;
        peers.push(Peer::new(RUNTIME_CORE, client, vec![runtime_core.images_dir()]));
    }
    if args.only.as_deref() != Some(RUNTIME_CORE) {
        let root = containerd.root_dir();
        let dirs = vec![
            root.join("io.containerd.content.v1.content"),
            root.join("io.containerd.snapshotter.v1.overlayfs"),
        ];
        peers.push(Peer::new(CONTAINERD, containerd.image_client(), dirs));
    }

    let result = runtime_core.rt.block_on(measure(args, &large, &mut peers));
    drop(runtime_core);
    drop(containerd);
    drop(registry);
    result?;
    print!("{}", report(&large, args, &peers));
    Ok(())
}

async fn measure(args: &Args, large: &LargeImage, peers: &mut [Peer]) -> anyhow::Result<()> {
    for peer in peers.iter_mut() {
        peer.baseline = disk_usage(&peer.dirs)?;
        for round in 0..args.warmup {
            peer.warm_up(large, round == 0)
                .await
                .with_context(|| format!("warming up {}", peer.name))?;
        }
    }
    for sample in 0..args.samples {
        // containerd first in even samples, runtime-core first in odd ones.
        for index in common::turns(sample, peers.len()) {
            let peer = &mut peers[index];
            let seconds = peer
                .cold_pull(large)
                .await
                .with_context(|| format!("{} sample {sample}", peer.name))?;
            test_harness::note(format!("sample {sample}: {} pulled in {seconds:.3} s", peer.name));
            peer.seconds.push(seconds);
        }
    }
    Ok(())
}

impl Peer {
    fn new(name: &'static str, client: ImageServiceClient<Channel>, dirs: Vec<PathBuf>) -> Peer {
        Peer {
            name,
            client,
            dirs,
            baseline: 0,
            seconds: Vec::new(),
        }
    }

    /// Pulls, checks the image, removes it and checks the disk is back to the baseline;
    /// returns the pull's duration in seconds.
    async fn cold_pull(&mut self, large: &LargeImage) -> anyhow::Result<f64> {
        sync()?;
        let started = Instant::now();
        let image_ref = self.pull(&large.reference).await?;
        let seconds = started.elapsed().as_secs_f64();
        let expected = large.image.config_digest();
        ensure!(image_ref == expected, "pulled {image_ref}, expected {expected}");
        let used = disk_usage(&self.dirs)?;
        ensure!(
            used >= self.baseline + large.download_bytes(),
            "only {used} bytes on disk after the pull"
        );
        self.remove(&large.reference).await?;
        self.ensure_freed().await?;
        Ok(seconds)
    }

    /// A cold pull whose time is not counted; the first one also checks that
    /// `ImageFsInfo` sees the image come and go.
    async fn warm_up(&mut self, large: &LargeImage, check_fs_info: bool) -> anyhow::Result<()> {
        if !check_fs_info {
            return self.cold_pull(large).await.map(drop);
        }
        let before = self.fs_info_used().await?;
        self.pull(&large.reference).await?;
        let (pulled, after_pull) = self
            .wait_fs_info(|used| used >= before + large.download_bytes())
            .await?;
        self.remove(&large.reference).await?;
        self.ensure_freed().await?;
        let (removed, after_remove) = self.wait_fs_info(|used| used <= before + DISK_SLACK).await?;
        test_harness::note(format!(
            "{}: ImageFsInfo used {:.1} MB before the pull, {:.1} MB after it (seen in {after_pull:.1?}), \
             {:.1} MB after RemoveImage (seen in {after_remove:.1?})",
            self.name,
            mb(before),
            mb(pulled),
            mb(removed),
        ));
        Ok(())
    }

    async fn pull(&mut self, reference: &str) -> anyhow::Result<String> {
        let request = v1::PullImageRequest {
            image: Some(spec(reference)),
            ..Default::default()
        };
        Ok(cri::within(CALL, self.client.pull_image(request))
            .await
            .with_context(|| format!("pulling {reference}"))?
            .image_ref)
    }

    async fn remove(&mut self, reference: &str) -> anyhow::Result<()> {
        let request = v1::RemoveImageRequest {
            image: Some(spec(reference)),
        };
        cri::within(CALL, self.client.remove_image(request))
            .await
            .with_context(|| format!("removing {reference}"))?;
        Ok(())
    }

    /// Fails unless the image is gone from the list and its bytes from the disk.
    async fn ensure_freed(&mut self) -> anyhow::Result<()> {
        let listed = cri::within(CALL, self.client.list_images(v1::ListImagesRequest::default()))
            .await?
            .images;
        ensure!(
            listed.is_empty(),
            "images left after RemoveImage: {:?}",
            listed.iter().map(|i| &i.id).collect::<Vec<_>>()
        );
        let used = disk_usage(&self.dirs)?;
        ensure!(
            used <= self.baseline + DISK_SLACK,
            "{} bytes left in {:?} after RemoveImage (baseline {})",
            used,
            self.dirs,
            self.baseline
        );
        Ok(())
    }

    async fn fs_info_used(&mut self) -> anyhow::Result<u64> {
        let info = cri::within(CALL, self.client.image_fs_info(v1::ImageFsInfoRequest::default())).await?;
        Ok(info
            .image_filesystems
            .iter()
            .filter_map(|fs| fs.used_bytes.as_ref())
            .map(|b| b.value)
            .sum())
    }

    /// Polls `ImageFsInfo` until `done` holds for its used bytes; returns them and how long
    /// it took.
    async fn wait_fs_info(&mut self, done: impl Fn(u64) -> bool) -> anyhow::Result<(u64, Duration)> {
        let started = Instant::now();
        loop {
            let used = self.fs_info_used().await?;
            if done(used) {
                return Ok((used, started.elapsed()));
            }
            if started.elapsed() > FS_INFO_LAG {
                bail!(
                    "{}: ImageFsInfo still says {used} bytes after {FS_INFO_LAG:?}",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// runtime-core's ImageService on its own socket, root and mirrors, served by a tokio
/// runtime of its own.
struct RuntimeCore {
    // Field order is drop order: the server stops before its directory goes.
    rt: tokio::runtime::Runtime,
    socket: PathBuf,
    dir: ScratchDir,
}

impl RuntimeCore {
    fn start(registry: &Registry) -> anyhow::Result<RuntimeCore> {
        let dir = ScratchDir::create("bench-runtime-core")?;
        let certs_d = dir.path().join("certs.d");
        mirrors::write_test_mirrors(&certs_d, &registry.url())?;
        let hosts = RegistryHosts::load(&certs_d)?;
        let store = Arc::new(Store::open(&dir.path().join("metadata.redb"))?);
        let manager = ImageManager::open(&dir.path().join("images"), RegistryClient::new(hosts), store)?;
        let service = ImageServiceServer::new(ImageServiceImpl::new(Arc::new(manager)));
        let socket = dir.path().join("cri.sock");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("runtime-core")
            .build()?;
        let incoming = {
            let _entered = rt.enter();
            cri_api::unix::bind(&socket)?
        };
        rt.spawn(async move {
            if let Err(err) = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await
            {
                test_harness::note(format!("runtime-core server failed: {err}"));
            }
        });
        Ok(RuntimeCore { rt, socket, dir })
    }

    async fn client(&self) -> anyhow::Result<ImageServiceClient<Channel>> {
        Ok(ImageServiceClient::new(cri::connect_unix(&self.socket).await?))
    }

    fn images_dir(&self) -> PathBuf {
        self.dir.path().join("images")
    }
}

fn spec(reference: &str) -> v1::ImageSpec {
    v1::ImageSpec {
        image: reference.to_string(),
        ..Default::default()
    }
}

/// Flushes dirty pages, so the previous sample's writes are not written back during this one.
fn sync() -> anyhow::Result<()> {
    let status = std::process::Command::new("sync").status().context("running sync")?;
    ensure!(status.success(), "sync failed");
    Ok(())
}

/// Allocated bytes under `dirs` (hard links counted once), not following symlinks.
fn disk_usage(dirs: &[PathBuf]) -> anyhow::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut pending: Vec<PathBuf> = dirs.iter().filter(|d| d.exists()).cloned().collect();
    while let Some(path) = pending.pop() {
        let metadata = match std::fs::symlink_metadata(&path) {
            Ok(metadata) => metadata,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue, // removed meanwhile
            Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
        };
        if seen.insert((metadata.dev(), metadata.ino())) {
            total += metadata.blocks() * 512;
        }
        if metadata.is_dir() {
            for entry in std::fs::read_dir(&path).with_context(|| format!("listing {}", path.display()))? {
                pending.push(entry?.path());
            }
        }
    }
    Ok(total)
}

/// The table: per runtime min/median/max seconds and MB/s at the median, then the ratio
/// of the medians and the target.
fn report(large: &LargeImage, args: &Args, peers: &[Peer]) -> String {
    let bytes = large.download_bytes();
    let mut out = format!(
        "\nimage_pull: {} ({:.1} MB in {} layers), {} cold pulls per runtime after {} warm-up, alternating\n\n",
        large.reference,
        mb(bytes),
        large.image.layers().len(),
        args.samples,
        args.warmup
    );
    out.push_str(&format!(
        "{:<14} {:>8} {:>11} {:>8} {:>15}\n",
        "runtime", "min (s)", "median (s)", "max (s)", "MB/s (median)"
    ));
    for peer in peers {
        let Some(Summary { min, median, max, .. }) = Summary::of(&peer.seconds) else {
            continue;
        };
        out.push_str(&format!(
            "{:<14} {min:>8.3} {median:>11.3} {max:>8.3} {:>15.1}\n",
            peer.name,
            mb(bytes) / median
        ));
    }
    let median_of = |name| {
        peers
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| Summary::of(&p.seconds))
            .map(|s| s.median)
    };
    out.push('\n');
    if let (Some(ours), Some(theirs)) = (median_of(RUNTIME_CORE), median_of(CONTAINERD)) {
        let ratio = ours / theirs;
        out.push_str(&format!("ratio runtime-core/containerd (medians): {ratio:.2}\n"));
        out.push_str(&format!(
            "target: runtime-core no slower than containerd (ratio <= {TARGET_RATIO:.2}): {}\n",
            verdict(ratio <= TARGET_RATIO)
        ));
    } else {
        out.push_str(&format!(
            "target: runtime-core no slower than containerd (ratio <= {TARGET_RATIO:.2}): not measured\n"
        ));
    }
    out
}
