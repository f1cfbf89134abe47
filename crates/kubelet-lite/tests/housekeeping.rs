//! Housekeeping against a real runtime-core daemon: dead containers beyond the count and
//! those of pods that are gone are removed, an unused image goes when the thresholds say
//! so while an image in use stays, and a log over the size is rotated while its container
//! keeps writing, to the new file.
//!
//! One environment: a local registry with the busybox test images and runtime-core on
//! bridge `kltgc0` (`198.18.52.0/24`), driven through `cri-client`. The tests run in
//! parallel, each with pods of its own; each keeps a container running busybox, so image
//! collection never finds busybox unused. Needs root, runc, the CNI plugins,
//! docker-registry and busybox-static (skipped without them, failed with `CI=true`).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use cri_client::Client;
use cri_client::v1::{ContainerConfig, ContainerMetadata, ContainerState, PodSandboxConfig};
use kubelet_lite::housekeeping::image_gc::FsUsage;
use kubelet_lite::housekeeping::{
    self, ContainerGcPolicy, HousekeepingSettings, ImageGc, ImageGcPolicy, LogRotationPolicy, container_gc, image_gc,
};
use test_harness::pods::{self, eventually};
use test_harness::suite::{self, Test};
use test_harness::{Registry, RuntimeCore, RuntimeCoreOptions, TestImages};

/// The pod network of this binary's daemon.
const BRIDGE: &str = "kltgc0";
const SUBNET: &str = "198.18.52.0/24";

/// The Kubernetes namespace of the test pods.
const NAMESPACE: &str = "housekeeping-test";

/// A container that runs, silently, until it is killed.
const RUNS: &str = "while true; do sleep 1; done";

/// How long a container may take to exit or a log to grow.
const TIMEOUT: Duration = Duration::from_secs(30);

struct Env {
    client: Client,
    rt: tokio::runtime::Runtime,
    images: TestImages,
    log_dir: PathBuf,
    runtime: RuntimeCore,
    _registry: Registry,
}

impl Env {
    fn setup() -> anyhow::Result<Env> {
        test_harness::require_tools(&["docker-registry", "busybox"])?;
        let registry = Registry::start()?;
        let images = test_harness::push_test_images(&registry)?;
        let binary = common::runtime_core_binary()?;
        let runtime = RuntimeCore::start(&binary, &registry, RuntimeCoreOptions::with_network(BRIDGE, SUBNET))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("building a tokio runtime")?;
        let client = rt.block_on(async {
            let client = Client::connect(&runtime.endpoint()).await?;
            client.pull_image(images.busybox.as_str(), None, None).await?;
            anyhow::Ok(client)
        })?;
        Ok(Env {
            client,
            rt,
            images,
            log_dir: runtime.log_dir().to_path_buf(),
            runtime,
            _registry: registry,
        })
    }

    /// Runs a test body; a failure gets the daemon's log tail attached.
    fn block_on<T>(&self, body: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
        self.rt
            .block_on(body)
            .map_err(|err| err.context(format!("runtime-core's log ends with:\n{}", self.runtime.log_tail(30))))
    }

    /// A pod of its own for `test`, running.
    async fn run_pod(&self, test: &str) -> anyhow::Result<(String, PodSandboxConfig)> {
        let config = pods::pod_config(&self.log_dir, NAMESPACE, test)?;
        let id = self.client.run_pod_sandbox(config.clone(), "").await?;
        Ok((id, config))
    }

    /// Container `name` (attempt `attempt`) of the pod running `sh -c script`, started.
    async fn start(
        &self,
        pod: &(String, PodSandboxConfig),
        name: &str,
        attempt: u32,
        script: &str,
    ) -> anyhow::Result<String> {
        let mut config: ContainerConfig = pods::busybox_container(&self.images.busybox, name, script, &pod.1)?;
        config.metadata = Some(ContainerMetadata {
            name: name.to_owned(),
            attempt,
        });
        config.log_path = format!("{name}/{attempt}.log");
        let id = self.client.create_container(&pod.0, config, pod.1.clone()).await?;
        self.client.start_container(&id).await?;
        Ok(id)
    }

    /// Waits until container `id` has exited.
    async fn exited(&self, id: &str) -> anyhow::Result<()> {
        eventually("the container to exit", TIMEOUT, || async {
            let status = self.client.container_status(id, false).await?.status;
            Ok(status
                .filter(|s| s.state == ContainerState::ContainerExited as i32)
                .map(drop))
        })
        .await
    }

    /// The ids of the containers of sandbox `pod` the runtime still has.
    async fn containers_of(&self, pod: &str) -> anyhow::Result<Vec<String>> {
        let all = self.client.list_containers(None).await?;
        Ok(all
            .into_iter()
            .filter(|c| c.pod_sandbox_id == pod)
            .map(|c| c.id)
            .collect())
    }
}

fn main() -> ExitCode {
    suite::run(
        Env::setup,
        vec![
            Test::new(
                "dead_containers_beyond_the_count_are_collected",
                dead_containers_beyond_the_count_are_collected,
            ),
            Test::new(
                "a_pod_that_is_gone_loses_its_dead_containers_and_sandbox",
                a_pod_that_is_gone_loses_its_dead_containers_and_sandbox,
            ),
            Test::new(
                "an_unused_image_goes_over_the_threshold_and_a_used_one_stays",
                an_unused_image_goes_over_the_threshold_and_a_used_one_stays,
            ),
            Test::new(
                "a_log_over_the_size_is_rotated_and_the_container_writes_to_a_new_file",
                a_log_over_the_size_is_rotated_and_the_container_writes_to_a_new_file,
            ),
        ],
    )
}

fn dead_containers_beyond_the_count_are_collected(env: &Env) -> anyhow::Result<()> {
    env.block_on(async {
        let pod = env.run_pod("gc-count").await?;
        let running = env.start(&pod, "keeper", 0, RUNS).await?;
        let mut dead = Vec::new();
        for attempt in 0..3 {
            let id = env.start(&pod, "app", attempt, "exit 1").await?;
            env.exited(&id).await?;
            dead.push(id);
        }
        let policy = ContainerGcPolicy {
            max_per_pod_container: Some(1),
            ..ContainerGcPolicy::default()
        };
        // Another test's pass may collect them first: the outcome is what counts.
        let removed = container_gc::collect(&env.client, &policy, &|_| true).await?;
        ensure!(
            !removed.sandboxes.contains(&pod.0),
            "the pod's ready sandbox was removed"
        );
        let mut left = env.containers_of(&pod.0).await?;
        left.sort();
        let mut expected = vec![running, dead[2].clone()];
        expected.sort();
        ensure!(
            left == expected,
            "left {left:?}, want the running one and the newest dead one {expected:?}"
        );
        env.client.stop_pod_sandbox(&pod.0).await?;
        env.client.remove_pod_sandbox(&pod.0).await?;
        Ok(())
    })
}

fn a_pod_that_is_gone_loses_its_dead_containers_and_sandbox(env: &Env) -> anyhow::Result<()> {
    env.block_on(async {
        let pod = env.run_pod("gc-gone").await?;
        let id = env.start(&pod, "app", 0, "exit 0").await?;
        env.exited(&id).await?;
        // The pod is still wanted: its only dead container stays.
        let uid = pod.1.metadata.as_ref().map(|m| m.uid.clone()).unwrap_or_default();
        container_gc::collect(&env.client, &ContainerGcPolicy::default(), &|_| true).await?;
        ensure!(
            env.containers_of(&pod.0).await? == [id.clone()],
            "the newest dead container went"
        );
        // The pod is gone: its sandbox is stopped, then everything of it goes.
        env.client.stop_pod_sandbox(&pod.0).await?;
        // Other tests run beside this one: the pass may also collect their extra dead
        // containers, so only what belongs to this pod is checked.
        let removed = container_gc::collect(&env.client, &ContainerGcPolicy::default(), &|u| u != uid).await?;
        ensure!(removed.containers.contains(&id), "removed {removed:?}");
        ensure!(removed.sandboxes.contains(&pod.0), "removed {removed:?}");
        let sandboxes = env.client.list_pod_sandbox(None).await?;
        ensure!(
            sandboxes.iter().all(|s| s.id != pod.0),
            "the runtime still lists the sandbox"
        );
        Ok(())
    })
}

fn an_unused_image_goes_over_the_threshold_and_a_used_one_stays(env: &Env) -> anyhow::Result<()> {
    env.block_on(async {
        // busybox is in use for the whole test.
        let pod = env.run_pod("image-gc").await?;
        env.start(&pod, "user", 0, RUNS).await?;
        let unused = env.client.pull_image(env.images.nonroot.as_str(), None, None).await?;
        // Below the high threshold nothing goes. The threshold is set above this disk's
        // usage (counted from the available bytes, as the kubelet does), which on a shared
        // disk may already pass the default 85%.
        let usage = FsUsage::of(env.runtime.root_dir())?;
        let used_percent = 100 - usage.available * 100 / usage.capacity.max(1);
        let roomy = ImageGcPolicy {
            high_threshold_percent: u8::try_from(used_percent + 5).unwrap_or(100).min(100),
            low_threshold_percent: 0,
            min_age: Duration::ZERO,
        };
        ensure!(
            image_gc::bytes_to_free(usage, &roomy).is_none(),
            "{used_percent}% used is over {roomy:?}"
        );
        let removed = ImageGc::new(roomy).collect(&env.client).await?;
        ensure!(
            removed.is_empty(),
            "at {used_percent}% used, below the threshold, the collection removed {removed:?}"
        );
        // Thresholds forced to 0%: every unused image goes.
        let mut forced = ImageGc::new(ImageGcPolicy {
            high_threshold_percent: 0,
            low_threshold_percent: 0,
            min_age: Duration::ZERO,
        });
        let removed = forced.collect(&env.client).await?;
        ensure!(
            removed.contains(&unused),
            "the unused image {unused} stayed: removed {removed:?}"
        );
        let gone = env.client.image_status(unused.as_str(), false).await?;
        ensure!(gone.image.is_none(), "ImageStatus still finds {unused}");
        let kept = env.client.image_status(env.images.busybox.as_str(), false).await?;
        ensure!(kept.image.is_some(), "busybox, in use, was removed");
        env.client.stop_pod_sandbox(&pod.0).await?;
        env.client.remove_pod_sandbox(&pod.0).await?;
        Ok(())
    })
}

/// The files of a container's log: the current one and its rotated ones.
fn log_files(log: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let dir = log.parent().context("the log has no directory")?;
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.to_string_lossy().starts_with(&*log.to_string_lossy()))
        .collect();
    files.sort();
    Ok(files)
}

/// The number the last `line N` of a CRI log file holds.
fn last_line_number(text: &str) -> Option<u64> {
    text.lines()
        .rev()
        .find_map(|line| line.split("line ").nth(1)?.split_whitespace().next()?.parse().ok())
}

fn a_log_over_the_size_is_rotated_and_the_container_writes_to_a_new_file(env: &Env) -> anyhow::Result<()> {
    let policy = LogRotationPolicy {
        max_size: 4096,
        max_files: 3,
    };
    let (pod, log) = env.block_on(async {
        let pod = env.run_pod("log-rotation").await?;
        let script = "i=0; while true; do i=$((i+1)); echo \"line $i of a chatty container\"; usleep 20000; done";
        env.start(&pod, "chatty", 0, script).await?;
        let log = pods::container_log(&pod.1, "chatty");
        Ok((pod, log.with_file_name("0.log")))
    })?;
    let task = {
        let _runtime = env.rt.enter();
        housekeeping::spawn(
            env.client.clone(),
            HousekeepingSettings {
                log_rotation: policy.clone(),
                log_rotation_period: Duration::from_millis(500),
                gc_period: Duration::from_secs(3600),
                pod_exists: Some(Arc::new(|_: &str| true)),
                ..HousekeepingSettings::default()
            },
        )
    };
    let result = env.block_on(async {
        // Rotated: a file `0.log.<timestamp>` appears.
        let rotated = eventually("the log to be rotated", TIMEOUT, || async {
            Ok(log_files(&log)?.into_iter().find(|path| {
                let name = path.to_string_lossy();
                *path != log && !name.ends_with(".gz") && !name.ends_with(".tmp")
            }))
        })
        .await?;
        let rotated_text = fs::read_to_string(&rotated).with_context(|| format!("reading {}", rotated.display()))?;
        let last_rotated = last_line_number(&rotated_text).context("the rotated log holds no line")?;
        // The container goes on, in the new file: later lines, and the rotated one is done.
        let current = eventually("the container to write to the new log", TIMEOUT, || async {
            let text = fs::read_to_string(&log).unwrap_or_default();
            Ok(last_line_number(&text).filter(|n| *n > last_rotated + 10).map(|_| text))
        })
        .await?;
        ensure!(
            !current.contains(&format!("line {last_rotated} ")),
            "the new log repeats the rotated one's lines"
        );
        // Rotated again and again: older files are gzipped, at most 3 files in all.
        eventually("a rotated log to be compressed", TIMEOUT, || async {
            Ok(log_files(&log)?
                .into_iter()
                .find(|p| p.to_string_lossy().ends_with(".gz")))
        })
        .await?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let files = log_files(&log)?;
        ensure!(
            files.len() <= policy.max_files,
            "more than {} files hold the log: {files:?}",
            policy.max_files
        );
        Ok(())
    });
    task.abort();
    env.block_on(async {
        env.client.stop_pod_sandbox(&pod.0).await?;
        env.client.remove_pod_sandbox(&pod.0).await?;
        Ok(())
    })?;
    result
}
