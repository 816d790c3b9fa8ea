//! Tests of the tar layer through the `Layer` trait, on archives made at test time by GNU tar
//! (real-world encodings: long names, sparse formats, xattrs; `gnu`) and by the `tar` crate's
//! builder (hand-made headers for the odd cases: duplicates, hostile paths, whiteouts in
//! `built`; broken archives in `corrupt`). This file holds the shared helpers.

mod bench;
mod built;
mod compressed;
mod corrupt;
mod gnu;
mod lazy;
mod pax;
mod persist;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use tar::{EntryType, Header};
use tempfile::TempDir;

use super::*;

/// Walks `path` from the root; `None` if a component is missing.
fn get(l: &TarLayer, path: &str) -> Option<Entry> {
    let mut cur = l.root().unwrap();
    for c in path.split('/').filter(|c| !c.is_empty()) {
        cur = l.lookup(cur.node, OsStr::new(c)).unwrap()?;
    }
    Some(cur)
}

fn must(l: &TarLayer, path: &str) -> Entry {
    get(l, path).unwrap_or_else(|| panic!("{path} not found"))
}

fn read(l: &TarLayer, path: &str) -> Vec<u8> {
    let e = must(l, path);
    let f = l.open(e.node).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 100_003]; // odd size: reads straddle chunks and holes
    loop {
        let n = f.read_at(&mut buf, out.len() as u64).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    assert_eq!(out.len() as u64, e.attr.size, "{path}: bytes read vs size");
    out
}

fn names(l: &TarLayer, path: &str) -> Vec<String> {
    let mut v: Vec<String> = l
        .read_dir(must(l, path).node)
        .unwrap()
        .into_iter()
        .map(|d| d.name.to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run command");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs GNU tar in `dir` with `args` and opens the result.
fn gnu_tar(dir: &Path, out: &str, args: &[&str]) -> (PathBuf, TarLayer) {
    let tar = dir.join(out);
    run(Command::new("/usr/bin/tar")
        .current_dir(dir)
        .arg("-cf")
        .arg(&tar)
        .args(args));
    let layer = TarLayer::open(&tar).unwrap_or_else(|e| panic!("{e}"));
    (tar, layer)
}

/// Hand-made archives: every header is written as given, checksummed, nothing normalised.
struct Tb(tar::Builder<Vec<u8>>);

impl Tb {
    fn new() -> Tb {
        Tb(tar::Builder::new(Vec::new()))
    }

    fn raw(&mut self, ty: EntryType, path: &[u8], data: &[u8], f: impl FnOnce(&mut Header)) {
        let mut h = Header::new_ustar();
        assert!(path.len() <= 100);
        h.as_old_mut().name[..path.len()].copy_from_slice(path);
        h.set_entry_type(ty);
        h.set_mode(if ty == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1000);
        h.set_size(data.len() as u64);
        f(&mut h);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
    }

    fn file(&mut self, path: &str, data: &str) -> &mut Tb {
        self.raw(EntryType::Regular, path.as_bytes(), data.as_bytes(), |_| {});
        self
    }

    fn dir(&mut self, path: &str, mode: u32) -> &mut Tb {
        self.raw(EntryType::Directory, path.as_bytes(), b"", |h| {
            h.set_mode(mode)
        });
        self
    }

    fn link(&mut self, ty: EntryType, path: &str, target: &str) -> &mut Tb {
        self.raw(ty, path.as_bytes(), b"", |h| {
            h.set_link_name_literal(target).unwrap()
        });
        self
    }

    fn dev(&mut self, ty: EntryType, path: &str, major: u32, minor: u32) -> &mut Tb {
        self.raw(ty, path.as_bytes(), b"", |h| {
            h.set_device_major(major).unwrap();
            h.set_device_minor(minor).unwrap();
        });
        self
    }

    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Tb {
        self.0
            .append_pax_extensions(records.iter().copied())
            .unwrap();
        self
    }

    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }

    fn open(self) -> (TempDir, TarLayer) {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("layer.tar");
        fs::write(&path, self.bytes()).unwrap();
        let layer = TarLayer::open(&path).unwrap_or_else(|e| panic!("{e}"));
        (dir, layer)
    }
}

/// Writes the 100k-entry tar the scale measurements use.
fn write_100k_tar(path: &Path) {
    use std::io::Write;
    let mut b = tar::Builder::new(std::io::BufWriter::new(fs::File::create(path).unwrap()));
    for i in 0..100_000u32 {
        let mut h = Header::new_gnu();
        let data = format!("file number {i}\n");
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        let p = format!(
            "usr/share/pkg{:03}/sub{:02}/file-{i:06}.txt",
            i % 500,
            i % 37
        );
        b.append_data(&mut h, p, data.as_bytes()).unwrap();
    }
    b.into_inner().unwrap().flush().unwrap();
}

fn open_bytes(bytes: &[u8]) -> Result<TarLayer, TarError> {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("x.tar");
    fs::write(&path, bytes).unwrap();
    TarLayer::open(&path)
}

fn set_mode(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}
