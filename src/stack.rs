//! The library's front door: a [`LayerStack`] built from directories, tar files and image
//! references, mounted at a path, giving a [`Mounted`] guard that unmounts when dropped
//! (also while a panic unwinds), for programs and tests that want a merged tree for a while.
//!
//! Two ways to serve it. [`LayerStack::mount`] serves the mount from a background thread of
//! the calling process (nothing to install; the mount lives as long as the guard and the
//! process). [`LayerStack::spawn`] runs the `unionmount` binary as a child in the
//! foreground, so the mount survives a crash of the caller's own code only as long as the
//! child lives, and a daemon error is reported with its message.
//!
//! Both mount the way `unionmount mount` does: a [`LayerStack`] is a builder of the same
//! [`MountConfig`] the command line builds, and every mount starts in one place in
//! [`crate::mount`]. Without root that is through `fusermount3`; a test that would rather
//! skip than fail where FUSE cannot be used asks first with
//! [`FuseAccess::of_this_process`](crate::mount::FuseAccess::of_this_process)`.check(false)`,
//! whose error says what is missing and how to fix it.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use unionmount::LayerStack;
//!
//! let mounted = LayerStack::new()
//!     .layer("/srv/layers/base.tar.gz")
//!     .layer("/srv/layers/app")
//!     .writable("/tmp/upper", "/tmp/work")
//!     .mount("/mnt/merged")?;
//! std::fs::write(mounted.path().join("hello"), "hi")?;
//! mounted.unmount()?; // or let it drop
//! # Ok(()) }
//! ```

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::fuse::ServeOptions;
use crate::image::ImageError;
use crate::layer::LayerOptions;
use crate::layer::blob::LayerSource;
use crate::mount::{MountConfig, MountError, UpperDirs};

/// Layers to mount, bottom first as they are added (as image manifests list them), with an
/// optional writable upper. Built with chained calls; nothing is opened until `mount`.
#[derive(Clone, Debug, Default)]
pub struct LayerStack {
    /// Bottom first.
    layers: Vec<LayerSource>,
    /// For `spawn`: the same layers as the CLI words that name them.
    words: Vec<String>,
    upper: Option<(PathBuf, PathBuf)>,
    options: LayerOptions,
    serve: ServeOptions,
    allow_other: bool,
    described: Scratch,
}

/// Directories the stack wrote itself (described layers, see `layer_from`), kept until the
/// mount that reads them is gone.
#[derive(Clone, Debug, Default)]
struct Scratch(#[cfg(feature = "testing")] Vec<std::sync::Arc<tempfile::TempDir>>);

impl LayerStack {
    pub fn new() -> LayerStack {
        LayerStack::default()
    }

    /// Adds a layer on top: an extracted directory, or a tar file (plain, gzip or zstd) read
    /// in place.
    pub fn layer(mut self, path: impl AsRef<Path>) -> LayerStack {
        let path = path.as_ref().to_path_buf();
        self.words.push(format!("--layer\0{}", path.display()));
        self.layers.push(LayerSource::Path(path));
        self
    }

    /// Adds a layer on top written from a literal description (see [`crate::testing`]) in
    /// the given form, into a temporary directory that is removed once the mount ends.
    ///
    /// ```no_run
    /// use unionmount::LayerStack;
    /// use unionmount::testing::{Form, file, whiteout};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mounted = LayerStack::new()
    ///     .layer_from(&[file("etc/motd", "base\n"), file("etc/old", "x")], Form::Tar)?
    ///     .layer_from(&[whiteout("etc/old")], Form::OciDir)?
    ///     .mount("/mnt/merged")?;
    /// assert!(!mounted.path().join("etc/old").exists());
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "testing")]
    pub fn layer_from(
        mut self,
        entries: &[crate::testing::Entry],
        form: crate::testing::Form,
    ) -> io::Result<LayerStack> {
        let dir = tempfile::Builder::new()
            .prefix("unionmount-layer.")
            .tempdir()?;
        let name = match form {
            crate::testing::Form::Tar => "layer.tar",
            _ => "layer",
        };
        let path = crate::testing::write_layer(&dir.path().join(name), form, entries)?;
        self.described.0.push(std::sync::Arc::new(dir));
        Ok(self.layer(path))
    }

    /// Adds one layer of any kind on top, such as a remote blob read lazily
    /// ([`LayerSource::Remote`]). Only [`Self::mount`] serves it: `spawn` has no words for it.
    pub fn source(mut self, source: LayerSource) -> LayerStack {
        self.words.push("--source\0".into());
        self.layers.push(source);
        self
    }

    /// Adds the layers of an image on top: `oci:DIR[:TAG]` or
    /// `docker-archive:FILE[:NAME:TAG]`, resolved now (the error names the image and cause).
    pub fn image(mut self, reference: &str) -> Result<LayerStack, ImageError> {
        let image = crate::image::resolve_str(reference, None)?;
        // An image lists its layers top first here; the stack grows bottom first.
        self.layers.extend(image.layers.into_iter().rev());
        self.words.push(format!("--image\0{reference}"));
        Ok(self)
    }

    /// Makes the mount writable: changes go to `upper` (an overlayfs upper directory), staged
    /// in `work` on the same filesystem. Both are created if missing.
    pub fn writable(mut self, upper: impl AsRef<Path>, work: impl AsRef<Path>) -> LayerStack {
        self.upper = Some((upper.as_ref().to_path_buf(), work.as_ref().to_path_buf()));
        self
    }

    /// Keeps tar-layer indexes in `dir` between mounts (default: none kept).
    pub fn index_cache(mut self, dir: impl AsRef<Path>) -> LayerStack {
        self.options.index_cache = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Owners shown and stored: container ids mapped to host ids, as fuse-overlayfs's
    /// `uidmapping=`/`gidmapping=` (`container:host:count`, `:`-separated triples).
    pub fn id_mapping(
        mut self,
        uids: &str,
        gids: &str,
    ) -> Result<LayerStack, crate::idmap::IdMapError> {
        self.serve.ownership.uids = crate::idmap::IdMap::parse(uids)?;
        self.serve.ownership.gids = crate::idmap::IdMap::parse(gids)?;
        Ok(self)
    }

    /// Lets other users see the mount (needs root, or `user_allow_other` in
    /// /etc/fuse.conf).
    pub fn allow_other(mut self, allow: bool) -> LayerStack {
        self.allow_other = allow;
        self
    }

    /// The mount configuration this stack describes: the one [`crate::mount::run`] (the
    /// command line's path) and [`LayerStack::mount`] both mount from. Creates the upper and
    /// work directories if missing.
    pub fn config(&self, mountpoint: impl AsRef<Path>) -> Result<MountConfig, MountError> {
        let mountpoint = crate::mount::check_mountpoint(mountpoint.as_ref())?;
        if self.layers.is_empty() {
            return Err(MountError::Layer("no layers to mount".into()));
        }
        let upper = match &self.upper {
            None => None,
            Some((upper, work)) => {
                for dir in [upper, work] {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| MountError::Layer(format!("{}: {e}", dir.display())))?;
                }
                Some(UpperDirs::new(upper.clone(), work.clone()).map_err(MountError::Layer)?)
            }
        };
        Ok(MountConfig {
            layers: self.layers.iter().rev().cloned().collect(),
            layer_options: self.options.clone(),
            mountpoint,
            foreground: true,
            upper,
            fsname: "unionmount".into(),
            flags: Vec::new(),
            allow_other: self.allow_other,
            serve: self.serve.clone(),
            pid_file: None,
        })
    }

    /// Mounts at `mountpoint` (an existing, empty directory), served by a background thread
    /// of this process until the guard is dropped or [`Mounted::unmount`] is called.
    ///
    /// Without root this mounts through `fusermount3`, as `unionmount mount` does; when FUSE
    /// cannot be used (no `/dev/fuse`, not accessible to this user, no `fusermount3`, or
    /// [`LayerStack::allow_other`] without `user_allow_other` in `/etc/fuse.conf`) the error
    /// says which and how to fix it.
    pub fn mount(self, mountpoint: impl AsRef<Path>) -> Result<Mounted, MountError> {
        let cfg = self.config(mountpoint)?;
        let (background, mountpoint) = crate::mount::run_in_background(&cfg)?;
        Ok(Mounted {
            mountpoint,
            server: Some(Server::Thread(background)),
            _layers: self.described,
        })
    }

    /// Mounts at `mountpoint` by running the `unionmount` binary (`$UNIONMOUNT_BIN`, else
    /// `unionmount` on `PATH`) in the foreground as a child; returns once the mount is live.
    pub fn spawn(self, mountpoint: impl AsRef<Path>) -> Result<Mounted, MountError> {
        let mountpoint = crate::mount::check_mountpoint(mountpoint.as_ref())?;
        let bin = std::env::var_os("UNIONMOUNT_BIN").unwrap_or_else(|| "unionmount".into());
        let mut cmd = Command::new(&bin);
        cmd.arg("mount").arg("--foreground");
        let mut image = None;
        for word in &self.words {
            match word.split_once('\0') {
                Some(("--layer", path)) => {
                    cmd.arg("--layer").arg(path);
                }
                Some(("--image", reference)) => image = Some(reference.to_string()),
                Some(("--source", _)) => {
                    return Err(MountError::Layer(
                        "spawn: a layer given as a source is only served in process (use mount)"
                            .into(),
                    ));
                }
                _ => {}
            }
        }
        match &self.options.index_cache {
            Some(dir) => cmd.arg("--cache").arg(dir),
            None => cmd.arg("--no-cache"),
        };
        if let Some((upper, work)) = &self.upper {
            cmd.arg("--upper").arg(upper).arg("--work").arg(work);
        }
        if !self.allow_other {
            cmd.arg("--private");
        }
        match (image, self.words.len()) {
            (Some(reference), 1) => {
                cmd.arg(reference);
            }
            (Some(_), _) => {
                return Err(MountError::Layer(
                    "spawn: an image cannot be combined with other layers (use mount)".into(),
                ));
            }
            (None, _) => {}
        }
        if !self.serve.ownership.is_identity() {
            return Err(MountError::Layer(
                "spawn: id mappings are only served in process (use mount)".into(),
            ));
        }
        cmd.arg(&mountpoint)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| {
            MountError::Daemon(format!("cannot run {}: {e}", PathBuf::from(&bin).display()))
        })?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if crate::mount::mount_type(&mountpoint).is_some() {
                break;
            }
            if let Some(status) = child
                .try_wait()
                .map_err(|e| MountError::Daemon(e.to_string()))?
            {
                return Err(MountError::Daemon(format!(
                    "unionmount exited ({status}) before mounting: {}",
                    stderr_of(&mut child)
                )));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(MountError::Daemon(format!(
                    "unionmount did not mount {} within 30 s",
                    mountpoint.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(Mounted {
            mountpoint,
            server: Some(Server::Child(child)),
            _layers: self.described,
        })
    }
}

fn stderr_of(child: &mut Child) -> String {
    use std::io::Read;
    let mut text = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut text);
    }
    crate::layer::tar::one_line(text.trim()).into_owned()
}

/// What serves a mount.
enum Server {
    Thread(fuser::BackgroundSession),
    Child(Child),
}

/// A live mount; unmounted when dropped (lazily, if something still uses it).
pub struct Mounted {
    mountpoint: PathBuf,
    server: Option<Server>,
    /// Dropped after `drop` has unmounted.
    _layers: Scratch,
}

impl std::fmt::Debug for Mounted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mounted")
            .field("mountpoint", &self.mountpoint)
            .finish()
    }
}

impl Mounted {
    /// The mountpoint (absolute).
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// Unmounts and waits for the server to end; reports why if it failed (busy mount, or
    /// the daemon's own error).
    pub fn unmount(mut self) -> Result<(), MountError> {
        self.stop(false)
    }

    fn stop(&mut self, lazy: bool) -> Result<(), MountError> {
        let Some(server) = self.server.take() else {
            return Ok(());
        };
        match server {
            Server::Thread(background) => {
                if let Err(e) = crate::mount::unmount(&self.mountpoint, lazy)
                    && !lazy
                {
                    self.server = Some(Server::Thread(background));
                    return Err(e);
                }
                match background.join() {
                    // The connection ended with the mount (see `mount::serve`).
                    Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => Ok(()),
                    other => other.map_err(|e| MountError::Daemon(format!("serving: {e}"))),
                }
            }
            Server::Child(mut child) => {
                if let Err(e) = crate::mount::unmount(&self.mountpoint, lazy)
                    && !lazy
                {
                    self.server = Some(Server::Child(child));
                    return Err(e);
                }
                let status = wait_timeout(&mut child, Duration::from_secs(30))
                    .map_err(|e| MountError::Daemon(e.to_string()))?;
                match status {
                    Some(s) if s.success() => Ok(()),
                    Some(s) => Err(MountError::Daemon(format!(
                        "unionmount exited ({s}): {}",
                        stderr_of(&mut child)
                    ))),
                    None => {
                        let _ = child.kill();
                        let _ = child.wait();
                        Err(MountError::Daemon(
                            "unionmount did not exit after unmount".into(),
                        ))
                    }
                }
            }
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.server.is_some()
            && let Err(e) = self.stop(false)
        {
            log::debug!("{}: {e}; detaching lazily", self.mountpoint.display());
            let _ = self.stop(true);
        }
    }
}

fn wait_timeout(
    child: &mut Child,
    timeout: Duration,
) -> io::Result<Option<std::process::ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() > deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
