//! What tests of a CRI runtime build and read: pod and container configs with names of
//! their own (tests run in parallel against one runtime), polling, and the CRI log format.
//!
//! These are plain `cri-api` messages and functions, so tests can send them through any
//! client (`cri-client`, or the raw tonic clients of [`crate::cri`]).
//!
//! ```
//! use test_harness::pods::{parse_log_line, LogLine};
//!
//! let line = parse_log_line("2024-05-01T10:00:00.123456789Z stdout F hello world").unwrap();
//! assert_eq!((line.stream, line.tag, line.text), ("stdout", "F", "hello world"));
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use cri_api::v1::{
    ContainerConfig, ContainerMetadata, ImageSpec, LinuxPodSandboxConfig, PodSandboxConfig, PodSandboxMetadata,
};

/// How often [`eventually`] asks again.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// A pod config named after `test` in Kubernetes namespace `namespace`, unique in this
/// process (name `TEST-N`, uid `PID-N-NAMESPACE`), labelled `test=NAME`, whose log
/// directory `LOG_ROOT/NAMESPACE_NAME_UID` exists (the kubelet creates it before
/// RunPodSandbox).
pub fn pod_config(log_root: &Path, namespace: &str, test: &str) -> anyhow::Result<PodSandboxConfig> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = format!("{}-{n}", test.replace('_', "-"));
    let uid = format!("{:08x}-{n:04x}-{namespace}", std::process::id());
    let log_directory = log_root.join(format!("{namespace}_{name}_{uid}"));
    std::fs::create_dir_all(&log_directory).with_context(|| format!("creating {}", log_directory.display()))?;
    Ok(PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.clone(),
            uid,
            namespace: namespace.to_owned(),
            attempt: 0,
        }),
        hostname: name.chars().take(63).collect(),
        log_directory: log_directory.display().to_string(),
        labels: HashMap::from([("test".to_owned(), name)]),
        linux: Some(LinuxPodSandboxConfig::default()),
        ..PodSandboxConfig::default()
    })
}

/// A container `name` of `image` (a busybox) running `sh -c script`, logging to
/// `name/0.log` in the pod's log directory (created here, as the kubelet does), labelled
/// with the pod's labels and `container=name`.
pub fn busybox_container(
    image: &str,
    name: &str,
    script: &str,
    pod: &PodSandboxConfig,
) -> anyhow::Result<ContainerConfig> {
    let log_dir = PathBuf::from(&pod.log_directory).join(name);
    std::fs::create_dir_all(&log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
    let mut labels = pod.labels.clone();
    labels.insert("container".to_owned(), name.to_owned());
    Ok(ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.to_owned(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: image.to_owned(),
            ..ImageSpec::default()
        }),
        command: vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()],
        log_path: format!("{name}/0.log"),
        labels,
        ..ContainerConfig::default()
    })
}

/// The log file [`busybox_container`] gives container `name` of `pod`.
pub fn container_log(pod: &PodSandboxConfig, name: &str) -> PathBuf {
    PathBuf::from(&pod.log_directory).join(name).join("0.log")
}

/// Calls `probe` every 100 ms until it returns `Some`, for at most `timeout`; an error
/// from `probe` ends the wait at once.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = probe().await? {
            return Ok(value);
        }
        if started.elapsed() > timeout {
            bail!("{what}: not within {timeout:?}");
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// One line of a CRI log file: `<RFC3339Nano timestamp> <stream> <P|F> <text>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLine<'a> {
    /// When the runtime read the output.
    pub timestamp: &'a str,
    /// `stdout` or `stderr`.
    pub stream: &'a str,
    /// `F` for a full line (or the last piece of one), `P` for a partial one.
    pub tag: &'a str,
    /// The output, without its newline.
    pub text: &'a str,
}

/// Parses one CRI log line, checking each field's syntax.
pub fn parse_log_line(line: &str) -> anyhow::Result<LogLine<'_>> {
    let mut fields = line.splitn(4, ' ');
    let (Some(timestamp), Some(stream), Some(tag), Some(text)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        bail!("not four space-separated fields: {line:?}");
    };
    ensure!(
        is_rfc3339_nano(timestamp),
        "timestamp {timestamp:?} is not RFC 3339: {line:?}"
    );
    ensure!(matches!(stream, "stdout" | "stderr"), "stream {stream:?}: {line:?}");
    ensure!(matches!(tag, "F" | "P"), "tag {tag:?}: {line:?}");
    Ok(LogLine {
        timestamp,
        stream,
        tag,
        text,
    })
}

/// `2006-01-02T15:04:05.999999999Z07:00` (Go's RFC3339Nano): date, `T`, time, optional
/// fraction, then `Z` or a `±hh:mm` offset.
fn is_rfc3339_nano(s: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let shape = |s: &str, pattern: &str| {
        s.len() == pattern.len()
            && s.bytes()
                .zip(pattern.bytes())
                .all(|(c, p)| if p == b'9' { c.is_ascii_digit() } else { c == p })
    };
    let (Some(date_time), rest) = (s.get(..19), s.get(19..).unwrap_or("")) else {
        return false;
    };
    if !shape(date_time, "9999-99-99T99:99:99") {
        return false;
    }
    let (fraction, zone) = match rest.strip_prefix('.') {
        Some(after_dot) => {
            let end = after_dot.find(|c: char| !c.is_ascii_digit()).unwrap_or(after_dot.len());
            (Some(&after_dot[..end]), &after_dot[end..])
        }
        None => (None, rest),
    };
    fraction.is_none_or(|f| digits(f) && f.len() <= 9)
        && (zone == "Z" || (shape(&zone.replacen('-', "+", 1), "+99:99")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_parse_and_bad_ones_are_refused() {
        let cases = [
            (
                "utc with nanoseconds",
                "2024-05-01T10:00:00.123456789Z stdout F a b",
                true,
            ),
            ("offset, no fraction", "2024-05-01T10:00:00+02:00 stderr P x", true),
            ("empty text", "2024-05-01T10:00:00Z stdout F ", true),
            ("unknown stream", "2024-05-01T10:00:00Z stdin F x", false),
            ("unknown tag", "2024-05-01T10:00:00Z stdout X x", false),
            (
                "ten fraction digits",
                "2024-05-01T10:00:00.1234567890Z stdout F x",
                false,
            ),
            ("no zone", "2024-05-01T10:00:00 stdout F x", false),
            ("three fields", "2024-05-01T10:00:00Z stdout F", false),
        ];
        for (desc, line, ok) in cases {
            assert_eq!(parse_log_line(line).is_ok(), ok, "{desc}: {line:?}");
        }
    }

    #[test]
    fn pods_get_unique_names_and_an_existing_log_directory() {
        let root = std::env::temp_dir().join(format!("harness-pods-{}", std::process::id()));
        let a = pod_config(&root, "ns", "some_test").unwrap();
        let b = pod_config(&root, "ns", "some_test").unwrap();
        let (a_meta, b_meta) = (a.metadata.clone().unwrap(), b.metadata.unwrap());
        assert_ne!(a_meta.name, b_meta.name);
        assert_ne!(a_meta.uid, b_meta.uid);
        assert!(a_meta.name.starts_with("some-test-"));
        assert!(Path::new(&a.log_directory).is_dir());
        let container = busybox_container("busybox", "c", "true", &a).unwrap();
        assert_eq!(container.labels["container"], "c");
        assert!(container_log(&a, "c").parent().unwrap().is_dir());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
