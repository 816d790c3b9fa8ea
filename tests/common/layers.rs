//! Layer descriptions: the crate's public `unionmount::testing` module (one copy, the same
//! downstream tests use), with writers that panic naming the layer, as a test wants.

use std::path::{Path, PathBuf};

#[allow(unused_imports)]
pub use unionmount::testing::dir as dir_;
#[allow(unused_imports)]
pub use unionmount::testing::{
    DEFAULT_MTIME, Entry, Form, Kind, blockdev, chardev, fifo, file, hardlink, opaque,
    pseudo_random, root, symlink, whiteout,
};

/// [`unionmount::testing::write_layer`], panicking on an error.
pub fn write_layer(dest: &Path, form: Form, entries: &[Entry]) -> PathBuf {
    unionmount::testing::write_layer(dest, form, entries)
        .unwrap_or_else(|e| panic!("writing {form:?} {e}"))
}

/// [`unionmount::testing::write_stack`], panicking on an error.
pub fn write_stack(root: &Path, form: Form, layers: &[Vec<Entry>]) -> Vec<PathBuf> {
    unionmount::testing::write_stack(root, form, layers)
        .unwrap_or_else(|e| panic!("writing a {form:?} stack under {}: {e}", root.display()))
}
