//! The images every runtime test pulls, built from the host's static busybox.
//!
//! | image | in the local registry | pulled through the mirrors as |
//! |---|---|---|
//! | busybox | `library/busybox:1.36`, `:latest` | `docker.io/library/busybox:1.36` |
//! | pause | `pause:3.9` | `registry.k8s.io/pause:3.9` |
//! | nonroot | `kubelet-lite-test/nonroot:1` | `registry.k8s.io/kubelet-lite-test/nonroot:1` |
//!
//! The busybox layer holds `/bin/busybox` and one hard link per applet (`/bin/sh`,
//! `/bin/sleep`, ...), `/etc/passwd` and `/etc/group` naming `root`, `nobody` and
//! `nonroot` ([`NONROOT_UID`]), and `/tmp` with mode 1777. The other images reuse it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::Registry;
use crate::image_builder::{Entry, Image, ImageConfig, Layer};

/// Where Debian's `busybox-static` installs busybox.
pub const BUSYBOX_BINARY: &str = "/bin/busybox";
/// `PATH` in the images' environment.
pub const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The non-root user of the images (`/etc/passwd` names it `nonroot`).
pub const NONROOT_UID: u32 = 65532;
/// The non-root user's group (`/etc/group` names it `nonroot`).
pub const NONROOT_GID: u32 = 65532;

/// busybox's repository in the local registry.
pub const BUSYBOX_REPOSITORY: &str = "library/busybox";
/// Tags of busybox in the local registry; the first is the one tests use.
pub const BUSYBOX_TAGS: &[&str] = &["1.36", "latest"];
/// The pause image's repository in the local registry.
pub const PAUSE_REPOSITORY: &str = "pause";
/// The pause image's tag.
pub const PAUSE_TAG: &str = "3.9";
/// The non-root image's repository in the local registry.
pub const NONROOT_REPOSITORY: &str = "kubelet-lite-test/nonroot";
/// The non-root image's tag.
pub const NONROOT_TAG: &str = "1";
/// The repository of the image whose user is given by name.
pub const NAMED_USER_REPOSITORY: &str = "kubelet-lite-test/named-user";
/// The named-user image's tag.
pub const NAMED_USER_TAG: &str = "1";

/// The pause image's entrypoint. It runs as PID 1 of the sandbox, where signals without a
/// handler are ignored, so it traps SIGTERM and SIGINT and exits 0 at once, as the real
/// pause does. `wait` returns as soon as a trapped signal arrives.
pub const PAUSE_SCRIPT: &str = "#!/bin/sh
# kubelet-lite test pause: block until SIGTERM or SIGINT, then exit 0.
trap 'kill $sleeper 2>/dev/null; exit 0' TERM INT
while :; do
  sleep 86400 &
  sleeper=$!
  wait $sleeper
done
";

/// Image references of the test images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestImages {
    /// busybox: `Cmd ["sh"]`, runs as root.
    pub busybox: String,
    /// The sandbox image: blocks until SIGTERM/SIGINT, then exits 0.
    pub pause: String,
    /// busybox with `User` [`NONROOT_UID`]:[`NONROOT_GID`] (`nonroot`).
    pub nonroot: String,
    /// busybox with `User "nonroot"`: a user by name, which a node cannot check for
    /// `runAsNonRoot`.
    pub named_user: String,
}

/// Builds the test images and pushes them to `registry`; returns the references a CRI
/// client pulls them by, through the registry mirrors (`docker.io/library/busybox:1.36`,
/// `registry.k8s.io/pause:3.9`, `registry.k8s.io/kubelet-lite-test/nonroot:1`).
///
/// Fails with [`crate::Missing`] in the chain if there is no static busybox.
pub fn push_test_images(registry: &Registry) -> anyhow::Result<TestImages> {
    let started = Instant::now();
    let client = registry.client();
    client
        .push_image(BUSYBOX_REPOSITORY, BUSYBOX_TAGS, &busybox_image()?)
        .context("pushing the busybox image")?;
    client
        .push_image(PAUSE_REPOSITORY, &[PAUSE_TAG], &pause_image()?)
        .context("pushing the pause image")?;
    client
        .push_image(NONROOT_REPOSITORY, &[NONROOT_TAG], &nonroot_image()?)
        .context("pushing the nonroot image")?;
    client
        .push_image(NAMED_USER_REPOSITORY, &[NAMED_USER_TAG], &named_user_image()?)
        .context("pushing the named-user image")?;
    crate::note(format!("test images built and pushed in {:.2?}", started.elapsed()));
    Ok(mirrored_references())
}

/// The test images' references through the mirrors (what [`push_test_images`] returns).
pub fn mirrored_references() -> TestImages {
    TestImages {
        busybox: format!("docker.io/{BUSYBOX_REPOSITORY}:{}", BUSYBOX_TAGS[0]),
        pause: format!("registry.k8s.io/{PAUSE_REPOSITORY}:{PAUSE_TAG}"),
        nonroot: format!("registry.k8s.io/{NONROOT_REPOSITORY}:{NONROOT_TAG}"),
        named_user: format!("registry.k8s.io/{NAMED_USER_REPOSITORY}:{NAMED_USER_TAG}"),
    }
}

/// The test images' references straight at the local registry, such as
/// `127.0.0.1:5000/library/busybox:1.36` (for clients configured without mirrors; the
/// registry speaks plain HTTP).
pub fn direct_references(registry: &Registry) -> TestImages {
    let addr = registry.addr();
    TestImages {
        busybox: format!("{addr}/{BUSYBOX_REPOSITORY}:{}", BUSYBOX_TAGS[0]),
        pause: format!("{addr}/{PAUSE_REPOSITORY}:{PAUSE_TAG}"),
        nonroot: format!("{addr}/{NONROOT_REPOSITORY}:{NONROOT_TAG}"),
        named_user: format!("{addr}/{NAMED_USER_REPOSITORY}:{NAMED_USER_TAG}"),
    }
}

/// The runtime config of busybox: `Cmd ["sh"]`, `PATH` set.
pub fn busybox_config() -> ImageConfig {
    ImageConfig {
        env: vec![PATH_ENV.into()],
        cmd: Some(vec!["sh".into()]),
        ..ImageConfig::default()
    }
}

/// The busybox image.
pub fn busybox_image() -> anyhow::Result<Image> {
    Ok(Image::new(vec![busybox_layer()?], &busybox_config()))
}

/// The pause image: the busybox layer plus a layer with `/pause` ([`PAUSE_SCRIPT`]).
pub fn pause_image() -> anyhow::Result<Image> {
    let pause = Layer::from_entries(&[Entry::file("pause", 0o755, PAUSE_SCRIPT)])?;
    let config = ImageConfig {
        env: vec![PATH_ENV.into()],
        entrypoint: Some(vec!["/pause".into()]),
        ..ImageConfig::default()
    };
    Ok(Image::new(vec![busybox_layer()?, pause], &config))
}

/// The non-root image: busybox with `User "65532:65532"`.
pub fn nonroot_image() -> anyhow::Result<Image> {
    let config = ImageConfig {
        user: Some(format!("{NONROOT_UID}:{NONROOT_GID}")),
        ..busybox_config()
    };
    Ok(Image::new(vec![busybox_layer()?], &config))
}

/// The named-user image: busybox with `User "nonroot"`.
pub fn named_user_image() -> anyhow::Result<Image> {
    let config = ImageConfig {
        user: Some("nonroot".into()),
        ..busybox_config()
    };
    Ok(Image::new(vec![busybox_layer()?], &config))
}

/// The busybox layer (built once per process, then cloned cheaply).
pub fn busybox_layer() -> anyhow::Result<Layer> {
    static LAYER: OnceLock<Layer> = OnceLock::new();
    if let Some(layer) = LAYER.get() {
        return Ok(layer.clone());
    }
    let layer = Layer::from_entries(&busybox_entries()?)?;
    Ok(LAYER.get_or_init(|| layer).clone())
}

/// The entries of the busybox layer, to extend into other images.
pub fn busybox_entries() -> anyhow::Result<Vec<Entry>> {
    let busybox = find_static_busybox()?;
    let binary = std::fs::read(&busybox).with_context(|| format!("reading {}", busybox.display()))?;
    let applets = applets(&busybox)?;

    let mut entries = vec![
        Entry::dir("bin", 0o755),
        Entry::dir("dev", 0o755),
        Entry::dir("etc", 0o755),
        Entry::dir("home", 0o755),
        Entry::dir("home/nonroot", 0o755).owned_by(NONROOT_UID.into(), NONROOT_GID.into()),
        Entry::dir("proc", 0o555),
        Entry::dir("root", 0o700),
        Entry::dir("sys", 0o555),
        Entry::dir("tmp", 0o1777),
        Entry::dir("usr", 0o755),
        Entry::dir("var", 0o755),
        Entry::file("etc/passwd", 0o644, passwd()),
        Entry::file("etc/group", 0o644, group()),
        Entry::file("bin/busybox", 0o755, binary),
    ];
    entries.extend(
        applets
            .iter()
            .map(|applet| Entry::hard_link(format!("bin/{applet}"), "bin/busybox")),
    );
    Ok(entries)
}

fn passwd() -> String {
    format!(
        "root:x:0:0:root:/root:/bin/sh\n\
         nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n\
         nonroot:x:{NONROOT_UID}:{NONROOT_GID}:nonroot:/home/nonroot:/bin/sh\n"
    )
}

fn group() -> String {
    format!("root:x:0:\nnogroup:x:65534:\nnonroot:x:{NONROOT_GID}:\n")
}

/// `/bin/busybox` (or the first busybox in `PATH`), if it is statically linked: the
/// images have no libc to offer a dynamic one.
fn find_static_busybox() -> anyhow::Result<PathBuf> {
    let path = if Path::new(BUSYBOX_BINARY).exists() {
        PathBuf::from(BUSYBOX_BINARY)
    } else {
        crate::find_tool("busybox").ok_or_else(|| crate::Missing::new(["busybox"]))?
    };
    let mut head = vec![0u8; 4096];
    let n = std::io::Read::read(&mut std::fs::File::open(&path)?, &mut head)?;
    head.truncate(n);
    match is_static_elf(&head) {
        Some(true) => Ok(path),
        Some(false) => Err(crate::Missing::new([format!(
            "a static busybox ({} is dynamically linked; apt-get install busybox-static)",
            path.display()
        )])
        .into()),
        None => bail!("{} is not an ELF executable", path.display()),
    }
}

/// Busybox's applets (`busybox --list`), without `busybox` itself.
fn applets(busybox: &Path) -> anyhow::Result<Vec<String>> {
    let output = Command::new(busybox)
        .arg("--list")
        .output()
        .with_context(|| format!("running {} --list", busybox.display()))?;
    if !output.status.success() {
        bail!(
            "{} --list failed: {}",
            busybox.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut applets: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|name| !name.is_empty() && *name != "busybox" && !name.contains('/'))
        .map(str::to_string)
        .collect();
    applets.sort();
    applets.dedup();
    if !applets.iter().any(|a| a == "sh") {
        bail!("{} has no sh applet", busybox.display());
    }
    Ok(applets)
}

/// Whether the ELF image starting with `head` has no program interpreter (is static);
/// `None` if it is not ELF or its program headers lie beyond `head`.
fn is_static_elf(head: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if head.get(..4)? != b"\x7fELF" {
        return None;
    }
    let little = match head.get(5)? {
        1 => true,
        2 => false,
        _ => return None,
    };
    let u16_at = |at: usize| {
        let b: [u8; 2] = head.get(at..at + 2)?.try_into().ok()?;
        Some(if little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    };
    let u32_at = |at: usize| {
        let b: [u8; 4] = head.get(at..at + 4)?.try_into().ok()?;
        Some(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let u64_at = |at: usize| {
        let b: [u8; 8] = head.get(at..at + 8)?.try_into().ok()?;
        Some(if little {
            u64::from_le_bytes(b)
        } else {
            u64::from_be_bytes(b)
        })
    };
    let (phoff, phentsize, phnum) = match head.get(4)? {
        1 => (u64::from(u32_at(0x1c)?), u16_at(0x2a)?, u16_at(0x2c)?),
        2 => (u64_at(0x20)?, u16_at(0x36)?, u16_at(0x38)?),
        _ => return None,
    };
    let phoff = usize::try_from(phoff).ok()?;
    for index in 0..usize::from(phnum) {
        if u32_at(phoff + index * usize::from(phentsize))? == PT_INTERP {
            return Some(false);
        }
    }
    Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal 64-bit little-endian ELF header with one program header of `p_type`.
    fn elf64(p_type: u32) -> Vec<u8> {
        let mut elf = vec![0u8; 64 + 56];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2; // 64-bit
        elf[5] = 1; // little endian
        elf[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        elf[64..68].copy_from_slice(&p_type.to_le_bytes());
        elf
    }

    #[test]
    fn static_elf_has_no_interpreter() {
        assert_eq!(is_static_elf(&elf64(1)), Some(true));
        assert_eq!(is_static_elf(&elf64(3)), Some(false));
        assert_eq!(is_static_elf(b"#!/bin/sh\n"), None);
        assert_eq!(is_static_elf(&elf64(1)[..66]), None);
    }

    #[test]
    fn users_and_groups_name_the_nonroot_ids() {
        assert!(
            passwd()
                .lines()
                .any(|l| l == "nonroot:x:65532:65532:nonroot:/home/nonroot:/bin/sh")
        );
        assert!(passwd().starts_with("root:x:0:0:"));
        assert!(group().lines().any(|l| l == "nonroot:x:65532:"));
    }

    #[test]
    fn references_go_through_the_mirrors() {
        let images = mirrored_references();
        assert_eq!(images.busybox, "docker.io/library/busybox:1.36");
        assert_eq!(images.pause, "registry.k8s.io/pause:3.9");
        assert_eq!(images.nonroot, "registry.k8s.io/kubelet-lite-test/nonroot:1");
    }

    /// Reads the busybox layer this machine produces (skipped without a static busybox).
    #[test]
    fn busybox_layer_links_every_applet_to_busybox() {
        let Ok(entries) = busybox_entries() else {
            return;
        };
        let tar = crate::image_builder::build_tar(&entries).unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        let mut seen = std::collections::BTreeMap::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let link = entry
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned());
            seen.insert(
                path,
                (entry.header().entry_type(), entry.header().mode().unwrap(), link),
            );
        }
        assert_eq!(seen["bin/busybox"].0, tar::EntryType::Regular);
        assert_eq!(
            seen["bin/sh"],
            (tar::EntryType::Link, 0o755, Some("bin/busybox".into()))
        );
        assert_eq!(seen["bin/sleep"].2.as_deref(), Some("bin/busybox"));
        assert_eq!(seen["tmp"], (tar::EntryType::Directory, 0o1777, None));
        assert!(seen.contains_key("etc/passwd") && seen.contains_key("etc/group"));
        assert!(!seen.contains_key("bin/busybox/busybox"));
    }
}
