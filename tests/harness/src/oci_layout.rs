//! Images written as OCI image layouts (a directory with `oci-layout`, `index.json` and
//! `blobs/sha256/`), for offline nodes and import tests: `runtime-core import DIR` reads
//! them, as do `skopeo` and `ctr import` (of the tar of such a directory).
//!
//! ```no_run
//! use test_harness::{oci_layout, test_images};
//!
//! # fn f() -> anyhow::Result<()> {
//! let image = test_images::busybox_image()?;
//! oci_layout::write(std::path::Path::new("/tmp/busybox-layout"), &image, "docker.io/library/busybox:1.36")?;
//! # Ok(()) }
//! ```

use std::fs;
use std::path::Path;

use anyhow::Context;

use crate::image_builder::Image;

/// The annotation naming an image in a layout's index the way containerd does: the full
/// reference.
pub const CONTAINERD_NAME_ANNOTATION: &str = "io.containerd.image.name";

/// The OCI annotation naming an image in a layout's index.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// Writes `image` as an OCI layout in `dir` (created if need be; blobs already there are
/// kept), its index entry named `reference` (a full reference such as
/// `localhost/web:1`) in both annotations.
pub fn write(dir: &Path, image: &Image, reference: &str) -> anyhow::Result<()> {
    let annotations = serde_json::json!({
        CONTAINERD_NAME_ANNOTATION: reference,
        REF_NAME_ANNOTATION: reference,
    });
    write_annotated(dir, image, annotations)
}

/// Writes `image` as an OCI layout in `dir`, its index entry annotated with `annotations`
/// (a JSON object; `null` for none).
pub fn write_annotated(dir: &Path, image: &Image, annotations: serde_json::Value) -> anyhow::Result<()> {
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).with_context(|| format!("creating {}", blobs.display()))?;
    let blob = |digest: &str, data: &[u8]| {
        let path = blobs.join(digest.trim_start_matches("sha256:"));
        fs::write(&path, data).with_context(|| format!("writing {}", path.display()))
    };
    for layer in image.layers() {
        blob(layer.digest(), layer.blob())?;
    }
    blob(image.config_digest(), image.config_blob())?;
    blob(image.digest(), image.manifest())?;
    let mut entry = serde_json::json!({
        "mediaType": image.media_type(),
        "digest": image.digest(),
        "size": image.manifest().len(),
    });
    if !annotations.is_null() {
        entry["annotations"] = annotations;
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry],
    });
    let index_path = dir.join("index.json");
    fs::write(&index_path, serde_json::to_vec_pretty(&index)?)
        .with_context(|| format!("writing {}", index_path.display()))?;
    let marker = dir.join("oci-layout");
    fs::write(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#).with_context(|| format!("writing {}", marker.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image_builder::{Entry, ImageConfig, Layer};

    #[test]
    fn a_layout_holds_every_blob_and_names_the_image() -> anyhow::Result<()> {
        let layer = Layer::from_entries(&[Entry::file("hello", 0o644, "hi\n")])?;
        let image = Image::new(vec![layer], &ImageConfig::default());
        let dir = std::env::temp_dir().join(format!("oci-layout-test-{}", std::process::id()));
        write(&dir, &image, "localhost/hello:1")?;
        let index: serde_json::Value = serde_json::from_slice(&fs::read(dir.join("index.json"))?)?;
        let entry = &index["manifests"][0];
        assert_eq!(entry["digest"], image.digest());
        assert_eq!(entry["annotations"][REF_NAME_ANNOTATION], "localhost/hello:1");
        for digest in [image.digest(), image.config_digest(), image.layers()[0].digest()] {
            let path = dir.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
            assert!(path.is_file(), "{} is missing", path.display());
        }
        fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
