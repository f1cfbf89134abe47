//! Smoke test of the harness itself: the registry serves the test images (and, with
//! Basic authentication, only to its user), the multi-platform and large images are
//! served as built, containerd answers CRI, pulls through the mirrors (picking this
//! machine's entry of an index), runs pods on its bridge, survives a restart, and an
//! environment that is dropped leaves nothing behind.

use std::collections::HashMap;
use std::process::{Command, ExitCode};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use cri_api::v1;
use test_harness::distribution::RegistryClient;
use test_harness::image_builder::{Entry, Image, Layer, MEDIA_TYPE_MANIFEST, go_arch, sha256_digest};
use test_harness::image_index::MEDIA_TYPE_INDEX;
use test_harness::suite::{self, Test};
use test_harness::{
    Containerd, ContainerdOptions, Registry, RegistryOptions, TestImages, cri, host, process, test_images,
};

/// The shared environment. Tests hold `containerd` for reading; a test that restarts it
/// holds it for writing, so no other test talks to it meanwhile.
struct Env {
    containerd: RwLock<Containerd>,
    images: TestImages,
    registry: Registry,
}

fn setup() -> anyhow::Result<Env> {
    let registry = Registry::start()?;
    let images = test_harness::push_test_images(&registry)?;
    let containerd = Containerd::start(&registry, &images)?;
    Ok(Env {
        containerd: RwLock::new(containerd),
        images,
        registry,
    })
}

fn main() -> ExitCode {
    suite::run(
        setup,
        vec![
            Test::new(
                "registry_serves_v2_and_the_test_images",
                registry_serves_v2_and_the_test_images,
            ),
            Test::new(
                "authenticated_registry_serves_only_its_user",
                authenticated_registry_serves_only_its_user,
            ),
            Test::new(
                "multi_platform_index_lists_decoys_before_this_machine",
                multi_platform_index_lists_decoys_before_this_machine,
            ),
            Test::new("large_image_is_served_as_built", large_image_is_served_as_built),
            Test::new("containerd_answers_version", containerd_answers_version),
            Test::new(
                "containerd_pulls_this_machines_entry_of_an_index",
                containerd_pulls_this_machines_entry_of_an_index,
            ),
            Test::new(
                "containerd_pulls_from_an_authenticated_registry_with_credentials",
                containerd_pulls_from_an_authenticated_registry_with_credentials,
            ),
            Test::new(
                "containerd_pulls_the_test_images_through_the_mirrors",
                containerd_pulls_through_the_mirrors,
            ),
            Test::new(
                "pods_get_addresses_and_pause_stops_on_sigterm",
                pods_get_addresses_and_pause_stops_on_sigterm,
            ),
            Test::new(
                "restart_keeps_pods_and_cri_answers_again",
                restart_keeps_pods_and_cri_answers_again,
            ),
            Test::new(
                "a_dropped_environment_leaves_nothing_behind",
                a_dropped_environment_leaves_nothing_behind,
            ),
        ],
    )
}

fn containerd(env: &Env) -> std::sync::RwLockReadGuard<'_, Containerd> {
    env.containerd.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

const CALL: Duration = Duration::from_secs(60);

fn registry_serves_v2_and_the_test_images(env: &Env) -> anyhow::Result<()> {
    let client: RegistryClient = env.registry.client();
    client.ping()?;
    let expected = [
        ("library/busybox", "1.36", test_images::busybox_image()?),
        ("library/busybox", "latest", test_images::busybox_image()?),
        ("pause", "3.9", test_images::pause_image()?),
        ("kubelet-lite-test/nonroot", "1", test_images::nonroot_image()?),
    ];
    for (repository, tag, image) in expected {
        let manifest = client
            .manifest(repository, tag)?
            .with_context(|| format!("{repository}:{tag} is not served"))?;
        ensure!(
            manifest.media_type == MEDIA_TYPE_MANIFEST,
            "{repository}:{tag} served as {}",
            manifest.media_type
        );
        ensure!(
            sha256_digest(&manifest.body) == image.digest(),
            "{repository}:{tag} is not the image built"
        );
        ensure!(
            manifest.digest.as_deref() == Some(image.digest()),
            "Docker-Content-Digest of {repository}:{tag}"
        );
        let config = client
            .blob(repository, image.config_digest())?
            .context("config blob missing")?;
        let config: serde_json::Value = serde_json::from_slice(&config)?;
        ensure!(config["architecture"] == go_arch() && config["os"] == "linux");
        for layer in image.layers() {
            ensure!(
                client.has_blob(repository, layer.digest())?,
                "layer {} of {repository} missing",
                layer.digest()
            );
        }
    }
    let direct = test_harness::direct_references(&env.registry);
    ensure!(direct.busybox == format!("{}/library/busybox:1.36", env.registry.addr()));
    ensure!(client.manifest("library/busybox", "no-such-tag")?.is_none());
    Ok(())
}

fn authenticated_registry_serves_only_its_user(_: &Env) -> anyhow::Result<()> {
    let registry = Registry::start_with(RegistryOptions::with_basic_auth("tester", "s3cret"))?;
    ensure!(registry.credentials() == Some(("tester", "s3cret")));
    let anonymous = registry.anonymous_client();
    ensure!(
        anonymous.v2_status()? == 401,
        "anonymous GET /v2/ got {}",
        anonymous.v2_status()?
    );
    let wrong = RegistryClient::new(registry.addr()).with_basic_auth("tester", "wrong");
    ensure!(wrong.v2_status()? == 401, "a wrong password got in");
    let client = registry.client();
    ensure!(client.v2_status()? == 200, "the user was refused");

    let busybox = test_images::busybox_image()?;
    ensure!(
        anonymous.push_image("library/busybox", &["1.36"], &busybox).is_err(),
        "an anonymous push was accepted"
    );
    client.push_image("library/busybox", &["1.36"], &busybox)?;
    let manifest = client
        .manifest("library/busybox", "1.36")?
        .context("the pushed image is not served to its user")?;
    ensure!(manifest.digest.as_deref() == Some(busybox.digest()));
    ensure!(
        anonymous.manifest("library/busybox", "1.36").is_err(),
        "the manifest was served anonymously"
    );
    Ok(())
}

fn multi_platform_index_lists_decoys_before_this_machine(env: &Env) -> anyhow::Result<()> {
    let multi = test_harness::push_multi_platform_image(&env.registry)?;
    ensure!(multi.reference == "docker.io/library/busybox-multi:1");
    let client = env.registry.client();
    let served = client
        .manifest("library/busybox-multi", "1")?
        .context("the index is not served")?;
    ensure!(served.media_type == MEDIA_TYPE_INDEX, "served as {}", served.media_type);
    ensure!(served.digest.as_deref() == Some(multi.index_digest()));
    let index: serde_json::Value = serde_json::from_slice(&served.body)?;
    let entries = index["manifests"].as_array().context("no manifests")?;
    ensure!(entries.len() >= 3, "{} entries", entries.len());
    let last = entries.last().context("empty index")?;
    ensure!(last["platform"]["architecture"] == go_arch() && last["platform"]["os"] == "linux");
    ensure!(last["digest"] == test_images::busybox_image()?.digest());
    ensure!(multi.host_image_id() == test_images::busybox_image()?.config_digest());
    for entry in entries {
        let digest = entry["digest"].as_str().context("entry without digest")?;
        ensure!(
            client.manifest("library/busybox-multi", digest)?.is_some(),
            "manifest {digest} of the index is not served"
        );
    }
    Ok(())
}

fn large_image_is_served_as_built(env: &Env) -> anyhow::Result<()> {
    let started = Instant::now();
    let large = test_harness::push_large_image(&env.registry)?;
    test_harness::note(format!(
        "large image ready in {:.2?}: {} bytes to download",
        started.elapsed(),
        large.download_bytes()
    ));
    ensure!(large.image.layers().len() == large.spec.layers + 1);
    ensure!(large.download_bytes() >= 50_000_000);
    ensure!(large.image.layers()[0] == test_images::busybox_layer()?);
    let client = env.registry.client();
    let tag = large.spec.tag();
    let served = client
        .manifest("kubelet-lite-test/large", &tag)?
        .context("the large image is not served")?;
    ensure!(served.digest.as_deref() == Some(large.image.digest()));
    for layer in large.image.layers() {
        ensure!(client.has_blob("kubelet-lite-test/large", layer.digest())?);
    }
    // A second build comes from the cache and is the same image.
    ensure!(test_harness::large_image::large_image(&large.spec)? == large.image);
    Ok(())
}

fn containerd_answers_version(env: &Env) -> anyhow::Result<()> {
    let containerd = containerd(env);
    let version = containerd.block_on(cri::version(containerd.channel(), CALL))?;
    ensure!(
        version.runtime_name == "containerd",
        "runtime_name {:?}",
        version.runtime_name
    );
    ensure!(
        version.runtime_api_version == "v1",
        "runtime_api_version {:?}",
        version.runtime_api_version
    );
    ensure!(containerd.endpoint().starts_with("unix:///") && containerd.socket().exists());
    ensure!(containerd.pod_cidr() == "198.18.0.0/24");
    Ok(())
}

fn containerd_pulls_through_the_mirrors(env: &Env) -> anyhow::Result<()> {
    let containerd = containerd(env);
    let pulls = [
        (&env.images.pause, test_images::pause_image()?),
        (&env.images.busybox, test_images::busybox_image()?),
        (&env.images.nonroot, test_images::nonroot_image()?),
    ];
    for (reference, built) in pulls {
        let started = Instant::now();
        let image_ref = containerd.block_on(pull(&containerd, reference))?;
        ensure!(
            image_ref == built.config_digest(),
            "{reference} pulled as {image_ref}, built as {}",
            built.config_digest()
        );
        test_harness::note(format!("pulled {reference} in {:.2?}", started.elapsed()));
        let mut images = containerd.image_client();
        let spec = Some(v1::ImageSpec {
            image: reference.clone(),
            ..Default::default()
        });
        let status = containerd.block_on(cri::within(
            CALL,
            images.image_status(v1::ImageStatusRequest {
                image: spec,
                verbose: false,
            }),
        ))?;
        let image = status
            .image
            .with_context(|| format!("{reference} not known after the pull"))?;
        ensure!(image.repo_tags.contains(reference), "repo tags {:?}", image.repo_tags);
    }
    Ok(())
}

fn containerd_pulls_this_machines_entry_of_an_index(env: &Env) -> anyhow::Result<()> {
    let multi = test_harness::push_multi_platform_image(&env.registry)?;
    let containerd = containerd(env);
    let image_ref = containerd.block_on(pull(&containerd, &multi.reference))?;
    ensure!(
        image_ref == multi.host_image_id(),
        "pulled {image_ref}, this machine's entry is {}",
        multi.host_image_id()
    );
    Ok(())
}

fn containerd_pulls_from_an_authenticated_registry_with_credentials(env: &Env) -> anyhow::Result<()> {
    let registry = Registry::start_with(RegistryOptions::with_basic_auth("puller", "pa55"))?;
    // An image of its own: removing it must not take the shared test images away from
    // tests running meanwhile (containerd removes every name of an image id).
    let private = Layer::from_entries(&[
        Entry::dir("etc", 0o755),
        Entry::file("etc/private", 0o644, "only for puller\n"),
    ])?;
    let image = Image::new(
        vec![test_images::busybox_layer()?, private],
        &test_images::busybox_config(),
    );
    registry.client().push_image("private/busybox", &["1"], &image)?;
    // Not mirrored: containerd reaches a loopback registry over plain HTTP by default.
    let reference = format!("{}/private/busybox:1", registry.addr());
    let containerd = containerd(env);
    containerd.block_on(async {
        let mut images = containerd.image_client();
        let request = |auth: Option<v1::AuthConfig>| v1::PullImageRequest {
            image: Some(v1::ImageSpec {
                image: reference.clone(),
                ..Default::default()
            }),
            auth,
            ..Default::default()
        };
        let anonymous = within(images.pull_image(request(None))).await;
        ensure!(anonymous.is_err(), "an anonymous pull succeeded");
        let auth = v1::AuthConfig {
            username: "puller".into(),
            password: "pa55".into(),
            ..Default::default()
        };
        let pulled = within(images.pull_image(request(Some(auth))))
            .await
            .context("pulling with credentials")?;
        ensure!(pulled.image_ref == image.config_digest());
        within(images.remove_image(v1::RemoveImageRequest {
            image: Some(v1::ImageSpec {
                image: reference.clone(),
                ..Default::default()
            }),
        }))
        .await?;
        Ok(())
    })
}

fn pods_get_addresses_and_pause_stops_on_sigterm(env: &Env) -> anyhow::Result<()> {
    let containerd = containerd(env);
    containerd.block_on(async {
        for reference in [&env.images.pause, &env.images.nonroot] {
            pull(&containerd, reference).await?;
        }
        let pod = PodHandle::run(&containerd, "smoke-pods", vec![]).await?;
        let result = async {
            let ip = pod.ip().await?;
            ensure!(
                ip.starts_with("198.18.0."),
                "pod IP {ip} is not in {}",
                containerd.pod_cidr()
            );

            // The pause image as an ordinary container: it must stop on SIGTERM, exit 0.
            let pause = pod.create_container("pause", &env.images.pause, vec![]).await?;
            pod.start_container(&pause).await?;
            let started = Instant::now();
            within(pod.runtime().stop_container(v1::StopContainerRequest {
                container_id: pause.clone(),
                timeout: 20,
            }))
            .await?;
            let took = started.elapsed();
            let status = pod.container_status(&pause).await?;
            ensure!(took < Duration::from_secs(5), "pause took {took:?} to stop on SIGTERM");
            ensure!(
                status.exit_code == 0,
                "pause exited with {}: {}",
                status.exit_code,
                status.reason
            );

            // The nonroot image runs as the user /etc/passwd names.
            let whoami = pod
                .create_container(
                    "whoami",
                    &env.images.nonroot,
                    vec!["sh", "-c", "id -u; id -un; test -w /tmp && echo tmp-writable"],
                )
                .await?;
            pod.start_container(&whoami).await?;
            let status = pod.wait_exited(&whoami, Duration::from_secs(20)).await?;
            ensure!(status.exit_code == 0, "whoami exited with {}", status.exit_code);
            let log =
                std::fs::read_to_string(&status.log_path).with_context(|| format!("reading {}", status.log_path))?;
            let lines: Vec<&str> = log.lines().filter_map(|line| line.splitn(4, ' ').nth(3)).collect();
            ensure!(lines == ["65532", "nonroot", "tmp-writable"], "container log: {log:?}");
            Ok(())
        }
        .await;
        pod.remove().await?;
        result
    })
}

fn restart_keeps_pods_and_cri_answers_again(env: &Env) -> anyhow::Result<()> {
    let mut containerd = env
        .containerd
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let pod_id = containerd.block_on(async {
        pull(&containerd, &env.images.pause).await?;
        let pod = PodHandle::run(&containerd, "smoke-restart", vec![]).await?;
        anyhow::Ok(pod.id.clone())
    })?;
    let old_pid = containerd.pid().context("containerd is not running")?;
    let started = Instant::now();
    containerd.restart()?;
    test_harness::note(format!("restart took {:.2?}", started.elapsed()));
    ensure!(
        containerd.pid() != Some(old_pid) && !process::is_alive(old_pid),
        "the old daemon still runs"
    );
    let version = containerd.block_on(cri::version(containerd.channel(), CALL))?;
    ensure!(version.runtime_name == "containerd");
    containerd.block_on(async {
        let mut runtime = containerd.runtime_client();
        let status = within(runtime.pod_sandbox_status(v1::PodSandboxStatusRequest {
            pod_sandbox_id: pod_id.clone(),
            verbose: false,
        }))
        .await?;
        let state = status.status.map(|s| s.state).unwrap_or(-1);
        ensure!(
            state == v1::PodSandboxState::SandboxReady as i32,
            "pod state after restart: {state}"
        );
        within(runtime.stop_pod_sandbox(v1::StopPodSandboxRequest {
            pod_sandbox_id: pod_id.clone(),
        }))
        .await?;
        within(runtime.remove_pod_sandbox(v1::RemovePodSandboxRequest { pod_sandbox_id: pod_id })).await?;
        Ok(())
    })
}

fn a_dropped_environment_leaves_nothing_behind(env: &Env) -> anyhow::Result<()> {
    const BRIDGE: &str = "kltctr3";
    let second = Containerd::start_with(
        &env.registry,
        &env.images,
        ContainerdOptions::with_network(BRIDGE, "198.18.3.0/24"),
    )?;
    let dir = second.dir().to_path_buf();
    let needle = format!("{}/", dir.display());
    let daemon = second.pid().context("second containerd is not running")?;
    let host_port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let pod_ip = second.block_on(async {
        pull(&second, &env.images.pause).await?;
        let ports = vec![v1::PortMapping {
            protocol: v1::Protocol::Tcp as i32,
            container_port: 80,
            host_port: host_port.into(),
            host_ip: String::new(),
        }];
        let pod = PodHandle::run(&second, "smoke-drop", ports).await?;
        pod.ip().await
    })?;
    ensure!(pod_ip.starts_with("198.18.3."), "pod IP {pod_ip}");
    ensure!(host::link_exists(BRIDGE), "bridge {BRIDGE} was not created");
    ensure!(
        iptables_mentions(BRIDGE)?,
        "portmap wrote no iptables rule for {BRIDGE}"
    );
    let shims = process::pids_with_cmdline_containing(&needle);
    ensure!(
        shims
            .iter()
            .any(|&pid| process::cmdline(pid).contains("containerd-shim")),
        "no shim found for the pod"
    );

    let started = Instant::now();
    drop(second); // the pod is still running: cleanup must handle it
    test_harness::note(format!("second environment dropped in {:.2?}", started.elapsed()));

    ensure!(!process::is_alive(daemon), "containerd {daemon} survived");
    let left = process::pids_with_cmdline_containing(&needle);
    ensure!(
        left.is_empty(),
        "processes left: {:?}",
        left.iter().map(|&p| process::cmdline(p)).collect::<Vec<_>>()
    );
    ensure!(shims.iter().all(|&pid| !process::is_alive(pid)), "a shim survived");
    ensure!(!host::link_exists(BRIDGE), "bridge {BRIDGE} survived");
    ensure!(!iptables_mentions(BRIDGE)?, "iptables rules of {BRIDGE} survived");
    ensure!(!dir.exists(), "{} survived", dir.display());
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    ensure!(!mountinfo.contains(&needle), "mounts under {} survived", dir.display());
    Ok(())
}

/// Whether `iptables-save` mentions `word` anywhere.
fn iptables_mentions(word: &str) -> anyhow::Result<bool> {
    let output = Command::new("iptables-save")
        .output()
        .context("running iptables-save")?;
    ensure!(output.status.success(), "iptables-save failed");
    Ok(String::from_utf8_lossy(&output.stdout).contains(word))
}

async fn within<T>(
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> anyhow::Result<T> {
    cri::within(CALL, call).await
}

/// Pulls `reference` through CRI; returns the image ref containerd reports.
async fn pull(containerd: &Containerd, reference: &str) -> anyhow::Result<String> {
    let mut images = containerd.image_client();
    let image = Some(v1::ImageSpec {
        image: reference.to_string(),
        ..Default::default()
    });
    let response = within(images.pull_image(v1::PullImageRequest {
        image,
        ..Default::default()
    }))
    .await
    .with_context(|| format!("pulling {reference}"))?;
    Ok(response.image_ref)
}

/// A pod sandbox of one test, with helpers for its containers.
struct PodHandle {
    id: String,
    config: v1::PodSandboxConfig,
    channel: tonic::transport::Channel,
}

impl PodHandle {
    async fn run(
        containerd: &Containerd,
        name: &str,
        port_mappings: Vec<v1::PortMapping>,
    ) -> anyhow::Result<PodHandle> {
        let log_directory = containerd.log_dir().join(name);
        std::fs::create_dir_all(&log_directory)?;
        let config = v1::PodSandboxConfig {
            metadata: Some(v1::PodSandboxMetadata {
                name: name.into(),
                uid: format!("uid-{name}"),
                namespace: "harness-smoke".into(),
                attempt: 0,
            }),
            hostname: name.into(),
            log_directory: log_directory.to_string_lossy().into_owned(),
            port_mappings,
            labels: HashMap::from([("test".to_string(), name.to_string())]),
            ..Default::default()
        };
        let channel = containerd.channel();
        let mut runtime = cri::runtime_client(channel.clone());
        let response = within(runtime.run_pod_sandbox(v1::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        }))
        .await
        .with_context(|| format!("RunPodSandbox {name}"))?;
        Ok(PodHandle {
            id: response.pod_sandbox_id,
            config,
            channel,
        })
    }

    fn runtime(&self) -> cri_api::client::RuntimeServiceClient<tonic::transport::Channel> {
        cri::runtime_client(self.channel.clone())
    }

    async fn ip(&self) -> anyhow::Result<String> {
        let status = within(self.runtime().pod_sandbox_status(v1::PodSandboxStatusRequest {
            pod_sandbox_id: self.id.clone(),
            verbose: false,
        }))
        .await?;
        let ip = status.status.and_then(|s| s.network).map(|n| n.ip).unwrap_or_default();
        if ip.is_empty() {
            bail!("pod {} has no IP", self.id);
        }
        Ok(ip)
    }

    async fn create_container(&self, name: &str, image: &str, command: Vec<&str>) -> anyhow::Result<String> {
        let config = v1::ContainerConfig {
            metadata: Some(v1::ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(v1::ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            command: command.into_iter().map(String::from).collect(),
            log_path: format!("{name}.log"),
            ..Default::default()
        };
        let request = v1::CreateContainerRequest {
            pod_sandbox_id: self.id.clone(),
            config: Some(config),
            sandbox_config: Some(self.config.clone()),
        };
        Ok(within(self.runtime().create_container(request))
            .await
            .with_context(|| format!("CreateContainer {name}"))?
            .container_id)
    }

    async fn start_container(&self, id: &str) -> anyhow::Result<()> {
        within(self.runtime().start_container(v1::StartContainerRequest {
            container_id: id.into(),
        }))
        .await?;
        Ok(())
    }

    async fn container_status(&self, id: &str) -> anyhow::Result<v1::ContainerStatus> {
        let response = within(self.runtime().container_status(v1::ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        }))
        .await?;
        response.status.context("ContainerStatus without status")
    }

    async fn wait_exited(&self, id: &str, timeout: Duration) -> anyhow::Result<v1::ContainerStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.container_status(id).await?;
            if status.state == v1::ContainerState::ContainerExited as i32 {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!("container {id} still in state {} after {timeout:?}", status.state);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn remove(&self) -> anyhow::Result<()> {
        within(self.runtime().stop_pod_sandbox(v1::StopPodSandboxRequest {
            pod_sandbox_id: self.id.clone(),
        }))
        .await?;
        within(self.runtime().remove_pod_sandbox(v1::RemovePodSandboxRequest {
            pod_sandbox_id: self.id.clone(),
        }))
        .await?;
        Ok(())
    }
}
