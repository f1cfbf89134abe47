//! The images the upstream `[NodeConformance]` specs of Kubernetes 1.20 pull, built
//! offline and pushed to the local [`Registry`] under the names the e2e framework asks for
//! once [`repo_list_yaml`] has pointed its registries at the mirrored ones.
//!
//! No public registry is reachable here, so each image is rebuilt from what this machine
//! has: the host's static busybox (the base of every image, as [`crate::test_images`]), the
//! test programs built from the same Kubernetes source tree as the suite (`agnhost`,
//! `nnp`; see `scripts/build-kubernetes.sh --conformance`), and programs from Debian
//! packages copied in with the shared libraries `ldd` names for them.
//!
//! | image (as the suite names it) | what it is here |
//! |---|---|
//! | `busybox:1.29` | the busybox test image (Debian's busybox 1.35) |
//! | `e2e-test-images/agnhost:2.21` | `/agnhost` built from the tree's `test/images/agnhost` (the tree's agnhost is 2.25), `/agnhost-2` linking to it, `/uploads`, porter's `localhost.crt`/`.key`, Debian's `curl`, OpenBSD `nc` and `dash` as `/bin/sh` with their libraries on busybox; entrypoint `/agnhost`, command `pause`, as upstream (whose base is Alpine with curl, nc, bind-tools, iproute2, iperf and bash) |
//! | `pause:3.2` | the harness's pause image (a shell loop that exits 0 on SIGTERM) |
//! | `kubernetes-e2e-test-images/nonroot:1.0` | busybox with `User 1234`, as upstream (on debian-base) |
//! | `kubernetes-e2e-test-images/nonewprivs:1.0` | busybox with `nnp` built from `test/images/nonewprivs`, setuid root at `/usr/local/bin/nnp`, command `nnp` |
//! | `nginx:1.14-alpine`, `nginx:1.15-alpine` | Debian 12's nginx 1.22 with its libraries, serving a page on port 80 in the foreground (`nginx -g "daemon off;"`); no Alpine nginx is available offline |
//! | `httpd:2.4.38-alpine`, `httpd:2.4.39-alpine` | **not Apache**: busybox's `httpd` applet serving `/usr/local/apache2/htdocs` on port 80 in the foreground (`httpd-foreground`). No `[NodeConformance]` spec runs it (only a conformance spec that patches a pod's image to it); Debian's apache2 would need some thirty libraries and modules for a container nothing looks into |
//!
//! nginx and nc come from Debian packages downloaded and unpacked (not installed) into
//! [`debian_packages_dir`] by `scripts/conformance.sh`; curl is the host's.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::image_builder::{Entry, Image, ImageConfig, Layer};
use crate::test_images;
use crate::{Missing, Registry};

/// Where `scripts/conformance.sh` unpacks the Debian packages the images take programs
/// from, one directory per package.
pub const DEFAULT_DEBIAN_PACKAGES_DIR: &str = "/var/cache/kubelet-lite/debian-packages";

/// The environment variable naming another directory of unpacked Debian packages.
pub const DEBIAN_PACKAGES_VARIABLE: &str = "KUBELET_LITE_DEBIAN_PACKAGES";

/// The registries of the e2e framework (`test/utils/image/manifest.go`'s `RegistryList`)
/// and the names they become: every one the specs pull from for real is under a registry
/// the runtimes' mirrors send to the local registry. The registries of the specs that
/// must fail to pull (`invalidRegistry`, and the private ones needing Google credentials:
/// `gcAuthenticatedRegistry`, `privateRegistry`) are left as they are.
pub const REGISTRY_NAMES: &[(&str, &str)] = &[
    ("dockerLibraryRegistry", "docker.io/library"),
    ("dockerGluster", "docker.io/gluster"),
    ("e2eRegistry", "registry.k8s.io/kubernetes-e2e-test-images"),
    ("e2eVolumeRegistry", "registry.k8s.io/kubernetes-e2e-test-images/volume"),
    ("promoterE2eRegistry", "registry.k8s.io/e2e-test-images"),
    ("buildImageRegistry", "registry.k8s.io/build-image"),
    ("gcRegistry", "registry.k8s.io"),
    ("sigStorageRegistry", "registry.k8s.io/sig-storage"),
    ("gcrReleaseRegistry", "registry.k8s.io/gke-release"),
    ("sampleRegistry", "registry.k8s.io/google-samples"),
];

/// The file `KUBE_TEST_REPO_LIST` names: YAML mapping the framework's registries onto
/// [`REGISTRY_NAMES`].
pub fn repo_list_yaml() -> String {
    let mut yaml = String::from("# Written by kubelet-lite's test harness (KUBE_TEST_REPO_LIST).\n");
    for (key, value) in REGISTRY_NAMES {
        yaml.push_str(&format!("{key}: {value}\n"));
    }
    yaml
}

/// The programs the images carry that do not come from busybox.
#[derive(Debug, Clone)]
pub struct ImageSources {
    /// `agnhost`, static, built from `test/images/agnhost`.
    pub agnhost: PathBuf,
    /// `nnp`, static, built from `test/images/nonewprivs`.
    pub nnp: PathBuf,
    /// The directory holding porter's `localhost.crt` and `localhost.key`.
    pub porter: PathBuf,
    /// The directory of unpacked Debian packages ([`debian_packages_dir`]).
    pub debian: PathBuf,
}

/// The directory of unpacked Debian packages: `KUBELET_LITE_DEBIAN_PACKAGES` if set,
/// else [`DEFAULT_DEBIAN_PACKAGES_DIR`].
pub fn debian_packages_dir() -> PathBuf {
    std::env::var_os(DEBIAN_PACKAGES_VARIABLE)
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DEBIAN_PACKAGES_DIR))
}

impl ImageSources {
    /// The Debian programs the images need, inside the unpacked packages.
    fn nginx(&self) -> PathBuf {
        self.debian.join("nginx/usr/sbin/nginx")
    }

    fn nginx_mime_types(&self) -> PathBuf {
        self.debian.join("nginx-common/etc/nginx/mime.types")
    }

    fn netcat(&self) -> PathBuf {
        self.debian.join("netcat-openbsd/bin/nc.openbsd")
    }

    /// Fails with [`Missing`] naming every absent input and how to get it.
    pub fn check(&self) -> Result<(), Missing> {
        let built = "(scripts/build-kubernetes.sh --conformance)";
        let unpacked = "(scripts/conformance.sh unpacks it)";
        let mut missing = Vec::new();
        for (path, how) in [
            (self.agnhost.clone(), built),
            (self.nnp.clone(), built),
            (self.porter.join("localhost.crt"), built),
            (self.nginx(), unpacked),
            (self.nginx_mime_types(), unpacked),
            (self.netcat(), unpacked),
        ] {
            if !path.is_file() {
                missing.push(format!("{} {how}", path.display()));
            }
        }
        for tool in ["curl", "ldd", DASH] {
            if crate::find_tool(tool).is_none() {
                missing.push(tool.to_string());
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Missing::new(missing))
        }
    }
}

/// One image of the suite: where it goes in the local registry.
struct SuiteImage {
    repository: &'static str,
    tags: &'static [&'static str],
    image: Image,
}

/// Builds the suite's images (see the module documentation) and pushes them to
/// `registry`; returns their references as the suite pulls them.
pub fn push_conformance_images(registry: &Registry, sources: &ImageSources) -> anyhow::Result<Vec<String>> {
    sources.check()?;
    let started = Instant::now();
    let images = vec![
        SuiteImage {
            repository: "library/busybox",
            tags: &["1.29"],
            image: test_images::busybox_image()?,
        },
        SuiteImage {
            repository: "e2e-test-images/agnhost",
            tags: &["2.21"],
            image: agnhost_image(sources)?,
        },
        SuiteImage {
            repository: "pause",
            tags: &["3.2"],
            image: test_images::pause_image()?,
        },
        SuiteImage {
            repository: "kubernetes-e2e-test-images/nonroot",
            tags: &["1.0"],
            image: nonroot_image()?,
        },
        SuiteImage {
            repository: "kubernetes-e2e-test-images/nonewprivs",
            tags: &["1.0"],
            image: nonewprivs_image(sources)?,
        },
        SuiteImage {
            repository: "library/nginx",
            tags: &["1.14-alpine", "1.15-alpine"],
            image: nginx_image(sources)?,
        },
        SuiteImage {
            repository: "library/httpd",
            tags: &["2.4.38-alpine", "2.4.39-alpine"],
            image: httpd_image()?,
        },
    ];
    let client = registry.client();
    let mut references = Vec::new();
    for SuiteImage {
        repository,
        tags,
        image,
    } in &images
    {
        client
            .push_image(repository, tags, image)
            .with_context(|| format!("pushing {repository}"))?;
        let mirrored = if repository.starts_with("library/") {
            "docker.io"
        } else {
            "registry.k8s.io"
        };
        references.extend(tags.iter().map(|tag| format!("{mirrored}/{repository}:{tag}")));
    }
    crate::note(format!(
        "conformance images built and pushed in {:.2?}",
        started.elapsed()
    ));
    Ok(references)
}

/// Debian's POSIX shell (essential: always installed).
const DASH: &str = "/bin/dash";

fn busybox_config() -> ImageConfig {
    test_images::busybox_config()
}

/// agnhost as upstream lays it out, with curl and nc (many specs run them in it).
fn agnhost_image(sources: &ImageSources) -> anyhow::Result<Image> {
    let mut entries = vec![
        Entry::file("agnhost", 0o755, read(&sources.agnhost)?),
        Entry::symlink("agnhost-2", "agnhost"),
        Entry::dir("uploads", 0o755),
        Entry::file("localhost.crt", 0o644, read(&sources.porter.join("localhost.crt"))?),
        Entry::file("localhost.key", 0o600, read(&sources.porter.join("localhost.key"))?),
    ];
    let curl = crate::find_tool("curl").context("curl is not installed")?;
    entries.extend(programs_with_libraries(&[
        (curl.as_path(), "usr/bin/curl"),
        (sources.netcat().as_path(), "usr/bin/nc"),
        // Debian's busybox-static shell runs its own applets before anything in PATH, so
        // `sh -c 'nc -u ...'` would get busybox's nc, which has no UDP: the shell is dash,
        // which looks commands up in PATH as Alpine's does.
        (Path::new(DASH), "bin/sh"),
    ])?);
    let config = ImageConfig {
        entrypoint: Some(vec!["/agnhost".into()]),
        cmd: Some(vec!["pause".into()]),
        exposed_ports: ["80/tcp", "8080/tcp", "8081/tcp", "9376/tcp"]
            .map(String::from)
            .to_vec(),
        ..busybox_config()
    };
    Ok(Image::new(
        vec![test_images::busybox_layer()?, Layer::from_entries(&entries)?],
        &config,
    ))
}

/// busybox running as uid 1234 (no such user in `/etc/passwd`, as upstream).
fn nonroot_image() -> anyhow::Result<Image> {
    let config = ImageConfig {
        user: Some("1234".into()),
        ..busybox_config()
    };
    Ok(Image::new(vec![test_images::busybox_layer()?], &config))
}

/// busybox with `nnp`, setuid root: it prints its effective uid.
fn nonewprivs_image(sources: &ImageSources) -> anyhow::Result<Image> {
    let entries = with_parents(vec![Entry::file("usr/local/bin/nnp", 0o4755, read(&sources.nnp)?)]);
    let config = ImageConfig {
        cmd: Some(vec!["nnp".into()]),
        ..busybox_config()
    };
    Ok(Image::new(
        vec![test_images::busybox_layer()?, Layer::from_entries(&entries)?],
        &config,
    ))
}

/// The nginx configuration of the nginx image: one server on port 80, logs on the
/// container's output. `daemon off;` comes from the command line, as upstream.
pub const NGINX_CONF: &str = "# kubelet-lite's conformance nginx image.
user nobody nogroup;
worker_processes 1;
error_log /dev/stderr notice;
pid /run/nginx.pid;

events {
    worker_connections 256;
}

http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log /dev/stdout;
    server {
        listen 80;
        root /usr/share/nginx/html;
        index index.html;
    }
}
";

/// The page the nginx and httpd images serve.
const WELCOME_PAGE: &str = "<html><body><h1>It works!</h1></body></html>\n";

/// Debian's nginx with its libraries and [`NGINX_CONF`], on busybox.
fn nginx_image(sources: &ImageSources) -> anyhow::Result<Image> {
    let mut entries = programs_with_libraries(&[(sources.nginx().as_path(), "usr/sbin/nginx")])?;
    entries.extend([
        Entry::file("etc/nginx/nginx.conf", 0o644, NGINX_CONF),
        Entry::file("etc/nginx/mime.types", 0o644, read(&sources.nginx_mime_types())?),
        Entry::file("usr/share/nginx/html/index.html", 0o644, WELCOME_PAGE),
        // Paths compiled into Debian's nginx: temporary files, the default error log
        // (opened before the configuration is read), the pid file.
        Entry::dir("var/lib/nginx", 0o755),
        Entry::dir("var/log/nginx", 0o755),
        Entry::dir("run", 0o755),
    ]);
    let config = ImageConfig {
        cmd: Some(vec!["nginx".into(), "-g".into(), "daemon off;".into()]),
        exposed_ports: vec!["80/tcp".into()],
        stop_signal: Some("SIGQUIT".into()),
        ..busybox_config()
    };
    Ok(Image::new(
        vec![
            test_images::busybox_layer()?,
            Layer::from_entries(&with_parents(entries))?,
        ],
        &config,
    ))
}

/// The command of the httpd image: busybox's web server in the foreground.
const HTTPD_FOREGROUND: &str = "#!/bin/sh
# kubelet-lite's conformance httpd image: busybox httpd, not Apache.
exec httpd -f -v -p 80 -h /usr/local/apache2/htdocs
";

/// busybox httpd standing in for Apache httpd (see the module documentation).
fn httpd_image() -> anyhow::Result<Image> {
    let entries = with_parents(vec![
        Entry::file("usr/local/apache2/htdocs/index.html", 0o644, WELCOME_PAGE),
        Entry::file("usr/local/bin/httpd-foreground", 0o755, HTTPD_FOREGROUND),
    ]);
    let config = ImageConfig {
        cmd: Some(vec!["httpd-foreground".into()]),
        exposed_ports: vec!["80/tcp".into()],
        ..busybox_config()
    };
    Ok(Image::new(
        vec![test_images::busybox_layer()?, Layer::from_entries(&entries)?],
        &config,
    ))
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Entries for dynamically linked `programs` (path on the host, path in the image) and
/// every shared library `ldd` resolves for them, each library at the path `ldd` names
/// (`/lib/x86_64-linux-gnu/...`, the loader at `/lib64/...`: the paths compiled into the
/// programs and the loader's default search path), copied as regular files with the
/// host's permission bits.
pub fn programs_with_libraries(programs: &[(&Path, &str)]) -> anyhow::Result<Vec<Entry>> {
    let mut libraries = BTreeSet::new();
    let mut entries = Vec::new();
    for (host, in_image) in programs {
        entries.push(Entry::file(*in_image, mode_of(host)?, read(host)?));
        libraries.extend(shared_libraries(host)?);
    }
    for library in libraries {
        let relative = library
            .strip_prefix("/")
            .unwrap_or(&library)
            .to_string_lossy()
            .into_owned();
        // The host's mode: the loader must stay executable (the kernel opens it for exec).
        entries.push(Entry::file(relative, mode_of(&library)?, read(&library)?));
    }
    Ok(with_parents(entries))
}

/// The permission bits of the file `path` resolves to.
fn mode_of(path: &Path) -> anyhow::Result<u32> {
    let metadata = fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(metadata.permissions().mode() & 0o7777)
}

/// The shared libraries `ldd` resolves for `program`, the dynamic loader included.
fn shared_libraries(program: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let output = Command::new("ldd")
        .arg(program)
        .output()
        .with_context(|| format!("running ldd {}", program.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "ldd {} failed: {}{}",
            program.display(),
            text.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    parse_ldd(&text).with_context(|| format!("the libraries of {}", program.display()))
}

/// The library paths in `ldd`'s output; fails on a library it did not find.
fn parse_ldd(text: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
        if line.contains("not found") {
            bail!("ldd: {line}");
        }
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)`, or the loader alone:
        // `/lib64/ld-linux-x86-64.so.2 (0x...)`; `linux-vdso.so.1 (0x...)` is no file.
        let target = line.split_once("=>").map_or(line, |(_, target)| target).trim();
        let path = target.split_whitespace().next().unwrap_or_default();
        if path.starts_with('/') {
            paths.push(PathBuf::from(path));
        }
    }
    Ok(paths)
}

/// `entries` with a directory entry (root, 0755) for each parent they need and do not
/// list; every directory comes before what it holds (directories first, sorted, then the
/// rest in order), and an entry naming a path already named is dropped.
pub fn with_parents(entries: Vec<Entry>) -> Vec<Entry> {
    let path_of = |entry: &Entry| match entry {
        Entry::Dir { path, .. }
        | Entry::File { path, .. }
        | Entry::Symlink { path, .. }
        | Entry::HardLink { path, .. } => Some(path.trim_end_matches('/').to_string()),
        Entry::Raw { .. } => None,
    };
    let mut dirs = std::collections::BTreeMap::new();
    let mut others = Vec::new();
    let mut seen = BTreeSet::new();
    for entry in entries {
        let Some(path) = path_of(&entry) else {
            others.push(entry);
            continue;
        };
        if !seen.insert(path.clone()) {
            continue;
        }
        for ancestor in Path::new(&path).ancestors().skip(1) {
            let dir = ancestor.to_string_lossy().into_owned();
            if !dir.is_empty() {
                dirs.entry(dir.clone()).or_insert_with(|| Entry::dir(dir, 0o755));
            }
        }
        match entry {
            Entry::Dir { .. } => {
                dirs.insert(path, entry);
            }
            _ => others.push(entry),
        }
    }
    dirs.into_values().chain(others).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repo_list_maps_every_pulled_registry_onto_a_mirrored_one() {
        let yaml = repo_list_yaml();
        for line in [
            "dockerLibraryRegistry: docker.io/library\n",
            "e2eRegistry: registry.k8s.io/kubernetes-e2e-test-images\n",
            "promoterE2eRegistry: registry.k8s.io/e2e-test-images\n",
            "gcRegistry: registry.k8s.io\n",
        ] {
            assert!(yaml.contains(line), "{line:?} not in\n{yaml}");
        }
        assert!(!yaml.contains("invalidRegistry"), "must keep failing to pull");
        for (_, name) in REGISTRY_NAMES {
            assert!(
                crate::mirrors::MIRRORED_REGISTRIES
                    .iter()
                    .any(|mirrored| name.starts_with(mirrored)),
                "{name} is not mirrored"
            );
        }
    }

    #[test]
    fn ldd_output_gives_library_paths_and_the_loader() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibcurl.so.4 => /lib/x86_64-linux-gnu/libcurl.so.4 (0x00007f01)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f02)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f03)\n";
        assert_eq!(
            parse_ldd(text).unwrap(),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libcurl.so.4"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
        assert!(parse_ldd("\tlibx.so.1 => not found\n").is_err());
    }

    #[test]
    fn parents_come_first_once_and_duplicates_go() {
        let entries = with_parents(vec![
            Entry::file("usr/lib/x/liba.so", 0o644, "a"),
            Entry::dir("usr", 0o700),
            Entry::file("usr/lib/x/liba.so", 0o644, "a"),
            Entry::file("lib64/ld.so", 0o755, "l"),
        ]);
        let names: Vec<String> = entries
            .iter()
            .map(|entry| match entry {
                Entry::Dir { path, .. } => format!("{path}/"),
                Entry::File { path, .. } => path.clone(),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(
            names,
            [
                "lib64/",
                "usr/",
                "usr/lib/",
                "usr/lib/x/",
                "usr/lib/x/liba.so",
                "lib64/ld.so"
            ]
        );
    }
}
