//! The fuse-overlayfs / overlayfs option spelling:
//! `-o lowerdir=TOP:MIDDLE:BOTTOM[,upperdir=U,workdir=W][,other...]`.
//!
//! containers/storage calls a `mount_program` as
//! `PROG -o lowerdir=...,upperdir=...,workdir=...,,volatile MERGED` (note the empty option),
//! so empty options are ignored; unknown ones are refused by name rather than silently
//! dropped. As in overlayfs, `\` escapes a `:` or `,` inside a path.
//!
//! The same words come from mount(8) through mount.fuse3
//! (`unionmount SOURCE MOUNTPOINT -o rw,noatime,lowerdir=...,dev,suid`): the generic mount
//! flags are honoured or ignored as they are for any FUSE file system, and mount(8)'s own
//! (`defaults`, `nofail`, `_netdev`, `x-*`, ...) are ignored should they get through.

use std::path::PathBuf;

use log::debug;

use super::CliError;
use crate::fuse::ServeOptions;
use crate::idmap::IdMap;
use crate::layer::LayerOptions;
use crate::layer::blob::LayerSource;
use crate::mount::{MountConfig, MountFlag, UpperDirs};

/// Splits `s` at unescaped `sep`, removing the escaping backslashes of `sep` and `\\`.
fn split_escaped(s: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) if n == sep || n == '\\' => parts.last_mut().unwrap().push(n),
                Some(n) => {
                    let last = parts.last_mut().unwrap();
                    last.push('\\');
                    last.push(n);
                }
                None => parts.last_mut().unwrap().push('\\'),
            },
            c if c == sep => parts.push(String::new()),
            c => parts.last_mut().unwrap().push(c),
        }
    }
    parts
}

/// Splits one `-o` argument into options, keeping `\,` inside a value.
fn split_options(s: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let last = parts.last_mut().unwrap();
                last.push('\\');
                if let Some(n) = chars.next() {
                    last.push(n);
                }
            }
            ',' => parts.push(String::new()),
            c => parts.last_mut().unwrap().push(c),
        }
    }
    parts
}

/// Options of mount(8) and fstab that mean nothing to a FUSE file system once mounted.
fn is_mount8_option(key: &str) -> bool {
    matches!(
        key,
        "defaults"
            | "auto"
            | "noauto"
            | "user"
            | "nouser"
            | "users"
            | "owner"
            | "group"
            | "nofail"
            | "_netdev"
            | "comment"
            | "loud"
            | "silent"
    ) || key.starts_with("x-")
}

/// Parses a numeric id option (`squash_to_uid=N`).
fn parse_id(key: &str, value: &str) -> Result<u32, CliError> {
    value
        .parse()
        .map_err(|_| CliError::Usage(format!("{key}={value}: not a numeric id")))
}

/// Parses every `-o` argument into a mount configuration. `source` is the mount source
/// mount(8) names (shown in /proc/mounts unless `fsname=` says otherwise).
pub fn parse(
    options: &[String],
    source: Option<String>,
    mountpoint: PathBuf,
    foreground: bool,
) -> Result<MountConfig, CliError> {
    let usage = |m: String| CliError::Usage(m);
    let mut lower: Option<Vec<LayerSource>> = None;
    let mut fsname = source.unwrap_or_else(|| "unionmount".to_string());
    let mut serve = ServeOptions::default();
    let mut squash_root = false;
    let mut flags = Vec::new();
    let mut allow_other = rustix::process::geteuid().is_root();
    let (mut upper, mut work): (Option<PathBuf>, Option<PathBuf>) = (None, None);
    let mut read_only = false;
    for opt in options.iter().flat_map(|o| split_options(o)) {
        let (key, value) = match opt.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (opt.clone(), None),
        };
        match (key.as_str(), value) {
            ("", None) => {}
            ("lowerdir", Some(v)) => {
                let dirs: Vec<PathBuf> = split_escaped(&v, ':')
                    .into_iter()
                    .map(|p| PathBuf::from(p.replace("\\,", ",")))
                    .collect();
                if dirs.iter().any(|d| d.as_os_str().is_empty()) {
                    return Err(usage(format!("lowerdir={v}: empty layer path")));
                }
                lower = Some(dirs.into_iter().map(LayerSource::Path).collect());
            }
            ("upperdir", Some(v)) if !v.is_empty() => upper = Some(PathBuf::from(v)),
            ("workdir", Some(v)) if !v.is_empty() => work = Some(PathBuf::from(v)),
            ("upperdir" | "workdir", Some(_)) => {
                return Err(usage(format!("{key}=: empty path")));
            }
            ("fsname", Some(v)) => fsname = v,
            ("nodev", None) => flags.push(MountFlag::NoDev),
            ("nosuid", None) => flags.push(MountFlag::NoSuid),
            ("noexec", None) => flags.push(MountFlag::NoExec),
            ("noatime", None) => flags.push(MountFlag::NoAtime),
            ("allow_other", None) => allow_other = true,
            ("allow_root", None) => allow_other = true,
            ("ro", None) => read_only = true,
            ("rw", None) => read_only = false,
            // Always on (default_permissions, dev and suid as root), or the kernel's business.
            ("default_permissions" | "dev" | "suid" | "exec" | "atime" | "diratime", None) => {}
            ("relatime" | "strictatime" | "nodiratime" | "lazytime" | "nolazytime", None) => {}
            ("sync" | "async" | "dirsync", None) => {}
            ("volatile", None) => serve.volatile = true,
            ("nopassthrough", None) => serve.no_passthrough = true,
            ("fsync", Some(v)) => match v.as_str() {
                "0" => serve.volatile = true,
                "1" => serve.volatile = false,
                _ => return Err(usage(format!("fsync={v}: want 0 or 1"))),
            },
            ("noacl", None) => serve.no_acl = true,
            ("squash_to_root", None) => squash_root = true,
            ("squash_to_uid", Some(v)) => serve.ownership.squash_uid = Some(parse_id(&key, &v)?),
            ("squash_to_gid", Some(v)) => serve.ownership.squash_gid = Some(parse_id(&key, &v)?),
            ("uidmapping", Some(v)) => {
                serve.ownership.uids =
                    IdMap::parse(&v).map_err(|e| usage(format!("uidmapping={e}")))?;
            }
            ("gidmapping", Some(v)) => {
                serve.ownership.gids =
                    IdMap::parse(&v).map_err(|e| usage(format!("gidmapping={e}")))?;
            }
            // SELinux labels: a FUSE mount has no per-mount label to set.
            ("context" | "fscontext" | "defcontext" | "rootcontext", Some(v)) => {
                debug!("ignoring {key}={v}: SELinux mount labels are not supported");
            }
            (k, _) if is_mount8_option(k) => debug!("ignoring mount(8) option {opt}"),
            (k, Some(_)) => return Err(usage(format!("unknown mount option {k}="))),
            (k, None) => return Err(usage(format!("unknown mount option {k}"))),
        }
    }
    // As in fuse-overlayfs, squash_to_uid/gid win over squash_to_root for their id.
    if squash_root {
        let own = &mut serve.ownership;
        own.squash_uid = own.squash_uid.or(Some(0));
        own.squash_gid = own.squash_gid.or(Some(0));
    }
    let Some(mut layers) = lower else {
        return Err(usage("-o needs lowerdir=TOP:...:BOTTOM".into()));
    };
    let upper = match (upper, work) {
        (None, None) => None,
        (Some(_), None) => return Err(usage("upperdir= needs workdir= too".into())),
        (None, Some(_)) => return Err(usage("workdir= needs upperdir= too".into())),
        // `ro` with an upper: the upper is shown as the top layer and never written.
        (Some(u), Some(_)) if read_only => {
            layers.insert(0, LayerSource::Path(u));
            None
        }
        (Some(u), Some(w)) => Some(UpperDirs::new(u, w).map_err(usage)?),
    };
    Ok(MountConfig {
        layers,
        layer_options: LayerOptions::default(),
        mountpoint,
        foreground,
        upper,
        fsname,
        flags,
        allow_other,
        serve,
        pid_file: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(opts: &[&str]) -> Result<MountConfig, CliError> {
        let opts: Vec<String> = opts.iter().map(|s| s.to_string()).collect();
        parse(&opts, None, PathBuf::from("/mnt"), false)
    }

    #[test]
    fn lowerdir_is_top_first_and_empty_options_are_ignored() {
        let c = p(&["lowerdir=/a:/b\\:c:/d,,noatime"]).unwrap();
        let paths = |c: &MountConfig| -> Vec<PathBuf> {
            c.layers
                .iter()
                .map(|l| match l {
                    LayerSource::Path(p) => p.clone(),
                    LayerSource::Blob(_) | LayerSource::Remote(_) => panic!("-o gives paths"),
                })
                .collect()
        };
        assert_eq!(
            paths(&c),
            vec![
                PathBuf::from("/a"),
                PathBuf::from("/b:c"),
                PathBuf::from("/d")
            ]
        );
        assert_eq!(c.flags, vec![MountFlag::NoAtime]);
        let c = p(&["lowerdir=/x\\,y", "nodev"]).unwrap();
        assert_eq!(paths(&c), vec![PathBuf::from("/x,y")]);
    }

    #[test]
    fn unknown_and_unsupported_options_are_refused_by_name() {
        let e = p(&["lowerdir=/a,frobnicate"]).unwrap_err().to_string();
        assert!(e.contains("frobnicate"), "{e}");
        let e = p(&["lowerdir=/a,upperdir=/nonexistent-u,workdir=/nonexistent-w"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("upperdir=/nonexistent-u: does not exist"), "{e}");
        assert!(p(&["noatime"]).is_err());
        assert!(p(&["lowerdir=/a::/b"]).is_err());
    }

    #[test]
    fn upper_and_work_are_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let (u, w) = (tmp.path().join("u"), tmp.path().join("w"));
        std::fs::create_dir_all(u.join("inside")).unwrap();
        std::fs::create_dir(&w).unwrap();
        std::fs::write(tmp.path().join("f"), b"").unwrap();
        let opt = |u: &std::path::Path, w: &std::path::Path| {
            format!(
                "lowerdir=/a,upperdir={},workdir={}",
                u.display(),
                w.display()
            )
        };
        let c = p(&[&opt(&u, &w), ",volatile,"]).unwrap();
        assert_eq!(
            c.upper,
            Some(UpperDirs {
                upper: u.clone(),
                work: w.clone()
            })
        );
        let e = p(&[&opt(&u, &u.join("inside"))]).unwrap_err().to_string();
        assert!(e.contains("inside one another"), "{e}");
        let e = p(&[&opt(&u, &tmp.path().join("f"))])
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a directory"), "{e}");
        let e = p(&[&format!("lowerdir=/a,upperdir={}", u.display())])
            .unwrap_err()
            .to_string();
        assert!(e.contains("workdir"), "{e}");
        // `ro`: the upper is only the top layer.
        let c = p(&[&opt(&u, &w), "ro"]).unwrap();
        assert_eq!(c.upper, None);
        assert_eq!(c.layers.len(), 2);
        if std::path::Path::new("/dev/shm").is_dir() {
            let shm = tempfile::tempdir_in("/dev/shm").unwrap();
            if std::fs::metadata("/dev/shm")
                .map(|m| std::os::unix::fs::MetadataExt::dev(&m))
                .ok()
                != std::fs::metadata(tmp.path())
                    .map(|m| std::os::unix::fs::MetadataExt::dev(&m))
                    .ok()
            {
                let e = p(&[&opt(&u, shm.path())]).unwrap_err().to_string();
                assert!(e.contains("same filesystem"), "{e}");
            }
        }
    }

    #[test]
    fn containers_storage_and_mount8_options_are_accepted() {
        let c = p(&[
            "lowerdir=/a:/b,,volatile,noacl,nodev,context=\"system_u:object_r:container_file_t:s0\",",
        ])
        .unwrap();
        assert!(c.serve.volatile);
        assert_eq!(c.flags, vec![MountFlag::NoDev]);
        assert!(c.serve.ownership.is_identity());
        // What mount.fuse3 passes on for `mount -t fuse.unionmount ... -o ...`, plus what
        // mount(8) normally keeps to itself.
        let c = p(&["rw,noatime,lowerdir=/a,dev,suid,defaults,nofail,_netdev,x-systemd.automount"])
            .unwrap();
        assert_eq!(c.flags, vec![MountFlag::NoAtime]);
        assert!(!c.serve.volatile);
        assert!(p(&["lowerdir=/a,fsync=0"]).unwrap().serve.volatile);
        assert!(!p(&["lowerdir=/a,volatile,fsync=1"]).unwrap().serve.volatile);
        assert!(!c.serve.no_passthrough);
        assert!(!c.serve.no_acl);
        assert!(p(&["lowerdir=/a,noacl"]).unwrap().serve.no_acl);
        assert!(
            p(&["lowerdir=/a,nopassthrough"])
                .unwrap()
                .serve
                .no_passthrough
        );
        let e = p(&["lowerdir=/a,fsync=2"]).unwrap_err().to_string();
        assert!(e.contains("fsync=2"), "{e}");
        for bad in ["auto_unmount", "threaded=1", "user_id=0", "static_nlink"] {
            let e = p(&[&format!("lowerdir=/a,{bad}")]).unwrap_err().to_string();
            let key = bad.split('=').next().unwrap_or(bad);
            assert!(e.contains(key), "{bad}: {e}");
        }
    }

    #[test]
    fn source_names_the_mount_unless_fsname_does() {
        let opts = vec!["lowerdir=/a".to_string()];
        let c = parse(&opts, Some("images".into()), PathBuf::from("/m"), false).unwrap();
        assert_eq!(c.fsname, "images");
        let opts = vec!["lowerdir=/a,fsname=mine".to_string()];
        let c = parse(&opts, Some("images".into()), PathBuf::from("/m"), false).unwrap();
        assert_eq!(c.fsname, "mine");
        assert_eq!(p(&["lowerdir=/a"]).unwrap().fsname, "unionmount");
    }

    #[test]
    fn id_mappings_and_squashing() {
        let c = p(&["lowerdir=/a,uidmapping=0:1000:1:1:100000:65536,gidmapping=0:2000:1"]).unwrap();
        let own = &c.serve.ownership;
        assert_eq!(own.shown(1, 0), (100000, 2000));
        assert_eq!((own.stored_uid(1000), own.stored_gid(2000)), (0, 0));
        let e = p(&["lowerdir=/a,uidmapping=0:1000"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("uidmapping=\"0:1000\""), "{e}");
        let e = p(&["lowerdir=/a,gidmapping=x:1:1"])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("gidmapping="), "{e}");
        let own = p(&["lowerdir=/a,squash_to_root"]).unwrap().serve.ownership;
        assert_eq!(own.shown(5, 6), (0, 0));
        let own = p(&["lowerdir=/a,squash_to_uid=7,squash_to_root"])
            .unwrap()
            .serve
            .ownership;
        assert_eq!(own.shown(5, 6), (7, 0));
        let own = p(&["lowerdir=/a,squash_to_gid=8"]).unwrap().serve.ownership;
        assert_eq!(own.shown(5, 6), (5, 8));
        let e = p(&["lowerdir=/a,squash_to_uid=-1"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("squash_to_uid=-1"), "{e}");
    }
}
