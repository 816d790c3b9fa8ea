//! The whiteout conventions a layer may use on disk, shared by the layer readers.
//!
//! OCI image spec (layer.md, "Whiteouts"): `.wh.NAME` hides NAME in lower layers, and
//! `.wh..wh..opq` in a directory hides all lower content of that directory. Kernel overlayfs
//! (Documentation/filesystems/overlayfs.rst): a character device 0/0 is a whiteout and the
//! xattr `trusted.overlay.opaque` = `y` (or `user.overlay.opaque` with `userxattr`) marks an
//! opaque directory. fuse-overlayfs also writes `user.fuseoverlayfs.opaque`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// Prefix of an OCI whiteout file name.
pub const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// Name of the OCI opaque-directory marker.
pub const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

/// xattrs whose value `y` marks a directory opaque.
pub const OPAQUE_XATTRS: [&str; 3] = [
    "trusted.overlay.opaque",
    "user.overlay.opaque",
    "user.fuseoverlayfs.opaque",
];

/// What a directory entry's name means under the OCI convention.
#[derive(Debug, PartialEq, Eq)]
pub enum OciName<'a> {
    /// An ordinary name.
    Plain,
    /// `.wh..wh..opq`: the directory holding it is opaque.
    OpaqueMarker,
    /// `.wh.NAME`: NAME is whited out.
    Whiteout(&'a OsStr),
    /// Another reserved `.wh.` name (e.g. `.wh..wh.plnk` hardlink stores): not shown.
    Reserved,
}

/// Classifies a single path component.
pub fn classify(name: &OsStr) -> OciName<'_> {
    let b = name.as_bytes();
    if b == OPAQUE_MARKER {
        return OciName::OpaqueMarker;
    }
    match b.strip_prefix(WHITEOUT_PREFIX) {
        None => OciName::Plain,
        // `.wh..wh.*` names are AUFS metadata, never whiteouts of a real name.
        Some(rest) if rest.starts_with(WHITEOUT_PREFIX) => OciName::Reserved,
        Some(rest) if rest.is_empty() || rest == b"." || rest == b".." || rest.contains(&b'/') => {
            OciName::Reserved
        }
        Some(rest) => OciName::Whiteout(OsStr::from_bytes(rest)),
    }
}

/// True if an opaque xattr value means "opaque" (overlayfs accepts exactly `y`).
pub fn is_opaque_value(value: &[u8]) -> bool {
    value == b"y"
}

/// True if an xattr is overlay-private and must not be shown through the union.
pub fn is_private_xattr(name: &OsStr) -> bool {
    let b = name.as_bytes();
    // `user.overlay.` is overlayfs's `userxattr` namespace (unprivileged mounts), read here
    // as the same markers, so hidden the same way.
    b.starts_with(b"trusted.overlay.")
        || b.starts_with(b"user.overlay.")
        || b.starts_with(b"user.fuseoverlayfs.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_oci_names() {
        assert_eq!(classify(OsStr::new("a")), OciName::Plain);
        assert_eq!(classify(OsStr::new(".wh..wh..opq")), OciName::OpaqueMarker);
        assert_eq!(
            classify(OsStr::new(".wh.etc")),
            OciName::Whiteout(OsStr::new("etc"))
        );
        assert_eq!(classify(OsStr::new(".wh..wh.plnk")), OciName::Reserved);
        assert_eq!(classify(OsStr::new(".wh...")), OciName::Reserved);
        assert_eq!(classify(OsStr::new(".wh.")), OciName::Reserved);
        assert_eq!(classify(OsStr::new(".whx")), OciName::Plain);
    }
}
