//! Security contexts enforced for real: each option of a pod's or container's Linux
//! security context checked from inside a running container (`id`, `/proc/self/status`,
//! `/proc/mounts`, `/proc/sys`, namespace links), through runtime-core's CRI socket with
//! real runc and CNI plugins.
//!
//! One registry and one runtime-core daemon (bridge `kltsec0`, `198.18.41.0/24`) serve all
//! tests, which run in parallel. Most tests start a few long-running busybox containers in
//! one pod and probe them with ExecSync (an exec'd process has the container's user,
//! capabilities, seccomp filter and namespaces). Needs root, runc, the CNI plugins,
//! docker-registry and busybox-static (skipped without them, failed with `CI=true`).

mod common;

use std::fs;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, ensure};
use common::{Env, Pod, expect_code};
use cri_client::Code;
use cri_client::v1::{
    Capability, ContainerConfig, Int64Value, LinuxContainerSecurityContext, LinuxSandboxSecurityContext, NamespaceMode,
    NamespaceOption, SecurityProfile, security_profile::ProfileType,
};
use test_harness::suite::{self, Test};

/// The pod network of this binary's daemon.
const BRIDGE: &str = "kltsec0";
const SUBNET: &str = "198.18.41.0/24";

/// A container that runs until it is killed.
const RUNS: &str = "while true; do sleep 1; done";

/// The capabilities of a default container: CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL,
/// SETGID, SETUID, SETPCAP, NET_BIND_SERVICE, NET_RAW, SYS_CHROOT, MKNOD, AUDIT_WRITE,
/// SETFCAP (Docker's and containerd's `00000000a80425fb`).
const DEFAULT_CAPS: u64 = 0xa804_25fb;
/// Capability numbers the tests name.
const CAP_CHOWN: u32 = 0;
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_TIME: u32 = 25;

/// Where the kernel says whether AppArmor is enabled.
const APPARMOR_ENABLED: &str = "/sys/module/apparmor/parameters/enabled";

fn main() -> ExitCode {
    suite::run(
        || Env::setup(BRIDGE, SUBNET),
        vec![
            Test::new(
                "users_and_groups_come_from_the_context_and_the_image",
                users_and_groups_come_from_the_context_and_the_image,
            ),
            Test::new("capabilities_are_added_and_dropped", capabilities_are_added_and_dropped),
            Test::new(
                "readonly_rootfs_no_new_privs_and_masked_and_readonly_paths",
                readonly_rootfs_no_new_privs_and_masked_and_readonly_paths,
            ),
            Test::new("seccomp_profiles_filter_syscalls", seccomp_profiles_filter_syscalls),
            Test::new(
                "apparmor_requests_get_the_documented_result",
                apparmor_requests_get_the_documented_result,
            ),
            Test::new(
                "privileged_containers_see_host_devices_and_hold_every_capability",
                privileged_containers_see_host_devices_and_hold_every_capability,
            ),
            Test::new("host_namespaces_are_the_nodes", host_namespaces_are_the_nodes),
            Test::new(
                "a_target_pid_namespace_is_another_containers",
                a_target_pid_namespace_is_another_containers,
            ),
            Test::new("sysctls_are_set_in_the_pod", sysctls_are_set_in_the_pod),
        ],
    )
}

/// The namespaces the kubelet asks for: the pod's network and IPC, a PID namespace per
/// container.
fn kubelet_namespaces() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Pod as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..NamespaceOption::default()
    }
}

/// A pod whose sandbox security context is `sc` (namespaces as the kubelet's unless `sc`
/// sets them), with `sysctls`.
async fn run_pod(
    env: &Env,
    test: &str,
    sc: LinuxSandboxSecurityContext,
    sysctls: &[(&str, &str)],
) -> anyhow::Result<Pod> {
    let sc = LinuxSandboxSecurityContext {
        namespace_options: sc.namespace_options.or(Some(kubelet_namespaces())),
        ..sc
    };
    env.run_pod_with(env.secured_pod_config(test, sc, sysctls)?).await
}

/// A busybox container `name` of `pod` that runs until killed, with the security context
/// `sc` (the kubelet's namespaces unless `sc` sets them).
fn container(env: &Env, pod: &Pod, name: &str, sc: LinuxContainerSecurityContext) -> anyhow::Result<ContainerConfig> {
    let sc = LinuxContainerSecurityContext {
        namespace_options: sc.namespace_options.or(Some(kubelet_namespaces())),
        ..sc
    };
    env.secured_container_config(pod, name, RUNS, sc)
}

/// Creates and starts a container of `pod` with security context `sc`; returns its id.
async fn start(env: &Env, pod: &Pod, name: &str, sc: LinuxContainerSecurityContext) -> anyhow::Result<String> {
    env.start(pod, container(env, pod, name, sc)?)
        .await
        .with_context(|| format!("starting container {name}"))
}

/// The exit code of `script` in container `id`.
async fn exit_code(env: &Env, id: &str, script: &str) -> anyhow::Result<i32> {
    Ok(env.exec(id, script).await?.0)
}

/// A field of `/proc/self/status` as the container's processes see it.
async fn status_field(env: &Env, id: &str, field: &str) -> anyhow::Result<String> {
    let line = env.output(id, &format!("grep '^{field}:' /proc/self/status")).await?;
    Ok(line.split_once(':').map_or("", |(_, value)| value).trim().to_string())
}

/// A capability set (`CapEff`, `CapBnd`...) of the container's processes.
async fn capabilities(env: &Env, id: &str, set: &str) -> anyhow::Result<u64> {
    let hex = status_field(env, id, set).await?;
    u64::from_str_radix(&hex, 16).with_context(|| format!("{set} {hex:?}"))
}

fn bit(cap: u32) -> u64 {
    1 << cap
}

/// Every capability a container can get: those of this kernel that the runtime holds (its
/// bounding set, the same as this test's).
fn all_capabilities() -> anyhow::Result<u64> {
    let status = fs::read_to_string("/proc/self/status")?;
    let bounding = status
        .lines()
        .find_map(|line| line.strip_prefix("CapBnd:"))
        .context("no CapBnd in /proc/self/status")?;
    Ok(u64::from_str_radix(bounding.trim(), 16)?)
}

fn profile(profile_type: ProfileType, localhost_ref: &str) -> Option<SecurityProfile> {
    Some(SecurityProfile {
        profile_type: profile_type as i32,
        localhost_ref: localhost_ref.to_string(),
    })
}

fn users_and_groups_come_from_the_context_and_the_image(env: &Env) -> anyhow::Result<()> {
    env.block_on(async {
        let pod = run_pod(env, "users", LinuxSandboxSecurityContext::default(), &[]).await?;
        let numeric = start(
            env,
            &pod,
            "numeric",
            LinuxContainerSecurityContext {
                run_as_user: Some(Int64Value { value: 1234 }),
                run_as_group: Some(Int64Value { value: 5678 }),
                supplemental_groups: vec![4000, 4001],
                ..LinuxContainerSecurityContext::default()
            },
        )
        .await?;
        let id = env.output(&numeric, "id").await?;
        ensure!(id == "uid=1234 gid=5678 groups=4000,4001,5678", "id: {id:?}");

        let named = start(
            env,
            &pod,
            "named",
            LinuxContainerSecurityContext {
                run_as_username: "nonroot".into(),
                ..LinuxContainerSecurityContext::default()
            },
        )
        .await?;
        let id = env.output(&named, "id").await?;
        ensure!(
            id == "uid=65532(nonroot) gid=65532(nonroot) groups=65532(nonroot)",
            "id: {id:?}"
        );

        // The image's `User` when the context names none.
        let mut from_image = container(env, &pod, "image-user", LinuxContainerSecurityContext::default())?;
        from_image.image = Some(cri_client::v1::ImageSpec {
            image: env.images.nonroot.clone(),
            ..Default::default()
        });
        env.client
            .pull_image(env.images.nonroot.as_str(), None, None)
            .await
            .context("pulling the nonroot image")?;
        let image_user = env.start(&pod, from_image).await?;
        let id = env.output(&image_user, "id -u; id -g").await?;
        ensure!(id == "65532\n65532", "id: {id:?}");

        let unknown = container(
            env,
            &pod,
            "unknown-user",
            LinuxContainerSecurityContext {
                run_as_username: "nosuchuser".into(),
                ..LinuxContainerSecurityContext::default()
            },
        )?;
        let created = env.client.create_container(&pod.id, unknown, pod.config.clone()).await;
        expect_code(created, Code::InvalidArgument, "CreateContainer of an unknown user")?;
        env.remove(&pod).await
    })
}

fn capabilities_are_added_and_dropped(env: &Env) -> anyhow::Result<()> {
    env.block_on(async {
        let pod = run_pod(env, "capabilities", LinuxSandboxSecurityContext::default(), &[]).await?;
        let with = |add: &[&str], drop: &[&str]| LinuxContainerSecurityContext {
            capabilities: Some(Capability {
                add_capabilities: add.iter().map(|c| c.to_string()).collect(),
                drop_capabilities: drop.iter().map(|c| c.to_string()).collect(),
                ..Capability::default()
            }),
            ..LinuxContainerSecurityContext::default()
        };
        let all = all_capabilities()?;
        let cases: [(&str, LinuxContainerSecurityContext, u64); 4] = [
            ("default", LinuxContainerSecurityContext::default(), DEFAULT_CAPS),
            (
                "add-and-drop",
                with(&["NET_ADMIN", "CAP_SYS_TIME"], &["chown"]),
                (DEFAULT_CAPS | bit(CAP_NET_ADMIN) | bit(CAP_SYS_TIME)) & !bit(CAP_CHOWN),
            ),
            ("drop-all", with(&[], &["ALL"]), 0),
            (
                "add-all-drop-one",
                with(&["ALL"], &["CAP_NET_ADMIN"]),
                all & !bit(CAP_NET_ADMIN),
            ),
        ];
        for (name, sc, want) in cases {
            let id = start(env, &pod, name, sc).await?;
            for set in ["CapEff", "CapPrm", "CapBnd"] {
                let got = capabilities(env, &id, set).await?;
                ensure!(got == want, "{name}: {set} {got:016x}, want {want:016x}");
            }
            ensure!(capabilities(env, &id, "CapInh").await? == 0, "{name}: inheritable set");
        }
        let unknown = container(env, &pod, "unknown-cap", with(&["CAP_NO_SUCH"], &[]))?;
        let created = env.client.create_container(&pod.id, unknown, pod.config.clone()).await;
        expect_code(
            created,
            Code::InvalidArgument,
            "CreateContainer with an unknown capability",
        )?;
        env.remove(&pod).await
    })
}

fn readonly_rootfs_no_new_privs_and_masked_and_readonly_paths(env: &Env) -> anyhow::Result<()> {
    env.block_on(async {
        let pod = run_pod(env, "hardening", LinuxSandboxSecurityContext::default(), &[]).await?;
        let default = start(env, &pod, "default", LinuxContainerSecurityContext::default()).await?;
        let hardened = start(
            env,
            &pod,
            "hardened",
            LinuxContainerSecurityContext {
                readonly_rootfs: true,
                no_new_privs: true,
                ..LinuxContainerSecurityContext::default()
            },
        )
        .await?;
        let custom = start(
            env,
            &pod,
            "custom-paths",
            LinuxContainerSecurityContext {
                masked_paths: vec!["/proc/cpuinfo".into()],
                readonly_paths: vec!["/tmp".into()],
                ..LinuxContainerSecurityContext::default()
            },
        )
        .await?;

        let root_options = "awk '$2 == \"/\" { split($4, o, \",\"); print o[1] }' /proc/mounts";
        ensure!(env.output(&default, root_options).await? == "rw", "default rootfs");
        ensure!(env.output(&hardened, root_options).await? == "ro", "readonly rootfs");
        ensure!(exit_code(env, &default, "touch /created").await? == 0);
        ensure!(
            exit_code(env, &hardened, "touch /created").await? != 0,
            "wrote to a read-only rootfs"
        );

        ensure!(status_field(env, &default, "NoNewPrivs").await? == "0");
        ensure!(status_field(env, &hardened, "NoNewPrivs").await? == "1");

        // Default masked paths: files read empty, directories are empty; on the host they
        // are not.
        ensure!(!fs::read_to_string("/proc/timer_list")?.is_empty());
        let timer_list = env.output(&default, "wc -c < /proc/timer_list").await?;
        ensure!(timer_list == "0", "/proc/timer_list has {timer_list} bytes");
        if Path::new("/sys/firmware").read_dir()?.next().is_some() {
            let firmware = env.output(&default, "ls -A /sys/firmware").await?;
            ensure!(firmware.is_empty(), "/sys/firmware lists {firmware:?}");
        }
        // Default read-only paths.
        let options = "awk '$2 == \"/proc/sys\" { split($4, o, \",\"); print o[1] }' /proc/mounts";
        ensure!(env.output(&default, options).await? == "ro", "/proc/sys");
        let write = "echo 1 > /proc/sys/kernel/shm_rmid_forced";
        ensure!(exit_code(env, &default, write).await? != 0, "wrote to /proc/sys");
        ensure!(exit_code(env, &default, "echo > /proc/sysrq-trigger").await? != 0);

        // Paths the context lists replace the defaults.
        ensure!(env.output(&custom, "wc -c < /proc/cpuinfo").await? == "0");
        ensure!(env.output(&custom, "wc -c < /proc/timer_list").await? != "0");
        ensure!(
            exit_code(env, &custom, "touch /tmp/x").await? != 0,
            "wrote to a read-only /tmp"
        );
        ensure!(exit_code(env, &custom, "echo 1 > /proc/sys/kernel/shm_rmid_forced").await? == 0);
        env.remove(&pod).await
    })
}

fn seccomp_profiles_filter_syscalls(env: &Env) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let denies_mkdir = dir.path().join("denies-mkdir.json");
    fs::write(
        &denies_mkdir,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    )?;
    let denies_mkdir = denies_mkdir.to_str().context("temporary path")?.to_string();
    env.block_on(async {
        let pod = run_pod(env, "seccomp", LinuxSandboxSecurityContext::default(), &[]).await?;
        let with = |seccomp: Option<SecurityProfile>, path: &str| {
            #[allow(deprecated)]
            LinuxContainerSecurityContext {
                seccomp,
                seccomp_profile_path: path.to_string(),
                ..LinuxContainerSecurityContext::default()
            }
        };
        // (name, context, Seccomp: mode, unshare -U allowed, mkdir allowed)
        let cases = [
            ("unset", with(None, ""), "0", true, true),
            (
                "unconfined",
                with(profile(ProfileType::Unconfined, ""), ""),
                "0",
                true,
                true,
            ),
            ("unconfined-path", with(None, "unconfined"), "0", true, true),
            (
                "runtime-default",
                with(profile(ProfileType::RuntimeDefault, ""), ""),
                "2",
                false,
                true,
            ),
            ("runtime-default-path", with(None, "runtime/default"), "2", false, true),
            ("docker-default-path", with(None, "docker/default"), "2", false, true),
            (
                "localhost",
                with(profile(ProfileType::Localhost, &denies_mkdir), ""),
                "2",
                true,
                false,
            ),
            (
                "localhost-path",
                with(None, &format!("localhost/{denies_mkdir}")),
                "2",
                true,
                false,
            ),
        ];
        for (name, sc, mode, unshare, mkdir) in cases {
            let id = start(env, &pod, name, sc).await?;
            let got = status_field(env, &id, "Seccomp").await?;
            ensure!(got == mode, "{name}: Seccomp: {got}, want {mode}");
            // A user namespace needs no capability: only the filter stops it.
            let unshared = exit_code(env, &id, "unshare -U true").await? == 0;
            ensure!(unshared == unshare, "{name}: unshare -U allowed: {unshared}");
            let made = exit_code(env, &id, "mkdir /tmp/seccomp-dir").await? == 0;
            ensure!(made == mkdir, "{name}: mkdir allowed: {made}");
        }
        let (_, denied) = env
            .exec(
                &start(env, &pod, "message", with(None, "runtime/default")).await?,
                "unshare -U true 2>&1",
            )
            .await?;
        ensure!(denied.contains("Operation not permitted"), "unshare said {denied:?}");

        let missing = container(
            env,
            &pod,
            "missing-profile",
            with(profile(ProfileType::Localhost, "/nonexistent/profile.json"), ""),
        )?;
        let created = env.client.create_container(&pod.id, missing, pod.config.clone()).await;
        expect_code(created, Code::NotFound, "CreateContainer with a missing profile")?;
        let bogus = container(env, &pod, "bogus-profile", with(None, "bogus"))?;
        let created = env.client.create_container(&pod.id, bogus, pod.config.clone()).await;
        expect_code(
            created,
            Code::InvalidArgument,
            "CreateContainer with a bogus profile path",
        )?;
        env.remove(&pod).await
    })
}

fn apparmor_requests_get_the_documented_result(env: &Env) -> anyhow::Result<()> {
    let enabled = fs::read_to_string(APPARMOR_ENABLED).is_ok_and(|text| text.trim() == "Y");
    env.block_on(async {
        let pod = run_pod(env, "apparmor", LinuxSandboxSecurityContext::default(), &[]).await?;
        let with = |apparmor| LinuxContainerSecurityContext {
            apparmor,
            ..LinuxContainerSecurityContext::default()
        };
        let default = start(
            env,
            &pod,
            "runtime-default",
            with(profile(ProfileType::RuntimeDefault, "")),
        )
        .await?;
        ensure!(env.output(&default, "echo ok").await? == "ok");
        let required = container(
            env,
            &pod,
            "localhost",
            with(profile(ProfileType::Localhost, "kubelet-lite-test-unloaded")),
        )?;
        let result = env.client.create_container(&pod.id, required, pod.config.clone()).await;
        if enabled {
            // The profile is not loaded: runc cannot apply it.
            let started = match result {
                Ok(id) => env.client.start_container(&id).await.is_ok(),
                Err(_) => false,
            };
            ensure!(!started, "a container ran with an unloaded AppArmor profile");
        } else {
            let message = match &result {
                Err(err) => err.to_string(),
                Ok(_) => String::new(),
            };
            expect_code(result, Code::InvalidArgument, "a Localhost profile without AppArmor")?;
            ensure!(message.contains("AppArmor is not enabled"), "error: {message}");
        }
        env.remove(&pod).await
    })
}

fn privileged_containers_see_host_devices_and_hold_every_capability(env: &Env) -> anyhow::Result<()> {
    // A character device of the host that no default container has.
    let host_device = [
        "/dev/kmsg",
        "/dev/mem",
        "/dev/loop-control",
        "/dev/fuse",
        "/dev/net/tun",
    ]
    .into_iter()
    .find(|path| Path::new(path).exists())
    .context("no host device to look for")?;
    env.block_on(async {
        let privileged_pod = LinuxSandboxSecurityContext {
            privileged: true,
            ..LinuxSandboxSecurityContext::default()
        };
        let pod = run_pod(env, "privileged", privileged_pod, &[]).await?;
        #[allow(deprecated)]
        let privileged = start(
            env,
            &pod,
            "privileged",
            LinuxContainerSecurityContext {
                privileged: true,
                seccomp_profile_path: "runtime/default".into(),
                ..LinuxContainerSecurityContext::default()
            },
        )
        .await?;
        let plain = start(env, &pod, "plain", LinuxContainerSecurityContext::default()).await?;

        let all = all_capabilities()?;
        ensure!(capabilities(env, &privileged, "CapEff").await? == all, "CapEff");
        ensure!(capabilities(env, &privileged, "CapBnd").await? == all, "CapBnd");
        ensure!(status_field(env, &privileged, "Seccomp").await? == "0", "a filter");
        let test_device = format!("test -c {host_device}");
        ensure!(
            exit_code(env, &privileged, &test_device).await? == 0,
            "{host_device} is missing"
        );
        ensure!(
            exit_code(env, &plain, &test_device).await? != 0,
            "{host_device} in a plain container"
        );
        // No masked or read-only paths, /sys writable.
        ensure!(env.output(&privileged, "wc -c < /proc/timer_list").await? != "0");
        let sys = "awk '$2 == \"/sys\" { split($4, o, \",\"); print o[1] }' /proc/mounts";
        ensure!(env.output(&privileged, sys).await? == "rw", "/sys");
        ensure!(env.output(&plain, sys).await? == "ro", "/sys of a plain container");

        // A privileged container needs a privileged pod.
        let plain_pod = run_pod(env, "unprivileged", LinuxSandboxSecurityContext::default(), &[]).await?;
        let refused = container(
            env,
            &plain_pod,
            "privileged",
            LinuxContainerSecurityContext {
                privileged: true,
                ..LinuxContainerSecurityContext::default()
            },
        )?;
        let created = env
            .client
            .create_container(&plain_pod.id, refused, plain_pod.config.clone())
            .await;
        expect_code(created, Code::InvalidArgument, "a privileged container in a plain pod")?;
        env.remove(&plain_pod).await?;
        env.remove(&pod).await
    })
}

/// `readlink /proc/self/ns/{net,pid,ipc}` in the container, and `/proc/1/cmdline`.
const NAMESPACES_AND_INIT: &str =
    "for ns in net pid ipc; do readlink /proc/self/ns/$ns; done; tr '\\0' ' ' < /proc/1/cmdline";

fn host_view() -> anyhow::Result<Vec<String>> {
    let mut view = Vec::new();
    for ns in ["net", "pid", "ipc"] {
        view.push(fs::read_link(format!("/proc/self/ns/{ns}"))?.display().to_string());
    }
    let cmdline = fs::read("/proc/1/cmdline")?;
    view.push(String::from_utf8_lossy(&cmdline).replace('\0', " ").trim().to_string());
    Ok(view)
}

fn host_namespaces_are_the_nodes(env: &Env) -> anyhow::Result<()> {
    let host = host_view()?;
    // An interface of the node's own (not one of the pods' veths).
    let host_interface = fs::read_dir("/sys/class/net")?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .find(|name| name != "lo" && !name.starts_with("veth"))
        .context("the node has no interface")?;
    env.block_on(async {
        let node = NamespaceOption {
            network: NamespaceMode::Node as i32,
            pid: NamespaceMode::Node as i32,
            ipc: NamespaceMode::Node as i32,
            ..NamespaceOption::default()
        };
        let host_pod = LinuxSandboxSecurityContext {
            namespace_options: Some(node.clone()),
            ..LinuxSandboxSecurityContext::default()
        };
        let pod = run_pod(env, "host-namespaces", host_pod, &[]).await?;
        let id = start(
            env,
            &pod,
            "host",
            LinuxContainerSecurityContext {
                namespace_options: Some(node),
                ..LinuxContainerSecurityContext::default()
            },
        )
        .await?;
        let seen: Vec<String> = env
            .output(&id, NAMESPACES_AND_INIT)
            .await?
            .lines()
            .map(|line| line.trim().to_string())
            .collect();
        ensure!(seen == host, "the container sees {seen:?}, the node {host:?}");
        let interfaces = env.output(&id, "cat /proc/net/dev").await?;
        ensure!(
            interfaces.contains(&format!("{host_interface}:")),
            "{host_interface} missing from {interfaces}"
        );

        let own_pod = run_pod(env, "own-namespaces", LinuxSandboxSecurityContext::default(), &[]).await?;
        let own = start(env, &own_pod, "own", LinuxContainerSecurityContext::default()).await?;
        let seen: Vec<String> = env
            .output(&own, NAMESPACES_AND_INIT)
            .await?
            .lines()
            .map(|line| line.trim().to_string())
            .collect();
        for (what, (container, node)) in ["net", "pid", "ipc", "pid 1"].iter().zip(seen.iter().zip(&host)) {
            ensure!(
                container != node,
                "a pod container shares the node's {what}: {container}"
            );
        }
        env.remove(&own_pod).await?;
        env.remove(&pod).await
    })
}

fn a_target_pid_namespace_is_another_containers(env: &Env) -> anyhow::Result<()> {
    env.block_on(async {
        let pod = run_pod(env, "target-pid", LinuxSandboxSecurityContext::default(), &[]).await?;
        let target = start(env, &pod, "target", LinuxContainerSecurityContext::default()).await?;
        let targeting = |target_id: &str| LinuxContainerSecurityContext {
            namespace_options: Some(NamespaceOption {
                pid: NamespaceMode::Target as i32,
                target_id: target_id.to_string(),
                ..kubelet_namespaces()
            }),
            ..LinuxContainerSecurityContext::default()
        };
        let debugger = start(env, &pod, "debugger", targeting(&target)).await?;
        let pid_ns = "readlink /proc/self/ns/pid";
        let (a, b) = (env.output(&target, pid_ns).await?, env.output(&debugger, pid_ns).await?);
        ensure!(a == b, "target {a}, debugger {b}");
        let init = env.output(&debugger, "tr '\\0' ' ' < /proc/1/cmdline").await?;
        ensure!(init.contains(RUNS), "pid 1 of the debugger's namespace is {init:?}");

        let unknown = container(env, &pod, "unknown-target", targeting("no-such-container"))?;
        let created = env.client.create_container(&pod.id, unknown, pod.config.clone()).await;
        expect_code(
            created,
            Code::NotFound,
            "CreateContainer targeting an unknown container",
        )?;
        let created_only = env
            .client
            .create_container(
                &pod.id,
                container(env, &pod, "created", LinuxContainerSecurityContext::default())?,
                pod.config.clone(),
            )
            .await?;
        let not_running = container(env, &pod, "not-running-target", targeting(&created_only))?;
        let created = env
            .client
            .create_container(&pod.id, not_running, pod.config.clone())
            .await;
        expect_code(
            created,
            Code::FailedPrecondition,
            "CreateContainer targeting a created container",
        )?;
        env.remove(&pod).await
    })
}

fn sysctls_are_set_in_the_pod(env: &Env) -> anyhow::Result<()> {
    env.block_on(async {
        let sysctls = [
            ("net.ipv4.ip_local_port_range", "40000 50000"),
            ("net.ipv4.ping_group_range", "0 65532"),
            ("kernel.shm_rmid_forced", "1"),
            ("kernel/msgmax", "4096"),
        ];
        let pod = run_pod(env, "sysctls", LinuxSandboxSecurityContext::default(), &sysctls).await?;
        let id = start(env, &pod, "reader", LinuxContainerSecurityContext::default()).await?;
        for (name, value) in sysctls {
            let path = format!("/proc/sys/{}", name.replace('.', "/"));
            let seen = env.output(&id, &format!("cat {path}")).await?;
            let seen = seen.split_whitespace().collect::<Vec<_>>().join(" ");
            ensure!(seen == value, "{name}: {seen:?}, want {value:?}");
        }
        env.remove(&pod).await
    })
}
