//! Scratch directories on the real disk, owned by a live process, reaped when their owner
//! died without cleaning up.
//!
//! A scratch directory `BASE/NAME/` comes with a lock file `BASE/NAME.lock` on which its
//! owner holds an exclusive `flock` for as long as it lives; the kernel drops the lock
//! when the owner dies, however it dies. [`reap_stale`] finds the directories whose lock
//! nobody holds and tears them down with [`crate::host::reap_instance`].
//!
//! The base is `/var/lib/kubelet-lite-test` unless `KUBELET_LITE_TEST_DIR` says
//! otherwise. It must not be on tmpfs or overlayfs: containerd's overlayfs snapshots put
//! their upper directories there.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};

/// Where scratch directories go when `KUBELET_LITE_TEST_DIR` is not set.
pub const DEFAULT_BASE_DIR: &str = "/var/lib/kubelet-lite-test";

/// The name of the file, inside a scratch directory, that describes what its owner set up
/// outside of it (bridge, CNI network, runc root), for [`crate::host::reap_instance`].
pub const INSTANCE_FILE: &str = "instance.json";

/// The base directory of all scratch directories (created if needed).
///
/// Refuses a base on overlayfs: the overlayfs snapshots of a runtime under test cannot
/// put their upper directories there.
pub fn base_dir() -> io::Result<PathBuf> {
    let base = std::env::var_os("KUBELET_LITE_TEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_BASE_DIR));
    fs::create_dir_all(&base)?;
    let on_overlay =
        nix::sys::statfs::statfs(&base).is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::OVERLAYFS_SUPER_MAGIC);
    if on_overlay {
        return Err(io::Error::other(format!(
            "{} is on overlayfs; set KUBELET_LITE_TEST_DIR to a directory on a disk filesystem",
            base.display()
        )));
    }
    Ok(base)
}

/// A directory this process owns until it is dropped (or [`ScratchDir::remove`]d).
///
/// Dropping it removes the directory, but only after making sure nothing is mounted
/// below it ([`crate::host::remove_dir_safely`]): tearing down what lives in it is the
/// owner's job.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
    lock_path: PathBuf,
    lock: Option<Flock<File>>,
}

impl ScratchDir {
    /// Creates `BASE/KIND-PID-N-NANOS/`, locked by this process.
    pub fn create(kind: &str) -> io::Result<ScratchDir> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let base = base_dir()?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "{kind}-{}-{}-{nanos:09}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = base.join(&name);
        let lock_path = base.join(format!("{name}.lock"));

        // Lock a temporary file first and rename it into place: a reaper never sees the
        // lock file unlocked, so it never mistakes a directory being born for a dead one.
        let temp_lock_path = base.join(format!(".{name}.lock.new"));
        let file = OpenOptions::new().create_new(true).write(true).open(&temp_lock_path)?;
        let mut lock =
            Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| io::Error::from(errno))?;
        writeln!(lock, "{}", std::process::id())?;
        fs::rename(&temp_lock_path, &lock_path)?;
        fs::create_dir(&path)?;
        Ok(ScratchDir {
            path,
            lock_path,
            lock: Some(lock),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the directory (refusing while anything is mounted below it) and releases
    /// the lock. Calling it again does nothing.
    pub fn remove(&mut self) -> io::Result<()> {
        if self.lock.is_none() {
            return Ok(());
        }
        crate::host::remove_dir_safely(&self.path)?;
        // Remove the lock file while still holding the lock, then release it.
        match fs::remove_file(&self.lock_path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
        self.lock = None;
        Ok(())
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(err) = self.remove() {
            crate::note(format!(
                "cannot remove scratch directory {}: {err}",
                self.path.display()
            ));
        }
    }
}

/// Finds the scratch directories whose owner is gone and tears each down with
/// [`crate::host::reap_instance`] (processes, containers, mounts, network), then removes
/// it. Returns the directories reaped. Errors are reported with [`crate::note`] and do not
/// stop the others.
pub fn reap_stale() -> Vec<PathBuf> {
    let Ok(base) = base_dir() else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir(&base) else {
        return Vec::new();
    };
    let mut reaped = Vec::new();
    let names: Vec<String> = entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
    for name in &names {
        if !is_scratch_name(name.strip_suffix(".lock").unwrap_or(name)) {
            continue;
        }
        let (dir_name, lock_path) = match name.strip_suffix(".lock") {
            Some(dir_name) => (dir_name.to_string(), base.join(name)),
            // A directory without a lock file was left half-removed by a dead owner.
            None if !names.contains(&format!("{name}.lock")) => (name.clone(), PathBuf::new()),
            None => continue,
        };
        let dir = base.join(&dir_name);
        let lock = if lock_path.as_os_str().is_empty() {
            None
        } else {
            let Ok(file) = File::open(&lock_path) else {
                continue;
            };
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => Some(lock),
                Err(_) => continue, // its owner is alive
            }
        };
        crate::note(format!(
            "reaping {} left behind by a test run that did not clean up",
            dir.display()
        ));
        let result = if dir.exists() {
            crate::host::reap_instance(&dir)
        } else {
            Ok(())
        };
        match result {
            Ok(()) => {
                if lock.is_some() {
                    let _ = fs::remove_file(&lock_path);
                }
                reaped.push(dir);
            }
            Err(err) => crate::note(format!("cannot reap {}: {err:#}", dir.display())),
        }
        drop(lock);
    }
    // Temporary lock files whose creator died between creating and renaming them.
    for name in names.iter().filter(|n| n.starts_with('.') && n.ends_with(".lock.new")) {
        let path = base.join(name);
        let lock = File::open(&path)
            .ok()
            .and_then(|file| Flock::lock(file, FlockArg::LockExclusiveNonblock).ok());
        if let Some(lock) = lock {
            let _ = fs::remove_file(&path);
            drop(lock);
        }
    }
    reaped
}

/// True for names [`ScratchDir::create`] makes: `KIND-PID-N-NANOS`. Anything else in the
/// base directory is left alone.
fn is_scratch_name(name: &str) -> bool {
    let mut parts = name.rsplitn(4, '-');
    let numbers = parts
        .by_ref()
        .take(3)
        .filter(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
        .count();
    let kind = parts.next();
    numbers == 3 && kind.is_some_and(|kind| !kind.is_empty() && !kind.starts_with('.'))
}

/// An exclusive, machine-wide lock named `name` under `BASE/locks/`, held until dropped
/// (or until the process dies). Blocking with a deadline; see [`NamedLock::acquire`].
#[derive(Debug)]
pub struct NamedLock {
    _lock: Flock<File>,
    name: String,
}

/// Names of the [`NamedLock`]s this process holds: a second `flock` on another file
/// descriptor would wait for ourselves, so asking twice fails at once instead.
static HELD_HERE: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn held_here() -> std::sync::MutexGuard<'static, Vec<String>> {
    HELD_HERE.lock().unwrap_or_else(PoisonError::into_inner)
}

impl NamedLock {
    /// Takes the lock, waiting up to `timeout` for another process to release it (and
    /// saying so with [`crate::note`] once).
    ///
    /// Fails at once if this process already holds it.
    pub fn acquire(name: &str, timeout: std::time::Duration) -> anyhow::Result<NamedLock> {
        if held_here().iter().any(|held| held == name) {
            anyhow::bail!("this process already holds lock {name} (two environments on one bridge?)");
        }
        let dir = base_dir()?.join("locks");
        fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{name}.lock"));
        let deadline = std::time::Instant::now() + timeout;
        let mut told = false;
        loop {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(NamedLock::held(lock, name)),
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    if std::time::Instant::now() >= deadline {
                        anyhow::bail!(
                            "lock {} is still held by another test process after {timeout:?}",
                            path.display()
                        );
                    }
                    if !told {
                        crate::note(format!("waiting for lock {name}: another test environment holds it"));
                        told = true;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
                Err((_, errno)) => return Err(io::Error::from(errno).into()),
            }
        }
    }

    /// Takes the lock only if it is free right now (and not held by this process).
    pub fn try_acquire(name: &str) -> io::Result<Option<NamedLock>> {
        if held_here().iter().any(|held| held == name) {
            return Ok(None);
        }
        let dir = base_dir()?.join("locks");
        fs::create_dir_all(&dir)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("{name}.lock")))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Some(NamedLock::held(lock, name))),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, errno)) => Err(io::Error::from(errno)),
        }
    }

    fn held(lock: Flock<File>, name: &str) -> NamedLock {
        held_here().push(name.to_string());
        NamedLock {
            _lock: lock,
            name: name.to_string(),
        }
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for NamedLock {
    fn drop(&mut self) {
        let mut held = held_here();
        if let Some(index) = held.iter().position(|name| *name == self.name) {
            held.swap_remove(index);
        }
    }
}

/// The environment variable that keeps daemon logs after cleanup (any non-empty value).
pub const KEEP_LOGS_VARIABLE: &str = "KUBELET_LITE_TEST_KEEP_LOGS";

/// If `KUBELET_LITE_TEST_KEEP_LOGS` is set, copies a daemon's log out of its scratch
/// directory into `BASE/logs/` before the directory goes, and says where.
pub fn keep_log(log: &Path, owner: &Path) {
    if std::env::var_os(KEEP_LOGS_VARIABLE).is_none_or(|v| v.is_empty()) || !log.exists() {
        return;
    }
    let Ok(dir) = base_dir().map(|base| base.join("logs")) else {
        return;
    };
    let name = format!(
        "{}-{}",
        owner.file_name().unwrap_or_default().to_string_lossy(),
        log.file_name().unwrap_or_default().to_string_lossy()
    );
    let kept = dir.join(name);
    match fs::create_dir_all(&dir).and_then(|()| fs::copy(log, &kept)) {
        Ok(_) => crate::note(format!("kept {}", kept.display())),
        Err(err) => crate::note(format!("cannot keep {}: {err}", log.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_made_by_create_count_as_scratch_directories() {
        assert!(is_scratch_name("containerd-1234-0-000012345"));
        assert!(is_scratch_name("registry-1-12-999999999"));
        assert!(!is_scratch_name("locks"));
        assert!(!is_scratch_name("my-notes"));
        assert!(!is_scratch_name("containerd-1234-x-5"));
        assert!(!is_scratch_name("-1-2-3"));
        assert!(!is_scratch_name(".containerd-1-2-3"));
    }
}
