//! The client against fake plugins: shell scripts that record their stdin and `CNI_*`
//! environment and print canned results, so chaining, caching, rollback and timeouts are
//! tested without root or real networking.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use super::*;

/// A configuration directory, a plugin directory with the fake plugins, a cache and a log
/// of the plugin runs.
struct Fixture {
    _dir: tempfile::TempDir,
    config: CniConfig,
    log: PathBuf,
}

/// What one fake plugin run saw.
#[derive(Debug)]
struct Run {
    plugin: String,
    command: String,
    stdin: Value,
    env: Vec<String>,
}

const FAKE_PLUGIN: &str = r#"#!/bin/sh
name=$(basename "$0")
n=$(printf %04d "$(ls "LOG" | wc -l)")
cat > "LOG/$n-$name-$CNI_COMMAND.json"
env | grep '^CNI_' | sort > "LOG/$n-$name-$CNI_COMMAND.env"
case "$name/$CNI_COMMAND" in
fbridge/ADD)
    printf '{"cniVersion":"1.0.0","interfaces":[{"name":"br"},{"name":"%s","sandbox":"%s"}],"ips":[{"interface":1,"address":"198.18.16.2/24","gateway":"198.18.16.1"}]}' "$CNI_IFNAME" "$CNI_NETNS"
    ;;
fportmap/ADD | fpass/ADD)
    printf '{"cniVersion":"1.0.0","interfaces":[{"name":"%s","sandbox":"%s"}],"ips":[{"interface":0,"address":"198.18.16.2/24"}]}' "$CNI_IFNAME" "$CNI_NETNS"
    ;;
fnoip/ADD)
    printf '{"cniVersion":"1.0.0"}'
    ;;
ffail/ADD | fdelfail/DEL)
    printf '{"cniVersion":"1.0.0","code":11,"msg":"no luck","details":"by design"}'
    echo "some log line" >&2
    exit 1
    ;;
fslow/*)
    exec sleep 10
    ;;
esac
exit 0
"#;

const PLUGINS: &[&str] = &["fbridge", "fportmap", "fpass", "fnoip", "ffail", "fdelfail", "fslow"];

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        let log = dir.path().join("log");
        fs::create_dir_all(&bin).unwrap();
        fs::create_dir_all(&log).unwrap();
        let script = FAKE_PLUGIN.replace("LOG", &log.to_string_lossy());
        for plugin in PLUGINS {
            let path = bin.join(plugin);
            fs::write(&path, &script).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let config = CniConfig {
            conf_dir: dir.path().join("net.d"),
            bin_dirs: vec![dir.path().join("empty-bin"), bin],
            cache_dir: dir.path().join("cache"),
            template: None,
        };
        Fixture { _dir: dir, config, log }
    }

    fn write_conflist(&self, version: &str, plugins: &[Value]) {
        fs::create_dir_all(&self.config.conf_dir).unwrap();
        let list = json!({"cniVersion": version, "name": "fake", "plugins": plugins});
        fs::write(self.config.conf_dir.join("10-fake.conflist"), list.to_string()).unwrap();
    }

    fn standard_network(&self) {
        self.write_conflist(
            "1.0.0",
            &[
                json!({"type": "fbridge", "bridge": "fake0", "ipam": {"type": "fpass"}}),
                json!({"type": "fportmap", "capabilities": {"portMappings": true}}),
                json!({"type": "fpass"}),
            ],
        );
    }

    fn cni(&self) -> Cni {
        Cni::load(self.config.clone()).unwrap()
    }

    fn runs(&self) -> Vec<Run> {
        let mut names: Vec<String> = fs::read_dir(&self.log)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|name| {
                let stem = name.trim_end_matches(".json");
                let mut parts = stem.splitn(3, '-');
                let _seq = parts.next();
                let plugin = parts.next().unwrap().to_string();
                let command = parts.next().unwrap().to_string();
                let stdin = serde_json::from_slice(&fs::read(self.log.join(name)).unwrap()).unwrap();
                let env = fs::read_to_string(self.log.join(format!("{stem}.env")))
                    .unwrap()
                    .lines()
                    .map(str::to_string)
                    .collect();
                Run {
                    plugin,
                    command,
                    stdin,
                    env,
                }
            })
            .collect()
    }

    fn clear_log(&self) {
        for entry in fs::read_dir(&self.log).unwrap() {
            fs::remove_file(entry.unwrap().path()).unwrap();
        }
    }

    fn cache_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for network in fs::read_dir(&self.config.cache_dir).into_iter().flatten() {
            for entry in fs::read_dir(network.unwrap().path()).unwrap() {
                files.push(entry.unwrap().path());
            }
        }
        files
    }
}

fn sequence(runs: &[Run]) -> Vec<String> {
    runs.iter().map(|r| format!("{} {}", r.command, r.plugin)).collect()
}

fn attachment() -> Attachment {
    Attachment {
        container_id: "sandbox1".into(),
        // Any live network namespace file will do for the fakes.
        netns: "/proc/self/ns/net".into(),
        ifname: "eth0".into(),
        pod_namespace: "default".into(),
        pod_name: "web-0".into(),
        pod_uid: "uid-1".into(),
        port_mappings: vec![PortMapping {
            host_port: 18080,
            container_port: 80,
            protocol: "tcp".into(),
            host_ip: String::new(),
        }],
    }
}

#[tokio::test]
async fn add_chains_the_plugins_and_caches_the_result() {
    let fixture = Fixture::new();
    fixture.standard_network();
    let cni = fixture.cni();
    assert_eq!(cni.network_ready(), Ok(()));
    assert_eq!(cni.network_name().as_deref(), Some("fake"));

    let status = cni.add(&attachment()).await.unwrap();
    assert_eq!(status.ips, ["198.18.16.2".parse::<IpAddr>().unwrap()]);
    assert_eq!(status.interface, "eth0");

    let runs = fixture.runs();
    assert_eq!(sequence(&runs), ["ADD fbridge", "ADD fportmap", "ADD fpass"]);
    assert!(runs[0].stdin.get("prevResult").is_none());
    assert_eq!(runs[0].stdin["name"], "fake");
    assert_eq!(runs[0].stdin["cniVersion"], "1.0.0");
    assert_eq!(runs[0].stdin["bridge"], "fake0");
    assert_eq!(runs[1].stdin["prevResult"]["interfaces"][0]["name"], "br");
    assert_eq!(
        runs[1].stdin["runtimeConfig"],
        json!({"portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]})
    );
    assert!(runs[2].stdin.get("runtimeConfig").is_none());
    assert_eq!(runs[2].stdin["prevResult"]["interfaces"][0]["name"], "eth0");
    let bin = fixture.config.bin_dirs[1].display().to_string();
    let empty_bin = fixture.config.bin_dirs[0].display().to_string();
    assert_eq!(
        runs[0].env,
        [
            "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;\
             K8S_POD_INFRA_CONTAINER_ID=sandbox1;K8S_POD_UID=uid-1"
                .to_string(),
            "CNI_COMMAND=ADD".to_string(),
            "CNI_CONTAINERID=sandbox1".to_string(),
            "CNI_IFNAME=eth0".to_string(),
            "CNI_NETNS=/proc/self/ns/net".to_string(),
            format!("CNI_PATH={empty_bin}:{bin}"),
        ]
    );

    let cached = fixture.cache_files();
    assert_eq!(cached, [fixture.config.cache_dir.join("fake/sandbox1-eth0.json")]);
    let entry: CacheEntry = serde_json::from_slice(&fs::read(&cached[0]).unwrap()).unwrap();
    assert_eq!(entry.network_name, "fake");
    assert_eq!(entry.result["ips"][0]["address"], "198.18.16.2/24");
    assert_eq!(entry.config["plugins"][0]["type"], "fbridge");
}

#[tokio::test]
async fn del_after_a_restart_uses_the_cache_even_without_a_network() {
    let fixture = Fixture::new();
    fixture.standard_network();
    fixture.cni().add(&attachment()).await.unwrap();
    fixture.clear_log();

    // A new client (a restarted runtime) whose configuration directory is now empty.
    fs::remove_file(fixture.config.conf_dir.join("10-fake.conflist")).unwrap();
    let cni = fixture.cni();
    assert!(cni.network_ready().unwrap_err().contains("no network config found"));
    let mut gone = attachment();
    gone.netns = fixture.config.conf_dir.join("no-such-netns");
    cni.del(&gone).await.unwrap();

    let runs = fixture.runs();
    assert_eq!(sequence(&runs), ["DEL fpass", "DEL fportmap", "DEL fbridge"]);
    for run in &runs {
        // The cached result as prevResult; the cached port mappings; no namespace.
        assert_eq!(run.stdin["prevResult"]["ips"][0]["address"], "198.18.16.2/24");
        assert!(run.env.contains(&"CNI_NETNS=".to_string()), "{:?}", run.env);
    }
    assert!(runs[1].stdin["runtimeConfig"]["portMappings"].is_array());
    assert!(fixture.cache_files().is_empty());

    // Again: nothing cached, nothing configured, nothing to do.
    fixture.clear_log();
    cni.del(&gone).await.unwrap();
    assert!(fixture.runs().is_empty());
}

#[tokio::test]
async fn del_without_a_cache_entry_runs_the_current_network() {
    let fixture = Fixture::new();
    fixture.write_conflist("0.3.1", &[json!({"type": "fbridge"}), json!({"type": "fpass"})]);
    fixture.cni().del(&attachment()).await.unwrap();
    let runs = fixture.runs();
    assert_eq!(sequence(&runs), ["DEL fpass", "DEL fbridge"]);
    assert!(runs.iter().all(|r| r.stdin.get("prevResult").is_none()));
    assert!(runs[0].env.contains(&"CNI_NETNS=/proc/self/ns/net".to_string()));
}

#[tokio::test]
async fn a_failing_plugin_fails_add_with_its_message_and_undoes_the_chain() {
    let fixture = Fixture::new();
    fixture.write_conflist("1.0.0", &[json!({"type": "fbridge"}), json!({"type": "ffail"})]);
    let err = fixture.cni().add(&attachment()).await.unwrap_err();
    assert!(
        matches!(&err, CniError::Plugin { plugin, code: Some(11), message, .. }
            if plugin == "ffail" && message == "no luck: by design"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "cni plugin ffail ADD failed (code 11): no luck: by design"
    );
    let runs = fixture.runs();
    assert_eq!(
        sequence(&runs),
        ["ADD fbridge", "ADD ffail", "DEL ffail", "DEL fbridge"]
    );
    // The rollback hands the partial result on.
    assert_eq!(runs[3].stdin["prevResult"]["interfaces"][0]["name"], "br");
    assert!(fixture.cache_files().is_empty());
}

#[tokio::test]
async fn a_result_without_an_address_is_an_error() {
    let fixture = Fixture::new();
    fixture.write_conflist("1.0.0", &[json!({"type": "fnoip"})]);
    let err = fixture.cni().add(&attachment()).await.unwrap_err();
    assert!(matches!(err, CniError::NoAddress { .. }), "{err:?}");
    assert_eq!(sequence(&fixture.runs()), ["ADD fnoip", "DEL fnoip"]);
}

#[tokio::test]
async fn a_failing_del_keeps_the_cache_for_a_retry() {
    let fixture = Fixture::new();
    fixture.write_conflist("1.0.0", &[json!({"type": "fbridge"}), json!({"type": "fdelfail"})]);
    let cni = fixture.cni();
    cni.add(&attachment()).await.unwrap();
    let err = cni.del(&attachment()).await.unwrap_err();
    assert!(
        matches!(err, CniError::Plugin { ref plugin, .. } if plugin == "fdelfail"),
        "{err:?}"
    );
    assert_eq!(fixture.cache_files().len(), 1);
}

#[tokio::test]
async fn a_hanging_plugin_times_out() {
    let fixture = Fixture::new();
    fixture.write_conflist("1.0.0", &[json!({"type": "fslow"})]);
    let cni = fixture.cni().with_plugin_timeout(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let err = cni.add(&attachment()).await.unwrap_err();
    assert!(matches!(err, CniError::Timeout { operation: "ADD", .. }), "{err:?}");
    // ADD and the rollback's DEL each waited for the timeout, not for the sleep.
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn check_runs_every_plugin_with_the_cached_result() {
    let fixture = Fixture::new();
    fixture.standard_network();
    let cni = fixture.cni();
    let err = cni.check(&attachment()).await.unwrap_err();
    assert!(matches!(err, CniError::NotAttached { .. }), "{err:?}");
    cni.add(&attachment()).await.unwrap();
    fixture.clear_log();
    cni.check(&attachment()).await.unwrap();
    let runs = fixture.runs();
    assert_eq!(sequence(&runs), ["CHECK fbridge", "CHECK fportmap", "CHECK fpass"]);
    assert!(runs.iter().all(|r| r.stdin["prevResult"]["ips"].is_array()));
}

#[tokio::test]
async fn check_is_refused_before_0_4_0_and_skipped_with_disable_check() {
    let fixture = Fixture::new();
    fixture.write_conflist("0.3.1", &[json!({"type": "fbridge"})]);
    let cni = fixture.cni();
    cni.add(&attachment()).await.unwrap();
    let err = cni.check(&attachment()).await.unwrap_err();
    assert!(matches!(err, CniError::CheckUnsupported { .. }), "{err:?}");
    cni.del(&attachment()).await.unwrap();

    fs::create_dir_all(&fixture.config.conf_dir).unwrap();
    let list = json!({"cniVersion": "1.0.0", "name": "fake", "disableCheck": true, "plugins": [{"type": "fbridge"}]});
    fs::write(fixture.config.conf_dir.join("10-fake.conflist"), list.to_string()).unwrap();
    cni.add(&attachment()).await.unwrap();
    fixture.clear_log();
    cni.check(&attachment()).await.unwrap();
    assert!(fixture.runs().is_empty());
}

#[tokio::test]
async fn network_readiness_follows_the_configuration_directory() {
    let fixture = Fixture::new();
    let cni = fixture.cni();
    assert!(cni.network_ready().unwrap_err().contains("no network config found"));
    let err = cni.add(&attachment()).await.unwrap_err();
    assert!(matches!(err, CniError::NotReady(_)), "{err:?}");

    fixture.write_conflist(
        "1.0.0",
        &[
            json!({"type": "fbridge", "ipam": {"type": "nosuchipam"}}),
            json!({"type": "nosuchplugin"}),
        ],
    );
    let reason = cni.network_ready().unwrap_err();
    assert!(
        reason.contains("nosuchipam, nosuchplugin") && reason.contains("not found"),
        "{reason}"
    );

    fixture.standard_network();
    assert_eq!(cni.network_ready(), Ok(()));
    assert!(cni.reload().is_ok());
}

#[tokio::test]
async fn attachments_that_would_break_the_protocol_are_refused() {
    let fixture = Fixture::new();
    fixture.standard_network();
    let cni = fixture.cni();
    let cases: Vec<(&str, Attachment)> = vec![
        (
            "../x",
            Attachment {
                container_id: "../x".into(),
                ..attachment()
            },
        ),
        (
            "empty id",
            Attachment {
                container_id: String::new(),
                ..attachment()
            },
        ),
        (
            "long ifname",
            Attachment {
                ifname: "a-very-long-ifname".into(),
                ..attachment()
            },
        ),
        (
            "ifname slash",
            Attachment {
                ifname: "e/0".into(),
                ..attachment()
            },
        ),
        (
            "semicolon",
            Attachment {
                pod_name: "a;K8S_POD_UID=x".into(),
                ..attachment()
            },
        ),
    ];
    for (desc, bad) in cases {
        let err = cni.add(&bad).await.unwrap_err();
        assert!(matches!(err, CniError::InvalidAttachment(_)), "{desc}: {err:?}");
        let err = cni.del(&bad).await.unwrap_err();
        assert!(matches!(err, CniError::InvalidAttachment(_)), "{desc}: {err:?}");
    }
    let not_a_namespace = Attachment {
        netns: fixture.config.conf_dir.join("10-fake.conflist"),
        ..attachment()
    };
    let err = cni.add(&not_a_namespace).await.unwrap_err();
    assert!(matches!(err, CniError::InvalidAttachment(_)), "{err:?}");
    assert!(fixture.runs().is_empty());
}

#[test]
fn cri_port_mappings_without_a_host_port_are_not_mappings() {
    use cri_api::v1::{PortMapping as CriPortMapping, Protocol};
    let udp = CriPortMapping {
        protocol: Protocol::Udp as i32,
        container_port: 53,
        host_port: 5353,
        host_ip: "127.0.0.1".into(),
    };
    assert_eq!(
        PortMapping::from_cri(&udp),
        Some(PortMapping {
            host_port: 5353,
            container_port: 53,
            protocol: "udp".into(),
            host_ip: "127.0.0.1".into()
        })
    );
    let no_host_port = CriPortMapping {
        host_port: 0,
        ..udp.clone()
    };
    assert_eq!(PortMapping::from_cri(&no_host_port), None);
    let out_of_range = CriPortMapping {
        host_port: 70000,
        ..udp
    };
    assert_eq!(PortMapping::from_cri(&out_of_range), None);
}

/// A template of the fake bridge on the pod CIDRs, as containerd's documentation writes one.
const TEMPLATE: &str = r#"{"cniVersion": "1.0.0", "name": "templated", "plugins": [
  {"type": "fbridge", "ipam": {"type": "fpass", "ranges": [
    {{- range $i, $range := .PodCIDRRanges}}{{if $i}}, {{end}}[{"subnet": "{{$range}}"}]{{end}}],
    "routes": [{{range $i, $route := .Routes}}{{if $i}}, {{end}}{"dst": "{{$route}}"}{{end}}]}},
  {"type": "fportmap", "capabilities": {"portMappings": true}}]}"#;

impl Fixture {
    /// The fixture with [`TEMPLATE`] as its configuration template.
    fn with_template(text: &str) -> Fixture {
        let mut fixture = Fixture::new();
        let path = fixture._dir.path().join("cni.template");
        fs::write(&path, text).unwrap();
        fixture.config.template = Some(path);
        fixture
    }
}

fn pod_cidrs(ranges: &[&str]) -> template::PodCidrData {
    template::PodCidrData::new(ranges.iter().map(|r| r.to_string()).collect())
}

#[test]
fn the_template_becomes_the_network_once_the_pod_cidr_is_known_and_never_replaces_one() {
    let fixture = Fixture::with_template(TEMPLATE);
    let cni = fixture.cni();
    assert!(cni.network_ready().is_err(), "no network before the pod CIDR");

    let rendered = fixture.config.conf_dir.join(RENDERED_CONFIG);
    let outcome = cni
        .set_pod_cidrs(&pod_cidrs(&["10.244.3.0/24", "fd00:3::/64"]))
        .unwrap();
    assert_eq!(outcome, PodCidrOutcome::Rendered(rendered.clone()));
    assert_eq!(cni.network_ready(), Ok(()));
    assert_eq!(cni.network_name().as_deref(), Some("templated"));
    let written: Value = serde_json::from_str(&fs::read_to_string(&rendered).unwrap()).unwrap();
    assert_eq!(
        written["plugins"][0]["ipam"],
        json!({"type": "fpass", "ranges": [[{"subnet": "10.244.3.0/24"}], [{"subnet": "fd00:3::/64"}]],
               "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]})
    );

    // As containerd: a configured network stays, whatever CIDR comes later.
    let before = fs::read_to_string(&rendered).unwrap();
    let again = cni.set_pod_cidrs(&pod_cidrs(&["10.244.9.0/24"])).unwrap();
    assert_eq!(again, PodCidrOutcome::AlreadyConfigured(rendered.clone()));
    assert_eq!(fs::read_to_string(&rendered).unwrap(), before);
}

#[test]
fn a_network_written_by_someone_else_is_left_alone_and_no_template_writes_nothing() {
    let fixture = Fixture::with_template(TEMPLATE);
    fixture.standard_network();
    let own = fixture.config.conf_dir.join("10-fake.conflist");
    let outcome = fixture.cni().set_pod_cidrs(&pod_cidrs(&["10.244.3.0/24"])).unwrap();
    assert_eq!(outcome, PodCidrOutcome::AlreadyConfigured(own));
    assert!(!fixture.config.conf_dir.join(RENDERED_CONFIG).exists());

    let plain = Fixture::new();
    let outcome = plain.cni().set_pod_cidrs(&pod_cidrs(&["10.244.3.0/24"])).unwrap();
    assert_eq!(outcome, PodCidrOutcome::NoTemplate);
    assert!(!plain.config.conf_dir.join(RENDERED_CONFIG).exists());
}

#[test]
fn a_template_that_cannot_be_rendered_or_loaded_is_an_error_naming_it() {
    let fixture = Fixture::with_template(r#"{"subnet": "{{.PodCIDR | printf}}"}"#);
    let err = fixture.cni().set_pod_cidrs(&pod_cidrs(&["10.244.3.0/24"])).unwrap_err();
    assert!(
        matches!(&err, CniError::Template { path, .. } if path.ends_with("cni.template")),
        "{err}"
    );
    assert!(err.to_string().contains("unsupported action"), "{err}");
    assert!(!fixture.config.conf_dir.join(RENDERED_CONFIG).exists());

    // Rendered, but no network list: the runtime says so instead of reporting success.
    let fixture = Fixture::with_template(r#"{"subnet": "{{.PodCIDR}}"}"#);
    let cni = fixture.cni();
    let err = cni.set_pod_cidrs(&pod_cidrs(&["10.244.3.0/24"])).unwrap_err();
    assert!(err.to_string().contains(RENDERED_CONFIG), "{err}");
    assert!(cni.network_ready().is_err());
}
