//! Running the host programs the sandbox code drives (`unshare`, CNI plugins) as child
//! processes: with a `PATH` that reaches the sbin directories, input on stdin, a deadline,
//! and the whole output.
//!
//! The runtime is a multi-threaded daemon: it never calls `unshare(2)` or `setns(2)` on its
//! own threads, it runs programs that do.

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// The directories searched after the daemon's own `PATH`: a daemon started by a service
/// manager or a test often lacks the sbin directories, where `ip` and `iptables` live.
const SYSTEM_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// The daemon's `PATH` followed by the system directories it lacks: what children get, so
/// that they (and the programs they run, such as the `iptables` a CNI plugin calls) are
/// found.
pub(crate) fn search_path() -> OsString {
    let own = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&own)
        .filter(|d| !d.as_os_str().is_empty())
        .collect();
    for dir in SYSTEM_DIRS {
        if !dirs.iter().any(|d| d == Path::new(dir)) {
            dirs.push(PathBuf::from(dir));
        }
    }
    std::env::join_paths(dirs).unwrap_or_else(|_| OsString::from(SYSTEM_DIRS.join(":")))
}

/// Finds an executable named `name` in [`search_path`].
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&search_path())
        .map(|dir| dir.join(name))
        .find(|path| is_executable(path))
}

/// True for a regular file with an execute bit.
pub(crate) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What a child process left behind.
#[derive(Debug)]
pub(crate) struct Output {
    /// How it ended.
    pub(crate) status: ExitStatus,
    /// Everything it wrote to stdout.
    pub(crate) stdout: Vec<u8>,
    /// Everything it wrote to stderr.
    pub(crate) stderr: Vec<u8>,
}

impl Output {
    /// Stderr as text, trimmed (for error messages).
    pub(crate) fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim().to_string()
    }
}

/// Why a child process gave no [`Output`].
#[derive(Debug)]
pub(crate) enum RunError {
    /// It could not be started.
    Spawn(io::Error),
    /// Waiting for it, or reading its output, failed.
    Wait(io::Error),
    /// It did not finish in time; it was killed.
    Timeout,
}

/// Runs `program` with `args` and environment additions `env`, feeding it `stdin`, and
/// waits at most `timeout` for it to exit and close its output (it is killed after that).
pub(crate) async fn run<I, S>(
    program: &Path,
    args: I,
    env: &[(&str, &OsStr)],
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<Output, RunError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(program);
    command
        .args(args)
        .env("PATH", search_path())
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().map_err(RunError::Spawn)?;
    let input = child.stdin.take();
    let feed = async move {
        if let (Some(mut pipe), Some(data)) = (input, stdin) {
            // A child that exits without reading its input (a failing plugin) closes the
            // pipe: that is its exit status's business, not an error here.
            let _ = pipe.write_all(data).await;
            let _ = pipe.shutdown().await;
        }
    };
    // Dropping the future on timeout drops the child, which kills it (kill_on_drop).
    let finished = tokio::time::timeout(timeout, async {
        let ((), output) = tokio::join!(feed, child.wait_with_output());
        output
    })
    .await;
    match finished {
        Err(_elapsed) => Err(RunError::Timeout),
        Ok(Err(err)) => Err(RunError::Wait(err)),
        Ok(Ok(output)) => Ok(Output {
            status: output.status,
            stdout: output.stdout,
            stderr: output.stderr,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_path_keeps_the_own_path_first_and_adds_sbin() {
        let own: Vec<PathBuf> = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .filter(|d| !d.as_os_str().is_empty())
            .collect();
        let dirs: Vec<PathBuf> = std::env::split_paths(&search_path()).collect();
        assert_eq!(dirs[..own.len()], own[..]);
        for dir in SYSTEM_DIRS {
            assert!(dirs.contains(&PathBuf::from(dir)), "{dir} in {dirs:?}");
        }
        assert!(dirs.len() <= own.len() + SYSTEM_DIRS.len());
    }

    #[tokio::test]
    async fn a_child_reads_stdin_and_its_output_comes_back() {
        let sh = find_program("sh").expect("sh");
        let output = run(
            &sh,
            ["-c", "cat; echo \"$X\" >&2; exit 3"],
            &[("X", OsStr::new("from env"))],
            Some(b"hello"),
            Duration::from_secs(10),
        )
        .await
        .expect("runs");
        assert_eq!(output.stdout, b"hello");
        assert_eq!(output.stderr_text(), "from env");
        assert_eq!(output.status.code(), Some(3));
    }

    #[tokio::test]
    async fn a_slow_child_times_out() {
        let sh = find_program("sh").expect("sh");
        let started = std::time::Instant::now();
        let result = run(&sh, ["-c", "exec sleep 5"], &[], None, Duration::from_millis(200)).await;
        assert!(matches!(result, Err(RunError::Timeout)), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(4));
    }
}
