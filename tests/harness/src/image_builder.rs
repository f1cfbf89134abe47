//! Building OCI images in memory: layers from lists of entries, images from layers and a
//! config. Pure code (no I/O besides reading what the caller passes in); pushing is
//! [`crate::distribution`]'s job.
//!
//! Everything is deterministic (fixed mtimes, owners, gzip header), so the same entries
//! always give the same digests, and a registry that already has a blob is not sent it
//! again.
//!
//! ```
//! use test_harness::image_builder::{Entry, Image, ImageConfig, Layer};
//!
//! let layer = Layer::from_entries(&[
//!     Entry::dir("etc", 0o755),
//!     Entry::file("etc/motd", 0o644, "hello\n"),
//!     Entry::symlink("etc/greeting", "motd"),
//! ])?;
//! let config = ImageConfig { cmd: Some(vec!["cat".into(), "/etc/motd".into()]), ..ImageConfig::default() };
//! let image = Image::new(vec![layer], &config);
//! assert!(image.digest().starts_with("sha256:"));
//! # Ok::<(), std::io::Error>(())
//! ```

use std::collections::BTreeMap;
use std::io::{self, Write};

use bytes::Bytes;
use flate2::{Compression, GzBuilder};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tar::{EntryType, Header};

/// Media type of an OCI image manifest.
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI image config.
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of a gzip-compressed OCI layer.
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Media type of an uncompressed OCI layer.
pub const MEDIA_TYPE_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// The modification time of every entry, and the image's creation date (the epoch).
const EPOCH: &str = "1970-01-01T00:00:00Z";

/// `sha256:` followed by the lowercase hex SHA-256 of `data`: an OCI digest.
pub fn sha256_digest(data: &[u8]) -> String {
    let hash = Sha256::digest(data);
    let mut digest = String::with_capacity(7 + 64);
    digest.push_str("sha256:");
    for byte in hash {
        digest.push_str(&format!("{byte:02x}"));
    }
    digest
}

/// This machine's architecture as OCI (Go) names it: `amd64`, `arm64`, ...
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other, // riscv64, s390x, mips64 are spelled alike
    }
}

/// The platform an image runs on: OS, architecture and variant, as OCI (Go) names them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    /// `linux`, `windows`, ...
    pub os: String,
    /// `amd64`, `arm64`, `arm`, ...
    pub architecture: String,
    /// The CPU variant, such as `v7` for `arm` or `v8` for `arm64`, if any.
    pub variant: Option<String>,
}

impl Platform {
    /// `linux/ARCHITECTURE`, without a variant.
    pub fn linux(architecture: impl Into<String>) -> Platform {
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: None,
        }
    }

    /// This machine: `linux/`[`go_arch`].
    pub fn host() -> Platform {
        Platform::linux(go_arch())
    }

    /// The same platform with a CPU variant.
    pub fn with_variant(self, variant: impl Into<String>) -> Platform {
        Platform {
            variant: Some(variant.into()),
            ..self
        }
    }

    /// The platform as an image index lists it (`os`, `architecture`, `variant` if set).
    pub fn to_json(&self) -> Value {
        let mut object = json!({ "architecture": self.architecture, "os": self.os });
        if let Some(variant) = &self.variant {
            object["variant"] = json!(variant);
        }
        object
    }
}

impl std::fmt::Display for Platform {
    /// `os/architecture[/variant]`, as `--platform` flags spell it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// One entry of a layer's tar archive. Paths are relative (`bin/sh`, no leading `/`).
///
/// The typed variants are checked by the `tar` crate (no `..`, no absolute paths). A
/// hostile layer (path traversal, device nodes, odd headers) is made of [`Entry::Raw`]
/// entries, most easily through [`Entry::unchecked`].
#[derive(Debug, Clone)]
pub enum Entry {
    /// A directory.
    Dir {
        /// Path in the layer.
        path: String,
        /// Permission bits (such as `0o755`, or `0o1777` for /tmp).
        mode: u32,
        /// Owner uid.
        uid: u64,
        /// Owner gid.
        gid: u64,
    },
    /// A regular file.
    File {
        /// Path in the layer.
        path: String,
        /// Permission bits.
        mode: u32,
        /// Owner uid.
        uid: u64,
        /// Owner gid.
        gid: u64,
        /// Contents.
        data: Bytes,
    },
    /// A symbolic link to `target` (taken literally, relative or absolute).
    Symlink {
        /// Path in the layer.
        path: String,
        /// What the link points to.
        target: String,
    },
    /// A hard link to `target`, a path of the same layer that appears earlier.
    HardLink {
        /// Path in the layer.
        path: String,
        /// The earlier entry it is a link to.
        target: String,
    },
    /// A header written as is (its checksum must be set), followed by `data`.
    Raw {
        /// The 512-byte tar header.
        header: Box<Header>,
        /// The entry's contents (its length should match the header's size).
        data: Bytes,
    },
}

impl Entry {
    /// A directory owned by root.
    pub fn dir(path: impl Into<String>, mode: u32) -> Entry {
        Entry::Dir {
            path: path.into(),
            mode,
            uid: 0,
            gid: 0,
        }
    }

    /// A regular file owned by root.
    pub fn file(path: impl Into<String>, mode: u32, data: impl Into<Bytes>) -> Entry {
        Entry::File {
            path: path.into(),
            mode,
            uid: 0,
            gid: 0,
            data: data.into(),
        }
    }

    /// A symbolic link.
    pub fn symlink(path: impl Into<String>, target: impl Into<String>) -> Entry {
        Entry::Symlink {
            path: path.into(),
            target: target.into(),
        }
    }

    /// A hard link to an earlier entry.
    pub fn hard_link(path: impl Into<String>, target: impl Into<String>) -> Entry {
        Entry::HardLink {
            path: path.into(),
            target: target.into(),
        }
    }

    /// An OCI whiteout: deletes `path` of the layers below (an empty `.wh.NAME` file).
    pub fn whiteout(path: &str) -> Entry {
        let (dir, name) = path.rsplit_once('/').map_or(("", path), |(d, n)| (d, n));
        let whiteout = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        Entry::file(whiteout, 0o644, Bytes::new())
    }

    /// An OCI opaque whiteout: hides everything the layers below have in directory `dir`.
    pub fn opaque_whiteout(dir: &str) -> Entry {
        Entry::file(
            format!("{}/.wh..wh..opq", dir.trim_end_matches('/')),
            0o644,
            Bytes::new(),
        )
    }

    /// Sets the owner of a directory or file entry (other entries are returned unchanged).
    pub fn owned_by(self, owner_uid: u64, owner_gid: u64) -> Entry {
        match self {
            Entry::Dir { path, mode, .. } => Entry::Dir {
                path,
                mode,
                uid: owner_uid,
                gid: owner_gid,
            },
            Entry::File { path, mode, data, .. } => Entry::File {
                path,
                mode,
                uid: owner_uid,
                gid: owner_gid,
                data,
            },
            other => other,
        }
    }

    /// A raw entry whose name (and link name) are copied byte for byte into a ustar
    /// header, without the checks of the typed variants: `../escape`, `/etc/passwd`,
    /// a symlink out of the rootfs, a character device. Names are limited to 100 bytes.
    pub fn unchecked(
        kind: EntryType,
        path: &str,
        link: Option<&str>,
        mode: u32,
        data: impl Into<Bytes>,
    ) -> io::Result<Entry> {
        let data = data.into();
        let mut header = Header::new_ustar();
        copy_name(&mut header.as_old_mut().name, path)?;
        if let Some(link) = link {
            copy_name(&mut header.as_old_mut().linkname, link)?;
        }
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(data.len() as u64);
        header.set_cksum();
        Ok(Entry::Raw {
            header: Box::new(header),
            data,
        })
    }
}

fn copy_name(slot: &mut [u8; 100], name: &str) -> io::Result<()> {
    if name.len() > slot.len() {
        return Err(io::Error::other(format!(
            "unchecked tar name {name:?} exceeds 100 bytes"
        )));
    }
    slot.fill(0);
    slot[..name.len()].copy_from_slice(name.as_bytes());
    Ok(())
}

/// The uncompressed tar archive of `entries`, in order.
pub fn build_tar(entries: &[Entry]) -> io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = Header::new_gnu();
        header.set_mtime(0);
        match entry {
            Entry::Dir { path, mode, uid, gid } => {
                header.set_entry_type(EntryType::Directory);
                set_common(&mut header, *mode, *uid, *gid, 0);
                builder.append_data(&mut header, path, io::empty())?;
            }
            Entry::File {
                path,
                mode,
                uid,
                gid,
                data,
            } => {
                header.set_entry_type(EntryType::Regular);
                set_common(&mut header, *mode, *uid, *gid, data.len() as u64);
                builder.append_data(&mut header, path, &data[..])?;
            }
            Entry::Symlink { path, target } => {
                header.set_entry_type(EntryType::Symlink);
                set_common(&mut header, 0o777, 0, 0, 0);
                builder.append_link(&mut header, path, target)?;
            }
            Entry::HardLink { path, target } => {
                header.set_entry_type(EntryType::Link);
                set_common(&mut header, 0o755, 0, 0, 0);
                builder.append_link(&mut header, path, target)?;
            }
            Entry::Raw { header, data } => builder.append(header, &data[..])?,
        }
    }
    builder.into_inner()
}

fn set_common(header: &mut Header, mode: u32, uid: u64, gid: u64, size: u64) {
    header.set_mode(mode);
    header.set_uid(uid);
    header.set_gid(gid);
    header.set_size(size);
}

/// A layer blob ready to push: compressed (or not) bytes and their digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    blob: Bytes,
    digest: String,
    diff_id: String,
    media_type: &'static str,
}

impl Layer {
    /// A gzip layer of `entries` (see [`build_tar`]).
    pub fn from_entries(entries: &[Entry]) -> io::Result<Layer> {
        Layer::from_tar(&build_tar(entries)?)
    }

    /// A gzip layer of a ready-made tar archive, at the default compression level.
    pub fn from_tar(tar: &[u8]) -> io::Result<Layer> {
        Layer::from_tar_with(tar, Compression::default())
    }

    /// A gzip layer of a tar archive at the given level (`Compression::fast()` for big
    /// test layers whose size on the wire does not matter).
    pub fn from_tar_with(tar: &[u8], level: Compression) -> io::Result<Layer> {
        // mtime 0 and no file name in the gzip header keep the digest reproducible.
        let mut encoder = GzBuilder::new()
            .mtime(0)
            .write(Vec::with_capacity(tar.len() / 2), level);
        encoder.write_all(tar)?;
        let blob = Bytes::from(encoder.finish()?);
        Ok(Layer {
            digest: sha256_digest(&blob),
            diff_id: sha256_digest(tar),
            blob,
            media_type: MEDIA_TYPE_LAYER_GZIP,
        })
    }

    /// A gzip layer from a blob built earlier (such as one cached on disk) and the digest
    /// of its uncompressed tar. The blob's digest is computed; `diff_id` is trusted, not
    /// checked (decompressing to check it would cost what keeping the blob saved).
    pub fn from_gzip_blob(blob: impl Into<Bytes>, diff_id: impl Into<String>) -> Layer {
        let blob = blob.into();
        Layer {
            digest: sha256_digest(&blob),
            diff_id: diff_id.into(),
            blob,
            media_type: MEDIA_TYPE_LAYER_GZIP,
        }
    }

    /// An uncompressed layer (media type `...tar`; its digest is its diff id).
    pub fn uncompressed(tar: impl Into<Bytes>) -> Layer {
        let blob = tar.into();
        let digest = sha256_digest(&blob);
        Layer {
            diff_id: digest.clone(),
            digest,
            blob,
            media_type: MEDIA_TYPE_LAYER_TAR,
        }
    }

    /// The blob as sent to the registry.
    pub fn blob(&self) -> &Bytes {
        &self.blob
    }

    /// The blob's digest (what the manifest lists).
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The digest of the uncompressed tar (what the config's `rootfs.diff_ids` lists).
    pub fn diff_id(&self) -> &str {
        &self.diff_id
    }

    /// The blob's size in bytes.
    pub fn size(&self) -> u64 {
        self.blob.len() as u64
    }

    /// The blob's media type.
    pub fn media_type(&self) -> &'static str {
        self.media_type
    }
}

/// The runtime part of an image config (the OCI config's `config` object). Empty fields
/// are left out of the JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// `User`: `name`, `uid`, `uid:gid` or `name:group`.
    pub user: Option<String>,
    /// `Env`: `KEY=value` strings.
    pub env: Vec<String>,
    /// `Entrypoint`.
    pub entrypoint: Option<Vec<String>>,
    /// `Cmd`.
    pub cmd: Option<Vec<String>>,
    /// `WorkingDir`.
    pub working_dir: Option<String>,
    /// `Labels`.
    pub labels: BTreeMap<String, String>,
    /// `StopSignal`, such as `SIGQUIT`.
    pub stop_signal: Option<String>,
    /// `ExposedPorts`, such as `8080/tcp`.
    pub exposed_ports: Vec<String>,
    /// `Volumes`: paths.
    pub volumes: Vec<String>,
}

impl ImageConfig {
    /// The config's `config` object.
    pub fn to_json(&self) -> Value {
        let mut object = serde_json::Map::new();
        if let Some(user) = &self.user {
            object.insert("User".into(), json!(user));
        }
        if !self.env.is_empty() {
            object.insert("Env".into(), json!(self.env));
        }
        if let Some(entrypoint) = &self.entrypoint {
            object.insert("Entrypoint".into(), json!(entrypoint));
        }
        if let Some(cmd) = &self.cmd {
            object.insert("Cmd".into(), json!(cmd));
        }
        if let Some(dir) = &self.working_dir {
            object.insert("WorkingDir".into(), json!(dir));
        }
        if !self.labels.is_empty() {
            object.insert("Labels".into(), json!(self.labels));
        }
        if let Some(signal) = &self.stop_signal {
            object.insert("StopSignal".into(), json!(signal));
        }
        let set = |items: &[String]| Value::Object(items.iter().map(|i| (i.clone(), json!({}))).collect());
        if !self.exposed_ports.is_empty() {
            object.insert("ExposedPorts".into(), set(&self.exposed_ports));
        }
        if !self.volumes.is_empty() {
            object.insert("Volumes".into(), set(&self.volumes));
        }
        Value::Object(object)
    }
}

/// The full OCI image config JSON for `layers` on linux/`architecture`.
pub fn config_json(config: &ImageConfig, layers: &[Layer], architecture: &str) -> Value {
    platform_config_json(config, layers, &Platform::linux(architecture))
}

/// The full OCI image config JSON for `layers` on `platform` (`variant` only if it has
/// one).
pub fn platform_config_json(config: &ImageConfig, layers: &[Layer], platform: &Platform) -> Value {
    let mut json = json!({
        "created": EPOCH,
        "architecture": platform.architecture,
        "os": platform.os,
        "config": config.to_json(),
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(Layer::diff_id).collect::<Vec<_>>(),
        },
        "history": layers.iter().map(|_| json!({ "created": EPOCH, "created_by": "kubelet-lite test-harness" })).collect::<Vec<_>>(),
    });
    if let Some(variant) = &platform.variant {
        json["variant"] = json!(variant);
    }
    json
}

/// The OCI image manifest JSON for a config blob and its layers.
pub fn manifest_json(config_digest: &str, config_size: u64, layers: &[Layer]) -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "config": { "mediaType": MEDIA_TYPE_CONFIG, "digest": config_digest, "size": config_size },
        "layers": layers
            .iter()
            .map(|layer| json!({ "mediaType": layer.media_type(), "digest": layer.digest(), "size": layer.size() }))
            .collect::<Vec<_>>(),
    })
}

/// A complete single-platform image: layers, config blob and manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    platform: Platform,
    layers: Vec<Layer>,
    config: Bytes,
    config_digest: String,
    manifest: Bytes,
    digest: String,
}

impl Image {
    /// An image for this machine's architecture (see [`go_arch`]).
    pub fn new(layers: Vec<Layer>, config: &ImageConfig) -> Image {
        Image::for_architecture(layers, config, go_arch())
    }

    /// An image for linux/`architecture` (Go naming).
    pub fn for_architecture(layers: Vec<Layer>, config: &ImageConfig, architecture: &str) -> Image {
        Image::for_platform(layers, config, &Platform::linux(architecture))
    }

    /// An image for `platform` (its config says so; an index lists it so).
    pub fn for_platform(layers: Vec<Layer>, config: &ImageConfig, platform: &Platform) -> Image {
        let config = Bytes::from(platform_config_json(config, &layers, platform).to_string());
        let config_digest = sha256_digest(&config);
        let manifest = Bytes::from(manifest_json(&config_digest, config.len() as u64, &layers).to_string());
        let digest = sha256_digest(&manifest);
        Image {
            platform: platform.clone(),
            layers,
            config,
            config_digest,
            manifest,
            digest,
        }
    }

    /// The platform the image is for.
    pub fn platform(&self) -> &Platform {
        &self.platform
    }

    /// The layers, bottom first.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The config blob (JSON).
    pub fn config_blob(&self) -> &Bytes {
        &self.config
    }

    /// The config blob's digest (the image id runtimes show).
    pub fn config_digest(&self) -> &str {
        &self.config_digest
    }

    /// The manifest (JSON), as pushed.
    pub fn manifest(&self) -> &Bytes {
        &self.manifest
    }

    /// The manifest's digest (what `image@sha256:...` references).
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The manifest's media type.
    pub fn media_type(&self) -> &'static str {
        MEDIA_TYPE_MANIFEST
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// Path, type, mode, uid, link name and contents of one archive entry.
    type ReadEntry = (String, EntryType, u32, u64, Option<String>, Vec<u8>);

    fn entries_of(tar: &[u8]) -> Vec<ReadEntry> {
        let mut archive = tar::Archive::new(tar);
        archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let header = entry.header().clone();
                let mut data = Vec::new();
                entry.read_to_end(&mut data).unwrap();
                (
                    String::from_utf8_lossy(&entry.path_bytes()).into_owned(),
                    header.entry_type(),
                    header.mode().unwrap(),
                    header.uid().unwrap(),
                    entry
                        .link_name_bytes()
                        .map(|l| String::from_utf8_lossy(&l).into_owned()),
                    data,
                )
            })
            .collect()
    }

    #[test]
    fn digests_are_sha256_in_oci_form() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_digest(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn go_arch_names_this_machine() {
        let arch = go_arch();
        assert!(!arch.is_empty());
        if cfg!(target_arch = "x86_64") {
            assert_eq!(arch, "amd64");
        }
    }

    #[test]
    fn tar_holds_the_entries_in_order_with_their_modes_and_links() {
        let long = format!("deep/{}/file", "d".repeat(120));
        let tar = build_tar(&[
            Entry::dir("tmp", 0o1777),
            Entry::file("bin/busybox", 0o755, "ELF"),
            Entry::hard_link("bin/sh", "bin/busybox"),
            Entry::symlink("lib", "usr/lib"),
            Entry::file("home/u/x", 0o600, "x").owned_by(65532, 65532),
            Entry::file(long.clone(), 0o644, "long"),
            Entry::whiteout("etc/gone"),
            Entry::opaque_whiteout("var/"),
        ])
        .unwrap();
        let entries = entries_of(&tar);
        let summary: Vec<(&str, EntryType, u32)> = entries.iter().map(|e| (e.0.as_str(), e.1, e.2)).collect();
        assert_eq!(
            summary,
            [
                ("tmp", EntryType::Directory, 0o1777),
                ("bin/busybox", EntryType::Regular, 0o755),
                ("bin/sh", EntryType::Link, 0o755),
                ("lib", EntryType::Symlink, 0o777),
                ("home/u/x", EntryType::Regular, 0o600),
                (long.as_str(), EntryType::Regular, 0o644),
                ("etc/.wh.gone", EntryType::Regular, 0o644),
                ("var/.wh..wh..opq", EntryType::Regular, 0o644),
            ]
        );
        assert_eq!(entries[1].5, b"ELF");
        assert_eq!(entries[2].4.as_deref(), Some("bin/busybox"));
        assert_eq!(entries[3].4.as_deref(), Some("usr/lib"));
        assert_eq!(entries[4].3, 65532);
    }

    #[test]
    fn unchecked_entries_keep_hostile_names() {
        let tar = build_tar(&[
            Entry::unchecked(EntryType::Regular, "../escape", None, 0o644, "x").unwrap(),
            Entry::unchecked(EntryType::Symlink, "evil", Some("/etc/shadow"), 0o777, Bytes::new()).unwrap(),
        ])
        .unwrap();
        let entries = entries_of(&tar);
        assert_eq!(entries[0].0, "../escape");
        assert_eq!(entries[1].4.as_deref(), Some("/etc/shadow"));
        assert!(Entry::unchecked(EntryType::Regular, &"x".repeat(101), None, 0o644, Bytes::new()).is_err());
    }

    #[test]
    fn layers_are_reproducible_and_their_diff_id_is_the_tar_digest() {
        let entries = [Entry::dir("etc", 0o755), Entry::file("etc/hostname", 0o644, "test\n")];
        let a = Layer::from_entries(&entries).unwrap();
        let b = Layer::from_entries(&entries).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.diff_id(), sha256_digest(&build_tar(&entries).unwrap()));
        assert_eq!(a.digest(), sha256_digest(a.blob()));
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&a.blob()[..])
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(sha256_digest(&tar), a.diff_id());
        assert_eq!(a.media_type(), MEDIA_TYPE_LAYER_GZIP);

        let raw = Layer::uncompressed(build_tar(&entries).unwrap());
        assert_eq!(raw.digest(), raw.diff_id());
        assert_eq!(raw.media_type(), MEDIA_TYPE_LAYER_TAR);
    }

    #[test]
    fn gzip_blobs_kept_aside_make_the_same_layer() {
        let layer = Layer::from_entries(&[Entry::file("a", 0o644, "a\n")]).unwrap();
        let again = Layer::from_gzip_blob(layer.blob().clone(), layer.diff_id());
        assert_eq!(again, layer);
    }

    #[test]
    fn platforms_print_and_serialize_like_oci() {
        let arm = Platform::linux("arm").with_variant("v7");
        assert_eq!(arm.to_string(), "linux/arm/v7");
        assert_eq!(
            arm.to_json(),
            json!({ "os": "linux", "architecture": "arm", "variant": "v7" })
        );
        assert_eq!(Platform::host().to_string(), format!("linux/{}", go_arch()));
        assert!(Platform::host().to_json().get("variant").is_none());

        let image = Image::for_platform(Vec::new(), &ImageConfig::default(), &arm);
        assert_eq!(image.platform(), &arm);
        let config: Value = serde_json::from_slice(image.config_blob()).unwrap();
        assert_eq!(
            (&config["os"], &config["architecture"], &config["variant"]),
            (&json!("linux"), &json!("arm"), &json!("v7"))
        );
        let plain = Image::new(Vec::new(), &ImageConfig::default());
        let config: Value = serde_json::from_slice(plain.config_blob()).unwrap();
        assert!(config.get("variant").is_none());
    }

    #[test]
    fn manifest_and_config_describe_the_layers() {
        let base = Layer::from_entries(&[Entry::dir("bin", 0o755)]).unwrap();
        let top = Layer::from_entries(&[Entry::file("pause", 0o755, "#!/bin/sh\n")]).unwrap();
        let config = ImageConfig {
            user: Some("65532:65532".into()),
            env: vec!["PATH=/bin".into()],
            entrypoint: Some(vec!["/pause".into()]),
            exposed_ports: vec!["80/tcp".into()],
            ..ImageConfig::default()
        };
        let image = Image::for_architecture(vec![base.clone(), top.clone()], &config, "arm64");

        let manifest: Value = serde_json::from_slice(image.manifest()).unwrap();
        assert_eq!(manifest["schemaVersion"], 2);
        assert_eq!(manifest["mediaType"], MEDIA_TYPE_MANIFEST);
        assert_eq!(manifest["config"]["mediaType"], MEDIA_TYPE_CONFIG);
        assert_eq!(manifest["config"]["digest"], image.config_digest());
        assert_eq!(manifest["config"]["size"], image.config_blob().len() as u64);
        assert_eq!(manifest["layers"][0]["digest"], base.digest());
        assert_eq!(manifest["layers"][1]["size"], top.size());
        assert_eq!(manifest["layers"][1]["mediaType"], MEDIA_TYPE_LAYER_GZIP);
        assert_eq!(image.digest(), sha256_digest(image.manifest()));
        assert_eq!(image.config_digest(), sha256_digest(image.config_blob()));

        let config: Value = serde_json::from_slice(image.config_blob()).unwrap();
        assert_eq!(config["architecture"], "arm64");
        assert_eq!(config["os"], "linux");
        assert_eq!(config["rootfs"]["type"], "layers");
        assert_eq!(config["rootfs"]["diff_ids"], json!([base.diff_id(), top.diff_id()]));
        assert_eq!(config["config"]["User"], "65532:65532");
        assert_eq!(config["config"]["Entrypoint"], json!(["/pause"]));
        assert_eq!(config["config"]["ExposedPorts"], json!({ "80/tcp": {} }));
        assert!(config["config"].get("Cmd").is_none());
        assert_eq!(config["history"].as_array().map(Vec::len), Some(2));
    }
}
