//! Registry credentials from image pull secrets, matched to an image the way the
//! kubelet's credential keyring does (`pkg/credentialprovider`): Docker Hub aliases,
//! `host[:port]` (with `*` globs in the host), path prefixes, most specific first.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cri_api::v1::AuthConfig;
use k8s_openapi::api::core::v1::Secret;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The secret type holding a `~/.docker/config.json` in `.dockerconfigjson`.
pub const DOCKER_CONFIG_JSON_TYPE: &str = "kubernetes.io/dockerconfigjson";
/// The secret type holding a legacy `~/.dockercfg` in `.dockercfg`.
pub const DOCKER_CFG_TYPE: &str = "kubernetes.io/dockercfg";
/// Docker Hub, as images without a registry name it.
const DOCKER_HUB: &str = "docker.io";

#[derive(Debug, Default, Deserialize)]
struct DockerConfigJson {
    #[serde(default)]
    auths: BTreeMap<String, DockerEntry>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct DockerEntry {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    auth: String,
    #[serde(default, rename = "identitytoken")]
    identity_token: String,
    #[serde(default, rename = "registrytoken")]
    registry_token: String,
}

/// Where a registry key or an image points: host (with port) and repository path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Location {
    host: String,
    path: String,
}

/// Credentials from `pull_secrets` that apply to `image`, most specific match first.
/// Secrets of other types and unparsable ones are skipped.
pub fn image_auths(pull_secrets: &[Secret], image: &str) -> Vec<AuthConfig> {
    let target = image_location(image);
    let mut matches: Vec<(usize, AuthConfig)> = Vec::new();
    for (key, entry) in pull_secrets.iter().flat_map(entries) {
        let registry = key_location(&key);
        if !location_matches(&registry, &target) {
            continue;
        }
        let (mut username, mut password) = (entry.username.clone(), entry.password.clone());
        if username.is_empty()
            && let Some((u, p)) = decode_auth(&entry.auth)
        {
            (username, password) = (u, p);
        }
        let auth = AuthConfig {
            username,
            password,
            auth: entry.auth.clone(),
            server_address: registry.host.clone(),
            identity_token: entry.identity_token.clone(),
            registry_token: entry.registry_token.clone(),
        };
        let specificity = registry.host.len() + registry.path.len();
        matches.push((specificity, auth));
    }
    // Most specific first; stable, so secrets keep their order among equals.
    matches.sort_by_key(|m| std::cmp::Reverse(m.0));
    matches.into_iter().map(|(_, auth)| auth).collect()
}

/// The `registry -> credentials` entries of one pull secret.
fn entries(secret: &Secret) -> Vec<(String, DockerEntry)> {
    let data = |key: &str| secret.data.as_ref().and_then(|d| d.get(key)).map(|b| b.0.as_slice());
    match secret.type_.as_deref() {
        Some(DOCKER_CONFIG_JSON_TYPE) => data(".dockerconfigjson")
            .and_then(|b| serde_json::from_slice::<DockerConfigJson>(b).ok())
            .map(|c| c.auths.into_iter().collect())
            .unwrap_or_default(),
        Some(DOCKER_CFG_TYPE) => data(".dockercfg")
            .and_then(|b| serde_json::from_slice::<BTreeMap<String, DockerEntry>>(b).ok())
            .map(|c| c.into_iter().collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// `user:password` from a base64 `auth` field.
fn decode_auth(auth: &str) -> Option<(String, String)> {
    let bytes = STANDARD.decode(auth.trim()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The Docker Hub host names, all meaning `docker.io`.
fn normalize_host(host: &str) -> String {
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => DOCKER_HUB.to_owned(),
        other => other.to_ascii_lowercase(),
    }
}

/// A key of a docker config (`https://index.docker.io/v1/`, `registry:5000/team`,
/// `*.example.com`) as a location; Docker Hub's `/v1/` API path is no repository path.
fn key_location(key: &str) -> Location {
    let without_scheme = key.split_once("://").map_or(key, |(_, rest)| rest);
    let (host, path) = without_scheme.split_once('/').unwrap_or((without_scheme, ""));
    let host = normalize_host(host);
    let path = path.trim_matches('/');
    let path = if host == DOCKER_HUB && (path == "v1" || path == "v2") {
        ""
    } else {
        path
    };
    Location {
        host,
        path: path.to_owned(),
    }
}

/// An image reference as a location: `busybox` is `docker.io/library/busybox`; tag and
/// digest are dropped.
fn image_location(image: &str) -> Location {
    let image = image.split_once('@').map_or(image, |(name, _)| name);
    let (first, rest) = image.split_once('/').unwrap_or(("", image));
    let is_registry = first.contains(['.', ':']) || first == "localhost";
    let (host, path) = if is_registry {
        (normalize_host(first), rest.to_owned())
    } else if first.is_empty() {
        (DOCKER_HUB.to_owned(), format!("library/{rest}"))
    } else {
        (DOCKER_HUB.to_owned(), image.to_owned())
    };
    // A tag is a colon after the last slash.
    let path = match path.rsplit_once('/') {
        Some((dir, last)) => format!("{dir}/{}", last.split(':').next().unwrap_or(last)),
        None => path.split(':').next().unwrap_or(&path).to_owned(),
    };
    Location { host, path }
}

/// Whether credentials for `registry` apply to `image`: the hosts match (each dot-separated
/// part of the key may be a glob), the ports are equal, and the key's path is a prefix of
/// the image's path on a `/` boundary.
fn location_matches(registry: &Location, image: &Location) -> bool {
    let (key_host, key_port) = split_port(&registry.host);
    let (image_host, image_port) = split_port(&image.host);
    if key_port != image_port {
        return false;
    }
    let key_parts: Vec<&str> = key_host.split('.').collect();
    let image_parts: Vec<&str> = image_host.split('.').collect();
    if key_parts.len() != image_parts.len() || !key_parts.iter().zip(&image_parts).all(|(k, i)| glob(k, i)) {
        return false;
    }
    registry.path.is_empty()
        || image.path == registry.path
        || image
            .path
            .strip_prefix(&registry.path)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn split_port(host: &str) -> (&str, &str) {
    host.rsplit_once(':').unwrap_or((host, ""))
}

/// Shell-style glob with `*` only, as `filepath.Match` is used for host parts.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((prefix, rest)) => {
            let Some(tail) = text.strip_prefix(prefix) else {
                return false;
            };
            (0..=tail.len()).any(|i| tail.is_char_boundary(i) && glob(rest, &tail[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn config_json_secret(auths: serde_json::Value) -> Secret {
        let body = serde_json::to_vec(&serde_json::json!({ "auths": auths })).unwrap();
        Secret {
            type_: Some(DOCKER_CONFIG_JSON_TYPE.into()),
            data: Some([(".dockerconfigjson".to_owned(), ByteString(body))].into()),
            ..Default::default()
        }
    }

    fn users(auths: &[AuthConfig]) -> Vec<&str> {
        auths.iter().map(|a| a.username.as_str()).collect()
    }

    #[test]
    fn matching() {
        let secret = config_json_secret(serde_json::json!({
            "https://index.docker.io/v1/": {"username": "hub", "password": "p"},
            "registry.example:5000": {"username": "reg", "password": "p"},
            "registry.example:5000/team": {"auth": STANDARD.encode("team:secret")},
            "*.corp.example": {"username": "glob", "password": "p"}
        }));
        let cases = [
            ("short name is Docker Hub", "busybox", vec!["hub"]),
            ("docker.io explicit", "docker.io/library/nginx:1.27", vec!["hub"]),
            ("hub alias", "index.docker.io/me/app", vec!["hub"]),
            ("host and port", "registry.example:5000/other/app:v1", vec!["reg"]),
            (
                "path prefix, most specific first",
                "registry.example:5000/team/app@sha256:abc",
                vec!["team", "reg"],
            ),
            (
                "path prefix only on a slash",
                "registry.example:5000/teamx/app",
                vec!["reg"],
            ),
            ("port must match", "registry.example/team/app", vec![]),
            ("glob host", "a.corp.example/app", vec!["glob"]),
            ("glob does not span dots", "a.b.corp.example/app", vec![]),
            ("unknown registry", "quay.io/x/y", vec![]),
        ];
        for (desc, image, want) in cases {
            let auths = image_auths(std::slice::from_ref(&secret), image);
            assert_eq!(users(&auths), want, "{desc}");
        }
        let team = image_auths(&[secret], "registry.example:5000/team/app");
        assert_eq!(
            (team[0].password.as_str(), team[0].server_address.as_str()),
            ("secret", "registry.example:5000")
        );
    }

    #[test]
    fn legacy_dockercfg_and_other_types() {
        let body =
            serde_json::to_vec(&serde_json::json!({"localhost:5000": {"auth": STANDARD.encode("u:p")}})).unwrap();
        let legacy = Secret {
            type_: Some(DOCKER_CFG_TYPE.into()),
            data: Some([(".dockercfg".to_owned(), ByteString(body))].into()),
            ..Default::default()
        };
        let opaque = Secret {
            type_: Some("Opaque".into()),
            ..Default::default()
        };
        let auths = image_auths(&[opaque, legacy], "localhost:5000/app:1");
        assert_eq!(users(&auths), ["u"]);
        assert_eq!(auths[0].password, "p");
    }
}
