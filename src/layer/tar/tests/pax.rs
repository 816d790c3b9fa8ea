//! PAX records split by their length prefix: values holding newlines (binary xattrs,
//! `security.capability`), values that look like records, and malformed lengths.

use super::*;
use crate::layer::Timespec;

fn xattr(l: &TarLayer, path: &str, name: &str) -> Option<Vec<u8>> {
    l.get_xattr(must(l, path).node, OsStr::new(name)).unwrap()
}

#[test]
fn xattr_values_may_hold_newlines() {
    let mut cap = vec![0u8; 20];
    cap[0] = 1;
    cap[3] = 2;
    cap[4] = 0x0a; // CAP_DAC_OVERRIDE | CAP_FOWNER: a newline byte
    let mut t = Tb::new();
    t.pax(&[
        ("SCHILY.xattr.user.nl", b"line one\nline two\n"),
        ("SCHILY.xattr.user.bin", &[0, 10, 255, 0, 10]),
        ("SCHILY.xattr.security.capability", &cap),
        ("mtime", b"7.25"),
    ])
    .file("nl", "x");
    t.pax(&[("SCHILY.xattr.user.only-newline", b"\n")])
        .dir("dir", 0o755);
    t.file("after", "still here");
    let (_dir, l) = t.open();
    assert_eq!(
        xattr(&l, "nl", "user.nl").as_deref(),
        Some(&b"line one\nline two\n"[..])
    );
    assert_eq!(
        xattr(&l, "nl", "user.bin").as_deref(),
        Some(&[0, 10, 255, 0, 10][..])
    );
    assert_eq!(xattr(&l, "nl", "security.capability"), Some(cap));
    // A record after the one with newlines still applies.
    assert_eq!(
        must(&l, "nl").attr.mtime,
        Timespec {
            sec: 7,
            nsec: 250_000_000
        }
    );
    assert_eq!(
        xattr(&l, "dir", "user.only-newline").as_deref(),
        Some(&b"\n"[..])
    );
    assert_eq!(read(&l, "nl"), b"x");
    assert_eq!(read(&l, "after"), b"still here");
    assert_eq!(names(&l, ""), ["after", "dir", "nl"]);
}

#[test]
fn values_that_look_like_records_are_values() {
    // Split on newlines, each value holds a well-formed `path`/`linkpath`/`uid` record of its
    // own ("10 path=x" is ten bytes with its newline).
    let mut t = Tb::new();
    t.pax(&[("SCHILY.xattr.user.a", b"a\n10 path=x\n")])
        .file("real", "r");
    t.pax(&[
        ("SCHILY.xattr.user.a", b"a\n13 path=evil\n"),
        ("path", b"long/real/path"),
    ])
    .file("short", "s");
    t.pax(&[("SCHILY.xattr.user.a", b"\n14 linkpath=y\n")])
        .link(EntryType::Symlink, "sym", "target");
    t.pax(&[
        ("SCHILY.xattr.user.a", b"\n"),
        ("uid", b"1234"),
        ("gid", b"99"),
    ])
    .file("owned", "o");
    t.pax(&[("SCHILY.xattr.user.a", b"q\n8 uid=0\n")]);
    t.raw(EntryType::Regular, b"notroot", b"n", |h| {
        h.set_uid(77);
        h.set_gid(88);
    });
    let (_dir, l) = t.open();
    assert_eq!(names(&l, ""), ["long", "notroot", "owned", "real", "sym"]);
    assert_eq!(
        xattr(&l, "real", "user.a").as_deref(),
        Some(&b"a\n10 path=x\n"[..])
    );
    assert_eq!(read(&l, "long/real/path"), b"s");
    assert_eq!(l.readlink(must(&l, "sym").node).unwrap(), b"target");
    let owned = must(&l, "owned");
    assert_eq!((owned.attr.uid, owned.attr.gid), (1234, 99));
    let n = must(&l, "notroot");
    assert_eq!((n.attr.uid, n.attr.gid), (77, 88));
}

#[test]
fn empty_values_fall_back_to_the_header() {
    let mut t = Tb::new();
    t.pax(&[("path", b"elsewhere"), ("path", b""), ("mtime", b"")])
        .file("here", "h");
    let (_dir, l) = t.open();
    assert_eq!(names(&l, ""), ["here"]);
    assert_eq!(must(&l, "here").attr.mtime.sec, 1000);
}

#[test]
fn size_records_the_reader_cannot_follow_are_errors() {
    // The header says 0 bytes, PAX says 3 (as writers do for sizes the field cannot hold);
    // after a value with a newline the crate no longer sees the size record.
    let mut t = Tb::new();
    t.pax(&[("SCHILY.xattr.user.a", b"\n"), ("size", b"3")]);
    t.raw(EntryType::Regular, b"f", b"abc", |h| h.set_size(0));
    t.file("after", "x");
    let e = open_bytes(&t.bytes()).expect_err("accepted");
    assert!(e.to_string().contains("PAX size"), "{e}");
    // The same size before the newline value is fine.
    let mut t = Tb::new();
    t.pax(&[("size", b"3"), ("SCHILY.xattr.user.a", b"\n")]);
    t.raw(EntryType::Regular, b"f", b"abc", |h| h.set_size(0));
    t.file("after", "x");
    let (_dir, l) = t.open();
    assert_eq!(read(&l, "f"), b"abc");
    assert_eq!(read(&l, "after"), b"x");
}

/// An archive whose only PAX header holds `data` as is.
fn with_pax_data(data: &[u8]) -> Vec<u8> {
    let mut t = Tb::new();
    t.raw(EntryType::XHeader, b"pax", data, |_| {});
    t.file("f", "x");
    t.bytes()
}

#[test]
fn malformed_records_are_errors() {
    let cases: &[(&[u8], &str)] = &[
        (b"abc key=v\n", "not a number"),
        (b"-8 key=v\n", "not a number"),
        (b"8key=v\nx\n", "not a number"),
        (b"3 k=v\n", "shorter than"),
        (b"0 \n", "shorter than"),
        (b"99 mtime=1\n", "runs past"),
        (b"99999999999999999999999 k=v\n", "too large"),
        (b"8 kv\nxx\n", "no `=`"),
        (b"8 =vvvv\n", "empty key"),
        (b"6 k=vX", "newline"),
        (b"6 k=v\n7 k=vX", "runs past"),
        (b"6 k=v\n6 k=vX", "newline"),
        (b"6 k=v\n\n", "not a number"),
        (b"6 k=v\n\0x", "not a number"),
        (b"11 mtime=x\n", "mtime"),
        (b"9 uid=-1\n", "uid"),
    ];
    for &(data, want) in cases {
        let msg = match open_bytes(&with_pax_data(data)) {
            Ok(_) => panic!("{:?} accepted", String::from_utf8_lossy(data)),
            Err(e) => e.to_string(),
        };
        assert!(
            msg.contains(want) && msg.contains("PAX") && msg.contains("`f`"),
            "{:?}: {msg}",
            String::from_utf8_lossy(data)
        );
        assert!(!msg.contains('\n'), "{msg}");
    }
    // Padding after the last record is not a record.
    let l = open_bytes(&with_pax_data(b"11 mtime=5\n\0\0\0")).unwrap();
    assert_eq!(must(&l, "f").attr.mtime.sec, 5);
}

#[test]
fn oversized_pax_headers_are_errors() {
    let value = vec![b'v'; 1 << 20];
    let mut t = Tb::new();
    t.pax(&[("comment", &value)]).file("f", "x");
    let e = open_bytes(&t.bytes()).expect_err("accepted").to_string();
    assert!(e.contains("PAX header of") && e.contains("limit"), "{e}");
}

#[test]
fn random_pax_data_never_panics() {
    let alphabet = b"0123456789 =\n\0kpathsizeuidmtimeSCHILY.xattr.a";
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..3000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 40) as usize;
        let data: Vec<u8> = (0..len)
            .map(|i| alphabet[((seed >> (i % 50)) as usize + i * 7) % alphabet.len()])
            .collect();
        if let Ok(l) = open_bytes(&with_pax_data(&data)) {
            for e in l.read_dir(l.root().unwrap().node).unwrap() {
                l.lookup(l.root().unwrap().node, &e.name).unwrap();
            }
        }
    }
}
