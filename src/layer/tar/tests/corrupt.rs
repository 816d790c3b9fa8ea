//! Broken archives: truncated, bad checksums, garbage, fuzzed fields. Always an error or a
//! usable layer, never a panic.

use super::*;

fn sample_archive() -> Vec<u8> {
    let mut t = Tb::new();
    t.pax(&[("mtime", b"5.5")])
        .file("a", &"A".repeat(1000))
        .dir("d", 0o755)
        .file("d/b", "bbbb");
    let mut b = t.0;
    let mut h = Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    b.append_data(&mut h, "n".repeat(150), &b"xyz"[..]).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn truncated_archives_are_errors() {
    let good = sample_archive();
    if let Err(e) = open_bytes(&good) {
        panic!("{e}");
    }
    let mut cuts: Vec<usize> = (0..good.len()).step_by(512).collect();
    cuts.extend([
        1,
        100,
        511,
        513,
        700,
        1100,
        1600,
        good.len() - 1024,
        good.len() - 600,
    ]);
    // Cutting only into the second of the two end blocks leaves a valid end marker.
    for cut in cuts.into_iter().filter(|&c| c < good.len() - 512) {
        match open_bytes(&good[..cut]) {
            Ok(_) => panic!("cut at {cut} of {} accepted", good.len()),
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains("x.tar: "), "{msg}");
                assert!(!msg.contains('\n'));
            }
        }
    }
    let e = open_bytes(&good[..2000]).unwrap_err().to_string();
    assert!(
        e.contains("truncated at byte 2000") && e.contains("`a`"),
        "{e}"
    );
}

#[test]
fn corrupt_archives_are_errors() {
    let good = sample_archive();
    // Every header's checksum field, flipped.
    let mut flipped = 0;
    for at in (0..good.len()).step_by(512) {
        if good[at..at + 512].iter().all(|&b| b == 0) || &good[at + 257..at + 262] != b"ustar" {
            continue;
        }
        let mut bad = good.clone();
        bad[at + 150] ^= 0x01;
        let e = open_bytes(&bad).unwrap_err();
        assert!(e.to_string().contains("checksum"), "{e}");
        flipped += 1;
    }
    assert!(flipped >= 5);

    let e = open_bytes(b"").unwrap_err().to_string();
    assert!(e.ends_with("x.tar: not a tar archive: empty file"), "{e}");
    let garbage: Vec<u8> = (0..10_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert!(
        open_bytes(&garbage)
            .unwrap_err()
            .to_string()
            .contains("not a tar archive")
    );
    assert!(open_bytes(b"short").is_err());

    // An entry whose size field claims more data than the file holds.
    let mut huge = good.clone();
    let mut h = Header::new_ustar();
    h.as_mut_bytes().copy_from_slice(&huge[..512]);
    assert_eq!(h.entry_type(), EntryType::XHeader);
    let second = 1024; // the header of "a" after the PAX block
    h.as_mut_bytes()
        .copy_from_slice(&huge[second..second + 512]);
    h.set_size(1 << 40);
    h.set_cksum();
    huge[second..second + 512].copy_from_slice(h.as_bytes());
    let e = open_bytes(&huge).unwrap_err().to_string();
    assert!(e.contains("truncated") && e.contains("`a`"), "{e}");

    // A malformed PAX record.
    let mut t = Tb::new();
    t.raw(EntryType::XHeader, b"pax", b"99 mtime=1\n", |_| {});
    t.file("f", "x");
    assert!(open_bytes(&t.bytes()).is_err());

    // Two zero blocks alone are an empty archive: just the root.
    let l = open_bytes(&[0u8; 1024]).unwrap();
    assert_eq!(l.read_dir(l.root().unwrap().node).unwrap(), vec![]);
}

#[test]
fn random_corruption_never_panics() {
    let good = sample_archive();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..2000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut bad = good.clone();
        for k in 0..(seed % 4 + 1) {
            let at = ((seed >> (8 * k)) as usize).wrapping_mul(31) % bad.len();
            bad[at] ^= (seed >> 3) as u8;
        }
        // Keep the checksums right so that the fields themselves get parsed.
        for at in (0..bad.len()).step_by(512) {
            if &bad[at + 257..at + 262] == b"ustar" {
                let mut h = Header::new_old();
                h.as_mut_bytes().copy_from_slice(&bad[at..at + 512]);
                h.set_cksum();
                bad[at..at + 512].copy_from_slice(h.as_bytes());
            }
        }
        if let Ok(l) = open_bytes(&bad) {
            // Whatever was indexed must be readable without panics.
            let mut stack = vec![l.root().unwrap().node];
            while let Some(d) = stack.pop() {
                for e in l.read_dir(d).unwrap() {
                    let entry = l.lookup(d, &e.name).unwrap().unwrap();
                    match entry.attr.kind {
                        Kind::Dir => stack.push(entry.node),
                        Kind::File => {
                            let mut buf = [0u8; 4096];
                            let _ = l.open(entry.node).unwrap().read_at(&mut buf, 0);
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

#[test]
fn errors_are_one_line() {
    let text = "this is a text file, not a tar archive\n".repeat(40);
    let e = open_bytes(text.as_bytes()).unwrap_err().to_string();
    assert!(
        e.ends_with("x.tar: not a tar archive: bad header checksum at byte 0"),
        "{e}"
    );
    let e = open_bytes(b"short").unwrap_err().to_string();
    assert!(
        e.ends_with("x.tar: not a tar archive: 5 bytes, shorter than one tar header"),
        "{e}"
    );

    // A later header whose checksum field is text: our words, not the field's bytes.
    let mut bytes = sample_archive();
    let dir_d = 1024 + 512 + 1024; // after the PAX block and `a` with its 1000 bytes
    bytes[dir_d + 148..dir_d + 156].copy_from_slice(b"ab\ncd\nef");
    let e = open_bytes(&bytes).unwrap_err().to_string();
    assert!(e.contains("bad header checksum at byte 2560"), "{e}");
    assert!(!e.contains('\n'), "{e}");

    // Names and causes from the archive are escaped.
    let mut t = Tb::new();
    t.raw(EntryType::XHeader, b"pax", b"9 k=v\n\x1b\n", |_| {});
    t.file("bad\nname\t\x07", "x");
    let e = open_bytes(&t.bytes()).unwrap_err().to_string();
    assert!(!e.contains('\n') && !e.contains('\x07'), "{e}");
    assert!(e.contains("(entry `bad\\nname\\t\\x07`)"), "{e}");

    assert_eq!(one_line("plain"), "plain");
    assert_eq!(one_line("a\nb\r\x7f\u{85}é"), "a\\nb\\x0d\\x7f\\x85é");
}

/// Regression: names no Linux filesystem can hold (a component over 255 bytes, a symlink
/// target over 4095 bytes or holding a NUL) are skipped like other unrepresentable entries.
/// Through FUSE a 4 KiB name vanished from readdir, a 300-byte one was listed but could not be
/// looked up, an 8 KiB target made readlink fail with EIO, and a NUL cut a target short.
#[test]
fn names_longer_than_the_kernel_allows_are_skipped() {
    let long = "n".repeat(256);
    let target = "t".repeat(4096);
    let mut t = Tb::new();
    t.pax(&[("path", long.as_bytes())])
        .file("x", "too long")
        .pax(&[("path", format!("d/{}", "m".repeat(255)).as_bytes())])
        .file("x", "just fits")
        .pax(&[("linkpath", target.as_bytes())])
        .link(EntryType::Symlink, "longlink", "x")
        .pax(&[("linkpath", "t".repeat(4095).as_bytes())])
        .link(EntryType::Symlink, "fits", "x")
        .pax(&[("linkpath", b"t\0u")])
        .link(EntryType::Symlink, "nul", "x")
        .file("ok", "ok");
    let (_d, l) = t.open();
    assert_eq!(names(&l, ""), ["d", "fits", "ok"]);
    assert_eq!(read(&l, &format!("d/{}", "m".repeat(255))), b"just fits");
}

/// A compressed layer that decompresses to nothing is "not a tar archive", not "truncated at
/// byte 0".
#[test]
fn a_compressed_layer_of_nothing_is_not_a_tar() {
    let dir = TempDir::new().unwrap();
    // A zstd skippable frame: valid zstd, no output.
    let mut skippable = vec![0x50, 0x2a, 0x4d, 0x18, 16, 0, 0, 0];
    skippable.extend_from_slice(&[0; 16]);
    let path = dir.path().join("empty.tar.zst");
    fs::write(&path, &skippable).unwrap();
    let source = crate::layer::blob::LayerSource::Path(path);
    let e = crate::layer::open(&source, &crate::layer::LayerOptions::default())
        .err()
        .expect("an empty stream is refused");
    assert!(e.contains("not a tar archive: no data"), "{e}");
}
