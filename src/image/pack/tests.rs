//! Packing trees and reading them back with the `tar` crate and with our own tar index: every
//! kind, mode, owner, time, xattr and hard link survives, for each compression; the bytes are
//! the same every time; the overlayfs conversions of [`PackMode::Diff`] and its refusals.

use super::*;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use rustix::fs::{CWD, Timespec, Timestamps, XattrFlags};

use crate::layer::blob::LayerSource;
use crate::layer::{self, Kind, LayerOptions};

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// What a reader says about one path.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Obj {
    kind: char,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: (i64, u32),
    data: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    rdev: Option<(u32, u32)>,
    xattrs: BTreeMap<String, Vec<u8>>,
}

/// A tree as seen by one reader: paths in the order met, the objects, and the hard-link
/// groups (paths sharing one inode, two or more).
#[derive(Debug, Default)]
struct Seen {
    order: Vec<String>,
    objs: BTreeMap<String, Obj>,
    links: BTreeSet<BTreeSet<String>>,
}

const NAME_150: &str = "n123456789n123456789n123456789n123456789n123456789n123456789n123456789n123456789n123456789n123456789n123456789n123456789n123456789n123456789n123456789";

fn set_mtime(p: &Path, secs: i64, nsec: i64) {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: nsec,
    };
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::utimensat(CWD, p, &times, AtFlags::SYMLINK_NOFOLLOW)
        .unwrap_or_else(|e| panic!("utimensat {}: {e}", p.display()));
}

fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(p, name, value, XattrFlags::empty())
        .unwrap_or_else(|e| panic!("lsetxattr {} {name}: {e}", p.display()));
}

fn mknod(p: &Path, kind: FileType, mode: u32, major: u32, minor: u32) {
    let dev = rustix::fs::makedev(major, minor);
    rustix::fs::mknodat(CWD, p, kind, Mode::from_raw_mode(mode), dev)
        .unwrap_or_else(|e| panic!("mknod {}: {e}", p.display()));
}

/// A tree with one of everything a layer holds.
fn build_tree(root: &Path) {
    let w = |rel: &str, data: &[u8]| {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, data).unwrap();
        p
    };
    fs::create_dir(root).unwrap();
    let a = w("a.txt", b"hello\n");
    set_xattr(&a, "user.x", b"\x00bin\xffary=");
    w("empty", b"");
    let su = w("bin/su", &[0x7f, b'E', b'L', b'F', 0, 1, 2]);
    fs::set_permissions(&su, fs::Permissions::from_mode(0o4755)).unwrap();
    let big: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    w("d/e/f/big.bin", &big);
    fs::create_dir(root.join("d/empty-dir")).unwrap();
    fs::set_permissions(root.join("d/e"), fs::Permissions::from_mode(0o1777)).unwrap();
    set_xattr(&root.join("d"), "user.dir", b"yes");
    w(&format!("d/{NAME_150}"), b"long name");
    std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
    std::os::unix::fs::symlink(format!("d/{NAME_150}"), root.join("longlink")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/abs", root.join("d/dangling")).unwrap();
    let h = w("hard1", b"shared");
    fs::hard_link(&h, root.join("d/hard2")).unwrap();
    fs::hard_link(&h, root.join("zz-hard3")).unwrap();
    mknod(&root.join("fifo"), FileType::Fifo, 0o640, 0, 0);
    if is_root() {
        mknod(&root.join("null"), FileType::CharacterDevice, 0o666, 1, 3);
        mknod(&root.join("loop9"), FileType::BlockDevice, 0o660, 7, 9);
        rustix::fs::chownat(
            CWD,
            &a,
            Some(rustix::fs::Uid::from_raw(1234)),
            Some(rustix::fs::Gid::from_raw(5678)),
            AtFlags::empty(),
        )
        .unwrap();
        // Beyond what the 8-byte ustar field holds: PAX uid.
        rustix::fs::chownat(
            CWD,
            root.join("empty"),
            Some(rustix::fs::Uid::from_raw(3_000_000)),
            None,
            AtFlags::empty(),
        )
        .unwrap();
    }
    set_mtime(&a, 1_600_000_000, 123_456_789);
    set_mtime(&root.join("link"), 1_500_000_000, 5);
    set_mtime(&su, 1_234_567_890, 0);
    for d in ["d/e/f", "d/e", "d", "bin"] {
        set_mtime(&root.join(d), 1_400_000_000, 987_000_000);
    }
}

fn xattrs_on_disk(p: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let list = sized(|b| rustix::fs::llistxattr(p, b)).unwrap();
    for n in list.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let n = std::str::from_utf8(n).unwrap();
        // The tree's filesystem may add its own (e.g. security.selinux); they are packed too.
        let v = sized(|b| rustix::fs::lgetxattr(p, n, b)).unwrap();
        out.insert(n.to_string(), v);
    }
    out
}

/// The source tree as lstat sees it, walked in the order the layer must follow.
fn read_source(root: &Path) -> Seen {
    fn walk(
        root: &Path,
        prefix: &str,
        seen: &mut Seen,
        inos: &mut BTreeMap<u64, BTreeSet<String>>,
    ) {
        let dir = if prefix.is_empty() {
            root.to_path_buf()
        } else {
            root.join(prefix)
        };
        let mut names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        for name in names {
            let rel = format!("{prefix}{name}");
            let p = root.join(&rel);
            let m = fs::symlink_metadata(&p).unwrap();
            let ft = m.file_type();
            use std::os::unix::fs::FileTypeExt;
            let kind = match () {
                _ if ft.is_dir() => 'd',
                _ if ft.is_file() => 'f',
                _ if ft.is_symlink() => 'l',
                _ if ft.is_fifo() => 'p',
                _ if ft.is_char_device() => 'c',
                _ if ft.is_block_device() => 'b',
                _ => 's',
            };
            let obj = Obj {
                kind,
                mode: m.mode() & 0o7777,
                uid: u64::from(m.uid()),
                gid: u64::from(m.gid()),
                size: if kind == 'f' { m.size() } else { 0 },
                mtime: (m.mtime(), m.mtime_nsec() as u32),
                data: (kind == 'f').then(|| fs::read(&p).unwrap()),
                link: (kind == 'l').then(|| {
                    fs::read_link(&p)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes()
                }),
                rdev: matches!(kind, 'c' | 'b')
                    .then(|| (rustix::fs::major(m.rdev()), rustix::fs::minor(m.rdev()))),
                xattrs: xattrs_on_disk(&p),
            };
            if kind != 'd' {
                inos.entry(m.ino()).or_default().insert(rel.clone());
            }
            let shown = if kind == 'd' {
                format!("{rel}/")
            } else {
                rel.clone()
            };
            seen.order.push(shown);
            seen.objs.insert(rel.clone(), obj);
            if kind == 'd' {
                walk(root, &format!("{rel}/"), seen, inos);
            }
        }
    }
    let mut seen = Seen::default();
    let mut inos = BTreeMap::new();
    walk(root, "", &mut seen, &mut inos);
    seen.links = inos.into_values().filter(|g| g.len() > 1).collect();
    seen
}

/// The layer as the `tar` crate reads it (hard link entries take their target's object).
fn read_with_tar_crate(tar_bytes: &[u8]) -> Seen {
    let mut seen = Seen::default();
    let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut archive = tar::Archive::new(tar_bytes);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        seen.order.push(path.clone());
        let h = entry.header().clone();
        assert_eq!(h.username_bytes(), Some(&b""[..]), "{path}: uname");
        assert_eq!(h.groupname_bytes(), Some(&b""[..]), "{path}: gname");
        let mut mtime = (h.mtime().unwrap() as i64, 0);
        let mut xattrs = BTreeMap::new();
        let mut uid = h.uid().unwrap();
        if let Some(pax) = entry.pax_extensions().unwrap() {
            for ext in pax {
                let ext = ext.unwrap();
                let key = ext.key().unwrap();
                let value = ext.value_bytes();
                if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    xattrs.insert(name.to_string(), value.to_vec());
                } else if key == "mtime" {
                    let v = ext.value().unwrap();
                    let (s, ns) = v.split_once('.').unwrap_or((v, "0"));
                    let ns = format!("{ns:0<9}");
                    mtime = (s.parse().unwrap(), ns.parse().unwrap());
                } else if key == "uid" {
                    uid = ext.value().unwrap().parse().unwrap();
                } else {
                    assert!(
                        ["path", "linkpath", "gid", "size"].contains(&key),
                        "{path}: unexpected PAX key {key}"
                    );
                }
            }
        }
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        let rel = path.trim_end_matches('/').to_string();
        let kind = match h.entry_type() {
            tar::EntryType::Link => {
                let target = String::from_utf8(link.unwrap()).unwrap();
                let obj = seen.objs[&target].clone();
                seen.objs.insert(rel.clone(), obj);
                groups
                    .entry(target.clone())
                    .or_insert_with(|| [target].into())
                    .insert(rel);
                continue;
            }
            tar::EntryType::Regular => 'f',
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Fifo => 'p',
            tar::EntryType::Char => 'c',
            tar::EntryType::Block => 'b',
            t => panic!("{path}: unexpected entry type {t:?}"),
        };
        assert_eq!(
            kind == 'd',
            path.ends_with('/'),
            "{path}: trailing slash iff directory"
        );
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        let obj = Obj {
            kind,
            mode: h.mode().unwrap(),
            uid,
            gid: h.gid().unwrap(),
            size: entry.size(),
            mtime,
            data: (kind == 'f').then_some(data),
            link: (kind == 'l').then(|| link.unwrap()),
            rdev: matches!(kind, 'c' | 'b').then(|| {
                (
                    h.device_major().unwrap().unwrap(),
                    h.device_minor().unwrap().unwrap(),
                )
            }),
            xattrs,
        };
        seen.objs.insert(rel, obj);
    }
    seen.links = groups.into_values().collect();
    seen
}

/// The layer as our own tar index reads it (through the `Layer` trait), in sorted preorder.
fn read_with_layer(file: &Path) -> Seen {
    fn walk(
        l: &dyn layer::Layer,
        dir: u64,
        prefix: &str,
        seen: &mut Seen,
        inos: &mut BTreeMap<u64, BTreeSet<String>>,
    ) {
        let mut ents = l.read_dir(dir).unwrap();
        ents.sort_by(|a, b| a.name.cmp(&b.name));
        for de in ents {
            let name = de.name.to_str().unwrap();
            let rel = format!("{prefix}{name}");
            let e = l.lookup(dir, &de.name).unwrap().unwrap();
            let a = &e.attr;
            let kind = match a.kind {
                Kind::File => 'f',
                Kind::Dir => 'd',
                Kind::Symlink => 'l',
                Kind::Fifo => 'p',
                Kind::CharDev => 'c',
                Kind::BlockDev => 'b',
                k => panic!("{rel}: unexpected kind {k:?}"),
            };
            let data = (kind == 'f').then(|| {
                let f = l.open(e.node).unwrap();
                let mut buf = vec![0; a.size as usize + 10];
                let n = f.read_at(&mut buf, 0).unwrap();
                buf.truncate(n);
                buf
            });
            let mut xattrs = BTreeMap::new();
            for n in l.list_xattrs(e.node).unwrap() {
                let v = l.get_xattr(e.node, &n).unwrap().unwrap();
                xattrs.insert(n.into_string().unwrap(), v);
            }
            let obj = Obj {
                kind,
                mode: a.perm,
                uid: u64::from(a.uid),
                gid: u64::from(a.gid),
                size: if kind == 'f' { a.size } else { 0 },
                mtime: (a.mtime.sec, a.mtime.nsec),
                data,
                link: (kind == 'l').then(|| l.readlink(e.node).unwrap()),
                rdev: matches!(kind, 'c' | 'b')
                    .then(|| (rustix::fs::major(a.rdev), rustix::fs::minor(a.rdev))),
                xattrs,
            };
            if kind != 'd' {
                inos.entry(a.ino).or_default().insert(rel.clone());
            }
            seen.order.push(if kind == 'd' {
                format!("{rel}/")
            } else {
                rel.clone()
            });
            seen.objs.insert(rel.clone(), obj);
            if kind == 'd' {
                walk(l, e.node, &format!("{rel}/"), seen, inos);
            }
        }
    }
    let l = layer::open(
        &LayerSource::Path(file.to_path_buf()),
        &LayerOptions::default(),
    )
    .unwrap();
    let mut seen = Seen::default();
    let mut inos = BTreeMap::new();
    walk(&*l, l.root().unwrap().node, "", &mut seen, &mut inos);
    seen.links = inos.into_values().filter(|g| g.len() > 1).collect();
    seen
}

fn assert_same(what: &str, expected: &Seen, actual: &Seen) {
    assert_eq!(expected.order, actual.order, "{what}: entry order");
    for (path, e) in &expected.objs {
        assert_eq!(Some(e), actual.objs.get(path), "{what}: {path}");
    }
    assert_eq!(
        expected.objs.len(),
        actual.objs.len(),
        "{what}: object count"
    );
    assert_eq!(expected.links, actual.links, "{what}: hard link groups");
}

fn sha256(data: &[u8]) -> Digest {
    Digest::from_sha256(&Sha256::digest(data))
}

fn decompress(data: &[u8], compression: Compression) -> Vec<u8> {
    match compression {
        Compression::Gzip => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(data)
                .read_to_end(&mut out)
                .unwrap();
            out
        }
        Compression::Zstd => zstd::decode_all(data).unwrap(),
        _ => data.to_vec(),
    }
}

#[test]
fn round_trip_through_both_readers_for_every_compression() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tree");
    build_tree(&root);
    let source = read_source(&root);
    // The tree is what the test means it to be (not just whatever the walk found).
    assert_eq!(source.objs["bin/su"].mode, 0o4755);
    assert_eq!(source.objs["a.txt"].mtime, (1_600_000_000, 123_456_789));
    assert_eq!(source.objs["a.txt"].xattrs["user.x"], b"\x00bin\xffary=");
    assert!(source.objs.contains_key(&format!("d/{NAME_150}")));
    assert_eq!(source.links.len(), 1);
    assert!(source.order.len() >= 17, "{:?}", source.order);

    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let what = format!("{compression:?}");
        let mut bytes = Vec::new();
        let packed = pack(&root, PackMode::Flat, compression, &mut bytes).unwrap();
        assert_eq!(packed.size, bytes.len() as u64, "{what}");
        assert_eq!(packed.digest, sha256(&bytes), "{what}");
        let tar_bytes = decompress(&bytes, compression);
        assert_eq!(packed.tar_size, tar_bytes.len() as u64, "{what}");
        assert_eq!(packed.diff_id, sha256(&tar_bytes), "{what}");
        assert_eq!(tar_bytes.len() % BLOCK, 0);
        assert!(tar_bytes.ends_with(&[0; 2 * BLOCK]));
        if compression == Compression::None {
            assert_eq!(packed.digest, packed.diff_id);
            assert_eq!(packed.media_type, "application/vnd.oci.image.layer.v1.tar");
        } else {
            assert!(
                packed
                    .media_type
                    .ends_with(if compression == Compression::Gzip {
                        "+gzip"
                    } else {
                        "+zstd"
                    })
            );
        }

        let mut again = Vec::new();
        let second = pack(&root, PackMode::Flat, compression, &mut again).unwrap();
        assert!(bytes == again, "{what}: packing twice gave different bytes");
        assert_eq!(packed, second);

        assert_same(
            &format!("{what}, tar crate"),
            &source,
            &read_with_tar_crate(&tar_bytes),
        );
        let file = tmp.path().join(format!("layer-{what}"));
        fs::write(&file, &bytes).unwrap();
        assert_same(
            &format!("{what}, our index"),
            &source,
            &read_with_layer(&file),
        );
    }
}

/// A PAX record's length, not a newline, ends it: values may hold newlines (the `tar` crate
/// splits on them, which is why this is checked with our own index only).
#[test]
fn xattr_values_with_newlines_survive() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tree");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("f"), b"x").unwrap();
    set_xattr(&root.join("f"), "user.nl", b"a\nb=c\n\n");
    let file = tmp.path().join("layer.tar");
    pack(
        &root,
        PackMode::Flat,
        Compression::None,
        fs::File::create(&file).unwrap(),
    )
    .unwrap();
    assert_same("newlines", &read_source(&root), &read_with_layer(&file));
}

#[test]
fn gzip_header_has_no_time_and_no_name() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("f"), b"x").unwrap();
    let mut bytes = Vec::new();
    pack(tmp.path(), PackMode::Flat, Compression::Gzip, &mut bytes).unwrap();
    assert_eq!(&bytes[..3], &[0x1f, 0x8b, 8]);
    assert_eq!(bytes[3], 0, "flags: no name, no comment, no extra");
    assert_eq!(&bytes[4..8], &[0, 0, 0, 0], "mtime");
    assert_eq!(bytes[9], 255, "OS unknown");
}

#[test]
fn pax_records_count_their_own_length() {
    for len in 0..1200 {
        let mut out = Vec::new();
        pax_record(&mut out, "SCHILY.xattr.user.k", &vec![b'v'; len]);
        let text = String::from_utf8(out.clone()).unwrap();
        let (n, _) = text.split_once(' ').unwrap();
        assert_eq!(
            n.parse::<usize>().unwrap(),
            out.len(),
            "value of {len} bytes"
        );
        assert!(out.ends_with(b"\n"));
    }
}

#[test]
fn pax_times() {
    assert_eq!(pax_time(5, 0), "5");
    assert_eq!(pax_time(5, 120_000_000), "5.12");
    assert_eq!(pax_time(1_600_000_000, 1), "1600000000.000000001");
    assert_eq!(pax_time(-2, 500_000_000), "-1.5");
    assert_eq!(pax_time(-3, 0), "-3");
}

#[test]
fn headers_checksum_and_octal_fields() {
    let mut f = [0u8; 8];
    assert!(octal(&mut f, 0o755));
    assert_eq!(&f, b"0000755\0");
    assert!(!octal(&mut f, 0o10000000));
    let mut block = [0u8; BLOCK];
    block[..5].copy_from_slice(b"hello");
    checksum(&mut block);
    let sum: u32 = b"hello".iter().map(|&b| u32::from(b)).sum::<u32>() + 8 * u32::from(b' ');
    assert_eq!(&block[148..156], format!("{sum:06o}\0 ").as_bytes());
}

#[test]
fn big_size_and_negative_mtime_go_to_pax() {
    let st = {
        let tmp = tempfile::tempdir().unwrap();
        rustix::fs::stat(tmp.path()).unwrap()
    };
    let mut h = Header::new(b"f", b'0', &st);
    h.size = 9 << 30;
    h.mtime = (-1, 0);
    let mut out = Vec::new();
    h.write(&mut out).unwrap();
    let mut bytes = out.clone();
    bytes.resize(bytes.len() + 2 * BLOCK, 0);
    let mut ar = tar::Archive::new(&bytes[..]);
    let mut e = ar.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(e.size(), 9 << 30);
    let keys: Vec<String> = e
        .pax_extensions()
        .unwrap()
        .unwrap()
        .map(|x| {
            format!(
                "{}={}",
                x.as_ref().unwrap().key().unwrap(),
                x.unwrap().value().unwrap()
            )
        })
        .collect();
    assert_eq!(
        keys,
        [format!("size={}", 9u64 << 30), "mtime=-1".to_string()]
    );
}

/// A hand-made overlayfs upper: what the kernel leaves (0/0 devices, opaque xattrs, its own
/// bookkeeping xattrs) becomes OCI whiteouts and markers.
#[test]
fn diff_mode_converts_overlayfs_whiteouts_and_opaque_dirs() {
    if !is_root() {
        eprintln!("SKIPPED: needs root (mknod, trusted.* xattrs)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let up = tmp.path();
    fs::create_dir_all(up.join("etc/opq")).unwrap();
    fs::create_dir(up.join("uopq")).unwrap();
    fs::write(up.join("etc/opq/new"), b"n").unwrap();
    fs::write(up.join("etc/copied"), b"c").unwrap();
    mknod(&up.join("etc/gone"), FileType::CharacterDevice, 0o644, 0, 0);
    // The kernel links all whiteouts to one inode: they are not hard links of each other.
    fs::hard_link(up.join("etc/gone"), up.join("gone-too")).unwrap();
    set_xattr(&up.join("etc/opq"), "trusted.overlay.opaque", b"y");
    set_xattr(&up.join("uopq"), "user.overlay.opaque", b"y");
    set_xattr(&up.join("etc"), "trusted.overlay.opaque", b"x");
    set_xattr(
        &up.join("etc/copied"),
        "trusted.overlay.origin",
        b"\x00\x01",
    );
    set_xattr(&up.join("etc/copied"), "user.keep", b"k");
    fs::set_permissions(up.join("etc/opq"), fs::Permissions::from_mode(0o2750)).unwrap();

    let mut flat = Vec::new();
    pack(up, PackMode::Flat, Compression::None, &mut flat).unwrap();
    let flat = read_with_tar_crate(&flat);
    assert_eq!(
        flat.objs["gone-too"].kind, 'c',
        "Flat mode converts nothing"
    );
    assert!(
        flat.objs["etc/opq"]
            .xattrs
            .contains_key("trusted.overlay.opaque")
    );

    let mut bytes = Vec::new();
    pack(up, PackMode::Diff, Compression::None, &mut bytes).unwrap();
    let seen = read_with_tar_crate(&bytes);
    assert_eq!(
        seen.order,
        [
            "etc/",
            "etc/copied",
            "etc/.wh.gone",
            "etc/opq/",
            "etc/opq/.wh..wh..opq",
            "etc/opq/new",
            ".wh.gone-too",
            "uopq/",
            "uopq/.wh..wh..opq",
        ]
    );
    assert!(seen.links.is_empty(), "{:?}", seen.links);
    let wh = &seen.objs["etc/.wh.gone"];
    assert_eq!((wh.kind, wh.mode, wh.size), ('f', 0o600, 0));
    let marker = &seen.objs["etc/opq/.wh..wh..opq"];
    assert_eq!((marker.kind, marker.mode, marker.size), ('f', 0o750, 0));
    for (path, obj) in &seen.objs {
        assert!(
            !obj.xattrs.keys().any(|k| k.contains(".overlay.")),
            "{path}: {:?}",
            obj.xattrs
        );
    }
    assert_eq!(
        seen.objs["etc/copied"].xattrs.keys().collect::<Vec<_>>(),
        ["user.keep"]
    );

    // And our own reader applies it as a layer: whiteouts and opaque directories.
    let file = tmp.path().join("layer.tar");
    fs::write(&file, &bytes).unwrap();
    let l = layer::open(&LayerSource::Path(file), &LayerOptions::default()).unwrap();
    let root = l.root().unwrap().node;
    let etc = l.lookup(root, OsStr::new("etc")).unwrap().unwrap();
    assert!(!etc.opaque, "opaque=x is not opaque");
    let gone = l.lookup(etc.node, OsStr::new("gone")).unwrap().unwrap();
    assert_eq!(gone.attr.kind, Kind::Whiteout);
    assert!(
        l.lookup(etc.node, OsStr::new("opq"))
            .unwrap()
            .unwrap()
            .opaque
    );
    assert!(l.lookup(root, OsStr::new("uopq")).unwrap().unwrap().opaque);
}

#[test]
fn diff_mode_refuses_redirect_and_metacopy() {
    let root = is_root();
    let prefix = if root {
        "trusted.overlay."
    } else {
        "user.overlay."
    };
    for (what, on_dir) in [("redirect", true), ("metacopy", false)] {
        let tmp = tempfile::tempdir().unwrap();
        let up = tmp.path().join("upper");
        fs::create_dir_all(up.join("a/moved")).unwrap();
        fs::write(up.join("a/meta"), b"").unwrap();
        let target = if on_dir {
            up.join("a/moved")
        } else {
            up.join("a/meta")
        };
        set_xattr(&target, &format!("{prefix}{what}"), b"/old");
        let err = pack(&up, PackMode::Diff, Compression::None, io::sink()).unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.path, target, "{msg}");
        assert!(msg.starts_with(&format!("{}: ", target.display())), "{msg}");
        assert!(msg.contains(&format!("{prefix}{what}")), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
        // Flat mode takes the tree as it is.
        pack(&up, PackMode::Flat, Compression::None, io::sink()).unwrap();
    }
}

#[test]
fn whiteout_names_and_bad_inputs_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir(tmp.path().join("d")).unwrap();
    fs::write(tmp.path().join("d/.wh.x"), b"").unwrap();
    for mode in [PackMode::Flat, PackMode::Diff] {
        let err = pack(tmp.path(), mode, Compression::None, io::sink()).unwrap_err();
        assert_eq!(err.path, tmp.path().join("d/.wh.x"));
        assert!(err.to_string().contains("reserved for whiteouts"), "{err}");
    }
    let missing = tmp.path().join("missing");
    let err = pack(&missing, PackMode::Flat, Compression::None, io::sink()).unwrap_err();
    assert_eq!(err.path, missing);
    let err = pack(tmp.path(), PackMode::Flat, Compression::Detect, io::sink()).unwrap_err();
    assert!(matches!(err.cause, PackCause::NoCompression), "{err}");
}

#[test]
fn sockets_are_left_out_and_an_empty_tree_is_an_empty_tar() {
    let tmp = tempfile::tempdir().unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(tmp.path().join("sock")).unwrap();
    let mut bytes = Vec::new();
    let packed = pack(tmp.path(), PackMode::Flat, Compression::None, &mut bytes).unwrap();
    assert_eq!(bytes, vec![0; 2 * BLOCK]);
    assert_eq!(packed.tar_size, 1024);
}

/// Write errors name the tree and say it was the output that failed.
#[test]
fn output_errors_are_reported() {
    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from_raw_os_error(libc::ENOSPC))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("f"), vec![1u8; 1 << 20]).unwrap();
    for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let err = pack(tmp.path(), PackMode::Flat, c, Full).unwrap_err();
        assert!(matches!(err.cause, PackCause::Output(_)), "{c:?}: {err}");
        assert!(err.to_string().contains("writing the layer"), "{err}");
    }
}
