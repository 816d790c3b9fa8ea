//! Mount guards: a unionmount daemon running in the foreground as a child process, and a kernel
//! overlayfs mount. Both unmount on drop, also while a failing test unwinds, so no test leaves
//! a mount behind.

use std::ffi::{CString, OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long a mount may take to appear.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the daemon may take to exit once unmounted.
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);

pub fn unionmount_bin() -> &'static str {
    env!("CARGO_BIN_EXE_unionmount")
}

/// The fs type mounted at a path, from /proc/self/mountinfo (reading it never touches the
/// mount, so a hung daemon cannot hang us); the daemon's own parser.
pub use unionmount::mount::mount_type;

pub fn is_fuse_mount(mnt: &Path) -> bool {
    mount_type(mnt).is_some_and(|t| t == "fuse" || t.starts_with("fuse."))
}

/// `umount2(mnt, flags)`; errors are returned, not raised.
pub fn umount2(mnt: &Path, flags: libc::c_int) -> std::io::Result<()> {
    let c = CString::new(mnt.as_os_str().as_bytes()).expect("path without NUL");
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    let rc = unsafe { libc::umount2(c.as_ptr(), flags) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Waits up to `timeout` for the child to exit; kills it (SIGKILL) if it does not.
/// Returns the status and whether it had to be killed.
pub fn wait_or_kill(child: &mut Child, timeout: Duration) -> (ExitStatus, bool) {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (status, false),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                return (child.wait().expect("wait for killed child"), true);
            }
        }
    }
}

pub fn send_signal(child: &Child, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    // SAFETY: kill(2) with a pid we spawned and have not yet reaped, so it is not reused.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

/// A unionmount daemon started with `-f`, serving `mnt` until dropped.
pub struct UnionMount {
    child: Option<Child>,
    mnt: PathBuf,
    stderr: PathBuf,
    watchdog: Option<mpsc::Sender<()>>,
}

impl UnionMount {
    /// `unionmount mount -f --layer L0 --layer L1 ... MNT` (layers bottom first).
    pub fn layers<P: AsRef<Path>>(layers: &[P], mnt: &Path) -> Self {
        let mut args: Vec<OsString> = vec!["mount".into(), "-f".into()];
        for l in layers {
            args.push("--layer".into());
            args.push(l.as_ref().as_os_str().to_owned());
        }
        args.push(mnt.as_os_str().to_owned());
        Self::start(&args, mnt)
    }

    /// `unionmount mount -f [EXTRA...] IMAGE MNT` for an image reference (oci:, docker-archive:).
    /// The store root (where a writable image mount keeps its upper) is `MNT.store`, beside
    /// the mountpoint, so tests never write to the real store.
    pub fn image(reference: &str, extra: &[&str], mnt: &Path) -> Self {
        let mut args: Vec<OsString> = vec!["mount".into(), "-f".into()];
        args.extend(extra.iter().map(OsString::from));
        args.push(reference.into());
        args.push(mnt.as_os_str().to_owned());
        let mut store = mnt.as_os_str().to_owned();
        store.push(".store");
        let store = store.to_str().expect("utf-8 mountpoint").to_owned();
        Self::start_with_env(&args, &[("UNIONMOUNT_ROOT", &store)], mnt)
    }

    /// `unionmount -f -o lowerdir=TOP:...:BOTTOM MNT`, given the layers bottom first.
    pub fn lowerdir<P: AsRef<Path>>(layers: &[P], mnt: &Path) -> Self {
        let opt = format!("lowerdir={}", lowerdir_value(layers));
        let args: Vec<OsString> = vec![
            "-f".into(),
            "-o".into(),
            opt.into(),
            mnt.as_os_str().to_owned(),
        ];
        Self::start(&args, mnt)
    }

    /// `unionmount -f -o lowerdir=TOP:...:BOTTOM,upperdir=U,workdir=W MNT`, given the lower
    /// layers bottom first: a writable mount.
    pub fn with_upper<P: AsRef<Path>>(layers: &[P], upper: &Path, work: &Path, mnt: &Path) -> Self {
        Self::with_upper_and(layers, upper, work, "", mnt)
    }

    /// [`Self::with_upper`] with more `-o` options (`extra`: empty, or starting with a comma).
    pub fn with_upper_and<P: AsRef<Path>>(
        layers: &[P],
        upper: &Path,
        work: &Path,
        extra: &str,
        mnt: &Path,
    ) -> Self {
        let opt = format!(
            "lowerdir={},upperdir={},workdir={}{extra}",
            lowerdir_value(layers),
            upper.display(),
            work.display()
        );
        let args: Vec<OsString> = vec![
            "-f".into(),
            "-o".into(),
            opt.into(),
            mnt.as_os_str().to_owned(),
        ];
        Self::start(&args, mnt)
    }

    /// Runs `unionmount ARGS` (which must keep it in the foreground) and waits until `mnt` is
    /// a FUSE mount. Panics, with the daemon's stderr, if it exits or times out first.
    pub fn start<S: AsRef<OsStr>>(args: &[S], mnt: &Path) -> Self {
        Self::start_with_env(args, &[], mnt)
    }

    /// [`Self::start`] with extra environment variables (`RUST_LOG`, say).
    pub fn start_with_env<S: AsRef<OsStr>>(args: &[S], env: &[(&str, &str)], mnt: &Path) -> Self {
        crate::common::require_fuse();
        let mnt = mnt
            .canonicalize()
            .unwrap_or_else(|e| panic!("mountpoint {}: {e}", mnt.display()));
        assert!(
            !is_fuse_mount(&mnt),
            "{} is already a FUSE mount",
            mnt.display()
        );
        let stderr = mnt.with_file_name(format!(
            "{}.unionmount-stderr",
            mnt.file_name().and_then(OsStr::to_str).unwrap_or("mnt")
        ));
        // A file, not a pipe: a daemon that logs a lot must never block on a full pipe.
        let err_file = fs::File::create(&stderr).expect("create stderr capture file");
        let mut cmd = Command::new(unionmount_bin());
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err_file);
        cmd.env("RUST_BACKTRACE", "1");
        cmd.envs(env.iter().copied());
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent. If the test
        // process dies (killed by a timeout) the daemon gets SIGTERM and unmounts itself.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn unionmount");
        let mut guard = UnionMount {
            child: Some(child),
            mnt,
            stderr,
            watchdog: None,
        };
        let deadline = Instant::now() + MOUNT_TIMEOUT;
        loop {
            if is_fuse_mount(&guard.mnt) {
                break;
            }
            let child = guard.child.as_mut().expect("child present");
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "unionmount {:?} exited with {status} before {} was mounted; stderr:\n{}",
                    args.iter()
                        .map(|a| a.as_ref().to_owned())
                        .collect::<Vec<_>>(),
                    guard.mnt.display(),
                    guard.stderr_text()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "unionmount did not mount {} within {MOUNT_TIMEOUT:?}; stderr so far:\n{}",
                    guard.mnt.display(),
                    guard.stderr_text()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
        guard.watchdog = Some(watchdog(guard.mnt.clone()));
        guard
    }

    pub fn path(&self) -> &Path {
        &self.mnt
    }

    /// Absolute path of `rel` inside the mount.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// Everything the daemon wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("child present").id()
    }

    /// Sends `sig` to the daemon without waiting.
    pub fn signal(&self, sig: libc::c_int) {
        send_signal(self.child.as_ref().expect("child present"), sig);
    }

    /// Whether the daemon process is still running.
    pub fn running(&mut self) -> bool {
        let child = self.child.as_mut().expect("child present");
        matches!(child.try_wait(), Ok(None))
    }

    /// Waits for the daemon to exit by itself (after a signal or an unmount): its exit status.
    /// Panics if it does not exit within the timeout.
    pub fn wait_exit(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("child present");
        let (status, killed) = wait_or_kill(&mut child, EXIT_TIMEOUT);
        let _ = umount2(&self.mnt, libc::MNT_DETACH);
        assert!(
            !killed,
            "unionmount did not exit within {EXIT_TIMEOUT:?}; stderr:\n{}",
            self.stderr_text()
        );
        status
    }

    /// Sends `sig` and waits for the daemon to exit by itself (not killed): its exit status.
    /// Panics if it does not exit within the timeout.
    pub fn stop_with(self, sig: libc::c_int) -> ExitStatus {
        self.signal(sig);
        self.wait_exit()
    }

    /// Unmounts from outside (like `umount MNT`) and waits for the daemon to exit by itself.
    pub fn unmount_and_wait(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("child present");
        // EBUSY can be passing: a process another test forks holds copies of our open
        // descriptors until it execs (they are close-on-exec).
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            match umount2(&self.mnt, 0) {
                Ok(()) => break,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("umount {}: {e}", self.mnt.display()),
            }
        }
        let (status, killed) = wait_or_kill(&mut child, EXIT_TIMEOUT);
        assert!(
            !killed,
            "unionmount did not exit within {EXIT_TIMEOUT:?} of its unmount; stderr:\n{}",
            self.stderr_text()
        );
        status
    }
}

impl Drop for UnionMount {
    fn drop(&mut self) {
        drop(self.watchdog.take());
        // Lazy unmount: it succeeds even if a test still holds a file open in the mount.
        let _ = umount2(&self.mnt, libc::MNT_DETACH);
        if let Some(mut child) = self.child.take() {
            let (status, killed) = wait_or_kill(&mut child, EXIT_TIMEOUT);
            if killed || !status.success() {
                eprintln!(
                    "note: unionmount for {} ended with {status}{}; stderr:\n{}",
                    self.mnt.display(),
                    if killed {
                        " (killed: it did not exit after its unmount)"
                    } else {
                        ""
                    },
                    self.stderr_text()
                );
            }
        }
        let _ = fs::remove_file(&self.stderr);
    }
}

/// A thread that aborts the FUSE connection (umount with MNT_FORCE) if the test still holds the
/// mount after `UNIONMOUNT_TEST_TIMEOUT` seconds (default 300): a hung daemon then fails the test
/// with ENOTCONN instead of hanging the whole run. Dropping the sender disarms it.
fn watchdog(mnt: PathBuf) -> mpsc::Sender<()> {
    let secs = std::env::var("UNIONMOUNT_TEST_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let (tx, rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_secs(secs)) {
            eprintln!(
                "watchdog: {} still mounted after {secs}s, aborting the connection",
                mnt.display()
            );
            let _ = umount2(&mnt, libc::MNT_FORCE | libc::MNT_DETACH);
        }
    });
    tx
}

/// `TOP:...:BOTTOM` from layers given bottom first.
pub fn lowerdir_value<P: AsRef<Path>>(layers: &[P]) -> String {
    let parts: Vec<String> = layers
        .iter()
        .rev()
        .map(|l| {
            let s = l.as_ref().to_str().expect("utf-8 layer path");
            assert!(
                !s.contains([':', ',']),
                "layer path {s} needs escaping for lowerdir="
            );
            s.to_string()
        })
        .collect();
    parts.join(":")
}

/// A kernel overlayfs mount of read-only lower layers; unmounted on drop.
pub struct KernelOverlay {
    mnt: PathBuf,
    _empty: Option<tempfile::TempDir>,
}

impl KernelOverlay {
    /// `mount -t overlay overlay -o lowerdir=TOP:...:BOTTOM MNT`, layers given bottom first.
    /// Overlayfs wants at least two lower layers without an upper; a single layer gets an empty
    /// one below it, which changes nothing in the merged tree.
    pub fn mount<P: AsRef<Path>>(layers: &[P], mnt: &Path) -> Self {
        crate::common::require_root();
        let mut all: Vec<PathBuf> = layers.iter().map(|l| l.as_ref().to_path_buf()).collect();
        let mut empty = None;
        if all.len() == 1 {
            let e = tempfile::tempdir().expect("tempdir");
            all.insert(0, e.path().to_path_buf());
            empty = Some(e);
        }
        let opts = format!("lowerdir={}", lowerdir_value(&all));
        let mnt = overlay_mount(&opts, mnt);
        KernelOverlay { mnt, _empty: empty }
    }

    pub fn path(&self) -> &Path {
        &self.mnt
    }

    /// `mount -t overlay overlay -o lowerdir=TOP:...:BOTTOM,upperdir=U,workdir=W MNT`, lower
    /// layers given bottom first: a writable kernel overlay.
    pub fn with_upper<P: AsRef<Path>>(layers: &[P], upper: &Path, work: &Path, mnt: &Path) -> Self {
        crate::common::require_root();
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            lowerdir_value(layers),
            upper.display(),
            work.display()
        );
        let mnt = overlay_mount(&opts, mnt);
        KernelOverlay { mnt, _empty: None }
    }
}

/// `mount -t overlay overlay -o OPTS MNT`; panics with mount(8)'s message if it fails.
/// Returns the canonical mountpoint.
fn overlay_mount(opts: &str, mnt: &Path) -> PathBuf {
    let mnt = mnt
        .canonicalize()
        .unwrap_or_else(|e| panic!("mountpoint {}: {e}", mnt.display()));
    let out = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", opts])
        .arg(&mnt)
        .stdin(Stdio::null())
        .output()
        .expect("run mount(8)");
    assert!(
        out.status.success(),
        "mount -t overlay -o {opts} {} failed: {}",
        mnt.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    mnt
}

impl Drop for KernelOverlay {
    fn drop(&mut self) {
        let _ = umount2(&self.mnt, libc::MNT_DETACH);
    }
}

/// Any mount made with mount(8) (`mount -t tmpfs ...`), unmounted on drop.
pub struct SysMount {
    mnt: PathBuf,
}

impl SysMount {
    pub fn tmpfs(mnt: &Path) -> Self {
        crate::common::require_root();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs"])
            .arg(mnt)
            .status()
            .expect("run mount(8)");
        assert!(st.success(), "mount -t tmpfs {} failed", mnt.display());
        SysMount {
            mnt: mnt.to_path_buf(),
        }
    }
}

impl Drop for SysMount {
    fn drop(&mut self) {
        let _ = umount2(&self.mnt, libc::MNT_DETACH);
    }
}
