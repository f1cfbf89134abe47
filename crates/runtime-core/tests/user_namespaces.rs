//! Pods with a user namespace of their own (CRI `userns_options` mode POD, Kubernetes
//! `hostUsers: false`), checked from inside their containers and from the host: the id
//! maps, who the processes are on the host, who owns the image's files and what the
//! containers write (to their rootfs and to a bind-mounted host directory), exec, the
//! pod's network, hostname, sysctls and shared PID namespace, the requests refused, and a
//! crash of the daemon.
//!
//! One registry and one runtime-core daemon (bridge `kltuns0`, `198.18.43.0/24`) serve the
//! tests, which run in parallel, each with host ids of its own; the one that crashes the
//! daemon takes it for itself, the others share it. Needs root, runc, the CNI
//! plugins, docker-registry and busybox-static (skipped without them, failed with
//! `CI=true`).

mod common;

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::ExitCode;

use anyhow::{Context, ensure};
use common::{Env, Pod, expect_code};
use cri_client::Code;
use cri_client::v1::{
    ContainerConfig, IdMapping, Int64Value, LinuxContainerSecurityContext, LinuxSandboxSecurityContext, Mount,
    NamespaceMode, NamespaceOption, PodSandboxConfig, UserNamespace,
};
use test_harness::suite::{self, Test};

/// The pod network of this binary's daemon.
const BRIDGE: &str = "kltuns0";
const SUBNET: &str = "198.18.43.0/24";

/// A container that runs until it is killed.
const RUNS: &str = "while true; do sleep 1; done";

/// How many ids each pod maps (what the kubelet gives a pod).
const RANGE: u32 = 65_536;

fn main() -> ExitCode {
    suite::run(
        || Env::setup(BRIDGE, SUBNET),
        vec![
            Test::new(
                "containers_run_as_the_pod_s_ids_and_see_their_files_as_their_own",
                containers_run_as_the_pod_s_ids_and_see_their_files_as_their_own,
            ),
            Test::new(
                "the_pod_s_network_hostname_and_sysctls_belong_to_its_user_namespace",
                the_pod_s_network_hostname_and_sysctls_belong_to_its_user_namespace,
            ),
            Test::new(
                "a_shared_pid_namespace_belongs_to_the_pod_s_user_namespace",
                a_shared_pid_namespace_belongs_to_the_pod_s_user_namespace,
            ),
            Test::new(
                "requests_that_cannot_be_honoured_are_invalid_arguments",
                requests_that_cannot_be_honoured_are_invalid_arguments,
            ),
            Test::new(
                "a_crash_of_the_daemon_loses_nothing_of_the_pod",
                a_crash_of_the_daemon_loses_nothing_of_the_pod,
            ),
        ],
    )
}

/// The user namespace options of a pod whose ids 0..65536 are `host_id`.. on the host.
fn userns(host_id: u32) -> UserNamespace {
    let ranges = vec![IdMapping {
        host_id,
        container_id: 0,
        length: RANGE,
    }];
    UserNamespace {
        mode: NamespaceMode::Pod as i32,
        uids: ranges.clone(),
        gids: ranges,
    }
}

/// The namespaces the kubelet asks for (the pod's network and IPC, a PID namespace per
/// container unless `pid` says otherwise) with the user namespace `user`.
fn namespaces(user: Option<UserNamespace>, pid: NamespaceMode) -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Pod as i32,
        pid: pid as i32,
        ipc: NamespaceMode::Pod as i32,
        userns_options: user,
        ..NamespaceOption::default()
    }
}

/// A pod config for `test` with `options`, and `sysctls`.
fn pod_config(
    env: &Env,
    test: &str,
    options: NamespaceOption,
    sysctls: &[(&str, &str)],
) -> anyhow::Result<PodSandboxConfig> {
    let sc = LinuxSandboxSecurityContext {
        namespace_options: Some(options),
        ..LinuxSandboxSecurityContext::default()
    };
    env.secured_pod_config(test, sc, sysctls)
}

/// A busybox container `name` of `pod` that runs until killed, with the pod's namespace
/// options repeated (as the kubelet does) and `sc` otherwise.
fn container(env: &Env, pod: &Pod, name: &str, sc: LinuxContainerSecurityContext) -> anyhow::Result<ContainerConfig> {
    let options = pod
        .config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.clone());
    let sc = LinuxContainerSecurityContext {
        namespace_options: sc.namespace_options.clone().or(options),
        ..sc
    };
    env.secured_container_config(pod, name, RUNS, sc)
}

/// The host pid of container `id` (from verbose ContainerStatus).
async fn host_pid(env: &Env, id: &str) -> anyhow::Result<u32> {
    let response = env.client.container_status(id, true).await?;
    let info: serde_json::Value = serde_json::from_str(response.info.get("info").context("no verbose info")?)?;
    let pid = info["pid"].as_u64().context("no pid in the verbose info")?;
    Ok(u32::try_from(pid)?)
}

/// The effective uid and gid of host process `pid`, from `/proc/PID/status`.
fn host_ids(pid: u32) -> anyhow::Result<(u32, u32)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u32> {
        let line = status
            .lines()
            .find(|line| line.starts_with(name))
            .with_context(|| format!("no {name} in the status"))?;
        // Real, effective, saved, filesystem.
        Ok(line.split_whitespace().nth(2).context("short line")?.parse()?)
    };
    Ok((field("Uid:")?, field("Gid:")?))
}

/// The mount points of the host that mention `needle` (a sandbox or container id).
fn host_mounts_naming(needle: &str) -> anyhow::Result<Vec<String>> {
    Ok(std::fs::read_to_string("/proc/self/mountinfo")?
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|point| point.contains(needle))
        .map(str::to_string)
        .collect())
}

fn containers_run_as_the_pod_s_ids_and_see_their_files_as_their_own(env: &Env) -> anyhow::Result<()> {
    let _daemon = env.runtime();
    const HOST: u32 = 2_000_000;
    env.block_on(async {
        let config = pod_config(
            env,
            "userns-ids",
            namespaces(Some(userns(HOST)), NamespaceMode::Container),
            &[],
        )?;
        let pod = env.run_pod_with(config).await?;
        // A host directory anyone may write, with files of host root and host uid 1234,
        // mounted read-write.
        let volume = tempfile::tempdir()?;
        std::fs::set_permissions(volume.path(), std::fs::Permissions::from_mode(0o777))?;
        std::fs::write(volume.path().join("of-root"), "root")?;
        std::fs::write(volume.path().join("of-1234"), "1234")?;
        std::os::unix::fs::chown(volume.path().join("of-1234"), Some(1234), Some(1234))?;
        let with_volume = |mut config: ContainerConfig| {
            config.mounts.push(Mount {
                container_path: "/data".into(),
                host_path: volume.path().display().to_string(),
                ..Mount::default()
            });
            config
        };
        let root = env
            .start(
                &pod,
                with_volume(container(env, &pod, "root", LinuxContainerSecurityContext::default())?),
            )
            .await?;
        let user_sc = LinuxContainerSecurityContext {
            run_as_user: Some(Int64Value { value: 1000 }),
            run_as_group: Some(Int64Value { value: 3000 }),
            ..LinuxContainerSecurityContext::default()
        };
        let user = env
            .start(&pod, with_volume(container(env, &pod, "user", user_sc)?))
            .await?;

        // Inside: the pod's ranges, and the ids asked for. ExecSync is `runc exec`, which
        // enters the user namespace before the pod's others.
        let map = format!("0 {HOST} {RANGE}");
        for (id, ids) in [(&root, "0 0"), (&user, "1000 3000")] {
            for file in ["uid_map", "gid_map"] {
                let seen = env.output(id, &format!("cat /proc/self/{file}")).await?;
                ensure!(
                    seen.split_whitespace().collect::<Vec<_>>().join(" ") == map,
                    "{file}: {seen:?}"
                );
            }
            let seen = env.output(id, "echo $(id -u) $(id -g)").await?;
            ensure!(seen == ids, "id in {id}: {seen:?}, want {ids:?}");
        }
        // On the host: the same processes run as the mapped ids.
        ensure!(
            host_ids(host_pid(env, &root).await?)? == (HOST, HOST),
            "the root container on the host"
        );
        ensure!(
            host_ids(host_pid(env, &user).await?)? == (HOST + 1000, HOST + 3000),
            "the user container on the host"
        );

        // The image's files are root's inside, and root may write the rootfs.
        let owners = env.output(&root, "stat -c '%u:%g' /bin/busybox /etc /tmp").await?;
        ensure!(owners.lines().all(|line| line == "0:0"), "image owners: {owners:?}");
        let written = env
            .output(
                &root,
                "echo x > /etc/written && mkdir /var/new && stat -c '%u:%g' /etc/written /var/new",
            )
            .await?;
        ensure!(written.lines().all(|line| line == "0:0"), "written: {written:?}");
        // ...and the user's files are the user's (the writable layer is the container's root's
        // on the host).
        let temp = env
            .output(&user, "echo y > /tmp/mine && stat -c '%u:%g' /tmp/mine")
            .await?;
        ensure!(temp == "1000:3000", "the user's file: {temp:?}");

        // The volume: host ids seen as the same ids inside, writes land as the writer's.
        let seen = env
            .output(&root, "stat -c '%n %u:%g' /data/of-root /data/of-1234")
            .await?;
        ensure!(
            seen == "/data/of-root 0:0\n/data/of-1234 1234:1234",
            "volume owners: {seen:?}"
        );
        env.output(&root, "echo r > /data/by-root").await?;
        env.output(&user, "echo u > /data/by-user").await?;
        let on_host = |name: &str| -> anyhow::Result<(u32, u32)> {
            let meta = std::fs::metadata(volume.path().join(name))?;
            Ok((meta.uid(), meta.gid()))
        };
        ensure!(
            on_host("by-root")? == (0, 0),
            "by-root on the host: {:?}",
            on_host("by-root")?
        );
        ensure!(
            on_host("by-user")? == (1000, 3000),
            "by-user on the host: {:?}",
            on_host("by-user")?
        );

        // Removing the pod takes every mount of it down, and the volume keeps its files.
        env.remove(&pod).await?;
        for id in [&pod.id, &root, &user] {
            let left = host_mounts_naming(id)?;
            ensure!(left.is_empty(), "mounts left for {id}: {left:?}");
        }
        ensure!(volume.path().join("of-1234").exists() && volume.path().join("by-user").exists());
        Ok(())
    })
}

fn the_pod_s_network_hostname_and_sysctls_belong_to_its_user_namespace(env: &Env) -> anyhow::Result<()> {
    let _daemon = env.runtime();
    const HOST: u32 = 2_100_000;
    env.block_on(async {
        let sysctls = [
            ("kernel.shm_rmid_forced", "1"),
            ("net.ipv4.ip_unprivileged_port_start", "80"),
        ];
        let config = pod_config(
            env,
            "userns-net",
            namespaces(Some(userns(HOST)), NamespaceMode::Container),
            &sysctls,
        )?;
        let pod = env.run_pod_with(config).await?;
        let id = env
            .start(
                &pod,
                container(env, &pod, "net", LinuxContainerSecurityContext::default())?,
            )
            .await?;
        let status = env.client.pod_sandbox_status(&pod.id, false).await?;
        let ip = status
            .status
            .and_then(|s| s.network)
            .map(|n| n.ip)
            .context("no pod IP")?;
        ensure!(ip.starts_with("198.18.43."), "pod IP {ip}");
        // sysfs is mounted (the network namespace is the user namespace's) and shows eth0
        // with the pod's address.
        let address = env.output(&id, "ip -4 -o addr show eth0").await?;
        ensure!(address.contains(&format!("{ip}/")), "eth0: {address:?}");
        env.output(&id, "test -e /sys/class/net/eth0").await?;
        let hostname = env.output(&id, "hostname").await?;
        ensure!(hostname == pod.config.hostname, "hostname {hostname:?}");
        for (name, value) in sysctls {
            let seen = env
                .output(&id, &format!("cat /proc/sys/{}", name.replace('.', "/")))
                .await?;
            ensure!(seen == value, "{name}: {seen:?}");
        }
        // /dev/mqueue is mounted too (the IPC namespace is the user namespace's).
        let mounts = env.output(&id, "cat /proc/mounts").await?;
        ensure!(
            mounts.lines().any(|line| line.starts_with("mqueue /dev/mqueue")),
            "{mounts}"
        );
        // The namespaces on the host: the pod's network namespace is not the node's, and
        // the container's user namespace is not the host's.
        let pid = host_pid(env, &id).await?;
        for ns in ["user", "net"] {
            let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))?;
            let ours = std::fs::read_link(format!("/proc/self/ns/{ns}"))?;
            ensure!(theirs != ours, "{ns} namespace is the host's");
        }
        env.remove(&pod).await
    })
}

fn a_shared_pid_namespace_belongs_to_the_pod_s_user_namespace(env: &Env) -> anyhow::Result<()> {
    let _daemon = env.runtime();
    const HOST: u32 = 2_200_000;
    env.block_on(async {
        let config = pod_config(
            env,
            "userns-pid",
            namespaces(Some(userns(HOST)), NamespaceMode::Pod),
            &[],
        )?;
        let pod = env.run_pod_with(config).await?;
        let first = env
            .start(
                &pod,
                container(env, &pod, "first", LinuxContainerSecurityContext::default())?,
            )
            .await?;
        let second = env
            .start(
                &pod,
                container(env, &pod, "second", LinuxContainerSecurityContext::default())?,
            )
            .await?;
        // pid 1 is the pod's holder (the monitor in pause mode), seen by both, which see each
        // other's processes through /proc (mounted: the PID namespace is the pod user
        // namespace's).
        let init = env.output(&first, "tr '\\0' ' ' < /proc/1/cmdline").await?;
        ensure!(init.contains("--pause"), "pid 1: {init:?}");
        let processes = env.output(&second, "ps -o pid,user,args").await?;
        ensure!(
            processes.lines().filter(|line| line.contains("while true")).count() >= 2,
            "the second container sees both: {processes}"
        );
        ensure!(
            host_ids(host_pid(env, &first).await?)? == (HOST, HOST),
            "the first container on the host"
        );
        env.remove(&pod).await?;
        ensure!(
            host_mounts_naming(&pod.id)?.is_empty(),
            "the pod's namespaces stay pinned"
        );
        Ok(())
    })
}

fn requests_that_cannot_be_honoured_are_invalid_arguments(env: &Env) -> anyhow::Result<()> {
    let _daemon = env.runtime();
    const HOST: u32 = 2_300_000;
    env.block_on(async {
        let without_gids = UserNamespace {
            gids: Vec::new(),
            ..userns(HOST)
        };
        let container_mode = UserNamespace {
            mode: NamespaceMode::Container as i32,
            ..userns(HOST)
        };
        let host_network = NamespaceOption {
            network: NamespaceMode::Node as i32,
            ..namespaces(Some(userns(HOST)), NamespaceMode::Container)
        };
        let cases: HashMap<&str, NamespaceOption> = HashMap::from([
            (
                "no gid mappings",
                namespaces(Some(without_gids), NamespaceMode::Container),
            ),
            (
                "mode CONTAINER",
                namespaces(Some(container_mode), NamespaceMode::Container),
            ),
            ("with the host network", host_network),
            (
                "with the host PID namespace",
                namespaces(Some(userns(HOST)), NamespaceMode::Node),
            ),
        ]);
        for (case, options) in cases {
            let config = pod_config(env, "userns-bad", options, &[])?;
            let result = env.client.run_pod_sandbox(config, "").await;
            let message = result.as_ref().err().map(ToString::to_string).unwrap_or_default();
            expect_code(result, Code::InvalidArgument, case)?;
            ensure!(message.contains("user namespace"), "{case}: {message}");
        }
        // In a pod of the host's user namespace, a container may not ask for the pod's.
        let config = pod_config(env, "userns-node", namespaces(None, NamespaceMode::Container), &[])?;
        let pod = env.run_pod_with(config).await?;
        let sc = LinuxContainerSecurityContext {
            namespace_options: Some(namespaces(Some(userns(HOST)), NamespaceMode::Container)),
            ..LinuxContainerSecurityContext::default()
        };
        let created = env
            .client
            .create_container(&pod.id, container(env, &pod, "asks", sc)?, pod.config.clone())
            .await;
        let message = created.as_ref().err().map(ToString::to_string).unwrap_or_default();
        expect_code(created, Code::InvalidArgument, "a user namespace the pod does not have")?;
        ensure!(message.contains("user namespace"), "error: {message}");
        // NODE is the host's user namespace: the container runs as the host's root.
        let sc = LinuxContainerSecurityContext {
            namespace_options: Some(namespaces(
                Some(UserNamespace {
                    mode: NamespaceMode::Node as i32,
                    ..UserNamespace::default()
                }),
                NamespaceMode::Container,
            )),
            ..LinuxContainerSecurityContext::default()
        };
        let host = env.start(&pod, container(env, &pod, "node", sc)?).await?;
        let map = env.output(&host, "cat /proc/self/uid_map").await?;
        ensure!(
            map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"],
            "{map:?}"
        );
        env.remove(&pod).await
    })
}

fn a_crash_of_the_daemon_loses_nothing_of_the_pod(env: &Env) -> anyhow::Result<()> {
    const HOST: u32 = 2_400_000;
    let mut runtime = env.runtime_mut();
    let (pod, running, created) = env.block_on(async {
        let config = pod_config(
            env,
            "userns-crash",
            namespaces(Some(userns(HOST)), NamespaceMode::Container),
            &[],
        )?;
        let pod = env.run_pod_with(config).await?;
        let running = env
            .start(
                &pod,
                container(env, &pod, "running", LinuxContainerSecurityContext::default())?,
            )
            .await?;
        let created = env
            .client
            .create_container(
                &pod.id,
                container(env, &pod, "created", LinuxContainerSecurityContext::default())?,
                pod.config.clone(),
            )
            .await?;
        Ok((pod, running, created))
    })?;
    runtime.kill()?;
    runtime.start_again()?;
    let outcome = env.block_on(async {
        // The running container still runs in the pod's namespace, the created one starts
        // in it, and both may write their id-mapped rootfs.
        let map = format!("0 {HOST} {RANGE}");
        env.client.start_container(&created).await?;
        for id in [&running, &created] {
            let seen = env.output(id, "cat /proc/self/uid_map").await?;
            ensure!(
                seen.split_whitespace().collect::<Vec<_>>().join(" ") == map,
                "{id}: {seen:?}"
            );
            env.output(id, "echo x > /etc/after-the-crash").await?;
        }
        env.remove(&pod).await?;
        for id in [&pod.id, &running, &created] {
            let left = host_mounts_naming(id)?;
            ensure!(left.is_empty(), "mounts left for {id}: {left:?}");
        }
        Ok(())
    });
    common::with_daemon_log(&runtime, outcome)
}
