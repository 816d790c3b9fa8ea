//! Mounts directories and tar files as one merged tree until Enter is pressed:
//! `cargo run --example mount_layers -- MOUNTPOINT LAYER...` (bottom layer first).

use unionmount::LayerStack;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mountpoint = args
        .next()
        .ok_or("usage: mount_layers MOUNTPOINT LAYER...")?;
    let mut stack = LayerStack::new();
    for layer in args {
        stack = stack.layer(layer);
    }
    let mounted = stack.mount(&mountpoint)?;
    println!(
        "mounted on {}; press Enter to unmount",
        mounted.path().display()
    );
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    mounted.unmount()?;
    Ok(())
}
