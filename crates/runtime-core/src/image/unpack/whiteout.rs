//! OCI whiteouts and their overlayfs form.
//!
//! The image spec (`layer.md`, "Whiteouts") marks a deleted `dir/NAME` with an empty entry
//! `dir/.wh.NAME`, and a directory whose lower content is hidden with `dir/.wh..wh..opq`.
//! overlayfs spells the same facts as a character device 0:0 named `dir/NAME` and as the
//! xattr `trusted.overlay.opaque=y` on `dir`; containerd's overlay snapshotter converts one
//! into the other while applying a layer, and so does this unpacker. Only the last component
//! of an entry name is looked at: `a/.wh.b/c` is a file in a directory named `.wh.b`.

/// Prefix of a whiteout entry's last component.
pub(super) const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// Last component marking its directory opaque.
pub(super) const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// The xattr overlayfs reads to treat a directory of an upper layer as opaque.
pub(super) const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// Its value.
pub(super) const OVERLAY_OPAQUE_VALUE: &[u8] = b"y";

/// What the last component of an entry name says.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Whiteout<'a> {
    /// An ordinary entry.
    No,
    /// `.wh..wh..opq`: the parent directory is opaque.
    Opaque,
    /// `.wh.NAME`: `NAME` in the parent directory is deleted.
    Remove(&'a [u8]),
}

/// Why a whiteout entry is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WhiteoutProblem {
    /// `.wh.` with nothing after it.
    #[error("whiteout names no file")]
    NoName,
    /// `.wh..` or `.wh...`: it would delete the directory itself or its parent.
    #[error("whiteouts of \".\" or \"..\" are not allowed in image layers")]
    DotOrDotDot,
}

/// Classifies the last component `name` of a (validated) entry path.
pub(super) fn classify(name: &[u8]) -> Result<Whiteout<'_>, WhiteoutProblem> {
    if name == OPAQUE_MARKER {
        return Ok(Whiteout::Opaque);
    }
    match name.strip_prefix(WHITEOUT_PREFIX) {
        None => Ok(Whiteout::No),
        Some(b"") => Err(WhiteoutProblem::NoName),
        Some(b"." | b"..") => Err(WhiteoutProblem::DotOrDotDot),
        Some(deleted) => Ok(Whiteout::Remove(deleted)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whiteout_names_are_classified() {
        let cases: [(&str, &[u8], Result<Whiteout<'_>, WhiteoutProblem>); 9] = [
            ("ordinary file", b"passwd", Ok(Whiteout::No)),
            ("dot file", b".bashrc", Ok(Whiteout::No)),
            ("prefix without dot", b"wh.foo", Ok(Whiteout::No)),
            ("whiteout", b".wh.passwd", Ok(Whiteout::Remove(b"passwd"))),
            (
                "whiteout of a dot file",
                b".wh..bashrc",
                Ok(Whiteout::Remove(b".bashrc")),
            ),
            ("opaque marker", b".wh..wh..opq", Ok(Whiteout::Opaque)),
            ("empty whiteout", b".wh.", Err(WhiteoutProblem::NoName)),
            ("whiteout of dot", b".wh..", Err(WhiteoutProblem::DotOrDotDot)),
            ("whiteout of dotdot", b".wh...", Err(WhiteoutProblem::DotOrDotDot)),
        ];
        for (desc, name, want) in cases {
            assert_eq!(classify(name), want, "{desc}");
        }
    }
}
