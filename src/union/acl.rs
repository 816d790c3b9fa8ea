//! POSIX ACLs of new objects: what a directory's default ACL gives a file or directory made
//! in it, as the kernel computes it (`posix_acl_create`) and kernel overlayfs then sets on
//! its upper object. The daemon builds new objects in the work directory, whose own default
//! ACL (if any) must not apply, so it sets the inherited ACLs itself.
//!
//! ACLs travel as the `system.posix_acl_access` / `system.posix_acl_default` xattrs, in the
//! kernel's format: a little-endian u32 version (2), then 8-byte entries (u16 tag, u16
//! permissions, u32 uid or gid).

pub(super) const ACCESS: &str = "system.posix_acl_access";
pub(super) const DEFAULT: &str = "system.posix_acl_default";

const VERSION: u32 = 2;
const USER_OBJ: u16 = 0x01;
const USER: u16 = 0x02;
const GROUP_OBJ: u16 = 0x04;
const GROUP: u16 = 0x08;
const MASK: u16 = 0x10;
const OTHER: u16 = 0x20;

/// What a new object gets from its directory's default ACL.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Inherited {
    /// Permission bits (and the special bits asked for), with no umask applied.
    pub perm: u32,
    /// The access ACL, when it says more than the permission bits (named entries or a mask).
    pub access: Option<Vec<u8>>,
    /// The default ACL again, for a new directory.
    pub default: Option<Vec<u8>>,
}

/// The entries of an ACL xattr, or `None` if it is not one the kernel would have stored
/// (wrong version or size, or without the three required entries).
fn parse(value: &[u8]) -> Option<Vec<(u16, u16, u32)>> {
    let (head, body) = value.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*head) != VERSION || body.len() % 8 != 0 {
        return None;
    }
    let entries: Vec<_> = body
        .chunks_exact(8)
        .map(|e| {
            let tag = u16::from_le_bytes([e[0], e[1]]);
            let perm = u16::from_le_bytes([e[2], e[3]]);
            let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
            (tag, perm, id)
        })
        .collect();
    let has = |tag| entries.iter().any(|e| e.0 == tag);
    (has(USER_OBJ) && has(GROUP_OBJ) && has(OTHER)).then_some(entries)
}

fn encode(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut out = VERSION.to_le_bytes().to_vec();
    for &(tag, perm, id) in entries {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&perm.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
    }
    out
}

/// The ACLs and mode of a new object of mode `perm` made in a directory whose default ACL is
/// `default`: each class of the mode is cut to the ACL's entry for it (the mask standing for
/// the group class when there is one), and those entries to the mode. `None` when `default`
/// is not a valid ACL: the object is then made as if there were none.
pub(super) fn inherit(default: &[u8], perm: u32, dir: bool) -> Option<Inherited> {
    let mut entries = parse(default)?;
    let mut mode = perm & 0o7777;
    let mut extended = false;
    let mut group_obj = None;
    let mut mask = None;
    for (i, e) in entries.iter_mut().enumerate() {
        match e.0 {
            USER_OBJ => {
                e.1 &= ((mode >> 6) & 7) as u16;
                mode &= (u32::from(e.1) << 6) | !0o700;
            }
            USER | GROUP => extended = true,
            GROUP_OBJ => group_obj = Some(i),
            OTHER => {
                e.1 &= (mode & 7) as u16;
                mode &= u32::from(e.1) | !0o007;
            }
            MASK => {
                mask = Some(i);
                extended = true;
            }
            _ => return None,
        }
    }
    // The mask, when present, is the group class; the owning group's entry stays as it was.
    let group = mask.or(group_obj)?;
    entries[group].1 &= ((mode >> 3) & 7) as u16;
    mode &= (u32::from(entries[group].1) << 3) | !0o070;
    Some(Inherited {
        perm: mode,
        access: extended.then(|| encode(&entries)),
        default: dir.then(|| default.to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        encode(entries)
    }

    #[test]
    fn a_minimal_default_acl_is_a_umask_of_its_own() {
        // u::rwx g::r-x o::--- : like umask 027, and no access ACL (the bits say it all).
        let d = acl(&[(USER_OBJ, 7, 0), (GROUP_OBJ, 5, 0), (OTHER, 0, 0)]);
        let got = inherit(&d, 0o666, false).unwrap();
        assert_eq!(got.perm, 0o640);
        assert_eq!(got.access, None);
        assert_eq!(got.default, None);
        let got = inherit(&d, 0o777, true).unwrap();
        assert_eq!(got.perm, 0o750);
        assert_eq!(got.default.as_deref(), Some(&d[..]));
    }

    #[test]
    fn named_entries_keep_an_access_acl_whose_mask_is_the_group_class() {
        let d = acl(&[
            (USER_OBJ, 7, 0),
            (USER, 7, 65534),
            (GROUP_OBJ, 0, 0),
            (MASK, 7, 0),
            (OTHER, 0, 0),
        ]);
        let got = inherit(&d, 0o666, false).unwrap();
        // The group class is the mask cut to the mode's group bits (rw-).
        assert_eq!(got.perm, 0o660);
        let want = acl(&[
            (USER_OBJ, 6, 0),
            (USER, 7, 65534),
            (GROUP_OBJ, 0, 0),
            (MASK, 6, 0),
            (OTHER, 0, 0),
        ]);
        assert_eq!(got.access, Some(want));
    }

    #[test]
    fn special_bits_pass_and_bad_acls_are_none() {
        let d = acl(&[(USER_OBJ, 7, 0), (GROUP_OBJ, 7, 0), (OTHER, 7, 0)]);
        assert_eq!(inherit(&d, 0o2775, true).unwrap().perm, 0o2775);
        assert_eq!(inherit(&[], 0o666, false), None);
        assert_eq!(inherit(&d[..11], 0o666, false), None);
        let mut v1 = d.clone();
        v1[0] = 1;
        assert_eq!(inherit(&v1, 0o666, false), None);
        let no_other = acl(&[(USER_OBJ, 7, 0), (GROUP_OBJ, 7, 0)]);
        assert_eq!(inherit(&no_other, 0o666, false), None);
        let unknown_tag = acl(&[
            (USER_OBJ, 7, 0),
            (GROUP_OBJ, 7, 0),
            (OTHER, 7, 0),
            (0x40, 7, 0),
        ]);
        assert_eq!(inherit(&unknown_tag, 0o666, false), None);
    }
}
