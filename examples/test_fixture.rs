//! How a test uses unionmount: describe two small layers, mount them writable, check what
//! the merged tree shows, and let the guard unmount (even if an assert fails).
//! `cargo run --example test_fixture` (as root, or with fusermount3 installed); needs the
//! `testing` feature, which this crate's own examples and tests always have.

use std::fs;

use unionmount::LayerStack;
use unionmount::testing::{Form, file, opaque, symlink, whiteout};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = std::env::temp_dir().join(format!("unionmount-fixture-{}", std::process::id()));
    let mnt = tmp.join("mnt");
    fs::create_dir_all(&mnt)?;
    {
        let mounted = LayerStack::new()
            // The base image, as a tar layer.
            .layer_from(
                &[
                    file("etc/config", "old\n"),
                    file("etc/removed", "x\n"),
                    file("var/cache/stale", "stale\n"),
                    file("usr/bin/tool", "#!/bin/sh\n").mode(0o755),
                ],
                Form::Tar,
            )?
            // A layer on top, as containers/storage keeps it in a directory.
            .layer_from(
                &[
                    file("etc/config", "new\n")
                        .owner(0, 0)
                        .mtime(1_700_000_000, 0),
                    whiteout("etc/removed"),
                    opaque("var/cache"),
                    symlink("bin", "usr/bin"),
                ],
                Form::OciDir,
            )?
            .writable(tmp.join("upper"), tmp.join("work"))
            .mount(&mnt)?;
        let m = mounted.path();
        assert_eq!(fs::read_to_string(m.join("etc/config"))?, "new\n");
        assert!(!m.join("etc/removed").exists());
        assert!(fs::read_dir(m.join("var/cache"))?.next().is_none());
        assert!(m.join("bin/tool").exists());
        fs::write(m.join("etc/written"), "by the test\n")?;
    } // unmounted here; the described layers are removed too
    assert!(tmp.join("upper/etc/written").exists());
    fs::remove_dir_all(&tmp)?;
    println!("ok");
    Ok(())
}
