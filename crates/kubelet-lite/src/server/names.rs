//! The names a request path may carry, checked with Kubernetes' own rules before anything
//! uses them: a namespace or pod name is a DNS-1123 subdomain, a container name a DNS-1123
//! label, a pod UID hexadecimal digits and dashes. `..`, `/`, `%` and every other
//! character outside these rules are refused, so no name can reach outside what it names.

/// The longest DNS-1123 subdomain.
const MAX_SUBDOMAIN: usize = 253;
/// The longest DNS-1123 label.
const MAX_LABEL: usize = 63;
/// The longest UID accepted (a UUID is 36 characters).
const MAX_UID: usize = 64;

/// Whether `name` is a DNS-1123 label: at most 63 lower-case letters, digits and `-`,
/// starting and ending with a letter or digit.
pub fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.len() <= MAX_LABEL
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && bytes.iter().all(|b| alnum(b) || *b == b'-')
}

/// Whether `name` is a DNS-1123 subdomain: at most 253 characters of dot-separated labels.
pub fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= MAX_SUBDOMAIN && name.split('.').all(is_dns_label)
}

/// Whether `uid` looks like a Kubernetes UID: hexadecimal digits and dashes.
pub fn is_uid(uid: &str) -> bool {
    !uid.is_empty() && uid.len() <= MAX_UID && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_and_separators_are_not_names() {
        for bad in ["", ".", "..", "a/b", "..%2f", "A", "-a", "a-", "a_b", "a..b", "%2e%2e"] {
            assert!(!is_dns_subdomain(bad), "{bad:?}");
            assert!(!is_dns_label(bad), "{bad:?}");
        }
        assert!(!is_uid("../x"));
    }

    #[test]
    fn kubernetes_names_are_names() {
        assert!(is_dns_subdomain("kube-system"));
        assert!(is_dns_subdomain("web-7d9c.abc"));
        assert!(is_dns_label("nginx"));
        assert!(!is_dns_label("a.b"));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(is_uid("0f4c1c3e-8d2a-4e8b-9c1d-2a3b4c5d6e7f"));
    }
}
