//! Container log rotation, as the kubelet's `container_log_manager.go` does it.
//!
//! Every period, for each running container whose log (CRI ContainerStatus `log_path`) is
//! at least [`LogRotationPolicy::max_size`]:
//!
//! 1. leftovers go: `*.tmp` files of an interrupted compression, and rotated files that
//!    also exist gzipped;
//! 2. the oldest rotated files go, so that `max_files - 2` stay (the current log and the
//!    one about to be rotated make `max_files`);
//! 3. the rotated files left are gzipped (`<name>.gz`, written to `<name>.tmp` first);
//! 4. the log is renamed to `<path>.<YYYYMMDD-hhmmss>` (UTC) and the runtime is asked to
//!    reopen it (ReopenContainerLog), so the container writes to a fresh file; if it
//!    cannot, the rename is undone, to be tried again next period.
//!
//! A log that is missing altogether (rotated, then the reopen failed) is reopened.
//! Rotated files sort oldest first by name.

use std::fs::{self, File};
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use cri_client::v1::{ContainerFilter, ContainerState, ContainerStateValue};
use flate2::Compression;
use flate2::write::GzEncoder;

use super::HousekeepingError;

/// The suffix of gzipped rotated logs.
const COMPRESSED_SUFFIX: &str = ".gz";

/// The suffix of a compression in progress.
const TMP_SUFFIX: &str = ".tmp";

/// The timestamp a rotated log's name ends with (Go's `20060102-150405`, in UTC).
const TIMESTAMP_FORMAT: &str = "%Y%m%d-%H%M%S";

/// When logs rotate and how many files stay (the kubelet's `LogRotatePolicy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRotationPolicy {
    /// A log this large (bytes) is rotated. Default 10 MiB (`containerLogMaxSize`).
    pub max_size: u64,
    /// How many files a container's log may span, the current one included; at least 2.
    /// Default 5 (`containerLogMaxFiles`).
    pub max_files: usize,
}

impl Default for LogRotationPolicy {
    fn default() -> LogRotationPolicy {
        LogRotationPolicy {
            max_size: 10 * 1024 * 1024,
            max_files: 5,
        }
    }
}

/// What to do with the rotated files of one log before it rotates again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupPlan {
    /// Files to delete.
    pub remove: Vec<PathBuf>,
    /// Rotated files to gzip.
    pub compress: Vec<PathBuf>,
}

/// The plan for `rotated`, the files named `<log>.*` beside a log, when at most
/// `max_files` files may hold the log; see the module documentation.
pub fn plan_cleanup(rotated: &[PathBuf], max_files: usize) -> CleanupPlan {
    let name = |path: &PathBuf| path.to_string_lossy().into_owned();
    let mut plan = CleanupPlan::default();
    let mut kept: Vec<&PathBuf> = Vec::new();
    for path in rotated {
        let text = name(path);
        let compressed_twin = PathBuf::from(format!("{text}{COMPRESSED_SUFFIX}"));
        if text.ends_with(TMP_SUFFIX) || rotated.contains(&compressed_twin) {
            plan.remove.push(path.clone());
        } else {
            kept.push(path);
        }
    }
    kept.sort();
    let keep = max_files.max(2) - 2;
    let excess = kept.len().saturating_sub(keep);
    plan.remove.extend(kept.drain(..excess).cloned());
    plan.compress = (kept.into_iter())
        .filter(|path| !name(path).ends_with(COMPRESSED_SUFFIX))
        .cloned()
        .collect();
    plan
}

/// The name `log` is rotated to at `timestamp` (formatted as `TIMESTAMP_FORMAT`).
pub fn rotated_path(log: &Path, timestamp: &str) -> PathBuf {
    let mut name = log.as_os_str().to_os_string();
    name.push(".");
    name.push(timestamp);
    PathBuf::from(name)
}

/// One pass over the running containers of `runtime`; returns the logs rotated (their new
/// names). A container whose rotation fails is logged and skipped.
pub async fn rotate(
    runtime: &cri_client::Client,
    policy: &LogRotationPolicy,
) -> Result<Vec<PathBuf>, HousekeepingError> {
    let running = ContainerFilter {
        state: Some(ContainerStateValue {
            state: ContainerState::ContainerRunning as i32,
        }),
        ..ContainerFilter::default()
    };
    let containers =
        (runtime.list_containers(Some(running)).await).map_err(HousekeepingError::cri("ListContainers"))?;
    let mut rotated = Vec::new();
    for container in containers {
        match rotate_container(runtime, policy, &container.id).await {
            Ok(Some(path)) => rotated.push(path),
            Ok(None) => {}
            Err(err) => tracing::warn!(container = %container.id, error = %err, "rotating a container log"),
        }
    }
    Ok(rotated)
}

/// Rotates the log of container `id` if it is running and its log is over the size.
async fn rotate_container(
    runtime: &cri_client::Client,
    policy: &LogRotationPolicy,
    id: &str,
) -> Result<Option<PathBuf>, HousekeepingError> {
    let status = (runtime.container_status(id, false).await).map_err(HousekeepingError::cri("ContainerStatus"))?;
    let Some(status) = status.status else {
        return Ok(None);
    };
    if status.state != ContainerState::ContainerRunning as i32 || status.log_path.is_empty() {
        return Ok(None);
    }
    let log = PathBuf::from(&status.log_path);
    match tokio::fs::metadata(&log).await {
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            (runtime.reopen_container_log(id).await).map_err(HousekeepingError::cri("ReopenContainerLog"))?;
            return Ok(None);
        }
        Err(err) => return Err(HousekeepingError::io("reading the size of", &log)(err)),
        Ok(metadata) if metadata.len() < policy.max_size => return Ok(None),
        Ok(_) => {}
    }
    let max_files = policy.max_files;
    let cleaned = log.clone();
    tokio::task::spawn_blocking(move || clean_up(&cleaned, max_files))
        .await
        .map_err(|err| HousekeepingError::io("cleaning up beside", &log)(io::Error::other(err)))??;
    let timestamp = k8s_openapi::jiff::Timestamp::now()
        .strftime(TIMESTAMP_FORMAT)
        .to_string();
    let target = rotated_path(&log, &timestamp);
    if tokio::fs::try_exists(&target).await.unwrap_or(true) {
        // Rotated already this second: next period.
        return Ok(None);
    }
    (tokio::fs::rename(&log, &target).await).map_err(HousekeepingError::io("renaming", &log))?;
    if let Err(err) = runtime.reopen_container_log(id).await {
        // Put it back, so the next period tries again.
        (tokio::fs::rename(&target, &log).await).map_err(HousekeepingError::io("renaming back", &target))?;
        return Err(HousekeepingError::Cri {
            call: "ReopenContainerLog",
            source: err,
        });
    }
    Ok(Some(target))
}

/// Carries out [`plan_cleanup`] for the rotated files of `log`.
fn clean_up(log: &Path, max_files: usize) -> Result<(), HousekeepingError> {
    let plan = plan_cleanup(&rotated_files(log)?, max_files);
    for path in &plan.remove {
        match fs::remove_file(path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => {
                return Err(HousekeepingError::io("removing", path)(err));
            }
            _ => {}
        }
    }
    for path in &plan.compress {
        compress(path)?;
    }
    Ok(())
}

/// The files named `<log>.*` in the log's directory.
fn rotated_files(log: &Path) -> Result<Vec<PathBuf>, HousekeepingError> {
    let (Some(dir), Some(name)) = (log.parent(), log.file_name()) else {
        return Ok(Vec::new());
    };
    let mut prefix = name.to_os_string();
    prefix.push(".");
    let prefix = prefix.to_string_lossy().into_owned();
    let entries = fs::read_dir(dir).map_err(HousekeepingError::io("listing", dir))?;
    Ok(entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(&prefix))
        .map(|entry| entry.path())
        .collect())
}

/// Gzips `path` to `<path>.gz` (through `<path>.tmp`) and removes it.
fn compress(path: &Path) -> Result<(), HousekeepingError> {
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(TMP_SUFFIX);
    let tmp = PathBuf::from(tmp);
    let mut compressed = path.as_os_str().to_os_string();
    compressed.push(COMPRESSED_SUFFIX);
    let compressed = PathBuf::from(compressed);
    let write = || -> io::Result<()> {
        let mut input = BufReader::new(File::open(path)?);
        let mut encoder = GzEncoder::new(File::create(&tmp)?, Compression::default());
        io::copy(&mut input, &mut encoder)?;
        encoder.finish()?.sync_all()?;
        fs::rename(&tmp, &compressed)
    };
    if let Err(err) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(HousekeepingError::io("compressing", path)(err));
    }
    fs::remove_file(path).map_err(HousekeepingError::io("removing", path))
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use flate2::read::GzDecoder;

    use super::*;

    fn paths(names: &[&str]) -> Vec<PathBuf> {
        names
            .iter()
            .map(|name| PathBuf::from(format!("/logs/app/0.log.{name}")))
            .collect()
    }

    #[test]
    fn older_rotated_files_are_compressed_and_the_oldest_removed() {
        let rotated = paths(&[
            "20240101-000004",
            "20240101-000001.gz",
            "20240101-000003.gz",
            "20240101-000002.gz",
        ]);
        let plan = plan_cleanup(&rotated, 4);
        assert_eq!(
            plan,
            CleanupPlan {
                remove: paths(&["20240101-000001.gz", "20240101-000002.gz"]),
                compress: paths(&["20240101-000004"]),
            }
        );
    }

    #[test]
    fn leftovers_of_an_interrupted_compression_are_removed() {
        let rotated = paths(&["20240101-000001", "20240101-000001.gz", "20240101-000002.tmp"]);
        let plan = plan_cleanup(&rotated, 5);
        assert_eq!(plan.remove, paths(&["20240101-000001", "20240101-000002.tmp"]));
        assert!(plan.compress.is_empty());
    }

    #[test]
    fn two_files_keep_only_the_current_and_the_rotating_log() {
        let plan = plan_cleanup(&paths(&["20240101-000001"]), 2);
        assert_eq!(plan.remove, paths(&["20240101-000001"]));
    }

    #[test]
    fn rotated_names_end_with_the_timestamp() {
        let path = rotated_path(Path::new("/logs/app/0.log"), "20240101-101010");
        assert_eq!(path, Path::new("/logs/app/0.log.20240101-101010"));
        let stamp = k8s_openapi::jiff::Timestamp::UNIX_EPOCH
            .strftime(TIMESTAMP_FORMAT)
            .to_string();
        assert_eq!(stamp, "19700101-000000");
    }

    #[test]
    fn compression_keeps_the_content_and_removes_the_original() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("0.log");
        fs::write(&log, "hello\n")?;
        let rotated = rotated_path(&log, "20240101-000001");
        fs::rename(&log, &rotated)?;
        fs::write(&log, "current\n")?;
        clean_up(&log, 5)?;
        let mut text = String::new();
        GzDecoder::new(File::open(dir.path().join("0.log.20240101-000001.gz"))?).read_to_string(&mut text)?;
        assert_eq!(text, "hello\n");
        assert!(!rotated.exists());
        assert_eq!(fs::read_to_string(&log)?, "current\n");
        Ok(())
    }
}
