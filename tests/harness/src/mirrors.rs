//! Registry mirror configuration in containerd's `certs.d/HOST/hosts.toml` format.
//!
//! Real runtimes run offline by mapping public registry names onto a local registry;
//! tests pull `docker.io/library/busybox:1.36` and the runtime fetches it from
//! `http://127.0.0.1:PORT/v2/library/busybox/...`. runtime-core reads the same format.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The registries tests pull from by name, all mapped onto the local registry.
pub const MIRRORED_REGISTRIES: &[&str] = &["docker.io", "registry.k8s.io"];

/// The `hosts.toml` that sends every pull and resolve for one registry to `mirror_url`
/// (such as `http://127.0.0.1:5000`) and nowhere else.
///
/// The mirror is both the `server` and the only `[host]`: containerd tries the hosts in
/// order and then the server, and a server left to its default would be the real
/// registry on the internet. (containerd 1.6 also rejects a file without a `[host]`
/// table.)
pub fn hosts_toml(mirror_url: &str) -> String {
    format!(
        "# Written by kubelet-lite's test harness: this registry is served by the local\n\
         # test registry, and by nothing else.\n\
         server = \"{mirror_url}\"\n\
         capabilities = [\"pull\", \"resolve\"]\n\
         skip_verify = true\n\
         \n\
         [host.\"{mirror_url}\"]\n  \
           capabilities = [\"pull\", \"resolve\"]\n  \
           skip_verify = true\n"
    )
}

/// Writes `CERTS_D/REGISTRY/hosts.toml` mapping `registry` (such as `docker.io`) onto
/// `mirror_url`, and returns its path.
pub fn write_hosts_toml(certs_d: &Path, registry: &str, mirror_url: &str) -> anyhow::Result<PathBuf> {
    let dir = certs_d.join(registry);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("hosts.toml");
    fs::write(&path, hosts_toml(mirror_url)).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Writes a `hosts.toml` for each of [`MIRRORED_REGISTRIES`], all onto `mirror_url`.
pub fn write_test_mirrors(certs_d: &Path, mirror_url: &str) -> anyhow::Result<()> {
    for registry in MIRRORED_REGISTRIES {
        write_hosts_toml(certs_d, registry, mirror_url)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_toml_points_server_and_host_at_the_mirror() {
        assert_eq!(
            hosts_toml("http://127.0.0.1:5000"),
            r#"# Written by kubelet-lite's test harness: this registry is served by the local
# test registry, and by nothing else.
server = "http://127.0.0.1:5000"
capabilities = ["pull", "resolve"]
skip_verify = true

[host."http://127.0.0.1:5000"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
"#
        );
    }
}
