//! Whether this process may mount FUSE at all, checked before any layer is opened so that a
//! refusal says what to fix in one line: the device (`/dev/fuse` missing, or not readable
//! and writable by this user), `fusermount3` (which a non-root user mounts through), and
//! `user_allow_other` in `/etc/fuse.conf` (which a non-root user needs for `allow_other`).

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The FUSE device, as the kernel names it.
pub const FUSE_DEVICE: &str = "/dev/fuse";
/// fusermount3's configuration (where `user_allow_other` is set).
pub const FUSE_CONF: &str = "/etc/fuse.conf";

/// What mounting needs from the system, and who asks. [`FuseAccess::of_this_process`] is
/// the real one; tests point the paths elsewhere to check each message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FuseAccess {
    pub device: PathBuf,
    pub fuse_conf: PathBuf,
    /// The fusermount3 that fuser would run, if any.
    pub fusermount: Option<PathBuf>,
    /// Effective uid (0 also inside a user namespace, where fuser mounts directly).
    pub uid: u32,
}

impl FuseAccess {
    pub fn of_this_process() -> FuseAccess {
        FuseAccess {
            device: PathBuf::from(FUSE_DEVICE),
            fuse_conf: PathBuf::from(FUSE_CONF),
            fusermount: find_fusermount(),
            uid: rustix::process::geteuid().as_raw(),
        }
    }

    /// `Ok` if a mount can be tried; else why not and what to do, in one line.
    pub fn check(&self, allow_other: bool) -> Result<(), String> {
        let dev = self.device.display();
        if let Err(e) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.device)
        {
            return Err(match e.kind() {
                io::ErrorKind::NotFound => format!(
                    "{dev} does not exist: load the fuse module (modprobe fuse), or give \
                     the container the device"
                ),
                io::ErrorKind::PermissionDenied => {
                    let how = std::fs::metadata(&self.device)
                        .map(|m| {
                            format!(
                                " (mode {:04o}, owner {}:{})",
                                m.mode() & 0o7777,
                                m.uid(),
                                m.gid()
                            )
                        })
                        .unwrap_or_default();
                    format!(
                        "{dev}{how} is not readable and writable by uid {}: run `chmod 0666 \
                         {dev}` as root, or add the user to a group that may open it (fuse)",
                        self.uid
                    )
                }
                _ => format!("{dev}: {e} (is the fuse module loaded? modprobe fuse)"),
            });
        }
        if self.uid == 0 {
            // Root mounts with mount(2) itself, and may always allow others.
            return Ok(());
        }
        if self.fusermount.is_none() {
            return Err(match std::env::var_os("FUSERMOUNT_PATH") {
                Some(p) => format!(
                    "FUSERMOUNT_PATH={}: no such program (a non-root user mounts through \
                     fusermount3)",
                    Path::new(&p).display()
                ),
                None => "fusermount3 is not installed, and a non-root user mounts through \
                         it: install fuse3 (apt-get install fuse3)"
                    .to_string(),
            });
        }
        if allow_other && !allows_other(&self.fuse_conf) {
            return Err(format!(
                "allow_other for a non-root user needs a line `user_allow_other` in {} \
                 (add it as root), or mount without allow_other",
                self.fuse_conf.display()
            ));
        }
        Ok(())
    }
}

/// Whether fuse.conf has `user_allow_other` on a line of its own, as fusermount3 reads it
/// (comments start with `#`; a missing file allows nothing).
fn allows_other(conf: &Path) -> bool {
    std::fs::read_to_string(conf).is_ok_and(|text| {
        text.lines()
            .any(|l| l.split('#').next().unwrap_or("").trim() == "user_allow_other")
    })
}

/// The program fuser runs to mount without root: `$FUSERMOUNT_PATH`, else `fusermount3`
/// or `fusermount` on `PATH`, else in /sbin or /bin (fuser 0.18's own search).
fn find_fusermount() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FUSERMOUNT_PATH") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let names = ["fusermount3", "fusermount"];
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .flat_map(|dir| names.map(|n| dir.join(n)))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        ["/sbin", "/bin"]
            .iter()
            .flat_map(|dir| names.map(|n| Path::new(dir).join(n)))
            .find(|p| p.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(tmp: &Path, uid: u32) -> FuseAccess {
        FuseAccess {
            device: tmp.join("fuse"),
            fuse_conf: tmp.join("fuse.conf"),
            fusermount: Some(PathBuf::from("/usr/bin/fusermount3")),
            uid,
        }
    }

    #[test]
    fn each_refusal_names_the_thing_and_the_fix() {
        let tmp = tempfile::tempdir().unwrap();
        let a = access(tmp.path(), 1000);
        let e = a.check(false).unwrap_err();
        assert!(
            e.contains("fuse does not exist") && e.contains("modprobe fuse"),
            "{e}"
        );

        // A regular file stands in for the device: only its mode matters here.
        std::fs::write(&a.device, "").unwrap();
        std::fs::set_permissions(
            &a.device,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        if rustix::process::geteuid().is_root() {
            // Root opens it whatever the mode; an unopenable one stands in for the rest.
            let dir = tmp.path().join("dir-as-device");
            std::fs::create_dir(&dir).unwrap();
            let e = FuseAccess {
                device: dir,
                ..a.clone()
            }
            .check(false)
            .unwrap_err();
            assert!(e.contains("modprobe fuse"), "{e}");
        }
        std::fs::set_permissions(
            &a.device,
            std::os::unix::fs::PermissionsExt::from_mode(0o666),
        )
        .unwrap();
        assert_eq!(a.check(false), Ok(()));

        let none = FuseAccess {
            fusermount: None,
            ..a.clone()
        };
        let e = none.check(false).unwrap_err();
        assert!(e.contains("fusermount3") && e.contains("fuse3"), "{e}");
        assert_eq!(
            FuseAccess { uid: 0, ..none }.check(true),
            Ok(()),
            "root needs neither"
        );

        let e = a.check(true).unwrap_err();
        assert!(
            e.contains("user_allow_other") && e.contains("fuse.conf"),
            "{e}"
        );
        std::fs::write(&a.fuse_conf, "# user_allow_other\nmount_max = 5\n").unwrap();
        assert!(a.check(true).is_err(), "a comment allows nothing");
        std::fs::write(&a.fuse_conf, "mount_max = 5\n  user_allow_other \n").unwrap();
        assert_eq!(a.check(true), Ok(()));
    }
}
