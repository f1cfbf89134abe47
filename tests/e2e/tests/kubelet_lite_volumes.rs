//! Volumes that follow their objects on a real kubelet-lite node (embedded runtime-core,
//! runc) joined to a real control plane, as the `[NodeConformance]` specs of the
//! Kubernetes 1.20 e2e suite check them on a kubelet (`test/e2e/common/`
//! `configmap_volume.go`, `secrets_volume.go`, `projected_*.go`, `downwardapi_volume.go`):
//!
//! - a configMap changed with `kubectl patch` while the pod runs reaches the files of its
//!   volume within the kubelet's resync (a minute plus jitter; the specs allow 240 s),
//!   while a `subPath` mount of one of its keys keeps the file it was made from;
//! - an optional configMap created after the pod started appears in its volume, and one
//!   deleted disappears; a required one deleted leaves its volume as it was;
//! - a secret's update, and a projected volume (configMap and downwardAPI) following both
//!   its configMap and the pod's labels;
//! - downwardAPI files of the pod's labels and annotations follow `kubectl label` and
//!   `kubectl annotate` (the pod update wakes the pod's worker: seconds, not a resync).
//!
//! One environment: a local registry with the busybox test images, one control plane and
//! node `klt-vol` (`198.18.89.1` on `kltvolnode`, pods on `kltvol0`, `198.18.88.0/24`);
//! the tests' objects live in namespace [`NAMESPACE`]. Needs root, the Kubernetes 1.20
//! binaries, etcd, runc, the CNI plugins, docker-registry and busybox-static (skipped
//! without them, failed with `CI=true`).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use e2e::eventually;
use test_harness::suite::{self, Test};
use test_harness::{ControlPlane, KubeletLite, KubeletLiteOptions, Registry, note};

/// The control plane binaries the test runs.
const KUBERNETES_BINARIES: [&str; 3] = ["kube-apiserver", "kube-controller-manager", "kube-scheduler"];

/// The node under test.
const NODE: &str = "klt-vol";

/// The namespace of the tests' pods and objects.
const NAMESPACE: &str = "klt-vol";

/// How long a pod may take to run (first pull included).
const POD_TIMEOUT: Duration = Duration::from_secs(120);

/// How long an object's change may take to reach a volume: the resync of the pod's
/// volumes comes 60 to 90 s after the previous one, then a pass of its worker (2 s) and
/// our polling (1 s per read). The upstream specs allow 240 s.
const RESYNC_TIMEOUT: Duration = Duration::from_secs(100);

/// How long a change of the pod's labels or annotations may take to reach its
/// downwardAPI files: the worker wakes up on the pod's update.
const POD_UPDATE_TIMEOUT: Duration = Duration::from_secs(20);

/// What [`Env::read`] prints for a file that is not there.
const ABSENT: &str = "<absent>";

struct Env {
    // Dropped in this order: the node, the control plane, the registry.
    node: KubeletLite,
    control_plane: ControlPlane,
    _registry: Registry,
    busybox: String,
}

impl Env {
    fn setup() -> anyhow::Result<Env> {
        test_harness::control_plane::kubernetes_binaries(&KUBERNETES_BINARIES)?;
        let registry = Registry::start()?;
        let images = test_harness::push_test_images(&registry)?;
        e2e::workspace_binary("runtime-core", "runtime-core-monitor")?;
        let binary = e2e::workspace_binary("kubelet-lite", "kubelet-lite")?;
        let control_plane = ControlPlane::start()?;
        let node = KubeletLite::start(
            &binary,
            &control_plane,
            &registry,
            KubeletLiteOptions {
                node_name: NODE.into(),
                node_ip: [198, 18, 89, 1].into(),
                node_bridge: "kltvolnode".into(),
                pod_bridge: "kltvol0".into(),
                pod_subnet: "198.18.88.0/24".into(),
                ..KubeletLiteOptions::default()
            },
        )?;
        let env = Env {
            node,
            control_plane,
            _registry: registry,
            busybox: images.busybox,
        };
        env.apply(&serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}))?;
        // The ServiceAccount admission of 1.20 refuses pods until the namespace's default
        // service account has its token.
        eventually(POD_TIMEOUT, || {
            let secrets = env.kubectl(&[
                "get",
                "serviceaccount",
                "default",
                "--ignore-not-found",
                "-o",
                "jsonpath={.secrets[*].name}",
            ])?;
            Ok((!secrets.trim().is_empty()).then_some(()))
        })
        .context("the namespace's default service account gets no token")?;
        Ok(env)
    }

    /// `kubectl apply` of `object` in [`NAMESPACE`].
    fn apply(&self, object: &serde_json::Value) -> anyhow::Result<()> {
        let mut object = object.clone();
        if object["kind"] != "Namespace" {
            object["metadata"]["namespace"] = NAMESPACE.into();
        }
        self.control_plane
            .kubectl_with_input(["apply", "-f", "-"], &object.to_string())
            .map(drop)
    }

    /// `kubectl ARGS` in [`NAMESPACE`]; its standard output.
    fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        self.control_plane
            .kubectl(["--namespace", NAMESPACE].iter().chain(args))
    }

    /// A pod on the node under test whose one container (`c`) sleeps, with `volumes`
    /// mounted as `mounts` say.
    fn sleeper(&self, name: &str, volumes: serde_json::Value, mounts: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"test": name}},
            "spec": {
                "nodeName": NODE,
                "terminationGracePeriodSeconds": 1,
                "volumes": volumes,
                "containers": [{
                    "name": "c",
                    "image": self.busybox,
                    "command": ["sh", "-c", "while true; do sleep 1; done"],
                    "volumeMounts": mounts,
                }],
            },
        })
    }

    /// Creates `pod` (with `kubectl create`: `apply` would add an annotation of its own)
    /// and waits until its container is ready.
    fn run(&self, pod: &serde_json::Value) -> anyhow::Result<()> {
        let mut pod = pod.clone();
        pod["metadata"]["namespace"] = NAMESPACE.into();
        self.control_plane
            .kubectl_with_input(["create", "-f", "-"], &pod.to_string())?;
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        eventually(POD_TIMEOUT, || {
            let ready = self.kubectl(&[
                "get",
                "pod",
                name,
                "-o",
                "jsonpath={.status.containerStatuses[*].ready}",
            ])?;
            Ok((ready == "true").then_some(()))
        })
        .with_context(|| self.diagnostics(name))
    }

    /// The content of `path` in the container of `pod`, or [`ABSENT`].
    fn read(&self, pod: &str, path: &str) -> anyhow::Result<String> {
        let script = format!("cat {path} 2>/dev/null || echo -n '{ABSENT}'");
        self.kubectl(&["exec", pod, "-c", "c", "--", "sh", "-c", &script])
    }

    /// Reads `path` in `pod` every second until it holds `expected` (or is absent, for
    /// [`ABSENT`]); returns how long that took.
    fn wait_for(&self, pod: &str, path: &str, expected: &str, timeout: Duration) -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            let last = match self.read(pod, path) {
                Ok(content) if content == expected => {
                    note(format!("{pod}: {path} is {expected:?} after {:.1?}", start.elapsed()));
                    return Ok(start.elapsed());
                }
                Ok(content) => content,
                Err(err) => format!("{err:#}"),
            };
            if start.elapsed() > timeout {
                bail!(
                    "{path} in pod {pod} is not {expected:?} after {timeout:?}, it is {last:?}\n{}",
                    self.diagnostics(pod)
                );
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// Checks that `path` in `pod` holds `expected` now.
    fn expect(&self, pod: &str, path: &str, expected: &str) -> anyhow::Result<()> {
        let content = self.read(pod, path)?;
        if content != expected {
            bail!("{path} in pod {pod} is {content:?}, not {expected:?}");
        }
        Ok(())
    }

    /// What a failed step shows: the pod and the end of the node's log.
    fn diagnostics(&self, pod: &str) -> String {
        let described = self
            .kubectl(&["get", "pod", pod, "-o", "yaml"])
            .unwrap_or_else(|err| format!("{err:#}"));
        format!(
            "pod {pod}:\n{described}\n\n{NODE}'s log ends with:\n{}",
            self.node.log_tail(60)
        )
    }
}

fn main() -> ExitCode {
    suite::run(
        Env::setup,
        vec![
            Test::new(
                "a_patched_config_map_reaches_its_volume_but_not_a_sub_path",
                a_patched_config_map_reaches_its_volume_but_not_a_sub_path,
            ),
            Test::new(
                "optional_config_maps_appear_and_disappear_a_required_one_stays",
                optional_config_maps_appear_and_disappear_a_required_one_stays,
            ),
            Test::new(
                "a_projected_volume_follows_its_config_map_and_labels",
                a_projected_volume_follows_its_config_map_and_labels,
            ),
            Test::new("a_secret_update_reaches_its_volume", a_secret_update_reaches_its_volume),
            Test::new(
                "downward_api_files_follow_labels_and_annotations",
                downward_api_files_follow_labels_and_annotations,
            ),
        ],
    )
}

/// A config map of [`NAMESPACE`] holding `data`.
fn config_map(name: &str, data: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
}

/// "updates should be reflected in volume": the file of a configMap volume follows a
/// `kubectl patch` of the config map within the resync; a `subPath` mount of the same
/// key keeps the old content (the kubelet bind-mounts the file once, when the container
/// is created, and never updates it).
fn a_patched_config_map_reaches_its_volume_but_not_a_sub_path(env: &Env) -> anyhow::Result<()> {
    env.apply(&config_map("cm-upd", serde_json::json!({"data-1": "value-1"})))?;
    let pod = "cm-upd";
    env.run(&env.sleeper(
        pod,
        serde_json::json!([{"name": "cfg", "configMap": {"name": "cm-upd"}}]),
        serde_json::json!([
            {"name": "cfg", "mountPath": "/etc/cfg"},
            {"name": "cfg", "mountPath": "/etc/sub/data-1", "subPath": "data-1"},
        ]),
    ))?;
    env.expect(pod, "/etc/cfg/data-1", "value-1")?;
    env.expect(pod, "/etc/sub/data-1", "value-1")?;

    env.kubectl(&["patch", "configmap", "cm-upd", "-p", r#"{"data":{"data-1":"value-2"}}"#])?;
    env.wait_for(pod, "/etc/cfg/data-1", "value-2", RESYNC_TIMEOUT)?;
    env.expect(pod, "/etc/sub/data-1", "value-1")
        .context("a subPath mount stays as it was made, as on the kubelet")?;
    Ok(())
}

/// "optional updates should be reflected in volume": an optional config map created
/// after the pod started appears in its volume, one deleted disappears, one updated
/// shows its new key; and a required one deleted in the same resync leaves its volume
/// as it was (the kubelet fails to update it and keeps it).
fn optional_config_maps_appear_and_disappear_a_required_one_stays(env: &Env) -> anyhow::Result<()> {
    env.apply(&config_map("cm-opt-del", serde_json::json!({"data-1": "value-1"})))?;
    env.apply(&config_map("cm-opt-upd", serde_json::json!({"data-1": "value-1"})))?;
    env.apply(&config_map("cm-required", serde_json::json!({"data-1": "value-1"})))?;
    let pod = "cm-opt";
    let volume = |name: &str, cm: &str, optional: bool| serde_json::json!({"name": name, "configMap": {"name": cm, "optional": optional}});
    let mount = |name: &str| serde_json::json!({"name": name, "mountPath": format!("/etc/cms/{name}")});
    env.run(&env.sleeper(
        pod,
        serde_json::json!([
            volume("create", "cm-opt-create", true),
            volume("delete", "cm-opt-del", true),
            volume("update", "cm-opt-upd", true),
            volume("required", "cm-required", false),
        ]),
        serde_json::json!([mount("create"), mount("delete"), mount("update"), mount("required")]),
    ))?;
    env.expect(pod, "/etc/cms/create/data-1", ABSENT)?;
    env.expect(pod, "/etc/cms/delete/data-1", "value-1")?;
    env.expect(pod, "/etc/cms/update/data-3", ABSENT)?;

    env.kubectl(&["delete", "configmap", "cm-opt-del", "cm-required"])?;
    env.apply(&config_map("cm-opt-upd", serde_json::json!({"data-3": "value-3"})))?;
    env.apply(&config_map("cm-opt-create", serde_json::json!({"data-1": "value-1"})))?;
    env.wait_for(pod, "/etc/cms/create/data-1", "value-1", RESYNC_TIMEOUT)?;
    // The same refresh rewrote them all.
    env.expect(pod, "/etc/cms/update/data-3", "value-3")?;
    env.expect(pod, "/etc/cms/update/data-1", ABSENT)?;
    env.expect(pod, "/etc/cms/delete/data-1", ABSENT)?;
    env.expect(pod, "/etc/cms/required/data-1", "value-1")
        .context("a required config map deleted leaves its volume as it was")?;
    Ok(())
}

/// "updates should be reflected in volume" (projected configMap) and "should update
/// labels on modification" (projected downwardAPI): one projected volume of both follows
/// the pod's labels at once and the config map within the resync.
fn a_projected_volume_follows_its_config_map_and_labels(env: &Env) -> anyhow::Result<()> {
    env.apply(&config_map("cm-proj", serde_json::json!({"data-1": "value-1"})))?;
    let pod = "projected";
    env.run(&env.sleeper(
        pod,
        serde_json::json!([{"name": "all", "projected": {"sources": [
            {"configMap": {"name": "cm-proj"}},
            {"downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
        ]}}]),
        serde_json::json!([{"name": "all", "mountPath": "/etc/all"}]),
    ))?;
    env.expect(pod, "/etc/all/data-1", "value-1")?;
    env.expect(pod, "/etc/all/labels", "test=\"projected\"")?;

    env.kubectl(&["label", "pod", pod, "key3=value3"])?;
    env.wait_for(
        pod,
        "/etc/all/labels",
        "key3=\"value3\"\ntest=\"projected\"",
        POD_UPDATE_TIMEOUT,
    )?;
    env.kubectl(&[
        "patch",
        "configmap",
        "cm-proj",
        "-p",
        r#"{"data":{"data-1":"value-2"}}"#,
    ])?;
    env.wait_for(pod, "/etc/all/data-1", "value-2", RESYNC_TIMEOUT)?;
    Ok(())
}

/// A secret volume follows a patch of the secret within the resync.
fn a_secret_update_reaches_its_volume(env: &Env) -> anyhow::Result<()> {
    let encoded = |value: &str| BASE64_STANDARD.encode(value);
    env.apply(&serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "secret-upd"},
        "data": {"data-1": encoded("value-1")},
    }))?;
    let pod = "secret-upd";
    env.run(&env.sleeper(
        pod,
        serde_json::json!([{"name": "creds", "secret": {"secretName": "secret-upd"}}]),
        serde_json::json!([{"name": "creds", "mountPath": "/etc/creds"}]),
    ))?;
    env.expect(pod, "/etc/creds/data-1", "value-1")?;

    let patch = serde_json::json!({"data": {"data-1": encoded("value-2")}}).to_string();
    env.kubectl(&["patch", "secret", "secret-upd", "-p", &patch])?;
    env.wait_for(pod, "/etc/creds/data-1", "value-2", RESYNC_TIMEOUT)?;
    Ok(())
}

/// "should update labels on modification" and "should update annotations on
/// modification": a downwardAPI volume's files follow `kubectl label` and `kubectl
/// annotate` of the running pod, in seconds.
fn downward_api_files_follow_labels_and_annotations(env: &Env) -> anyhow::Result<()> {
    let pod = "labelsupdate";
    let mut spec = env.sleeper(
        pod,
        serde_json::json!([{"name": "podinfo", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
        ]}}]),
        serde_json::json!([{"name": "podinfo", "mountPath": "/etc/podinfo"}]),
    );
    spec["metadata"]["labels"] = serde_json::json!({"key1": "value1", "key2": "value2"});
    spec["metadata"]["annotations"] = serde_json::json!({"builder": "bar"});
    env.run(&spec)?;
    env.expect(pod, "/etc/podinfo/labels", "key1=\"value1\"\nkey2=\"value2\"")?;
    env.expect(pod, "/etc/podinfo/annotations", "builder=\"bar\"")?;

    env.kubectl(&["label", "pod", pod, "key3=value3", "key1-"])?;
    env.wait_for(
        pod,
        "/etc/podinfo/labels",
        "key2=\"value2\"\nkey3=\"value3\"",
        POD_UPDATE_TIMEOUT,
    )?;
    env.kubectl(&["annotate", "pod", pod, "builder=foo", "--overwrite"])?;
    env.wait_for(pod, "/etc/podinfo/annotations", "builder=\"foo\"", POD_UPDATE_TIMEOUT)?;
    Ok(())
}
