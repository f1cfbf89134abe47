//! The registry client against a real registry (Debian's `docker-registry`, distribution
//! 2.8) holding the harness's test images: straight at `127.0.0.1:PORT` and through
//! `hosts.toml` mirrors that map `docker.io` and `registry.k8s.io` onto it.

use std::process::ExitCode;

use anyhow::{Context, ensure};
use runtime_core::image::digest::Digest;
use runtime_core::image::hosts::RegistryHosts;
use runtime_core::image::oci::{ImageConfig, MEDIA_TYPE_OCI_MANIFEST, ManifestDocument};
use runtime_core::image::reference::Reference;
use runtime_core::image::registry::{Credentials, RegistryClient, RegistryError, Resolved};
use test_harness::suite::{self, Test};
use test_harness::{Registry, TestImages};
use tokio::io::AsyncReadExt;

struct Env {
    rt: tokio::runtime::Runtime,
    /// `docker.io/library/busybox:1.36`, ... (through the mirrors).
    mirrored: TestImages,
    /// `127.0.0.1:PORT/library/busybox:1.36`, ...
    direct: TestImages,
    /// A `certs.d` directory mapping docker.io and registry.k8s.io onto the registry.
    certs_d: tempfile::TempDir,
    registry: Registry,
}

fn setup() -> anyhow::Result<Env> {
    let registry = Registry::start()?;
    let mirrored = test_harness::push_test_images(&registry)?;
    let direct = test_harness::direct_references(&registry);
    let certs_d = tempfile::tempdir()?;
    test_harness::mirrors::write_test_mirrors(certs_d.path(), &registry.url())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    Ok(Env {
        rt,
        mirrored,
        direct,
        certs_d,
        registry,
    })
}

impl Env {
    /// A client without hosts configuration (127.0.0.1 is plain http by default).
    fn direct_client(&self) -> RegistryClient {
        RegistryClient::new(RegistryHosts::none())
    }

    /// A client reading the test `certs.d` directory.
    fn mirror_client(&self) -> anyhow::Result<RegistryClient> {
        Ok(RegistryClient::new(RegistryHosts::load(self.certs_d.path())?))
    }

    /// The digest the registry itself gives for `repository:tag`.
    fn registry_digest(&self, repository: &str, tag: &str) -> anyhow::Result<Digest> {
        let manifest = self
            .registry
            .client()
            .manifest(repository, tag)?
            .context("manifest missing from the registry")?;
        let digest = manifest.digest.context("no Docker-Content-Digest")?;
        Ok(digest.parse()?)
    }
}

fn reference(text: &str) -> anyhow::Result<Reference> {
    Ok(text.parse()?)
}

fn resolve(client: &RegistryClient, env: &Env, text: &str) -> anyhow::Result<Resolved> {
    let reference = reference(text)?;
    Ok(env.rt.block_on(client.resolve(&reference, &Credentials::Anonymous))?)
}

fn resolves_a_tag_to_the_pushed_manifest(env: &Env) -> anyhow::Result<()> {
    let resolved = resolve(&env.direct_client(), env, &env.direct.busybox)?;
    ensure!(
        resolved.digest == env.registry_digest("library/busybox", "1.36")?,
        "digest differs from the registry's"
    );
    ensure!(
        resolved.media_type == MEDIA_TYPE_OCI_MANIFEST,
        "media type {}",
        resolved.media_type
    );
    ensure!(
        resolved.endpoint.host == env.registry.addr(),
        "served by {}",
        resolved.endpoint.host
    );
    let ManifestDocument::Manifest(manifest) = resolved.document()? else {
        anyhow::bail!("not a manifest")
    };
    ensure!(
        manifest.layers.len() == 1,
        "busybox has {} layers",
        manifest.layers.len()
    );
    Ok(())
}

fn resolves_by_digest(env: &Env) -> anyhow::Result<()> {
    let client = env.direct_client();
    let by_tag = resolve(&client, env, &env.direct.pause)?;
    let repository = reference(&env.direct.pause)?.repository();
    for text in [
        format!("{repository}@{}", by_tag.digest),
        format!("{}@{}", env.direct.pause, by_tag.digest),
    ] {
        let by_digest = resolve(&client, env, &text)?;
        ensure!(
            by_digest.digest == by_tag.digest && by_digest.bytes == by_tag.bytes,
            "{text} resolved differently"
        );
    }
    let fetched = env.rt.block_on(client.fetch_manifest_by_digest(
        &reference(&env.direct.pause)?,
        &by_tag.digest,
        &Credentials::Anonymous,
    ))?;
    ensure!(
        fetched.digest == by_tag.digest,
        "fetch_manifest_by_digest gave {}",
        fetched.digest
    );
    Ok(())
}

fn resolves_through_a_hosts_toml_mirror(env: &Env) -> anyhow::Result<()> {
    let client = env.mirror_client()?;
    let pairs = [
        (&env.mirrored.busybox, &env.direct.busybox),
        (&env.mirrored.pause, &env.direct.pause),
        (&env.mirrored.nonroot, &env.direct.nonroot),
    ];
    for (mirrored, direct) in pairs {
        let through_mirror = resolve(&client, env, mirrored)?;
        let straight = resolve(&env.direct_client(), env, direct)?;
        ensure!(
            through_mirror.digest == straight.digest,
            "{mirrored} and {direct} differ"
        );
        ensure!(
            through_mirror.endpoint.host == env.registry.addr(),
            "{mirrored} served by {}",
            through_mirror.endpoint.host
        );
    }
    // A short name normalizes to docker.io/library/... and goes through the mirror too.
    let short = resolve(&client, env, "busybox:1.36")?;
    ensure!(
        short.endpoint.host == env.registry.addr(),
        "busybox:1.36 served by {}",
        short.endpoint.host
    );
    Ok(())
}

fn fetches_blobs_whose_digests_match(env: &Env) -> anyhow::Result<()> {
    let client = env.mirror_client()?;
    let reference = reference(&env.mirrored.busybox)?;
    let resolved = resolve(&client, env, &env.mirrored.busybox)?;
    let ManifestDocument::Manifest(manifest) = resolved.document()? else {
        anyhow::bail!("not a manifest")
    };
    let fetch = |digest: &Digest, size: u64| -> anyhow::Result<Vec<u8>> {
        env.rt.block_on(async {
            let mut blob = client
                .fetch_blob(&reference, digest, Some(size), &Credentials::Anonymous)
                .await?;
            let mut data = Vec::new();
            blob.read_to_end(&mut data).await?;
            Ok(data)
        })
    };
    for layer in &manifest.layers {
        let data = fetch(&layer.digest, layer.size)?;
        ensure!(
            Digest::of(&data) == layer.digest,
            "layer {} hashes to {}",
            layer.digest,
            Digest::of(&data)
        );
        ensure!(
            data.len() as u64 == layer.size,
            "layer {} has {} bytes, not {}",
            layer.digest,
            data.len(),
            layer.size
        );
    }
    let config_bytes = fetch(&manifest.config.digest, manifest.config.size)?;
    ensure!(Digest::of(&config_bytes) == manifest.config.digest, "config digest");
    let config: ImageConfig = serde_json::from_slice(&config_bytes)?;
    ensure!(
        config.rootfs.diff_ids.len() == manifest.layers.len(),
        "diff_ids {:?}",
        config.rootfs.diff_ids
    );
    let cmd = config.config.and_then(|c| c.cmd);
    ensure!(cmd == Some(vec!["sh".to_string()]), "busybox Cmd is {cmd:?}");
    Ok(())
}

fn unknown_tags_repositories_and_blobs_are_not_found(env: &Env) -> anyhow::Result<()> {
    let repository = reference(&env.direct.busybox)?.repository();
    let cases = [
        (
            "unknown tag, direct",
            env.direct_client(),
            format!("{repository}:no-such-tag"),
        ),
        (
            "unknown repository, direct",
            env.direct_client(),
            format!("{}/no/such/repo:1", env.registry.addr()),
        ),
        (
            "unknown tag, through the mirror",
            env.mirror_client()?,
            "docker.io/library/busybox:no-such-tag".to_string(),
        ),
    ];
    for (desc, client, text) in cases {
        let reference = reference(&text)?;
        match env.rt.block_on(client.resolve(&reference, &Credentials::Anonymous)) {
            Err(err @ RegistryError::NotFound { .. }) => {
                ensure!(err.to_string().contains(&reference.to_string()), "{desc}: {err}");
            }
            other => anyhow::bail!("{desc}: expected NotFound, got {other:?}"),
        }
    }
    let missing = Digest::of(b"no such blob");
    let err = env
        .rt
        .block_on(env.direct_client().fetch_blob(
            &reference(&env.direct.busybox)?,
            &missing,
            None,
            &Credentials::Anonymous,
        ))
        .err()
        .context("a missing blob was found")?;
    ensure!(matches!(err, RegistryError::BlobNotFound { .. }), "missing blob: {err}");
    Ok(())
}

fn main() -> ExitCode {
    suite::run(
        setup,
        vec![
            Test::new(
                "resolves_a_tag_to_the_pushed_manifest",
                resolves_a_tag_to_the_pushed_manifest,
            ),
            Test::new("resolves_by_digest", resolves_by_digest),
            Test::new(
                "resolves_through_a_hosts_toml_mirror",
                resolves_through_a_hosts_toml_mirror,
            ),
            Test::new("fetches_blobs_whose_digests_match", fetches_blobs_whose_digests_match),
            Test::new(
                "unknown_tags_repositories_and_blobs_are_not_found",
                unknown_tags_repositories_and_blobs_are_not_found,
            ),
        ],
    )
}
