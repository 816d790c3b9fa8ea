//! The store's root, and the per-mount state kept beside the layout: `ROOT/mounts/NAME/`
//! holds one mount's `upper/` and `work/`, `origin` (which image on which mountpoint) and,
//! while a daemon serves it, `pid`.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::image::reference::{Location, Reference, Select};
use crate::layer::blob::Digest;

/// The store root: `explicit` (`--root`), else `$UNIONMOUNT_ROOT`, else `/var/lib/unionmount`
/// as root, else `$XDG_DATA_HOME/unionmount` (`~/.local/share/unionmount`).
pub fn root(explicit: Option<&Path>) -> PathBuf {
    if let Some(dir) = explicit {
        return dir.to_path_buf();
    }
    if let Some(root) = std::env::var_os("UNIONMOUNT_ROOT").filter(|r| !r.is_empty()) {
        return PathBuf::from(root);
    }
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/var/lib/unionmount");
    }
    // The XDG base directory spec says relative values are invalid and to be ignored.
    let absolute = |var| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if let Some(data) = absolute("XDG_DATA_HOME") {
        return data.join("unionmount");
    }
    if let Some(home) = absolute("HOME") {
        return home.join(".local/share/unionmount");
    }
    let uid = rustix::process::geteuid().as_raw();
    std::env::temp_dir().join(format!("unionmount-{uid}"))
}

/// One mount's state under `ROOT/mounts/NAME/`: `upper/` and `work/`, plus `origin`, a text
/// file saying which image and mountpoint NAME stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountState {
    pub dir: PathBuf,
    /// The image, as [`image_key`] spells it.
    pub image: String,
    /// The mountpoint, absolute and with symlinks resolved.
    pub mountpoint: PathBuf,
    /// The manifest mounted, for images of the store (so `rmi` knows the image is in use).
    pub manifest: Option<Digest>,
}

impl MountState {
    /// The state of mounting `reference` on `mountpoint` (both resolved to absolute paths,
    /// so they must exist) under the store at `root`.
    pub fn of(root: &Path, reference: &Reference, mountpoint: &Path) -> io::Result<MountState> {
        let image = image_key(reference)?;
        MountState::named(root, image, None, mountpoint)
    }

    /// The state of mounting an image of the store, known by `name` (a tag, or
    /// `sha256:ID`), on `mountpoint`.
    pub fn named(
        root: &Path,
        image: String,
        manifest: Option<Digest>,
        mountpoint: &Path,
    ) -> io::Result<MountState> {
        let mountpoint = std::fs::canonicalize(mountpoint)?;
        let name = mount_name(&image, &mountpoint);
        Ok(MountState {
            dir: root.join("mounts").join(name),
            image,
            mountpoint,
            manifest,
        })
    }

    /// The file the serving daemon writes its pid to.
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("pid")
    }

    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }

    /// Creates what is missing (the upper as 0755, since the merged root shows its mode, as
    /// in overlayfs; the rest 0700) and writes `origin`. Returns whether the mount's directory
    /// was new.
    pub fn create(&self) -> io::Result<bool> {
        use std::os::unix::fs::DirBuilderExt;
        let fresh = !self.dir.exists();
        if let Some(mounts) = self.dir.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(mounts)?;
        }
        for (dir, mode) in [(self.dir.clone(), 0o700), (self.upper(), 0o755)] {
            match std::fs::DirBuilder::new().mode(mode).create(&dir) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
        }
        match std::fs::DirBuilder::new().mode(0o700).create(self.work()) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        let mut origin = format!(
            "image {}\nmountpoint {}\n",
            self.image,
            self.mountpoint.display()
        );
        if let Some(manifest) = &self.manifest {
            let _ = writeln!(origin, "manifest {manifest}");
        }
        std::fs::write(self.dir.join("origin"), origin)?;
        // Until the daemon writes its own, the mounting process stands for it: a prune that
        // runs meanwhile sees the mount as live.
        std::fs::write(
            self.pid_file(),
            crate::mount::pid::record(std::process::id()),
        )?;
        Ok(fresh)
    }

    /// Records a mount that keeps no changes (read-only): `origin` and `pid` only, so that
    /// `ps` lists it and `rmi` knows its image is in use.
    pub fn register(&self) -> io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        let mut origin = format!(
            "image {}\nmountpoint {}\n",
            self.image,
            self.mountpoint.display()
        );
        if let Some(manifest) = &self.manifest {
            let _ = writeln!(origin, "manifest {manifest}");
        }
        std::fs::write(self.dir.join("origin"), origin)?;
        std::fs::write(
            self.pid_file(),
            crate::mount::pid::record(std::process::id()),
        )
    }

    /// Undoes [`Self::create`] of a fresh directory after a failed mount: removes only what
    /// is empty, so nothing written through a mount is ever lost.
    pub fn remove_if_unused(&self) {
        let _ = std::fs::remove_file(self.pid_file());
        let _ = std::fs::remove_dir(self.upper());
        let _ = std::fs::remove_dir(self.work().join("work"));
        let _ = std::fs::remove_dir(self.work());
        if !self.upper().exists() && !self.work().exists() {
            let _ = std::fs::remove_file(self.dir.join("origin"));
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

/// A mount's record as found under `ROOT/mounts/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountRecord {
    pub state: MountState,
    /// The daemon serving it, if one is alive.
    pub pid: Option<u32>,
    /// The daemon's start time as its pid file gives it (see [`crate::mount::pid`]).
    pub start: Option<u64>,
}

impl MountRecord {
    /// Every record under `ROOT/mounts/`, sorted by mountpoint. A record whose daemon is gone
    /// loses its `pid` file (its upper and work directories stay: they hold the changes).
    pub fn list(root: &Path) -> io::Result<Vec<MountRecord>> {
        let mounts = root.join("mounts");
        let entries = match std::fs::read_dir(&mounts) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut records = Vec::new();
        for entry in entries {
            let dir = entry?.path();
            let Ok(origin) = std::fs::read_to_string(dir.join("origin")) else {
                continue;
            };
            let mut state = MountState {
                dir: dir.clone(),
                image: String::new(),
                mountpoint: PathBuf::new(),
                manifest: None,
            };
            for line in origin.lines() {
                match line.split_once(' ') {
                    Some(("image", v)) => state.image = v.to_string(),
                    Some(("mountpoint", v)) => state.mountpoint = PathBuf::from(v),
                    Some(("manifest", v)) => state.manifest = Digest::parse(v).ok(),
                    _ => {}
                }
            }
            let recorded = std::fs::read_to_string(state.pid_file())
                .ok()
                .and_then(|p| crate::mount::pid::parse(&p));
            let start = recorded.and_then(|(_, start)| start);
            let pid = match recorded {
                Some((pid, start)) if crate::mount::pid::alive(pid, start) => Some(pid),
                Some(_) => {
                    let _ = std::fs::remove_file(state.pid_file());
                    if !state.upper().exists() {
                        // A read-only mount's record: nothing of it is left to keep.
                        state.remove_if_unused();
                        continue;
                    }
                    None
                }
                None => None,
            };
            records.push(MountRecord { state, pid, start });
        }
        records.sort_by(|a, b| a.state.mountpoint.cmp(&b.state.mountpoint));
        Ok(records)
    }

    pub fn is_live(&self) -> bool {
        self.pid.is_some()
    }
}

/// The image part of a mount's identity: the transport, the layout directory or archive
/// file as an absolute path, and the selection as written (`:TAG`, `@sha256:HEX`, `:@N`, or
/// nothing). `oci:DIR` and `oci:DIR:latest` are different keys even when they name the same
/// image; a tag that moves keeps its key (the upper then sits over the new image, as an
/// overlayfs upper sits over whatever lowers it is given).
pub fn image_key(reference: &Reference) -> io::Result<String> {
    let (transport, path, select) = match &reference.location {
        Location::Oci { dir, select } => ("oci", dir, select),
        Location::DockerArchive { file, select } => ("docker-archive", file, select),
    };
    let path = std::fs::canonicalize(path)?;
    let select = match select {
        Select::Default => String::new(),
        Select::Tag(tag) => format!(":{tag}"),
        Select::Digest(d) => format!("@{d}"),
        Select::Index(n) => format!(":@{n}"),
    };
    Ok(format!("{transport}:{}{select}", path.display()))
}

/// `IMAGE_MOUNTPOINT_HASH`: readable slugs of the image's last path component (and tag) and
/// of the mountpoint's last component, then the first 16 hex digits of
/// `sha256(image_key NUL mountpoint)`, which is what makes the name unique and stable.
pub fn mount_name(image_key: &str, mountpoint: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut hash = Sha256::new();
    hash.update(image_key.as_bytes());
    hash.update([0]);
    hash.update(mountpoint.as_os_str().as_bytes());
    let mut hex = String::with_capacity(16);
    for b in &hash.finalize()[..8] {
        let _ = write!(hex, "{b:02x}");
    }
    let image_tail = image_key.rsplit('/').next().unwrap_or(image_key);
    let mnt_tail = mountpoint
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "root".into());
    format!("{}_{}_{hex}", slug(image_tail), slug(&mnt_tail))
}

/// Letters, digits, `.` and `-` kept, anything else `-`; at most 32 characters.
fn slug(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(32)
        .collect();
    let s = s.trim_matches(|c| c == '.' || c == '-');
    if s.is_empty() { "x".into() } else { s.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_names_are_stable_readable_and_distinct() {
        let a = mount_name("oci:/images/app:v1.2", Path::new("/mnt/app"));
        assert_eq!(a, mount_name("oci:/images/app:v1.2", Path::new("/mnt/app")));
        assert!(a.starts_with("app-v1.2_app_"), "{a}");
        assert_eq!(a.len(), "app-v1.2_app_".len() + 16);
        assert_ne!(a, mount_name("oci:/images/app:v1.3", Path::new("/mnt/app")));
        assert_ne!(a, mount_name("oci:/images/app:v1.2", Path::new("/srv/app")));
        // No name can climb out of mounts/.
        let odd = mount_name("oci:/x/..", Path::new("/"));
        assert!(!odd.contains('/') && !odd.starts_with('.'), "{odd}");
        assert_eq!(slug("../.."), "x");
    }

    #[test]
    fn image_keys_are_absolute_and_keep_the_selection() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("layout");
        std::fs::create_dir(&dir).expect("mkdir");
        let cwd = std::fs::canonicalize(tmp.path()).expect("canonicalize");
        let key = |text: &str| {
            let r = Reference::parse(text).expect("reference");
            image_key(&r).expect("key")
        };
        let abs = format!("oci:{}", cwd.join("layout").display());
        assert_eq!(key(&format!("oci:{}", dir.display())), abs);
        assert_eq!(
            key(&format!("oci:{}:v1", dir.display())),
            format!("{abs}:v1")
        );
        assert_eq!(
            key(&format!("oci:{}:@2", dir.display())),
            format!("{abs}:@2")
        );
    }

    #[test]
    fn root_prefers_the_explicit_dir() {
        assert_eq!(root(Some(Path::new("/srv/um"))), PathBuf::from("/srv/um"));
        assert!(root(None).is_absolute());
    }
}
