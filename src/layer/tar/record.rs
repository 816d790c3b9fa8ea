//! Decoding one tar entry (as the `tar` crate yields it) into a [`Record`]: the normalised
//! facts the index stores, with the PAX overrides and sparse maps already applied.
//!
//! This is also where the archive is checked against its own length: the `tar` crate skips
//! data by seeking, so it never notices that an entry's data runs past the end of the file.

use std::io::Read;

use tar::{Entry, PaxExtensions};

use super::extension;
use super::pax::{self, PaxRecords, Xattrs};
use super::sparse::{self, SparseMap};
use super::stream::Stream;
use crate::layer::{Kind, Timespec};

/// What one tar entry says.
pub(super) struct Record {
    /// The entry's path as stored (long-name, PAX `path` or `GNU.sparse.name` applied).
    pub path: Vec<u8>,
    pub what: What,
    /// Permission bits, `mode & 0o7777`.
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Timespec,
    /// Regular files: the real size (sparse files included).
    pub size: u64,
    /// Regular files: offset of the (first) data byte in the stream.
    pub data: u64,
    pub xattrs: Xattrs,
    pub sparse: Option<SparseMap>,
}

pub(super) enum What {
    Object(Kind),
    Symlink(Vec<u8>),
    Hardlink(Vec<u8>),
    /// Character or block device with its `makedev` number.
    Device(Kind, u64, bool),
}

impl Record {
    /// True for an overlayfs whiteout: a character device 0/0.
    pub fn is_overlay_whiteout(&self) -> bool {
        matches!(self.what, What::Device(Kind::CharDev, _, true))
    }
}

/// Why an entry could not be taken.
pub(super) enum Problem {
    /// The entry's data (or headers) run past the end of the stream.
    Truncated,
    /// The archive itself is malformed here; indexing stops.
    Corrupt(String),
    /// Only this entry is unusable; it is skipped with a warning.
    Skip(String),
}

impl From<std::io::Error> for Problem {
    fn from(e: std::io::Error) -> Problem {
        Problem::Corrupt(e.to_string())
    }
}

/// Decodes `entry`. On the way in, `end` is the stream offset just past the previous entry's
/// data (0 before the first); it is set to the same for this entry, whether or not the entry
/// is taken. `Ok(None)` means "nothing to index" (global PAX headers, volume labels).
pub(super) fn decode<R: Read>(
    entry: &mut Entry<'_, R>,
    stream: &dyn Stream,
    end: &mut u64,
) -> Result<Option<Record>, Problem> {
    let len = stream.len();
    // The extension headers the crate consumed for this entry start where the previous
    // entry's data ends, rounded up to a block.
    let ext_start = end.div_ceil(512) * 512;
    let type_byte = entry.header().entry_type().as_byte();
    let file_pos = entry.raw_file_position();
    let within = |from: u64, n: u64| -> Result<u64, Problem> {
        match from.checked_add(n) {
            Some(e) if e <= len => Ok(e),
            _ => Err(Problem::Truncated),
        }
    };

    // Global PAX headers would apply to every later entry; layer tars do not use them (git
    // archive writes one holding only a comment), so they are skipped like volume labels.
    if type_byte == b'g' || type_byte == b'V' {
        *end = within(file_pos, entry.size())?;
        return Ok(None);
    }
    // Extension headers reach us as entries only when the crate did not take them as such
    // (pre-POSIX magic); then they describe nothing, and their data is no PAX data of ours.
    if matches!(type_byte, b'x' | b'L' | b'K') {
        *end = within(file_pos, entry.size())?;
        return Err(Problem::Skip(format!(
            "stray extension header of type {:?}",
            char::from(type_byte)
        )));
    }

    let ext_end = entry.raw_header_position();
    let ext = if ext_start < ext_end {
        extension::read(stream, ext_start, ext_end).map_err(Problem::Corrupt)?
    } else {
        extension::Extensions::default()
    };
    let pax = match &ext.pax {
        Some(data) => pax::records(data)
            .and_then(|r| pax::collect(&r))
            .map_err(Problem::Corrupt)?,
        None => PaxRecords::default(),
    };
    // The crate found this entry's data, and the next header, with the size its own reading of
    // the PAX records gave; if ours differs (a `size` record after a value with a newline),
    // its walk is off from here on, so refuse rather than index the wrong bytes.
    let crate_view = entry.pax_extensions()?.map(crate_pax_size);
    if crate_view.is_some() != ext.pax.is_some() {
        return Err(Problem::Corrupt(
            "the PAX header in front of the entry was not found where expected".into(),
        ));
    }
    if let Some(seen) = crate_view
        && seen != pax.size
    {
        let show = |s: Option<u64>| s.map_or_else(|| "none".to_string(), |s| s.to_string());
        return Err(Problem::Corrupt(format!(
            "the PAX size records say {} but the tar reader read {}; refusing to guess where \
             the next header is",
            show(pax.size),
            show(seen)
        )));
    }
    let header = entry.header();
    let gnu_sparse = type_byte == b'S';
    // For type `S` the crate reports the real size; the stored size is the header's (or PAX's).
    let stored = match (gnu_sparse, pax.size) {
        (true, Some(s)) => s,
        (true, None) => header.entry_size()?,
        (false, _) => entry.size(),
    };
    *end = within(file_pos, stored)?;

    // Path and link target: a GNU long-name header first (as the crate applies it), then our
    // own PAX records, then the header. Never the crate's PAX view: it splits records on
    // newlines, so a value holding `\n13 path=evil\n` would read as a `path` record.
    let pax_sparse = pax.sparse.any() && !gnu_sparse;
    let path = match (&pax.sparse.name, pax_sparse) {
        (Some(name), true) => name.clone(),
        _ if ext.long_name => entry.path_bytes().into_owned(),
        _ => match &pax.path {
            Some(p) => p.clone(),
            None => header.path_bytes().into_owned(),
        },
    };
    let link = match (ext.long_link, &pax.linkpath) {
        (true, _) => entry.link_name_bytes().map(|l| l.into_owned()),
        (false, Some(l)) => Some(l.clone()),
        (false, None) => header.link_name_bytes().map(|l| l.into_owned()),
    };

    let what = match type_byte {
        b'0' | 0 | b'7' if path.ends_with(b"/") => What::Object(Kind::Dir),
        b'0' | 0 | b'7' | b'S' => What::Object(Kind::File),
        b'5' | b'D' => What::Object(Kind::Dir),
        b'6' => What::Object(Kind::Fifo),
        b'1' | b'2' => {
            let target = link
                .filter(|l| !l.is_empty())
                .ok_or_else(|| Problem::Skip("link entry without a target".into()))?;
            if type_byte == b'1' {
                What::Hardlink(target)
            } else {
                What::Symlink(target)
            }
        }
        b'3' | b'4' => {
            let kind = if type_byte == b'3' {
                Kind::CharDev
            } else {
                Kind::BlockDev
            };
            let bad = |e: std::io::Error| Problem::Skip(format!("bad device number: {e}"));
            let major = header.device_major().map_err(bad)?.unwrap_or(0);
            let minor = header.device_minor().map_err(bad)?.unwrap_or(0);
            What::Device(kind, libc::makedev(major, minor), major == 0 && minor == 0)
        }
        other => {
            return Err(Problem::Skip(format!(
                "unsupported entry type {:?}",
                char::from(other)
            )));
        }
    };

    let raw = header.as_old();
    let perm = (or_blank(header.mode().map(u64::from), &raw.mode)? & 0o7777) as u16;
    // The crate may have put PAX `uid`/`gid` into the header, but stops at the first record it
    // cannot split, so ours come first.
    let uid = match pax.uid {
        Some(v) => v,
        None => or_blank(header.uid(), &raw.uid)?,
    };
    let gid = match pax.gid {
        Some(v) => v,
        None => or_blank(header.gid(), &raw.gid)?,
    };
    let uid =
        u32::try_from(uid).map_err(|_| Problem::Skip("uid does not fit in 32 bits".into()))?;
    let gid =
        u32::try_from(gid).map_err(|_| Problem::Skip("gid does not fit in 32 bits".into()))?;
    let mtime = match pax.mtime {
        Some(t) => t,
        None => Timespec {
            sec: i64::try_from(or_blank(header.mtime(), &raw.mtime)?).unwrap_or(i64::MAX),
            nsec: 0,
        },
    };

    let mut size = stored;
    let mut data = file_pos;
    let mut map = None;
    if gnu_sparse {
        let gnu = header
            .as_gnu()
            .ok_or_else(|| Problem::Corrupt("sparse entry without a GNU header".into()))?;
        let real = gnu.real_size()?;
        let (extents, ext_bytes) =
            sparse::gnu_old_extents(gnu, stream, file_pos).map_err(Problem::Corrupt)?;
        data = file_pos + ext_bytes;
        *end = within(data, stored)?;
        map = Some(SparseMap::new(&extents, real, data, stored).map_err(Problem::Skip)?);
        size = real;
    } else if pax_sparse && matches!(what, What::Object(Kind::File)) {
        let keys = &pax.sparse;
        let real = keys
            .real_size
            .ok_or_else(|| Problem::Skip("PAX sparse entry without a real size".into()))?;
        let (extents, map_bytes) = match (keys.major, keys.minor, &keys.map) {
            (Some(1), Some(0), _) => {
                sparse::pax_v1_extents(stream, file_pos, stored).map_err(Problem::Skip)?
            }
            (None, _, Some(text)) | (Some(0), _, Some(text)) => {
                (sparse::pax_v01_extents(text).map_err(Problem::Skip)?, 0)
            }
            _ => return Err(Problem::Skip("unsupported PAX sparse format".into())),
        };
        data = file_pos + map_bytes;
        map =
            Some(SparseMap::new(&extents, real, data, stored - map_bytes).map_err(Problem::Skip)?);
        size = real;
    }
    if !matches!(what, What::Object(Kind::File)) {
        size = 0;
        data = 0;
    }

    Ok(Some(Record {
        path,
        what,
        perm,
        uid,
        gid,
        mtime,
        size,
        data,
        xattrs: pax.xattrs,
        sparse: map,
    }))
}

/// The PAX `size` as the crate reads it (tar 0.4, `pax_extensions_value`): the first `size`
/// record before the first line its newline split cannot parse.
fn crate_pax_size(exts: PaxExtensions<'_>) -> Option<u64> {
    for ext in exts {
        let ext = ext.ok()?;
        if ext.key_bytes() == b"size" {
            return ext.value().ok()?.parse().ok();
        }
    }
    None
}

/// A numeric header field, where a field left blank (all NUL or spaces, as some writers leave
/// fields they do not track) reads as 0 rather than failing the archive.
fn or_blank(parsed: std::io::Result<u64>, field: &[u8]) -> Result<u64, Problem> {
    match parsed {
        Ok(v) => Ok(v),
        Err(_) if field.iter().all(|&b| b == 0 || b == b' ') => Ok(0),
        Err(e) => Err(e.into()),
    }
}
