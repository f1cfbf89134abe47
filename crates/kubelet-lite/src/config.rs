//! The node agent's settings: command-line flags (clap) and the subset of the kubelet's
//! `KubeletConfiguration` file (`--config`, YAML or JSON) that covers the same settings.
//!
//! Flags win over the file, the file over the defaults, as with the real kubelet.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::housekeeping::ImageGcPolicy;
use crate::pods::admission::SysctlAllowlist;

/// The default `--root-dir`.
pub const DEFAULT_ROOT_DIR: &str = "/var/lib/kubelet-lite";
/// The default `--max-pods`, the kubelet's.
pub const DEFAULT_MAX_PODS: u32 = 110;
/// The default `--cluster-domain`.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
/// The default kubelet API port reported in `daemonEndpoints.kubeletEndpoint.Port`.
pub const DEFAULT_PORT: u16 = 10250;
/// The default pod network of the embedded runtime, when no `--runtime-config` names one.
pub const DEFAULT_POD_CIDR: &str = "198.18.100.0/24";
/// The default bridge of the embedded runtime's pod network.
pub const DEFAULT_POD_BRIDGE: &str = "kltlite0";

/// kubelet-lite's command line.
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "kubelet-lite",
    version,
    about = "A small Kubernetes node agent driving any CRI runtime"
)]
pub struct Args {
    /// Kubeconfig with the node's credentials; without it the node runs standalone from
    /// its static pod manifests.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The Node's name (default: the host name, lower-cased).
    #[arg(long, alias = "hostname-override")]
    pub node_name: Option<String>,
    /// The node's address (`InternalIP`); default: the first non-loopback IPv4 address.
    #[arg(long)]
    pub node_ip: Option<IpAddr>,
    /// The CRI endpoint (`unix:///path`); default: an embedded runtime-core started
    /// in-process on its own socket under the root directory (required in builds without
    /// the `embedded` feature).
    #[arg(long)]
    pub container_runtime_endpoint: Option<String>,
    /// The embedded runtime's configuration (runtime-core TOML); default: private
    /// directories under the root directory and a bridge network on `--pod-cidr`.
    #[arg(long)]
    pub runtime_config: Option<PathBuf>,
    /// The embedded runtime's pod network when no `--runtime-config` is given.
    #[arg(long)]
    pub pod_cidr: Option<String>,
    /// A directory of static pod manifests (YAML or JSON).
    #[arg(long, alias = "manifest-path")]
    pub pod_manifest_path: Option<PathBuf>,
    /// Where kubelet-lite keeps its files.
    #[arg(long)]
    pub root_dir: Option<PathBuf>,
    /// The most pods this node runs.
    #[arg(long)]
    pub max_pods: Option<u32>,
    /// The cluster DNS server addresses given to pods (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub cluster_dns: Vec<IpAddr>,
    /// The cluster's DNS domain.
    #[arg(long)]
    pub cluster_domain: Option<String>,
    /// The kubelet API port this node serves and advertises.
    #[arg(long)]
    pub port: Option<u16>,
    /// The address the kubelet API listens on (default: all addresses, `0.0.0.0`).
    #[arg(long)]
    pub address: Option<IpAddr>,
    /// The kubelet API's serving certificate (PEM, then its chain); without it and
    /// `--tls-private-key-file`, a self-signed one for the node's name and address.
    #[arg(long)]
    pub tls_cert_file: Option<PathBuf>,
    /// The private key of `--tls-cert-file`.
    #[arg(long)]
    pub tls_private_key_file: Option<PathBuf>,
    /// The CA that client certificates of the kubelet API must chain to.
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,
    /// Let requests with no credentials into the kubelet API as `system:anonymous`.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub anonymous_auth: Option<bool>,
    /// How the kubelet API authorizes requests: `Webhook` (SubjectAccessReview, the
    /// default with a kubeconfig) or `AlwaysAllow`.
    #[arg(long, value_enum)]
    pub authorization_mode: Option<AuthorizationModeName>,
    /// Image garbage collection starts when the image filesystem is this full (percent;
    /// 100 turns it off). Default 85.
    #[arg(long)]
    pub image_gc_high_threshold: Option<u8>,
    /// Image garbage collection frees space down to this usage (percent). Default 80.
    #[arg(long)]
    pub image_gc_low_threshold: Option<u8>,
    /// An image unused for less than this long is never collected (a Go duration). Default 2m.
    #[arg(long)]
    pub minimum_image_ttl_duration: Option<String>,
    /// Unsafe sysctls pods may set besides the safe ones: names, or prefixes ending in
    /// `*` (comma-separated), of namespaced sysctls only.
    #[arg(long, value_delimiter = ',')]
    pub allowed_unsafe_sysctls: Vec<String>,
    /// A KubeletConfiguration file (the subset of fields these flags cover).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// The kubelet API's authorization modes, as `--authorization-mode` and
/// `authorization.mode` name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
pub enum AuthorizationModeName {
    /// Every authenticated request is allowed: only when asked for.
    #[value(name = "AlwaysAllow")]
    AlwaysAllow,
    /// The apiserver decides through SubjectAccessReview.
    #[value(name = "Webhook")]
    Webhook,
}

/// `authentication` of a KubeletConfiguration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AuthenticationFile {
    /// `authentication.x509`.
    pub x509: X509File,
    /// `authentication.anonymous`.
    pub anonymous: EnabledFile,
}

/// `authentication.x509` of a KubeletConfiguration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct X509File {
    /// `clientCAFile`.
    #[serde(rename = "clientCAFile")]
    pub client_ca_file: Option<PathBuf>,
}

/// A `{enabled: BOOL}` block of a KubeletConfiguration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnabledFile {
    /// `enabled`.
    pub enabled: Option<bool>,
}

/// `authorization` of a KubeletConfiguration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AuthorizationFile {
    /// `mode`.
    pub mode: Option<AuthorizationModeName>,
}

/// The subset of `kubelet.config.k8s.io/v1beta1` `KubeletConfiguration` kubelet-lite reads.
/// Unknown fields are ignored, so a real kubelet's file works.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConfigFile {
    /// `staticPodPath`.
    pub static_pod_path: Option<PathBuf>,
    /// `maxPods`.
    pub max_pods: Option<u32>,
    /// `clusterDNS`.
    #[serde(rename = "clusterDNS")]
    pub cluster_dns: Vec<IpAddr>,
    /// `clusterDomain`.
    pub cluster_domain: Option<String>,
    /// `port`.
    pub port: Option<u16>,
    /// `address`.
    pub address: Option<IpAddr>,
    /// `tlsCertFile`.
    pub tls_cert_file: Option<PathBuf>,
    /// `tlsPrivateKeyFile`.
    pub tls_private_key_file: Option<PathBuf>,
    /// `authentication`.
    pub authentication: AuthenticationFile,
    /// `authorization`.
    pub authorization: AuthorizationFile,
    /// `containerRuntimeEndpoint` (a field of newer kubelets).
    pub container_runtime_endpoint: Option<String>,
    /// `podCIDR`.
    #[serde(rename = "podCIDR")]
    pub pod_cidr: Option<String>,
    /// `nodeStatusUpdateFrequency`, as a Go duration (`10s`, `1m`).
    pub node_status_update_frequency: Option<String>,
    /// `imageGCHighThresholdPercent`.
    #[serde(rename = "imageGCHighThresholdPercent")]
    pub image_gc_high_threshold_percent: Option<u8>,
    /// `imageGCLowThresholdPercent`.
    #[serde(rename = "imageGCLowThresholdPercent")]
    pub image_gc_low_threshold_percent: Option<u8>,
    /// `imageMinimumGCAge`, as a Go duration.
    #[serde(rename = "imageMinimumGCAge")]
    pub image_minimum_gc_age: Option<String>,
    /// `allowedUnsafeSysctls`.
    pub allowed_unsafe_sysctls: Vec<String>,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The configuration file is not valid YAML of the expected shape.
    #[error("parsing {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A duration is not a Go duration.
    #[error("invalid duration {0:?}")]
    Duration(String),
    /// Only one of the certificate and its key is given.
    #[error("--tls-cert-file and --tls-private-key-file go together")]
    TlsPair,
    /// The node name could not be found out.
    #[error("no --node-name given and the host name is unknown")]
    NodeName,
    /// An allowed unsafe sysctl that cannot be allowed.
    #[error("--allowed-unsafe-sysctls: {0}")]
    Sysctls(#[from] crate::pods::admission::AllowlistError),
    /// The image garbage collection thresholds are out of range or out of order.
    #[error(
        "image GC thresholds: high {high}% must be at most 100 and above low {low}% \
         (--image-gc-high-threshold, --image-gc-low-threshold)"
    )]
    ImageGcThresholds {
        /// The high threshold.
        high: u8,
        /// The low threshold.
        low: u8,
    },
}

/// Everything the node agent runs with, flags and file merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The node's kubeconfig; `None` runs standalone.
    pub kubeconfig: Option<PathBuf>,
    /// The Node's name.
    pub node_name: String,
    /// The node's address, if known.
    pub node_ip: Option<IpAddr>,
    /// The CRI endpoint, or `None` for the embedded runtime.
    pub runtime_endpoint: Option<String>,
    /// The embedded runtime's configuration file, if given.
    pub runtime_config: Option<PathBuf>,
    /// The embedded runtime's pod network without a configuration file.
    pub pod_cidr: String,
    /// The static pod directory.
    pub pod_manifest_path: Option<PathBuf>,
    /// The root directory.
    pub root_dir: PathBuf,
    /// The most pods this node runs.
    pub max_pods: u32,
    /// Cluster DNS servers.
    pub cluster_dns: Vec<IpAddr>,
    /// Cluster DNS domain.
    pub cluster_domain: String,
    /// The kubelet API port, served and advertised.
    pub port: u16,
    /// How the kubelet API is served.
    pub api: ApiSettings,
    /// How often the node status is computed (and patched if it changed).
    pub node_status_update_frequency: Duration,
    /// When unused images are collected.
    pub image_gc: ImageGcPolicy,
    /// The sysctls pods may set.
    pub sysctls: SysctlAllowlist,
}

/// The kubelet API's settings (flags and file merged).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiSettings {
    /// The listening address; `None` is all addresses.
    pub address: Option<IpAddr>,
    /// The serving certificate and key files; `None`: self-signed.
    pub tls_files: Option<(PathBuf, PathBuf)>,
    /// The client CA file.
    pub client_ca_file: Option<PathBuf>,
    /// Whether anonymous requests are let in.
    pub anonymous_auth: bool,
    /// The authorization mode asked for; `None` is the default (Webhook).
    pub authorization_mode: Option<AuthorizationModeName>,
}

impl Settings {
    /// Merges `args`, the file `args.config` names (if any) and the defaults.
    pub fn load(args: Args) -> Result<Settings, ConfigError> {
        let file = match &args.config {
            Some(path) => ConfigFile::load(path)?,
            None => ConfigFile::default(),
        };
        Settings::merge(args, file, hostname())
    }

    /// Merges flags over the file over the defaults; `hostname` is the default node name.
    pub fn merge(args: Args, file: ConfigFile, hostname: Option<String>) -> Result<Settings, ConfigError> {
        let image_gc = image_gc_policy(&args, &file)?;
        let node_name = args
            .node_name
            .or(hostname)
            .map(|name| name.to_lowercase())
            .ok_or(ConfigError::NodeName)?;
        let frequency = match &file.node_status_update_frequency {
            Some(text) => parse_duration(text)?,
            None => Duration::from_secs(10),
        };
        let tls_files = match (
            args.tls_cert_file.or(file.tls_cert_file),
            args.tls_private_key_file.or(file.tls_private_key_file),
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => return Err(ConfigError::TlsPair),
        };
        let api = ApiSettings {
            address: args.address.or(file.address),
            tls_files,
            client_ca_file: args.client_ca_file.or(file.authentication.x509.client_ca_file),
            anonymous_auth: args
                .anonymous_auth
                .or(file.authentication.anonymous.enabled)
                .unwrap_or(false),
            authorization_mode: args.authorization_mode.or(file.authorization.mode),
        };
        Ok(Settings {
            kubeconfig: args.kubeconfig,
            node_name,
            node_ip: args.node_ip,
            runtime_endpoint: args.container_runtime_endpoint.or(file.container_runtime_endpoint),
            runtime_config: args.runtime_config,
            pod_cidr: args
                .pod_cidr
                .or(file.pod_cidr)
                .unwrap_or_else(|| DEFAULT_POD_CIDR.to_owned()),
            pod_manifest_path: args.pod_manifest_path.or(file.static_pod_path),
            root_dir: args.root_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT_DIR)),
            max_pods: args.max_pods.or(file.max_pods).unwrap_or(DEFAULT_MAX_PODS),
            cluster_dns: if args.cluster_dns.is_empty() {
                file.cluster_dns
            } else {
                args.cluster_dns
            },
            cluster_domain: args
                .cluster_domain
                .or(file.cluster_domain)
                .unwrap_or_else(|| DEFAULT_CLUSTER_DOMAIN.to_owned()),
            port: args.port.or(file.port).unwrap_or(DEFAULT_PORT),
            api,
            node_status_update_frequency: frequency,
            image_gc,
            sysctls: SysctlAllowlist::new(if args.allowed_unsafe_sysctls.is_empty() {
                &file.allowed_unsafe_sysctls
            } else {
                &args.allowed_unsafe_sysctls
            })?,
        })
    }
}

/// The image GC policy from flags over the file over the kubelet's defaults; the low
/// threshold must stay below the high one, as the kubelet validates.
fn image_gc_policy(args: &Args, file: &ConfigFile) -> Result<ImageGcPolicy, ConfigError> {
    let defaults = ImageGcPolicy::default();
    let high = (args.image_gc_high_threshold)
        .or(file.image_gc_high_threshold_percent)
        .unwrap_or(defaults.high_threshold_percent);
    let low = (args.image_gc_low_threshold)
        .or(file.image_gc_low_threshold_percent)
        .unwrap_or(defaults.low_threshold_percent);
    if high > 100 || low >= high {
        return Err(ConfigError::ImageGcThresholds { high, low });
    }
    let min_age = match args
        .minimum_image_ttl_duration
        .as_ref()
        .or(file.image_minimum_gc_age.as_ref())
    {
        Some(text) => parse_duration(text)?,
        None => defaults.min_age,
    };
    Ok(ImageGcPolicy {
        high_threshold_percent: high,
        low_threshold_percent: low,
        min_age,
    })
}

impl ConfigFile {
    /// Reads a KubeletConfiguration file (YAML, of which JSON is a subset).
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        ConfigFile::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.into(),
            message,
        })
    }

    /// Parses the text of a KubeletConfiguration.
    pub fn parse(text: &str) -> Result<ConfigFile, String> {
        serde_saphyr::from_str(text).map_err(|err| err.to_string())
    }
}

/// Parses a Go duration made of whole units: `500ms`, `10s`, `5m`, `1h`, `1m30s`.
pub fn parse_duration(text: &str) -> Result<Duration, ConfigError> {
    let bad = || ConfigError::Duration(text.to_owned());
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let value: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => Duration::from_secs(value * 60),
            "h" => Duration::from_secs(value * 3600),
            _ => return Err(bad()),
        };
        total += unit;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// The host's name, as the kubelet's default node name.
fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let file = ConfigFile::parse(
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n\
             maxPods: 20\nclusterDNS: [198.19.0.10]\nclusterDomain: example.test\n\
             staticPodPath: /etc/manifests\nnodeStatusUpdateFrequency: 2s\nfailSwapOn: false\n",
        )
        .unwrap();
        let args = Args {
            max_pods: Some(30),
            ..Args::default()
        };
        let settings = Settings::merge(args, file, Some("Host-A".into())).unwrap();
        assert_eq!(settings.node_name, "host-a");
        assert_eq!(settings.max_pods, 30);
        assert_eq!(settings.cluster_dns, vec!["198.19.0.10".parse::<IpAddr>().unwrap()]);
        assert_eq!(settings.cluster_domain, "example.test");
        assert_eq!(settings.pod_manifest_path, Some(PathBuf::from("/etc/manifests")));
        assert_eq!(settings.node_status_update_frequency, Duration::from_secs(2));
        assert_eq!(settings.port, DEFAULT_PORT);
        assert_eq!(settings.root_dir, PathBuf::from(DEFAULT_ROOT_DIR));
        assert_eq!(settings.api, ApiSettings::default());
        assert_eq!(settings.image_gc, ImageGcPolicy::default());
    }

    #[test]
    fn image_gc_thresholds_come_from_the_file_and_flags_and_must_be_ordered() {
        let file = ConfigFile::parse(
            "imageGCHighThresholdPercent: 90\nimageGCLowThresholdPercent: 70\nimageMinimumGCAge: 5m\n",
        )
        .unwrap();
        let settings = Settings::merge(Args::default(), file.clone(), Some("n".into())).unwrap();
        let want = ImageGcPolicy {
            high_threshold_percent: 90,
            low_threshold_percent: 70,
            min_age: Duration::from_secs(300),
        };
        assert_eq!(settings.image_gc, want);
        let args = Args {
            image_gc_high_threshold: Some(100),
            minimum_image_ttl_duration: Some("0s".into()),
            ..Args::default()
        };
        let settings = Settings::merge(args, file.clone(), Some("n".into())).unwrap();
        assert_eq!(
            (settings.image_gc.high_threshold_percent, settings.image_gc.min_age),
            (100, Duration::ZERO)
        );
        for (high, low) in [(70, 70), (60, 70), (101, 80)] {
            let args = Args {
                image_gc_high_threshold: Some(high),
                image_gc_low_threshold: Some(low),
                ..Args::default()
            };
            let err = Settings::merge(args, file.clone(), Some("n".into())).unwrap_err();
            assert!(
                matches!(err, ConfigError::ImageGcThresholds { .. }),
                "{high}/{low}: {err}"
            );
        }
    }

    #[test]
    fn api_settings_come_from_the_file_and_flags_win() {
        let file = ConfigFile::parse(
            "tlsCertFile: /k/serving.crt\ntlsPrivateKeyFile: /k/serving.key\n\
             authentication:\n  x509:\n    clientCAFile: /k/ca.crt\n  anonymous:\n    enabled: true\n\
             authorization:\n  mode: AlwaysAllow\n",
        )
        .unwrap();
        let settings = Settings::merge(Args::default(), file.clone(), Some("n".into())).unwrap();
        assert_eq!(
            settings.api.tls_files,
            Some((PathBuf::from("/k/serving.crt"), PathBuf::from("/k/serving.key")))
        );
        assert_eq!(settings.api.client_ca_file, Some(PathBuf::from("/k/ca.crt")));
        assert!(settings.api.anonymous_auth);
        assert_eq!(
            settings.api.authorization_mode,
            Some(AuthorizationModeName::AlwaysAllow)
        );

        let args = Args::try_parse_from([
            "kubelet-lite",
            "--anonymous-auth=false",
            "--authorization-mode",
            "Webhook",
            "--client-ca-file",
            "/other/ca.crt",
        ])
        .unwrap();
        let settings = Settings::merge(args, file, Some("n".into())).unwrap();
        assert!(!settings.api.anonymous_auth);
        assert_eq!(settings.api.authorization_mode, Some(AuthorizationModeName::Webhook));
        assert_eq!(settings.api.client_ca_file, Some(PathBuf::from("/other/ca.crt")));
    }

    #[test]
    fn a_certificate_without_its_key_is_refused() {
        let args = Args::try_parse_from(["kubelet-lite", "--tls-cert-file", "/k/serving.crt"]).unwrap();
        assert!(matches!(
            Settings::merge(args, ConfigFile::default(), Some("n".into())),
            Err(ConfigError::TlsPair)
        ));
        let bare = Args::try_parse_from(["kubelet-lite", "--anonymous-auth"]).unwrap();
        assert_eq!(bare.anonymous_auth, Some(true));
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("x").is_err());
    }

    #[test]
    fn flags_parse() {
        let args = Args::try_parse_from([
            "kubelet-lite",
            "--node-name",
            "n1",
            "--cluster-dns",
            "198.19.0.10,198.19.0.11",
            "--max-pods",
            "5",
        ])
        .unwrap();
        assert_eq!(args.node_name.as_deref(), Some("n1"));
        assert_eq!(args.cluster_dns.len(), 2);
        assert_eq!(args.max_pods, Some(5));
    }
}
