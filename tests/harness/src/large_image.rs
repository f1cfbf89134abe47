//! A large image for pull benchmarks: the busybox layer (so it runs) and several gzip
//! layers of incompressible but deterministic bytes, built once per machine and kept
//! under `BASE/cache/` (see [`crate::scratch`]).
//!
//! With the default [`LargeImageSpec`] the image is 64 MiB of random bytes in 4 layers of
//! 4 files each, plus busybox: about 65 MiB on the wire and on disk once unpacked, so a
//! pull measures moving, hashing, storing and unpacking bytes rather than round trips.
//!
//! The bytes come from SplitMix64 seeded per file, so every machine builds the same
//! layers from the same spec (for a given `flate2` back end). They are compressed at
//! level 1 ([`flate2::Compression::fast`]): on random input that level still emits
//! Huffman-coded blocks, which a runtime has to decode, where the default level gives up
//! and stores the bytes raw (and inflating becomes a copy). The blob ends up 0.1% larger
//! than its content.
//!
//! Building takes a few seconds in a debug build; later runs read the cached blobs back
//! (and check their digests) in a fraction of that. Changing what the layers hold must
//! bump [`LARGE_IMAGE_VERSION`], which names the cache directory.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use bytes::Bytes;
use flate2::Compression;

use crate::Registry;
use crate::image_builder::{Entry, Image, Layer, build_tar};
use crate::scratch;
use crate::test_images::{busybox_config, busybox_layer};

/// The version of the layers' contents: part of the cache directory's and the tag's name.
pub const LARGE_IMAGE_VERSION: u32 = 1;
/// The large image's repository in the local registry.
pub const LARGE_REPOSITORY: &str = "kubelet-lite-test/large";
/// The directory under the scratch base that keeps built blobs between runs.
pub const CACHE_DIR: &str = "cache";

/// The shape of the large image's random layers (the busybox layer comes on top of
/// them, as the first layer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LargeImageSpec {
    /// How many random layers. Default 4.
    pub layers: usize,
    /// Files per random layer. Default 4.
    pub files_per_layer: usize,
    /// Bytes per file. Default 4 MiB.
    pub file_size: usize,
    /// The PRNG seed. Default 1.
    pub seed: u64,
}

impl Default for LargeImageSpec {
    fn default() -> LargeImageSpec {
        LargeImageSpec {
            layers: 4,
            files_per_layer: 4,
            file_size: 4 << 20,
            seed: 1,
        }
    }
}

impl LargeImageSpec {
    /// The bytes of file contents in the random layers.
    pub fn content_bytes(&self) -> u64 {
        (self.layers * self.files_per_layer * self.file_size) as u64
    }

    /// The tag the image is pushed under: `v1-4x4x4194304-s1` (version, layers, files,
    /// file size, seed), so different shapes never share a tag.
    pub fn tag(&self) -> String {
        format!(
            "v{LARGE_IMAGE_VERSION}-{}x{}x{}-s{}",
            self.layers, self.files_per_layer, self.file_size, self.seed
        )
    }

    /// The path of file `file` of random layer `layer`.
    pub fn file_path(layer: usize, file: usize) -> String {
        format!("data/layer-{layer}/file-{file}.bin")
    }
}

/// The large image as pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LargeImage {
    /// Through the mirrors: `registry.k8s.io/kubelet-lite-test/large:TAG`.
    pub reference: String,
    /// Straight at the local registry: `127.0.0.1:PORT/kubelet-lite-test/large:TAG`.
    pub direct_reference: String,
    /// What it was built from.
    pub spec: LargeImageSpec,
    /// The image: the busybox layer first, then the random layers.
    pub image: Image,
}

impl LargeImage {
    /// The bytes a pull downloads: manifest, config and layer blobs.
    pub fn download_bytes(&self) -> u64 {
        self.image.manifest().len() as u64
            + self.image.config_blob().len() as u64
            + self.image.layers().iter().map(Layer::size).sum::<u64>()
    }
}

/// Builds (or reads back from the cache) the default large image and pushes it to
/// `registry`.
///
/// Fails with [`crate::Missing`] in the chain if there is no static busybox.
pub fn push_large_image(registry: &Registry) -> anyhow::Result<LargeImage> {
    push_large_image_with(registry, &LargeImageSpec::default())
}

/// Builds (or reads back) the large image of `spec` and pushes it to `registry` under
/// [`LargeImageSpec::tag`].
pub fn push_large_image_with(registry: &Registry, spec: &LargeImageSpec) -> anyhow::Result<LargeImage> {
    let image = large_image(spec)?;
    let started = Instant::now();
    let tag = spec.tag();
    registry
        .client()
        .push_image(LARGE_REPOSITORY, &[&tag], &image)
        .context("pushing the large image")?;
    crate::note(format!(
        "large image pushed in {:.2?} ({} layers, {} MiB)",
        started.elapsed(),
        image.layers().len(),
        image.layers().iter().map(Layer::size).sum::<u64>() >> 20
    ));
    Ok(LargeImage {
        reference: format!("registry.k8s.io/{LARGE_REPOSITORY}:{tag}"),
        direct_reference: format!("{}/{LARGE_REPOSITORY}:{tag}", registry.addr()),
        spec: *spec,
        image,
    })
}

/// The large image of `spec`: the busybox layer, then the random layers (from the cache
/// when a valid copy is there, else built and cached), with busybox's config.
pub fn large_image(spec: &LargeImageSpec) -> anyhow::Result<Image> {
    let mut layers = vec![busybox_layer()?];
    layers.extend(random_layers(spec)?);
    Ok(Image::new(layers, &busybox_config()))
}

/// The random layers of `spec`, from the cache if possible. Without a usable cache
/// directory (no permission to create it), they are built every time.
pub fn random_layers(spec: &LargeImageSpec) -> anyhow::Result<Vec<Layer>> {
    let started = Instant::now();
    let Some(dir) = cache_path(spec) else {
        return build_random_layers(spec);
    };
    match read_cached(&dir, spec) {
        Ok(layers) => {
            crate::note(format!(
                "large image layers read from {} in {:.2?}",
                dir.display(),
                started.elapsed()
            ));
            return Ok(layers);
        }
        Err(err) if dir.exists() => {
            crate::note(format!("ignoring the large image cache {}: {err:#}", dir.display()));
            let _ = fs::remove_dir_all(&dir);
        }
        Err(_) => {}
    }
    let layers = build_random_layers(spec)?;
    crate::note(format!("large image layers built in {:.2?}", started.elapsed()));
    if let Err(err) = write_cache(&dir, &layers) {
        crate::note(format!("cannot cache the large image in {}: {err:#}", dir.display()));
    }
    Ok(layers)
}

/// `BASE/cache/large-image-TAG`, or `None` if the base directory is unusable.
fn cache_path(spec: &LargeImageSpec) -> Option<PathBuf> {
    let base = scratch::base_dir().ok()?;
    Some(base.join(CACHE_DIR).join(format!("large-image-{}", spec.tag())))
}

/// Builds every random layer, spread over the machine's cores.
pub fn build_random_layers(spec: &LargeImageSpec) -> anyhow::Result<Vec<Layer>> {
    let threads = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
        .clamp(1, spec.layers.max(1));
    let mut layers: Vec<Option<std::io::Result<Layer>>> = (0..spec.layers).map(|_| None).collect();
    std::thread::scope(|scope| {
        for (worker, chunk) in layers.chunks_mut(spec.layers.div_ceil(threads).max(1)).enumerate() {
            let first = worker * spec.layers.div_ceil(threads).max(1);
            scope.spawn(move || {
                for (offset, slot) in chunk.iter_mut().enumerate() {
                    *slot = Some(build_random_layer(spec, first + offset));
                }
            });
        }
    });
    layers
        .into_iter()
        .map(|layer| layer.context("a layer builder thread died")?.map_err(Into::into))
        .collect()
}

/// Random layer `layer` of `spec`: its files under `data/layer-N/`, compressed at level 1.
pub fn build_random_layer(spec: &LargeImageSpec, layer: usize) -> std::io::Result<Layer> {
    let tar = build_tar(&random_layer_entries(spec, layer))?;
    Layer::from_tar_with(&tar, Compression::fast())
}

/// The entries of random layer `layer`: `data/`, `data/layer-N/` and its files.
pub fn random_layer_entries(spec: &LargeImageSpec, layer: usize) -> Vec<Entry> {
    let mut entries = vec![
        Entry::dir("data", 0o755),
        Entry::dir(format!("data/layer-{layer}"), 0o755),
    ];
    for file in 0..spec.files_per_layer {
        let seed = file_seed(spec.seed, layer, file);
        entries.push(Entry::file(
            LargeImageSpec::file_path(layer, file),
            0o644,
            random_bytes(seed, spec.file_size),
        ));
    }
    entries
}

/// The seed of one file: distinct for every (seed, layer, file).
fn file_seed(seed: u64, layer: usize, file: usize) -> u64 {
    let mut mix = SplitMix64::new(seed);
    for _ in 0..=layer {
        mix.next_u64();
    }
    mix.next_u64() ^ (file as u64).wrapping_mul(0xd605_bbb5_8c8a_bd91)
}

/// `len` bytes of SplitMix64 output seeded with `seed`.
pub fn random_bytes(seed: u64, len: usize) -> Bytes {
    let mut rng = SplitMix64::new(seed);
    let mut data = Vec::with_capacity(len.next_multiple_of(8));
    while data.len() < len {
        data.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    data.truncate(len);
    Bytes::from(data)
}

/// SplitMix64 (Steele, Lea and Flood, 2014): a tiny, fast generator whose output passes
/// BigCrush; more than good enough for bytes that must not compress.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The index file of a cache directory: one `DIGEST DIFF_ID` line per layer, in order.
const CACHE_INDEX: &str = "layers";

fn blob_file(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("layer-{index}.tar.gz"))
}

/// Reads the cached layers back, checking that there are as many as `spec` wants and
/// that each blob still hashes to its recorded digest.
fn read_cached(dir: &Path, spec: &LargeImageSpec) -> anyhow::Result<Vec<Layer>> {
    let index = fs::read_to_string(dir.join(CACHE_INDEX))
        .with_context(|| format!("reading {}", dir.join(CACHE_INDEX).display()))?;
    let records = parse_cache_index(&index)?;
    if records.len() != spec.layers {
        bail!("{} layers cached, {} wanted", records.len(), spec.layers);
    }
    records
        .into_iter()
        .enumerate()
        .map(|(n, (digest, diff_id))| {
            let path = blob_file(dir, n);
            let blob = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let layer = Layer::from_gzip_blob(blob, diff_id);
            if layer.digest() != digest {
                bail!("{} is {}, recorded as {digest}", path.display(), layer.digest());
            }
            Ok(layer)
        })
        .collect()
}

/// The `(digest, diff_id)` pairs of a cache index.
fn parse_cache_index(index: &str) -> anyhow::Result<Vec<(String, String)>> {
    index
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| match line.split_whitespace().collect::<Vec<_>>()[..] {
            [digest, diff_id] if digest.starts_with("sha256:") && diff_id.starts_with("sha256:") => {
                Ok((digest.to_string(), diff_id.to_string()))
            }
            _ => bail!("malformed cache index line {line:?}"),
        })
        .collect()
}

fn cache_index(layers: &[Layer]) -> String {
    let mut index = String::new();
    for layer in layers {
        let _ = writeln!(index, "{} {}", layer.digest(), layer.diff_id());
    }
    index
}

/// Writes the layers into a private directory next to `dir` and renames it into place,
/// so readers see a complete cache or none; if another process got there first, its copy
/// stays.
fn write_cache(dir: &Path, layers: &[Layer]) -> anyhow::Result<()> {
    let parent = dir.parent().context("cache directory without a parent")?;
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .context("cache directory without a name")?;
    let temp = parent.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = fs::remove_dir_all(&temp);
    fs::create_dir(&temp).with_context(|| format!("creating {}", temp.display()))?;
    let written = (|| -> anyhow::Result<()> {
        for (n, layer) in layers.iter().enumerate() {
            fs::write(blob_file(&temp, n), layer.blob())?;
        }
        fs::write(temp.join(CACHE_INDEX), cache_index(layers))?;
        fs::rename(&temp, dir)?;
        Ok(())
    })();
    if written.is_err() {
        let _ = fs::remove_dir_all(&temp);
    }
    // A directory already at `dir` (another process won the race) makes rename fail
    // with ENOTEMPTY; that copy is as good as ours.
    match written {
        Err(_) if dir.join(CACHE_INDEX).exists() => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::image_builder::sha256_digest;

    fn small() -> LargeImageSpec {
        LargeImageSpec {
            layers: 3,
            files_per_layer: 2,
            file_size: 64 << 10,
            seed: 7,
        }
    }

    #[test]
    fn the_default_is_at_least_50_mb_over_at_least_4_layers() {
        let spec = LargeImageSpec::default();
        assert!(spec.content_bytes() >= 50_000_000);
        assert!(spec.layers >= 4);
        assert_eq!(spec.tag(), "v1-4x4x4194304-s1");
    }

    #[test]
    fn splitmix_matches_the_reference_output() {
        // The first outputs for seed 1234567 of the reference C implementation.
        let mut rng = SplitMix64::new(1_234_567);
        assert_eq!(rng.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(rng.next_u64(), 3_203_168_211_198_807_973);
    }

    #[test]
    fn random_bytes_are_deterministic_and_do_not_compress() {
        let a = random_bytes(3, 1 << 20);
        assert_eq!(a, random_bytes(3, 1 << 20));
        assert_ne!(a, random_bytes(4, 1 << 20));
        assert_eq!(random_bytes(3, 13).len(), 13);
        let layer = Layer::from_tar_with(&a, Compression::fast()).unwrap();
        assert!(layer.size() >= a.len() as u64, "{} < {}", layer.size(), a.len());
    }

    #[test]
    fn every_file_of_every_layer_differs() {
        let spec = small();
        let mut seen = std::collections::HashSet::new();
        for layer in 0..spec.layers {
            for file in 0..spec.files_per_layer {
                assert!(seen.insert(file_seed(spec.seed, layer, file)));
            }
        }
    }

    #[test]
    fn layers_hold_the_files_and_reproduce() {
        let spec = small();
        let layer = build_random_layer(&spec, 1).unwrap();
        assert_eq!(layer, build_random_layer(&spec, 1).unwrap());
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&layer.blob()[..])
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(sha256_digest(&tar), layer.diff_id());
        let mut archive = tar::Archive::new(&tar[..]);
        let files: Vec<(String, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                    e.header().size().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            files,
            [
                ("data".to_string(), 0),
                ("data/layer-1".to_string(), 0),
                ("data/layer-1/file-0.bin".to_string(), 64 << 10),
                ("data/layer-1/file-1.bin".to_string(), 64 << 10),
            ]
        );
    }

    #[test]
    fn cached_layers_read_back_and_corruption_is_caught() {
        let spec = small();
        let layers = build_random_layers(&spec).unwrap();
        assert_eq!(layers.len(), 3);
        assert_eq!(layers[2], build_random_layer(&spec, 2).unwrap());
        let root = std::env::temp_dir().join(format!("harness-large-{}", std::process::id()));
        let dir = root.join("large-image-test");
        write_cache(&dir, &layers).unwrap();
        assert_eq!(read_cached(&dir, &spec).unwrap(), layers);
        // A second writer finds the cache in place and keeps it.
        write_cache(&dir, &layers).unwrap();
        assert!(read_cached(&dir, &LargeImageSpec { layers: 2, ..spec }).is_err());
        fs::write(blob_file(&dir, 1), b"truncated").unwrap();
        assert!(read_cached(&dir, &spec).is_err());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn cache_indexes_round_trip_and_reject_garbage() {
        let blob = b"x";
        let line = format!("{} {}\n", sha256_digest(blob), sha256_digest(b"y"));
        assert_eq!(
            parse_cache_index(&line).unwrap(),
            [(sha256_digest(blob), sha256_digest(b"y"))]
        );
        assert!(parse_cache_index("sha256:a\n").is_err());
        assert!(parse_cache_index("md5:a md5:b\n").is_err());
    }
}
