//! Hostile layers and image layouts, mounted for real: `scripts/make-hostile` writes the corpus
//! (tar layers with escaping paths and links, broken numeric fields, bad PAX records and sparse
//! maps, huge and deep trees, compression bombs and garbage; OCI layouts with malformed, huge,
//! nested or missing documents and digest mismatches), and every case is mounted with the real
//! binary. Each either mounts, with the bad entries skipped, or is refused with one line naming
//! the layer (or image) and the cause, exit status 1. Whatever happens, the daemon never panics
//! or hangs, nothing outside the layer is ever shown (`SECRET`, written beside the layers, and
//! the host's /etc/passwd are looked for in every file read), every entry of a mounted tree is
//! on the mount itself, and the index build of a gzip bomb keeps the daemon's memory bounded.
//!
//! The sizes of the big cases are smaller than the script's defaults so that the file runs in
//! well under two minutes: `HOSTILE_BOMB_MIB` (default 10240, as the script's; the one-block
//! case gets a quarter of it), `HOSTILE_WIDE` (default 200000) and `HOSTILE_DEEP` (default
//! 10000) override them.

mod common;

use std::collections::BTreeMap;
use std::ffi::{CStr, CString, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};

/// How long any one mount may take to appear (the bomb's index build included) or be refused.
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// How long walking one mounted tree may take before the daemon counts as hung.
const WALK_TIMEOUT: Duration = Duration::from_secs(60);
/// The daemon's resident memory must stay under this while it indexes the gzip bomb.
const RSS_LIMIT_KB: u64 = 200 * 1024;
/// Bytes of each file read from its start (larger files are also read in the middle and at
/// the end).
const READ_CAP: u64 = 1 << 20;

fn env_size(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn bomb_mib() -> u64 {
    env_size("HOSTILE_BOMB_MIB", 10240)
}

fn wide_n() -> u64 {
    env_size("HOSTILE_WIDE", 200_000)
}

fn deep_n() -> u64 {
    env_size("HOSTILE_DEEP", 10_000)
}

/// The corpus, generated once per run of this test binary into cargo's directory for test
/// files (a temporary directory held by a static was never removed: 183 MB per run left in
/// /tmp).
fn corpus() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostile-corpus");
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("remove the old corpus {}: {e}", dir.display()),
        }
        std::fs::create_dir_all(&dir).expect("create the corpus directory");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/make-hostile");
        let out = Command::new("python3")
            .arg(&script)
            .arg(&dir)
            .args(["--bomb-mib", &bomb_mib().to_string()])
            .args(["--wide", &wide_n().to_string()])
            .args(["--deep", &deep_n().to_string()])
            .output()
            .expect("run scripts/make-hostile");
        assert!(
            out.status.success(),
            "make-hostile failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

/// `(kind, name)` of every case the script wrote (`tar NAME` or `oci NAME`).
fn cases(kind: &str) -> Vec<String> {
    let list = std::fs::read_to_string(corpus().join("cases.txt")).expect("read cases.txt");
    list.lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(k, _)| *k == kind)
        .map(|(_, n)| n.to_string())
        .collect()
}

// ---------------------------------------------------------------- what each case must do

/// What one case must do.
enum Want {
    /// Mount, showing exactly these names at the root.
    Mount(&'static [&'static str]),
    /// Be refused with one line holding this text (and the layer's or image's name).
    Refuse(&'static str),
}
use Want::{Mount, Refuse};

fn want_tar(name: &str) -> Want {
    const OK: &[&str] = &["ok"];
    const A_OK: &[&str] = &["a", "ok"];
    const TRUNC: Want = Refuse("truncated at byte");
    const BAD_PAX: Want = Refuse("malformed PAX record");
    match name.trim_end_matches(".gz").trim_end_matches(".zst") {
        "absolute.tar" => Mount(&["abs2", "etc", "ok"]),
        "bad_checksum_first.tar" => Refuse("not a tar archive: bad header checksum at byte 0"),
        "bad_checksum_middle.tar" => Refuse("bad header checksum at byte 1024"),
        "bad_octal.tar" => Refuse("corrupt archive at byte 1024"),
        "bad_octal_uid.tar" => Refuse("corrupt archive at byte 0"),
        "deep.tar" => Mount(&["d", "ok"]),
        "devices.tar" => Mount(&["cdev", "contig", "fifo", "gnudump", "ok"]),
        "dotdot.tar" => Mount(OK),
        "duplicates.tar" => Mount(&["ok", "x"]),
        "empty.tar" => Refuse("not a tar archive: empty file"),
        "garbage.tar" | "text.tar" => Refuse("not a tar archive"),
        "gnu_longname_dotdot.tar" => Mount(OK),
        "gnu_longname_huge.tar" => TRUNC,
        "gnu_longname_nul.tar" => Mount(OK),
        "gnu_sparse_ext_chain_loop.tar" | "gnu_sparse_past_stored.tar" => {
            Refuse("sparse file consumed more data")
        }
        "gnu_sparse_ext_past_eof.tar" => TRUNC,
        "gnu_sparse_huge_real.tar" | "gnu_sparse_past_eof.tar" | "gnu_sparse_past_real.tar" => {
            Refuse("mismatch in sparse file chunks")
        }
        "gnu_sparse_overlap.tar" => Refuse("overlapping sparse blocks"),
        "gzip_bad_crc.tar" => Refuse("incorrect data check"),
        "gzip_bad_isize.tar" => Refuse("incorrect length check"),
        "gzip_bad_method.tar" => Refuse("unknown compression method"),
        "gzip_bomb.tar" => Mount(&["bomb", "ok"]),
        "gzip_one_block.tar" => Mount(&["ok", "oneblock"]),
        "gzip_corrupt_deflate.tar" | "gzip_garbage.tar" => Refuse("corrupt gzip data"),
        "gzip_empty_member.tar" | "gzip_ok.tar" | "gzip_two_members.tar" => Mount(A_OK),
        "gzip_fextra_huge.tar"
        | "gzip_fname_unterminated.tar"
        | "gzip_only_header.tar"
        | "gzip_truncated.tar"
        | "gzip_truncated_trailer.tar" => Refuse("gzip stream truncated"),
        "gzip_of_garbage.tar" => Refuse("not a tar archive"),
        "gzip_of_truncated_tar.tar" => Refuse("truncated at byte 700"),
        "gzip_trailing_garbage.tar" => Refuse("no gzip header"),
        "hardlink_dir.tar" => Mount(&["d", "ok"]),
        "hardlink_later.tar" => Mount(&["later", "ok"]),
        "hardlink_outside.tar" => Mount(&["a", "ok", "s"]),
        "hardlink_replaced.tar" => Mount(&["h", "ok", "t"]),
        "hardlink_self.tar" => Mount(OK),
        "huge_size.tar" | "huge_size_base256.tar" | "overflow_octal.tar" => TRUNC,
        "long_name_4k.tar" => Mount(&["ok", "p"]),
        "negative_size.tar" => Refuse("size overflow"),
        "negative_uid.tar" => Refuse("when getting mode for negmode"),
        "nul_in_name.tar" => Mount(&["ok", "x"]),
        "only_zeros.tar" => Mount(&[]),
        "pax_at_end.tar" => Refuse("corrupt archive at byte 1024"),
        "pax_declared_2mib.tar" => Refuse("larger than the limit"),
        "pax_declared_huge.tar" => TRUNC,
        "pax_len_huge.tar" => Refuse("the length is too large"),
        "pax_len_negative.tar" | "pax_len_nospace.tar" => BAD_PAX,
        "pax_len_past_end.tar" => Refuse("runs past the end of the extended header"),
        "pax_len_short.tar" | "pax_len_zero.tar" => Refuse("shorter than the record's own prefix"),
        "pax_libarchive_bad.tar" => Mount(&["lb", "ok"]),
        "pax_mtime_bad.tar" | "pax_mtime_huge.tar" => Refuse("bad PAX mtime value"),
        "pax_newline_value.tar" => Mount(&["good", "ok"]),
        "pax_no_equals.tar" => Refuse("the record has no `=`"),
        "pax_size_huge.tar" => TRUNC,
        "pax_size_negative.tar" | "pax_size_overflow.tar" => Refuse("bad PAX size value"),
        "pax_sparse_01_bad.tar"
        | "pax_sparse_count_huge.tar"
        | "pax_sparse_count_overflow.tar"
        | "pax_sparse_map_unterminated.tar"
        | "pax_sparse_name_escape.tar"
        | "pax_sparse_overlap.tar"
        | "pax_sparse_past_end.tar" => Mount(OK),
        "pax_sparse_map_runs_off.tar" => TRUNC,
        "pax_two_headers.tar" => Refuse("two pax extensions entries"),
        "pax_uid_huge.tar" => Refuse("bad PAX uid value"),
        "pax_xattr_empty_name.tar" => Mount(&["ok", "xe"]),
        "short.tar" => Refuse("shorter than one tar header"),
        "size_past_eof.tar" | "truncated_data.tar" => Refuse("the data of `f` is incomplete"),
        "symlink_etc.tar" => Mount(A_OK),
        "symlink_loops.tar" => Mount(&["l1", "l2", "loop", "ok", "selfdir"]),
        "symlink_then_dir.tar" => Mount(A_OK),
        "symlink_up.tar" => Mount(&["b", "c", "d", "ok"]),
        "truncated_half_end.tar" => Mount(OK),
        "truncated_header.tar" | "truncated_no_end.tar" => TRUNC,
        "whiteout_dots.tar" | "whiteout_slashes.tar" => Mount(&["d", "ok"]),
        "wide.tar" => Mount(&["ok", "w"]),
        "xattr_huge.tar" => Refuse("larger than the limit"),
        "zstd_block_huge.tar" | "zstd_garbage.tar" | "zstd_then_garbage.tar" => {
            Refuse("corrupt zstd data")
        }
        "zstd_content_size_lies.tar" | "zstd_window_huge.tar" => {
            Refuse("too much memory for decoding")
        }
        "zstd_ok.tar" | "zstd_two_frames.tar" => Mount(A_OK),
        "zstd_only_magic.tar" | "zstd_truncated.tar" => Refuse("zstd stream truncated"),
        "zstd_skippable_only.tar" => Refuse("not a tar archive: no data after decompression"),
        _ => panic!("tests/hostile.rs has no expectation for the tar case {name}: add one"),
    }
}

fn want_oci(name: &str) -> Want {
    match name {
        "ok" | "layer_urls" => Mount(&["hello", "ok"]),
        "layer_hostile" => Mount(&["a", "ok"]),
        "config_bad_diff_id" => Refuse("malformed digest"),
        "config_diff_id_mismatch" => Refuse("does not match the config's diff_id"),
        "config_huge" | "index_huge" | "manifest_huge" => Refuse("16777216-byte limit"),
        "config_malformed"
        | "config_nested"
        | "config_no_rootfs"
        | "config_wrong_types"
        | "index_array"
        | "index_empty"
        | "index_malformed"
        | "index_nested_arrays"
        | "index_nested_objects"
        | "index_nul_bytes"
        | "index_null"
        | "index_schema_huge"
        | "index_wrong_types"
        | "layout_marker_garbage"
        | "layer_size_huge"
        | "manifest_malformed"
        | "manifest_nested"
        | "manifest_size_huge"
        | "manifest_wrong_types" => Refuse("invalid JSON"),
        "config_missing" | "layer_missing" | "manifest_missing" | "manifest_no_layers" => {
            Refuse("is missing")
        }
        "config_too_many_diff_ids" => Refuse("lists 1 layers but the config has 3 diff_ids"),
        "index_bad_utf8" | "index_no_manifests" => Refuse("no image tagged \"latest\""),
        "index_deep_chain" => Refuse("nest more than 4 deep"),
        "index_loop" | "manifest_digest_mismatch" => Refuse("digest mismatch"),
        "layer_digest_mismatch" => Refuse("content does not match its digest"),
        "layer_is_dir" => Refuse("not a regular file"),
        "layer_media_gzip_but_plain" => Refuse("no gzip header"),
        "layer_media_unknown" => Refuse("unsupported layer media type"),
        "layer_size_long"
        | "layer_size_short"
        | "layer_symlink_blob"
        | "manifest_size_mismatch" => Refuse("size mismatch"),
        "layout_bad_version" => Refuse("not supported"),
        "layout_missing_marker" => Refuse("not an OCI image layout"),
        "manifest_digest_other_algo" => Refuse("only sha256 is supported"),
        "manifest_digest_traversal" => Refuse("malformed digest"),
        "manifest_size_negative" => Refuse("negative size"),
        _ => panic!("tests/hostile.rs has no expectation for the OCI case {name}: add one"),
    }
}

// ---------------------------------------------------------------- running the daemon

/// A `unionmount mount -f ...` daemon that mounted; unmounted (and checked) by [`Self::stop`],
/// or lazily unmounted on drop if a check failed first.
struct Daemon {
    child: Option<Child>,
    mnt: PathBuf,
    stderr: PathBuf,
    /// Highest VmRSS (KiB) seen while waiting for the mount.
    peak_rss_kb: u64,
}

/// How an attempt to mount ended.
enum Started {
    Mounted(Daemon),
    Refused { status: ExitStatus, stderr: String },
}

fn vm_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `unionmount ARGS MNT` in the foreground (with `-f` among `args`) and waits until it
/// mounted or exited, sampling its memory meanwhile.
fn start(args: &[OsString], env: &[(&str, &Path)], mnt: &Path) -> Started {
    require_fuse();
    let stderr = mnt.with_extension("stderr");
    let err_file = std::fs::File::create(&stderr).expect("create stderr file");
    let mut cmd = Command::new(unionmount_bin());
    cmd.args(args)
        .arg(mnt)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err_file)
        .env("RUST_BACKTRACE", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent: if the test dies,
    // the daemon gets SIGTERM and unmounts itself.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn unionmount");
    let pid = child.id();
    let deadline = Instant::now() + START_TIMEOUT;
    let mut peak = 0;
    loop {
        if let Some(kb) = vm_rss_kb(pid) {
            peak = peak.max(kb);
        }
        if is_fuse_mount(mnt) {
            return Started::Mounted(Daemon {
                child: Some(child),
                mnt: mnt.to_path_buf(),
                stderr,
                peak_rss_kb: peak,
            });
        }
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read_to_string(&stderr).unwrap_or_default();
            return Started::Refused {
                status,
                stderr: text,
            };
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let _ = umount2(mnt, libc::MNT_DETACH);
            panic!(
                "unionmount {args:?} neither mounted nor exited within {START_TIMEOUT:?}; \
                 stderr:\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Daemon {
    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Unmounts, waits for the daemon to exit by itself, and checks it exited 0 without a
    /// panic.
    fn stop(mut self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match umount2(&self.mnt, 0) {
                Ok(()) => break,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("{what}: umount {}: {e}", self.mnt.display()),
            }
        }
        let mut child = self.child.take().expect("child present");
        let (status, killed) = wait_or_kill(&mut child, Duration::from_secs(10));
        let stderr = self.stderr_text();
        assert!(!killed, "{what}: the daemon did not exit after its unmount");
        assert!(
            status.success(),
            "{what}: the daemon exited with {status}:\n{stderr}"
        );
        assert_no_panic(what, &stderr);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = umount2(&self.mnt, libc::MNT_DETACH);
        if let Some(mut child) = self.child.take() {
            let _ = wait_or_kill(&mut child, Duration::from_secs(5));
        }
        let _ = std::fs::remove_file(&self.stderr);
    }
}

fn assert_no_panic(what: &str, stderr: &str) {
    assert!(
        !stderr.contains("panicked"),
        "{what}: the daemon panicked:\n{stderr}"
    );
}

/// A refusal: exit status 1, no panic, and exactly one line on stderr besides log lines
/// (warnings about skipped entries may come first), holding `name` and `cause`.
fn check_refusal(what: &str, status: ExitStatus, stderr: &str, name: &str, cause: &str) {
    assert_no_panic(what, stderr);
    assert_eq!(
        status.code(),
        Some(1),
        "{what}: want exit status 1, got {status}; stderr:\n{stderr}"
    );
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("[WARN") && !l.starts_with("[INFO"))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: want one error line, got:\n{stderr}"
    );
    let line = lines[0];
    assert!(line.contains(name), "{what}: {line:?} does not name {name}");
    assert!(
        line.contains(cause),
        "{what}: {line:?} does not say {cause:?}"
    );
}

// ---------------------------------------------------------------- walking a mounted tree

/// What a walk of a mounted tree saw.
#[derive(Debug, Default, PartialEq)]
struct Seen {
    /// Path (up to a few levels deep) → kind and what reading it gave.
    shallow: BTreeMap<String, String>,
    entries: u64,
    max_depth: u64,
}

/// The bytes that must never show up in a mounted tree: the sentinel beside the layers, and
/// the start of the host's /etc/passwd.
fn forbidden() -> Vec<Vec<u8>> {
    let mut out = vec![b"HOSTILE-SECRET-5f0c1e".to_vec()];
    if let Ok(p) = std::fs::read("/etc/passwd") {
        out.push(p[..p.len().min(24)].to_vec());
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn list_dir(fd: &OwnedFd) -> Result<Vec<CString>, rustix::io::Errno> {
    let mut names = Vec::new();
    for e in rustix::fs::Dir::read_from(fd)? {
        let e = e?;
        let n = e.file_name();
        if n != c"." && n != c".." {
            names.push(n.to_owned());
        }
    }
    Ok(names)
}

/// Reads a file at its start (up to [`READ_CAP`]), middle and end; what it read, or the errno.
fn read_file(dir: &OwnedFd, name: &CStr, size: u64, bad: &[Vec<u8>]) -> String {
    let fd = match rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(e) => return format!("open: {e}"),
    };
    let mut spans = vec![(0, size.min(READ_CAP))];
    if size > READ_CAP {
        spans.push((size / 2, 64 << 10));
        spans.push((size.saturating_sub(64 << 10), 64 << 10));
    }
    let mut first = Vec::new();
    let mut buf = vec![0u8; 128 << 10];
    for (start, len) in spans {
        let mut off = start;
        while off < start + len {
            let want = buf.len().min((start + len - off) as usize);
            match rustix::io::pread(&fd, &mut buf[..want], off) {
                Ok(0) => break,
                Ok(n) => {
                    for b in bad {
                        assert!(
                            !contains(&buf[..n], b),
                            "{name:?}: shows bytes from outside the layer"
                        );
                    }
                    if first.len() < 64 {
                        first.extend_from_slice(&buf[..n.min(64 - first.len())]);
                    }
                    off += n as u64;
                }
                Err(e) => return format!("read: {e}"),
            }
        }
    }
    String::from_utf8_lossy(&first).into_owned()
}

/// Walks the tree at `root` through directory descriptors (so depth is not limited by
/// PATH_MAX, and no symlink is ever followed), reading every file and link. Every entry must
/// be on the mount's own device.
fn walk(root: &Path) -> Seen {
    let bad = forbidden();
    let root_fd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .expect("open the mount root");
    let dev = rustix::fs::fstat(&root_fd)
        .expect("stat the mount root")
        .st_dev;
    let mut seen = Seen::default();
    let names = list_dir(&root_fd).expect("list the mount root");
    // Each level: its descriptor, the names still to visit, its path (kept while short), its
    // depth. A directory whose names are all visited is dropped before its last child is
    // entered, so a chain of 10k directories holds a few descriptors, not 10k.
    let mut stack: Vec<(OwnedFd, Vec<CString>, String, u64)> =
        vec![(root_fd, names, String::new(), 0)];
    while let Some((dir, names, path, depth)) = stack.last_mut() {
        let Some(name) = names.pop() else {
            stack.pop();
            continue;
        };
        let (depth, dir_path) = (*depth + 1, path.clone());
        seen.entries += 1;
        seen.max_depth = seen.max_depth.max(depth);
        let shown = String::from_utf8_lossy(name.to_bytes()).into_owned();
        let path = if dir_path.is_empty() {
            shown
        } else if dir_path.len() < 200 {
            format!("{dir_path}/{shown}")
        } else {
            dir_path.clone()
        };
        let st = match rustix::fs::statat(&*dir, &name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(e) => {
                seen.shallow.insert(path, format!("lstat: {e}"));
                continue;
            }
        };
        assert_eq!(st.st_dev, dev, "{path}: not on the mount");
        let kind = FileType::from_raw_mode(st.st_mode);
        let what = match kind {
            FileType::Directory => {
                let fd = rustix::fs::openat(
                    &*dir,
                    &name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                );
                let last = names.is_empty();
                match fd.and_then(|fd| list_dir(&fd).map(|n| (fd, n))) {
                    Ok((fd, kids)) => {
                        if last {
                            stack.pop();
                        }
                        stack.push((fd, kids, path.clone(), depth));
                        "dir".to_string()
                    }
                    Err(e) => format!("dir: {e}"),
                }
            }
            FileType::RegularFile => {
                let size = u64::try_from(st.st_size).expect("size >= 0");
                format!("file {size}: {}", read_file(dir, &name, size, &bad))
            }
            FileType::Symlink => match rustix::fs::readlinkat(&*dir, &name, Vec::new()) {
                Ok(t) => format!("symlink -> {}", t.to_string_lossy()),
                Err(e) => format!("readlink: {e}"),
            },
            other => format!("{other:?}"),
        };
        if depth <= 4 {
            seen.shallow.insert(path, what);
        }
    }
    seen
}

/// [`walk`] on another thread; if it does not finish in time, the FUSE connection is aborted
/// (which fails the walk's pending calls) and the test fails: the daemon hung.
fn walk_or_hang(d: &Daemon, what: &str) -> Seen {
    let root = d.mnt.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let walker = std::thread::spawn(move || {
        let _ = tx.send(walk(&root));
    });
    match rx.recv_timeout(WALK_TIMEOUT) {
        Ok(seen) => {
            walker.join().expect("walker thread");
            seen
        }
        Err(_) => {
            let _ = umount2(&d.mnt, libc::MNT_FORCE | libc::MNT_DETACH);
            let _ = walker.join();
            panic!(
                "{what}: walking the mount did not finish within {WALK_TIMEOUT:?} (or the \
                 walk failed); daemon stderr:\n{}",
                d.stderr_text()
            );
        }
    }
}

fn root_names(seen: &Seen) -> Vec<&str> {
    seen.shallow
        .keys()
        .filter(|k| !k.contains('/'))
        .map(String::as_str)
        .collect()
}

fn entry<'a>(seen: &'a Seen, path: &str) -> &'a str {
    seen.shallow
        .get(path)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("{path} not in the tree: {:?}", seen.shallow))
}

/// Checks particular to one mounted case, beyond its root names.
fn check_tar_tree(name: &str, seen: &Seen) {
    match name {
        "absolute.tar" => assert_eq!(entry(seen, "etc/passwd"), "file 13: layer passwd\n"),
        "symlink_etc.tar" => assert_eq!(entry(seen, "a"), "symlink -> /etc"),
        "symlink_up.tar" => {
            assert_eq!(entry(seen, "b"), "symlink -> ../../..");
            assert_eq!(entry(seen, "d/up"), "symlink -> ../../../../..");
        }
        "symlink_then_dir.tar" => {
            assert_eq!(entry(seen, "a"), "dir");
            assert_eq!(entry(seen, "a/passwd"), "file 21: a is a directory now\n");
        }
        "hardlink_replaced.tar" => {
            assert_eq!(entry(seen, "h"), "file 6: first\n");
            assert_eq!(entry(seen, "t"), "dir");
        }
        "hardlink_later.tar" => assert_eq!(entry(seen, "later"), "file 14: later content\n"),
        "whiteout_dots.tar" | "whiteout_slashes.tar" => assert_eq!(seen.entries, 2),
        "duplicates.tar" => assert_eq!(entry(seen, "x"), "symlink -> x"),
        "long_name_4k.tar" => assert_eq!(seen.max_depth, 16),
        "gzip_ok.tar.gz" | "zstd_ok.tar.zst" | "gzip_two_members.tar.gz" => {
            assert!(entry(seen, "a").starts_with("file 6000: hello\n"));
        }
        _ => {}
    }
}

fn tmp_mnt(tmp: &Path, name: &str) -> PathBuf {
    mountpoint(tmp, name)
        .canonicalize()
        .expect("canonical mountpoint")
}

/// Mounts one tar case (with an index cache, twice when it mounts: once building and saving
/// the index, once loading it) and checks it against its expectation.
fn run_tar_case(tmp: &Path, name: &str) -> Option<Seen> {
    let layer = corpus().join("layers").join(name);
    let mnt = tmp_mnt(tmp, name);
    let cache = tmp.join(format!("{name}.cache"));
    let args: Vec<OsString> = vec![
        "mount".into(),
        "-f".into(),
        "--cache".into(),
        cache.clone().into(),
        "--layer".into(),
        layer.clone().into(),
    ];
    let mut first: Option<Seen> = None;
    for pass in ["built", "loaded"] {
        let what = format!("{name} ({pass} index)");
        match (start(&args, &[], &mnt), want_tar(name)) {
            (Started::Mounted(d), Mount(names)) => {
                let seen = walk_or_hang(&d, &what);
                // `p` stands for the 255-byte name of long_name_4k.tar.
                let want: Vec<String> = names
                    .iter()
                    .map(|n| match *n {
                        "p" => "p".repeat(255),
                        n => n.to_string(),
                    })
                    .collect();
                assert_eq!(root_names(&seen), want, "{what}: root names");
                check_tar_tree(name, &seen);
                d.stop(&what);
                match &first {
                    None => first = Some(seen),
                    Some(f) => assert!(*f == seen, "{what}: differs from the built index"),
                }
            }
            (Started::Mounted(d), Refuse(cause)) => {
                let stderr = d.stderr_text();
                drop(d);
                panic!("{what}: mounted, but should be refused ({cause}); stderr:\n{stderr}");
            }
            (Started::Refused { status, stderr }, Refuse(cause)) => {
                check_refusal(&what, status, &stderr, name, cause);
                return None;
            }
            (Started::Refused { stderr, .. }, Mount(_)) => {
                panic!("{what}: refused, but should mount; stderr:\n{stderr}")
            }
        }
    }
    first
}

// ---------------------------------------------------------------- the tests

/// Every small tar case, as a `--layer`.
#[test]
fn hostile_tar_layers() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let big = [
        "deep.tar",
        "wide.tar",
        "gzip_bomb.tar.gz",
        "gzip_one_block.tar.gz",
    ];
    let names = cases("tar");
    assert!(names.len() > 90, "only {} tar cases", names.len());
    for name in names.iter().filter(|n| !big.contains(&n.as_str())) {
        run_tar_case(tmp.path(), name);
    }
}

/// 10k directories deep, through one PAX path: the file at the bottom is reachable.
#[test]
fn hostile_deep_tree() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let seen = run_tar_case(tmp.path(), "deep.tar").expect("deep.tar mounts");
    // The PAX path's chain, its `bottom`, and ten more levels of `e`.
    assert_eq!(seen.max_depth, deep_n() + 10);
    assert_eq!(seen.entries, deep_n() + 1 + 10 + 1);
}

/// 200k entries in one directory: listed completely, without duplicates.
#[test]
fn hostile_wide_directory() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let mnt = tmp_mnt(tmp.path(), "wide");
    let args: Vec<OsString> = vec![
        "mount".into(),
        "-f".into(),
        "--no-cache".into(),
        "--layer".into(),
        corpus().join("layers/wide.tar").into(),
    ];
    let Started::Mounted(d) = start(&args, &[], &mnt) else {
        panic!("wide.tar did not mount");
    };
    let seen = walk_or_hang(&d, "wide.tar");
    assert_eq!(seen.entries, wide_n() + 2);
    let names = names_of(&mnt.join("w"));
    assert_eq!(names.len() as u64, wide_n());
    assert_no_duplicates("wide.tar w/", &names);
    d.stop("wide.tar");
}

/// A gzip layer of 10 GiB of zeros in 10 MB: the index build streams (the daemon's RSS stays
/// bounded while it inflates everything), and the file reads back as zeros.
#[test]
fn hostile_gzip_bomb() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let mnt = tmp_mnt(tmp.path(), "bomb");
    let bomb = corpus().join("layers/gzip_bomb.tar.gz");
    let blob_len = std::fs::metadata(&bomb).expect("stat bomb").len();
    assert!(
        blob_len < (bomb_mib() << 20) / 500,
        "the bomb is not much of one: {blob_len} bytes"
    );
    let args: Vec<OsString> = vec![
        "mount".into(),
        "-f".into(),
        "--no-cache".into(),
        "--layer".into(),
        bomb.into(),
    ];
    let started = Instant::now();
    let d = match start(&args, &[], &mnt) {
        Started::Mounted(d) => d,
        Started::Refused { stderr, .. } => panic!("the bomb was refused: {stderr}"),
    };
    eprintln!(
        "gzip bomb: {} MiB indexed in {:.1?}, peak RSS {} MiB",
        bomb_mib(),
        started.elapsed(),
        d.peak_rss_kb >> 10
    );
    assert!(
        d.peak_rss_kb < RSS_LIMIT_KB,
        "the daemon's RSS reached {} KiB while indexing the bomb",
        d.peak_rss_kb
    );
    let seen = walk_or_hang(&d, "gzip bomb");
    let size = bomb_mib() << 20;
    assert_eq!(
        entry(&seen, "bomb"),
        format!("file {size}: {}", "\0".repeat(64))
    );
    if let Some(kb) = vm_rss_kb(d.pid()) {
        assert!(kb < RSS_LIMIT_KB, "RSS {kb} KiB after reading the bomb");
    }
    d.stop("gzip bomb");
}

/// A file of zeros that is one single deflate block (no checkpoint can fall inside it): read
/// at its end, then front to back, the daemon's memory stays bounded and the reads finish.
#[test]
fn hostile_gzip_one_block() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let mnt = tmp_mnt(tmp.path(), "oneblock");
    let args: Vec<OsString> = vec![
        "mount".into(),
        "-f".into(),
        "--no-cache".into(),
        "--layer".into(),
        corpus().join("layers/gzip_one_block.tar.gz").into(),
    ];
    let d = match start(&args, &[], &mnt) {
        Started::Mounted(d) => d,
        Started::Refused { stderr, .. } => panic!("the one-block layer was refused: {stderr}"),
    };
    let file = mnt.join("oneblock");
    let size = std::fs::metadata(&file).expect("stat oneblock").len();
    assert!(size >= (bomb_mib() / 4) << 20 >> 1, "size {size}");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::open(&file).expect("open oneblock");
        let mut buf = vec![1u8; 64 << 10];
        let at = size - buf.len() as u64;
        f.read_exact_at(&mut buf, at).expect("read the end");
        assert!(buf.iter().all(|&b| b == 0));
        let mut total = 0u64;
        let mut f = std::io::BufReader::with_capacity(1 << 20, f);
        loop {
            let n = f.read(&mut buf).expect("read through");
            if n == 0 {
                break;
            }
            assert!(buf[..n].iter().all(|&b| b == 0));
            total += n as u64;
        }
        let _ = tx.send(total);
    });
    let deadline = Instant::now() + WALK_TIMEOUT;
    let mut peak = 0;
    let total = loop {
        if let Some(kb) = vm_rss_kb(d.pid()) {
            peak = peak.max(kb);
        }
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(total) => break total,
            Err(_) if Instant::now() < deadline && !reader.is_finished() => {}
            Err(_) => {
                let _ = umount2(&d.mnt, libc::MNT_FORCE | libc::MNT_DETACH);
                let _ = reader.join();
                panic!("reading oneblock failed or did not finish within {WALK_TIMEOUT:?}");
            }
        }
    };
    reader.join().expect("reader thread");
    assert_eq!(total, size);
    eprintln!(
        "gzip one block: {size} bytes read, peak RSS {} MiB",
        peak >> 10
    );
    assert!(
        peak < RSS_LIMIT_KB,
        "the daemon's RSS reached {peak} KiB reading one deflate block"
    );
    d.stop("gzip one block");
}

impl Daemon {
    fn pid(&self) -> u32 {
        self.child.as_ref().expect("child present").id()
    }
}

/// Every OCI layout case, as `oci:DIR:latest`.
#[test]
fn hostile_oci_layouts() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = tmp.path().join("store");
    let names = cases("oci");
    assert!(names.len() > 40, "only {} OCI cases", names.len());
    for name in &names {
        let dir = corpus().join("oci").join(name);
        let reference = format!("oci:{}:latest", dir.display());
        let mnt = tmp_mnt(tmp.path(), name);
        let args: Vec<OsString> = vec![
            "mount".into(),
            "-f".into(),
            "--no-cache".into(),
            "--read-only".into(),
            reference.clone().into(),
        ];
        match (
            start(&args, &[("UNIONMOUNT_ROOT", &store)], &mnt),
            want_oci(name),
        ) {
            (Started::Mounted(d), Mount(want)) => {
                let seen = walk_or_hang(&d, name);
                assert_eq!(root_names(&seen), want, "{name}: root names");
                if name == "layer_hostile" {
                    assert_eq!(entry(&seen, "a"), "symlink -> /etc");
                }
                d.stop(name);
            }
            (Started::Refused { status, stderr }, Refuse(cause)) => {
                // Errors about a layer blob name the blob; the others name the image.
                let named = if stderr.contains(&reference) {
                    reference.as_str()
                } else {
                    name.as_str()
                };
                check_refusal(name, status, &stderr, named, cause);
            }
            (Started::Mounted(d), Refuse(cause)) => {
                let stderr = d.stderr_text();
                drop(d);
                panic!("{name}: mounted, but should be refused ({cause}); stderr:\n{stderr}");
            }
            (Started::Refused { stderr, .. }, Mount(_)) => {
                panic!("{name}: refused, but should mount; stderr:\n{stderr}")
            }
        }
    }
}

/// The corpus is deterministic: generating it twice gives the same bytes (the big cases are
/// kept small here; their writers are the same code at any size).
#[test]
fn corpus_is_deterministic() {
    let digest_tree = |dir: &Path| -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
                let p = e.path();
                let meta = std::fs::symlink_metadata(&p).expect("lstat");
                let rel = p.strip_prefix(dir).expect("under dir").to_path_buf();
                if meta.is_dir() {
                    stack.push(p);
                } else if meta.file_type().is_symlink() {
                    let t = std::fs::read_link(&p).expect("readlink");
                    out.insert(rel, t.as_os_str().as_bytes().to_vec());
                } else {
                    use sha2::Digest;
                    let data = std::fs::read(&p).expect("read");
                    out.insert(rel, sha2::Sha256::digest(&data).to_vec());
                }
            }
        }
        out
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/make-hostile");
    let make = || {
        let dir = tempfile::tempdir().expect("tempdir");
        let st = Command::new("python3")
            .arg(&script)
            .arg(dir.path())
            .args(["--bomb-mib", "4", "--wide", "10", "--deep", "10"])
            .status()
            .expect("run make-hostile");
        assert!(st.success());
        dir
    };
    let (a, b) = (make(), make());
    assert_eq!(digest_tree(a.path()), digest_tree(b.path()));
}
