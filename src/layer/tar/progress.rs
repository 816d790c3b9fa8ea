//! The progress bar of an indexing pass: bytes of the blob read, rate and ETA on stderr,
//! shown only when stderr is a terminal and the blob is big enough for the wait to be felt.
//!
//! The pass reports every buffer it reads, but the bar is touched once per [`STEP`] bytes:
//! between two steps an update is one comparison, so the pass pays nothing measurable, and a
//! hidden bar is the same comparison against `u64::MAX`.

use std::io::IsTerminal as _;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Blobs smaller than this index in well under a second: no bar, so that mounting a small
/// image prints nothing.
const MIN_BYTES: u64 = 8 << 20;
/// Bytes read between two updates of the bar.
const STEP: u64 = 1 << 20;

/// The bar of one pass; cleared from the terminal when dropped (also when the pass fails, so
/// that the error message starts on a clean line).
pub(crate) struct IndexProgress {
    bar: Option<ProgressBar>,
    /// Blob offset at which the bar is next updated.
    next: u64,
}

impl IndexProgress {
    /// A bar labelled `name` for a pass over `total` bytes, or a hidden one when stderr is
    /// not a terminal or the blob is small.
    pub(crate) fn start(name: &str, total: u64) -> IndexProgress {
        if total < MIN_BYTES || !std::io::stderr().is_terminal() {
            return IndexProgress::hidden();
        }
        let style = ProgressStyle::with_template(
            // The bar takes whatever width the text leaves, so the line fits any terminal.
            "indexing {msg} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
            .with_style(style)
            .with_message(name.to_string());
        IndexProgress {
            bar: Some(bar),
            next: STEP,
        }
    }

    /// No bar at all.
    pub(crate) fn hidden() -> IndexProgress {
        IndexProgress {
            bar: None,
            next: u64::MAX,
        }
    }

    /// `done` bytes of the blob have been read.
    #[inline]
    pub(crate) fn update(&mut self, done: u64) {
        if done >= self.next {
            self.redraw(done);
        }
    }

    #[cold]
    fn redraw(&mut self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            self.next = (done / STEP + 1) * STEP;
        }
    }
}

impl Drop for IndexProgress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// The bar's label for a layer: a digest cut to the 12 hex digits `docker` shows, or a file's
/// name (a full path would push the bar off a narrow terminal).
pub(crate) fn label(digest: Option<&str>, path: &std::path::Path) -> String {
    match digest {
        Some(d) => match d.split_once(':') {
            Some((algo, hex)) => format!("{algo}:{}", hex.get(..12).unwrap_or(hex)),
            None => d.to_string(),
        },
        None => path
            .file_name()
            .unwrap_or(path.as_os_str())
            .to_string_lossy()
            .into_owned(),
    }
}
