//! Image references, parsed and normalized the way the kubelet and containerd do it
//! (the grammar of `github.com/distribution/reference`):
//!
//! ```text
//! reference       := name [ ":" tag ] [ "@" digest ]
//! name            := [domain "/"] path-component ["/" path-component]*
//! domain          := host [":" port]
//! host            := domain-name | IPv4 | "[" IPv6 "]"
//! domain-name     := domain-component ["." domain-component]*
//! domain-component:= /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
//! path-component  := /[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*/
//! tag             := /[\w][\w.-]{0,127}/
//! digest          := "sha256:" 64 lower-case hex digits
//! ```
//!
//! Normalization: a first component is a domain only if it contains `.` or `:` or is
//! `localhost` (and is lower-case); otherwise the domain is `docker.io`, and single-component
//! docker.io names live under `library/`. `index.docker.io` is the legacy name of
//! `docker.io`. A reference without tag and digest gets the tag `latest`.
//!
//! ```
//! use runtime_core::image::reference::Reference;
//!
//! let r: Reference = "busybox".parse().unwrap();
//! assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
//! assert_eq!(r.repository(), "docker.io/library/busybox");
//! assert_eq!(r.default_upstream_host(), "registry-1.docker.io");
//! ```

use std::fmt;
use std::str::FromStr;

use crate::image::digest::Digest;

/// The registry short names resolve to.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The old name of [`DEFAULT_DOMAIN`], still found in references.
pub const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// The host that serves the registry API of [`DEFAULT_DOMAIN`].
pub const DEFAULT_UPSTREAM_HOST: &str = "registry-1.docker.io";
/// The namespace of official images on [`DEFAULT_DOMAIN`].
pub const OFFICIAL_REPO_PREFIX: &str = "library/";
/// The tag a reference without tag and digest gets.
pub const DEFAULT_TAG: &str = "latest";
/// Longest `domain/path` the grammar allows.
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;
/// Longest tag the grammar allows.
const TAG_LENGTH_MAX: usize = 128;

/// A parsed, normalized image reference.
///
/// Both a tag and a digest may be present (`name:tag@sha256:...`): the digest is what is
/// fetched, the tag is kept for display and for the image's tag list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// The registry, normalized: `docker.io`, `registry.k8s.io`, `localhost:5000`, ...
    pub domain: String,
    /// The repository path inside the registry: `library/busybox`.
    pub path: String,
    /// The tag; `latest` when the reference named neither a tag nor a digest.
    pub tag: Option<String>,
    /// The digest, if the reference pins one.
    pub digest: Option<Digest>,
}

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidReason {
    /// The string is empty.
    Empty,
    /// The string does not follow the reference grammar.
    Format,
    /// The repository path has upper-case letters.
    Uppercase,
    /// `domain/path` is longer than [`NAME_TOTAL_LENGTH_MAX`].
    NameTooLong,
    /// The domain is not a host name, IPv4 or bracketed IPv6 address with an optional port.
    Domain,
    /// The tag is not `[\w][\w.-]{0,127}`.
    Tag,
    /// The digest is not `sha256:` and 64 lower-case hex digits.
    Digest,
    /// The name is 64 hex digits, which would be confused with an image id.
    HexName,
}

impl fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "reference is empty",
            Self::Format => "invalid reference format",
            Self::Uppercase => "repository name must be lowercase",
            Self::NameTooLong => "repository name must not be more than 255 characters",
            Self::Domain => "invalid registry domain",
            Self::Tag => "invalid tag",
            Self::Digest => "invalid digest: expected sha256: and 64 lower-case hex digits",
            Self::HexName => "repository name cannot be a 64-character hexadecimal string",
        })
    }
}

/// A string that is not a valid image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {reference:?}: {reason}")]
pub struct InvalidReference {
    /// The string as given.
    pub reference: String,
    /// What is wrong with it.
    pub reason: InvalidReason,
}

impl Reference {
    /// Parses and normalizes `s` (see the module documentation).
    pub fn parse(s: &str) -> Result<Self, InvalidReference> {
        let fail = |reason| InvalidReference {
            reference: s.to_string(),
            reason,
        };
        if s.is_empty() {
            return Err(fail(InvalidReason::Empty));
        }

        // The digest follows the first '@'; a second '@' fails the digest check.
        let (rest, digest) = match s.split_once('@') {
            Some((rest, digest)) => {
                let digest: Digest = digest.parse().map_err(|_| fail(InvalidReason::Digest))?;
                (rest, Some(digest))
            }
            None => (s, None),
        };

        // A tag is after the last ':' that follows the last '/' (a ':' before it is a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let i = last_slash + i;
                (&rest[..i], Some(&rest[i + 1..]))
            }
            None => (rest, None),
        };
        if let Some(tag) = tag
            && !is_tag(tag)
        {
            return Err(fail(InvalidReason::Tag));
        }
        if name.is_empty() {
            return Err(fail(InvalidReason::Format));
        }
        if is_hex_identifier(name) {
            return Err(fail(InvalidReason::HexName));
        }

        let (domain, path) = split_domain(name);
        if path.to_ascii_lowercase() != path {
            return Err(fail(InvalidReason::Uppercase));
        }
        if !is_domain(&domain) {
            return Err(fail(InvalidReason::Domain));
        }
        if path.is_empty() || !path.split('/').all(is_path_component) {
            return Err(fail(InvalidReason::Format));
        }
        if domain.len() + 1 + path.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(fail(InvalidReason::NameTooLong));
        }

        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_string()),
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (None, Some(_)) => None,
        };
        Ok(Self {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// `domain/path`: the repository, as image lists and `RepoTags` name it.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The host (with port, if any) that serves the registry API for [`Self::domain`] when no
    /// hosts configuration says otherwise: `registry-1.docker.io` for `docker.io`, the domain
    /// itself for every other registry.
    pub fn default_upstream_host(&self) -> &str {
        default_upstream_host(&self.domain)
    }

    /// What to ask the registry's `manifests/` endpoint for: the digest when there is one
    /// (it wins over the tag), else the tag.
    pub fn manifest_reference(&self) -> &str {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.as_str(),
            (None, Some(tag)) => tag,
            (None, None) => DEFAULT_TAG,
        }
    }

    /// `domain/path:tag`, if the reference has a tag (the form of a CRI `RepoTags` entry).
    pub fn tagged(&self) -> Option<String> {
        self.tag.as_ref().map(|tag| format!("{}:{tag}", self.repository()))
    }

    /// `domain/path@digest` for `digest` (the form of a CRI `RepoDigests` entry).
    pub fn canonical(&self, digest: &Digest) -> String {
        format!("{}@{digest}", self.repository())
    }

    /// This reference pinned to `digest`, keeping the tag.
    pub fn with_digest(&self, digest: Digest) -> Self {
        Self {
            digest: Some(digest),
            ..self.clone()
        }
    }
}

/// The host that serves the registry API for `domain` when nothing is configured
/// (`docker.io` is served by `registry-1.docker.io`).
pub fn default_upstream_host(domain: &str) -> &str {
    if domain == DEFAULT_DOMAIN {
        DEFAULT_UPSTREAM_HOST
    } else {
        domain
    }
}

impl FromStr for Reference {
    type Err = InvalidReference;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Reference {
    /// The normalized full form: `domain/path[:tag][@digest]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Splits a name into its domain and path, applying the docker.io defaults
/// (distribution's `splitDockerDomain`).
fn split_domain(name: &str) -> (String, String) {
    let (mut domain, mut path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':']) || first == "localhost" || first.to_ascii_lowercase() != first =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN.to_string();
    }
    if domain == DEFAULT_DOMAIN && !path.contains('/') {
        path = format!("{OFFICIAL_REPO_PREFIX}{path}");
    }
    (domain, path)
}

fn is_hex_identifier(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= TAG_LENGTH_MAX
        && word(bytes[0])
        && bytes[1..].iter().all(|&b| word(b) || b == b'.' || b == b'-')
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn is_path_component(component: &str) -> bool {
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = component.as_bytes();
    let mut i = 0;
    loop {
        // One or more alphanumerics.
        let start = i;
        while i < bytes.len() && alnum(&bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        // Then a separator: '.', '_', '__' or a run of '-'.
        let sep_start = i;
        while i < bytes.len() && !alnum(&bytes[i]) {
            i += 1;
        }
        let separator = &component[sep_start..i];
        let valid = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !valid {
            return false;
        }
    }
}

/// `host[:port]` where host is a domain name, an IPv4 address or a bracketed IPv6 address.
fn is_domain(domain: &str) -> bool {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.is_empty() || !v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return false,
            },
        }
    } else {
        match domain.rsplit_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(domain), None),
        }
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    match host {
        None => true,
        Some(host) => !host.is_empty() && host.split('.').all(is_domain_component),
    }
}

/// `[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`
fn is_domain_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    !bytes.is_empty()
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn digest() -> Digest {
        format!("sha256:{HEX}").parse().expect("digest")
    }

    #[test]
    fn valid_references_normalize_like_docker_and_containerd() {
        struct Case {
            desc: &'static str,
            input: String,
            domain: &'static str,
            path: &'static str,
            tag: Option<String>,
            digest: bool,
            display: String,
        }
        let d = format!("sha256:{HEX}");
        let case = |desc, input: &str, domain, path, tag: Option<&str>, digest, display: &str| Case {
            desc,
            input: input.to_string(),
            domain,
            path,
            tag: tag.map(str::to_string),
            digest,
            display: display.to_string(),
        };
        let long_tag = "a".repeat(128);
        #[rustfmt::skip]
        let cases = [
            case("official image", "busybox", "docker.io", "library/busybox", Some("latest"), false, "docker.io/library/busybox:latest"),
            case("official image with tag", "busybox:1.36", "docker.io", "library/busybox", Some("1.36"), false, "docker.io/library/busybox:1.36"),
            case("user image", "user/img", "docker.io", "user/img", Some("latest"), false, "docker.io/user/img:latest"),
            case("deep docker.io path", "user/team/img:v1", "docker.io", "user/team/img", Some("v1"), false, "docker.io/user/team/img:v1"),
            case("explicit docker.io", "docker.io/busybox", "docker.io", "library/busybox", Some("latest"), false, "docker.io/library/busybox:latest"),
            case("legacy index.docker.io", "index.docker.io/library/busybox:1", "docker.io", "library/busybox", Some("1"), false, "docker.io/library/busybox:1"),
            case("legacy index.docker.io short", "index.docker.io/busybox", "docker.io", "library/busybox", Some("latest"), false, "docker.io/library/busybox:latest"),
            case("localhost with port", "localhost:5000/x", "localhost:5000", "x", Some("latest"), false, "localhost:5000/x:latest"),
            case("bare localhost", "localhost/x", "localhost", "x", Some("latest"), false, "localhost/x:latest"),
            case("ip with port and tag", "127.0.0.1:5000/x:tag", "127.0.0.1:5000", "x", Some("tag"), false, "127.0.0.1:5000/x:tag"),
            case("ipv6", "[::1]:5000/x", "[::1]:5000", "x", Some("latest"), false, "[::1]:5000/x:latest"),
            case("registry.k8s.io", "registry.k8s.io/pause:3.9", "registry.k8s.io", "pause", Some("3.9"), false, "registry.k8s.io/pause:3.9"),
            case("digest only", &format!("busybox@{d}"), "docker.io", "library/busybox", None, true, &format!("docker.io/library/busybox@{d}")),
            case("tag and digest", &format!("registry.k8s.io/pause:3.9@{d}"), "registry.k8s.io", "pause", Some("3.9"), true, &format!("registry.k8s.io/pause:3.9@{d}")),
            case("separators", "a.b/c_d__e-f--g.h:T_a.g-1", "a.b", "c_d__e-f--g.h", Some("T_a.g-1"), false, "a.b/c_d__e-f--g.h:T_a.g-1"),
            case("upper-case domain", "Example.COM/x", "Example.COM", "x", Some("latest"), false, "Example.COM/x:latest"),
            case("upper-case first component is a domain", "Foo/bar", "Foo", "bar", Some("latest"), false, "Foo/bar:latest"),
            case("tag of 128 characters", &format!("x:{}", "a".repeat(128)), "docker.io", "library/x", Some(&long_tag), false, &format!("docker.io/library/x:{long_tag}")),
        ];
        for c in cases {
            let r = Reference::parse(&c.input).unwrap_or_else(|e| panic!("{}: {e}", c.desc));
            assert_eq!(r.domain, c.domain, "{}: domain", c.desc);
            assert_eq!(r.path, c.path, "{}: path", c.desc);
            assert_eq!(r.tag, c.tag, "{}: tag", c.desc);
            assert_eq!(r.digest.is_some(), c.digest, "{}: digest", c.desc);
            assert_eq!(r.to_string(), c.display, "{}: display", c.desc);
            assert_eq!(
                Reference::parse(&r.to_string()).as_ref(),
                Ok(&r),
                "{}: round trip",
                c.desc
            );
        }
    }

    #[test]
    fn invalid_references_are_refused_with_a_reason() {
        use InvalidReason::*;
        let d = format!("sha256:{HEX}");
        #[rustfmt::skip]
        let cases: Vec<(&str, String, InvalidReason)> = vec![
            ("empty", String::new(), Empty),
            ("upper-case repository", "Busybox".into(), Uppercase),
            ("upper-case path under a domain", "registry.k8s.io/Pause".into(), Uppercase),
            ("upper-case user path", "user/Img".into(), Uppercase),
            ("tag starting with a dot", "busybox:.1".into(), Tag),
            ("tag starting with a dash", "busybox:-1".into(), Tag),
            ("empty tag", "busybox:".into(), Tag),
            ("tag with a slash-free bad char", "busybox:a+b".into(), Tag),
            ("tag too long", format!("busybox:{}", "a".repeat(129)), Tag),
            ("short digest", "busybox@sha256:abc".into(), Digest),
            ("upper-case digest", format!("busybox@sha256:{}", HEX.to_uppercase()), Digest),
            ("other digest algorithm", format!("busybox@sha512:{HEX}"), Digest),
            ("two digests", format!("busybox@{d}@{d}"), Digest),
            ("empty name with tag", ":tag".into(), Format),
            ("empty name with digest", format!("@{d}"), Format),
            ("double slash", "a.b//c".into(), Format),
            ("trailing slash", "busybox/".into(), Format),
            ("leading separator", "_busybox".into(), Format),
            ("trailing separator", "busybox-".into(), Format),
            ("triple underscore", "a___b".into(), Format),
            ("mixed separator", "a._b".into(), Format),
            ("bad port", "localhost:50a0/x".into(), Domain),
            ("domain with leading dash", "-a.com/x".into(), Domain),
            ("domain with empty port", "a.com:/x".into(), Domain),
            ("hex name", HEX.into(), HexName),
            ("name too long", format!("a.com/{}", "a".repeat(250)), NameTooLong),
            ("space", "bus box".into(), Format),
        ];
        for (desc, input, reason) in cases {
            match Reference::parse(&input) {
                Ok(r) => panic!("{desc}: {input:?} parsed as {r}"),
                Err(e) => assert_eq!(e.reason, reason, "{desc}: {input:?}: {e}"),
            }
        }
    }

    #[test]
    fn helpers_give_the_forms_cri_and_the_registry_need() {
        #[rustfmt::skip]
        let cases = [
            ("docker.io goes to registry-1", "busybox", "registry-1.docker.io", "latest", "docker.io/library/busybox"),
            ("others go to the domain", "127.0.0.1:5000/x:tag", "127.0.0.1:5000", "tag", "127.0.0.1:5000/x"),
        ];
        for (desc, input, host, manifest, repo) in cases {
            let r = Reference::parse(input).expect(desc);
            assert_eq!(r.default_upstream_host(), host, "{desc}");
            assert_eq!(r.manifest_reference(), manifest, "{desc}");
            assert_eq!(r.repository(), repo, "{desc}");
        }

        let pinned = Reference::parse("registry.k8s.io/pause:3.9")
            .expect("ref")
            .with_digest(digest());
        assert_eq!(
            pinned.manifest_reference(),
            digest().as_str(),
            "digest wins for fetching"
        );
        assert_eq!(pinned.tagged().as_deref(), Some("registry.k8s.io/pause:3.9"));
        assert_eq!(
            pinned.canonical(&digest()),
            format!("registry.k8s.io/pause@{}", digest())
        );
    }
}
