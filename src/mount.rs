//! Mounting a union: checks of the mountpoint and of FUSE access (`access`), the FUSE
//! session, daemonising, signals and unmounting.
//!
//! Order matters for daemonising (threads do not survive fork): the session is created (the
//! kernel mount exists and the INIT handshake is done) in the one-threaded parent; then the
//! process forks, the child starts the worker threads, reports readiness through a pipe, and
//! the parent exits 0 only then. A failure before that point is reported by the parent.

use std::ffi::CString;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use fuser::{Config, MountOption, Session, SessionACL};
use log::{info, warn};

use crate::fuse::{FuseAdapter, ServeOptions};
use crate::layer::blob::LayerSource;
use crate::layer::{self, Layer, LayerOptions};
use crate::union::Union;
use crate::union::upper::Upper;

mod access;
pub mod pid;
pub use access::{FUSE_CONF, FUSE_DEVICE, FuseAccess};

/// The file system type shown in /proc/mounts is `fuse.unionmount`.
pub const FS_TYPE: &str = "unionmount";

/// Everything needed to mount, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountConfig {
    /// Layers, topmost first.
    pub layers: Vec<LayerSource>,
    pub layer_options: LayerOptions,
    pub mountpoint: PathBuf,
    pub foreground: bool,
    /// The writable upper and its work directory; `None` mounts read-only.
    pub upper: Option<UpperDirs>,
    /// The `fsname` shown as the source in /proc/mounts.
    pub fsname: String,
    /// Extra kernel mount flags (nodev, nosuid, noexec, noatime...).
    pub flags: Vec<MountFlag>,
    /// Allow other users (default when root, as fuse-overlayfs does for podman).
    pub allow_other: bool,
    /// Owner mapping and fsync policy of the adapter (fuse-overlayfs's options).
    pub serve: ServeOptions,
    /// A file the serving process writes its pid to once the mount is live (the store's
    /// mount record, which `ps` and `rmi` read).
    pub pid_file: Option<PathBuf>,
}

/// The upper and work directories of a writable mount, checked by [`UpperDirs::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpperDirs {
    pub upper: PathBuf,
    pub work: PathBuf,
}

impl UpperDirs {
    /// Checks that both exist, are directories on one filesystem, and neither is inside the
    /// other (as overlayfs requires); the error is one line naming the option.
    pub fn new(upper: PathBuf, work: PathBuf) -> Result<UpperDirs, String> {
        crate::union::upper::check_dirs(&upper, &work)?;
        Ok(UpperDirs { upper, work })
    }
}

/// Mount flags passed through to the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountFlag {
    /// Honour device files and set-uid bits (the default as root, as with overlayfs;
    /// unprivileged mounts are always nodev,nosuid).
    Dev,
    Suid,
    NoDev,
    NoSuid,
    NoExec,
    NoAtime,
}

/// Why a mount or unmount failed; each names the thing and the cause.
#[derive(Debug)]
pub enum MountError {
    /// A layer could not be opened; the message names it.
    Layer(String),
    Mountpoint(PathBuf, String),
    Mount(PathBuf, io::Error),
    Daemon(String),
    Unmount(PathBuf, String),
}

impl fmt::Display for MountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MountError::Layer(e) => f.write_str(e),
            MountError::Mountpoint(p, e) => write!(f, "mountpoint {}: {e}", p.display()),
            MountError::Mount(p, e) => write!(f, "cannot mount on {}: {e}", p.display()),
            MountError::Daemon(e) => write!(f, "daemon: {e}"),
            MountError::Unmount(p, e) => write!(f, "cannot unmount {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for MountError {}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Where `path` is mounted, if it is a mount point: the fs type from /proc/self/mountinfo.
pub fn mount_type(path: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = path.as_os_str().as_bytes();
    // The last matching line is the mount on top.
    info.lines().rev().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        let sep = fields.iter().position(|f| *f == "-")?;
        let point = unescape_mountinfo(fields.get(4)?);
        (point == want).then(|| fields.get(sep + 1).map(|s| s.to_string()))?
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// The mountpoint, absolute, if it is a directory that is not already a mount point.
pub fn check_mountpoint(path: &Path) -> Result<PathBuf, MountError> {
    let err = |m: &str| MountError::Mountpoint(path.to_path_buf(), m.to_string());
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => err("does not exist"),
        _ => MountError::Mountpoint(path.to_path_buf(), e.to_string()),
    })?;
    if !meta.is_dir() {
        return Err(err("not a directory"));
    }
    let abs = std::fs::canonicalize(path)
        .map_err(|e| MountError::Mountpoint(path.to_path_buf(), e.to_string()))?;
    if let Some(fstype) = mount_type(&abs) {
        return Err(err(&format!(
            "busy: already a mount point ({fstype}); unmount it first"
        )));
    }
    Ok(abs)
}

/// Opens the layers (topmost first) and builds the union.
pub fn build_union(layers: &[LayerSource], options: &LayerOptions) -> Result<Union, MountError> {
    build_writable_union(layers, None, options)
}

/// Opens the layers (topmost first) and builds the union, writable if `upper` is given.
pub fn build_writable_union(
    layers: &[LayerSource],
    upper: Option<&UpperDirs>,
    options: &LayerOptions,
) -> Result<Union, MountError> {
    let mut opened: Vec<Arc<dyn Layer>> = Vec::with_capacity(layers.len());
    for source in layers {
        let layer = layer::open(source, options).map_err(MountError::Layer)?;
        opened.push(layer);
    }
    match upper {
        None => Union::new(opened).map_err(|e| MountError::Daemon(e.to_string())),
        Some(dirs) => {
            let upper = Upper::open(&dirs.upper, &dirs.work).map_err(|e| {
                MountError::Layer(format!(
                    "upperdir={} workdir={}: {e}",
                    dirs.upper.display(),
                    dirs.work.display()
                ))
            })?;
            Union::with_upper(upper, opened).map_err(|e| MountError::Daemon(e.to_string()))
        }
    }
}

fn fuse_config(cfg: &MountConfig) -> Config {
    let mut options = vec![
        MountOption::FSName(cfg.fsname.clone()),
        MountOption::Subtype(FS_TYPE.to_string()),
        // The kernel checks permissions against the modes we report, as overlayfs does.
        MountOption::DefaultPermissions,
    ];
    if cfg.upper.is_none() {
        options.push(MountOption::RO);
    }
    // fuser mounts nodev,nosuid unless told otherwise; kernel overlayfs (what a root user
    // compares with) honours both, so root gets them unless nodev/nosuid is asked for.
    if is_root() {
        if !cfg.flags.contains(&MountFlag::NoDev) {
            options.push(MountOption::Dev);
        }
        if !cfg.flags.contains(&MountFlag::NoSuid) {
            options.push(MountOption::Suid);
        }
    }
    for flag in &cfg.flags {
        options.push(match flag {
            MountFlag::Dev => MountOption::Dev,
            MountFlag::Suid => MountOption::Suid,
            MountFlag::NoDev => MountOption::NoDev,
            MountFlag::NoSuid => MountOption::NoSuid,
            MountFlag::NoExec => MountOption::NoExec,
            MountFlag::NoAtime => MountOption::NoAtime,
        });
    }
    let mut config = Config::default();
    config.mount_options = options;
    config.acl = if cfg.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    config.n_threads = Some(cpus.clamp(2, 16));
    config.clone_fd = true;
    config
}

/// Mounts and serves until unmounted (foreground), or returns once a daemon serves it.
pub fn run(cfg: &MountConfig) -> Result<(), MountError> {
    raise_fd_limit();
    let (session, mountpoint) = open_session(cfg)?;
    let pid_file = cfg.pid_file.as_deref();
    if cfg.foreground {
        serve(session, &mountpoint, None, pid_file)
    } else {
        daemonize(session, &mountpoint, pid_file)
    }
}

/// Mounts and serves from background threads of this process (the library's
/// [`crate::LayerStack::mount`]); the mount lives until the session is joined or dropped.
pub fn run_in_background(
    cfg: &MountConfig,
) -> Result<(fuser::BackgroundSession, PathBuf), MountError> {
    let (session, mountpoint) = open_session(cfg)?;
    crate::layer::remote::start_pending_fills();
    let background = session
        .spawn()
        .map_err(|e| MountError::Daemon(format!("cannot start serving: {e}")))?;
    Ok((background, mountpoint))
}

/// The one way every mount starts (the CLI's, the library's, a commit's): the mountpoint
/// and FUSE access are checked, the layers opened, and the kernel mount made; serving is
/// left to the caller. Returns the session and the absolute mountpoint.
fn open_session(cfg: &MountConfig) -> Result<(Session<FuseAdapter>, PathBuf), MountError> {
    let mountpoint = check_mountpoint(&cfg.mountpoint)?;
    FuseAccess::of_this_process()
        .check(cfg.allow_other)
        .map_err(|e| MountError::Mount(mountpoint.clone(), io::Error::other(e)))?;
    let union = build_writable_union(&cfg.layers, cfg.upper.as_ref(), &cfg.layer_options)?;
    let adapter = FuseAdapter::with_options(union, cfg.serve.clone());
    let session = Session::new(adapter, &mountpoint, &fuse_config(cfg))
        .map_err(|e| MountError::Mount(mountpoint.clone(), e))?;
    info!(
        "mounted {} layers on {}",
        cfg.layers.len(),
        mountpoint.display()
    );
    Ok((session, mountpoint))
}

/// Runs the session on worker threads until the file system is unmounted; SIGTERM and
/// SIGINT unmount it.
fn serve(
    mut session: Session<FuseAdapter>,
    mountpoint: &Path,
    ready: Option<File>,
    pid_file: Option<&Path>,
) -> Result<(), MountError> {
    block_stop_signals();
    // Here, in the process that serves (a daemon's child), not before its fork.
    crate::layer::remote::start_pending_fills();
    let target = mountpoint.to_path_buf();
    let mut unmounter = session.unmount_callable();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let sig = wait_stop_signal();
            info!("signal {sig}: unmounting {}", target.display());
            // The session's own unmount first, so that it does not try again on exit; if
            // the mount is busy, detach it lazily like `umount -l`.
            if let Err(e) = unmounter.unmount() {
                info!("unmount: {e}; detaching lazily");
                if let Err(e) = unmount(&target, true) {
                    warn!("{e}");
                }
            }
        })
        .map_err(|e| MountError::Daemon(format!("cannot start the signal thread: {e}")))?;
    if let Some(path) = pid_file
        && let Err(e) = std::fs::write(path, pid::record(std::process::id()))
    {
        warn!("{}: {e}", path.display());
    }
    if let Some(mut ready) = ready {
        // The parent may already be gone (killed); serving goes on regardless.
        let _ = ready.write_all(b"1");
    }
    match session.run() {
        // The kernel ends the connection as the mount goes: ENODEV usually, ECONNABORTED when
        // the unmount (or `umount -l`, or an abort) races a read of /dev/fuse. Either way
        // there is nothing left to serve, and the daemon ends as cleanly as after ENODEV.
        Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => Ok(()),
        other => {
            other.map_err(|e| MountError::Daemon(format!("serving {}: {e}", mountpoint.display())))
        }
    }
}

fn daemonize(
    session: Session<FuseAdapter>,
    mountpoint: &Path,
    pid_file: Option<&Path>,
) -> Result<(), MountError> {
    let (read_end, write_end) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| MountError::Daemon(format!("pipe: {e}")))?;
    // SAFETY: the process has one thread here (the session was created without threads), so
    // the child may run arbitrary code after fork.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(MountError::Daemon(format!(
            "fork: {}",
            io::Error::last_os_error()
        ))),
        0 => {
            drop(read_end);
            detach();
            let code = match serve(session, mountpoint, Some(File::from(write_end)), pid_file) {
                Ok(()) => 0,
                Err(e) => {
                    log::error!("{e}");
                    1
                }
            };
            std::process::exit(code);
        }
        child => {
            drop(write_end);
            let mut byte = [0u8; 1];
            let ok = File::from(read_end).read(&mut byte).map(|n| n == 1);
            if matches!(ok, Ok(true)) {
                // The child owns the mount now: the parent must not unmount it on exit.
                std::mem::forget(session);
                info!("daemon pid {child} serves {}", mountpoint.display());
                Ok(())
            } else {
                Err(MountError::Daemon(format!(
                    "the daemon (pid {child}) exited before serving {}",
                    mountpoint.display()
                )))
            }
        }
    }
}

/// Leaves the caller's session and terminal: new session, `/` as cwd, stdio on /dev/null.
fn detach() {
    let _ = rustix::process::setsid();
    let _ = std::env::set_current_dir("/");
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let fd: OwnedFd = null.into();
        for target in 0..=2 {
            // SAFETY: dup2 onto the standard descriptors, which this process owns.
            unsafe { libc::dup2(fd.as_raw_fd(), target) };
        }
    }
}

/// The signals that stop the daemon (unmounting first).
fn stop_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Blocks the stop signals in this thread and every thread started after, so that only
/// the signal thread receives them (through sigwait).
fn block_stop_signals() {
    let set = stop_signals();
    // SAFETY: pthread_sigmask with a valid set only changes this thread's mask.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

fn wait_stop_signal() -> i32 {
    let set = stop_signals();
    let mut sig = 0;
    // SAFETY: sigwait on a valid set of signals blocked by block_stop_signals.
    unsafe { libc::sigwait(&set, &mut sig) };
    sig
}

/// Directory layers keep descriptors open (see `layer::dir`): use all the hard limit allows.
fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            warn!("cannot raise the open file limit: {e}");
        }
    }
}

/// Unmounts a unionmount mount; `lazy` detaches it even while in use. The daemon serving it
/// exits by itself once the kernel closes the session.
pub fn unmount(mountpoint: &Path, lazy: bool) -> Result<(), MountError> {
    let err = |m: String| MountError::Unmount(mountpoint.to_path_buf(), m);
    let abs = std::fs::canonicalize(mountpoint).map_err(|e| err(e.to_string()))?;
    match mount_type(&abs) {
        None => return Err(err("not a mount point".into())),
        // fuser mounts as type `fuse` (the subtype is only recorded by fusermount3).
        Some(t) if t != "fuse" && !t.starts_with("fuse.") => {
            return Err(err(format!("not a unionmount mount (it is {t})")));
        }
        Some(_) => {}
    }
    if is_root() {
        let c = CString::new(abs.as_os_str().as_bytes()).map_err(|e| err(e.to_string()))?;
        let flags = if lazy { libc::MNT_DETACH } else { 0 };
        // SAFETY: umount2 with a valid NUL-terminated path.
        if unsafe { libc::umount2(c.as_ptr(), flags) } != 0 {
            let e = io::Error::last_os_error();
            return Err(err(match e.raw_os_error() {
                Some(libc::EBUSY) => "target is busy (a process uses it; try again later)".into(),
                _ => e.to_string(),
            }));
        }
        return Ok(());
    }
    let mut cmd = Command::new("fusermount3");
    cmd.arg("-u");
    if lazy {
        cmd.arg("-z");
    }
    let out = cmd
        .arg(&abs)
        .output()
        .map_err(|e| err(format!("fusermount3: {e}")))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr);
        return Err(err(msg
            .lines()
            .next()
            .unwrap_or("fusermount3 failed")
            .into()));
    }
    Ok(())
}
