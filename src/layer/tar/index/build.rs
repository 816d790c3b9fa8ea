//! The one sequential pass that builds a [`TarIndex`](super::TarIndex): walking the archive
//! with the `tar` crate, normalising paths and applying the layer rules of the parent module.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use super::super::TarError;
use super::super::extension;
use super::super::record::{self, Problem, Record, What};
use super::super::stream::Stream;
use super::*;
use crate::layer::Kind;
use crate::layer::whiteout::{self, OciName};

/// Builds the index of the tar stream in one pass. `path` only names the file in errors and
/// warnings.
///
/// The stream may be the forward-only stream of the indexing pass (`forward`), whose length
/// is only known once it has been read to the end, so `stream.len()` is asked where an error
/// needs it rather than once up front.
pub(crate) fn build(stream: &dyn Stream, path: &Path) -> Result<TarIndex, TarError> {
    if stream.len() == 0 {
        return Err(TarError::NotTar {
            path: path.to_owned(),
            cause: "empty file".into(),
        });
    }
    let eof = Cell::new(false);
    let mut archive = tar::Archive::new(HeaderReader::new(stream, &eof));
    let entries = archive.entries_with_seek().map_err(|e| TarError::Io {
        path: path.to_owned(),
        source: e,
    })?;
    let mut tree = Tree::new(path);
    let mut end = 0u64;
    for (seen, item) in entries.enumerate() {
        let mut entry = match item {
            Ok(entry) => entry,
            Err(e) => {
                let len = stream.len();
                return Err(if eof.get() && (seen > 0 || len >= 512) {
                    TarError::Truncated {
                        path: path.to_owned(),
                        at: len,
                        entry: None,
                    }
                } else if seen == 0 {
                    TarError::NotTar {
                        path: path.to_owned(),
                        cause: header_problem(stream, 0).unwrap_or_else(|| e.to_string()),
                    }
                } else {
                    let offset = end.div_ceil(512) * 512;
                    TarError::Corrupt {
                        path: path.to_owned(),
                        offset,
                        entry: None,
                        cause: header_problem(stream, offset).unwrap_or_else(|| e.to_string()),
                    }
                });
            }
        };
        let offset = entry.raw_header_position();
        match record::decode(&mut entry, stream, &mut end) {
            Ok(Some(rec)) => tree.insert(rec)?,
            Ok(None) => {}
            Err(Problem::Skip(why)) => {
                log::warn!(
                    "{}: skipping `{}`: {why}",
                    path.display(),
                    String::from_utf8_lossy(&entry.path_bytes())
                );
            }
            Err(Problem::Truncated) => {
                return Err(TarError::Truncated {
                    path: path.to_owned(),
                    at: stream.len(),
                    entry: Some(String::from_utf8_lossy(&entry.path_bytes()).into_owned()),
                });
            }
            Err(Problem::Corrupt(cause)) => {
                return Err(TarError::Corrupt {
                    path: path.to_owned(),
                    offset,
                    entry: Some(String::from_utf8_lossy(&entry.path_bytes()).into_owned()),
                    cause,
                });
            }
        }
    }
    // The crate ends quietly at end-of-file as well as at the end-of-archive zero block; only
    // the block tells a complete archive from one cut at an entry boundary.
    if eof.get() {
        // A compressed stream's length is only known now: one that decompresses to nothing
        // (a zstd skippable frame, an empty gzip member) is no archive, not a truncated one.
        if stream.len() == 0 {
            return Err(TarError::NotTar {
                path: path.to_owned(),
                cause: "no data after decompression".into(),
            });
        }
        return Err(TarError::Truncated {
            path: path.to_owned(),
            at: stream.len(),
            entry: None,
        });
    }
    Ok(tree.finish())
}

/// Our own words for why the header at `at` is unreadable, where we can tell: the crate's
/// messages quote the raw field bytes, which for a text file are lines of text.
fn header_problem(stream: &dyn Stream, at: u64) -> Option<String> {
    let mut block = [0u8; 512];
    match stream.read_exact_at(&mut block, at) {
        Err(_) if at == 0 => Some(format!(
            "{} bytes, shorter than one tar header",
            stream.len()
        )),
        Err(_) => None,
        Ok(()) if !extension::checksum_ok(&block) => {
            Some(format!("bad header checksum at byte {at}"))
        }
        Ok(()) => None,
    }
}

/// The reader handed to the `tar` crate: buffered reads through the [`Stream`], seeks that cost
/// nothing (the crate seeks over every entry's data), and a flag set when the stream runs out.
struct HeaderReader<'a> {
    stream: &'a dyn Stream,
    eof: &'a Cell<bool>,
    pos: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

impl<'a> HeaderReader<'a> {
    const BUF: usize = 64 * 1024;

    fn new(stream: &'a dyn Stream, eof: &'a Cell<bool>) -> HeaderReader<'a> {
        HeaderReader {
            stream,
            eof,
            pos: 0,
            buf: Vec::new(),
            buf_start: 0,
        }
    }
}

impl Read for HeaderReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let buf_end = self.buf_start + self.buf.len() as u64;
        if self.pos < self.buf_start || self.pos >= buf_end {
            self.buf.resize(Self::BUF, 0);
            let n = self.stream.read_at(&mut self.buf, self.pos)?;
            self.buf.truncate(n);
            self.buf_start = self.pos;
            if n == 0 {
                self.eof.set(true);
                return Ok(0);
            }
        }
        let at = (self.pos - self.buf_start) as usize;
        let n = out.len().min(self.buf.len() - at);
        out[..n].copy_from_slice(&self.buf[at..at + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for HeaderReader<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.stream.len().checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok(self.pos)
    }
}

/// The longest name a directory entry may have (Linux `NAME_MAX`).
const NAME_MAX: usize = 255;
/// The longest symlink target the kernel accepts (`PATH_MAX` less its NUL); FUSE fails a
/// longer `readlink` reply with EIO.
const TARGET_MAX: usize = 4095;

/// Splits a tar path into its components: empty and `.` components dropped (which also strips
/// `./` prefixes and leading `/`), `..` refused.
fn components(path: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    let mut out = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("path has a `..` component"),
            _ if c.contains(&0) => return Err("path has a NUL byte"),
            // No Linux filesystem holds such a name (NAME_MAX), so no lookup could reach it,
            // and FUSE refuses directory entries with names over 1024 bytes outright.
            _ if c.len() > NAME_MAX => return Err("a path component is longer than 255 bytes"),
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// The key of `(parent, name)` in [`Tree::lookup`]: the parent's 4 bytes, then the name.
fn lookup_key(parent: u32, name: &[u8]) -> Box<[u8]> {
    let mut key = Vec::with_capacity(4 + name.len());
    key.extend_from_slice(&parent.to_le_bytes());
    key.extend_from_slice(name);
    key.into_boxed_slice()
}

/// The index while it is being built.
struct Tree<'p> {
    path: &'p Path,
    nodes: Vec<Node>,
    names: Vec<u8>,
    extras: Vec<Extra>,
    /// `(parent, name)` → node, keyed by the parent's 4 bytes followed by the name.
    lookup: HashMap<Box<[u8]>, u32>,
    /// Keys (as in `lookup`) of the names this layer whites out, whether or not a real entry
    /// of the name also exists; see [`FLAG_OPAQUE_WHITEOUT`].
    whited_out: HashSet<Box<[u8]>>,
    key: Vec<u8>,
}

impl<'p> Tree<'p> {
    fn new(path: &'p Path) -> Tree<'p> {
        let root = Node {
            parent: ROOT,
            name_off: 0,
            name_len: 0,
            kind: Kind::Dir,
            flags: FLAG_SYNTHETIC,
            perm: 0o755,
            uid: 0,
            gid: 0,
            nlink: 2,
            mtime_nsec: 0,
            mtime_sec: 0,
            size: 0,
            data: 0,
            obj: ROOT,
            extra: NONE,
            children: 0,
            nchildren: 0,
        };
        Tree {
            path,
            nodes: vec![root],
            names: Vec::new(),
            extras: Vec::new(),
            lookup: HashMap::new(),
            whited_out: HashSet::new(),
            key: Vec::new(),
        }
    }

    fn too_large(&self, what: &str) -> TarError {
        TarError::TooLarge {
            path: self.path.to_owned(),
            cause: format!("more {what} than a 32-bit index can address"),
        }
    }

    fn warn(&self, entry: &[u8], why: &str) {
        log::warn!(
            "{}: skipping `{}`: {why}",
            self.path.display(),
            String::from_utf8_lossy(entry)
        );
    }

    fn get(&mut self, parent: u32, name: &[u8]) -> Option<u32> {
        self.key.clear();
        self.key.extend_from_slice(&parent.to_le_bytes());
        self.key.extend_from_slice(name);
        self.lookup.get(self.key.as_slice()).copied()
    }

    fn set(&mut self, parent: u32, name: &[u8], node: u32) {
        self.lookup.insert(lookup_key(parent, name), node);
    }

    /// Appends bytes to the arena, returning their offset.
    fn push_bytes(&mut self, bytes: &[u8]) -> Result<u32, TarError> {
        let off = u32::try_from(self.names.len()).map_err(|_| self.too_large("name bytes"))?;
        if u32::try_from(self.names.len() + bytes.len()).is_err() {
            return Err(self.too_large("name bytes"));
        }
        self.names.extend_from_slice(bytes);
        Ok(off)
    }

    fn push_node(&mut self, mut node: Node) -> Result<u32, TarError> {
        let idx = u32::try_from(self.nodes.len())
            .ok()
            .filter(|&i| i != NONE)
            .ok_or_else(|| self.too_large("entries"))?;
        if node.obj == NONE {
            node.obj = idx;
        }
        self.nodes.push(node);
        Ok(idx)
    }

    fn push_extra(&mut self, rec: &mut Record) -> Result<u32, TarError> {
        if rec.xattrs.is_empty() && rec.sparse.is_none() {
            return Ok(NONE);
        }
        let idx = u32::try_from(self.extras.len())
            .ok()
            .filter(|&i| i != NONE)
            .ok_or_else(|| self.too_large("extended attribute sets"))?;
        self.extras.push(Extra {
            xattrs: std::mem::take(&mut rec.xattrs),
            sparse: rec.sparse.take().map(Arc::new),
        });
        Ok(idx)
    }

    /// A new node named `name` in `parent`, reusing the arena bytes of a node it replaces.
    fn name_node(
        &mut self,
        parent: u32,
        name: &[u8],
        replaces: Option<u32>,
    ) -> Result<Node, TarError> {
        let (name_off, name_len) = match replaces {
            Some(old) => (
                self.nodes[old as usize].name_off,
                self.nodes[old as usize].name_len,
            ),
            None => (self.push_bytes(name)?, name.len() as u32),
        };
        Ok(Node {
            parent,
            name_off,
            name_len,
            obj: NONE,
            ..Node::with_flag_bits(0)
        })
    }

    /// A directory made up for an entry whose parent has no entry (yet).
    fn synthesise_dir(
        &mut self,
        parent: u32,
        name: &[u8],
        replaces: Option<u32>,
    ) -> Result<u32, TarError> {
        let mut node = self.name_node(parent, name, replaces)?;
        node.perm = 0o755;
        node.flags = FLAG_SYNTHETIC;
        let idx = self.push_node(node)?;
        self.set(parent, name, idx);
        Ok(idx)
    }

    /// Walks to the directory holding the last component, synthesising missing directories.
    /// `None`: a component is not a directory in this layer (the entry is skipped).
    fn parent_dir(&mut self, dirs: &[&[u8]]) -> Result<Option<u32>, TarError> {
        let mut cur = ROOT;
        for &name in dirs {
            if whiteout::classify(OsStr::from_bytes(name)) != OciName::Plain {
                return Ok(None);
            }
            cur = match self.get(cur, name) {
                Some(n) if self.nodes[n as usize].kind == Kind::Dir => n,
                // A real directory in the same layer beats a whiteout of its name.
                Some(n) if self.nodes[n as usize].kind == Kind::Whiteout => {
                    self.synthesise_dir(cur, name, Some(n))?
                }
                Some(_) => return Ok(None),
                None => self.synthesise_dir(cur, name, None)?,
            };
        }
        Ok(Some(cur))
    }

    /// The object a hard link's target path names, without synthesising anything.
    fn link_target(&mut self, target: &[u8]) -> Option<u32> {
        let comps = components(target).ok()?;
        let (last, dirs) = comps.split_last()?;
        let mut cur = ROOT;
        for &name in dirs {
            cur = self.get(cur, name)?;
            if self.nodes[cur as usize].kind != Kind::Dir {
                return None;
            }
        }
        let named = self.get(cur, last)?;
        let obj = self.nodes[named as usize].obj;
        match self.nodes[obj as usize].kind {
            Kind::Dir | Kind::Whiteout => None,
            _ => Some(obj),
        }
    }

    fn set_dir_attrs(&mut self, idx: u32, rec: &mut Record) -> Result<(), TarError> {
        let opaque = rec.xattrs.iter().any(|(n, v)| {
            whiteout::OPAQUE_XATTRS.iter().any(|x| x.as_bytes() == &**n)
                && whiteout::is_opaque_value(v)
        });
        let extra = self.push_extra(rec)?;
        let node = &mut self.nodes[idx as usize];
        node.perm = rec.perm;
        node.uid = rec.uid;
        node.gid = rec.gid;
        node.mtime_sec = rec.mtime.sec;
        node.mtime_nsec = rec.mtime.nsec;
        node.extra = extra;
        node.flags &= !(FLAG_SYNTHETIC | FLAG_OPAQUE_XATTR);
        if opaque {
            node.flags |= FLAG_OPAQUE_XATTR;
        }
        Ok(())
    }

    fn insert_whiteout(&mut self, parent: u32, name: &[u8], rec: &Record) -> Result<(), TarError> {
        // A real entry of the same name (earlier or later) wins: whiteouts only hide lower
        // layers. If that entry is a directory, it still must not merge with the lower one
        // the whiteout removed (OCI image spec, layer.md "Whiteouts": applying a layer deletes
        // the lower object, then creates this layer's entries), so `finish` makes it opaque.
        self.whited_out.insert(lookup_key(parent, name));
        if self.get(parent, name).is_some() {
            return Ok(());
        }
        let mut node = self.name_node(parent, name, None)?;
        node.kind = Kind::Whiteout;
        node.uid = rec.uid;
        node.gid = rec.gid;
        node.mtime_sec = rec.mtime.sec;
        node.mtime_nsec = rec.mtime.nsec;
        let idx = self.push_node(node)?;
        self.set(parent, name, idx);
        Ok(())
    }

    fn insert(&mut self, mut rec: Record) -> Result<(), TarError> {
        let path = std::mem::take(&mut rec.path);
        let comps = match components(&path) {
            Ok(c) => c,
            Err(why) => {
                self.warn(&path, why);
                return Ok(());
            }
        };
        let Some((&last, dirs)) = comps.split_last() else {
            // `.` or `./`: the layer root itself.
            if matches!(rec.what, What::Object(Kind::Dir)) {
                self.set_dir_attrs(ROOT, &mut rec)?;
            } else {
                self.warn(&path, "the root is not a directory");
            }
            return Ok(());
        };
        let Some(parent) = self.parent_dir(dirs)? else {
            self.warn(&path, "a parent is not a directory in this layer");
            return Ok(());
        };
        match whiteout::classify(OsStr::from_bytes(last)) {
            OciName::OpaqueMarker => {
                self.nodes[parent as usize].flags |= FLAG_OPAQUE_MARKER;
                return Ok(());
            }
            OciName::Reserved => {
                log::debug!(
                    "{}: ignoring reserved name `{}`",
                    self.path.display(),
                    String::from_utf8_lossy(&path)
                );
                return Ok(());
            }
            OciName::Whiteout(name) => return self.insert_whiteout(parent, name.as_bytes(), &rec),
            OciName::Plain if rec.is_overlay_whiteout() => {
                return self.insert_whiteout(parent, last, &rec);
            }
            OciName::Plain => {}
        }

        let existing = self.get(parent, last);
        if let Some(old) = existing
            && self.nodes[old as usize].kind == Kind::Dir
            && matches!(rec.what, What::Object(Kind::Dir))
        {
            // A directory entry again (or after its children): new attributes, same children.
            return self.set_dir_attrs(old, &mut rec);
        }
        let mut node = self.name_node(parent, last, existing)?;
        node.perm = rec.perm;
        node.uid = rec.uid;
        node.gid = rec.gid;
        node.mtime_sec = rec.mtime.sec;
        node.mtime_nsec = rec.mtime.nsec;
        match &rec.what {
            What::Object(kind) => {
                node.kind = *kind;
                node.size = rec.size;
                node.data = rec.data;
            }
            What::Device(kind, rdev, _) => {
                node.kind = *kind;
                node.data = *rdev;
            }
            What::Symlink(target) if target.len() > TARGET_MAX => {
                self.warn(&path, "symlink target longer than 4095 bytes");
                return Ok(());
            }
            // readlink would hand the kernel a target it cuts at the NUL: another link.
            What::Symlink(target) if target.contains(&0) => {
                self.warn(&path, "symlink target has a NUL byte");
                return Ok(());
            }
            What::Symlink(target) => {
                node.kind = Kind::Symlink;
                node.data = u64::from(self.push_bytes(target)?);
                node.size = target.len() as u64;
            }
            What::Hardlink(target) => {
                let Some(obj) = self.link_target(target) else {
                    self.warn(&path, "hard link to a missing entry or a directory");
                    return Ok(());
                };
                // Only the name is this node's own; attributes and data are the target's.
                node.kind = self.nodes[obj as usize].kind;
                node.obj = obj;
            }
        }
        if matches!(rec.what, What::Object(Kind::Dir)) {
            let idx = self.push_node(node)?;
            self.set(parent, last, idx);
            return self.set_dir_attrs(idx, &mut rec);
        }
        if node.obj == NONE {
            node.extra = self.push_extra(&mut rec)?;
        }
        let idx = self.push_node(node)?;
        self.set(parent, last, idx);
        Ok(())
    }

    /// Sorts every directory's children into its run, counts links, drops the lookup map.
    fn finish(self) -> TarIndex {
        let Tree {
            mut nodes,
            mut names,
            mut extras,
            lookup,
            whited_out,
            ..
        } = self;
        // Whatever the name holds at the end is what counts: a directory that replaced the
        // whiteout, was replaced by it, or was synthesised as a parent over it.
        for key in &whited_out {
            if let Some(&idx) = lookup.get(key)
                && nodes[idx as usize].kind == Kind::Dir
            {
                nodes[idx as usize].flags |= FLAG_OPAQUE_WHITEOUT;
            }
        }
        let mut children: Vec<u32> = lookup.into_values().collect();
        let name = |n: &Node| &names[n.name_off as usize..(n.name_off + n.name_len) as usize];
        children.sort_unstable_by(|&a, &b| {
            let (na, nb) = (&nodes[a as usize], &nodes[b as usize]);
            na.parent
                .cmp(&nb.parent)
                .then_with(|| name(na).cmp(name(nb)))
        });
        for (i, &c) in children.iter().enumerate() {
            let parent = nodes[c as usize].parent as usize;
            if nodes[parent].nchildren == 0 {
                nodes[parent].children = i as u32;
            }
            nodes[parent].nchildren += 1;
        }
        // Count links over what is reachable from the root only: a directory replaced by a
        // later non-directory keeps its (now unreachable) children in the table.
        for n in &mut nodes {
            n.nlink = 0;
        }
        let mut stack = vec![ROOT];
        while let Some(dir) = stack.pop() {
            let d = &nodes[dir as usize];
            let run = d.children as usize..(d.children + d.nchildren) as usize;
            let mut subdirs = 0u32;
            for &c in &children[run] {
                let obj = nodes[c as usize].obj as usize;
                if nodes[obj].kind == Kind::Dir {
                    subdirs += 1;
                    stack.push(c);
                } else {
                    nodes[obj].nlink = nodes[obj].nlink.saturating_add(1);
                }
            }
            nodes[dir as usize].nlink = subdirs.saturating_add(2);
        }
        nodes.shrink_to_fit();
        names.shrink_to_fit();
        extras.shrink_to_fit();
        TarIndex {
            nodes,
            names,
            children,
            extras,
        }
    }
}
