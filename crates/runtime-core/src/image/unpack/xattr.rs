//! Which extended attributes of a layer are set, and which refusals are tolerated: the rule
//! stated in the documentation of the `unpack` module, as two pure functions.

use rustix::io::Errno;

/// Prefix of the PAX records holding xattrs.
pub(super) const PAX_XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";

/// Whether the layer may set xattr `name` at all.
pub(super) fn is_allowed(name: &[u8]) -> bool {
    !(name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay."))
}

/// What to do when the kernel refuses to set xattr `name` with `errno`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum OnRefusal {
    /// Log a warning and go on.
    Skip,
    /// Fail the layer.
    Fail,
}

/// The rule for a refused xattr (see the module documentation).
pub(super) fn on_refusal(name: &[u8], errno: Errno) -> OnRefusal {
    let tolerated = match errno {
        Errno::OPNOTSUPP => true,
        Errno::PERM => name.starts_with(b"user.") || (name.starts_with(b"security.") && name != b"security.capability"),
        _ => false,
    };
    if tolerated { OnRefusal::Skip } else { OnRefusal::Fail }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_private_xattrs_are_not_taken_from_layers() {
        let cases: [(&str, &[u8], bool); 6] = [
            ("user xattr", b"user.mime_type", true),
            ("file capabilities", b"security.capability", true),
            ("selinux label", b"security.selinux", true),
            ("other trusted xattr", b"trusted.md5", true),
            ("overlay opaque", b"trusted.overlay.opaque", false),
            ("rootless overlay redirect", b"user.overlay.redirect", false),
        ];
        for (desc, name, allowed) in cases {
            assert_eq!(is_allowed(name), allowed, "{desc}");
        }
    }

    #[test]
    fn only_refusals_meaning_cannot_hold_it_are_tolerated() {
        let cases: [(&str, &[u8], Errno, OnRefusal); 8] = [
            (
                "unsupported namespace",
                b"trusted.md5",
                Errno::OPNOTSUPP,
                OnRefusal::Skip,
            ),
            ("user xattr on a symlink", b"user.x", Errno::PERM, OnRefusal::Skip),
            ("lsm refuses a label", b"security.selinux", Errno::PERM, OnRefusal::Skip),
            (
                "capabilities refused",
                b"security.capability",
                Errno::PERM,
                OnRefusal::Fail,
            ),
            (
                "capabilities invalid",
                b"security.capability",
                Errno::INVAL,
                OnRefusal::Fail,
            ),
            ("trusted refused", b"trusted.md5", Errno::PERM, OnRefusal::Fail),
            ("no space", b"user.x", Errno::NOSPC, OnRefusal::Fail),
            ("value too large", b"user.x", Errno::TOOBIG, OnRefusal::Fail),
        ];
        for (desc, name, errno, want) in cases {
            assert_eq!(on_refusal(name, errno), want, "{desc}");
        }
    }
}
