//! What a registry serves for an image: manifests, indexes (read under the media type the
//! registry names, or one guessed from the document) and image configs. Parsing must not
//! panic; a document that parses is written back and parses to the same value; platform
//! selection on an index picks a manifest of it for any host.

#![no_main]

use libfuzzer_sys::fuzz_target;
use runtime_core::image::oci::{
    self, ImageConfig, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_DOCKER_MANIFEST_LIST, MEDIA_TYPE_DOCKER_SCHEMA1,
    MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_MANIFEST, ManifestDocument,
};

const MEDIA_TYPES: [&str; 6] = [
    MEDIA_TYPE_OCI_MANIFEST,
    MEDIA_TYPE_OCI_INDEX,
    MEDIA_TYPE_DOCKER_MANIFEST,
    MEDIA_TYPE_DOCKER_MANIFEST_LIST,
    MEDIA_TYPE_DOCKER_SCHEMA1,
    "application/json",
];
const HOSTS: [(&str, &str, Option<&str>); 5] = [
    ("linux", "amd64", None),
    ("linux", "arm64", None),
    ("linux", "arm", Some("v7")),
    ("linux", "aarch64", Some("v8")),
    ("windows", "x86_64", None),
];

fuzz_target!(|input: &[u8]| {
    let Some((&choice, bytes)) = input.split_first() else {
        return;
    };
    let media_type = match MEDIA_TYPES[usize::from(choice) % MEDIA_TYPES.len()] {
        // A generic content type: the manager guesses from the document.
        "application/json" => oci::detect_media_type(bytes).unwrap_or_default(),
        named => named.to_string(),
    };
    if let Ok(document) = ManifestDocument::parse(&media_type, bytes) {
        let json = match &document {
            ManifestDocument::Manifest(manifest) => serde_json::to_vec(manifest),
            ManifestDocument::Index(index) => serde_json::to_vec(index),
        }
        .expect("a parsed document serializes");
        let again = ManifestDocument::parse(&media_type, &json).expect("a written document parses");
        assert_eq!(again, document);
        if let ManifestDocument::Index(index) = &document {
            for (os, arch, variant) in HOSTS {
                if let Some(chosen) = oci::select_platform(index, os, arch, variant) {
                    assert!(index.manifests.contains(chosen));
                }
            }
        }
    }
    if let Ok(config) = serde_json::from_slice::<ImageConfig>(bytes) {
        let json = serde_json::to_vec(&config).expect("a parsed config serializes");
        let again: ImageConfig = serde_json::from_slice(&json).expect("a written config parses");
        assert_eq!(again, config);
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        let (arch, variant) = text.split_once('/').unwrap_or((text, ""));
        let _ = oci::normalize_arch(arch, Some(variant).filter(|v| !v.is_empty()));
    }
});
