//! A local OCI registry: Debian's `docker-registry` (distribution 2.8) on 127.0.0.1,
//! plain HTTP, storage in a scratch directory; anonymous, or with Basic authentication
//! ([`RegistryOptions::htpasswd`]).
//!
//! docker-registry's `htpasswd` authentication works over plain HTTP (checked with
//! distribution 2.8.2: anonymous `GET /v2/` gets 401 with `WWW-Authenticate: Basic
//! realm=...`, the right user and password 200), so an authenticated registry needs no TLS.

use std::fs::{self, OpenOptions};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::distribution::RegistryClient;
use crate::htpasswd;
use crate::output::tail_from;
use crate::process;
use crate::scratch::{self, ScratchDir};

/// The port a registry takes when it is free (as in the registry's documentation).
pub const PREFERRED_PORT: u16 = 5000;

/// How long a registry may take to answer `GET /v2/`.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The tools [`Registry::start`] needs.
pub const REGISTRY_TOOLS: &[&str] = &["docker-registry", "setpriv"];

/// The realm an authenticated registry names in its `WWW-Authenticate: Basic` challenge.
pub const AUTH_REALM: &str = "kubelet-lite-test";

/// How a [`Registry`] is set up. The default is an anonymous registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryOptions {
    /// Basic authentication with this user name and password: every request without them
    /// gets 401. `None` (the default) lets anyone pull and push.
    pub htpasswd: Option<(String, String)>,
}

impl RegistryOptions {
    /// Options for a registry that only `user` with `password` may use.
    pub fn with_basic_auth(user: impl Into<String>, password: impl Into<String>) -> RegistryOptions {
        RegistryOptions {
            htpasswd: Some((user.into(), password.into())),
        }
    }
}

/// A running `docker-registry serve`. Dropping it kills the registry and deletes its
/// storage.
#[derive(Debug)]
pub struct Registry {
    addr: String,
    credentials: Option<(String, String)>,
    child: Option<Child>,
    log_path: PathBuf,
    storage: PathBuf,
    dir: ScratchDir,
}

impl Registry {
    /// Starts an anonymous registry on 127.0.0.1, on port 5000 if it is free or else on a
    /// free port, and waits until it answers `GET /v2/`.
    ///
    /// Fails with [`crate::Missing`] in the chain if `docker-registry` or `setpriv` is not
    /// installed.
    pub fn start() -> anyhow::Result<Registry> {
        Registry::start_with(RegistryOptions::default())
    }

    /// Starts a registry set up by `options` (see [`Registry::start`]). With
    /// [`RegistryOptions::htpasswd`], [`Registry::client`] authenticates and
    /// [`Registry::anonymous_client`] does not.
    pub fn start_with(options: RegistryOptions) -> anyhow::Result<Registry> {
        crate::require_tools(REGISTRY_TOOLS)?;
        let started = Instant::now();
        scratch::reap_stale();
        let dir = match ScratchDir::create("registry") {
            Ok(dir) => dir,
            // Only root may write the default base directory.
            Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied && crate::require_root().is_err() => {
                return Err(anyhow::Error::new(crate::Missing::new([
                    "root privileges (or a writable KUBELET_LITE_TEST_DIR)",
                ]))
                .context(format!("creating the registry's scratch directory: {err}")));
            }
            Err(err) => {
                return Err(anyhow::Error::new(err).context("creating the registry's scratch directory"));
            }
        };
        let storage = dir.path().join("storage");
        fs::create_dir_all(&storage)?;
        if let Some((user, password)) = &options.htpasswd {
            htpasswd::write_htpasswd(&dir.path().join(HTPASSWD_FILE), user, password)?;
        }
        let log_path = dir.path().join("registry.log");
        let mut registry = Registry {
            addr: String::new(),
            credentials: options.htpasswd,
            child: None,
            log_path,
            storage,
            dir,
        };

        // Another registry may take the port between our probe and its bind: try again on
        // another port, and never trust an answer that does not come from our process.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = pick_port(if attempt == 1 { Some(PREFERRED_PORT) } else { None })?;
            match registry.spawn_on(port) {
                Ok(()) => break,
                // Lost the race for the port to another process: take another one.
                Err(err) if attempt < 3 && format!("{err:#}").contains("address already in use") => {
                    crate::note(format!(
                        "registry on port {port} did not start ({err:#}); trying another port"
                    ));
                }
                Err(err) => return Err(err),
            }
        }
        crate::note(format!(
            "registry ready on {}{} in {:.2?}",
            registry.addr,
            if registry.credentials.is_some() {
                " (basic auth)"
            } else {
                ""
            },
            started.elapsed()
        ));
        Ok(registry)
    }

    /// Starts the process on `port` and waits for it; on failure the child is stopped and
    /// `self.child` is `None`.
    fn spawn_on(&mut self, port: u16) -> anyhow::Result<()> {
        let addr = format!("127.0.0.1:{port}");
        let config_path = self.dir.path().join("config.yml");
        let htpasswd = self.credentials.is_some().then(|| self.dir.path().join(HTPASSWD_FILE));
        fs::write(&config_path, config_yml(&addr, &self.storage, htpasswd.as_deref()))?;
        let log = OpenOptions::new().create(true).append(true).open(&self.log_path)?;
        let log_offset = log.metadata()?.len();
        let mut command =
            process::daemon_command(crate::find_tool("docker-registry").unwrap_or_else(|| "docker-registry".into()));
        command
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let mut child = process::spawn_daemon(command).context("starting docker-registry")?;
        let client = self.client_of(&addr);
        let deadline = Instant::now() + START_TIMEOUT;
        let result = loop {
            if let Some(status) = child.try_wait()? {
                break Err(anyhow::anyhow!(
                    "docker-registry exited with {status}; its log ends with:\n{}",
                    tail_from(&self.log_path, log_offset, 20)
                ));
            }
            if client.ping_with_timeout(Duration::from_secs(1)).is_ok() && process::listens_on(child.id(), port) {
                break Ok(());
            }
            if Instant::now() >= deadline {
                break Err(anyhow::anyhow!(
                    "docker-registry did not answer on {addr} within {START_TIMEOUT:?}; its log ends with:\n{}",
                    tail_from(&self.log_path, log_offset, 20)
                ));
            }
            std::thread::sleep(process::POLL_INTERVAL);
        };
        match result {
            Ok(()) => {
                self.addr = addr;
                self.child = Some(child);
                Ok(())
            }
            Err(err) => {
                let _ = process::stop_child(&mut child, Duration::from_secs(2));
                Err(err)
            }
        }
    }

    /// `127.0.0.1:PORT`: the registry's address, as image references and mirrors use it.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A distribution API client of this registry, sending the registry's credentials if
    /// it has any.
    pub fn client(&self) -> RegistryClient {
        self.client_of(&self.addr)
    }

    /// A client that never authenticates (to see an authenticated registry refuse it).
    pub fn anonymous_client(&self) -> RegistryClient {
        RegistryClient::new(&self.addr)
    }

    fn client_of(&self, addr: &str) -> RegistryClient {
        match &self.credentials {
            Some((user, password)) => RegistryClient::new(addr).with_basic_auth(user, password),
            None => RegistryClient::new(addr),
        }
    }

    /// The user name and password the registry requires, if it requires any.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(user, password)| (user.as_str(), password.as_str()))
    }

    /// The registry's storage root.
    pub fn storage_dir(&self) -> &Path {
        &self.storage
    }

    /// The registry's log (access log included).
    pub fn log_file(&self) -> &Path {
        &self.log_path
    }

    /// Stops the registry and deletes its files. Calling it again does nothing.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            process::stop_child(&mut child, Duration::from_secs(5)).context("stopping docker-registry")?;
        }
        scratch::keep_log(&self.log_path, self.dir.path());
        self.dir.remove().context("removing the registry's scratch directory")?;
        Ok(())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Err(err) = self.stop() {
            crate::note(format!("registry cleanup failed: {err:#}"));
        }
    }
}

/// The htpasswd file of an authenticated registry, in its scratch directory.
const HTPASSWD_FILE: &str = "htpasswd";

/// The registry's configuration: address, filesystem storage, deletes allowed (tests
/// may remove images), no upload purging (nothing to purge in a short run), and Basic
/// authentication against `htpasswd` if given.
fn config_yml(addr: &str, storage: &Path, htpasswd: Option<&Path>) -> String {
    let mut yml = format!(
        "# Written by kubelet-lite's test harness.\n\
         version: 0.1\n\
         log:\n  level: info\n  formatter: text\n\
         storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n  \
           maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: {addr}\n  secret: kubelet-lite-test-harness\n",
        storage = storage.display()
    );
    if let Some(path) = htpasswd {
        yml.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: {AUTH_REALM}\n    path: {}\n",
            path.display()
        ));
    }
    yml
}

/// A free TCP port on 127.0.0.1: `preferred` if it can be bound right now, else one the
/// kernel picks.
fn pick_port(preferred: Option<u16>) -> anyhow::Result<u16> {
    if let Some(port) = preferred.filter(|&port| TcpListener::bind(("127.0.0.1", port)).is_ok()) {
        return Ok(port);
    }
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_listens_on_the_address_and_stores_in_the_directory() {
        let yml = config_yml("127.0.0.1:5000", Path::new("/x/storage"), None);
        assert!(yml.contains("\n  addr: 127.0.0.1:5000\n"));
        assert!(yml.contains("\n    rootdirectory: /x/storage\n"));
        assert!(yml.starts_with("# Written"));
        assert!(!yml.contains("auth:"));
    }

    #[test]
    fn authenticated_config_names_the_htpasswd_file() {
        let yml = config_yml(
            "127.0.0.1:5000",
            Path::new("/x/storage"),
            Some(Path::new("/x/htpasswd")),
        );
        assert!(yml.ends_with("auth:\n  htpasswd:\n    realm: kubelet-lite-test\n    path: /x/htpasswd\n"));
    }

    #[test]
    fn tails_keep_the_last_lines_after_the_offset() {
        let path = std::env::temp_dir().join(format!("harness-tail-{}", std::process::id()));
        fs::write(&path, "old\na\nb\nc\n").unwrap();
        assert_eq!(tail_from(&path, 0, 2), "b\nc");
        assert_eq!(tail_from(&path, 4, 10), "a\nb\nc");
        fs::remove_file(&path).unwrap();
        assert_eq!(tail_from(&path, 0, 2), "");
    }
}
