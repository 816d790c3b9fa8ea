//! The tar form of a layer description: ustar headers with explicit attributes, PAX
//! records where ustar falls short, OCI whiteout and opaque markers.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use super::{Entry, Kind, file};

/// One PAX extended header record: "LEN key=value\n", LEN counting itself.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut rec = format!("{len} {key}=").into_bytes();
    rec.extend_from_slice(value);
    rec.push(b'\n');
    rec
}

struct TarWriter<W: Write> {
    builder: tar::Builder<W>,
}

impl<W: Write> TarWriter<W> {
    /// Appends one entry: a PAX header first when the entry needs one (long names,
    /// nanosecond mtime, xattrs), then a ustar header with explicit mode, owner and mtime,
    /// then the data.
    fn append(
        &mut self,
        e: &Entry,
        name: &str,
        ty: tar::EntryType,
        link: Option<&str>,
        data: &[u8],
    ) -> io::Result<()> {
        let mut h = tar::Header::new_ustar();
        let mut pax = Vec::new();
        if h.set_path(name).is_err() {
            pax.extend(pax_record("path", name.as_bytes()));
            h.set_path(format!("long/{}", name.len()))?;
        }
        // Literal: set_link_name would "canonicalise" a target like "/" into "//".
        if let Some(link) = link
            && h.set_link_name_literal(link).is_err()
        {
            pax.extend(pax_record("linkpath", link.as_bytes()));
            h.set_link_name("long")?;
        }
        if e.mtime.1 != 0 || e.mtime.0 < 0 {
            let v = format!("{}.{:09}", e.mtime.0, e.mtime.1);
            pax.extend(pax_record("mtime", v.as_bytes()));
        }
        for (k, v) in &e.xattrs {
            pax.extend(pax_record(&format!("SCHILY.xattr.{k}"), v));
        }
        if !pax.is_empty() {
            let mut x = tar::Header::new_ustar();
            let short: String = name
                .chars()
                .rev()
                .take(80)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            x.set_path(format!("PaxHeaders/{}", short.trim_start_matches('/')))?;
            x.set_entry_type(tar::EntryType::XHeader);
            x.set_mode(0o644);
            x.set_mtime(0);
            x.set_size(pax.len() as u64);
            x.set_cksum();
            self.builder.append(&x, pax.as_slice())?;
        }
        let (uid, gid) = e.ids();
        h.set_entry_type(ty);
        h.set_mode(e.effective_mode());
        h.set_uid(uid.into());
        h.set_gid(gid.into());
        h.set_mtime(e.mtime.0.max(0) as u64);
        h.set_username("")?;
        h.set_groupname("")?;
        if let Kind::CharDev(ma, mi) | Kind::BlockDev(ma, mi) = e.kind {
            h.set_device_major(ma)?;
            h.set_device_minor(mi)?;
        }
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.builder.append(&h, data)
    }

    fn marker(&mut self, name: &str) -> io::Result<()> {
        let e = file(name, b"");
        self.append(&e, name, tar::EntryType::Regular, None, b"")
    }
}

pub(super) fn write(dest: &Path, entries: &[Entry]) -> io::Result<()> {
    let f = fs::File::create(dest)?;
    let mut w = TarWriter {
        builder: tar::Builder::new(io::BufWriter::new(f)),
    };
    for e in entries {
        let name = if e.path.is_empty() {
            "./".to_string()
        } else {
            e.path.clone()
        };
        let dir_name = if e.path.is_empty() {
            "./".to_string()
        } else {
            format!("{}/", e.path)
        };
        match &e.kind {
            Kind::Dir => w.append(e, &dir_name, tar::EntryType::Directory, None, b"")?,
            Kind::Opaque => {
                w.append(e, &dir_name, tar::EntryType::Directory, None, b"")?;
                let marker = if e.path.is_empty() {
                    ".wh..wh..opq".to_string()
                } else {
                    format!("{}/.wh..wh..opq", e.path)
                };
                w.marker(&marker)?;
            }
            Kind::File(data) => w.append(e, &name, tar::EntryType::Regular, None, data)?,
            Kind::Symlink(t) => w.append(e, &name, tar::EntryType::Symlink, Some(t), b"")?,
            Kind::Hardlink(t) => {
                // The link entry restates its target's attributes, as GNU tar writes it.
                let Some(target) = entries.iter().find(|o| &o.path == t) else {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("hard link {} to {t}, which is not in the layer", e.path),
                    ));
                };
                let mut link = target.clone();
                link.xattrs.clear();
                w.append(&link, &name, tar::EntryType::Link, Some(t), b"")?
            }
            Kind::Whiteout => {
                let marker = match e.path.rsplit_once('/') {
                    Some((parent, base)) => format!("{parent}/.wh.{base}"),
                    None => format!(".wh.{}", e.path),
                };
                w.marker(&marker)?;
            }
            Kind::Fifo => w.append(e, &name, tar::EntryType::Fifo, None, b"")?,
            Kind::CharDev(..) => w.append(e, &name, tar::EntryType::Char, None, b"")?,
            Kind::BlockDev(..) => w.append(e, &name, tar::EntryType::Block, None, b"")?,
        }
    }
    w.builder.into_inner()?.flush()
}
