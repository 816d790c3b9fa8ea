//! How a test uses unionmount: build two small layers in a temp dir, mount them writable,
//! check what the merged tree shows, and let the guard unmount (even if an assert fails).
//! `cargo run --example test_fixture` (as root, or with fusermount3 installed).

use std::fs;

use unionmount::LayerStack;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = std::env::temp_dir().join(format!("unionmount-fixture-{}", std::process::id()));
    let (base, top, mnt) = (tmp.join("base"), tmp.join("top"), tmp.join("mnt"));
    fs::create_dir_all(base.join("etc"))?;
    fs::create_dir_all(top.join("etc"))?;
    fs::create_dir_all(&mnt)?;
    fs::write(base.join("etc/config"), "old\n")?;
    fs::write(base.join("etc/removed"), "x\n")?;
    fs::write(top.join("etc/config"), "new\n")?;
    fs::write(top.join("etc/.wh.removed"), "")?; // an OCI whiteout
    {
        let mounted = LayerStack::new()
            .layer(&base)
            .layer(&top)
            .writable(tmp.join("upper"), tmp.join("work"))
            .mount(&mnt)?;
        assert_eq!(
            fs::read_to_string(mounted.path().join("etc/config"))?,
            "new\n"
        );
        assert!(!mounted.path().join("etc/removed").exists());
        fs::write(mounted.path().join("etc/written"), "by the test\n")?;
    } // unmounted here
    assert!(tmp.join("upper/etc/written").exists());
    fs::remove_dir_all(&tmp)?;
    println!("ok");
    Ok(())
}
