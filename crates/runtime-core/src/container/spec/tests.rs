//! Unit tests of the spec translation, and one test that has the real runc run a spec.

use std::collections::HashMap;

use cri_api::v1::{
    Capability, ContainerMetadata, HugepageLimit, IdMapping, ImageSpec, LinuxContainerConfig, LinuxPodSandboxConfig,
    LinuxSandboxSecurityContext, Mount as CriMount, NamespaceOption, PodSandboxMetadata, SecurityProfile,
    UserNamespace, security_profile::ProfileType,
};

use super::*;
use crate::oci::spec::{Linux, LinuxIdMapping};

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| item.to_string()).collect()
}

fn facts() -> HostFacts {
    HostFacts {
        cgroups: CgroupFacts {
            unified: false,
            hugetlb: true,
            swap: true,
        },
        oom_score_adj: Some(0),
        cap_last_cap: Some(40),
        apparmor: true,
        bounding: None,
    }
}

/// Everything [`SpecInputs`] borrows, owned, with a busybox-like default.
struct Fixture {
    config: ContainerConfig,
    sandbox: PodSandboxConfig,
    image: ImageConfig,
    rootfs: tempfile::TempDir,
    namespaces: Namespaces,
    files: SandboxFiles,
    cgroups_path: String,
    hostname: String,
    facts: HostFacts,
}

impl Fixture {
    fn new() -> Fixture {
        let rootfs = tempfile::tempdir().expect("tempdir");
        fs::create_dir(rootfs.path().join("etc")).expect("mkdir etc");
        fs::write(
            rootfs.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnonroot:x:65532:65532::/home/nonroot:/bin/sh\n",
        )
        .expect("write passwd");
        fs::write(
            rootfs.path().join("etc/group"),
            "root:x:0:\nwheel:x:10:nonroot\nnonroot:x:65532:\n",
        )
        .expect("write group");
        Fixture {
            config: ContainerConfig {
                metadata: Some(ContainerMetadata {
                    name: "app".into(),
                    attempt: 0,
                }),
                image: Some(ImageSpec {
                    image: "registry.k8s.io/busybox:1.36".into(),
                    ..ImageSpec::default()
                }),
                ..ContainerConfig::default()
            },
            sandbox: PodSandboxConfig {
                metadata: Some(PodSandboxMetadata {
                    name: "pod".into(),
                    uid: "uid-1".into(),
                    namespace: "default".into(),
                    attempt: 0,
                }),
                hostname: "pod".into(),
                ..PodSandboxConfig::default()
            },
            image: ImageConfig {
                config: Some(ImageContainerConfig {
                    env: strings(&["PATH=/bin"]),
                    cmd: Some(strings(&["sh"])),
                    ..ImageContainerConfig::default()
                }),
                ..ImageConfig::default()
            },
            rootfs,
            namespaces: Namespaces {
                network: NamespaceMode::Join("/var/run/netns/pod".into()),
                ipc: NamespaceMode::Join("/proc/42/ns/ipc".into()),
                uts: NamespaceMode::Join("/proc/42/ns/uts".into()),
                pid: NamespaceMode::New,
                user: NamespaceMode::Host,
            },
            files: SandboxFiles::default(),
            cgroups_path: "/kubepods/pod-uid-1/c1".into(),
            hostname: "pod".into(),
            facts: facts(),
        }
    }

    fn build(&self) -> Result<Spec, SpecError> {
        let inputs = SpecInputs {
            container_id: "c1",
            sandbox_id: "s1",
            config: &self.config,
            sandbox: &self.sandbox,
            image: &self.image,
            rootfs: self.rootfs.path(),
            namespaces: &self.namespaces,
            sandbox_files: &self.files,
            cgroups_path: &self.cgroups_path,
            hostname: &self.hostname,
        };
        build_spec_with(&inputs, &self.facts)
    }

    fn spec(&self) -> Spec {
        self.build().expect("build spec")
    }

    fn image_config(&mut self) -> &mut ImageContainerConfig {
        self.image.config.get_or_insert_with(Default::default)
    }

    fn linux(&mut self) -> &mut LinuxContainerConfig {
        self.config.linux.get_or_insert_with(Default::default)
    }

    fn sc(&mut self) -> &mut LinuxContainerSecurityContext {
        self.linux().security_context.get_or_insert_with(Default::default)
    }

    fn resources(&mut self) -> &mut LinuxContainerResources {
        self.linux().resources.get_or_insert_with(Default::default)
    }

    fn privileged_sandbox(&mut self) {
        self.sandbox.linux = Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                privileged: true,
                ..Default::default()
            }),
            ..Default::default()
        });
    }
}

fn process(spec: &Spec) -> &Process {
    spec.process.as_ref().expect("process")
}

fn linux(spec: &Spec) -> &Linux {
    spec.linux.as_ref().expect("linux")
}

fn mount_table(spec: &Spec) -> Vec<(String, String, String)> {
    spec.mounts
        .iter()
        .map(|m| {
            (
                m.destination.clone(),
                m.kind.clone().unwrap_or_default(),
                m.options.join(","),
            )
        })
        .collect()
}

fn bind(container_path: &str, host_path: &Path) -> CriMount {
    CriMount {
        container_path: container_path.into(),
        host_path: host_path.to_str().expect("utf-8").into(),
        ..CriMount::default()
    }
}

#[test]
fn command_line_follows_the_kubelet_override_rules() {
    struct Case {
        desc: &'static str,
        entrypoint: Option<&'static [&'static str]>,
        cmd: Option<&'static [&'static str]>,
        command: &'static [&'static str],
        args: &'static [&'static str],
        want: Result<&'static [&'static str], &'static str>,
    }
    let cases = [
        Case {
            desc: "image entrypoint and cmd",
            entrypoint: Some(&["/entry"]),
            cmd: Some(&["--flag"]),
            command: &[],
            args: &[],
            want: Ok(&["/entry", "--flag"]),
        },
        Case {
            desc: "command only replaces the entrypoint and drops the image cmd",
            entrypoint: Some(&["/entry"]),
            cmd: Some(&["--flag"]),
            command: &["/bin/true"],
            args: &[],
            want: Ok(&["/bin/true"]),
        },
        Case {
            desc: "args only replace the image cmd after the image entrypoint",
            entrypoint: Some(&["/entry"]),
            cmd: Some(&["--flag"]),
            command: &[],
            args: &["--other"],
            want: Ok(&["/entry", "--other"]),
        },
        Case {
            desc: "command and args replace both",
            entrypoint: Some(&["/entry"]),
            cmd: Some(&["--flag"]),
            command: &["sh", "-c"],
            args: &["echo hi"],
            want: Ok(&["sh", "-c", "echo hi"]),
        },
        Case {
            desc: "image cmd alone",
            entrypoint: None,
            cmd: Some(&["sh"]),
            command: &[],
            args: &[],
            want: Ok(&["sh"]),
        },
        Case {
            desc: "args alone without an image entrypoint",
            entrypoint: None,
            cmd: Some(&["sh"]),
            command: &[],
            args: &["/bin/echo", "x"],
            want: Ok(&["/bin/echo", "x"]),
        },
        Case {
            desc: "an entrypoint of one empty string counts as none",
            entrypoint: Some(&[""]),
            cmd: Some(&["sh"]),
            command: &[],
            args: &[],
            want: Ok(&["sh"]),
        },
        Case {
            desc: "neither config nor image",
            entrypoint: None,
            cmd: None,
            command: &[],
            args: &[],
            want: Err("no command specified: neither the container config nor the image has a command or arguments"),
        },
        Case {
            desc: "empty image lists",
            entrypoint: Some(&[]),
            cmd: Some(&[]),
            command: &[],
            args: &[],
            want: Err("no command specified: neither the container config nor the image has a command or arguments"),
        },
        Case {
            desc: "an empty program name",
            entrypoint: None,
            cmd: None,
            command: &[""],
            args: &["x"],
            want: Err("the command's first argument is empty"),
        },
    ];
    for case in cases {
        let mut fixture = Fixture::new();
        fixture.image_config().entrypoint = case.entrypoint.map(strings);
        fixture.image_config().cmd = case.cmd.map(strings);
        fixture.config.command = strings(case.command);
        fixture.config.args = strings(case.args);
        match (fixture.build(), case.want) {
            (Ok(spec), Ok(want)) => assert_eq!(process(&spec).args, strings(want), "{}", case.desc),
            (Err(err), Err(want)) => {
                assert_eq!(err.to_string(), want, "{}", case.desc);
                assert!(err.is_invalid_argument(), "{}", case.desc);
            }
            (got, want) => panic!("{}: got {got:?}, want {want:?}", case.desc),
        }
    }
}

#[test]
fn environment_layers_image_then_config() {
    struct Case {
        desc: &'static str,
        image_env: &'static [&'static str],
        envs: &'static [(&'static str, &'static str)],
        hostname: &'static str,
        want: &'static [&'static str],
    }
    let cases = [
        Case {
            desc: "default PATH and HOSTNAME without image env",
            image_env: &[],
            envs: &[],
            hostname: "pod",
            want: &[DEFAULT_PATH_ENV, "HOSTNAME=pod"],
        },
        Case {
            desc: "the image PATH replaces the default in place",
            image_env: &["LANG=C", "PATH=/bin"],
            envs: &[],
            hostname: "pod",
            want: &["PATH=/bin", "HOSTNAME=pod", "LANG=C"],
        },
        Case {
            desc: "config envs replace image values in place and append new ones",
            image_env: &["A=1", "B=2"],
            envs: &[("B", "3"), ("C", "4"), ("A", "x=y")],
            hostname: "pod",
            want: &[DEFAULT_PATH_ENV, "HOSTNAME=pod", "A=x=y", "B=3", "C=4"],
        },
        Case {
            desc: "config can set HOSTNAME and PATH",
            image_env: &[],
            envs: &[("HOSTNAME", "other"), ("PATH", "/opt")],
            hostname: "pod",
            want: &["PATH=/opt", "HOSTNAME=other"],
        },
        Case {
            desc: "the last of repeated config envs wins",
            image_env: &[],
            envs: &[("X", "1"), ("X", "2")],
            hostname: "h",
            want: &[DEFAULT_PATH_ENV, "HOSTNAME=h", "X=2"],
        },
    ];
    for case in cases {
        let mut fixture = Fixture::new();
        fixture.image_config().env = strings(case.image_env);
        fixture.config.envs = case
            .envs
            .iter()
            .map(|(key, value)| KeyValue {
                key: key.to_string(),
                value: value.to_string(),
            })
            .collect();
        fixture.hostname = case.hostname.to_string();
        assert_eq!(process(&fixture.spec()).env, strings(case.want), "{}", case.desc);
    }
}

#[test]
fn working_directory_prefers_config_then_image() {
    let cases = [
        ("config wins", "/work", Some("/img"), "/work"),
        ("image when config is empty", "", Some("/img"), "/img"),
        ("root when neither", "", None, "/"),
        ("root when the image's is empty", "", Some(""), "/"),
    ];
    for (desc, config, image, want) in cases {
        let mut fixture = Fixture::new();
        fixture.config.working_dir = config.into();
        fixture.image_config().working_dir = image.map(str::to_string);
        assert_eq!(process(&fixture.spec()).cwd, want, "{desc}");
    }
    let mut fixture = Fixture::new();
    fixture.config.working_dir = "work".into();
    let err = fixture.build().expect_err("relative working directory");
    assert!(err.is_invalid_argument());
    assert_eq!(err.to_string(), "working directory \"work\" is not an absolute path");
}

#[test]
fn process_settings_come_from_the_config() {
    let mut fixture = Fixture::new();
    fixture.config.tty = true;
    fixture.sc().no_new_privs = true;
    fixture.sc().readonly_rootfs = true;
    fixture.sc().run_as_username = "nonroot".into();
    fixture.sc().supplemental_groups = vec![3000];
    let spec = fixture.spec();
    let process = process(&spec);
    assert!(process.terminal);
    assert!(process.no_new_privileges);
    assert_eq!(
        (process.user.uid, process.user.gid, process.user.additional_gids.clone()),
        (65532, 65532, vec![10, 3000, 65532])
    );
    let root = spec.root.as_ref().expect("root");
    assert!(root.readonly);
    assert_eq!(root.path, fixture.rootfs.path().to_str().expect("utf-8"));
    assert_eq!(spec.oci_version, OCI_VERSION);

    let mut fixture = Fixture::new();
    fixture.image_config().user = Some("mallory".into());
    let err = fixture.build().expect_err("unknown user");
    assert!(err.is_invalid_argument(), "{err}");
    assert_eq!(
        err.to_string(),
        "container user: user \"mallory\" not found in the image's /etc/passwd"
    );
}

#[test]
fn capabilities_apply_add_and_drop() {
    let default: Vec<String> = strings(DEFAULT_CAPABILITIES);
    let all: Vec<String> = strings(ALL_CAPABILITIES);
    let without = |set: &[String], cap: &str| set.iter().filter(|c| *c != cap).cloned().collect::<Vec<_>>();
    let with = |set: &[String], cap: &str| {
        let mut set = set.to_vec();
        set.push(cap.to_string());
        set
    };
    struct Case {
        desc: &'static str,
        add: &'static [&'static str],
        drop: &'static [&'static str],
        privileged: bool,
        cap_last_cap: Option<usize>,
        want: Result<Vec<String>, &'static str>,
    }
    let cases = [
        Case {
            desc: "defaults",
            add: &[],
            drop: &[],
            privileged: false,
            cap_last_cap: Some(40),
            want: Ok(default.clone()),
        },
        Case {
            desc: "add without the CAP_ prefix",
            add: &["NET_ADMIN"],
            drop: &[],
            privileged: false,
            cap_last_cap: Some(40),
            want: Ok(with(&default, "CAP_NET_ADMIN")),
        },
        Case {
            desc: "add with the prefix, lower case",
            add: &["cap_sys_admin"],
            drop: &[],
            privileged: false,
            cap_last_cap: Some(40),
            want: Ok(with(&default, "CAP_SYS_ADMIN")),
        },
        Case {
            desc: "adding a default one keeps it once",
            add: &["CHOWN"],
            drop: &[],
            privileged: false,
            cap_last_cap: Some(40),
            want: Ok(default.clone()),
        },
        Case {
            desc: "drop",
            add: &[],
            drop: &["NET_RAW"],
            privileged: false,
            cap_last_cap: Some(40),
            want: Ok(without(&default, "CAP_NET_RAW")),
        },
        Case {
            desc: "add and drop of the same capability drops it",
            add: &["NET_ADMIN"],
            drop: &["NET_ADMIN"],
            privileged: false,
            cap_last_cap: Some(40),
            want: Ok(default.clone()),
        },
        Case {
            desc: "add ALL",
            add: &["ALL"],
            drop: &[],
            privileged: false,
            cap_last_cap: Some(40),
            want: Ok(all.clone()),
        },
        Case {
            desc: "add ALL stops at the kernel's last capability",
            add: &["all"],
            drop: &[],
            privileged: false,
            cap_last_cap: Some(37),
            want: Ok(all[..38].to_vec()),
        },
        Case {
            desc: "add ALL, drop one",
            add: &["ALL"],
            drop: &["CHOWN"],
            privileged: false,
            cap_last_cap: Some(40),
            want: Ok(without(&all, "CAP_CHOWN")),
        },
        Case {
            desc: "drop ALL, add one",
            add: &["NET_BIND_SERVICE"],
            drop: &["ALL"],
            privileged: false,
            cap_last_cap: Some(40),
            want: Ok(strings(&["CAP_NET_BIND_SERVICE"])),
        },
        Case {
            desc: "drop ALL",
            add: &[],
            drop: &["ALL"],
            privileged: false,
            cap_last_cap: Some(40),
            want: Ok(vec![]),
        },
        Case {
            desc: "privileged gets everything and ignores drops",
            add: &[],
            drop: &["ALL"],
            privileged: true,
            cap_last_cap: Some(40),
            want: Ok(all.clone()),
        },
        Case {
            desc: "unknown capability",
            add: &["FLY"],
            drop: &[],
            privileged: false,
            cap_last_cap: Some(40),
            want: Err("unknown capability \"FLY\""),
        },
    ];
    for case in cases {
        let mut fixture = Fixture::new();
        fixture.facts.cap_last_cap = case.cap_last_cap;
        fixture.sc().capabilities = Some(Capability {
            add_capabilities: strings(case.add),
            drop_capabilities: strings(case.drop),
            ..Capability::default()
        });
        if case.privileged {
            fixture.sc().privileged = true;
            fixture.privileged_sandbox();
        }
        match (fixture.build(), case.want) {
            (Ok(spec), Ok(want)) => {
                let caps = process(&spec).capabilities.clone().expect("capabilities");
                assert_eq!(caps.bounding, want, "{}", case.desc);
                assert_eq!(caps.effective, want, "{}", case.desc);
                assert_eq!(caps.permitted, want, "{}", case.desc);
                assert!(caps.inheritable.is_empty() && caps.ambient.is_empty(), "{}", case.desc);
            }
            (Err(err), Err(want)) => {
                assert_eq!(err.to_string(), want, "{}", case.desc);
                assert!(err.is_invalid_argument(), "{}", case.desc);
            }
            (got, want) => panic!("{}: got {got:?}, want {want:?}", case.desc),
        }
    }
}

#[test]
fn privileged_containers_are_unconfined() {
    let mut fixture = Fixture::new();
    fixture.sc().privileged = true;
    let err = fixture
        .build()
        .expect_err("privileged container in an unprivileged pod");
    assert!(err.is_invalid_argument());

    fixture.privileged_sandbox();
    fixture.sc().masked_paths = strings(&["/proc/x"]);
    let spec = fixture.spec();
    let linux = linux(&spec);
    assert!(linux.masked_paths.is_empty() && linux.readonly_paths.is_empty());
    let resources = linux.resources.as_ref().expect("resources");
    assert_eq!(
        resources.devices,
        vec![LinuxDeviceCgroup {
            allow: true,
            access: Some("rwm".into()),
            ..LinuxDeviceCgroup::default()
        }]
    );
    // The host's devices, /dev/null among them.
    let null = linux
        .devices
        .iter()
        .find(|device| device.path == "/dev/null")
        .expect("/dev/null in the host devices");
    assert_eq!((null.kind.as_str(), null.major, null.minor), ("c", 1, 3));
    assert!(
        linux
            .devices
            .iter()
            .all(|d| !d.path.starts_with("/dev/pts/") && d.path != "/dev/console")
    );
    let table = mount_table(&spec);
    assert!(table.contains(&("/sys".into(), "sysfs".into(), "nosuid,noexec,nodev,rw".into())));
    assert!(table.contains(&(
        "/sys/fs/cgroup".into(),
        "cgroup".into(),
        "nosuid,noexec,nodev,relatime,rw".into()
    )));
}

#[test]
fn masked_and_readonly_paths_default_unless_given() {
    let spec = Fixture::new().spec();
    assert_eq!(linux(&spec).masked_paths, strings(DEFAULT_MASKED_PATHS));
    assert_eq!(linux(&spec).readonly_paths, strings(DEFAULT_READONLY_PATHS));

    let mut fixture = Fixture::new();
    fixture.sc().masked_paths = strings(&["/proc/a"]);
    fixture.sc().readonly_paths = strings(&["/proc/b"]);
    let spec = fixture.spec();
    assert_eq!(linux(&spec).masked_paths, strings(&["/proc/a"]));
    assert_eq!(linux(&spec).readonly_paths, strings(&["/proc/b"]));
}

#[test]
fn mounts_are_standard_then_pod_files_then_cri_sorted_by_depth() {
    let host = tempfile::tempdir().expect("tempdir");
    for dir in ["data", "cache", "logs", "hosts-dir"] {
        fs::create_dir(host.path().join(dir)).expect("mkdir");
    }
    for file in ["resolv.conf", "hostname", "hosts", "kubelet-hosts"] {
        fs::write(host.path().join(file), "").expect("write");
    }
    std::os::unix::fs::symlink(host.path().join("data"), host.path().join("data-link")).expect("symlink");
    let host_str = |name: &str| host.path().join(name).to_str().expect("utf-8").to_string();

    let mut fixture = Fixture::new();
    fixture.files = SandboxFiles {
        resolv_conf: Some(host.path().join("resolv.conf")),
        hostname: Some(host.path().join("hostname")),
        hosts: Some(host.path().join("hosts")),
    };
    fixture.config.mounts = vec![
        CriMount {
            readonly: true,
            propagation: MountPropagation::PropagationHostToContainer as i32,
            ..bind("/data/cache/", &host.path().join("cache"))
        },
        bind("/data", &host.path().join("data-link")),
        CriMount {
            propagation: MountPropagation::PropagationPrivate as i32,
            ..bind("/etc/hosts", &host.path().join("kubelet-hosts"))
        },
        CriMount {
            propagation: MountPropagation::PropagationBidirectional as i32,
            ..bind("/var/log/pods", &host.path().join("logs"))
        },
    ];
    let spec = fixture.spec();
    let table = mount_table(&spec);
    let expected: Vec<(String, String, String)> = vec![
        ("/proc".into(), "proc".into(), "nosuid,noexec,nodev".into()),
        (
            "/dev".into(),
            "tmpfs".into(),
            "nosuid,strictatime,mode=755,size=65536k".into(),
        ),
        (
            "/dev/pts".into(),
            "devpts".into(),
            "nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5".into(),
        ),
        (
            "/dev/shm".into(),
            "tmpfs".into(),
            "nosuid,noexec,nodev,mode=1777,size=65536k".into(),
        ),
        ("/dev/mqueue".into(), "mqueue".into(), "nosuid,noexec,nodev".into()),
        ("/sys".into(), "sysfs".into(), "nosuid,noexec,nodev,ro".into()),
        (
            "/sys/fs/cgroup".into(),
            "cgroup".into(),
            "nosuid,noexec,nodev,relatime,ro".into(),
        ),
        // Depth 1.
        ("/data".into(), "bind".into(), "rbind,rprivate,rw".into()),
        // Depth 2: the pod's files (the kubelet's /etc/hosts replaces the pod's), then CRI.
        ("/etc/hostname".into(), "bind".into(), "rbind,rprivate,rw".into()),
        ("/etc/resolv.conf".into(), "bind".into(), "rbind,rprivate,rw".into()),
        ("/data/cache".into(), "bind".into(), "rbind,rslave,ro".into()),
        ("/etc/hosts".into(), "bind".into(), "rbind,rprivate,rw".into()),
        // Depth 3.
        ("/var/log/pods".into(), "bind".into(), "rbind,rshared,rw".into()),
    ];
    assert_eq!(table, expected);
    let source = |destination: &str| {
        spec.mounts
            .iter()
            .find(|m| m.destination == destination)
            .and_then(|m| m.source.clone())
            .expect("mount")
    };
    // The source is kept as given, not resolved through the link (the kubelet checked
    // it); the kubelet's /etc/hosts wins.
    assert_eq!(source("/data"), host_str("data-link"));
    assert_eq!(source("/etc/hosts"), host_str("kubelet-hosts"));
    assert_eq!(source("/etc/hostname"), host_str("hostname"));
    assert_eq!(linux(&spec).rootfs_propagation.as_deref(), Some("rshared"));
}

#[test]
fn mount_rules() {
    let host = tempfile::tempdir().expect("tempdir");
    let file = host.path().join("file");
    fs::write(&file, "").expect("write");

    struct Case {
        desc: &'static str,
        setup: Box<dyn Fn(&mut Fixture)>,
        check: Box<dyn Fn(Result<Spec, SpecError>)>,
    }
    let file_for_cases = file.clone();
    let cases: Vec<Case> = vec![
        Case {
            desc: "a read-only rootfs makes the pod's files read-only",
            setup: Box::new({
                let file = file_for_cases.clone();
                move |f| {
                    f.sc().readonly_rootfs = true;
                    f.files.hosts = Some(file.clone());
                }
            }),
            check: Box::new(|spec| {
                let spec = spec.expect("spec");
                let hosts = spec
                    .mounts
                    .iter()
                    .find(|m| m.destination == "/etc/hosts")
                    .expect("hosts");
                assert_eq!(hosts.options, strings(&["rbind", "rprivate", "ro"]));
            }),
        },
        Case {
            desc: "only the rslave propagation asks for an rslave root",
            setup: Box::new({
                let file = file_for_cases.clone();
                move |f| {
                    f.config.mounts = vec![CriMount {
                        propagation: MountPropagation::PropagationHostToContainer as i32,
                        ..bind("/x", &file)
                    }];
                }
            }),
            check: Box::new(|spec| {
                assert_eq!(
                    linux(&spec.expect("spec")).rootfs_propagation.as_deref(),
                    Some("rslave")
                );
            }),
        },
        Case {
            desc: "private mounts leave the root propagation alone",
            setup: Box::new({
                let file = file_for_cases.clone();
                move |f| f.config.mounts = vec![bind("/x", &file)]
            }),
            check: Box::new(|spec| assert_eq!(linux(&spec.expect("spec")).rootfs_propagation, None)),
        },
        Case {
            desc: "an unknown propagation is private",
            setup: Box::new({
                let file = file_for_cases.clone();
                move |f| {
                    f.config.mounts = vec![CriMount {
                        propagation: 42,
                        ..bind("/x", &file)
                    }]
                }
            }),
            check: Box::new(|spec| {
                let spec = spec.expect("spec");
                let mount = spec.mounts.iter().find(|m| m.destination == "/x").expect("mount");
                assert_eq!(mount.options, strings(&["rbind", "rprivate", "rw"]));
            }),
        },
        Case {
            desc: "a CRI /dev/shm replaces the standard one",
            setup: Box::new({
                let file = file_for_cases.clone();
                move |f| f.config.mounts = vec![bind("/dev/shm", &file)]
            }),
            check: Box::new(|spec| {
                let spec = spec.expect("spec");
                let shm: Vec<_> = spec.mounts.iter().filter(|m| m.destination == "/dev/shm").collect();
                assert_eq!(shm.len(), 1);
                assert_eq!(shm[0].kind.as_deref(), Some("bind"));
            }),
        },
        Case {
            desc: "a CRI /dev replaces every standard mount below /dev",
            setup: Box::new({
                let file = file_for_cases.clone();
                move |f| f.config.mounts = vec![bind("/dev", file.parent().expect("parent"))]
            }),
            check: Box::new(|spec| {
                let spec = spec.expect("spec");
                let dev: Vec<_> = spec
                    .mounts
                    .iter()
                    .filter(|m| m.destination.starts_with("/dev"))
                    .map(|m| m.kind.clone().unwrap_or_default())
                    .collect();
                assert_eq!(dev, strings(&["bind"]));
            }),
        },
        Case {
            desc: "the host IPC namespace brings the host's /dev/shm",
            setup: Box::new(|f| f.namespaces.ipc = NamespaceMode::Host),
            check: Box::new(|spec| {
                let spec = spec.expect("spec");
                let shm = spec.mounts.iter().find(|m| m.destination == "/dev/shm").expect("shm");
                assert_eq!(
                    (shm.kind.as_deref(), shm.source.as_deref()),
                    (Some("bind"), Some("/dev/shm"))
                );
            }),
        },
        Case {
            desc: "a relative container path",
            setup: Box::new({
                let file = file_for_cases.clone();
                move |f| f.config.mounts = vec![bind("data", &file)]
            }),
            check: Box::new(|spec| {
                let err = spec.expect_err("relative");
                assert!(err.is_invalid_argument());
                assert_eq!(err.to_string(), "mount container path \"data\" is not an absolute path");
            }),
        },
        Case {
            desc: "a relative host path",
            setup: Box::new(|f| f.config.mounts = vec![bind("/data", Path::new("data"))]),
            check: Box::new(|spec| assert!(spec.expect_err("relative").is_invalid_argument())),
        },
        Case {
            desc: "a missing host path",
            setup: Box::new(|f| f.config.mounts = vec![bind("/data", Path::new("/nonexistent/kubelet-lite"))]),
            check: Box::new(|spec| {
                let err = spec.expect_err("missing");
                assert!(err.is_not_found() && !err.is_invalid_argument());
                assert_eq!(err.to_string(), "host path /nonexistent/kubelet-lite does not exist");
            }),
        },
        Case {
            desc: "image volumes",
            setup: Box::new({
                let file = file_for_cases.clone();
                move |f| {
                    f.config.mounts = vec![CriMount {
                        image: Some(ImageSpec {
                            image: "busybox".into(),
                            ..ImageSpec::default()
                        }),
                        ..bind("/img", &file)
                    }]
                }
            }),
            check: Box::new(|spec| {
                let err = spec.expect_err("unsupported");
                assert!(err.is_invalid_argument());
                assert_eq!(err.to_string(), "mount at \"/img\": image volumes are not supported");
            }),
        },
        Case {
            desc: "recursive read-only",
            setup: Box::new({
                let file = file_for_cases.clone();
                move |f| {
                    f.config.mounts = vec![CriMount {
                        recursive_read_only: true,
                        ..bind("/ro", &file)
                    }]
                }
            }),
            check: Box::new(|spec| assert!(spec.expect_err("unsupported").is_invalid_argument())),
        },
    ];
    for case in cases {
        let mut fixture = Fixture::new();
        (case.setup)(&mut fixture);
        eprintln!("case: {}", case.desc);
        (case.check)(fixture.build());
    }
}

#[test]
fn namespaces_follow_the_modes() {
    struct Case {
        desc: &'static str,
        namespaces: Namespaces,
        unified: bool,
        want: &'static [(NamespaceType, Option<&'static str>)],
        hostname: Option<&'static str>,
    }
    let join = |path: &str| NamespaceMode::Join(path.into());
    let cases = [
        Case {
            desc: "all new",
            namespaces: Namespaces {
                network: NamespaceMode::New,
                ipc: NamespaceMode::New,
                uts: NamespaceMode::New,
                pid: NamespaceMode::New,
                user: NamespaceMode::Host,
            },
            unified: false,
            want: &[
                (NamespaceType::Pid, None),
                (NamespaceType::Ipc, None),
                (NamespaceType::Uts, None),
                (NamespaceType::Mount, None),
                (NamespaceType::Network, None),
            ],
            hostname: Some("pod"),
        },
        Case {
            desc: "joining the pod's, pid of the container's own",
            namespaces: Namespaces {
                network: join("/var/run/netns/cni-1"),
                ipc: join("/proc/7/ns/ipc"),
                uts: join("/proc/7/ns/uts"),
                pid: NamespaceMode::New,
                user: NamespaceMode::Host,
            },
            unified: false,
            want: &[
                (NamespaceType::Pid, None),
                (NamespaceType::Ipc, Some("/proc/7/ns/ipc")),
                (NamespaceType::Uts, Some("/proc/7/ns/uts")),
                (NamespaceType::Mount, None),
                (NamespaceType::Network, Some("/var/run/netns/cni-1")),
            ],
            hostname: None,
        },
        Case {
            desc: "host namespaces are left out; the mount namespace is always new",
            namespaces: Namespaces {
                network: NamespaceMode::Host,
                ipc: NamespaceMode::Host,
                uts: NamespaceMode::Host,
                pid: NamespaceMode::Host,
                user: NamespaceMode::Host,
            },
            unified: false,
            want: &[(NamespaceType::Mount, None)],
            hostname: None,
        },
        Case {
            desc: "a cgroup namespace on pure cgroup v2",
            namespaces: Namespaces {
                network: NamespaceMode::Host,
                ipc: NamespaceMode::Host,
                uts: NamespaceMode::Host,
                pid: join("/proc/7/ns/pid"),
                user: NamespaceMode::Host,
            },
            unified: true,
            want: &[
                (NamespaceType::Pid, Some("/proc/7/ns/pid")),
                (NamespaceType::Mount, None),
                (NamespaceType::Cgroup, None),
            ],
            hostname: None,
        },
    ];
    for case in cases {
        let mut fixture = Fixture::new();
        fixture.namespaces = case.namespaces;
        fixture.facts.cgroups.unified = case.unified;
        let spec = fixture.spec();
        let got: Vec<(NamespaceType, Option<String>)> = linux(&spec)
            .namespaces
            .iter()
            .map(|ns| (ns.kind, ns.path.clone()))
            .collect();
        let want: Vec<(NamespaceType, Option<String>)> = case
            .want
            .iter()
            .map(|(kind, path)| (*kind, path.map(str::to_string)))
            .collect();
        assert_eq!(got, want, "{}", case.desc);
        assert_eq!(spec.hostname.as_deref(), case.hostname, "{}", case.desc);
    }
}

#[test]
fn resources_set_only_what_is_given() {
    let all_set = LinuxContainerResources {
        cpu_period: 100_000,
        cpu_quota: 50_000,
        cpu_shares: 512,
        memory_limit_in_bytes: 64 << 20,
        oom_score_adj: 500,
        cpuset_cpus: "0-1".into(),
        cpuset_mems: "0".into(),
        hugepage_limits: vec![HugepageLimit {
            page_size: "2MB".into(),
            limit: 0,
        }],
        unified: HashMap::from([("memory.high".to_string(), "max".to_string())]),
        memory_swap_limit_in_bytes: 128 << 20,
    };
    let full = CgroupFacts {
        unified: false,
        hugetlb: true,
        swap: true,
    };
    let bare = CgroupFacts {
        unified: false,
        hugetlb: false,
        swap: false,
    };
    struct Case {
        desc: &'static str,
        resources: LinuxContainerResources,
        cgroups: CgroupFacts,
        want: LinuxResources,
    }
    let cases = [
        Case {
            desc: "nothing set",
            resources: LinuxContainerResources::default(),
            cgroups: full,
            want: LinuxResources::default(),
        },
        Case {
            desc: "everything set",
            resources: all_set.clone(),
            cgroups: full,
            want: LinuxResources {
                memory: Some(LinuxMemory {
                    limit: Some(64 << 20),
                    swap: Some(128 << 20),
                    ..LinuxMemory::default()
                }),
                cpu: Some(LinuxCpu {
                    shares: Some(512),
                    quota: Some(50_000),
                    period: Some(100_000),
                    cpus: Some("0-1".into()),
                    mems: Some("0".into()),
                }),
                hugepage_limits: vec![LinuxHugepageLimit {
                    page_size: "2MB".into(),
                    limit: 0,
                }],
                unified: BTreeMap::from([("memory.high".to_string(), "max".to_string())]),
                ..LinuxResources::default()
            },
        },
        Case {
            desc: "no hugetlb controller, no swap accounting",
            resources: LinuxContainerResources {
                cpu_shares: 2,
                ..all_set.clone()
            },
            cgroups: bare,
            want: LinuxResources {
                memory: Some(LinuxMemory {
                    limit: Some(64 << 20),
                    ..LinuxMemory::default()
                }),
                cpu: Some(LinuxCpu {
                    shares: Some(2),
                    quota: Some(50_000),
                    period: Some(100_000),
                    cpus: Some("0-1".into()),
                    mems: Some("0".into()),
                }),
                unified: BTreeMap::from([("memory.high".to_string(), "max".to_string())]),
                ..LinuxResources::default()
            },
        },
        Case {
            desc: "an unlimited quota is kept, negative shares are not",
            resources: LinuxContainerResources {
                cpu_quota: -1,
                cpu_shares: -5,
                ..LinuxContainerResources::default()
            },
            cgroups: full,
            want: LinuxResources {
                cpu: Some(LinuxCpu {
                    quota: Some(-1),
                    ..LinuxCpu::default()
                }),
                ..LinuxResources::default()
            },
        },
    ];
    for case in cases {
        assert_eq!(
            resources_with(&case.resources, &case.cgroups),
            case.want,
            "{}",
            case.desc
        );
    }
    // The public function reads the host; it agrees on what does not depend on it.
    let public = resources(&all_set);
    assert_eq!(public.cpu, resources_with(&all_set, &full).cpu);
}

#[test]
fn spec_resources_devices_and_oom_score() {
    let mut fixture = Fixture::new();
    *fixture.resources() = LinuxContainerResources {
        cpu_shares: 256,
        oom_score_adj: -997,
        ..LinuxContainerResources::default()
    };
    fixture.facts.oom_score_adj = Some(-500);
    fixture.config.devices = vec![Device {
        container_path: "/dev/mynull".into(),
        host_path: "/dev/null".into(),
        permissions: "rw".into(),
    }];
    let spec = fixture.spec();
    // Raised to the runtime's own score.
    assert_eq!(process(&spec).oom_score_adj, Some(-500));
    let spec_linux = linux(&spec);
    assert_eq!(spec_linux.cgroups_path.as_deref(), Some("/kubepods/pod-uid-1/c1"));
    let resources = spec_linux.resources.as_ref().expect("resources");
    assert_eq!(resources.cpu.as_ref().and_then(|cpu| cpu.shares), Some(256));
    let mut want_rules = vec![LinuxDeviceCgroup {
        allow: false,
        access: Some("rwm".into()),
        ..LinuxDeviceCgroup::default()
    }];
    want_rules.extend(default_device_rules());
    want_rules.push(LinuxDeviceCgroup {
        allow: true,
        kind: Some("c".into()),
        major: Some(1),
        minor: Some(3),
        access: Some("rw".into()),
    });
    assert_eq!(resources.devices, want_rules);
    assert_eq!(spec_linux.devices.len(), 1);
    let device = &spec_linux.devices[0];
    assert_eq!(
        (
            device.path.as_str(),
            device.kind.as_str(),
            device.major,
            device.minor,
            device.file_mode
        ),
        ("/dev/mynull", "c", 1, 3, Some(0o666))
    );

    // Above the runtime's own score, and without resources.
    let mut fixture = Fixture::new();
    fixture.resources().oom_score_adj = 1000;
    assert_eq!(process(&fixture.spec()).oom_score_adj, Some(1000));
    let mut fixture = Fixture::new();
    fixture.config.linux = None;
    let spec = fixture.spec();
    assert_eq!(process(&spec).oom_score_adj, None);
    // The device rules are there even without resources.
    assert_eq!(linux(&spec).resources.as_ref().expect("resources").devices.len(), 11);
    let mut fixture = Fixture::new();
    fixture.resources().oom_score_adj = -1001;
    assert!(fixture.build().expect_err("out of range").is_invalid_argument());
    let mut fixture = Fixture::new();
    fixture.cgroups_path.clear();
    assert_eq!(linux(&fixture.spec()).cgroups_path, None);
}

#[test]
fn device_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let regular = dir.path().join("regular");
    fs::write(&regular, "").expect("write");
    std::os::unix::fs::symlink("/dev/null", dir.path().join("link-to-null")).expect("symlink");
    let cases: Vec<(&str, Device, Result<usize, &str>)> = vec![
        (
            "the container path defaults to the host path",
            Device {
                host_path: "/dev/null".into(),
                ..Device::default()
            },
            Ok(1),
        ),
        (
            "a directory adds the devices below it (symbolic links skipped)",
            Device {
                host_path: dir.path().to_str().expect("utf-8").into(),
                container_path: "/dev/dir".into(),
                ..Device::default()
            },
            Ok(0),
        ),
        (
            "not a device",
            Device {
                host_path: regular.to_str().expect("utf-8").into(),
                ..Device::default()
            },
            Err("invalid"),
        ),
        (
            "missing",
            Device {
                host_path: "/dev/kubelet-lite-none".into(),
                ..Device::default()
            },
            Err("not found"),
        ),
        (
            "bad permissions",
            Device {
                host_path: "/dev/null".into(),
                permissions: "rwx".into(),
                ..Device::default()
            },
            Err("invalid"),
        ),
        (
            "relative container path",
            Device {
                host_path: "/dev/null".into(),
                container_path: "dev/null".into(),
                ..Device::default()
            },
            Err("invalid"),
        ),
    ];
    for (desc, device, want) in cases {
        let mut fixture = Fixture::new();
        fixture.config.devices = vec![device.clone()];
        match (fixture.build(), want) {
            (Ok(spec), Ok(count)) => {
                let devices = &linux(&spec).devices;
                assert_eq!(devices.len(), count, "{desc}");
                if count == 1 {
                    assert_eq!(devices[0].path, device.host_path, "{desc}");
                }
            }
            (Err(err), Err("invalid")) => assert!(err.is_invalid_argument(), "{desc}: {err}"),
            (Err(err), Err("not found")) => assert!(err.is_not_found(), "{desc}: {err}"),
            (got, want) => panic!("{desc}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn annotations_and_sysctls() {
    let mut fixture = Fixture::new();
    fixture.config.annotations = HashMap::from([
        ("user".to_string(), "value".to_string()),
        (ANNOTATION_CONTAINER_TYPE.to_string(), "sandbox".to_string()),
    ]);
    fixture.sandbox.linux = Some(LinuxPodSandboxConfig {
        sysctls: HashMap::from([("net.ipv4.ip_unprivileged_port_start".to_string(), "0".to_string())]),
        ..Default::default()
    });
    let spec = fixture.spec();
    let want: BTreeMap<String, String> = [
        ("user", "value"),
        (ANNOTATION_CONTAINER_TYPE, "container"),
        (ANNOTATION_SANDBOX_ID, "s1"),
        (ANNOTATION_SANDBOX_NAMESPACE, "default"),
        (ANNOTATION_SANDBOX_NAME, "pod"),
        (ANNOTATION_CONTAINER_NAME, "app"),
        (ANNOTATION_IMAGE_NAME, "registry.k8s.io/busybox:1.36"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(spec.annotations, want);
    assert_eq!(
        linux(&spec).sysctl,
        BTreeMap::from([("net.ipv4.ip_unprivileged_port_start".to_string(), "0".to_string())])
    );
}

#[test]
fn security_profiles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = dir.path().join("profile.json");
    fs::write(&profile, r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []}"#).expect("write");
    let not_object = dir.path().join("list.json");
    fs::write(&not_object, "[]").expect("write");
    let profile_str = profile.to_str().expect("utf-8").to_string();

    let localhost = |reference: &str| SecurityProfile {
        profile_type: ProfileType::Localhost as i32,
        localhost_ref: reference.to_string(),
    };
    // Seccomp.
    let mut fixture = Fixture::new();
    fixture.sc().seccomp = Some(localhost(&profile_str));
    let spec = fixture.spec();
    assert_eq!(
        linux(&spec).seccomp,
        Some(serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []}))
    );
    #[allow(deprecated)]
    {
        let mut fixture = Fixture::new();
        fixture.sc().seccomp_profile_path = format!("localhost/{profile_str}");
        assert!(linux(&fixture.spec()).seccomp.is_some());
        let mut fixture = Fixture::new();
        fixture.sc().seccomp_profile_path = "runtime/default".into();
        let builtin = linux(&fixture.spec()).seccomp.clone().expect("runtime/default");
        assert_eq!(builtin["defaultAction"], "SCMP_ACT_ERRNO");
        let mut fixture = Fixture::new();
        fixture.sc().seccomp_profile_path = "docker/default".into();
        assert_eq!(linux(&fixture.spec()).seccomp, Some(builtin));
        let mut fixture = Fixture::new();
        fixture.sc().seccomp_profile_path = "unconfined".into();
        assert!(linux(&fixture.spec()).seccomp.is_none());
        let mut fixture = Fixture::new();
        fixture.sc().seccomp_profile_path = "bogus".into();
        assert!(fixture.build().expect_err("bogus").is_invalid_argument());
    }
    let mut fixture = Fixture::new();
    fixture.sc().seccomp = Some(localhost("/nonexistent/profile.json"));
    assert!(fixture.build().expect_err("missing").is_not_found());
    let mut fixture = Fixture::new();
    fixture.sc().seccomp = Some(localhost(not_object.to_str().expect("utf-8")));
    assert!(fixture.build().expect_err("not an object").is_invalid_argument());
    let mut fixture = Fixture::new();
    fixture.sc().seccomp = Some(localhost("profile.json"));
    assert!(fixture.build().expect_err("relative").is_invalid_argument());
    let mut fixture = Fixture::new();
    fixture.sc().seccomp = Some(SecurityProfile {
        profile_type: ProfileType::RuntimeDefault as i32,
        localhost_ref: "x".into(),
    });
    assert!(
        fixture
            .build()
            .expect_err("ref without Localhost")
            .is_invalid_argument()
    );
    // Privileged containers get no filter.
    let mut fixture = Fixture::new();
    fixture.privileged_sandbox();
    fixture.sc().privileged = true;
    fixture.sc().seccomp = Some(localhost(&profile_str));
    assert!(linux(&fixture.spec()).seccomp.is_none());

    // AppArmor.
    let mut fixture = Fixture::new();
    fixture.sc().apparmor = Some(localhost("k8s-nginx"));
    assert_eq!(process(&fixture.spec()).apparmor_profile.as_deref(), Some("k8s-nginx"));
    #[allow(deprecated)]
    {
        let mut fixture = Fixture::new();
        fixture.sc().apparmor_profile = "localhost/k8s-nginx".into();
        assert_eq!(process(&fixture.spec()).apparmor_profile.as_deref(), Some("k8s-nginx"));
    }
    let mut fixture = Fixture::new();
    fixture.sc().apparmor = Some(SecurityProfile {
        profile_type: ProfileType::RuntimeDefault as i32,
        localhost_ref: String::new(),
    });
    assert_eq!(
        process(&fixture.spec()).apparmor_profile,
        None,
        "docker-default is not loaded"
    );

    // Without AppArmor in the kernel: RuntimeDefault is skipped, Localhost refused.
    let mut fixture = Fixture::new();
    fixture.facts.apparmor = false;
    fixture.sc().apparmor = Some(SecurityProfile {
        profile_type: ProfileType::RuntimeDefault as i32,
        localhost_ref: String::new(),
    });
    assert_eq!(process(&fixture.spec()).apparmor_profile, None);
    let mut fixture = Fixture::new();
    fixture.facts.apparmor = false;
    fixture.sc().apparmor = Some(localhost("k8s-nginx"));
    let err = fixture.build().expect_err("no AppArmor");
    assert!(err.is_invalid_argument(), "{err}");
    assert!(err.to_string().contains("AppArmor is not enabled"), "{err}");
}

#[test]
fn stop_signals() {
    let cases = [
        ("unset", None, 15),
        ("full name", Some("SIGKILL"), 9),
        ("bare name", Some("QUIT"), 3),
        ("lower case", Some("sigint"), 2),
        ("number", Some("10"), 10),
        ("realtime", Some("SIGRTMIN+3"), 37),
        ("realtime from the top", Some("RTMAX-1"), 63),
        ("unknown name", Some("SIGFOO"), 15),
        ("number out of range", Some("65"), 15),
        ("realtime out of range", Some("SIGRTMIN+31"), 15),
        ("huge realtime offset", Some("SIGRTMIN+2147483647"), 15),
    ];
    for (desc, signal, want) in cases {
        let image = ImageConfig {
            config: Some(ImageContainerConfig {
                stop_signal: signal.map(str::to_string),
                ..ImageContainerConfig::default()
            }),
            ..ImageConfig::default()
        };
        assert_eq!(stop_signal(&image), want, "{desc}");
    }
    assert_eq!(stop_signal(&ImageConfig::default()), 15);
}

#[test]
fn serializes_for_runc() {
    let spec = Fixture::new().spec();
    let value = serde_json::to_value(&spec).expect("serialize");
    assert_eq!(value["process"]["cwd"], "/");
    assert_eq!(value["linux"]["cgroupsPath"], "/kubepods/pod-uid-1/c1");
    assert_eq!(value["linux"]["namespaces"][1]["type"], "ipc");
    assert!(value.get("hostname").is_none());
    let back: Spec = serde_json::from_value(value).expect("deserialize");
    assert_eq!(back, spec);
}

/// Builds a spec for the busybox test image and has the real runc run it.
#[test]
fn real_runc_runs_the_spec() {
    if let Err(missing) = test_harness::require_root().and_then(|()| test_harness::require_tools(&["runc"])) {
        if test_harness::in_ci() {
            panic!("{missing}");
        }
        eprintln!("skipping real_runc_runs_the_spec: {missing}");
        return;
    }
    if let Err(err) = run_busybox_with_runc() {
        panic!("{err:#}");
    }
}

fn run_busybox_with_runc() -> anyhow::Result<()> {
    use anyhow::Context;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let runc = test_harness::find_tool("runc").context("runc")?;
    let scratch = test_harness::scratch::ScratchDir::create("spec-runc")?;
    let bundle = scratch.path().join("bundle");
    let rootfs = bundle.join("rootfs");
    let state = scratch.path().join("runc-state");
    fs::create_dir_all(&rootfs)?;
    fs::create_dir_all(&state)?;
    let layer = test_harness::test_images::busybox_layer()?;
    crate::image::unpack::unpack_layer(&layer.blob()[..], None, &rootfs).context("unpacking busybox")?;

    // The pod's files and a volume, to have runc make every kind of mount.
    let pod = scratch.path().join("pod");
    fs::create_dir_all(pod.join("volume"))?;
    fs::write(pod.join("volume/greeting"), "hello from the volume\n")?;
    fs::write(pod.join("hostname"), "spec-test\n")?;
    fs::write(pod.join("hosts"), "127.0.0.1 localhost\n")?;
    fs::write(pod.join("resolv.conf"), "nameserver 198.18.0.1\n")?;

    let id = format!("spec-test-{}", std::process::id());
    let config = ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: "busybox".into(),
            attempt: 0,
        }),
        command: strings(&["sh", "-c"]),
        args: strings(&[
            "echo ok; id -u; id -G; cat /data/greeting; cat /etc/resolv.conf; hostname; \
             touch /data/x 2>/dev/null && echo writable || echo read-only",
        ]),
        mounts: vec![CriMount {
            readonly: true,
            ..bind("/data", &pod.join("volume"))
        }],
        linux: Some(LinuxContainerConfig {
            resources: Some(LinuxContainerResources {
                cpu_shares: 512,
                memory_limit_in_bytes: 64 << 20,
                // Below the runtime's own: must be raised, or runc fails on this machine.
                oom_score_adj: -997,
                ..LinuxContainerResources::default()
            }),
            security_context: Some(LinuxContainerSecurityContext {
                run_as_username: "nonroot".into(),
                supplemental_groups: vec![4242],
                no_new_privs: true,
                ..LinuxContainerSecurityContext::default()
            }),
        }),
        ..ContainerConfig::default()
    };
    let sandbox = PodSandboxConfig {
        hostname: "spec-test".into(),
        ..PodSandboxConfig::default()
    };
    let image = ImageConfig {
        config: Some(ImageContainerConfig {
            env: strings(&[DEFAULT_PATH_ENV]),
            cmd: Some(strings(&["sh"])),
            ..ImageContainerConfig::default()
        }),
        ..ImageConfig::default()
    };
    let namespaces = Namespaces {
        network: NamespaceMode::New,
        ipc: NamespaceMode::New,
        uts: NamespaceMode::New,
        pid: NamespaceMode::New,
        user: NamespaceMode::Host,
    };
    let files = SandboxFiles {
        resolv_conf: Some(pod.join("resolv.conf")),
        hostname: Some(pod.join("hostname")),
        hosts: Some(pod.join("hosts")),
    };
    let cgroups_path = format!("/{id}");
    let spec = build_spec(&SpecInputs {
        container_id: &id,
        sandbox_id: "sandbox",
        config: &config,
        sandbox: &sandbox,
        image: &image,
        rootfs: &rootfs,
        namespaces: &namespaces,
        sandbox_files: &files,
        cgroups_path: &cgroups_path,
        hostname: "spec-test",
    })?;
    fs::write(bundle.join("config.json"), serde_json::to_vec_pretty(&spec)?)?;

    let mut child = Command::new(&runc)
        .arg("--root")
        .arg(&state)
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting runc")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output()?;
    let _ = Command::new(&runc)
        .arg("--root")
        .arg(&state)
        .args(["delete", "--force", &id])
        .output();
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "runc run failed ({}): stdout {stdout:?}, stderr {:?}\nconfig.json: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        serde_json::to_string_pretty(&spec)?
    );
    let lines: Vec<&str> = stdout.lines().collect();
    anyhow::ensure!(
        lines
            == [
                "ok",
                "65532",
                "65532 4242",
                "hello from the volume",
                "nameserver 198.18.0.1",
                "spec-test",
                "read-only",
            ],
        "unexpected output {stdout:?}"
    );
    Ok(())
}

/// The names the rules of a seccomp profile allow (unconditionally or not).
fn allowed_names(profile: &serde_json::Value) -> BTreeSet<String> {
    profile["syscalls"]
        .as_array()
        .expect("syscalls")
        .iter()
        .filter(|rule| rule["action"] == "SCMP_ACT_ALLOW")
        .flat_map(|rule| rule["names"].as_array().expect("names").iter())
        .map(|name| name.as_str().expect("name").to_string())
        .collect()
}

#[test]
fn the_builtin_seccomp_profile_follows_the_capabilities() {
    let defaults = strings(DEFAULT_CAPABILITIES);
    let profile = seccomp::runtime_default(&defaults);
    assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(profile["defaultErrnoRet"], 1);
    if std::env::consts::ARCH == "x86_64" {
        assert_eq!(
            profile["architectures"],
            serde_json::json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
    }
    let allowed = allowed_names(&profile);
    for name in ["read", "execve", "clone", "socket", "personality", "chroot", "setuid"] {
        assert!(allowed.contains(name), "{name} is allowed");
    }
    for name in [
        "mount", "unshare", "setns", "keyctl", "add_key", "reboot", "bpf", "clone3",
    ] {
        assert!(!allowed.contains(name), "{name} is denied");
    }
    let rules = profile["syscalls"].as_array().expect("syscalls");
    let clone3 = rules.iter().find(|rule| rule["names"] == serde_json::json!(["clone3"]));
    assert_eq!(
        clone3.expect("clone3 rule")["errnoRet"],
        38,
        "clone3 falls back with ENOSYS"
    );
    let clone = rules.iter().find(|rule| rule["names"] == serde_json::json!(["clone"]));
    assert_eq!(clone.expect("clone rule")["args"][0]["op"], "SCMP_CMP_MASKED_EQ");

    let mut admin = defaults.clone();
    admin.push("CAP_SYS_ADMIN".into());
    let allowed = allowed_names(&seccomp::runtime_default(&admin));
    for name in ["mount", "umount2", "unshare", "setns", "clone", "clone3"] {
        assert!(allowed.contains(name), "{name} is allowed with CAP_SYS_ADMIN");
    }
    assert!(!allowed.contains("reboot"));

    // The lists are sets, and a syscall is either for everyone or guarded.
    let unique: BTreeSet<&str> = seccomp::ALLOWED.iter().copied().collect();
    assert_eq!(unique.len(), seccomp::ALLOWED.len());
    for (cap, names) in seccomp::BY_CAPABILITY {
        assert!(ALL_CAPABILITIES.contains(cap), "{cap}");
        for name in *names {
            assert!(!unique.contains(name), "{name} is both allowed and guarded by {cap}");
        }
    }
}

#[test]
fn the_builtin_seccomp_profile_is_applied_for_the_container_capabilities() {
    let mut fixture = Fixture::new();
    fixture.sc().seccomp = Some(SecurityProfile {
        profile_type: ProfileType::RuntimeDefault as i32,
        localhost_ref: String::new(),
    });
    fixture.sc().capabilities = Some(Capability {
        add_capabilities: strings(&["SYS_ADMIN"]),
        ..Capability::default()
    });
    let spec = fixture.spec();
    let profile = linux(&spec).seccomp.as_ref().expect("a filter");
    assert!(allowed_names(profile).contains("mount"));
}

fn userns(mode: cri_api::v1::NamespaceMode) -> Option<NamespaceOption> {
    let ranges = vec![IdMapping {
        host_id: 100_000,
        container_id: 0,
        length: 65_536,
    }];
    Some(NamespaceOption {
        pid: cri_api::v1::NamespaceMode::Container as i32,
        userns_options: Some(UserNamespace {
            mode: mode as i32,
            uids: ranges.clone(),
            gids: ranges,
        }),
        ..NamespaceOption::default()
    })
}

fn pod_userns(fixture: &mut Fixture, mode: cri_api::v1::NamespaceMode) {
    fixture.sandbox.linux = Some(LinuxPodSandboxConfig {
        security_context: Some(LinuxSandboxSecurityContext {
            namespace_options: userns(mode),
            ..LinuxSandboxSecurityContext::default()
        }),
        ..LinuxPodSandboxConfig::default()
    });
}

#[test]
fn a_pod_s_own_user_namespace_is_joined_with_its_ranges() {
    use cri_api::v1::NamespaceMode as Cri;
    let mut fixture = Fixture::new();
    fixture
        .linux()
        .security_context
        .get_or_insert_default()
        .namespace_options = userns(Cri::Node);
    let spec = fixture.spec();
    assert!(linux(&spec).uid_mappings.is_empty());
    assert!(linux(&spec).namespaces.iter().all(|ns| ns.kind != NamespaceType::User));

    let mut fixture = Fixture::new();
    pod_userns(&mut fixture, Cri::Pod);
    fixture.namespaces.user = NamespaceMode::Join("/run/pod/ns/user".into());
    // The kubelet repeats the pod's options in the container's.
    fixture
        .linux()
        .security_context
        .get_or_insert_default()
        .namespace_options = userns(Cri::Pod);
    let spec = fixture.spec();
    let user = linux(&spec).namespaces.iter().find(|ns| ns.kind == NamespaceType::User);
    assert_eq!(user.and_then(|ns| ns.path.as_deref()), Some("/run/pod/ns/user"));
    let range = LinuxIdMapping {
        container_id: 0,
        host_id: 100_000,
        size: 65_536,
    };
    assert_eq!(linux(&spec).uid_mappings, [range]);
    assert_eq!(linux(&spec).gid_mappings, [range]);
}

#[test]
fn user_namespaces_the_pod_does_not_have_are_refused() {
    use cri_api::v1::NamespaceMode as Cri;
    let refused = |fixture: &mut Fixture, what: &str| {
        let err = fixture.build().expect_err(what);
        assert!(matches!(err, SpecError::UserNamespace(_)), "{what}: {err}");
        assert!(err.is_invalid_argument(), "{what}");
    };
    // CONTAINER and TARGET are not offered, from the pod's options or the container's.
    for mode in [Cri::Container, Cri::Target] {
        let mut fixture = Fixture::new();
        pod_userns(&mut fixture, mode);
        refused(&mut fixture, "pod mode");
        let mut fixture = Fixture::new();
        fixture
            .linux()
            .security_context
            .get_or_insert_default()
            .namespace_options = userns(mode);
        refused(&mut fixture, "container mode");
    }
    // A container asking for a user namespace its pod does not have.
    let mut fixture = Fixture::new();
    fixture
        .linux()
        .security_context
        .get_or_insert_default()
        .namespace_options = userns(Cri::Pod);
    refused(&mut fixture, "container POD in a NODE pod");
    // A pod asking for one its sandbox was not given, and the reverse.
    let mut fixture = Fixture::new();
    pod_userns(&mut fixture, Cri::Pod);
    refused(&mut fixture, "no pinned user namespace");
    let mut fixture = Fixture::new();
    fixture.namespaces.user = NamespaceMode::Join("/run/pod/ns/user".into());
    refused(&mut fixture, "a user namespace the pod did not ask for");
}
