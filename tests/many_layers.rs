//! Deep stacks: 1 200 lower layers, past kernel overlayfs's limit of 500, mounted through the
//! fuse-overlayfs spelling (`-o lowerdir=` with 1 200 paths) and through `--layer`. Every
//! layer adds a file, overrides a shared one and some delete an earlier layer's file; the
//! merged tree must be exactly what applying the layers in order gives.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::fs;
use std::time::Instant;

const LAYERS: usize = 1200;

#[test]
fn twelve_hundred_layers_merge_in_order() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    // Bottom first. Layer i: `own/f{i}`, `shared` saying i, and every 100th layer deletes
    // the previous layer's file with an OCI whiteout; every 300th makes `deep` opaque.
    let mut stack = Vec::with_capacity(LAYERS);
    for i in 0..LAYERS {
        let mut entries = vec![
            file(&format!("own/f{i}"), format!("{i}\n")),
            file("shared", format!("{i}\n")),
            file(&format!("deep/d{i}"), "d\n"),
        ];
        if i % 100 == 99 {
            entries.push(whiteout(&format!("own/f{}", i - 1)));
        }
        if i % 300 == 0 && i > 0 {
            entries.push(opaque("deep"));
        }
        stack.push(entries);
    }
    let layers = write_stack(tmp.path(), Form::OciDir, &stack);

    let mut want_own: BTreeSet<String> = BTreeSet::new();
    let mut want_deep: BTreeSet<String> = BTreeSet::new();
    for i in 0..LAYERS {
        want_own.insert(format!("f{i}"));
        if i % 100 == 99 {
            want_own.remove(&format!("f{}", i - 1));
        }
        if i % 300 == 0 && i > 0 {
            want_deep.clear();
        }
        want_deep.insert(format!("d{i}"));
    }

    let started = Instant::now();
    let um = UnionMount::lowerdir(&layers, &mountpoint(tmp.path(), "mnt"));
    let mounted_in = started.elapsed();
    let started = Instant::now();
    assert_eq!(
        fs::read_to_string(um.join("shared")).expect("shared"),
        format!("{}\n", LAYERS - 1),
        "the top layer wins"
    );
    let own: BTreeSet<String> = names_of(&um.join("own")).into_iter().collect();
    assert_eq!(own.len(), want_own.len());
    assert!(
        own == want_own,
        "own/ differs from the layers applied in order"
    );
    let deep: BTreeSet<String> = names_of(&um.join("deep")).into_iter().collect();
    assert!(
        deep == want_deep,
        "deep/ must start over at the last opaque layer"
    );
    assert_eq!(fs::read_to_string(um.join("own/f0")).expect("f0"), "0\n");
    assert!(!um.join("own/f98").exists(), "deleted by layer 99");
    let walked = started.elapsed();
    eprintln!(
        "{LAYERS} layers: mount {:.0} ms, lookups and listings {:.0} ms",
        mounted_in.as_secs_f64() * 1e3,
        walked.as_secs_f64() * 1e3
    );
    drop(um);

    // The same stack by `--layer` (bottom first) shows the same tree.
    let um = UnionMount::layers(&layers, &mountpoint(tmp.path(), "mnt2"));
    let own2: BTreeSet<String> = names_of(&um.join("own")).into_iter().collect();
    assert!(own2 == want_own);
}
