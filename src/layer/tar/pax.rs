//! The PAX extended-header records of one entry, split by their length prefix.
//!
//! POSIX pax ("pax Extended Header") writes each record as `"%d %s=%s\n"`, the decimal length
//! counting the whole record, so a value may hold any byte, newlines included (an xattr such as
//! `security.capability` often does). The `tar` crate splits the data on newlines instead, so
//! the index parses the records itself (`records`) from the raw data that `extension` reads,
//! and takes from them everything PAX can override: `path`, `linkpath`, `size`, `uid`, `gid`,
//! `mtime` (with nanoseconds), extended attributes (`SCHILY.xattr.NAME` as GNU tar and Docker
//! write them, `LIBARCHIVE.xattr.NAME` as bsdtar does) and the `GNU.sparse.*` keys of the PAX
//! sparse formats.

use crate::layer::Timespec;

/// Extended attributes as (name, value) pairs, in archive order.
pub(crate) type Xattrs = Vec<(Box<[u8]>, Box<[u8]>)>;

/// One `key=value` record, borrowed from the header's data.
pub(super) type PaxRecord<'a> = (&'a [u8], &'a [u8]);

/// The records of one entry's PAX header that matter to the index.
#[derive(Debug, Default)]
pub(super) struct PaxRecords {
    pub path: Option<Vec<u8>>,
    pub linkpath: Option<Vec<u8>>,
    pub uid: Option<u64>,
    pub gid: Option<u64>,
    pub mtime: Option<Timespec>,
    /// The stored size; for a GNU sparse entry, how far its data extends.
    pub size: Option<u64>,
    pub xattrs: Xattrs,
    pub sparse: SparseKeys,
}

/// `GNU.sparse.*` keys (GNU tar manual, "Storing Sparse Files", formats 0.0, 0.1 and 1.0).
#[derive(Debug, Default)]
pub(super) struct SparseKeys {
    pub major: Option<u64>,
    pub minor: Option<u64>,
    /// The real name of the file; the header's own name is a `GNUSparseFile.N/...` stand-in.
    pub name: Option<Vec<u8>>,
    /// Real size: `GNU.sparse.realsize` (1.0) or `GNU.sparse.size` (0.x).
    pub real_size: Option<u64>,
    /// `GNU.sparse.map` (0.1): `offset,length,offset,length...`.
    pub map: Option<Vec<u8>>,
    /// `GNU.sparse.offset` / `numbytes` (0.0): repeated keys, which we do not decode.
    pub has_v0_0: bool,
}

impl SparseKeys {
    /// True if any sparse key was present.
    pub fn any(&self) -> bool {
        self.major.is_some()
            || self.name.is_some()
            || self.real_size.is_some()
            || self.map.is_some()
            || self.has_v0_0
    }
}

/// Splits PAX data into `(key, value)` records by their length prefix. Anything that is not a
/// well-formed record is an error: the crate would have skipped it silently, and then path and
/// size could disagree with other readers. NUL bytes after the last record (padding some
/// writers leave) end the data.
pub(super) fn records(data: &[u8]) -> Result<Vec<PaxRecord<'_>>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let rest = &data[pos..];
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let bad =
            |why: &str| format!("malformed PAX record at byte {pos} of the extended header: {why}");
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || rest.get(digits) != Some(&b' ') {
            return Err(bad("the length is not a number followed by a space"));
        }
        let len = parse_u64(&rest[..digits])
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| bad("the length is too large"))?;
        // The shortest record is `"N k=\n"`: the prefix, a one-byte key, `=` and the newline.
        if len < digits + 4 {
            return Err(bad("the length is shorter than the record's own prefix"));
        }
        if len > rest.len() {
            return Err(bad("the record runs past the end of the extended header"));
        }
        let Some((&b'\n', body)) = rest[digits + 1..len].split_last() else {
            return Err(bad("the record does not end with a newline"));
        };
        let Some(eq) = body.iter().position(|&b| b == b'=') else {
            return Err(bad("the record has no `=`"));
        };
        if eq == 0 {
            return Err(bad("the record has an empty key"));
        }
        out.push((&body[..eq], &body[eq + 1..]));
        pos += len;
    }
    Ok(out)
}

/// Collects what the index needs from the records of one entry. A later record for the same
/// key wins; an empty value for a header field means "use the header's own" (POSIX pax, which
/// lets a record delete an earlier one), so it clears the override.
pub(super) fn collect(records: &[PaxRecord<'_>]) -> Result<PaxRecords, String> {
    let mut out = PaxRecords::default();
    for &(key, value) in records {
        let set = !value.is_empty();
        match key {
            b"path" => out.path = set.then(|| value.to_vec()),
            b"linkpath" => out.linkpath = set.then(|| value.to_vec()),
            b"uid" => out.uid = number(set, "uid", value)?,
            b"gid" => out.gid = number(set, "gid", value)?,
            b"size" => out.size = number(set, "size", value)?,
            b"mtime" if set => {
                out.mtime = Some(parse_time(value).ok_or_else(|| bad_value("mtime", value))?);
            }
            b"mtime" => out.mtime = None,
            b"GNU.sparse.major" => out.sparse.major = parse_u64(value),
            b"GNU.sparse.minor" => out.sparse.minor = parse_u64(value),
            b"GNU.sparse.name" => out.sparse.name = Some(value.to_vec()),
            b"GNU.sparse.realsize" | b"GNU.sparse.size" => {
                out.sparse.real_size =
                    Some(parse_u64(value).ok_or_else(|| bad_value("GNU.sparse size", value))?);
            }
            b"GNU.sparse.map" => out.sparse.map = Some(value.to_vec()),
            b"GNU.sparse.offset" | b"GNU.sparse.numbytes" => out.sparse.has_v0_0 = true,
            _ => {
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    push_xattr(&mut out.xattrs, name.into(), value.into());
                } else if let Some(name) = key.strip_prefix(b"LIBARCHIVE.xattr.") {
                    // libarchive URL-encodes the name and base64-encodes the value.
                    match (percent_decode(name), base64_decode(value)) {
                        (Some(n), Some(v)) => push_xattr(&mut out.xattrs, n.into(), v.into()),
                        _ => log::warn!(
                            "ignoring undecodable LIBARCHIVE.xattr record {}",
                            String::from_utf8_lossy(name)
                        ),
                    }
                }
            }
        }
    }
    Ok(out)
}

/// A decimal header-field override, `None` when the value is empty.
fn number(set: bool, key: &str, value: &[u8]) -> Result<Option<u64>, String> {
    if set {
        parse_u64(value)
            .map(Some)
            .ok_or_else(|| bad_value(key, value))
    } else {
        Ok(None)
    }
}

fn bad_value(key: &str, value: &[u8]) -> String {
    format!(
        "bad PAX {key} value {:?}",
        String::from_utf8_lossy(&value[..value.len().min(64)])
    )
}

/// A name given twice (e.g. by both SCHILY and LIBARCHIVE records) keeps the later value.
fn push_xattr(list: &mut Xattrs, name: Box<[u8]>, value: Box<[u8]>) {
    if name.is_empty() {
        return;
    }
    match list.iter_mut().find(|(n, _)| *n == name) {
        Some(slot) => slot.1 = value,
        None => list.push((name, value)),
    }
}

pub(super) fn parse_u64(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// Parses a PAX time, `[-]SECONDS[.FRACTION]`; digits past nanoseconds are truncated.
/// A negative time counts back from the epoch: `-1.25` is 1.25 s before it.
pub(super) fn parse_time(v: &[u8]) -> Option<Timespec> {
    let (neg, v) = match v.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let (int, frac) = match v.iter().position(|&b| b == b'.') {
        Some(dot) => (&v[..dot], &v[dot + 1..]),
        None => (v, &[][..]),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.iter().chain(frac).all(u8::is_ascii_digit) {
        return None;
    }
    let sec: i64 = if int.is_empty() {
        0
    } else {
        std::str::from_utf8(int).ok()?.parse().ok()?
    };
    let mut nsec: u32 = 0;
    for i in 0..9 {
        nsec = nsec * 10 + frac.get(i).map_or(0, |d| u32::from(d - b'0'));
    }
    if !neg {
        return Some(Timespec { sec, nsec });
    }
    if nsec == 0 {
        Some(Timespec { sec: -sec, nsec: 0 })
    } else {
        Some(Timespec {
            sec: (-sec).checked_sub(1)?,
            nsec: 1_000_000_000 - nsec,
        })
    }
}

fn percent_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            let hi = (hex[0] as char).to_digit(16)?;
            let lo = (hex[1] as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Standard base64 (RFC 4648 section 4), padding optional.
fn base64_decode(s: &[u8]) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let s = match s.iter().position(|&c| c == b'=') {
        Some(p) if s[p..].iter().all(|&c| c == b'=') => &s[..p],
        Some(_) => return None,
        None => s,
    };
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3 + 2);
    for group in s.chunks(4) {
        let mut acc = 0u32;
        for &c in group {
            acc = acc << 6 | sextet(c)?;
        }
        acc <<= 6 * (4 - group.len() as u32);
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..group.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pax_times() {
        let t = |s: &str| parse_time(s.as_bytes());
        assert_eq!(
            t("1700000000.123456789"),
            Some(Timespec {
                sec: 1_700_000_000,
                nsec: 123_456_789
            })
        );
        assert_eq!(t("5"), Some(Timespec { sec: 5, nsec: 0 }));
        assert_eq!(
            t("5.5"),
            Some(Timespec {
                sec: 5,
                nsec: 500_000_000
            })
        );
        assert_eq!(
            t("1.1234567899"),
            Some(Timespec {
                sec: 1,
                nsec: 123_456_789
            })
        );
        assert_eq!(
            t("-1.25"),
            Some(Timespec {
                sec: -2,
                nsec: 750_000_000
            })
        );
        assert_eq!(t("-3"), Some(Timespec { sec: -3, nsec: 0 }));
        assert_eq!(t(""), None);
        assert_eq!(t("."), None);
        assert_eq!(t("1e9"), None);
        assert_eq!(t("99999999999999999999"), None);
    }

    #[test]
    fn decodes_libarchive_encodings() {
        assert_eq!(base64_decode(b"aGVsbG8=").as_deref(), Some(&b"hello"[..]));
        assert_eq!(base64_decode(b"aGVsbG8").as_deref(), Some(&b"hello"[..]));
        assert_eq!(base64_decode(b"eQ==").as_deref(), Some(&b"y"[..]));
        assert_eq!(base64_decode(b"").as_deref(), Some(&b""[..]));
        assert_eq!(base64_decode(b"a"), None);
        assert_eq!(base64_decode(b"a=b="), None);
        assert_eq!(
            percent_decode(b"user.a%3Db").as_deref(),
            Some(&b"user.a=b"[..])
        );
        assert_eq!(percent_decode(b"bad%4"), None);
    }
}
